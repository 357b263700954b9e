"""Memory per GPU: weights, gradients, optimizer state, activations, other.

The reported GPU is the most loaded one: the first pipeline stage (it holds
``p`` in-flight micro-batches under 1F1B, Korthikanti et al. 2022 eq. (5)) with
the embedding, or the only stage when ``pp = 1`` (embedding, LM head and the
logits buffer on one GPU).

Sources: Rajbhandari et al. 2020 (ZeRO) §5 for model states; Korthikanti et al.
2022 (arXiv 2205.05198) Table 1 and eqs. (1)–(6) for activations, generalised
here to GQA (K/V of ``a_kv·d``), any MLP width and gating, MoE experts (priced per
routed token, ``k`` copies) and FlashAttention (no stored ``s²`` scores;
Dao et al. 2022); Megatron-LM ``theoretical_memory_usage.py`` for the
interleaved-schedule penalty ``1 + (p−1)/(p·v)``, capped where the step has fewer
micro-batches than the warm-up would run (Megatron-Core ``schedules.py``,
``get_pp_rank_microbatches``: the warm-up is at most ``m·v`` chunk passes).

Activations are checked against what PyTorch saves for backward in the real
transformers classes (``tests/oracle/test_oracle_activations.py``): Korthikanti's
count is Megatron-LM's (fused kernels); ``activations_per_layer(..., hf=True)`` adds
what the Hugging Face modules save beyond it (RMSNorm's fp32 copies, unfused SwiGLU,
eager attention's fp32 softmax and GQA copies, ...) and matches them exactly for
dense layers, within 1.5 % for MoE layers. MLA layers store each latent twice (the
input of its norm and of its up-projection).

Approximation: a stage's layers are assumed to have the model's average
dense/MoE mix (exact when ``pp = 1`` or every layer is alike); when ``pp > 1``
the first stage is taken to hold the larger of the embedding and the LM head.

DualPipe (DeepSeek-V3 report, arXiv 2412.19437, §3.2.1 and Table 2): GPU ``i`` holds
stages ``i`` and ``pp−1−i`` ("Parameter 2×"), so the reported GPU 0 holds two stages'
layers plus the embedding, the LM head and — when trained — the multi-token-prediction
modules (§2.2: the shallowest and deepest layers share a PP rank), and ``pp + 1``
micro-batches of activations ("Activation PP+1").
"""

from __future__ import annotations

import sympy

from ..symbols import (
    E,
    E_s,
    L,
    L_dense,
    L_moe,
    L_s,
    i_pp,
    M_cap,
    M_over,
    V,
    a,
    a_kv,
    b,
    c,
    d,
    d_nope,
    d_rope,
    d_v,
    e,
    f,
    f_e,
    f_s,
    h,
    k,
    m,
    n_dp,
    n_sh,
    p,
    q_a,
    q_act,
    q_g,
    q_lin,
    q_m,
    q_o,
    q_w,
    r_kv,
    r_q,
    s,
    t,
    t_e,
    v,
)
from . import Definitions, formula
from . import params as P
from ..model import HF_COMPOSITE_ACTIVATIONS
from ..plan import DEFAULT_RECOMPUTE_MODULES

KORTHIKANTI = "Korthikanti et al. 2022 (arXiv 2205.05198) Table 1, eqs. (1)–(6)"
ZERO_SRC = "Rajbhandari et al. 2020 (ZeRO) §5, Figure 1"


# --- parameters held by one GPU ---------------------------------------------------------


def nonexpert_layer_params(model) -> sympy.Expr:
    """Average non-expert parameters of one layer (attention, dense MLP, shared experts, router, norms).

    Callers divide it by ``t`` as a whole, an approximation: norms, the router and the
    row-parallel biases are replicated over tensor parallelism, not sharded (≈ 2h + E
    of ≥ 12h² parameters per layer: < 0.02 % for h ≥ 4096). The final norm is added on
    the last stage, replicated.
    """
    comp = P.components(model)
    per_model = comp["attention"] + comp["mlp"] + comp["shared_experts"] + comp["router"] + comp["norms"] - P.final_norm(model)
    return per_model / L


def expert_params_per_layer(model) -> sympy.Expr:
    """Average routed-expert parameters of one layer (0 for dense models)."""
    if not model.is_moe:
        return sympy.Integer(0)
    return L_moe * E * P.expert(model) / L


def mtp_params_on_gpu(model) -> tuple[sympy.Expr, sympy.Expr]:
    """(non-expert, routed-expert) parameters of the multi-token-prediction modules on the GPU
    that holds the last stage: :func:`llmplan.formulas.params.mtp` split like a layer —
    non-expert parameters ÷ ``t``, routed experts ÷ ``e·t_e``."""
    from ..symbols import L_mtp

    total = P.mtp(model)
    if total == 0:
        return sympy.Integer(0), sympy.Integer(0)
    moe_block = model.is_moe and (model.layers - 1) in model.moe_layer_ids()
    experts = L_mtp * E * P.expert(model) if moe_block else sympy.Integer(0)
    return (total - experts) / t, experts / (e * t_e)


def embedding_params_on_gpu(model, single_stage: bool, stage: str | None = None) -> sympy.Expr:
    """Embedding and LM head on the reported GPU, vocabulary-parallel over ``t``.

    ``single_stage``: the GPU holds both ends (pp = 1, DualPipe). Otherwise ``stage`` names
    the pipeline rank: ``"first"`` the embedding, ``"last"`` the LM head (a tied model's last
    stage keeps its own copy of the embedding matrix for it, as Megatron-LM does),
    ``"middle"`` neither; ``None`` — the even split's reported GPU — the larger of the two.
    """
    emb, head = P.embedding(model), P.lm_head(model)
    if single_stage:
        return (emb + head) / t
    if stage == "first":
        return emb / t
    if stage == "middle":
        return sympy.Integer(0)
    if stage == "last":
        return (head if head != 0 else V * h) / t
    return sympy.Max(emb, head) / t if head != 0 else emb / t


@formula("activations_per_layer", KORTHIKANTI + "; DeepSeek-V3 report (arXiv 2412.19437) §3.2.3, §3.3.3")
def activations_per_layer(
    model,
    *,
    tp_sp: bool,
    flash: bool,
    recompute: str,
    moe_layer: bool,
    hf: bool = False,
    modules: tuple[str, ...] | None = None,
    linear_inputs: bool = False,
    act_inputs: bool = False,
) -> sympy.Expr:
    """Bytes of activations one layer stores for one micro-batch (per GPU, before CP).

    Korthikanti et al. (2022) Table 1, term by term with ``q_a`` bytes per element and
    1-byte dropout masks: norms' inputs ``2·q_a·sbh``; attention: QKV input ``q_a·sbh``,
    Q ``q_a·sb·a·d``, K and V ``q_a·sb·a_kv·d`` each, output-projection input
    ``q_a·sb·a·d``, softmax output ``q_a·a·s²b`` (+ dropout mask ``a·s²b`` and output
    ``q_a·a·s²b``; with ``model.attn_softcap`` the capped scores' ``tanh`` output,
    ``q_a·a·s²b`` more) — no ``s²`` terms with FlashAttention or selective recompute; MLP:
    input ``q_a·sbh`` + ``3·q_a·sbf`` gated (gate, up, product) or ``2·q_a·sbf`` plain;
    dropout masks ``sbh`` after attention and MLP. With ``model.parallel_residual`` both
    norms read the layer input: one norm input ``q_a·sbh`` fewer; with
    ``model.sandwich_norm`` (Gemma 2/3) the two post-norms store their inputs, the
    attention and MLP outputs, ``2·q_a·sbh`` more. For GPT (``a·d = h``, ``f = 4h``,
    dropout, no flash) this is ``sbh(34 + 5as/h)`` with ``q_a = 2`` (eq. (1)).
    Tensor parallelism divides the head and MLP-width tensors by ``t``; sequence
    parallelism divides the rest too (eq. (4)). Full recomputation keeps only the
    layer input ``q_a·sbh`` (÷ t with SP).

    MLA layers (DeepSeek-V2/V3) store, instead of the QKV input, Q, K and V: the attention
    input ``q_a·sbh``, each latent twice — as the input of its RMSNorm and as the input of
    its up-projection, ``2·q_a·sb·(r_kv + r_q)`` — and Q ``q_a·sb·a·(d_nope + d_rope)``,
    K the same (its RoPE part included), V ``q_a·sb·a·d_v``, the output-projection input
    ``q_a·sb·a·d_v``. MoE layers store per routed token copy the expert's inner tensors
    (``k·(2 or 3)·q_a·sb·f_e``, ÷ ``t_e``), the ``k`` dispatched copies of the input
    (``k·q_a·sbh``), the input ``q_a·sbh`` and the fp32 router logits ``4·sb·E``; shared
    experts store their inner tensors like a dense MLP of width ``f_s``; a sigmoid-gated
    shared expert (Qwen2-MoE) also keeps the two factors of its product, the shared output
    ``q_a·sbh`` and the gate ``q_a·sb``.

    ``recompute = "selective"`` drops what the ``modules`` recompute (default
    ``("core_attn",)``; :data:`llmplan.plan.RECOMPUTE_MODULES`), per layer and micro-batch:

    * ``core_attn``: the ``s²`` softmax terms (nothing more with FlashAttention);
    * ``layernorm``: every norm's output — the attention input ``q_a·sbh``, the MLP input
      ``q_a·sbh`` and, with MLA, the latents' second copies ``q_a·sb·(r_kv + r_q)`` (each in
      its cached dtype, below); their inputs stay stored (DeepSeek-V3 report §3.2.3:
      "recompute all RMSNorm operations");
    * ``mla_up_proj``: Q, K and V, ``q_a·sb·a·(2·(d_nope + d_rope) + d_v)``, recomputed
      from the latents; the RoPE key's input ``q_a·sb·d_rope`` (one per token, all heads)
      is stored instead (§3.2.3: "MLA up-projections");
    * ``moe_act``: each routed copy's activation output, the down-projection's input,
      ``k·q_a·sb·f_e`` (÷ ``t_e``), recomputed from the cached activation inputs (§3.3.3);
    * ``mlp``: the dense MLP's inner tensors, ``(2 or 3)·q_a·sb·f``;
    * ``shared_experts``: the shared experts' inner tensors, ``E_s·(2 or 3)·q_a·sb·f_s``.

    ``linear_inputs = True`` caches the inputs of the Linear layers at ``q_lin`` bytes
    (``[precision] linear_inputs``; FP8 training: 1): the attention input, MLA's
    up-projection inputs (the latents' second copies), a dense MLP's input, each routed
    copy's dispatched input and each MLP's down-projection input. Not the
    output-projection input (the attention core's backward also reads it; DeepSeek-V3
    keeps it in E5M6, §3.3.3), nor a MoE layer's input (the router's input; gating stays in
    BF16, §3.3.1; the shared experts read the same tensor). ``act_inputs = True`` caches
    the activation function's inputs (gate and up, or a plain MLP's up-projection output)
    at ``q_act`` bytes (``[precision] activation_func_inputs``; Megatron-Core's
    ``activation_func_fp8_input_store``). Norm inputs, Q/K/V, router logits and dropout
    masks keep their formats.

    ``hf = True`` adds what the Hugging Face transformers modules save beyond that
    fused-kernel (Megatron-LM) count — measured with ``saved_tensors_hooks`` by
    ``tests/oracle/test_oracle_activations.py`` (transformers 5, PyTorch 2.13):

    * RMSNorm (``LlamaRMSNorm`` and its copies) upcasts its input to fp32 and saves
      that copy, the normalised ``x̂`` (``q_a``) and the fp32 ``rsqrt`` per token:
      ``4·sbh + 4·sb`` more per norm than the norm input alone (in fp32 the copy *is*
      the input, and ``x̂`` is the extra). Per-head q/k norms (Qwen3) and whole-width
      ones (OLMo 2) do the same on Q and K: ``(4 + q_a)·sb·(a + a_kv)·d`` plus their
      ``rsqrt``. Gemma's and gpt-oss's RMSNorm (:data:`FP32_XHAT_NORM`) multiply by the
      weight in fp32: they save the fp32 input copy, the fp32 ``x̂``, the ``rsqrt`` and
      Gemma also the fp32 ``1 + w``, ``(8 − q_a)·sbh + 4·sb (+ 4·h)`` more per norm than
      its input (``8·sb·(a + a_kv)·d`` plus ``rsqrt`` (and ``2·4·d``) for q/k norms). ``nn.LayerNorm`` saves its fp32
      mean and rstd: ``8·sb`` per norm;
    * fused QKV with RoPE under a fused kernel (GPT-NeoX, Phi-3: :data:`ROPE_ON_FUSED_QKV`):
      RoPE applied to a slice of the fused projection's output returns Q in head-major
      layout, the kernel's output follows Q's layout, and transformers'
      ``transpose(1, 2).contiguous()`` copies it before the output projection:
      ``q_a·sb·a·d`` more (Llama's separate ``q_proj`` keeps the token-major layout and
      reshapes a view);
    * eager attention: ``repeat_kv`` materialises K and V with ``a`` heads (GQA), and
      the softmax runs in fp32 — its fp32 output ``4·a·s²b`` is saved besides the
      ``q_a`` copy the value product saves (one tensor when ``q_a = 4``; GPT-2 runs
      its softmax in the activation dtype); SDPA / FlashAttention saves the fp32
      log-sum-exp, ``4·a·sb``;
    * unfused SwiGLU saves ``act(gate)`` as well: ``q_a·sbf`` more per gated MLP
      (and per routed token copy of an expert, per shared expert);
    * gpt-oss: its eager attention's softmax has the sink as one more column and keeps the row
      max's int64 indices (``(q_a + 8)·a·sb``) but no fp32 copy, and its clamped
      SwiGLU keeps 3 more MLP-width tensors per routed copy (:data:`HF_MLP_EXTRA`);
    * a Python-composite activation (``model.hf_activation``: GPT-2's ``gelu_new``,
      GPT-NeoX-20B's ``gelu_fast``, …) saves ``n`` more MLP-width tensors,
      ``n·q_a·sbf`` per MLP (:data:`llmplan.model.HF_COMPOSITE_ACTIVATIONS`: 3 for
      ``gelu_new``, 6 for ``gelu_fast``); ``nn.ReLU`` saves its output — which the
      down-projection saves anyway — instead of its input, ``q_a·sbf`` fewer (OPT);
    * MoE layers (transformers' default ``grouped_mm`` experts) also keep each routed
      copy's expert output (``q_a·h``) for the gradient of its routing weight;
      DeepSeek-V2/V3's router multiplies in fp32 and saves an fp32 copy of its input.

    These extras follow ``core_attn`` only (transformers has no selective recomputation).

    Not modelled (measured and documented by the oracle tests): routing indices and
    weights (a few bytes per token), rotary ``cos``/``sin`` (shared by all layers) and
    HF's MLA class.
    """
    sbh = s * b * h
    if recompute == "full":
        return q_a * sbh / (t if tp_sp else 1)
    if recompute == "selective":
        rec = set(DEFAULT_RECOMPUTE_MODULES if modules is None else modules)
    else:
        rec = set()
    ql = q_lin if linear_inputs else q_a  # a Linear layer's cached input
    qf = q_act if act_inputs else q_a  # an activation function's cached input
    norm_out = 0 if "layernorm" in rec else 1  # a norm's output is stored (as the next Linear's input)
    attn_in = norm_out * ql * sbh  # the attention input: the first norm's output
    if model.mla is not None:
        latent = r_kv + (r_q if model.mla.q_lora_rank is not None else 0)
        # each latent is the input of its norm (q_a) and, normalised, of its up-projection (q_lin);
        # K's RoPE part is saved inside K (RoPE itself saves only cos/sin)
        attn_replicated = attn_in + q_a * s * b * latent + norm_out * ql * s * b * latent
        if "mla_up_proj" in rec:  # Q, K, V recomputed from the latents; the RoPE key's input kept
            qkv = sympy.Integer(0)
            attn_replicated += q_a * s * b * d_rope
        else:
            qkv = a * (d_nope + d_rope) + a * (d_nope + d_rope) + a * d_v
        attn_sharded = q_a * s * b * (qkv + a * d_v)  # + the output-projection input
    else:
        attn_sharded = q_a * s * b * (2 * a * d + 2 * a_kv * d)  # Q, output-projection input, K, V
        attn_replicated = attn_in

    def inner(width, *, recompute_act: bool):
        """An MLP's inner tensors: activation input(s) at q_act, its output (the down-projection's input) at q_lin."""
        act_in = (2 if model.gated else 1) * qf * s * b * width
        return act_in + (0 if recompute_act else ql * s * b * width)

    if moe_layer:
        # per routed token copy; expert-TP splits f_e
        mlp_sharded = k * inner(f_e, recompute_act="moe_act" in rec) * t / t_e
        # input (the router's, kept in BF16), k dispatched copies (the experts' Linear inputs), fp32 router logits
        mlp_replicated = norm_out * q_a * sbh + k * ql * sbh + 4 * s * b * E
        if model.moe.shared_experts and "shared_experts" not in rec:
            mlp_sharded += E_s * inner(f_s, recompute_act=False)
            if model.moe.shared_expert_gate:
                # Qwen2-MoE: sigmoid(gate)·shared keeps both factors for its backward, the shared
                # experts' output (q_a·sbh) and the per-token gate (q_a·sb)
                mlp_replicated += q_a * s * b * (h + 1)
    else:
        mlp_sharded = 0 if "mlp" in rec else inner(f, recompute_act=False)
        mlp_replicated = norm_out * ql * sbh
    # the norms' inputs: the layer input and the residual after attention; with a parallel
    # residual both norms read the layer input, one stored tensor
    replicated = (1 if model.parallel_residual else 2) * q_a * sbh + attn_replicated + mlp_replicated
    if model.sandwich_norm:  # the post-norms' inputs: the attention and MLP outputs
        replicated += 2 * q_a * sbh
    if model.dropout:
        replicated += 2 * sbh
    scores = sympy.Integer(0)
    if not flash and "core_attn" not in rec:
        scores = q_a * a * s**2 * b
        if model.attn_softcap is not None:  # Gemma 2: c·tanh(scores/c) keeps its tanh output
            scores += q_a * a * s**2 * b
        if model.dropout:
            scores += a * s**2 * b + q_a * a * s**2 * b
    if hf:
        extra_replicated, extra_sharded = _hf_extras(model, flash=flash, core_recomputed="core_attn" in rec, moe_layer=moe_layer)
        replicated += extra_replicated
        scores += extra_sharded
    sharded = attn_sharded + mlp_sharded + scores
    return replicated / (t if tp_sp else 1) + sharded / t


#: MLP-width tensors a transformers class's activation keeps beyond an unfused SwiGLU: gpt-oss's
#: clamped SwiGLU (``GptOssExperts._apply_gate``) also keeps the clamped gate, the sigmoid and
#: ``up + 1`` (measured by ``tests/oracle/test_oracle_activations.py``)
HF_MLP_EXTRA = {"gpt_oss": 3}

#: transformers classes whose RMSNorm multiplies by its weight in fp32 before casting back, so
#: the normalised ``x̂`` is kept in fp32: class → fp32 weight bytes it also keeps per element of
#: width (GemmaRMSNorm's ``1 + w``: 4; GptOssRMSNorm multiplies by the weight itself: 0).
#: Measured by ``tests/oracle/test_oracle_activations.py``.
FP32_XHAT_NORM = {"gemma": 4, "gemma2": 4, "gemma3_text": 4, "gpt_oss": 0}

#: transformers classes that apply RoPE to slices of one fused QKV projection (the output
#: projection's input is a copy of the fused attention kernel's output; measured by
#: ``tests/oracle/test_oracle_activations.py``)
ROPE_ON_FUSED_QKV = frozenset({"gpt_neox", "phi3"})


def _hf_extras(model, *, flash: bool, core_recomputed: bool, moe_layer: bool) -> tuple[sympy.Expr, sympy.Expr]:
    """(replicated, head/width-sharded) bytes Hugging Face modules save beyond Korthikanti's count."""
    sb = s * b
    replicated = sympy.Integer(0)
    sharded = sympy.Integer(0)
    norms = 4 if model.sandwich_norm else 2
    w_fp32 = FP32_XHAT_NORM.get(model.hf_model_type or "")
    if w_fp32 is not None:  # fp32 input copy and fp32 x̂ (instead of the q_a input), rsqrt, fp32 weight
        replicated += norms * ((8 - q_a) * sb * h + 4 * sb + w_fp32 * h)
    elif model.norm == "rmsnorm":
        replicated += norms * (4 * sb * h + 4 * sb)  # fp32 input copy (or x̂ in fp32) + fp32 rsqrt
    else:
        replicated += norms * 8 * sb  # nn.LayerNorm: fp32 mean and rstd
    if model.mla is not None:  # the latents' RMSNorms, as above
        latents = [r_kv] + ([r_q] if model.mla.q_lora_rank is not None else [])
        replicated += sum(4 * sb * width + 4 * sb for width in latents)
    if model.qk_norm != "none" and model.mla is None:
        rows = a + a_kv if model.qk_norm == "head" else 2  # rsqrt per head, or per token for q and k
        if w_fp32 is not None:  # fp32 copy and fp32 x̂ of Q and K, rsqrt, and the two fp32 weights of width d
            sharded += 8 * sb * (a + a_kv) * d + 4 * sb * rows
            replicated += 2 * w_fp32 * d
        else:
            sharded += (4 + q_a) * sb * (a + a_kv) * d + 4 * sb * rows
    if not core_recomputed:
        if flash:
            sharded += 4 * a * sb  # fp32 log-sum-exp of the fused kernel
            if model.hf_model_type in ROPE_ON_FUSED_QKV:  # the kernel's head-major output, copied
                sharded += q_a * sb * a * d
        else:
            if model.mla is None:
                sharded += 2 * q_a * sb * (a - a_kv) * d  # repeat_kv: K and V with a heads
            if model.hf_model_type not in ("gpt2", "gpt_oss"):  # softmax(dtype=float32).to(q_a)
                sharded += sympy.Piecewise((0, sympy.Eq(q_a, 4)), (4 * a * s**2 * b, True))
            if model.attention_sinks:  # gpt-oss: the sink joins the softmax as one more column,
                sharded += q_a * a * s * b + 8 * a * s * b  # and the row max's int64 indices are kept
    # MLP-width tensors beyond the native count: act(gate) of an unfused gated MLP, a
    # Python-composite activation's intermediates, ReLU's unsaved input
    width_extra = (1 if model.gated else 0) + HF_COMPOSITE_ACTIVATIONS.get(model.hf_activation or "", 0) - (
        1 if model.mlp == "relu" else 0) + HF_MLP_EXTRA.get(model.hf_model_type or "", 0)
    if width_extra:
        if moe_layer:
            sharded += width_extra * k * sb * q_a * f_e * t / t_e  # per routed copy
            if model.moe.shared_experts:
                sharded += width_extra * E_s * q_a * sb * f_s
        else:
            sharded += width_extra * q_a * sb * f
    if moe_layer:
        replicated += k * q_a * sb * h  # each routed copy's expert output, for its routing weight's gradient
        if model.hf_model_type in ("deepseek_v2", "deepseek_v3"):  # F.linear(x.float(), W.float()): an fp32 copy of the router input
            replicated += sympy.Piecewise((0, sympy.Eq(q_a, 4)), (4 * sb * h, True))
    return replicated, sharded


def _holds_last(plan) -> bool:
    """Whether the reported GPU (the first stage's) also holds the last stage: pp = 1, or
    DualPipe, whose GPU 0 holds stages 0 and pp − 1."""
    par = plan.parallelism
    return par.pp == 1 or par.pp_schedule == "dualpipe"


def _embedding_on_gpu(q: Definitions) -> sympy.Expr:
    """Embedding / LM head parameters on the pipeline rank ``q`` describes."""
    plan = q.plan
    stage = q.stage if plan.parallelism.uneven_stages else None
    return embedding_params_on_gpu(plan.model, _holds_last(plan), stage)


def define(q: Definitions) -> None:
    """Add ``memory.*`` quantities."""
    plan = q.plan
    model, par, method = plan.model, plan.parallelism, plan.method
    single_stage = par.pp == 1
    zero = par.zero
    edp = n_dp / e  # expert-data-parallel group: experts are replicated dp/ep times
    # DualPipe: GPU 0 holds stages 0 and pp−1 (two stages' layers, embedding and LM head)
    dual = par.pp_schedule == "dualpipe" and not single_stage
    holds_last = _holds_last(plan) or q.stage == "last"  # the reported GPU holds the last stage
    stages = 2 if dual else 1
    mtp_dense, mtp_experts = mtp_params_on_gpu(model) if holds_last and method.trains_mtp(model) else (0, 0)
    dual_src = "; DualPipe: two stages per GPU (DeepSeek-V3 report Table 2)" if dual else ""
    mtp_src = "; + the trained MTP modules (DeepSeek-V3 report §2.2)" if mtp_dense != 0 else ""
    P_ne = q.define(
        "memory.params_on_gpu.dense",
        "P_gpu",
        stages * L_s * nonexpert_layer_params(model) / t
        + _embedding_on_gpu(q)
        + (P.final_norm(model) if holds_last else 0)  # the norm after the last block, on the last stage
        + mtp_dense,
        "params",
        "non-expert parameters held by the reported GPU (before ZeRO sharding)",
        "Megatron-LM tensor/pipeline sharding (Shoeybi et al. 2019; Narayanan et al. 2021)" + dual_src + mtp_src,
    )
    P_ex = q.define(
        "memory.params_on_gpu.experts",
        "P_gpu_e",
        stages * L_s * expert_params_per_layer(model) / (e * t_e) + mtp_experts,
        "params",
        "routed-expert parameters held by the reported GPU (E/ep experts per MoE layer)",
        "expert parallelism: GShard (Lepikhin et al. 2020)" + dual_src + mtp_src,
    )

    adapter = method.adapter
    if adapter is None:
        trainable = P_ne + P_ex
        trainable_src = "every parameter trains"
    else:
        from ..symbols import N_tr

        trainable = N_tr * L_s / (L * t)
        trainable_src = "LoRA adapters (Hu et al. 2021), spread over stages and TP like their layers"
    P_tr = q.define(
        "memory.params_on_gpu.trainable",
        "P_gpu_tr",
        trainable,
        "params",
        "trainable parameters held by the reported GPU (before ZeRO sharding)",
        trainable_src,
    )

    def sharded(stage_from: int, dense, experts=0):
        if zero >= stage_from:
            return dense / n_sh + experts / edp  # n_sh: the shard group (n_dp unless dp_shard)
        return dense + experts

    offload = par.offload
    q_grad, q_master = q_g, q_m
    grad_src = opt_src = ZERO_SRC
    if adapter is None:
        weight_bytes = q_w * sharded(3, P_ne, P_ex)
        weight_src = ZERO_SRC
        grad_params = sharded(2, P_ne, P_ex)
        opt_params = sharded(1, P_ne, P_ex)
        if par.sharding == "fsdp" and zero >= 2:
            # PyTorch FSDP keeps each parameter sharded in its stored dtype — the fp32 master
            # under mixed precision (MixedPrecisionPolicy casts a gathered copy for compute) —
            # and its gradient shard in that dtype too, whatever the reduce dtype
            # (tests/oracle/test_oracle_comm.py measures FSDP2's shards)
            rest = q_m if plan.precision.dtype("master") is not None else q_w
            q_grad = rest
            grad_src = "PyTorch FSDP: gradient shards in the parameters' stored dtype (the fp32 master under mixed precision)"
            if zero == 3:
                weight_bytes, q_master = rest * sharded(3, P_ne, P_ex), 0
                weight_src = "PyTorch FSDP: parameter shards in their stored dtype (the fp32 master under mixed precision)"
                opt_src = "optimizer states; under FSDP the parameter shard is the master copy"
            else:  # SHARD_GRAD_OP: the unsharded compute copy (weights) and the shard it is gathered from
                q_master = rest
                opt_src = "optimizer states and the parameter shard FSDP keeps between steps (the master copy)"
    else:
        frozen = frozen_weight_bytes(q, P_ne, P_ex)
        weight_bytes = sharded(3, frozen + q_w * P_tr)
        weight_src = (
            "frozen base at q_base bytes (NF4 + absmax constants for QLoRA, Dettmers et al. 2023 §3), embeddings "
            + ("" if plan.method.experts_quantized or not model.is_moe else "and routed experts ")
            + "16-bit, adapters at q_w"
        )
        grad_params = sharded(2, P_tr)
        opt_params = sharded(1, P_tr)
    q.define(
        "memory.per_gpu.weights",
        "M_w",
        0 if offload == "optimizer+params" else weight_bytes,
        "B",
        "weights on the GPU (ZeRO-3 shards them over dp; expert weights over dp/ep)",
        weight_src,
    )
    q.define(
        "memory.per_gpu.gradients",
        "M_g",
        q_grad * grad_params,
        "B",
        "gradients of the trainable parameters (ZeRO-2/3 shard them over dp)",
        grad_src,
    )
    q.define(
        "memory.per_gpu.optimizer",
        "M_o",
        0 if offload != "none" else (q_master + q_o) * opt_params,
        "B",
        "optimizer states and the fp32 master copy of the trainable parameters (ZeRO-1+ shard them over dp)",
        opt_src,
    )
    flash = par.flash_attention
    rec = par.recompute
    hf = par.framework == "hf"  # [parallelism] framework: Hugging Face modules' saved tensors
    act_src = KORTHIKANTI + ("; + what Hugging Face transformers modules save (framework = \"hf\")" if hf else "")
    modules = par.selective_modules  # [parallelism] recompute_modules in force
    # [precision] linear_inputs / activation_func_inputs: cached formats of saved tensors
    prec = plan.precision
    formats = dict(linear_inputs=prec.linear_inputs is not None or prec.dtype("linear_inputs") != prec.dtype("activations"),
                   act_inputs=plan.precision.activation_func_inputs is not None)
    if rec == "selective" and modules != DEFAULT_RECOMPUTE_MODULES:
        act_src += "; selective recomputation of " + ", ".join(modules or ("nothing",)) + " (Megatron-Core recompute_modules; DeepSeek-V3 report §3.2.3)"
    if any(formats.values()):
        act_src += "; cached Linear / activation-function inputs in their own dtype (DeepSeek-V3 report §3.3.3)"

    def average(mode: str, cached: bool = True) -> sympy.Expr:
        kw = dict(tp_sp=par.sp, flash=flash, recompute=mode, hf=hf, modules=modules, **(formats if cached else {}))
        dense = activations_per_layer(model, moe_layer=False, **kw)
        if not model.is_moe:
            return dense
        moe = activations_per_layer(model, moe_layer=True, **kw)
        return (L_dense * dense + L_moe * moe) / L

    if par.partial_recompute:
        from .flops import recomputed_layer_fraction

        # [parallelism] recompute_layers: the first n_rc layers of each model chunk store their
        # input only, the others everything (Megatron-LM's block method)
        rho_s = q.define(
            "memory.recomputed_layer_fraction",
            "rho_rc_s",
            recomputed_layer_fraction(L_s),
            "1",
            "fraction of the reported stage's layers full recomputation recomputes ([parallelism] recompute_layers "
            "of each of its model chunks)",
            recomputed_layer_fraction.source,
        )
        A_layer = q.define(
            "memory.activations_per_layer",
            "A_layer",
            (rho_s * average("full") + (1 - rho_s) * average("none")) / c,
            "B",
            "activations one layer stores per micro-batch, averaged over the stage's recomputed layers (input only) and "
            "the others (everything) and over dense/MoE layers; ÷ cp",
            act_src + "; Megatron-LM --recompute-method block",
        )
    elif par.grouped_recompute:
        from ..symbols import n_rc

        # recompute_method = "uniform": each chunk of L_s/v layers cut into groups of n_rc,
        # only each group's input stored (Megatron-LM's uniform method)
        groups = q.define(
            "memory.checkpoint_groups",
            "g_rc",
            v * sympy.ceiling(L_s / (v * n_rc)),
            "groups",
            "checkpointed groups of recompute_layers layers on the reported stage (each of its v chunks cut apart)",
            "Megatron-LM --recompute-method uniform",
        )
        A_layer = q.define(
            "memory.activations_per_layer",
            "A_layer",
            groups * average("full") / (L_s * c),
            "B",
            "activations one layer stores per micro-batch on average: one group input per recompute_layers layers; ÷ cp",
            act_src + "; Megatron-LM --recompute-method uniform",
        )
    else:
        A_layer = q.define(
            "memory.activations_per_layer",
            "A_layer",
            average(rec) / c,
            "B",
            "activations one layer stores per micro-batch (average over dense/MoE layers; ÷ cp)",
            act_src,
        )
    q.define(
        "memory.activations_per_layer_no_recompute",
        "A_layer0",
        average("none", cached=False) / c,
        "B",
        "activations one layer would store per micro-batch without recomputation, in the activation dtype "
        "(no cached Linear / activation-function input formats; ÷ cp): the tensors the elementwise kernels read and write",
        KORTHIKANTI + ("; + what Hugging Face transformers modules save (framework = \"hf\")" if hf else ""),
    )
    A_rec = q.define(
        "memory.activations_recomputed_per_layer",
        "A_layer_rec",
        (average("none") - average(rec)) / c if rec != "none" else sympy.Integer(0),
        "B",
        "activations recomputation re-creates per layer and micro-batch in the backward pass (÷ cp): what the "
        "layer would store without recomputation less what it stores",
        act_src,
    )
    if par.pp_schedule == "gpipe":
        in_flight = m
    elif par.pp_schedule == "interleaved":
        # Megatron-Core's interleaved 1F1B: rank i runs 2(p−1−i) + (v−1)·p warm-up forwards
        # of one chunk (L_s/v layers) each, capped at the m·v it has, then one more before
        # its first backward — L_s·min(p + (p−1−2i)/v, m) layer-micro-batches. On the first
        # stage, with m ≥ p + (p−1)/v, this is Korthikanti's p·L_s times Megatron-LM's
        # penalty 1 + (p−1)/(p·v); with fewer micro-batches every forward runs before the
        # first backward and each layer holds all m (Megatron-LM's estimate keeps the penalty)
        in_flight = sympy.Min(p + (p - 1 - 2 * i_pp) / v, m)
    elif dual:
        in_flight = sympy.Min(p + 1, m)  # DeepSeek-V3 report Table 2: "Activation PP+1"
    else:
        in_flight = sympy.Min(p - i_pp, m)  # 1F1B: rank i warms up with p − 1 − i forwards, then one more
    acts = L_s * in_flight * A_layer
    if par.partial_recompute:
        # the block method recomputes each chunk's *first* layers, whose backward runs after the
        # chunk's other layers have freed their activations: a recomputed layer's transient
        # adds to the peak only when every layer of the chunk is recomputed
        acts += sympy.Piecewise((A_rec, sympy.Ge(rho_s, 1)), (0, True))
    elif par.grouped_recompute:
        from ..symbols import n_rc

        # the backward recomputes a whole group at once, holding its layers' full activations
        # (its own input among them) with the inputs of the groups before it: the last group of
        # a chunk (r layers, r ≤ n_rc) with every input still stored, or a whole group once the
        # last one's input is freed — whichever is larger
        chunk = L_s / v
        last = chunk - (sympy.ceiling(chunk / n_rc) - 1) * n_rc
        acts += sympy.Max(last * average("none") - average("full"),
                          sympy.Min(n_rc, chunk) * average("none") - 2 * average("full")) / c
    elif rec != "none":
        # the layer being recomputed in the backward pass holds its full activations again
        acts += A_rec
    if holds_last:
        acts += (q_a + 4) * s * b * V / (t * c)  # logits and their fp32 copy for the loss
        if model.logit_softcap is not None:  # c·tanh(logits/c): the tanh output as well
            acts += q_a * s * b * V / (t * c)
    if mtp_dense != 0:
        from ..symbols import L_mtp

        acts += L_mtp * A_layer  # the MTP blocks of the last stage's micro-batch
    q.define(
        "memory.per_gpu.activations",
        "M_a",
        acts,
        "B",
        "activations of the in-flight micro-batches on the reported GPU's stage — the first, unless uneven stages "
        "make another rank the most loaded (+ logits and the trained MTP modules' activations when the GPU holds "
        "the last stage: pp = 1, DualPipe, or the last rank)",
        KORTHIKANTI + "; Megatron-LM theoretical_memory_usage.py (interleaving penalty)"
        + ("; DeepSeek-V3 report Table 2 (DualPipe: PP + 1 micro-batches)" if dual else ""),
    )
    other = M_over
    if adapter is not None:
        from ..symbols import q_base as layer_bytes  # frozen layers are gathered in their stored format
    else:
        layer_bytes = q_w
    if zero == 3:
        other += 2 * layer_bytes * nonexpert_layer_params(model) / t  # two gathered layers (prefetch)
    if offload == "optimizer+params":
        other += 2 * layer_bytes * nonexpert_layer_params(model) / t
    q.define(
        "memory.per_gpu.other",
        "M_other",
        other,
        "B",
        "CUDA context, allocator fragmentation and communication buffers (efficiency.memory_overhead), "
        "plus ZeRO-3's gathered layers",
        "assumed; see docs/concepts.md#memory",
    )
    define_total(q, with_kv=False)


def frozen_weight_bytes(q: Definitions, P_ne, P_ex) -> sympy.Expr:
    """Bytes of a LoRA plan's frozen base on the GPU before sharding: ``q_base`` for the
    quantised layers (NF4 + absmax constants for QLoRA, Dettmers et al. 2023 §3), ``q_w`` for
    the embeddings and — unless ``[method.lora] quantize_experts`` — the routed experts
    (transformers 5 + bitsandbytes keep the fused 3-D expert tensors 16-bit, bitsandbytes #1849)."""
    from ..symbols import q_base

    plan = q.plan
    emb = _embedding_on_gpu(q)
    if plan.method.experts_quantized:
        return q_base * (P_ne - emb + P_ex) + q_w * emb
    return q_base * (P_ne - emb) + q_w * (emb + P_ex)


def define_total(q: Definitions, *, with_kv: bool) -> None:
    """Add ``memory.per_gpu.total``, ``memory.capacity`` and ``memory.headroom``."""
    keys = ["weights", "gradients", "optimizer", "activations", "other"] + (["kv_cache"] if with_kv else [])
    total = sum(q.ref(f"memory.per_gpu.{k}") for k in keys)
    q.define("memory.per_gpu.total", "M_total", total, "B", "total on the most loaded GPU", "sum of the parts")
    q.define("memory.capacity", "M_cap_", M_cap, "B", "usable memory of the GPU", "catalog")
    q.define("memory.headroom", "M_free", M_cap - q.ref("memory.per_gpu.total"), "B", "capacity − total", "-")
