"""``[parallelism] framework``: Megatron-LM (Korthikanti) vs Hugging Face activation accounting.

The expected bytes are derived by hand below, tensor by tensor, from what each module of a
transformers Llama layer hands to ``save_for_backward`` (bf16 weights and activations,
SDPA/FlashAttention). The same derivation reproduces the per-layer bytes measured with
``saved_tensors_hooks`` in ``tests/oracle/test_oracle_activations.py`` (its docstring table:
1,513,472 bytes for the reduced Llama, bf16, SDPA), which checks the derivation itself.
"""

from __future__ import annotations

import attrs
import pytest
from plans import GPU_A100, NET, NVLINK

import llmplan
from llmplan import PlanError
from llmplan.estimate import _structure_key
from llmplan.model import Dense
from llmplan.plan import Cluster, Method, Parallelism, Plan

# a small Llama-like layer: RMSNorm, SwiGLU, GQA (4 query heads, 2 KV heads of 16), RoPE, untied head
L, H, A, A_KV, F, V = 2, 64, 4, 2, 160, 256
D = H // A
S, B = 32, 2  # tokens per sequence, sequences per micro-batch
Q_A = 2  # bf16
SMALL = Dense(layers=L, hidden=H, heads=A, kv_heads=A_KV, ffn=F, vocab=V)


def hf_layer_bytes(*, h, a, a_kv, d, f, s, b, q_a=2) -> int:
    """Bytes one transformers Llama layer saves for backward (bf16, SDPA), written out by hand."""
    sb = s * b
    rmsnorm = (
        4 * sb * h  # hidden_states.to(float32): the fp32 copy pow(2) and the rsqrt multiply save
        + 4 * sb  # torch.rsqrt(variance + eps): one fp32 scalar per token
        + q_a * sb * h  # x̂ cast back to bf16, saved by `self.weight * x̂` for the weight's gradient
        + q_a * sb * h  # the norm's output, saved by the projections that read it
    )
    attention = (
        q_a * sb * a * d  # Q after RoPE (SDPA input)
        + q_a * sb * a_kv * d  # K after RoPE
        + q_a * sb * a_kv * d  # V
        + q_a * sb * a * d  # SDPA output = o_proj input
        + 4 * sb * a  # the fused kernel's fp32 log-sum-exp, one per query and head
    )
    swiglu = q_a * sb * f * 4  # gate_proj out (for SiLU), SiLU(gate), up_proj out, their product (down_proj input)
    return 2 * rmsnorm + attention + swiglu


def megatron_layer_bytes(*, h, a, a_kv, d, f, s, b, q_a=2) -> int:
    """Korthikanti et al. 2022 Table 1 for the same layer (no dropout, FlashAttention), by hand."""
    sb = s * b
    norms = 2 * q_a * sb * h  # the two norms' inputs
    attention = q_a * sb * h + q_a * sb * (a * d + a_kv * d + a_kv * d + a * d)  # QKV input; Q, K, V, o_proj input
    mlp = q_a * sb * h + 3 * q_a * sb * f  # MLP input; gate, up, product
    return norms + attention + mlp


def test_the_hand_derivation_reproduces_the_oracle_measurement():
    # tests/oracle/test_oracle_activations.py: reduced Llama (h 128, GQA 4/2, f 384, s 128, b 2)
    assert hf_layer_bytes(h=128, a=4, a_kv=2, d=32, f=384, s=128, b=2) == 1_513_472  # measured, bf16 SDPA
    assert megatron_layer_bytes(h=128, a=4, a_kv=2, d=32, f=384, s=128, b=2) == 1_048_576  # Korthikanti


def plan(framework: str = "megatron", *, recompute: str = "none", flash: bool = True, model=SMALL) -> Plan:
    return Plan(
        model=model,
        method=Method(tokens=10**6, seq_len=S, global_batch=4 * B),  # m = 4 micro-batches
        cluster=Cluster(gpu=GPU_A100, gpus=1, intra_node=NVLINK, inter_node=NET),
        parallelism=Parallelism(micro_batch=B, recompute=recompute, flash_attention=flash, framework=framework),
    )


HF_LAYER = hf_layer_bytes(h=H, a=A, a_kv=A_KV, d=D, f=F, s=S, b=B)
MEGATRON_LAYER = megatron_layer_bytes(h=H, a=A, a_kv=A_KV, d=D, f=F, s=S, b=B)
LOGITS = (Q_A + 4) * S * B * V  # logits in bf16 + their fp32 log-softmax, on the only stage


def test_hand_numbers():
    # norms 2·(16384 + 256 + 8192 + 8192) + attention (8192 + 4096 + 4096 + 8192 + 1024) + SwiGLU 4·20480
    assert HF_LAYER == 66_048 + 25_600 + 81_920 == 173_568
    assert MEGATRON_LAYER == 118_784


def test_default_framework_is_megatron():
    assert Parallelism().framework == "megatron"
    r = llmplan.estimate(plan()).results
    assert r["memory.activations_per_layer"] == MEGATRON_LAYER


def test_hf_framework_activation_memory_equals_the_hand_derivation():
    r = llmplan.estimate(plan("hf")).results
    assert r["memory.activations_per_layer"] == HF_LAYER
    assert r["memory.activations_per_layer_no_recompute"] == HF_LAYER
    # 1F1B with pp = 1 holds one micro-batch: L layers + the logits buffer
    assert r["memory.per_gpu.activations"] == L * HF_LAYER + LOGITS == 445_440


def test_hf_framework_with_full_recompute():
    # each layer keeps its bf16 input; the layer being recomputed holds everything HF saves again
    r = llmplan.estimate(plan("hf", recompute="full")).results
    layer_input = Q_A * S * B * H
    assert r["memory.activations_per_layer"] == layer_input
    assert r["memory.per_gpu.activations"] == L * layer_input + (HF_LAYER - layer_input) + LOGITS == 280_064


def test_hf_framework_feeds_the_elementwise_time():
    # time.elementwise_seconds makes κ passes over A_0 (docs/concepts.md): it scales with A_0
    meg = llmplan.estimate(plan()).results["time.elementwise_seconds"]
    hf = llmplan.estimate(plan("hf")).results["time.elementwise_seconds"]
    assert hf / meg == pytest.approx(HF_LAYER / MEGATRON_LAYER, rel=1e-12)


def test_definitions_cache_distinguishes_frameworks_and_hf_model_types():
    assert _structure_key(plan()) != _structure_key(plan("hf"))
    # evaluated one after the other, each gets its own definitions
    assert llmplan.estimate(plan()).results["memory.activations_per_layer"] == MEGATRON_LAYER
    assert llmplan.estimate(plan("hf")).results["memory.activations_per_layer"] == HF_LAYER
    assert llmplan.estimate(plan()).results["memory.activations_per_layer"] == MEGATRON_LAYER
    # eager attention: the HF terms follow the model type (GPT-2 runs its softmax in bf16, others
    # keep a 4·a·s²·b fp32 softmax output besides the bf16 copy)
    llama = plan("hf", flash=False, model=attrs.evolve(SMALL, hf_model_type="llama"))
    gpt2 = plan("hf", flash=False, model=attrs.evolve(SMALL, hf_model_type="gpt2"))
    assert _structure_key(llama) != _structure_key(gpt2)
    diff = llmplan.estimate(llama).results["memory.activations_per_layer"] - llmplan.estimate(gpt2).results["memory.activations_per_layer"]
    assert diff == 4 * A * S * S * B
    # megatron ignores the model type, and shares one cache entry
    assert _structure_key(plan(flash=False, model=llama.model)) == _structure_key(plan(flash=False, model=gpt2.model))


TOML = """
[model]
layers = 2
hidden = 64
heads = 4
kv_heads = 2
ffn = 160
vocab = 256
[method]
tokens = "1M"
seq_len = 32
global_batch = 8
[cluster]
gpu = "a100-80gb-sxm"
gpus = 1
[parallelism]
micro_batch = 2
framework = "hf"
"""


def test_framework_round_trips_toml_and_python():
    p = llmplan.loads(TOML)
    assert p.parallelism.framework == "hf"
    text = llmplan.dump(p)
    assert 'framework = "hf"' in text
    assert llmplan.loads(text) == p
    python = attrs.evolve(p, parallelism=Parallelism(micro_batch=2, framework="hf"))
    assert python == p
    assert llmplan.estimate(p).results["memory.activations_per_layer"] == HF_LAYER
    # a phase may switch it too
    phased = llmplan.loads(TOML + '[[phase]]\ntokens = "1M"\n[phase.parallelism]\nframework = "megatron"\n')
    assert phased.phases[0].parallelism == {"framework": "megatron"}
    assert llmplan.loads(llmplan.dump(phased)) == phased


def test_bad_framework_names_key_value_and_allowed_values():
    with pytest.raises(PlanError) as info:
        llmplan.loads(TOML.replace('framework = "hf"', 'framework = "deepspeed"'))
    assert [str(p) for p in info.value.problems] == [
        "parallelism.framework: 'deepspeed' is not allowed (allowed: megatron, hf)"
    ]
    with pytest.raises(PlanError) as info:
        llmplan.loads(TOML.replace('framework = "hf"', "framework = 1"))
    assert [p.path for p in info.value.problems] == ["parallelism.framework"]
    with pytest.raises(PlanError, match=r"framework: 'HF' is not allowed.*\(allowed: megatron, hf\)"):
        Parallelism(framework="HF")


def test_hf_with_selective_recompute_warns():
    est = llmplan.estimate(plan("hf", recompute="selective"))
    assert any("framework = \"hf\"" in w and "selective" in w for w in est.warnings)
    assert not any("framework" in w for w in llmplan.estimate(plan(recompute="selective")).warnings)
