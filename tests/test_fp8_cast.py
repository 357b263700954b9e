"""FP8 operand casts (llmplan.formulas.time.fp8_cast_bytes): hand-derived bytes and where they apply."""

from __future__ import annotations

import attrs
import pytest

from llmplan import catalog
from llmplan.estimate import estimate
from llmplan.formulas.time import FP8_EXCLUDED_GEMMS
from llmplan.model import Dense, Experts, MoE
from llmplan.plan import Parallelism, Precision
from tests.plans import llama7b_h100_plan


def _fp8(plan, **par):
    return attrs.evolve(
        plan,
        precision=Precision(compute="fp8"),
        parallelism=attrs.evolve(plan.parallelism, **par) if par else plan.parallelism,
    )


def test_llama2_7b_cast_bytes_by_hand():
    # Llama 2 7B (h 4096, ffn 11008, 32 layers, MHA), 64 H100, 4 Mi-token batches of 4096-token
    # sequences: 1024 sequences ÷ dp 64 = m = 16 micro-batches of one sequence, p = 1.
    # FP8 GEMMs (K inputs → N outputs): qkv 4096 → 12288, attn_out 4096 → 4096,
    # gate/up 4096 → 22016, down 11008 → 4096; the LM head stays BF16.
    k_plus_n = (4096 + 12288) + (4096 + 4096) + (4096 + 22016) + (11008 + 4096)
    assert k_plus_n == 65792
    k_times_n = 4096 * 12288 + 4096 * 4096 + 4096 * 22016 + 11008 * 4096
    # per micro-batch: input and output gradient, read 2 B + written 1 B + transposed 1 B
    per_mb = 32 * 4 * 4096 * k_plus_n
    # per step: each weight once (FP8 weight cache across micro-batches)
    per_step = 32 * 4 * k_times_n
    expected_bytes = 16 * per_mb + per_step  # 5.78e11 B
    est = estimate(_fp8(llama7b_h100_plan()))
    assert float(est.value("time.fp8_cast_seconds")) == pytest.approx(expected_bytes / 3.35e12, rel=1e-12)
    assert expected_bytes == pytest.approx(5.78e11, rel=2e-3)


def test_cast_time_is_part_of_compute_and_only_under_fp8():
    bf16 = estimate(llama7b_h100_plan())
    assert "time.fp8_cast_seconds" not in bf16.keys()
    plan = _fp8(llama7b_h100_plan())
    est = estimate(plan)
    cast = float(est.value("time.fp8_cast_seconds"))
    # the compute time is its GEMM/core/elementwise parts plus the casts: evaluating the
    # compute expression with the cast time zeroed removes exactly that much
    from llmplan.bindings import evaluate

    q = est.definitions.items["time.fp8_cast_seconds"]
    expr = est.definitions.items["time.compute_seconds"].expr
    without = dict(est.values)
    without[q.symbol] = 0.0
    assert float(est.value("time.compute_seconds")) - float(evaluate(expr, without)) == pytest.approx(cast, rel=1e-12)


def test_pipeline_stages_and_tensor_parallelism_divide_the_bytes():
    plan = _fp8(llama7b_h100_plan())
    base = float(estimate(plan).value("time.fp8_cast_seconds"))
    # pp = 2 with the same micro-batch count per pipeline: each GPU holds half the layers
    # (dp halves, so m doubles: 1024 ÷ 32 = 32 micro-batches); per_mb part: 32 mb × 16 layers
    # = 16 mb × 32 layers, weights: half → (16·per_mb + per_step/2)
    pp2 = float(estimate(_fp8(llama7b_h100_plan(), pp=2)).value("time.fp8_cast_seconds"))
    k_plus_n, k_times_n = 65792, 4096 * 12288 + 4096 * 4096 + 4096 * 22016 + 11008 * 4096
    per_mb, per_step = 32 * 4 * 4096 * k_plus_n, 32 * 4 * k_times_n
    assert base == pytest.approx((16 * per_mb + per_step) / 3.35e12, rel=1e-12)
    assert pp2 == pytest.approx((32 * per_mb / 2 + per_step / 2) / 3.35e12, rel=1e-12)
    # tp = 2: each GPU casts the full tokens but half of every GEMM's sharded side
    tp2 = float(estimate(_fp8(llama7b_h100_plan(), tp=2)).value("time.fp8_cast_seconds"))
    k_plus_n_tp2 = (4096 + 6144) + (2048 + 4096) + (4096 + 11008) + (5504 + 4096)
    k_times_n_tp2 = k_times_n // 2
    m_tp2 = 1024 // 32  # dp 32
    assert tp2 == pytest.approx((m_tp2 * 32 * 4 * 4096 * k_plus_n_tp2 + 32 * 4 * k_times_n_tp2) / 3.35e12, rel=1e-12)


def test_moe_router_and_head_stay_bf16():
    assert FP8_EXCLUDED_GEMMS == {"router", "shared_gate", "lm_head"}
    # a one-layer MoE: h 64, 4 experts of ffn 32 (gated), top-2, one GPU, one micro-batch of 8 tokens
    model = MoE(layers=1, hidden=64, heads=4, ffn=32, vocab=100, moe=Experts(experts=4, top_k=2, expert_ffn=32))
    plan = attrs.evolve(
        llama7b_h100_plan(),
        model=model,
        method=attrs.evolve(llama7b_h100_plan().method, seq_len=8, global_batch_tokens=8),
        cluster=attrs.evolve(llama7b_h100_plan().cluster, gpus=1),
        parallelism=Parallelism(),
        precision=Precision(compute="fp8"),
    )
    est = estimate(plan)
    # qkv 64 → 192, attn_out 64 → 64; 4 experts, each 8·2/4 = 4 tokens: up 64 → 64, down 32 → 64
    per_mb = 4 * 8 * ((64 + 192) + (64 + 64)) + 4 * 4 * 4 * ((64 + 64) + (32 + 64))
    per_step = 4 * (64 * 192 + 64 * 64) + 4 * 4 * (64 * 64 + 32 * 64)
    assert float(est.value("time.fp8_cast_seconds")) == pytest.approx((per_mb + per_step) / 3.35e12, rel=1e-12)


def test_dense_gpt_without_flash_casts_no_attention_scores():
    # the unfused attention core's batched GEMMs multiply activations, not weights: BF16, no cast
    model = Dense(layers=1, hidden=64, heads=4, ffn=256, vocab=100, mlp="gelu")
    plan = attrs.evolve(
        llama7b_h100_plan(),
        model=model,
        method=attrs.evolve(llama7b_h100_plan().method, seq_len=16, global_batch_tokens=16),
        cluster=attrs.evolve(llama7b_h100_plan().cluster, gpus=1),
        parallelism=Parallelism(flash_attention=False),
        precision=Precision(compute="fp8"),
    )
    est = estimate(plan)
    per_mb = 4 * 16 * ((64 + 192) + (64 + 64) + (64 + 256) + (256 + 64))
    per_step = 4 * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64)
    assert float(est.value("time.fp8_cast_seconds")) == pytest.approx((per_mb + per_step) / catalog.gpu("h100-sxm").memory_bandwidth, rel=1e-12)


def test_fp8_compute_caches_linear_inputs_in_fp8_by_default():
    from llmplan.plan import Precision as P

    assert P(preset="fp8-mixed").dtype("linear_inputs") == "fp8"
    assert P(compute="fp8").dtype("linear_inputs") == "fp8"
    assert P().dtype("linear_inputs") == "bf16"
    assert P(preset="fp8-mixed", linear_inputs="bf16").dtype("linear_inputs") == "bf16"
    base = llama7b_h100_plan()
    layer = {}
    for name, prec in {
        "fp8 default": P(preset="fp8-mixed"),
        "fp8 explicit": P(preset="fp8-mixed", linear_inputs="fp8"),
        "fp8, bf16 inputs": P(preset="fp8-mixed", linear_inputs="bf16"),
    }.items():
        est = estimate(attrs.evolve(base, precision=prec, parallelism=Parallelism(zero=1, recompute="none")))
        layer[name] = float(est.value("memory.activations_per_layer"))
    assert layer["fp8 default"] == layer["fp8 explicit"]
    # Llama 2 7B, one 4096-token sequence per micro-batch, tp 1: the Linear inputs cached in
    # FP8 instead of BF16 are the attention input (h), the MLP input (h) and the
    # down-projection input (ffn), one byte less each (the output projection's input stays)
    assert layer["fp8, bf16 inputs"] - layer["fp8 default"] == 4096 * (4096 + 4096 + 11008)
