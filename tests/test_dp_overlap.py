"""``[parallelism] dp_overlap = false``: data-parallel traffic not overlapped with compute.

Megatron-LM reduces gradients after the backward pass unless ``--overlap-grad-reduce`` is
given, and gathers the distributed optimizer's updated shards after the step unless
``--overlap-param-gather`` is; DeepSpeed's ``overlap_comm = false`` does the same for ZeRO.
Then the whole data-parallel time is on the critical path — and, hidden behind nothing,
takes no SMs from compute. The expected values below are that statement applied to the
plan's own ``communication.dp_seconds``.
"""

from __future__ import annotations

import pytest

import llmplan
from llmplan import catalog
from llmplan.errors import LlmplanError
from llmplan.model import Dense
from llmplan.plan import Cluster, Method, Parallelism, Plan, Precision

MODEL = Dense(layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000)


def _plan(*, overlap=True, zero=1, gpus=32, accum=4) -> Plan:
    return Plan(
        model=MODEL,
        method=Method(tokens=10**11, seq_len=4096, global_batch=gpus * accum),
        precision=Precision(preset="bf16-mixed"),
        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=gpus),
        parallelism=Parallelism(zero=zero, micro_batch=1, dp_overlap=overlap),
    )


def _v(est, key):
    return float(est.value(key))


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_no_overlap_exposes_all_of_it_and_charges_no_sms(zero):
    on, off = llmplan.estimate(_plan(zero=zero)), llmplan.estimate(_plan(zero=zero, overlap=False))
    T_dp = _v(off, "communication.dp_seconds")
    assert T_dp == pytest.approx(_v(on, "communication.dp_seconds"), rel=1e-12) and T_dp > 0
    assert _v(off, "communication.dp_exposed_seconds") == pytest.approx(T_dp, rel=1e-12)
    assert _v(off, "time.comm_contention_seconds") == 0  # nothing hidden, nothing to share SMs with
    # on 4 nodes with 4 micro-batches the overlapped traffic hides entirely
    assert _v(on, "communication.dp_exposed_seconds") == pytest.approx(0, abs=1e-12)
    # the step grows by the traffic, less the SM share the hidden traffic cost before
    grown = _v(off, "time.step_seconds") - _v(on, "time.step_seconds")
    assert grown == pytest.approx(T_dp - _v(on, "time.comm_contention_seconds"), rel=1e-9)


def test_default_is_overlapped_and_round_trips():
    from llmplan.serialize import dump, loads

    assert Parallelism().dp_overlap is True
    text = dump(_plan(overlap=False))
    assert "dp_overlap = false" in text
    assert loads(text).parallelism.dp_overlap is False
    with pytest.raises(LlmplanError, match=r"dp_overlap.*'no' is not true or false"):
        Parallelism(dp_overlap="no")


def test_a_sweep_carries_it():
    import numpy as np

    from llmplan.search import _plan_for
    from llmplan.sweep import sweep

    base = _plan(overlap=False)
    sw = sweep(base, tp=[1, 2], pp=[1], micro_batch=[1], gpus=[32], zero=[0, 1, 3], recompute=["none"])
    rows = sw.rows(np.where(sw.valid)[0])
    assert {r["zero"] for r in rows} == {0, 1, 3}
    for row in rows:
        plan = _plan_for(base, row)
        assert plan.parallelism.dp_overlap is False
        assert row["time.step_seconds"] == pytest.approx(_v(llmplan.estimate(plan), "time.step_seconds"), rel=1e-9)


def _slow(plan: Plan, bandwidth: float) -> Plan:
    import attrs

    net = attrs.evolve(catalog.link("ib-ndr"), bandwidth=bandwidth)
    return attrs.evolve(plan, cluster=attrs.evolve(plan.cluster, inter_node=net),
                        precision=Precision(preset="bf16-mixed", grads="bf16"))


def _forward_share(est) -> float:
    """The forward pass's share of the step's compute: its FLOPs over the step's."""
    return _v(est, "flops.forward_per_token") / (_v(est, "flops.per_token") + _v(est, "flops.recompute_per_token"))


@pytest.mark.parametrize("accum", [1, 4, 16])
def test_accumulated_gradients_hide_behind_the_last_backward_only(accum):
    # DDP (zero 0) with gradient accumulation reduces only after the last micro-batch
    # (no_sync on the others; Megatron-Core's schedules likewise): the all-reduce overlaps one
    # micro-batch's backward, (1 − f)/m of the compute, not the whole step's backward
    est = llmplan.estimate(_slow(_plan(zero=0, accum=accum), 5e9))
    T_dp, T_comp, f = _v(est, "communication.dp_seconds"), _v(est, "time.compute_seconds"), _forward_share(est)
    assert f == pytest.approx(1 / 3, rel=0.05)  # no recomputation: forward 2, backward 4 FLOPs per parameter-token (+ attention's)
    assert _v(est, "communication.dp_step_grad_seconds") == pytest.approx(T_dp, rel=1e-12)
    expected = max(0.0, T_dp - (1 - f) * T_comp / accum)
    assert expected > 0
    assert _v(est, "communication.dp_exposed_seconds") == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("accum", [1, 4, 16])
def test_zero1_reduce_scatter_and_gather_hide_behind_their_own_pass(accum):
    # ZeRO-1 / the distributed optimizer: the accumulated gradients are reduce-scattered in the
    # last micro-batch's backward, the updated parameters all-gathered ahead of the next step's
    # first forward (overlap_param_gather). bf16 gradients and weights: the two collectives
    # move the same bytes over the same ring, half of T_dp each
    est = llmplan.estimate(_slow(_plan(zero=1, accum=accum), 5e9))
    T_dp, T_comp, f = _v(est, "communication.dp_seconds"), _v(est, "time.compute_seconds"), _forward_share(est)
    assert _v(est, "communication.dp_step_grad_seconds") == pytest.approx(T_dp / 2, rel=1e-12)
    assert _v(est, "communication.dp_step_gather_seconds") == pytest.approx(T_dp / 2, rel=1e-12)
    expected = max(0.0, T_dp / 2 - (1 - f) * T_comp / accum) + max(0.0, T_dp / 2 - f * T_comp / accum)
    assert _v(est, "communication.dp_exposed_seconds") == pytest.approx(expected, rel=1e-9)


def test_zero2_reduce_scatters_every_micro_batch_behind_its_backward():
    # ZeRO-2 reduce-scatters each micro-batch's gradients in that micro-batch's backward, and
    # gathers the updated parameters once, ahead of the next step's first forward
    accum = 4
    est = llmplan.estimate(_slow(_plan(zero=2, accum=accum), 5e9))
    T_dp, T_comp, f = _v(est, "communication.dp_seconds"), _v(est, "time.compute_seconds"), _forward_share(est)
    T_u = _v(est, "communication.dp_step_gather_seconds")
    assert T_u == pytest.approx(T_dp / (accum + 1), rel=1e-12)  # one gather, accum reduce-scatters of the same size
    assert _v(est, "communication.dp_step_grad_seconds") == 0
    per_micro = (T_dp - T_u) / accum
    expected = accum * max(0.0, per_micro - (1 - f) * T_comp / accum) + max(0.0, T_u - f * T_comp / accum)
    assert _v(est, "communication.dp_exposed_seconds") == pytest.approx(expected, rel=1e-9)


def test_fsdp_shard_grad_op_gathers_ahead_of_every_forward():
    # FSDP SHARD_GRAD_OP all-gathers the parameters before every micro-batch's forward and
    # reduce-scatters the gradients in every backward: with bf16 weights and gradients the two
    # move the same bytes, half of T_dp each, and each hides behind its own pass
    import attrs

    accum = 4
    plan = _slow(_plan(zero=2, accum=accum), 5e9)
    plan = attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, sharding="fsdp"))
    est = llmplan.estimate(plan)
    T_dp, T_comp, f = _v(est, "communication.dp_seconds"), _v(est, "time.compute_seconds"), _forward_share(est)
    assert _v(est, "communication.dp_forward_seconds") == pytest.approx(T_dp / 2, rel=1e-12)
    assert _v(est, "communication.dp_step_grad_seconds") == _v(est, "communication.dp_step_gather_seconds") == 0
    expected = max(0.0, T_dp / 2 - f * T_comp) + max(0.0, T_dp / 2 - (1 - f) * T_comp)
    assert expected > 0
    assert _v(est, "communication.dp_exposed_seconds") == pytest.approx(expected, rel=1e-9)
