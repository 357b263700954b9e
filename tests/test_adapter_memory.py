"""Frozen-base bytes of LoRA / QLoRA plans: which weights are quantised, and that one GPU holds them all.

Expected numbers are derived by hand from the model cards' shapes and the QLoRA paper's
NF4 layout (Dettmers et al. 2023 §3: 4 bits + an 8-bit absmax per 64 weights + an fp32
constant per 256 absmaxes). The measurement against bitsandbytes itself is
``tests/oracle/test_oracle_qlora.py``.
"""

from __future__ import annotations

import pytest

import llmplan
from llmplan import PlanError, catalog
from llmplan.estimate import estimate, param_counts
from llmplan.plan import Cluster, LoRA, Method, Parallelism, Plan

NF4_DOUBLE_QUANT = 0.5 + 1 / 64 + 4 / (64 * 256)  # bytes per weight


def plan(model: str, kind: str = "qlora", **lora) -> Plan:
    return Plan(
        name="adapter memory",
        model=catalog.model(model),
        method=Method(kind=kind, tokens=1e6, seq_len=2048, global_batch=1, lora=LoRA(**lora) if kind != "pretrain" else None),
        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=1),
        parallelism=Parallelism(micro_batch=1, recompute="full"),
    )


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-3.1-8b", "mixtral-8x7b", "qwen3-30b-a3b", "dbrx"])
def test_one_gpu_holds_every_parameter(model):
    """With no parallelism the GPU holds the whole model, the final norm included."""
    est = estimate(plan(model, kind="pretrain"))
    held = est.value("memory.params_on_gpu.dense") + est.value("memory.params_on_gpu.experts")
    assert held == param_counts(est.plan.model).total


def test_mixtral_qlora_experts_stay_16_bit_by_default():
    """Mixtral 8x7B (model card: 32 layers, 8 experts of 3 × 4096 × 14336): transformers 5 +
    bitsandbytes keep the experts bf16; quantize_experts = true stores them as NF4."""
    experts = 32 * 8 * 3 * 4096 * 14336  # 45.1 B
    default = estimate(plan("mixtral-8x7b"))
    quantised = estimate(plan("mixtral-8x7b", quantize_experts=True))
    gap = default.value("memory.per_gpu.weights") - quantised.value("memory.per_gpu.weights")
    assert gap == pytest.approx(experts * (2 - NF4_DOUBLE_QUANT), rel=1e-12)
    assert not default.fits and quantised.fits
    # only quantised weights are dequantised in the step
    deq = default.value("time.dequant_seconds"), quantised.value("time.dequant_seconds")
    assert deq[0] < deq[1]
    # the default says what it assumed and how to change it; setting the key silences it
    assert any("quantize_experts = true" in w and "#1849" in w for w in default.warnings)
    assert not any("quantize_experts" in w for w in quantised.warnings)
    assert not any("quantize_experts" in w for w in estimate(plan("mixtral-8x7b", quantize_experts=False)).warnings)


def test_dense_qlora_and_16_bit_lora_ignore_quantize_experts():
    for model, kind in (("llama-2-7b", "qlora"), ("mixtral-8x7b", "lora")):
        a = estimate(plan(model, kind=kind))
        b = estimate(plan(model, kind=kind, quantize_experts=True))
        assert a.value("memory.per_gpu.weights") == b.value("memory.per_gpu.weights")
        assert not any("quantize_experts" in w for w in a.warnings)


BASE = """
name = "Mixtral QLoRA"
[model]
preset = "mixtral-8x7b"
[method]
kind = "qlora"
tokens = "1M"
seq_len = 2048
global_batch = 1
[method.lora]
rank = 16
{line}
[cluster]
gpu = "h100-sxm"
gpus = 1
"""


def test_quantize_experts_in_toml_round_trips_and_typos_are_named():
    p = llmplan.loads(BASE.format(line="quantize_experts = true"))
    assert p.method.lora.quantize_experts is True
    assert llmplan.loads(llmplan.dump(p)) == p
    with pytest.raises(PlanError) as err:
        llmplan.loads(BASE.format(line="quantise_experts = true"))
    assert "did you mean 'quantize_experts'?" in str(err.value)
