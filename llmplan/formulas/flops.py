"""FLOPs: model FLOPs per token and per step, and hardware FLOPs with recomputation.

Conventions (binding, ``plan-format.md``): a multiply-add is 2 FLOPs; every
matrix multiply counts, the LM head included; the attention score and value
products are counted in full (non-causal, ``2·s·d`` per head per token each, as
Narayanan et al. 2021 and ``torch.utils.flop_counter.FlopCounterMode`` count
them); embedding lookups, norms, activations and softmax are excluded (they are
< 1 % of the total for models above ~1B parameters). Backward = 2 × forward
(input and weight gradients), so training = 3 × forward (Kaplan et al. 2020;
Narayanan et al. 2021 eq. (3), which adds a 4th pass for full recomputation).

Checked exactly (``tests/oracle/test_oracle_flops.py``) against ``FlopCounterMode``
on one training step of the real transformers classes (Llama, Qwen3, Mixtral,
Qwen3-MoE, DeepSeek-V3, GPT-2, GPT-NeoX; eager and SDPA attention). With a fused
SDPA kernel the counter also charges FlashAttention's recomputation of ``QKᵀ`` in the
backward pass (its backward rule is 2.5 × the forward core): ``2·s·a·d_qk`` per token
and layer that model FLOPs exclude as recomputation and ``flops.hardware_total`` does
not add either.
"""

from __future__ import annotations

import attrs
import sympy

from ..symbols import B, D, E, E_s, L, L_dense, L_moe, L_win, V, W_win, a, a_kv, d, d_nope, d_rope, d_v, f, f_e, f_s, h, k, r_kv, r_q, s
from . import Definitions, formula
from . import params as P

NARAYANAN = "Narayanan et al. 2021 (SC'21) eq. (3) and §5.1"


def _mla_up_proj(model) -> sympy.Expr:
    """Forward FLOPs per token of one MLA layer's up-projections: Q's (from its latent, or from
    the hidden state without one) and K/V's, ``2·r_kv·a·(d_nope + d_v)``."""
    q_in = h if model.mla.q_lora_rank is None else r_q
    return 2 * q_in * a * (d_nope + d_rope) + 2 * r_kv * a * (d_nope + d_v)


@formula("attention_matmul_per_token", "2 FLOPs per weight of the Q/K/V/O (or MLA) projections")
def attention_matmul_per_token(model) -> sympy.Expr:
    """Forward FLOPs of one layer's attention projections for one token: 2 × their weights."""
    if model.mla is not None:
        q_down = 0 if model.mla.q_lora_rank is None else h * r_q
        kv_down = h * (r_kv + d_rope)
        return 2 * (q_down + kv_down + a * d_v * h) + _mla_up_proj(model)
    return 2 * (2 * h * a * d + 2 * h * a_kv * d)


@formula("attention_core_per_token", "QKᵀ and attention×V: 2·s·d each per head, full (non-causal) s")
def attention_core_per_token(model) -> sympy.Expr:
    """Forward FLOPs of one layer's score and value products for one token: ``2·s·a·(d_qk + d_v)``
    (``s`` → :func:`attended_keys`, the layer average, with sliding-window layers)."""
    keys = attended_keys(model)
    if model.mla is not None:
        return 2 * keys * a * (d_nope + d_rope) + 2 * keys * a * d_v
    return 4 * keys * a * d


@formula("attended_keys", "keys per query, full-count convention: s; sliding-window layers drop the (s − W)² masked triangle")
def attended_keys(model, ctx=s) -> sympy.Expr:
    """Keys per query of a sequence of ``ctx`` tokens, averaged over the layers, in the
    convention of the FLOP counts here (causal attention counted as ``ctx`` keys per query,
    as Narayanan et al. 2021 count it; the kernel executes about half).

    A sliding-window layer (``model.sliding_window`` = W: a query sees itself and the
    W − 1 keys before it) masks, beyond the causal mask, the triangle of query–key pairs
    at distance ≥ W: ``(ctx − W)²`` of the ``ctx²`` counted pairs (dropping the
    ``ctx − W`` diagonal pairs, as the causal count drops its ``ctx``). Averaged over
    ``L_win`` of ``L`` layers: ``ctx − L_win·max(0, ctx − W)²/(L·ctx)``. A FlashAttention
    kernel with a window skips those blocks (FlashAttention-2's ``window_size``); a dense
    mask (PyTorch SDPA with ``attn_mask``, eager attention) computes them anyway —
    ``FlopCounterMode`` counts a masked SDPA in full.
    """
    if model.sliding_window is None:
        return ctx
    return ctx - L_win * sympy.Max(0, ctx - W_win) ** 2 / (L * ctx)


@formula("flash_backward_recompute_per_token", "FlashAttention recomputes S = QKᵀ in its backward pass: 2·s·a·d_qk")
def flash_backward_recompute_per_token(model) -> sympy.Expr:
    """Hardware FLOPs per token per layer that a fused attention backward spends recomputing ``QKᵀ``."""
    d_qk = (d_nope + d_rope) if model.mla is not None else d
    return 2 * attended_keys(model) * a * d_qk


def _mlp_matmul(model, width) -> sympy.Expr:
    return 2 * (3 if model.gated else 2) * h * width


def _router_matmul(model) -> sympy.Expr:
    """The router ``Linear(h, E)`` (+ Qwen2-MoE's shared-expert gate ``Linear(h, 1)``), 2 FLOPs per weight."""
    return 2 * h * E + (2 * h if model.moe.shared_expert_gate else 0)


@formula("mlp_per_token", "2 FLOPs per MLP weight: 6·h·f gated, 4·h·f plain")
def mlp_per_token(model) -> sympy.Expr:
    """Forward FLOPs of all MLPs (dense, routed top-k, shared, router) for one token, all layers."""
    dense_layers = L_dense if model.is_moe else L
    expr = dense_layers * _mlp_matmul(model, f)
    if model.is_moe:
        expr += L_moe * (k * _mlp_matmul(model, f_e) + _router_matmul(model))
        if model.moe.shared_experts:
            expr += L_moe * E_s * _mlp_matmul(model, f_s)
    return expr


#: The :func:`gemm_shapes` GEMMs whose forward pass each ``[parallelism] recompute_modules``
#: entry repeats (``core_attn`` is the attention core, charged apart; ``layernorm`` and
#: ``moe_act`` recompute elementwise kernels only).
RECOMPUTED_GEMMS: dict[str, tuple[str, ...]] = {
    "mla_up_proj": ("q_up", "q", "kv_up"),
    "mlp": ("mlp_up", "mlp_down"),
    "shared_experts": ("shared_up", "shared_down"),
}


@formula("selective_recompute_per_token", "Korthikanti et al. 2022 §5 (attention core); Megatron-Core recompute_modules; DeepSeek-V3 report §3.2.3")
def selective_recompute_per_token(model, modules: tuple[str, ...] = ("core_attn",), mtp: bool = False) -> sympy.Expr:
    """Forward FLOPs per token that ``recompute = "selective"`` repeats in the backward pass.

    Per layer (and per trained MTP block, ``mtp``): ``core_attn`` the attention core
    ``2·s·a·(d_qk + d_v)``; ``mla_up_proj`` the MLA up-projection GEMMs
    (:func:`_mla_up_proj`); ``mlp`` a dense layer's MLP GEMMs ``2·(3 or 2)·h·f``;
    ``shared_experts`` a MoE layer's shared-expert GEMMs ``E_s·2·(3 or 2)·h·f_s``.
    ``layernorm`` and ``moe_act`` recompute elementwise kernels only: no matrix-multiply
    FLOPs (the convention of this module); their memory traffic is charged in
    ``time.elementwise_seconds``. Modules that do not apply to the model add nothing.
    """
    from ..symbols import L_mtp

    blocks = L + L_mtp if mtp else L
    extra = sympy.Integer(0)
    if "core_attn" in modules:
        extra += blocks * attention_core_per_token(model)
    if "mla_up_proj" in modules and model.mla is not None:
        extra += blocks * _mla_up_proj(model)
    moe_block = mtp and _mtp_block_is_moe(model)
    if "mlp" in modules:
        dense_layers = (L_dense if model.is_moe else L) + (L_mtp if mtp and not moe_block else 0)
        extra += dense_layers * _mlp_matmul(model, f)
    if "shared_experts" in modules and model.is_moe and model.moe.shared_experts:
        extra += (L_moe + (L_mtp if moe_block else 0)) * E_s * _mlp_matmul(model, f_s)
    return extra


@formula("recomputed_layer_fraction", "Megatron-LM --recompute-method block --recompute-num-layers (Megatron-Core TransformerBlock)")
def recomputed_layer_fraction(layers) -> sympy.Expr:
    """Fraction of a pipeline stage's ``layers`` that ``recompute = "full"`` with
    ``[parallelism] recompute_layers`` (``n_rc``) recomputes: each of the stage's ``v`` model
    chunks recomputes its first ``n_rc`` layers, at most all of them — ``min(1, v·n_rc / layers)``.

    Exact for chunks of equal size. With uneven chunks (``layers`` not divisible by ``v``)
    a chunk smaller than ``n_rc`` caps earlier than the formula does; llmplan prices the
    stage's average chunk.
    """
    from ..symbols import n_rc, v

    return sympy.Min(1, v * n_rc / layers)


def early_stop_gemms(model) -> tuple[str, ...]:
    """The :func:`gemm_shapes` GEMMs at the end of a decoder layer that torch's non-reentrant
    checkpoint does not run again (``framework = "hf"``: transformers' default
    ``use_reentrant = False``): its recomputation stops after the last operation whose saved
    tensors the backward pass needs, and nothing saves the output of a layer's last
    projection when only the residual add follows it.

    That is the dense MLP's down projection, and an ungated shared expert's (DeepSeek-V2/V3
    run the shared experts last); nothing under sandwich norms (Gemma 2/3: a post-norm saves
    its input), with dropout (its mask is saved, so the projection before it runs again) or
    after a MoE layer's routed experts (the combine saves their outputs). Measured with
    ``FlopCounterMode`` in ``tests/oracle/test_oracle_flops.py``.
    """
    if model.sandwich_norm or model.dropout:
        return ()
    out = ("mlp_down",)
    if model.is_moe and model.moe.shared_experts and not model.moe.shared_expert_gate:
        out += ("shared_down",)
    return out


def not_rerun_gemms(plan) -> tuple[str, ...]:
    """The :func:`early_stop_gemms` that ``plan``'s full recomputation leaves out: all of them
    under ``framework = "hf"`` (torch's non-reentrant checkpoint), none under Megatron's
    checkpoint, which reruns the whole layer. The one place FLOPs, η_shape and the TP
    collectives ask."""
    return early_stop_gemms(plan.model) if plan.parallelism.framework == "hf" else ()


@formula("early_stop_skipped_per_token", "torch.utils.checkpoint (non-reentrant, early stop); measured with FlopCounterMode")
def early_stop_skipped_per_token(model) -> sympy.Expr:
    """Forward FLOPs per token that full recomputation under ``framework = "hf"`` does *not*
    repeat: the :func:`early_stop_gemms` of every layer — ``2·h·f`` per dense-MLP layer and
    ``2·h·E_s·f_s`` per MoE layer with ungated shared experts; 0 with sandwich norms or dropout."""
    gemms = early_stop_gemms(model)
    skipped = sympy.Integer(0)
    if "mlp_down" in gemms:
        skipped += (L_dense if model.is_moe else L) * 2 * h * f
    if "shared_down" in gemms:
        skipped += L_moe * 2 * h * E_s * f_s
    return skipped


def full_recompute_share(par) -> sympy.Expr:
    """The share of the layers whose forward (and its collectives) full recomputation repeats:
    1 for ``recompute = "full"``; with ``recompute_layers``, :func:`recomputed_layer_fraction`
    of the average stage (``L/p`` layers; exact for even stages); 0 otherwise."""
    if par.recompute != "full":
        return sympy.Integer(0)
    if not par.partial_recompute:  # every layer (recompute_method = "uniform" too: N at a time)
        return sympy.Integer(1)
    from ..symbols import p

    return recomputed_layer_fraction(L / p)


def recompute_share(q: Definitions) -> sympy.Expr:
    """:func:`full_recompute_share` of ``q``'s plan, as the quantity
    ``flops.recomputed_layer_fraction`` where it is one."""
    par = q.plan.parallelism
    return q.ref("flops.recomputed_layer_fraction") if par.partial_recompute else full_recompute_share(par)


def _mtp_block_is_moe(model) -> bool:
    """The MTP block has the shape of the model's last layer (:func:`llmplan.formulas.params.mtp`)."""
    return model.is_moe and (model.layers - 1) in model.moe_layer_ids()


def mtp_block_per_token(model) -> sympy.Expr:
    """Forward FLOPs of one MTP module's transformer block for one token (no projection, no head)."""
    block = attention_matmul_per_token(model) + attention_core_per_token(model)
    if _mtp_block_is_moe(model):
        block += k * _mlp_matmul(model, f_e) + _router_matmul(model)
        if model.moe.shared_experts:
            block += E_s * _mlp_matmul(model, f_s)
    else:
        block += _mlp_matmul(model, f)
    return block


@formula("mtp_forward_per_token", "DeepSeek-V3 report (arXiv 2412.19437) §2.2, Figure 3: Linear(2h→h), one transformer block, the shared output head")
def mtp_forward_per_token(model) -> sympy.Expr:
    """Forward FLOPs per token of the ``L_mtp`` multi-token-prediction modules.

    Each module (DeepSeek-V3 report §2.2) concatenates the previous depth's hidden state
    with the embedding of the next token (both RMS-normalised: no FLOPs here) and projects
    them with ``M_k ∈ R^{h×2h}`` (``2·2h·h``), runs one transformer block (the shape of the
    model's last layer, as in :func:`llmplan.formulas.params.mtp`: MoE for DeepSeek-V3,
    ``k`` routed experts, the shared expert and the router) and the shared output head
    (``2·h·V``); the embedding lookup is free. Every position is counted, also the last
    ``L_mtp`` of a sequence that have no target (a ``L_mtp/s`` overcount, 0.02 % at s = 4096).
    """
    from ..symbols import L_mtp

    if model.mtp_layers == 0:
        return sympy.Integer(0)
    return L_mtp * (2 * 2 * h * h + mtp_block_per_token(model) + 2 * h * V)


@formula("forward_per_token", NARAYANAN)
def forward_per_token(model) -> sympy.Expr:
    """Model forward FLOPs per token: layers (projections, attention core, MLPs) + LM head ``2·h·V``."""
    return L * (attention_matmul_per_token(model) + attention_core_per_token(model)) + mlp_per_token(model) + 2 * h * V


@attrs.frozen
class Gemm:
    """One matrix multiply ``C[rows × cols] = A[rows × inner] · B[inner × cols]`` of a forward pass.

    Attributes:
        name: what it computes (``"qkv"``, ``"mlp_up"``, ``"experts_down"`` …).
        rows: M, output rows on one GPU (tokens of one micro-batch; routed tokens per expert).
        cols: N, output columns on one GPU (output features after tensor-parallel splitting).
        inner: K, the reduction length (input features).
        count: GEMMs of this shape launched together (experts on one GPU, attention heads).
        per_micro_batch: how often it runs per micro-batch for the whole model (its layers).
        weight: it multiplies by a weight matrix (so the backward pass has a weight-gradient GEMM).
    """

    name: str
    rows: sympy.Expr
    cols: sympy.Expr
    inner: sympy.Expr
    count: sympy.Expr
    per_micro_batch: sympy.Expr
    weight: bool = True

    def passes(self, *, weight_grad: bool = True) -> list[tuple[sympy.Expr, sympy.Expr, sympy.Expr]]:
        """(M, N, K) of the forward GEMM and its backward GEMMs: ∂A = ∂C·Bᵀ (M × K, inner N) and
        ∂B = Aᵀ·∂C (K × N, inner M; skipped for a frozen weight)."""
        out = [(self.rows, self.cols, self.inner), (self.rows, self.inner, self.cols)]
        if weight_grad or not self.weight:
            out.append((self.inner, self.cols, self.rows))
        return out


def gemm_shapes(model, *, flash: bool = True) -> list[Gemm]:
    """The forward GEMMs one GPU runs per micro-batch, with their shapes under the layout.

    Tokens per micro-batch on a GPU are ``b·s/c`` (context parallelism splits the
    sequence; with sequence parallelism the column-parallel GEMMs see the gathered
    sequence, so tensor parallelism divides the output features, not the tokens —
    Megatron-LM's layout, Shoeybi et al. 2019, Korthikanti et al. 2022 §4.2.2). Fused
    Q/K/V and gate/up projections are one GEMM each, as in Megatron-LM. Routed experts
    are a grouped GEMM of ``E/e`` experts on one GPU, each receiving ``b·s·k·e/(c·E)``
    tokens with balanced routing. MLA's down-projections are replicated across tensor
    parallelism (Megatron-Core's MLA layout). Without FlashAttention the attention core
    is two batched GEMMs per head (``QKᵀ``: s × s, inner d; ``P·V``: s × d, inner s);
    with it the core is one fused kernel and is not listed here.
    """
    from ..symbols import b, c, e, t, t_e

    tok = b * s / c
    out: list[Gemm] = []
    if model.mla is not None:
        d_qk = d_nope + d_rope
        if model.mla.q_lora_rank is None:
            out.append(Gemm("q", tok, a * d_qk / t, h, 1, L))
        else:
            out += [Gemm("q_down", tok, r_q, h, 1, L), Gemm("q_up", tok, a * d_qk / t, r_q, 1, L)]
        out += [
            Gemm("kv_down", tok, r_kv + d_rope, h, 1, L),
            Gemm("kv_up", tok, a * (d_nope + d_v) / t, r_kv, 1, L),
            Gemm("attn_out", tok, h, a * d_v / t, 1, L),
        ]
        d_k, d_vv = d_qk, d_v
    else:
        out += [Gemm("qkv", tok, (a + 2 * a_kv) * d / t, h, 1, L), Gemm("attn_out", tok, h, a * d / t, 1, L)]
        d_k = d_vv = d
    if not flash:
        heads = b * a / t
        out += [
            Gemm("scores", s / c, s, d_k, heads, L, weight=False),
            Gemm("scores_v", s / c, d_vv, s, heads, L, weight=False),
        ]
    mats_in = 2 if model.gated else 1
    dense_layers = L_dense if model.is_moe else L
    out += [
        Gemm("mlp_up", tok, mats_in * f / t, h, 1, dense_layers),
        Gemm("mlp_down", tok, h, f / t, 1, dense_layers),
    ]
    if model.is_moe:
        per_expert = tok * k * e / E
        out += [
            Gemm("router", tok, E, h, 1, L_moe),
            Gemm("experts_up", per_expert, mats_in * f_e / t_e, h, E / e, L_moe),
            Gemm("experts_down", per_expert, h, f_e / t_e, E / e, L_moe),
        ]
        if model.moe.shared_experts:
            out += [
                Gemm("shared_up", tok, mats_in * E_s * f_s / t, h, 1, L_moe),
                Gemm("shared_down", tok, h, E_s * f_s / t, 1, L_moe),
            ]
        if model.moe.shared_expert_gate:  # Qwen2-MoE: sigmoid(Linear(h, 1)) scales the shared expert
            out.append(Gemm("shared_gate", tok, 1, h, 1, L_moe))
    out.append(Gemm("lm_head", tok, V / t, h, 1, 1))
    return out


def define(q: Definitions) -> None:
    """Add ``flops.*`` quantities."""
    plan = q.plan
    model = plan.model
    rec = plan.parallelism.recompute
    fwd = q.define(
        "flops.forward_per_token",
        "F_fwd",
        forward_per_token(model),
        "FLOP/token",
        "model forward FLOPs per token",
        NARAYANAN,
    )
    adapter = plan.method.adapter
    mtp = plan.method.trains_mtp(model)  # [method] mtp: the MTP modules train with the model
    if mtp:
        fwd_mtp = q.define(
            "flops.mtp_forward_per_token",
            "F_mtp",
            mtp_forward_per_token(model),
            "FLOP/token",
            "forward FLOPs per token of the trained multi-token-prediction modules",
            "DeepSeek-V3 report (arXiv 2412.19437) §2.2",
        )
    if plan.method.training and adapter is not None:
        from ..symbols import N_tr

        core = L * attention_core_per_token(model)
        per_token = q.define(
            "flops.per_token",
            "F_tok",
            2 * (fwd - core) + 3 * core + 6 * N_tr,
            "FLOP/token",
            "LoRA: frozen layers run forward and input-gradient GEMMs only (2 × forward), "
            "the attention core 3 ×, adapters 6 per parameter — ≈ 4·N per token instead of 6·N",
            "derived: backward = input gradients + weight gradients, the latter only for adapters (Hu et al. 2021)",
        )
    if plan.method.training:
        if adapter is None:
            per_token = q.define(
                "flops.per_token",
                "F_tok",
                3 * (fwd + fwd_mtp) if mtp else 3 * fwd,
                "FLOP/token",
                "model FLOPs per trained token: forward + backward (2× forward)"
                + (", the multi-token-prediction modules included" if mtp else ""),
                NARAYANAN + "; Kaplan et al. 2020 (6·N per token)" + ("; DeepSeek-V3 report §2.2 (MTP)" if mtp else ""),
            )
        from ..symbols import L_mtp

        blocks = L + L_mtp if mtp else L  # the MTP blocks recompute like the model's layers
        if rec == "full":
            extra = L * (attention_matmul_per_token(model) + attention_core_per_token(model)) + mlp_per_token(model)
            if mtp:
                extra += L_mtp * mtp_block_per_token(model)
            extra_src = "full recomputation repeats every layer's forward (Narayanan et al. 2021 eq. (3): 4 passes)"
            if not_rerun_gemms(plan):
                # torch's non-reentrant checkpoint stops before each layer's last projection
                extra -= early_stop_skipped_per_token(model)
                extra_src += "; but the layers' last projections, which torch's non-reentrant checkpoint does not rerun"
            if plan.parallelism.partial_recompute:
                # even stages: each holds L/p layers; uneven ones are priced at the average stage
                rho = q.define(
                    "flops.recomputed_layer_fraction",
                    "rho_rc",
                    full_recompute_share(plan.parallelism),
                    "1",
                    "fraction of the layers (and trained MTP blocks) full recomputation recomputes: "
                    "[parallelism] recompute_layers of each pipeline stage's model chunk",
                    recomputed_layer_fraction.source,
                )
                extra = rho * extra
                extra_src += "; only recompute_layers layers per model chunk (Megatron-LM's block method)"
        elif rec == "selective":
            modules = plan.parallelism.selective_modules
            extra = selective_recompute_per_token(model, modules, mtp)
            if modules == ("core_attn",):
                extra_src = "selective recomputation repeats the attention core (Korthikanti et al. 2022 §5)"
            else:
                extra_src = ("selective recomputation repeats the forward FLOPs of " + (", ".join(modules) or "nothing")
                             + " (Megatron-Core recompute_modules; DeepSeek-V3 report §3.2.3)")
        else:
            extra, extra_src = sympy.Integer(0), "no recomputation"
        if plan.parallelism.flash_attention:
            extra = extra + blocks * flash_backward_recompute_per_token(model)
            extra_src += "; FlashAttention's backward recomputes QKᵀ (Dao 2023 §3.1)"
        recompute = q.define(
            "flops.recompute_per_token", "F_rec", extra, "FLOP/token", "recomputed forward FLOPs per token", extra_src
        )
        q.define("flops.total", "F_total", per_token * D, "FLOP", "model FLOPs of the whole run (MFU basis)", NARAYANAN)
        q.define(
            "flops.hardware_total",
            "F_hw",
            (per_token + recompute) * D,
            "FLOP",
            "FLOPs executed, recomputation included (HFU basis)",
            NARAYANAN,
        )
        q.define(
            "flops.per_step",
            "F_step",
            (per_token + recompute) * B * s,
            "FLOP",
            "hardware FLOPs of one optimizer step (global batch)",
            NARAYANAN,
        )
        q.define(
            "flops.six_nd",
            "F_6ND",
            6 * P.active(model) * D,
            "FLOP",
            "the 6·N·D rule of thumb with N = active parameters (for comparison)",
            "Kaplan et al. 2020 §2.1",
        )
    else:
        q.define("flops.per_token", "F_tok", fwd, "FLOP/token", "forward FLOPs per processed token", NARAYANAN)
