"""MXFP4 weights and ``[method] quant_scope`` (serving): expected bytes derived by hand."""

from __future__ import annotations

import pytest

from llmplan import PlanError, catalog

from test_serving import HUGE, serve, value

GPT_OSS_20B = catalog.model("gpt-oss-20b")


def test_gpt_oss_20b_mxfp4_experts_bf16_rest():
    """The published checkpoint: routed experts in MXFP4 (4-bit E2M1 + one E8M0 byte per 32:
    0.5 + 1/32 bytes per weight), attention, router, embedding, head, norms, biases and
    sinks in BF16."""
    h, a, kv, d, f, E, L, V = 2880, 64, 8, 64, 2880, 32, 24, 201088
    experts_linear = L * E * 3 * h * f
    attention_linear = L * (h * a * d + 2 * h * kv * d + a * d * h)
    small = L * ((a * d + 2 * kv * d + h) + a + (h * E + E) + 2 * h + E * (2 * f + h))
    head = 2 * V * h + h
    expected = experts_linear * (0.5 + 1 / 32) + 2 * (attention_linear + small + head)
    plan = serve(GPT_OSS_20B, gpu=HUGE, seq_len=4096, weights="mxfp4", quant_scope="experts")
    assert value(plan, "memory.per_gpu.weights") == pytest.approx(expected, rel=1e-12)
    # the model card: "can run within 16GB of memory" (weights 13.8 GB here, 12.8 GiB)
    assert 13.7e9 < expected < 13.8e9
    # quantising every linear layer instead would also pack the attention (0.64B weights)
    every = value(serve(GPT_OSS_20B, gpu=HUGE, seq_len=4096, weights="mxfp4"), "memory.per_gpu.weights")
    assert expected - every == pytest.approx(attention_linear * (2 - 0.5 - 1 / 32), rel=1e-12)


def test_experts_scope_needs_experts():
    with pytest.raises(PlanError, match="quant_scope"):
        value(serve("llama-3.1-8b", weights="int4", quant_scope="experts"), "memory.per_gpu.weights")
    with pytest.raises(PlanError, match="quant_scope"):
        serve("llama-3.1-8b", weights="int4", quant_scope="attention")
