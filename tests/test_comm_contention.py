"""Hidden collectives take SMs from compute: ``time.comm_contention_seconds``.

Expected values are derived here by hand from NCCL's published behaviour — one CTA per
channel on an SM of its own (NVIDIA/nccl#689, #1656), two channels per NVLink link
(NVIDIA/nccl#1703), at most 32 channels (MAXCHANNELS in src/include/device.h), two
channels per NIC for a ring with one member per node (NVIDIA/nccl#438) — and the
GPUs' NVLink link counts and SM counts from their datasheets (A100: 12 links, 108 SMs;
H100 SXM: 18 links, 132 SMs; H800: 8 links, 132 SMs).
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan import catalog
from llmplan import symbols as S
from llmplan.errors import LlmplanError
from llmplan.model import Dense
from llmplan.plan import Cluster, Efficiency, Method, Parallelism, Plan, Precision

MODEL = Dense(layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000)


def _plan(gpu="h100-sxm", *, zero=3, gpus=16, micro_batch=1, accum=1, intra=None, cp=1, tp=1, seq_len=4096,
          dp_shard=None) -> Plan:
    dp = gpus // (cp * tp)
    return Plan(
        model=MODEL,
        method=Method(tokens=10**11, seq_len=seq_len, global_batch=dp * micro_batch * accum),
        precision=Precision(preset="bf16-mixed"),
        cluster=Cluster(gpu=catalog.gpu(gpu), gpus=gpus, intra_node=None if intra is None else catalog.link(intra)),
        parallelism=Parallelism(zero=zero, micro_batch=micro_batch, cp=cp, tp=tp, dp_shard=dp_shard,
                                sharding="fsdp" if dp_shard else "zero"),
    )


def _parts(est):
    return {k: float(est.value(k)) for k in (
        "time.compute_seconds", "communication.dp_seconds", "communication.cp_seconds",
        "communication.exposed_seconds_per_step", "time.bubble_seconds", "time.optimizer_seconds",
        "time.comm_contention_seconds", "time.step_seconds")}


@pytest.mark.parametrize(
    ("gpu", "sms_taken", "sms"),
    [
        ("h100-sxm", 32, 132),  # 2 × 18 links = 36, capped at NCCL's 32 channels
        ("a100-80gb-sxm", 24, 108),  # 2 × 12 links
        ("h800-sxm", 16, 132),  # 2 × 8 links (NVLink cut to 400 GB/s)
    ],
)
def test_hidden_zero3_traffic_costs_its_sms_share(gpu, sms_taken, sms):
    est = llmplan.estimate(_plan(gpu))
    v = _parts(est)
    assert est.values[S.n_ccl] == sms_taken
    # 16 GPUs, one micro-batch: the ZeRO-3 traffic hides behind the whole compute
    assert 0 < v["communication.dp_seconds"] < v["time.compute_seconds"]
    assert v["communication.exposed_seconds_per_step"] == pytest.approx(0, abs=1e-12)
    assert v["time.comm_contention_seconds"] == pytest.approx(sms_taken / sms * v["communication.dp_seconds"], rel=1e-12)
    # and the step is the sum of its parts, the new one included
    total = (v["time.compute_seconds"] + v["time.bubble_seconds"] + v["communication.exposed_seconds_per_step"]
             + v["time.optimizer_seconds"] + v["time.comm_contention_seconds"])
    assert v["time.step_seconds"] == pytest.approx(total, rel=1e-12)


def test_only_the_hidden_part_is_charged():
    # 32 GPUs over four nodes on a slow network: ZeRO-3's traffic outlasts the compute; the
    # exposed rest is on the critical path already, the hidden part (= the compute time) is charged
    slow = attrs.evolve(catalog.link("ib-ndr"), bandwidth=2e9)
    plan = attrs.evolve(_plan(gpus=32), cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=32, inter_node=slow))
    v = _parts(llmplan.estimate(plan))
    assert v["communication.dp_seconds"] > v["time.compute_seconds"]
    assert v["communication.exposed_seconds_per_step"] == pytest.approx(
        v["communication.dp_seconds"] - v["time.compute_seconds"], rel=1e-9)
    assert v["time.comm_contention_seconds"] == pytest.approx(32 / 132 * v["time.compute_seconds"], rel=1e-12)


def test_gradient_all_reduce_hides_behind_the_backward_pass_only():
    # ZeRO-1 on 64 GPUs: the window is the backward pass, ⅔ of the compute
    est = llmplan.estimate(_plan(zero=1, gpus=64, micro_batch=1))
    v = _parts(est)
    hidden = min(v["communication.dp_seconds"], 2 / 3 * v["time.compute_seconds"])
    assert v["time.comm_contention_seconds"] == pytest.approx(32 / 132 * hidden, rel=1e-12)


def test_context_parallel_traffic_counts_too():
    est = llmplan.estimate(_plan(zero=1, gpus=16, cp=2, seq_len=32768))
    v = _parts(est)
    assert v["communication.cp_seconds"] > 0
    hidden = (min(v["communication.dp_seconds"], 2 / 3 * v["time.compute_seconds"])
              + min(v["communication.cp_seconds"], 1 / 3 * v["time.compute_seconds"]))
    assert v["time.comm_contention_seconds"] == pytest.approx(32 / 132 * hidden, rel=1e-12)


def test_a_ring_with_one_gpu_per_node_runs_over_its_nic():
    # tensor parallelism fills each node: the data-parallel ring has one member per node and
    # leaves through the GPU's own NIC — NCCL's two channels per NIC, not the NVLink channels
    est = llmplan.estimate(_plan(zero=1, tp=8, gpus=64))
    assert est.values[S.n_ccl] == 2
    v = _parts(est)
    # ZeRO-1, one micro-batch: the reduce-scatter hides behind the backward, the all-gather
    # behind the (next) forward — each pass its FLOP share of the compute and of the
    # tensor-parallel traffic on the critical path
    t_grad = float(est.value("communication.dp_step_grad_seconds"))
    t_gather = float(est.value("communication.dp_step_gather_seconds"))
    assert t_grad + t_gather == pytest.approx(v["communication.dp_seconds"], rel=1e-12)
    f = float(est.value("flops.forward_per_token")) / (
        float(est.value("flops.per_token")) + float(est.value("flops.recompute_per_token")))
    t_pass = v["time.compute_seconds"] + float(est.value("communication.tp_exposed_seconds"))
    hidden = min(t_grad, (1 - f) * t_pass) + min(t_gather, f * t_pass)
    assert hidden > 0
    assert v["time.comm_contention_seconds"] == pytest.approx(2 / 132 * hidden, rel=1e-12)


def test_hybrid_sharding_charges_its_two_groups_apart():
    # HSDP over 4 nodes: FULL_SHARD inside each node (NVLink, 32 SMs), the gradient shards
    # all-reduced across the 4 nodes (one member per node: 2 SMs)
    est = llmplan.estimate(_plan(zero=3, gpus=32, dp_shard=8, micro_batch=1, accum=2))
    assert (est.values[S.n_ccl], est.values[S.n_ccr]) == (32, 2)
    v = _parts(est)
    rep = float(est.value("communication.dp_replica_seconds"))
    assert 0 < rep < v["communication.dp_seconds"] < v["time.compute_seconds"]  # all of it hidden
    expected = (32 * (v["communication.dp_seconds"] - rep) + 2 * rep) / 132
    assert v["time.comm_contention_seconds"] == pytest.approx(expected, rel=1e-12)


def test_no_charge_without_nvlink_or_a_link_count():
    # an H100 node wired over PCIe: NCCL's NVLink channels are not there
    assert llmplan.estimate(_plan(intra="pcie5")).values[S.n_ccl] == 0
    # a GPU whose catalog entry has no nvlinks (L40S: PCIe only)
    est = llmplan.estimate(_plan("l40s", gpus=8))
    assert est.values[S.n_ccl] == 0 and float(est.value("time.comm_contention_seconds")) == 0
    # [efficiency] mfu bypasses the step model: no term at all
    mfu = llmplan.estimate(attrs.evolve(_plan(), efficiency=Efficiency(mfu=0.4)))
    assert "time.comm_contention_seconds" not in mfu.definitions.items


def test_gpu_nvlinks_is_checked():
    with pytest.raises(LlmplanError) as err:
        attrs.evolve(catalog.gpu("h100-sxm"), nvlinks=0)
    assert "nvlinks" in str(err.value) and "0" in str(err.value)


@settings(max_examples=30, deadline=None)
@given(
    zero=st.sampled_from([0, 1, 2, 3]),
    gpus=st.sampled_from([8, 16, 64]),
    micro_batch=st.sampled_from([1, 2]),
    accum=st.sampled_from([1, 4]),
    gpu=st.sampled_from(["h100-sxm", "a100-80gb-sxm"]),
)
def test_contention_is_bounded_by_the_sms_share(zero, gpus, micro_batch, accum, gpu):
    est = llmplan.estimate(_plan(gpu, zero=zero, gpus=gpus, micro_batch=micro_batch, accum=accum))
    v = _parts(est)
    share = est.values[S.n_ccl] / est.values[S.n_sm]
    assert 0 <= v["time.comm_contention_seconds"] <= share * v["communication.dp_seconds"] + 1e-12
    assert v["time.comm_contention_seconds"] <= share * v["time.compute_seconds"] + 1e-12


def _zero3_slow(bandwidth: float):
    slow = attrs.evolve(catalog.link("ib-ndr"), bandwidth=bandwidth)
    plan = Plan(
        model=MODEL,
        method=Method(tokens=10**11, seq_len=4096, global_batch=32),
        precision=Precision(preset="bf16-mixed", grads="fp32"),
        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=32, inter_node=slow),
        parallelism=Parallelism(zero=3, micro_batch=1, tp=8),  # tp fills the node: DP crosses the network
    )
    return llmplan.estimate(plan)


def test_zero3_traffic_hides_behind_its_own_pass():
    # bf16 parameters gathered twice (forward, backward) and fp32 gradients reduce-scattered:
    # 2 + 2 + 4 bytes per parameter, so the forward pass carries 2/8 of the bytes and the
    # backward 6/8 — more than the backward's ~2/3 share of the compute
    base = _zero3_slow(50e9)
    t_dp, t_comp = float(base.value("communication.dp_seconds")), float(base.value("time.compute_seconds"))
    assert float(base.value("communication.dp_forward_seconds")) / t_dp == pytest.approx(2 / 8, rel=0.02)
    # a network that makes the whole traffic 95 % of the critical path (the compute and the
    # tensor-parallel traffic, which stays on NVLink): it would all hide behind the step, but
    # not the backward's part behind the backward pass
    t_pass = t_comp + float(base.value("communication.tp_exposed_seconds"))
    est = _zero3_slow(50e9 * t_dp / (0.95 * t_pass))
    t_dp, t_comp = float(est.value("communication.dp_seconds")), float(est.value("time.compute_seconds"))
    t_fwd = float(est.value("communication.dp_forward_seconds"))
    # the passes last the compute and the tensor-parallel traffic on the critical path
    # (the data-parallel stream runs during those collectives too)
    t_pass = t_comp + float(est.value("communication.tp_exposed_seconds"))
    assert t_comp < t_dp < t_pass
    # the forward pass's share of the compute: its FLOPs over the step's (recomputation in the backward)
    f = float(est.value("flops.forward_per_token")) / (
        float(est.value("flops.per_token")) + float(est.value("flops.recompute_per_token")))
    assert f == pytest.approx(1 / 3, rel=0.05)
    exposed = max(0.0, t_fwd - f * t_pass) + max(0.0, (t_dp - t_fwd) - (1 - f) * t_pass)
    assert exposed > 0
    assert float(est.value("communication.dp_exposed_seconds")) == pytest.approx(exposed, rel=1e-9)
    # and the contention is charged on the rest only (one member per node: 2 SMs of 132)
    assert est.values[S.n_ccl] == 2
    assert float(est.value("time.comm_contention_seconds")) == pytest.approx(2 / 132 * (t_dp - exposed), rel=1e-9)
