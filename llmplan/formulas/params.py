"""Parameter counts, exact, per component.

Every function returns a sympy expression in the symbols of
:mod:`llmplan.symbols`; which terms appear depends on the architecture's
structure (biases, norms, gating, MLA), decided here from the :class:`Model`.
Bound to a model's numbers the totals equal what the Hugging Face
implementation named by ``model.hf_model_type`` holds, parameter for
parameter (checked by ``tests/oracle``); buffers (rotary tables, causal masks,
DeepSeek's ``e_score_correction_bias``) are not parameters and are not counted.

Sources: module definitions of transformers' ``modeling_<arch>.py`` files
(llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, deepseek_v3, gpt2,
gpt_neox, olmo2, dbrx); Narayanan et al. 2021 eq. (2) for the GPT shape.
"""

from __future__ import annotations

import sympy

from ..model import Model
from ..symbols import (
    E,
    L,
    E_s,
    L_dense,
    L_moe,
    P_max,
    V,
    a,
    a_kv,
    d,
    d_nope,
    d_rope,
    d_v,
    f,
    f_e,
    f_s,
    h,
    k,
    r_kv,
    r_q,
)
from . import formula

Expr = sympy.Expr
ZERO = sympy.Integer(0)

_HF = "transformers modeling_<arch>.py module definitions"


def norm_params(model: Model, width: Expr) -> Expr:
    """Parameters of one normalisation over ``width`` elements (weight, plus bias for LayerNorm)."""
    return 2 * width if model.norm == "layernorm" else width


@formula("embedding", "token embedding V·h; learned positions add P_max·h (GPT-2)")
def embedding(model: Model) -> Expr:
    """Input embedding table(s): ``V·h`` (+ ``P_max·h`` for learned positions)."""
    expr = V * h
    if model.position == "learned":
        expr += P_max * h
    return expr


@formula("lm_head", "output projection h·V; 0 when tied to the embedding")
def lm_head(model: Model) -> Expr:
    """The LM head ``h·V``, or 0 when tied to the input embedding."""
    return ZERO if model.tied_embeddings else h * V


@formula("attention_per_layer", _HF + "; DeepSeek-V3 report §2.1.1 for MLA")
def attention_per_layer(model: Model) -> Expr:
    """One attention block: projections, their biases and q/k norms.

    MHA/GQA/MQA: ``h·a·d`` (Q) + ``2·h·a_kv·d`` (K, V) + ``a·d·h`` (O).
    MLA: ``h·r_q + r_q + r_q·a·(d_nope+d_rope)`` (Q via latent, with its RMSNorm)
    + ``h·(r_kv+d_rope) + r_kv + r_kv·a·(d_nope+d_v)`` (joint KV latent) + ``a·d_v·h``;
    ``attention_bias = "all"`` adds the biases ``DeepseekV3Attention`` gives
    ``q_a_proj`` (``r_q``), ``kv_a_proj_with_mqa`` (``r_kv + d_rope``) and
    ``o_proj`` (``h``); the up-projections ``q_b_proj``/``kv_b_proj`` (and
    ``q_proj`` without a query latent) never have one. Attention sinks (gpt-oss) add ``a``.
    """
    if model.mla is not None:
        mla = model.mla
        if mla.q_lora_rank is None:
            q = h * a * (d_nope + d_rope)
        else:
            q = h * r_q + norm_params(model, r_q) + r_q * a * (d_nope + d_rope)
        kv = h * (r_kv + d_rope) + norm_params(model, r_kv) + r_kv * a * (d_nope + d_v)
        o = a * d_v * h
        expr = q + kv + o
        if model.attention_bias == "qkv":
            raise NotImplementedError("q/k/v-only biases with MLA are not modelled")
        if model.attention_bias == "all":
            expr += (0 if mla.q_lora_rank is None else r_q) + (r_kv + d_rope) + h
        return expr
    expr = h * a * d + 2 * h * a_kv * d + a * d * h
    if model.attention_bias in ("qkv", "all"):
        expr += a * d + 2 * a_kv * d
    if model.attention_bias == "all":
        expr += h
    if model.attention_sinks:  # gpt-oss: one learned sink logit per query head
        expr += a
    if model.qk_norm == "head":
        expr += norm_params(model, d) * 2
    elif model.qk_norm == "full":
        expr += norm_params(model, a * d) + norm_params(model, a_kv * d)
    return expr


def _mlp(model: Model, width: Expr) -> Expr:
    matrices = 3 if model.gated else 2
    expr = matrices * h * width
    if model.mlp_bias:
        expr += (matrices - 1) * width + h
    return expr


@formula("mlp_per_layer", "gated MLP 3·h·f (SwiGLU, Shazeer 2020), plain 2·h·f")
def mlp_per_layer(model: Model) -> Expr:
    """One dense MLP: ``3·h·f`` gated or ``2·h·f`` plain (+ biases ``(n−1)·f + h``)."""
    return _mlp(model, f)


@formula("expert", "one routed expert: the MLP formula at width f_e")
def expert(model: Model) -> Expr:
    """One routed expert: the MLP formula at width ``f_e``."""
    return _mlp(model, f_e)


@formula("shared_experts_per_layer", "E_s shared experts of width f_s (DeepSeek-V3, Qwen2-MoE)")
def shared_experts_per_layer(model: Model) -> Expr:
    """Shared experts of one MoE layer: ``E_s`` MLPs of width ``f_s`` (+ Qwen2-MoE's gate)."""
    if not model.is_moe or model.moe.shared_experts == 0:  # type: ignore[attr-defined]
        return ZERO
    return E_s * _mlp(model, f_s)


@formula("router_per_layer", "router Linear(h, E); + E bias, + h shared-expert gate")
def router_per_layer(model: Model) -> Expr:
    """The router ``h·E`` (+ ``E`` bias, + ``h`` for a shared-expert gate)."""
    if not model.is_moe:
        return ZERO
    moe = model.moe  # type: ignore[attr-defined]
    expr = h * E
    if moe.router_bias:
        expr += E
    if moe.shared_expert_gate:
        expr += h
    return expr


@formula("norms_per_layer", "two pre/post norms per block; four with sandwich norms (Gemma 2/3)")
def norms_per_layer(model: Model) -> Expr:
    """Block norms: two of width ``h`` (pre-attention and pre-MLP, or OLMo 2's post-norms);
    four with ``model.sandwich_norm`` (Gemma 2/3 also normalise both sublayer outputs)."""
    return (4 if model.sandwich_norm else 2) * norm_params(model, h)


@formula("final_norm", "one norm of width h after the last block")
def final_norm(model: Model) -> Expr:
    """The final norm before the LM head."""
    return norm_params(model, h)


@formula("total", "sum of all components; Narayanan et al. 2021 eq. (2) is its GPT special case")
def total(model: Model) -> Expr:
    """All parameters of the model's transformers class (MTP modules excluded)."""
    c = components(model)
    return sympy.Add(*c.values())


def components(model: Model) -> dict[str, Expr]:
    """Whole-model parameter components keyed by report name (sum = :func:`total`)."""
    L_mlp = L_dense if model.is_moe else L
    routed = L_moe * E * expert(model) if model.is_moe else ZERO
    return {
        "embedding": embedding(model),
        "attention": L * attention_per_layer(model),
        "mlp": L_mlp * mlp_per_layer(model),
        "experts": routed,
        "shared_experts": L_moe * shared_experts_per_layer(model),
        "router": L_moe * router_per_layer(model),
        "norms": L * norms_per_layer(model) + final_norm(model),
        "lm_head": lm_head(model),
    }


@formula("active", "routed experts count k/E of their parameters per token")
def active(model: Model) -> Expr:
    """Parameters one token uses: total with only ``k`` of ``E`` routed experts per MoE layer."""
    expr = total(model)
    if model.is_moe:
        expr = expr - L_moe * (E - k) * expert(model)
    return expr


@formula("mtp", "DeepSeek-V3 report §2.2: per module 2 RMSNorms, Linear(2h, h), one block, final norm")
def mtp(model: Model) -> Expr:
    """Multi-token-prediction modules (not part of ``total``).

    Each module (DeepSeek-V3 report §2.2; published checkpoint layout): RMSNorms
    on the hidden state and the embedding (``2h``), a projection ``2h·h``, one
    transformer block (MoE when the model's last layer is MoE) and a final norm
    ``h``; embedding and LM head are shared with the main model.
    """
    from ..symbols import L_mtp

    if model.mtp_layers == 0:
        return ZERO
    moe_block = model.is_moe and (model.layers - 1) in model.moe_layer_ids()
    block = attention_per_layer(model) + norms_per_layer(model)
    if moe_block:
        block += E * expert(model) + shared_experts_per_layer(model) + router_per_layer(model)
    else:
        block += mlp_per_layer(model)
    return L_mtp * (2 * norm_params(model, h) + 2 * h * h + block + norm_params(model, h))
