"""Serving (``method.kind = "inference"``): memory, KV cache, prefill and decode time,
throughput, replicas for a target load, cost per million tokens.

The model (every assumption is listed in ``docs/serving.md``):

* **Weights.** The linear layers of the blocks (attention projections, MLPs, experts)
  are stored in ``precision.weights``; int8/int4 as GPTQ/AWQ checkpoints store them:
  ``bits/8`` bytes per weight plus, per group of ``G_q`` weights along the input
  dimension, one fp16 scale (2 B) and one zero point packed at the weight's own width
  (``q_sc = 2``, ``q_zp = bits/8``) — 4.15625 bits per weight at int4, group 128
  (Frantar et al. 2023, GPTQ; Lin et al. 2024, AWQ; the AutoGPTQ/AutoAWQ packing of
  ``qweight``/``qzeros``/``scales``). NF4 (bitsandbytes) stores one fp32 absmax per
  block of 64 (Dettmers et al. 2023 §3). FP8 is priced at 1 B per weight (its
  per-tensor or per-block scales are below 0.03 %). Embedding, LM head, norms, biases
  and MoE routers stay 16-bit (``q_wx``), as GPTQ/AWQ/FP8 checkpoints keep them.
* **KV cache.** ``2·L_s·ceil(a_kv/t)·d·q_kv`` bytes per token and GPU (keys and
  values; tensor parallelism splits the KV heads, a head is replicated once
  ``t > a_kv``); multi-head latent attention caches the compressed latent and the
  decoupled RoPE key, ``L_s·(r_kv + d_rope)·q_kv``, on every TP rank (DeepSeek-V2
  report §2.1.2). Sized for ``batch × (seq_len + new_tokens)`` tokens (contract).
* **Prefill** of ``batch`` prompts of ``seq_len`` tokens and **decode** of one token
  per sequence are each two rooflines per GPU — the weight GEMMs
  ``max(bytes/(W_hbm·η_mem), FLOPs/(F_peak·η_gemm))`` and attention over the KV cache,
  the same way — plus the tensor-parallel all-reduces (α–β, two per layer) and the
  pipeline sends. Every pipeline stage is taken to be the reported (most loaded) one.
* **MoE.** A step reads the weights of the routed experts its tokens touch: with
  ``n`` tokens routed uniformly at random to ``k`` of ``E`` experts, a fraction
  ``1 − (1 − k/E)^n`` of the experts (the expected number of non-empty bins).
  ``n = batch`` in decode, ``batch·seq_len`` in prefill; it tends to ``k·n/E`` for
  small batches and to 1 (every expert) once ``n·k ≫ E``.
* **Continuous batching** (Orca; vLLM): TTFT is one step holding the new prompt and one
  decode token of each of the other ``batch − 1`` sequences (queueing excluded); TPOT is a
  decode step plus the share of the batch's prefills interleaved with it,
  ``T_dec + T_pf / new_tokens``; a request takes ``TTFT + (new_tokens − 1)·TPOT``.
* **Throughput and replicas.** A replica is ``tp × pp`` GPUs serving ``batch``
  sequences at once and completing them every ``T_pf + new_tokens·T_dec``. The cluster
  holds ``gpus ÷ (tp·pp)`` replicas; ``requests_per_second`` asks how many are needed.
"""

from __future__ import annotations

import sympy

from ..symbols import (
    E,
    E_s,
    F_peak,
    G_q,
    L,
    L_dense,
    L_moe,
    L_s,
    L_win,
    M_cap,
    M_over,
    N,
    P_max,
    R_req,
    V,
    W_hbm,
    W_win,
    W_pp,
    W_tp,
    a,
    a_kv,
    alpha_pp,
    alpha_tp,
    b,
    d,
    d_nope,
    d_rope,
    d_v,
    eta_gemm,
    eta_mem,
    f,
    f_e,
    f_s,
    h,
    k,
    n_dp,
    n_out,
    p,
    q_a,
    q_kv,
    q_sc,
    q_w,
    q_wx,
    q_zp,
    r_kv,
    r_q,
    s,
    s_p,
    t,
)
from . import Definitions, formula
from . import params as P
from .comm import ring_allreduce_seconds
from .memory import (
    define_total,
    embedding_params_on_gpu,
    expert_params_per_layer,
    nonexpert_layer_params,
)

#: Achieved fraction of the datasheet memory bandwidth in decode (η_mem, "MBU"). An
#: ASSUMPTION, not a measurement: well-tuned engines are commonly put at 60–85 % of peak
#: (Databricks/MosaicML, "LLM Inference Performance Engineering: Best Practices", 2023,
#: defines MBU); docs/serving.md compares the resulting TPOT with NVIDIA NIM's published
#: Llama-3.3-70B FP8 TP2 H100 figures (18.6 ms ITL at concurrency 1), which imply about
#: 0.6 end to end. Compute efficiency in prefill is the training GEMM efficiency
#: η_gemm (``llmplan.plan.DEFAULT_GEMM_EFFICIENCY``, also an assumption). A plan
#: overrides η_mem with ``[efficiency] memory_bandwidth`` (``Efficiency.memory_bandwidth``).
DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY = 0.7

#: Default weights per quantisation group: GPTQ/AWQ's customary 128 for int8/int4,
#: bitsandbytes' NF4 block of 64 (Dettmers et al. 2023 §3).
DEFAULT_GROUP_SIZE = {"int8": 128, "int4": 128, "nf4": 64, "mxfp4": 32}

SRC_KV = "Kwon et al. 2023 (vLLM) §3: 2·L·h·bytes per token for MHA; GQA/MQA: a_kv·d instead of h"
SRC_MLA = "DeepSeek-V2 report (arXiv 2405.04434) §2.1.2–2.1.3: MLA caches (d_c + d_h^R)·l elements per token"
SRC_GPTQ = (
    "GPTQ (Frantar et al. 2023) / AWQ (Lin et al. 2024) checkpoints as packed by AutoGPTQ/AutoAWQ: "
    "bits/8 B per weight + one fp16 scale and one packed zero point per group"
)
SRC_ROOFLINE = "roofline (Williams et al. 2009): max(bytes ÷ (W_hbm·η_mem), FLOPs ÷ (F_peak·η_gemm))"
SRC_MOE = "expected experts touched by n tokens routed uniformly to k of E: E·(1 − (1 − k/E)^n)"


# --- parameters by storage format ---------------------------------------------------------


@formula("attention_linear_per_layer", "matrices of the Q/K/V/O projections (MLA: latent down/up projections)")
def attention_linear_per_layer(model) -> sympy.Expr:
    """Weights of one attention block's projection matrices, norms and biases excluded.

    MHA/GQA/MQA: ``2·h·a·d + 2·h·a_kv·d``; MLA: the query path (``h·r_q + r_q·a·(d_nope+d_rope)``,
    or ``h·a·(d_nope+d_rope)`` without a query latent), ``h·(r_kv+d_rope) + r_kv·a·(d_nope+d_v)``
    and the output ``a·d_v·h``.
    """
    if model.mla is not None:
        if model.mla.q_lora_rank is None:
            q = h * a * (d_nope + d_rope)
        else:
            q = h * r_q + r_q * a * (d_nope + d_rope)
        return q + h * (r_kv + d_rope) + r_kv * a * (d_nope + d_v) + a * d_v * h
    return 2 * h * a * d + 2 * h * a_kv * d


def _mlp_linear(model, width) -> sympy.Expr:
    return (3 if model.gated else 2) * h * width


def linear_params_per_layer(model) -> tuple[sympy.Expr, sympy.Expr]:
    """Average (non-expert, routed-expert) linear-layer weights of one layer."""
    attn = attention_linear_per_layer(model)
    if not model.is_moe:
        return attn + _mlp_linear(model, f), sympy.Integer(0)
    ne = attn + L_dense * _mlp_linear(model, f) / L
    if model.moe.shared_experts:
        ne += L_moe * E_s * _mlp_linear(model, f_s) / L
    return ne, L_moe * E * _mlp_linear(model, f_e) / L


def active_linear_per_layer(model) -> sympy.Expr:
    """Average linear weights one token multiplies per layer (top-k experts, router included)."""
    ne, _ = linear_params_per_layer(model)
    if not model.is_moe:
        return ne
    return ne + L_moe * (k * _mlp_linear(model, f_e) + h * E) / L


@formula("kv_cache_bytes_per_token", SRC_KV + "; " + SRC_MLA)
def kv_cache_bytes_per_token(model) -> sympy.Expr:
    """KV-cache bytes one token occupies on one GPU (its ``L_s`` layers, its share of the heads).

    ``2·L_s·ceil(a_kv/t)·d·q_kv`` — keys and values of the GPU's KV heads (tensor
    parallelism splits them; each GPU keeps at least one); MLA:
    ``L_s·(r_kv + d_rope)·q_kv`` — the compressed latent and the shared RoPE key,
    replicated on every tensor-parallel rank.
    """
    if model.mla is not None:
        return L_s * q_kv * (r_kv + d_rope)
    return 2 * L_s * q_kv * d * sympy.ceiling(a_kv / t)


@formula("kv_tokens_kept", "tokens in the KV cache per sequence, averaged over layers: sliding-window layers keep min(ctx, W)")
def kv_tokens_kept(model, ctx=s) -> sympy.Expr:
    """Cached tokens of a sequence of ``ctx`` tokens, averaged over the layers: a
    sliding-window layer keeps (and a decode step reads) only the last ``W`` —
    ``ctx − L_win·max(0, ctx − W)/L`` (transformers' sliding-window cache layers, vLLM's
    hybrid KV-cache manager). Without a window: ``ctx``."""
    if model.sliding_window is None:
        return ctx
    return ctx - L_win * sympy.Max(0, ctx - W_win) / L


@formula("prefill_keys", "mean keys per query in a causal prefill of n tokens: (n + 1)/2, less the pairs beyond a window")
def prefill_keys(model, n=s_p) -> sympy.Expr:
    """Keys per query, on average, in the causal prefill of ``n`` tokens: ``(n + 1)/2``;
    a window of W removes the ``x(x + 1)/2`` pairs at distance ≥ W (``x = max(0, n − W)``)
    on ``L_win`` of ``L`` layers."""
    full = (n + 1) / 2
    if model.sliding_window is None:
        return full
    x = sympy.Max(0, n - W_win)
    return full - L_win * x * (x + 1) / (2 * n * L)


@formula("attention_core_flops", "QKᵀ and attention·V over ctx cached tokens; MLA decode in absorbed form")
def attention_core_flops(model, ctx=s, *, decode: bool = True) -> sympy.Expr:
    """FLOPs of one layer's attention scores and values for one query token over ``ctx`` keys.

    MHA/GQA: ``4·ctx·a·d``. MLA in prefill: ``2·ctx·a·(d_nope+d_rope) + 2·ctx·a·d_v``
    (keys and values up-projected); MLA in decode attends over the cached latent with the
    up-projections absorbed into the query and output (DeepSeek-V2 §2.1.2):
    ``2·ctx·a·(r_kv+d_rope) + 2·ctx·a·r_kv``.
    """
    if model.mla is not None:
        if decode:
            return 2 * ctx * a * (r_kv + d_rope) + 2 * ctx * a * r_kv
        return 2 * ctx * a * (d_nope + d_rope) + 2 * ctx * a * d_v
    return 4 * ctx * a * d


# --- binding -------------------------------------------------------------------------------


def serving_values(plan) -> tuple[dict, list[str]]:
    """Values of the serving symbols for ``plan`` (called by :func:`llmplan.bindings.plan_values`)."""
    from .. import symbols as S

    meth, prec, par = plan.method, plan.precision, plan.parallelism
    q = prec.bytes("weights")
    dtype = prec.dtype("weights")
    if dtype in ("int8", "int4"):
        group = meth.quant_group_size or DEFAULT_GROUP_SIZE[dtype]
        scale, zero = 2, (q if meth.quant_zero_point else 0)
    elif dtype == "nf4":
        group = meth.quant_group_size or DEFAULT_GROUP_SIZE["nf4"]
        scale, zero = 4, 0  # one fp32 absmax per block, symmetric
    elif dtype == "mxfp4":
        group = meth.quant_group_size or DEFAULT_GROUP_SIZE["mxfp4"]
        scale, zero = 1, 0  # OCP MX: one E8M0 (power-of-two) scale per block of 32, no zero point
    else:
        group, scale, zero = 1, 0, 0
    vals = {
        S.s_p: meth.seq_len,
        S.n_out: meth.new_tokens,
        S.G_q: group,
        S.q_sc: scale,
        S.q_zp: zero,
        S.q_wx: max(q, 2),
        S.eta_mem: DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY if plan.efficiency.memory_bandwidth is None else plan.efficiency.memory_bandwidth,
        S.R_req: meth.requests_per_second or 0,
    }
    warnings: list[str] = []
    if meth.quant_scope == "experts" and not plan.model.is_moe:
        from ..errors import PlanError, Problem

        raise PlanError(Problem("method.quant_scope", f"'experts' quantises routed experts, and {plan.model.name or 'this model'} "
                                "has none (allowed for a dense model: 'linear')"))
    if par.ep > 1:
        warnings.append(
            f"parallelism.ep = {par.ep} is not modelled for inference: experts are split over tp like the other weights"
        )
    if par.cp > 1:
        warnings.append(f"parallelism.cp = {par.cp} is not modelled for inference (one GPU group per replica is tp × pp)")
    if par.framework != "megatron":
        warnings.append(
            f"parallelism.framework = {par.framework!r} changes training activations only; "
            "serving activations are the same bound for every framework"
        )
    return vals, warnings


# --- quantities ----------------------------------------------------------------------------


def define(q: Definitions) -> None:
    """Add the memory, time, throughput, replica and cost quantities of an inference plan."""
    plan = q.plan
    model = plan.model
    single_stage = plan.parallelism.pp == 1
    lin_ne, lin_ex = linear_params_per_layer(model)
    small = nonexpert_layer_params(model) + expert_params_per_layer(model) - lin_ne - lin_ex
    # [method] quant_scope = "experts": the non-expert linear layers stay 16-bit with the small weights
    experts_only = plan.method.quant_scope == "experts"
    lin_q, small_16 = (lin_ex, small + lin_ne) if experts_only else (lin_ne + lin_ex, small)

    # --- weights ---------------------------------------------------------------------------
    q_wl = q.define(
        "memory.bytes_per_linear_weight",
        "q_wl",
        q_w + (q_sc + q_zp) / G_q,
        "B/param",
        "bytes per linear-layer weight, quantisation scale and zero point per group included",
        SRC_GPTQ,
    )
    P_lin = q.define(
        "memory.params_on_gpu.linear",
        "P_lin",
        L_s * lin_q / t,
        "params",
        "quantised linear-layer weights held by the reported GPU (all experts resident; the routed experts "
        "only with quant_scope = 'experts'), stored at q_wl",
        "tensor/pipeline sharding (Shoeybi et al. 2019)",
    )
    head = embedding_params_on_gpu(model, single_stage)
    if single_stage:
        head += P.final_norm(model)
    P_x = q.define(
        "memory.params_on_gpu.unquantised",
        "P_x",
        L_s * small_16 / t + head,
        "params",
        "weights kept 16-bit on the reported GPU: embedding, LM head, norms, biases, routers "
        "(and the attention and dense MLPs with quant_scope = 'experts')",
        "GPTQ/AWQ/FP8 checkpoints leave these unquantised",
    )
    q.define("memory.params_on_gpu.dense", "P_gpu", P_lin + P_x, "params", "parameters held by the reported GPU (all experts resident)", "tensor/pipeline sharding")
    M_w = q.define("memory.per_gpu.weights", "M_w", q_wl * P_lin + q_wx * P_x, "B", "weights", SRC_GPTQ)
    q.define("memory.per_gpu.gradients", "M_g", 0, "B", "no gradients in inference", "-")
    q.define("memory.per_gpu.optimizer", "M_o", 0, "B", "no optimizer in inference", "-")

    # --- KV cache and activations ----------------------------------------------------------
    kv_src = SRC_MLA if model.mla is not None else SRC_KV
    kv_tok = q.define(
        "memory.kv_cache_per_token",
        "M_kv_tok",
        kv_cache_bytes_per_token(model),
        "B/token",
        "KV-cache bytes per token on the GPU",
        kv_src,
    )
    q.define(
        "memory.per_gpu.kv_cache",
        "M_kv",
        kv_tok * b * kv_tokens_kept(model, s),
        "B",
        "KV cache for batch × (seq_len + new_tokens) tokens (sliding-window layers: the last W)",
        kv_src,
    )
    act_prefill = q_a * s_p * (4 * h + 2 * f) / t
    M_a = q.define(
        "memory.per_gpu.activations",
        "M_a",
        act_prefill + 4 * b * V,
        "B",
        "live tensors of one layer while one prompt is prefilled, and the fp32 last-token logits of the batch",
        "assumed upper bound: residual, QKV/attention output and MLP inner tensors (4h + 2f per token)",
    )
    M_other = q.define("memory.per_gpu.other", "M_other", M_over, "B", "CUDA context, allocator and buffers", "assumed (docs/concepts.md#other)")
    define_total(q, with_kv=True)
    free = M_cap - M_w - M_other
    q.define(
        "memory.max_batch",
        "b_max",
        sympy.Max(0, sympy.floor((free - act_prefill) / (kv_tok * kv_tokens_kept(model, s) + 4 * V))),
        "sequences",
        "the most concurrent sequences whose KV cache (seq_len + new_tokens each) and logits fit",
        "capacity − weights − other − activations, ÷ per-sequence bytes",
    )
    budget = (free - M_a) / (kv_tok * b)  # cached tokens per sequence (averaged over layers) that fit
    max_ctx_src = "capacity − weights − other − activations, ÷ (KV bytes per token × batch)"
    if model.sliding_window is not None:
        if model.n_sliding_layers == model.layers:
            # every layer keeps only W tokens: past W the cache stops growing; the model's own
            # limit (max_positions, when known) bounds the context instead
            beyond = P_max if model.max_positions is not None else budget
        else:  # kv_tokens_kept inverted: past W only the L − L_win full layers grow
            beyond = W_win + (budget - W_win) * L / (L - L_win)
        budget = sympy.Piecewise((budget, budget <= W_win), (beyond, True))
        max_ctx_src += "; inverted through kv_tokens_kept (sliding-window layers keep W tokens)"
    q.define(
        "memory.max_context",
        "s_max",
        sympy.Max(0, sympy.floor(budget)),
        "tokens",
        "the longest sequence (prompt + generated) whose KV cache fits at the plan's batch",
        max_ctx_src,
    )
    q.define(
        "memory.kv_cache_capacity_tokens",
        "n_kv_max",
        sympy.Max(0, sympy.floor((free - M_a) / kv_tok)),
        "tokens",
        "tokens the memory left after weights, activations and overhead can cache (all sequences together)",
        "as vLLM sizes its KV-cache blocks",
    )

    # --- rooflines ----------------------------------------------------------------------------
    mem_rate = W_hbm * eta_mem
    flop_rate = F_peak * eta_gemm
    lin_active = active_linear_per_layer(model)
    head_read = h * V / t  # the LM head (or the tied embedding) is read once per step

    def experts_read(key: str, label: str, tokens, what: str):
        if not model.is_moe:
            return sympy.Integer(1)
        return q.define(key, label, 1 - (1 - k / E) ** tokens, "1", f"fraction of routed experts {what} reads", SRC_MOE)

    def weight_bytes(u) -> sympy.Expr:
        if experts_only:
            return q_wl * L_s * u * lin_ex / t + q_wx * (L_s * (small + lin_ne) / t + head_read)
        return q_wl * L_s * (lin_ne + u * lin_ex) / t + q_wx * (L_s * small / t + head_read)

    def tp_seconds(tokens) -> sympy.Expr:
        return 2 * L_s * ring_allreduce_seconds(t, q_a * tokens * h, alpha_tp, W_tp)

    def gemm_flops(tokens, logits) -> sympy.Expr:
        """Per GPU: 2 FLOPs per active linear weight per token, LM head for ``logits`` tokens."""
        return 2 * (tokens * L_s * lin_active + logits * h * V) / t

    def step_seconds(w_bytes, lin_flops, kv_bytes, att_flops, tokens) -> sympy.Expr:
        """p stages × (weight-GEMM roofline + attention roofline + TP all-reduces) + pipeline sends."""
        gemm = sympy.Max(w_bytes / mem_rate, lin_flops / flop_rate)
        attention = sympy.Max(kv_bytes / mem_rate, att_flops / flop_rate)
        return p * (gemm + attention + tp_seconds(tokens)) + (p - 1) * (alpha_pp + q_a * tokens * h / W_pp)

    ctx = q.define(
        "serving.decode_context_tokens",
        "s_dec",
        s_p + n_out / 2,
        "tokens",
        "mean context of a decode step (prompt + half the generated tokens)",
        "KV reads grow linearly over the generation, so the mean step is the step at the mean context",
    )
    prefill_ctx = prefill_keys(model)  # causal: query i attends to i keys (at most W with a window)
    ctx_kept = kv_tokens_kept(model, ctx)  # the mean decode step's cached (and attended) tokens

    # decode: one token for each of the batch's sequences
    u_dec = experts_read("serving.experts_read_decode", "u_dec", b, "one decode step")
    B_w_dec = q.define(
        "serving.decode_weight_bytes",
        "B_w_dec",
        weight_bytes(u_dec),
        "B",
        "weight bytes one decode step reads per GPU (untouched experts and embedding rows are not read)",
        SRC_MOE,
    )
    B_kv_dec = q.define("serving.decode_kv_bytes", "B_kv_dec", b * ctx_kept * kv_tok, "B", "KV-cache bytes one decode step reads per GPU", kv_src)
    T_dec = q.define(
        "time.decode_step_seconds",
        "T_dec",
        step_seconds(B_w_dec, gemm_flops(b, b), B_kv_dec, b * L_s * attention_core_flops(model, ctx_kept, decode=True) / t, b),
        "s",
        "one decode step of the whole batch: weights + KV read (or FLOPs), TP all-reduces, pipeline sends",
        SRC_ROOFLINE + "; α–β all-reduces (Thakur et al. 2005), 2 per layer (Megatron-LM)",
    )

    # prefill of the plan's batch: batch prompts of s_p tokens
    u_pf = experts_read("serving.experts_read_prefill", "u_pf", b * s_p, "the batch's prefill")
    F_lin_pf = gemm_flops(b * s_p, b)  # logits of each prompt's last token only
    F_att_pf = b * s_p * L_s * attention_core_flops(model, prefill_ctx, decode=False) / t
    q.define(
        "flops.prefill",
        "F_pf",
        F_lin_pf + F_att_pf,
        "FLOP",
        "FLOPs of the batch's prefill per GPU (causal attention; LM head for each prompt's last token)",
        "2 FLOPs per weight; (s_p + 1)/2 keys per query on average",
    )
    T_pf = q.define(
        "time.prefill_seconds",
        "T_pf",
        step_seconds(weight_bytes(u_pf), F_lin_pf, b * s_p * kv_tok, F_att_pf, b * s_p),
        "s",
        "prefill of the batch's prompts (weights and KV write vs FLOPs, causal attention, TP all-reduces)",
        SRC_ROOFLINE,
    )

    # TTFT under continuous batching: the new prompt shares one step with b − 1 decodes
    u_ttft = experts_read("serving.experts_read_ttft", "u_ttft", s_p + b - 1, "the first-token step")
    T_ttft = q.define(
        "time.ttft_seconds",
        "TTFT",
        step_seconds(
            weight_bytes(u_ttft),
            gemm_flops(s_p + b - 1, b),
            s_p * kv_tok + (b - 1) * ctx_kept * kv_tok,
            (s_p * attention_core_flops(model, prefill_ctx, decode=False) + (b - 1) * attention_core_flops(model, ctx_kept, decode=True))
            * L_s
            / t,
            s_p + b - 1,
        ),
        "s",
        "time to first token: one prompt prefilled in a step shared with the other batch − 1 sequences' decodes "
        "(continuous batching; queueing and network excluded)",
        SRC_ROOFLINE + "; hybrid prefill/decode batches as in Sarathi-Serve (Agrawal et al. 2024) and vLLM",
    )
    tpot = q.define(
        "time.tpot_seconds",
        "TPOT",
        T_dec + T_pf / sympy.Max(n_out, 1),
        "s",
        "time per output token in steady state: a decode step plus the share of the prefills interleaved with it "
        "(batch new prompts every new_tokens steps)",
        "continuous batching (Yu et al. 2022, Orca): the GPU time per batch of requests is T_pf + new_tokens × T_dec",
    )
    q.define(
        "time.request_seconds",
        "T_req",
        T_ttft + sympy.Max(n_out - 1, 0) * tpot,
        "s",
        "end-to-end time of one request: TTFT + (new_tokens − 1) × TPOT",
        "-",
    )

    # --- throughput, replicas -----------------------------------------------------------------
    gpu_time = T_pf + n_out * T_dec  # one replica's busy time for batch requests
    q.define(
        "throughput.decode_tokens_per_second",
        "X_dec",
        n_dp * b / T_dec,
        "tokens/s",
        "decode rate of the plan's cluster (gpus ÷ (tp·pp) replicas), prefill excluded",
        "replicas × batch ÷ decode step",
    )
    q.define("throughput.decode_tokens_per_second_per_replica", "X_dec_r", b / T_dec, "tokens/s", "decode rate of one replica", "batch ÷ decode step")
    rps_r = q.define(
        "throughput.requests_per_second_per_replica",
        "X_req_r",
        b / gpu_time,
        "requests/s",
        "requests one replica completes per second in steady state",
        "batch ÷ (prefill of the batch + new_tokens decode steps)",
    )
    q.define("throughput.requests_per_second", "X_req", n_dp * rps_r, "requests/s", "requests the plan's cluster completes per second", "replicas × per replica")
    q.define(
        "throughput.output_tokens_per_second",
        "X_out",
        n_dp * rps_r * n_out,
        "tokens/s",
        "generated tokens per second of the cluster in steady state, prefill time included",
        "requests/s × new_tokens",
    )
    q.define("serving.gpus_per_replica", "N_rep", t * p, "GPUs", "GPUs of one model replica", "tp × pp")
    replicas = q.define(
        "serving.replicas",
        "n_rep",
        sympy.ceiling(R_req / rps_r),
        "replicas",
        "replicas needed for method.requests_per_second",
        "ceil(target ÷ per-replica requests/s)",
    )
    q.define("serving.gpus", "N_srv", replicas * t * p, "GPUs", "GPUs needed for method.requests_per_second", "replicas × tp × pp")

    # --- cost ------------------------------------------------------------------------------------
    cost = plan.cost
    if cost is not None and cost.gpu_hour is not None:
        from ..symbols import c_hour

        per_s = t * p * c_hour / 3600  # one replica, per second
        q.define("cost.per_hour", "C_hour", N * c_hour, "currency/h", "the plan's cluster per hour", "GPUs × price per GPU-hour")
        q.define(
            "cost.per_million_input_tokens",
            "C_in",
            per_s * T_pf / (b * s_p) * 10**6,
            "currency",
            "prefill GPU time per million prompt tokens",
            "replica price × prefill of the batch ÷ its prompt tokens",
        )
        q.define(
            "cost.per_million_output_tokens",
            "C_out",
            per_s * T_dec / b * 10**6,
            "currency",
            "decode GPU time per million generated tokens",
            "replica price × decode step ÷ batch",
        )
        q.define(
            "cost.per_million_tokens",
            "C_tok",
            per_s * gpu_time / (b * (s_p + n_out)) * 10**6,
            "currency",
            "GPU time per million tokens, prompt and generated together",
            "replica price × (prefill + new_tokens decode steps) ÷ (batch × (seq_len + new_tokens))",
        )
        q.define(
            "cost.per_hour_at_target",
            "C_target",
            replicas * t * p * c_hour,
            "currency/h",
            "GPUs for method.requests_per_second, per hour",
            "serving.gpus × price per GPU-hour",
        )
