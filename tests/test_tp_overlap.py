"""Tensor-parallel communication overlapped with its GEMMs: ``[parallelism] tp_comm_overlap``.

Expected values are derived here by hand from the schedule of Transformer Engine's
ring-exchange overlap: the GEMM split into ``t`` chunks along the sequence, the local chunk
first, each of the ``t − 1`` transfers under one of the other chunks. Step time
``G/t + (t−1)·max(G/t, T/(t−1))``, so a collective of ``T`` seconds under a GEMM of ``G``
seconds is exposed for ``max(0, T − (t−1)/t·G)``. The collectives and GEMMs of a
sequence-parallel Megatron layer (Korthikanti et al. 2022 §4.2.2): the all-gather before
the fused QKV and the up/gate projection, the reduce-scatter after the attention output
and the down projection, the same pairs again in the backward.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan import catalog
from llmplan import symbols as S
from llmplan.errors import LlmplanError
from llmplan.formulas.comm import tp_overlap_exposed
from llmplan.model import Dense
from llmplan.plan import Cluster, Method, Parallelism, Plan, Precision

MODEL = Dense(layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000)  # gated (SwiGLU), MHA
SEQ = 4096


def _plan(*, overlap=True, tp=4, bandwidth=None, recompute="none", micro_batch=1, accum=2, model=MODEL) -> Plan:
    intra = catalog.link("nvlink4")
    if bandwidth is not None:
        intra = attrs.evolve(intra, bandwidth=bandwidth)
    dp = 8 // tp
    return Plan(
        model=model,
        method=Method(tokens=10**11, seq_len=SEQ, global_batch=dp * micro_batch * accum),
        precision=Precision(preset="bf16-mixed"),
        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=8, intra_node=intra),
        parallelism=Parallelism(tp=tp, micro_batch=micro_batch, recompute=recompute, tp_comm_overlap=overlap),
    )


def _hand(est, *, t=4, b=1, m=2, passes=2, h=4096, f=11008, layers=32):
    """The exposed TP seconds of the module docstring, from the plan's own link and GEMM rate."""
    W, alpha = float(est.values[S.W_tp]), float(est.values[S.alpha_tp])
    rate = float(est.values[S.F_peak]) * float(est.value("time.gemm_efficiency"))
    T = (t - 1) * alpha + (t - 1) / t * 2 * SEQ * b * h / W  # one all-gather / reduce-scatter of bf16 s·b·h
    gemms = {  # forward seconds of each GEMM on one GPU (column-parallel outputs / row-parallel inputs ÷ t)
        "qkv": 2 * SEQ * b * (3 * h // t) * h / rate,
        "attn_out": 2 * SEQ * b * h * (h // t) / rate,
        "mlp_up": 2 * SEQ * b * (2 * f // t) * h / rate,
        "mlp_down": 2 * SEQ * b * h * (f // t) / rate,
    }
    exposed = {k: max(0.0, T - (t - 1) / t * g) for k, g in gemms.items()}
    return T, gemms, exposed, m * layers * passes * sum(exposed.values())


def test_the_formula_is_the_ring_exchange_schedule():
    # T/(n−1) per transfer vs G/n per GEMM chunk: hidden while T ≤ (n−1)/n·G
    n, G = 4, 8.0
    for T in (0.0, 3.0, 6.0, 7.0, 20.0):
        schedule = G / n + (n - 1) * max(G / n, T / (n - 1))
        assert float(tp_overlap_exposed(T, G, n)) == pytest.approx(schedule - G, abs=1e-12)


def test_exposed_tp_time_by_hand_with_a_slow_link():
    # 150 GB/s: the up/gate projection (the largest GEMM) hides its all-gather, the other three
    # GEMMs are shorter than (4/3 of) their collectives
    est = llmplan.estimate(_plan(bandwidth=150e9))
    T, gemms, exposed, expected = _hand(est)
    assert exposed["mlp_up"] == 0 and min(exposed["qkv"], exposed["attn_out"], exposed["mlp_down"]) > 0
    assert float(est.value("communication.tp_exposed_seconds")) == pytest.approx(expected, rel=1e-9)
    # without overlap the same traffic is all exposed: 4 collectives × 2 passes × L × m
    assert float(est.value("communication.tp_seconds")) == pytest.approx(2 * 32 * 2 * 4 * T, rel=1e-9)
    off = llmplan.estimate(_plan(bandwidth=150e9, overlap=False))
    assert float(off.value("communication.tp_exposed_seconds")) == pytest.approx(2 * 32 * 2 * 4 * T, rel=1e-9)


def test_full_recompute_adds_the_recomputed_forward_s_pairs():
    est = llmplan.estimate(_plan(bandwidth=150e9, recompute="full"))
    *_, expected = _hand(est, passes=3)
    assert float(est.value("communication.tp_exposed_seconds")) == pytest.approx(expected, rel=1e-9)


def test_nvlink_hides_it_for_a_70b_shape_and_the_step_shrinks_by_the_tp_time():
    # h = 8192 (Llama-2-70B's width, 4 layers): every GEMM outlasts 4/3 of its collective on NVLink 4
    # — the GEMMs grow with h², the collectives with h (at h = 4096 the attention output's does not hide)
    big = Dense(layers=4, hidden=8192, heads=64, ffn=28672, vocab=32000)
    on, off = llmplan.estimate(_plan(model=big)), llmplan.estimate(_plan(model=big, overlap=False))
    T, gemms, exposed, expected = _hand(on, h=8192, f=28672, layers=4)
    assert expected == 0 and float(on.value("communication.tp_exposed_seconds")) == 0
    saved = float(off.value("time.step_seconds")) - float(on.value("time.step_seconds"))
    assert saved == pytest.approx(float(off.value("communication.tp_seconds")), rel=1e-9)
    assert saved > 0


def test_moe_mlp_half_stays_exposed():
    moe = catalog.model("mixtral-8x7b")
    plan = attrs.evolve(_plan(), model=moe)
    est = llmplan.estimate(plan)
    W, alpha = float(est.values[S.W_tp]), float(est.values[S.alpha_tp])
    rate = float(est.values[S.F_peak]) * float(est.value("time.gemm_efficiency"))
    h, d, t = moe.hidden, moe.hidden // moe.heads, 4
    T = 3 * alpha + 3 / 4 * 2 * SEQ * h / W
    # the attention pair overlaps its GEMMs (GQA: q, k, v of 32 + 2 × 8 heads of 128); the MoE
    # half's all-gather and reduce-scatter (its token dispatch) count in full
    g_qkv = 2 * SEQ * (moe.heads + 2 * moe.n_kv_heads) * d // t * h / rate
    g_out = 2 * SEQ * h * (moe.heads * d // t) / rate
    per_pass = max(0.0, T - 0.75 * g_qkv) + max(0.0, T - 0.75 * g_out) + 2 * T
    assert per_pass < 4 * T  # the attention pair hides some of its time
    assert float(est.value("communication.tp_exposed_seconds")) == pytest.approx(2 * moe.layers * 2 * per_pass, rel=1e-9)


def test_needs_sequence_parallelism():
    with pytest.raises(LlmplanError, match=r"tp_comm_overlap.*sequence_parallel = false"):
        Parallelism(tp=4, sequence_parallel=False, tp_comm_overlap=True)
    with pytest.raises(LlmplanError, match=r"tp_comm_overlap.*framework = \"hf\""):
        Parallelism(tp=4, framework="hf", tp_comm_overlap=True)
    with pytest.raises(LlmplanError, match=r"tp_comm_overlap.*'yes' is not true or false"):
        Parallelism(tp=4, tp_comm_overlap="yes")
    # tp = 1: nothing to overlap, allowed and free
    est = llmplan.estimate(_plan(tp=1))
    assert float(est.value("communication.tp_exposed_seconds")) == 0


def test_round_trips_through_toml():
    from llmplan.serialize import dump, loads

    text = dump(_plan())
    assert "tp_comm_overlap = true" in text
    assert loads(text).parallelism == _plan().parallelism


@settings(max_examples=40, deadline=None)
@given(bandwidth=st.floats(1e9, 1e12), tp=st.sampled_from([2, 4, 8]), micro_batch=st.sampled_from([1, 2]))
def test_overlap_never_costs_more_than_none(bandwidth, tp, micro_batch):
    on = llmplan.estimate(_plan(bandwidth=bandwidth, tp=tp, micro_batch=micro_batch, accum=1))
    off = llmplan.estimate(_plan(bandwidth=bandwidth, tp=tp, micro_batch=micro_batch, accum=1, overlap=False))
    x, full = float(on.value("communication.tp_exposed_seconds")), float(off.value("communication.tp_seconds"))
    assert 0 <= x <= full * (1 + 1e-12)
    assert float(on.value("time.step_seconds")) <= float(off.value("time.step_seconds")) * (1 + 1e-12)


def test_a_sweep_carries_the_overlap_and_equals_the_scalar_estimates():
    from llmplan.search import _plan_for
    from llmplan.sweep import sweep

    base = attrs.evolve(_plan(bandwidth=150e9), method=Method(tokens=10**11, seq_len=SEQ, global_batch=64), cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=16,
                                                                  intra_node=attrs.evolve(catalog.link("nvlink4"), bandwidth=150e9)))
    sw = sweep(base, tp=[1, 2, 4, 8], pp=[1, 2], micro_batch=[1], gpus=[16], zero=[1], recompute=["none", "full"])
    rows = sw.rows(np.where(sw.valid)[0])
    assert {r["tp"] for r in rows} == {1, 2, 4, 8}
    for row in rows:
        plan = _plan_for(base, row)
        assert plan.parallelism.tp_comm_overlap is True
        est, off = llmplan.estimate(plan), llmplan.estimate(attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, tp_comm_overlap=False)))
        assert row["time.step_seconds"] == pytest.approx(float(est.value("time.step_seconds")), rel=1e-9)
        if row["tp"] > 1:  # the slow link leaves some TP time exposed, less than without the overlap
            assert 0 < float(est.value("communication.tp_exposed_seconds")) < float(off.value("communication.tp_seconds"))


def test_search_reports_the_overlap_where_it_acts():
    from llmplan.search import search

    base = attrs.evolve(_plan(), method=Method(tokens=10**11, seq_len=SEQ, global_batch=64),
                        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=16))
    out = search(base, gpus=16, top=20)
    layouts = out["layouts"] + out["pareto"]
    assert {lay["parallelism"]["tp"] for lay in layouts} > {1}
    for lay in layouts:
        par = lay["parallelism"]
        assert par["tp_comm_overlap"] == (par["tp"] > 1 and par["sequence_parallel"])
