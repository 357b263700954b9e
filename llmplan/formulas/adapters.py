"""LoRA and QLoRA: adapter parameter counts and quantised base-weight bytes.

LoRA (Hu et al. 2021, §4): a frozen weight ``W ∈ R^{out×in}`` gets ``B·A`` with
``A ∈ R^{r×in}``, ``B ∈ R^{out×r}``: ``r·(in + out)`` trainable parameters per
targeted linear layer — what PEFT's ``LoraConfig`` creates for ``target_modules``
(``"all-linear"`` = every linear layer of the blocks, the MoE router included, the LM
head excluded).

Measured against PEFT 0.21 and 0.22 on transformers 5.25 (``tests/oracle/test_oracle_optimizer.py``):
exact for dense models, GPT-2 / GPT-NeoX / DBRX / MPT / Phi-3 included (their fused ``c_attn`` /
``query_key_value`` / ``Wqkv`` / ``qkv_proj`` is one linear layer, ``r·(h + (a + 2·a_kv)·d)``,
Phi-3's ``gate_up_proj`` one of ``r·(h + 2f)``, under the class's own module names), and for named attention targets of MoE models. For MoE
models with fused expert tensors (Mixtral, Qwen3-MoE, DeepSeek-V3 in transformers 5)
PEFT's ``"all-linear"`` differs from this per-matrix count, and the differences are
PEFT's, version-dependent, so not copied here: it adapts the fused ``gate_up_proj`` with
rank ``2r`` (``2r·(h + 2f_e)`` per expert, not ``2r·(h + f_e)``); PEFT 0.21 also skips the
dense MLP layers and shared experts of Qwen3-MoE / DeepSeek-V3 (its v4→v5 name mapping
turns ``gate_proj``/``up_proj``/``down_proj`` into expert parameters only), PEFT 0.22 adapts
them as llmplan counts. PEFT 0.21 has no such mapping for Qwen2-MoE: its ``"all-linear"``
leaves that class's router and routed experts (both bare parameters) unadapted. DBRX's and gpt-oss's experts are
parameters, not linear layers (and gpt-oss's router is no ``nn.Linear``): no LoRA target
reaches them, and ``"all-linear"`` adapts the attention projections only.

QLoRA (Dettmers et al. 2023, §3): NF4 base weights (4 bits) with one fp32
absmax per block of 64 (0.5 bit/param); double quantisation stores those
constants in 8 bits with one fp32 per 256 of them: ``8/64 + 32/(64·256)`` =
0.127 bit/param. Quantised: the linear layers of the blocks; the embedding, LM
head and norms stay 16-bit (bitsandbytes' defaults).
"""

from __future__ import annotations

import sympy

from ..errors import PlanError, Problem, did_you_mean
from ..symbols import E, E_s, L, L_dense, L_moe, a, a_kv, d, d_nope, d_rope, d_v, f, f_e, f_s, h, r, r_kv, r_q
from . import formula

ALL_LINEAR = "all-linear"


#: Architectures whose transformers class fuses Q, K and V (and names its linear layers its
#: own way): module name → (in, out) per block, in the class's order. A name that occurs
#: twice in a block (GPT-2's attention and MLP ``c_proj``) gets a ``#k`` suffix, as PEFT's
#: suffix match adapts both. DBRX's experts are 3-D parameters, not linear modules, so
#: neither a named target nor ``"all-linear"`` reaches them; its router is ``ffn.router.layer``.
#: Read off the modules of GPT2LMHeadModel, GPTNeoXForCausalLM, DbrxForCausalLM,
#: MptForCausalLM and Phi3ForCausalLM (transformers 5.25), checked against PEFT by tests/oracle/test_oracle_optimizer.py.
FUSED_QKV_LINEARS = {
    "gpt2": {"c_attn": (h, 3 * h), "c_proj": (h, h), "c_fc": (h, f), "c_proj#1": (f, h)},
    "gpt_neox": {"query_key_value": (h, 3 * h), "dense": (h, h), "dense_h_to_4h": (h, f), "dense_4h_to_h": (f, h)},
    "dbrx": {"Wqkv": (h, (a + 2 * a_kv) * d), "out_proj": (a * d, h), "layer": (h, E)},
    "mpt": {"Wqkv": (h, 3 * h), "out_proj": (h, h), "up_proj": (h, f), "down_proj": (f, h)},
    # Phi-3 also fuses the gated MLP's gate and up projections into one gate_up_proj
    "phi3": {"qkv_proj": (h, (a + 2 * a_kv) * d), "o_proj": (a * d, h), "gate_up_proj": (h, 2 * f), "down_proj": (f, h)},
}

#: LLaMA-style classes whose MLP layers have other names (StarCoder2's ``c_fc`` / ``c_proj``).
MLP_NAMES = {"starcoder2": {"up_proj": "c_fc", "down_proj": "c_proj"}}


def linear_shapes(model) -> dict[str, tuple[sympy.Expr, sympy.Expr, sympy.Expr]]:
    """Targetable linear layers: HF module name → (in, out, how many in the whole model).

    Models whose ``hf_model_type`` fuses Q, K and V (GPT-2, GPT-NeoX, DBRX, MPT) use that
    class's module names and shapes (:data:`FUSED_QKV_LINEARS`); every other model the
    LLaMA-style names (``q_proj`` … ``down_proj``; MLA's for DeepSeek-V3).
    """
    fused = FUSED_QKV_LINEARS.get(model.hf_model_type or "")
    if fused is not None:
        count = {"layer": L_moe} if model.is_moe else {}
        return {name: (i, o, count.get(name, L)) for name, (i, o) in fused.items()}
    dense_layers = L_dense if model.is_moe else L
    shapes: dict[str, tuple] = {}
    if model.mla is not None:
        if model.mla.q_lora_rank is None:
            shapes["q_proj"] = (h, a * (d_nope + d_rope), L)
        else:
            shapes["q_a_proj"] = (h, r_q, L)
            shapes["q_b_proj"] = (r_q, a * (d_nope + d_rope), L)
        shapes["kv_a_proj_with_mqa"] = (h, r_kv + d_rope, L)
        shapes["kv_b_proj"] = (r_kv, a * (d_nope + d_v), L)
        shapes["o_proj"] = (a * d_v, h, L)
    else:
        shapes["q_proj"] = (h, a * d, L)
        shapes["k_proj"] = (h, a_kv * d, L)
        shapes["v_proj"] = (h, a_kv * d, L)
        shapes["o_proj"] = (a * d, h, L)
    if model.hf_model_type == "gpt_oss":
        # GptOssExperts holds 3-D parameters and GptOssTopKRouter is no nn.Linear: the attention
        # projections are the only linear layers (PEFT 0.22's "all-linear" adapts exactly these)
        return shapes
    # dense MLPs (and, for MoE, each routed and shared expert; LLaMA-style names)
    count_f = dense_layers
    count_e = L_moe * E if model.is_moe else 0
    count_s = L_moe * E_s if model.is_moe and model.moe.shared_experts else 0
    renamed = MLP_NAMES.get(model.hf_model_type or "", {})
    for name, (i, o) in {"gate_proj": (h, None), "up_proj": (h, None), "down_proj": (None, h)}.items():
        if name == "gate_proj" and not model.gated:
            continue
        name = renamed.get(name, name)
        parts = []
        for width, count in ((f, count_f), (f_e, count_e), (f_s, count_s)):
            if count == 0:
                continue
            parts.append((i or width, o or width, count))
        for k, part in enumerate(parts):
            shapes[name if k == 0 else f"{name}#{k}"] = part
    if model.is_moe:
        # the router Linear(h, E) of each MoE layer: PEFT's "all-linear" adapts it (transformers 4: an nn.Linear;
        # transformers 5: PEFT targets its `gate.weight` parameter), checked by tests/oracle/test_oracle_optimizer.py
        shapes["gate"] = (h, E, L_moe)
        if model.moe.shared_expert_gate:  # Qwen2-MoE's sigmoid gate of the shared expert, Linear(h, 1)
            shapes["shared_expert_gate"] = (h, 1, L_moe)
    return shapes


def _target_names(model, targets) -> list[str]:
    shapes = linear_shapes(model)
    if targets == ALL_LINEAR:
        return list(shapes)
    names = [targets] if isinstance(targets, str) else list(targets)
    plain = sorted({n.split("#")[0] for n in shapes})
    bad = [n for n in names if n not in plain]
    if bad:
        raise PlanError(
            [
                Problem("method.lora.targets", f"{n!r} is not a linear layer of this model{did_you_mean(n, plain)} (allowed: {', '.join(plain)}, or \"all-linear\")")
                for n in bad
            ]
        )
    return [k for k in shapes if k.split("#")[0] in names]


@formula("lora_params", "Hu et al. 2021 §4: r·(in + out) per targeted linear layer")
def lora_params(model, targets) -> sympy.Expr:
    """Trainable adapter parameters in the whole model: Σ over targets of count · r·(in + out)."""
    shapes = linear_shapes(model)
    return sympy.Add(*(shapes[n][2] * r * (shapes[n][0] + shapes[n][1]) for n in _target_names(model, targets)))


def nf4_bytes_per_param(double_quant: bool, block: int = 64) -> sympy.Rational:
    """Bytes per NF4 weight with its block-wise absmax constants (QLoRA §3)."""
    if double_quant:
        return sympy.Rational(4, 8) + sympy.Rational(8, 8 * block) + sympy.Rational(32, 8 * block * 256)
    return sympy.Rational(4, 8) + sympy.Rational(32, 8 * block)
