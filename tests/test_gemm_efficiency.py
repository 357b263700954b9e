"""The GEMM-shape efficiency model (llmplan.formulas.time: tile_efficiency, gemm_seconds,
gemm_efficiency): hand-derived tile/wave quantisation and roofline cases, and invariants."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan import symbols as S
from llmplan.bindings import evaluate
from llmplan.formulas.flops import gemm_shapes
from llmplan.formulas.time import gemm_seconds, tile_efficiency
from llmplan.plan import Cluster, Method, Parallelism, Plan
from tests.plans import GPU_A100, make_plan

A100 = attrs.evolve(GPU_A100, sms=108)


def _plan(**kw):
    plan = make_plan(**kw)
    return attrs.evolve(plan, cluster=attrs.evolve(plan.cluster, gpu=A100))


def _tile_eff(rows, cols, count, sms):
    return float(evaluate(tile_efficiency(rows, cols, count), {S.n_sm: sms}))


def test_tile_and_wave_quantisation_by_hand():
    # 2048 tokens × 2304 outputs on an H100 (132 SMs):
    #   128×128 tiles: 16 × 18 = 288 tiles → ⌈288/132⌉ = 3 waves → 288 / 396 = 0.7273
    #   128×256 tiles: 16 × 9 = 144 tiles → 2 waves → 144 / 264 = 0.5455 (256×128: 8 × 18, the same)
    # the best tile wins
    assert _tile_eff(2048, 2304, 1, 132) == pytest.approx(288 / 396, rel=1e-12)
    # A GEMM that fills whole waves exactly: 108 SMs (A100), 128×128 tiles, 12 × 9 = 108 tiles → 1.0
    assert _tile_eff(12 * 128, 9 * 128, 1, 108) == pytest.approx(1.0)
    # tile quantisation alone: 100 rows in a 128-row tile, one SM: 100/128 of the tile's slots
    assert _tile_eff(100, 128, 1, 1) == pytest.approx(100 / 128)
    # fewer tiles than SMs: split-K fills the machine. 4 experts × 256 tokens × 1024 outputs on 132 SMs,
    # 128×128 tiles: 4·2·8 = 64 tiles → split in ⌊132/64⌋ = 2 → 128 of 132 SMs busy
    assert _tile_eff(256, 1024, 4, 132) == pytest.approx(128 / 132)


def test_memory_bound_gemm_follows_the_roofline():
    # a decode-like GEMM: 1 token × 8192 → 8192 in bf16 on an H100 (3.35 TB/s, 989.4 TFLOP/s, η 0.6)
    values = {S.n_sm: 132, S.q_a: 2, S.W_hbm: 3.35e12, S.F_peak: 989.4e12, S.eta_gemm: 0.6}
    t = float(evaluate(gemm_seconds(1, 8192, 8192), values))
    bytes_moved = 2 * (1 * 8192 + 8192 * 8192 + 1 * 8192)
    assert t == pytest.approx(bytes_moved / 3.35e12, rel=1e-12)
    # a large square GEMM is compute-bound: 2·8192³ / (peak · η) — whole waves (64·64 tiles = 4096 = 31.03 waves
    # on 132 SMs: 32 waves, so 4096/4224 of the slots are used)
    t = float(evaluate(gemm_seconds(8192, 8192, 8192), values))
    assert t == pytest.approx(2 * 8192**3 / (989.4e12 * 0.6 * (4096 / 4224)), rel=1e-12)


def test_unfused_attention_core_is_memory_bound_on_h100():
    # QKᵀ for one head, s = 4096, d = 128, bf16: 2·s²·d FLOPs over 2·(2·s·d + s²) bytes = 113.8 FLOP/B,
    # below the H100's ridge 989.4e12 / 3.35e12 = 295 FLOP/B → memory-bound
    s, d = 4096, 128
    values = {S.n_sm: 132, S.q_a: 2, S.W_hbm: 3.35e12, S.F_peak: 989.4e12, S.eta_gemm: 0.6}
    t = float(evaluate(gemm_seconds(s, s, d), values))
    assert t == pytest.approx(2 * (2 * s * d + s * s) / 3.35e12, rel=1e-12)


def test_shapes_follow_the_layout():
    plan = llmplan.load("examples/llama2-70b-pretrain.toml")
    est = llmplan.estimate(plan)
    shapes = {g.name: g for g in gemm_shapes(plan.model, flash=True)}
    v = est.values
    # Llama 2 70B, tp 8, micro-batch 1 × 4096 tokens: fused QKV (64 + 2·8)·128/8 = 1280 outputs from 8192
    assert [evaluate(x, v) for x in (shapes["qkv"].rows, shapes["qkv"].cols, shapes["qkv"].inner)] == [4096, 1280, 8192]
    assert evaluate(shapes["mlp_up"].cols, v) == 2 * 28672 // 8
    assert evaluate(shapes["lm_head"].cols, v) == 32000 / 8
    assert "scores" not in shapes
    eager = {g.name for g in gemm_shapes(plan.model, flash=False)}
    assert {"scores", "scores_v"} <= eager


def test_moe_experts_are_a_grouped_gemm_of_routed_tokens():
    plan = Plan(
        model=llmplan.catalog.model("mixtral-8x7b"),
        method=Method(tokens=1e9, seq_len=4096, global_batch=64),
        cluster=Cluster(gpu=A100, gpus=16),
        parallelism=Parallelism(ep=8),
    )
    est = llmplan.estimate(plan)
    g = {x.name: x for x in gemm_shapes(plan.model)}["experts_up"]
    # 4096 tokens × top-2 × ep 8 / 8 experts = 8192 tokens per expert; 8/8 = 1 expert per GPU
    assert evaluate(g.rows, est.values) == 4096 * 2 * 8 / 8
    assert evaluate(g.count, est.values) == 1


@settings(max_examples=40, deadline=None)
@given(
    tp=st.sampled_from([1, 2, 4, 8]),
    micro_batch=st.sampled_from([1, 2, 4]),
    seq_len=st.sampled_from([512, 1000, 2048, 4096]),
    flash=st.booleans(),
)
def test_shape_efficiency_never_exceeds_the_large_gemm_efficiency(tp, micro_batch, seq_len, flash):
    plan = _plan(gpus=8, tp=tp, micro_batch=micro_batch, seq_len=seq_len, flash=flash)
    est = llmplan.estimate(plan)
    eta = est.value("time.gemm_efficiency")
    # never above the large-GEMM η_gemm the plan binds (the test GPU has no mamf: 0.652)
    assert 0 < eta <= est.values[S.eta_gemm] + 1e-12
    assert est.values[S.eta_gemm] == 0.652


def test_smaller_micro_batches_are_not_more_efficient_per_flop():
    # fewer tokens per GEMM: more quantisation loss, never less compute time per FLOP (tp 8 splits to thin GEMMs)
    effs = [
        llmplan.estimate(_plan(gpus=8, tp=8, micro_batch=1, seq_len=n)).value("time.gemm_efficiency")
        for n in (128, 1024, 8192)
    ]
    assert effs[0] < effs[2]
    assert all(not math.isnan(x) for x in effs)


def test_gpu_without_sm_count_keeps_tile_quantisation_only():
    # sms unknown → n_sm = 1: ⌈tiles/1⌉·1 = tiles, so only tile (not wave) quantisation remains
    assert _tile_eff(2048, 2304, 1, 1) == pytest.approx(1.0)
    assert _tile_eff(2000, 2304, 1, 1) == pytest.approx(2000 / 2048)


def test_calibration_removes_the_modelled_quantisation():
    from llmplan.calibrate import large_gemm_efficiency

    # measured 0.5 of a 1e15 peak on 2048 × 2304 outputs with 132 SMs, whose tile efficiency is 288/396
    # (hand derivation above): the large-GEMM efficiency that reproduces it is 0.5 ÷ (288/396) = 0.6875
    shape = {"m": 2048, "k": 4096, "n": 2304, "flops_per_second": 0.5e15}
    assert large_gemm_efficiency([shape], 1e15, 132) == pytest.approx(0.5 * 396 / 288)
    # a shape that fills whole waves is taken as measured
    shape = {"m": 12 * 128, "k": 4096, "n": 9 * 128, "flops_per_second": 0.7e15}
    assert large_gemm_efficiency([shape], 1e15, 108) == pytest.approx(0.7)


def test_fp8_keeps_the_output_head_at_the_bf16_rate():
    """FP8 recipes keep the LM head in BF16 (DeepSeek-V3 §3.3.1, OLMo-core, llm-foundry, Megatron).

    Hand derivation on a GPU without an SM count (tile quantisation only) whose every GEMM
    dimension is a multiple of 256 (no quantisation loss) and whose memory never binds:
    per token, the layers' GEMMs are 2·1024·(3072 + 1024 + 4096 + 2048) = 20,971,520 FLOPs
    each (fused QKV, output, gate+up, down), two layers 41,943,040; the head 2·1024·32768 =
    67,108,864. Forward, input- and weight-gradient passes scale both alike. The layers run
    at the FP8 peak (2000 TFLOP/s), the head at the BF16 peak (1000), both at η 0.6, so the
    FP8-equivalent rate of the mix is 0.6·(41.9M + 67.1M) / (41.9M + 2·67.1M).
    """
    from llmplan.catalog import GPU
    from llmplan.model import Dense
    from llmplan.plan import Efficiency, Precision

    gpu = GPU(id="test-fp8", name="test FP8 GPU", memory=80 * 2**30, memory_bandwidth=1e18,
              peak={"bf16": 1000e12, "fp8": 2000e12}, nvlink_domain=8, gpus_per_node=8,
              intra_node="nvlink4", inter_node="ib-ndr", tdp=700, arch="Hopper")
    model = Dense(layers=2, hidden=1024, heads=8, ffn=2048, vocab=32768)

    def eta(preset):
        plan = Plan(model=model, method=Method(tokens=10**9, seq_len=2048, global_batch=8),
                    precision=Precision(preset=preset), cluster=Cluster(gpu=gpu, gpus=8),
                    parallelism=Parallelism(micro_batch=1), efficiency=Efficiency(gemm=0.6))
        return llmplan.estimate(plan).value("time.gemm_efficiency")

    layers, head = 2 * 2 * 1024 * (3072 + 1024 + 4096 + 2048), 2 * 1024 * 32768
    assert eta("bf16-mixed") == pytest.approx(0.6, rel=1e-12)
    assert eta("fp8-mixed") == pytest.approx(0.6 * (layers + head) / (layers + 2 * head), rel=1e-12)
