"""Full recomputation of some layers only: ``[parallelism] recompute_layers``.

Megatron-LM's block method (``--recompute-granularity full --recompute-method block
--recompute-num-layers N``): each model chunk of a pipeline stage runs its first ``N``
layers under activation checkpointing, which store their input only and repeat their
forward in the backward pass, and the others store every activation. Expected values are
derived here by hand for a Megatron GPT layer (Korthikanti et al. 2022, bf16, no
FlashAttention): with tensor and sequence parallelism a layer stores ``sbh/t·(34 + 5as/h)``
bytes, a checkpointed one its input ``2·sbh/t``; per token a layer's forward is ``24h² + 4sh``
FLOPs (Narayanan et al. 2021: 2 per weight of the 12h² projections, ``2·2·s·h`` attention
core), the output head ``2hV``.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan.errors import LlmplanError
from llmplan.model import Dense
from llmplan.plan import Parallelism

from plans import make_plan

ROOT = Path(__file__).resolve().parents[1]
L, H, A, SEQ, V = 16, 2048, 16, 2048, 51200
GPT = Dense(layers=L, hidden=H, heads=A, ffn=4 * H, vocab=V, mlp="gelu", norm="layernorm", attention_bias="all",
            mlp_bias=True, position="learned", max_positions=SEQ, tied_embeddings=True, dropout=True)


def _plan(recompute="full", layers=None, *, pp=2, tp=2, schedule="1f1b", virtual=None, accum=8):
    plan = make_plan(model=GPT, tp=tp, pp=pp, gpus=8, recompute=recompute, seq_len=SEQ, flash=False,
                     schedule=schedule, virtual=virtual, global_batch=8 // (tp * pp) * accum)
    return attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, recompute_layers=layers))


def _layer_bytes(t=2, b=1):
    """(stored without recomputation, stored when checkpointed) per layer and micro-batch."""
    sbh = SEQ * b * H
    return sbh / t * (34 + 5 * A * SEQ / H), 2 * sbh / t


@pytest.mark.parametrize("n, recomputed", [(1, 1), (3, 3), (8, 8), (20, 8)])
def test_first_stage_activations_by_hand(n, recomputed):
    # 1F1B, pp = 2: rank 0 holds 2 micro-batches of its 8 layers, `recomputed` of them
    # checkpointed (at most all 8). The block method checkpoints the *first* layers: their
    # recomputation in the backward comes after the other layers of that micro-batch have
    # freed theirs, so the peak is the stored bytes — unless every layer is checkpointed,
    # when the last layer's recomputation adds its full activations to every layer's input
    full, ckpt = _layer_bytes()
    expected = 2 * (recomputed * ckpt + (8 - recomputed) * full) + (full - ckpt if recomputed == 8 else 0)
    est = llmplan.estimate(_plan(layers=n))
    assert float(est.value("memory.per_gpu.activations")) == pytest.approx(expected, rel=1e-12)
    assert float(est.value("memory.recomputed_layer_fraction")) == pytest.approx(recomputed / 8, rel=1e-12)


def test_interleaved_chunks_each_recompute_their_first_layers():
    # pp = 2, v = 2: rank 0 has 2 chunks of 4 layers; N = 1 checkpoints 2 of its 8 layers.
    # Megatron-Core's interleaved 1F1B keeps p + (p − 1)/v = 2.5 micro-batches of its layers
    full, ckpt = _layer_bytes()
    expected = 2.5 * (2 * ckpt + 6 * full)  # (the recomputed layers' transient comes after the others' backward)
    est = llmplan.estimate(_plan(layers=1, schedule="interleaved", virtual=2))
    assert float(est.value("memory.per_gpu.activations")) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n, recomputed", [(2, 2), (5, 5), (9, 8)])
def test_recomputed_flops_by_hand(n, recomputed):
    # training = 3 forwards; the checkpointed layers (recomputed of each stage's 8) repeat theirs
    layer = 24 * H**2 + 4 * SEQ * H
    forward = L * layer + 2 * H * V
    expected = 3 * forward + (2 * recomputed) * layer  # two stages
    est = llmplan.estimate(_plan(layers=n))
    per_step = float(est.value("flops.per_step"))
    assert per_step / (est.values[llmplan.symbols.B] * SEQ) == pytest.approx(expected, rel=1e-12)
    assert float(est.value("flops.recomputed_layer_fraction")) == pytest.approx(recomputed / 8, rel=1e-12)


def test_tp_collectives_of_the_recomputed_forward_by_hand():
    # sequence parallelism: an all-gather and a reduce-scatter around each of the two halves
    # of a layer, per pass — forward, backward, and the recomputed forward of 3 of 8 layers
    est = llmplan.estimate(_plan(layers=3))
    none = llmplan.estimate(_plan(recompute="none"))
    W, alpha = float(est.values[llmplan.symbols.W_tp]), float(est.values[llmplan.symbols.alpha_tp])
    t = 2
    T = (t - 1) * alpha + (t - 1) / t * 2 * SEQ * H / W  # one all-gather / reduce-scatter of bf16 s·b·h
    per_layer = 4 * T * 8  # 4 collectives × 8 micro-batches
    assert float(none.value("communication.tp_seconds")) == pytest.approx(2 * 8 * per_layer, rel=1e-9)
    assert float(est.value("communication.tp_seconds")) == pytest.approx((2 + 3 / 8) * 8 * per_layer, rel=1e-9)


def test_without_recompute_layers_every_layer_is_recomputed():
    a, b = llmplan.estimate(_plan(layers=None)), llmplan.estimate(_plan(layers=8))
    for key in ("memory.per_gpu.activations", "flops.per_step", "time.step_seconds", "communication.tp_seconds"):
        assert float(a.value(key)) == pytest.approx(float(b.value(key)), rel=1e-12)
    assert "flops.recomputed_layer_fraction" not in a.keys()


def test_errors_and_warnings():
    with pytest.raises(LlmplanError, match=r"recompute_layers.*0 is not a positive integer"):
        Parallelism(recompute="full", recompute_layers=0)
    with pytest.raises(LlmplanError, match=r"recompute_layers.*'4' is not a positive integer"):
        Parallelism(recompute="full", recompute_layers="4")
    est = llmplan.estimate(_plan(recompute="selective", layers=4))
    assert any("recompute_layers applies to recompute = \"full\" only" in w for w in est.warnings)
    with pytest.raises(LlmplanError, match=r"recompute_layer.*did you mean 'recompute_layers'"):
        llmplan.loads(llmplan.dump(_plan(layers=2)).replace("recompute_layers", "recompute_layer"))


def test_round_trips_through_toml():
    plan = _plan(layers=3)
    text = llmplan.dump(plan)
    assert "recompute_layers = 3" in text
    assert llmplan.loads(text).parallelism == plan.parallelism


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), pp=st.sampled_from([1, 2, 4]))
def test_bounded_by_none_and_full_and_monotone(n, pp):
    # more checkpointed layers: fewer bytes stored, more FLOPs executed, between the extremes
    part, more = llmplan.estimate(_plan(layers=n, pp=pp)), llmplan.estimate(_plan(layers=n + 1, pp=pp))
    none, full = llmplan.estimate(_plan(recompute="none", pp=pp)), llmplan.estimate(_plan(pp=pp))
    act = lambda e: float(e.value("memory.per_gpu.activations"))  # noqa: E731
    hw = lambda e: float(e.value("flops.per_step"))  # noqa: E731
    assert act(full) <= act(more) <= act(part) < act(none)
    assert hw(none) < hw(part) <= hw(more) <= hw(full)
    assert float(none.value("time.step_seconds")) < float(part.value("time.step_seconds")) <= float(full.value("time.step_seconds")) * (1 + 1e-12)


def test_a_sweep_over_pp_equals_the_scalar_estimates():
    from llmplan.search import _plan_for
    from llmplan.sweep import sweep

    base = _plan(layers=2)
    sw = sweep(base, tp=[1, 2], pp=[1, 2, 4], micro_batch=[1], gpus=[8], zero=[1], recompute=["full"])
    rows = sw.rows(np.where(sw.valid)[0])
    assert {r["pp"] for r in rows} == {1, 2, 4}
    for row in rows:
        plan = _plan_for(base, row)
        assert plan.parallelism.recompute_layers == 2
        est = llmplan.estimate(plan)
        for key in ("time.step_seconds", "memory.per_gpu.total"):
            assert row[key] == pytest.approx(float(est.value(key)), rel=1e-9)
        # 2 of each stage's 16/pp layers
        assert float(est.value("flops.recomputed_layer_fraction")) == pytest.approx(min(1, 2 * row["pp"] / 16), rel=1e-12)



def test_every_layer_rows_priced_by_the_partial_formulas_equal_full_recomputation():
    # with counts on the axis, the every-layer rows (0 in the column) run the partial formulas
    # at n_rc = layers; they must equal the plain full-recomputation estimate
    from llmplan.search import _plan_for
    from llmplan.sweep import sweep

    base = _plan(layers=None)
    sw = sweep(base, tp=[1, 2], pp=[1, 2], micro_batch=[1], gpus=[8], zero=[1], recompute=["full"],
               recompute_layers=[None, 2, 8])
    rows = sw.rows(np.where(sw.valid)[0])
    every = [r for r in rows if r["recompute_layers"] == 0]
    assert {(r["tp"], r["pp"]) for r in every} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    # 8 layers per chunk cover a 2-stage split's 8: a duplicate of the every-layer row, invalid
    assert {(r["pp"], r["recompute_layers"]) for r in rows if r["recompute_layers"]} == {(1, 2), (1, 8), (2, 2)}
    for row in every:
        plan = _plan_for(base, row)
        assert plan.parallelism.recompute_layers is None
        est = llmplan.estimate(plan)
        for key in ("time.step_seconds", "memory.per_gpu.total", "flops.per_step", "communication.tp_seconds"):
            assert row[key] == pytest.approx(float(est.value(key)), rel=1e-12), key


def test_the_fewest_recomputed_layers_that_fit():
    # the bisection's job: on a GPU whose memory lies between what 5 and what 4 recomputed
    # layers need, full(8) comes back as full(5) — faster, and still fitting
    from llmplan.search import fewest_recomputed_layers

    plan = llmplan.load(ROOT / "examples/llama3-8b-fp8-h100-partial-recompute.toml")

    def with_layers(p, n):
        return attrs.evolve(p, parallelism=attrs.evolve(p.parallelism, recompute_layers=n))

    need = {n: float(llmplan.estimate(with_layers(plan, n)).value("memory.per_gpu.total")) for n in (4, 5)}
    assert need[5] < need[4]
    gpu = attrs.evolve(plan.cluster.gpu, memory=(need[4] + need[5]) / 2)
    tight = with_layers(attrs.evolve(plan, cluster=attrs.evolve(plan.cluster, gpu=gpu)), 8)
    best, est = fewest_recomputed_layers(tight, llmplan.estimate(tight))
    assert best.parallelism.recompute_layers == 5 and est.fits
    assert float(est.value("time.step_seconds")) < float(llmplan.estimate(tight).value("time.step_seconds"))
    # nothing to do for full(1), every layer, or a plan that does not fit
    for p in (with_layers(tight, 1), with_layers(tight, None), attrs.evolve(tight, parallelism=attrs.evolve(tight.parallelism, zero=0))):
        assert fewest_recomputed_layers(p, llmplan.estimate(p))[0] is p


def test_search_reports_the_fewest_recomputed_layers_that_fit():
    from llmplan.search import search

    plan = llmplan.load(ROOT / "examples/llama3-8b-fp8-h100-partial-recompute.toml")
    plan = attrs.evolve(plan, method=attrs.evolve(plan.method, seq_len=16384, global_batch=64))
    out = search(plan, gpus=8, top=30)
    partial = [lay["parallelism"] for lay in out["layouts"] if lay["parallelism"]["recompute_layers"]]
    assert any(p["recompute_layers"] > 1 for p in partial)
    from llmplan.search import _plan_for

    for par in partial:
        row = {**par, "gpus": 8, "virtual_stages": par["virtual_stages"] or 1}
        p = _plan_for(plan, row)
        assert llmplan.estimate(p).fits
        if par["recompute_layers"] > 1:  # one fewer does not fit
            fewer = attrs.evolve(p, parallelism=attrs.evolve(p.parallelism, recompute_layers=par["recompute_layers"] - 1))
            assert not llmplan.estimate(fewer).fits


# --- recompute_method = "uniform": every layer recomputed, N at a time ---------------------------


def _uniform(n, **kw):
    plan = _plan(layers=n, **kw)
    return attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, recompute_method="uniform"))


@pytest.mark.parametrize("n, groups, last", [(1, 8, 1), (2, 4, 2), (3, 3, 2), (4, 2, 4), (5, 2, 3), (8, 1, 8), (20, 1, 8)])
def test_uniform_groups_by_hand(n, groups, last):
    # rank 0 holds 8 layers in 2 micro-batches, cut into groups of n (the last one `last`
    # layers), each storing its input only. The backward recomputes the last group first,
    # holding its layers' full activations with every group input stored (its own among
    # them), then each whole group with the last group's input freed: the larger of the two
    full, ckpt = _layer_bytes()
    transient = max(last * full - ckpt, (min(n, 8) * full - 2 * ckpt) if groups > 1 else 0)
    expected = 2 * groups * ckpt + transient
    est = llmplan.estimate(_uniform(n))
    assert float(est.value("memory.per_gpu.activations")) == pytest.approx(expected, rel=1e-12)
    assert float(est.value("memory.checkpoint_groups")) == groups


def test_uniform_recomputes_every_layer_and_one_at_a_time_is_full():
    every = llmplan.estimate(_plan(layers=None))
    for n in (1, 3, 8):
        est = llmplan.estimate(_uniform(n))
        for key in ("flops.per_step", "communication.tp_seconds"):  # every layer's forward repeated
            assert float(est.value(key)) == pytest.approx(float(every.value(key)), rel=1e-12)
    one = llmplan.estimate(_uniform(1))
    assert float(one.value("memory.per_gpu.total")) == pytest.approx(float(every.value("memory.per_gpu.total")), rel=1e-12)
    assert float(one.value("time.step_seconds")) == pytest.approx(float(every.value("time.step_seconds")), rel=1e-12)


def test_uniform_interleaved_chunks_are_grouped_apart():
    # pp = 2, v = 2: two chunks of 4 layers on rank 0; n = 3 → groups of 3 + 1 in each chunk
    full, ckpt = _layer_bytes()
    est = llmplan.estimate(_uniform(3, schedule="interleaved", virtual=2))
    assert float(est.value("memory.checkpoint_groups")) == 4
    # per chunk a group of 3 and a last group of 1: recomputing a whole group, the last one's input freed
    assert float(est.value("memory.per_gpu.activations")) == pytest.approx(2.5 * 4 * ckpt + (3 * full - 2 * ckpt), rel=1e-12)


def test_recompute_method_errors_and_round_trip():
    with pytest.raises(LlmplanError, match=r"recompute_method.*'blocks' is not allowed.*did you mean 'block'"):
        Parallelism(recompute="full", recompute_layers=2, recompute_method="blocks")
    est = llmplan.estimate(attrs.evolve(_plan(layers=None), parallelism=attrs.evolve(_plan(layers=None).parallelism, recompute_method="uniform")))
    assert any('recompute_method = "uniform" applies to recompute = "full" with recompute_layers' in w for w in est.warnings)
    plan = _uniform(2)
    text = llmplan.dump(plan)
    assert 'recompute_method = "uniform"' in text and llmplan.loads(text).parallelism == plan.parallelism


def test_a_sweep_of_uniform_groups_equals_the_scalar_estimates():
    from llmplan.search import _plan_for
    from llmplan.sweep import sweep

    base = _uniform(None)
    sw = sweep(base, tp=[2], pp=[1, 2], micro_batch=[1], gpus=[8], zero=[1], recompute=["full"], recompute_layers=[None, 2, 16])
    rows = sw.rows(np.where(sw.valid)[0])
    assert sorted((r["pp"], r["recompute_layers"]) for r in rows) == [(1, 0), (1, 2), (1, 16), (2, 0), (2, 2), (2, 16)]
    for row in rows:
        plan = attrs.evolve(_plan_for(base, row), parallelism=attrs.evolve(_plan_for(base, row).parallelism, recompute_method="uniform"))
        est = llmplan.estimate(plan)
        assert row["memory.per_gpu.total"] == pytest.approx(float(est.value("memory.per_gpu.total")), rel=1e-12)
