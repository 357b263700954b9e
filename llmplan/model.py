"""The model: architecture shapes that parameter counts, FLOPs and memory are computed from.

A model is either :class:`Dense` or :class:`MoE` (``kind = "dense" | "moe"`` in TOML).
Attention is multi-head, grouped-query or multi-query (``kv_heads``) or, with an
:class:`MLA` block, DeepSeek's multi-head latent attention. The MLP is gated
(SwiGLU / GeGLU: three matrices) or plain (GELU / ReLU / squared-ReLU: two).

Every field is a plain number of elements (no units) unless said otherwise. The
options that change *which* parameters exist (biases, norms, positional tables,
tied embeddings) follow the Hugging Face implementations named by
``hf_model_type``; :mod:`llmplan.hf` reads them from a ``config.json``.
"""

from __future__ import annotations

from typing import Literal

import attrs

from .errors import PlanError, Problem

__all__ = ["MLA", "Experts", "Model", "Dense", "MoE", "MLP_KINDS", "GATED_MLPS"]

MLP_KINDS = ("swiglu", "geglu", "gelu", "relu", "squared-relu")
GATED_MLPS = ("swiglu", "geglu")
NORMS = ("rmsnorm", "layernorm", "layernorm-nobias")
QK_NORMS = ("none", "head", "full")
ATTENTION_BIASES = ("none", "qkv", "all")
POSITIONS = ("rope", "learned", "none")

#: transformers' Python-composite activation functions (``ACT2FN`` names) and how many more
#: MLP-width tensors their autograd graph saves for the backward pass than the native
#: kernel (``nn.GELU``, ``nn.SiLU``: only its input). Derived from each function's
#: expression (transformers 5 ``activations.py``; a product of two tensors saves both
#: factors, a product with a constant saves nothing) and measured by
#: ``tests/oracle/test_oracle_activations.py``:
#:
#: * ``gelu_new``, ``gelu_accurate``, ``gelu_python_tanh``: ``0.5·x·(1 + tanh(c·(x + 0.044715·x³)))``
#:   — ``tanh``'s output, and ``0.5·x`` and ``1 + tanh(…)`` for the last product: 3;
#: * ``gelu_fast``: ``0.5·x·(1 + tanh(x·c·(1 + 0.044715·x·x)))`` — also ``0.044715·x`` and both
#:   factors ``x·c`` and ``1 + 0.044715·x·x``: 6;
#: * ``gelu_python``: ``x·0.5·(1 + erf(x/√2))`` — ``x/√2``, ``0.5·x``, ``1 + erf(…)``, but not
#:   ``x`` itself: 2;
#: * ``quick_gelu``: ``x·sigmoid(1.702·x)`` — the sigmoid's output: 1;
#: * ``gelu_10``: ``clamp(gelu(x), −10, 10)`` — the clamp's input: 1.
HF_COMPOSITE_ACTIVATIONS: dict[str, int] = {
    "gelu_new": 3,
    "gelu_accurate": 3,
    "gelu_python_tanh": 3,
    "gelu_fast": 6,
    "gelu_python": 2,
    "quick_gelu": 1,
    "gelu_10": 1,
}


def _positive_int(obj, name: str, problems: list[Problem], *, allow_zero: bool = False) -> bool:
    """Record a problem unless ``obj.name`` is a positive (or non-negative) integer."""
    value = getattr(obj, name)
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a non-negative integer" if allow_zero else "a positive integer"
        problems.append(Problem(name, f"{value!r} is not {what}"))
        return False
    return True


def _pos_number(obj, name: str, problems: list[Problem], *, allow_zero: bool = False) -> None:
    """Record a problem unless ``obj.name`` is a positive (or non-negative) finite number."""
    value = getattr(obj, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0) and value == value and value != float("inf")
    if not ok:
        what = "a non-negative number" if allow_zero else "a positive number"
        problems.append(Problem(name, f"{value!r} is not {what}"))


def _choice(obj, name: str, allowed, problems: list[Problem]) -> bool:
    """Record a problem (with the closest allowed value) unless ``obj.name`` is in ``allowed``."""
    value = getattr(obj, name)
    if value not in allowed:
        from .errors import did_you_mean

        names = [str(a) for a in allowed]
        hint = did_you_mean(str(value), names) if isinstance(value, str) else ""
        problems.append(Problem(name, f"{value!r} is not allowed{hint} (allowed: {', '.join(names)})"))
        return False
    return True


class _Checked:
    """Mixin: ``__attrs_post_init__`` collects every problem and raises one :class:`PlanError`."""

    def _problems(self) -> list[Problem]:  # pragma: no cover - overridden
        return []

    def __attrs_post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise PlanError(problems)


@attrs.frozen
class MLA(_Checked):
    """Multi-head latent attention (DeepSeek-V2/V3), TOML ``[model.mla]``.

    Source: DeepSeek-V3 Technical Report (arXiv 2412.19437) §2.1.1; HF
    ``modeling_deepseek_v3.DeepseekV3Attention``.

    Attributes:
        q_lora_rank: rank of the query down-projection; ``None`` = queries are
            projected directly (DeepSeek-V2-Lite).
        kv_lora_rank: rank of the joint key/value latent (what the KV cache stores).
        qk_nope_head_dim: per-head query/key width without rotary embedding.
        qk_rope_head_dim: per-head width of the decoupled rotary part (shared key).
        v_head_dim: per-head value width.
    """

    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None

    @property
    def qk_head_dim(self) -> int:
        """Query/key head width: ``qk_nope_head_dim + qk_rope_head_dim``."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        for name in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            _positive_int(self, name, p)
        if self.q_lora_rank is not None:
            _positive_int(self, "q_lora_rank", p)
        return p


@attrs.frozen
class Experts(_Checked):
    """Mixture-of-experts layout, TOML ``[model.moe]``.

    Attributes:
        experts: routed experts per MoE layer.
        top_k: routed experts each token visits.
        shared_experts: always-active experts per MoE layer (DeepSeek: 1).
        expert_ffn: inner width of one routed expert; default the model's ``ffn``.
        shared_ffn: inner width of *one* shared expert; default ``expert_ffn``.
        dense_layers: leading layers with a dense MLP (DeepSeek-V3: 3).
        dense_layer_ids: explicit dense-MLP layer indices (Qwen3-MoE
            ``mlp_only_layers``), in addition to ``dense_layers``.
        moe_every: a layer ``i`` past the leading dense ones is MoE when
            ``(i + 1) % moe_every == 0`` (Qwen ``decoder_sparse_step``).
        router_bias: the router has a bias vector (a learned parameter).
        shared_expert_gate: a sigmoid gate ``Linear(hidden, 1)`` on the shared
            expert (Qwen2-MoE).
        route_groups: group-limited routing (DeepSeek-V3 report §2.1.2, "node-limited
            routing"; HF ``n_group``): the routed experts form this many equal groups of
            consecutive experts, and ``None`` means no group limit. Holds no parameters;
            it bounds the nodes a token's dispatch reaches
            (:mod:`llmplan.formulas.comm`).
        route_groups_per_token: groups a token's ``top_k`` experts may come from (HF
            ``topk_group``; DeepSeek-V3: 4 of 8); required with ``route_groups``.
    """

    experts: int
    top_k: int
    shared_experts: int = 0
    expert_ffn: int | None = None
    shared_ffn: int | None = None
    dense_layers: int = 0
    dense_layer_ids: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    moe_every: int = 1
    router_bias: bool = False
    shared_expert_gate: bool = False
    route_groups: int | None = None
    route_groups_per_token: int | None = None

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        _positive_int(self, "experts", p)
        _positive_int(self, "top_k", p)
        _positive_int(self, "shared_experts", p, allow_zero=True)
        _positive_int(self, "dense_layers", p, allow_zero=True)
        _positive_int(self, "moe_every", p)
        for name in ("expert_ffn", "shared_ffn"):
            if getattr(self, name) is not None:
                _positive_int(self, name, p)
        if isinstance(self.top_k, int) and isinstance(self.experts, int) and self.top_k > self.experts:
            p.append(Problem("top_k", f"{self.top_k} exceeds experts = {self.experts}"))
        p += self._route_group_problems()
        return p

    def _route_group_problems(self) -> list[Problem]:
        """Group-limited routing: both keys or neither; groups divide the experts; the chosen
        groups hold at least ``top_k`` experts (HF ``DeepseekV3TopkRouter`` masks all others)."""
        p: list[Problem] = []
        groups, per_token = self.route_groups, self.route_groups_per_token
        if groups is None and per_token is None:
            return p
        if groups is None or per_token is None:
            missing = "route_groups" if groups is None else "route_groups_per_token"
            p.append(Problem(missing, "required with group-limited routing: give route_groups (n_group) and "
                             "route_groups_per_token (topk_group) together, or neither"))
            return p
        if not (_positive_int(self, "route_groups", p) & _positive_int(self, "route_groups_per_token", p)):
            return p
        if isinstance(self.experts, int) and self.experts % groups:
            allowed = ", ".join(str(x) for x in divisors(self.experts))
            p.append(Problem("route_groups", f"{groups} does not divide experts = {self.experts} (allowed: {allowed})"))
            return p
        if per_token > groups:
            p.append(Problem("route_groups_per_token", f"{per_token} exceeds route_groups = {groups} (allowed: 1 … {groups})"))
        elif isinstance(self.experts, int) and isinstance(self.top_k, int) and per_token * self.experts // groups < self.top_k:
            need = -(-self.top_k * groups // self.experts)
            p.append(Problem("route_groups_per_token", f"{per_token}: {per_token} groups of {self.experts // groups} experts "
                             f"hold fewer than top_k = {self.top_k} (allowed: {need} … {groups})"))
        return p


@attrs.frozen(kw_only=True)
class Model(_Checked):
    """Common shape of a decoder-only transformer (use :class:`Dense` or :class:`MoE`).

    Attributes:
        name: display name.
        layers: transformer blocks (``num_hidden_layers``).
        hidden: model width *h* (``hidden_size``).
        heads: query heads *a*.
        kv_heads: key/value heads (GQA); ``None`` = ``heads`` (MHA); 1 = MQA.
        head_dim: per-head width; ``None`` = ``hidden // heads``.
        ffn: MLP inner width (dense layers; per expert for MoE unless ``expert_ffn``).
        vocab: vocabulary size *V*.
        mlp: ``swiglu`` / ``geglu`` (gated, three matrices) or ``gelu`` / ``relu`` /
            ``squared-relu`` (two matrices).
        tied_embeddings: the LM head reuses the input embedding matrix.
        norm: ``rmsnorm`` (weight only), ``layernorm`` (weight + bias) or
            ``layernorm-nobias``.
        qk_norm: per-head (``head``, Qwen3) or whole-projection (``full``, OLMo 2)
            normalisation of queries and keys; ``none``.
        attention_bias: biases on ``qkv`` projections only (Qwen2), on ``all``
            four projections (GPT-2, GPT-NeoX), or ``none``.
        mlp_bias: biases on the MLP matrices.
        position: ``rope`` (no parameters), ``learned`` (a ``max_positions × hidden``
            table, GPT-2) or ``none`` (ALiBi, NoPE).
        max_positions: longest context the model is built for (tokens); sizes the
            learned position table.
        mtp_layers: DeepSeek multi-token-prediction modules; counted separately,
            never in ``params.total``.
        dropout: training applies dropout (GPT-3, Megatron GPT): its masks are
            stored activations (Korthikanti et al. 2022 Table 1). Llama-family
            pre-training uses none.
        parallel_residual: attention and MLP both read the layer input, each through
            its own norm, and their outputs are added to it together (GPT-J, GPT-NeoX,
            Pythia: ``use_parallel_residual``); the second norm's input is then the first
            one's, so a layer stores one norm input fewer. Parameters and FLOPs do not
            change.
        sandwich_norm: each block also normalises the attention and MLP outputs before
            adding them to the residual (Gemma 2 and 3: ``post_attention_layernorm`` and
            ``post_feedforward_layernorm`` besides the two input norms): four norms per
            layer, two more stored norm inputs.
        sliding_window: tokens a query of a sliding-window layer attends to (itself and
            the ``sliding_window − 1`` before it, as transformers' sliding causal mask),
            or ``None`` (full causal attention everywhere). Attention FLOPs and the
            serving KV cache of those layers stop growing beyond the window; parameters
            and stored activations do not change.
        sliding_layers: how many of the ``layers`` use the window (Gemma 3: 5 of every
            6; Mistral 7B v0.1, StarCoder2, Phi-3-mini: all); default all when
            ``sliding_window`` is set.
        attention_sinks: a learned logit per query head that joins every softmax as an
            extra key with no value (gpt-oss: ``self_attn.sinks``): ``a`` parameters per layer.
        attn_softcap: Gemma 2's attention-logit soft-capping ``c·tanh(x/c)`` (50), or
            ``None``. Unfused attention stores the ``tanh`` output, one more
            ``q_a·a·s²·b`` per layer; FlashAttention caps inside the kernel.
        logit_softcap: the output logits' soft-capping (Gemma 2: 30), or ``None``: the
            ``tanh`` output is stored besides the logits, ``q_a·s·b·V`` more.
        mla: multi-head latent attention block, or ``None``.
        hf_model_type: the transformers ``model_type`` whose class this shape mirrors.
        hf_activation: the transformers activation function when it is a Python
            composite (``gelu_new`` — GPT-2's default —, ``gelu_fast``, …:
            :data:`HF_COMPOSITE_ACTIVATIONS`), which saves more tensors for the backward
            pass than a native kernel (``[parallelism] framework = "hf"`` counts them);
            ``None``: the native kernel of ``mlp``. Parameters do not depend on it.
        source: where the numbers come from.
    """

    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    name: str = ""
    kv_heads: int | None = None
    head_dim: int | None = None
    mlp: Literal["swiglu", "geglu", "gelu", "relu", "squared-relu"] = "swiglu"
    tied_embeddings: bool = False
    norm: Literal["rmsnorm", "layernorm", "layernorm-nobias"] = "rmsnorm"
    qk_norm: Literal["none", "head", "full"] = "none"
    attention_bias: Literal["none", "qkv", "all"] = "none"
    mlp_bias: bool = False
    position: Literal["rope", "learned", "none"] = "rope"
    max_positions: int | None = None
    mtp_layers: int = 0
    dropout: bool = False
    parallel_residual: bool = False
    sandwich_norm: bool = False
    sliding_window: int | None = None
    sliding_layers: int | None = None
    attention_sinks: bool = False
    attn_softcap: float | None = None
    logit_softcap: float | None = None
    mla: MLA | None = None
    hf_model_type: str | None = None
    hf_activation: str | None = None
    source: str = ""

    kind = "model"

    # ----- derived shape -----------------------------------------------------------------
    @property
    def n_kv_heads(self) -> int:
        """Key/value heads actually used (``kv_heads`` or ``heads``)."""
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def d_head(self) -> int:
        """Per-head width actually used (``head_dim`` or ``hidden // heads``)."""
        return self.hidden // self.heads if self.head_dim is None else self.head_dim

    @property
    def n_sliding_layers(self) -> int:
        """Layers with sliding-window attention (0 without a window)."""
        if self.sliding_window is None:
            return 0
        return self.layers if self.sliding_layers is None else self.sliding_layers

    @property
    def gated(self) -> bool:
        """True for gated MLPs (three matrices: gate, up, down)."""
        return self.mlp in GATED_MLPS

    @property
    def is_moe(self) -> bool:
        return False

    def moe_layer_ids(self) -> tuple[int, ...]:
        """Indices of MoE layers (empty for dense models)."""
        return ()

    @property
    def n_moe_layers(self) -> int:
        return len(self.moe_layer_ids())

    @property
    def n_dense_layers(self) -> int:
        return self.layers - self.n_moe_layers

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        for name in ("layers", "hidden", "heads", "ffn", "vocab"):
            _positive_int(self, name, p)
        for name in ("kv_heads", "head_dim", "max_positions", "sliding_window"):
            if getattr(self, name) is not None:
                _positive_int(self, name, p)
        if self.sliding_layers is not None:
            _positive_int(self, "sliding_layers", p, allow_zero=True)
        for name in ("attn_softcap", "logit_softcap"):
            if getattr(self, name) is not None:
                _pos_number(self, name, p)
        _positive_int(self, "mtp_layers", p, allow_zero=True)
        _choice(self, "mlp", MLP_KINDS, p)
        _choice(self, "norm", NORMS, p)
        _choice(self, "qk_norm", QK_NORMS, p)
        _choice(self, "attention_bias", ATTENTION_BIASES, p)
        _choice(self, "position", POSITIONS, p)
        if self.hf_activation is not None:
            _choice(self, "hf_activation", tuple(HF_COMPOSITE_ACTIVATIONS), p)
        if p:
            return p
        if self.mla is None:
            if self.head_dim is None and self.hidden % self.heads:
                p.append(
                    Problem(
                        "heads",
                        f"{self.heads} does not divide hidden = {self.hidden}; "
                        "give head_dim explicitly",
                    )
                )
            if self.heads % self.n_kv_heads:
                p.append(
                    Problem(
                        "kv_heads",
                        f"{self.n_kv_heads} does not divide heads = {self.heads} "
                        f"(allowed: {', '.join(str(d) for d in divisors(self.heads))})",
                    )
                )
        if self.sliding_layers is not None:
            if self.sliding_window is None:
                p.append(Problem("sliding_layers", "set sliding_window too (the window's span in tokens)"))
            elif self.sliding_layers > self.layers:
                p.append(Problem("sliding_layers", f"{self.sliding_layers} exceeds layers = {self.layers} (allowed: 0 … {self.layers})"))
        if self.position == "learned" and self.max_positions is None:
            p.append(Problem("max_positions", "required when position = 'learned' (sizes the table)"))
        return p


@attrs.frozen(kw_only=True)
class Dense(Model):
    """A dense decoder-only transformer (``kind = "dense"``)."""

    kind = "dense"


@attrs.frozen(kw_only=True)
class MoE(Model):
    """A mixture-of-experts transformer (``kind = "moe"``); ``moe`` holds the expert layout."""

    moe: Experts

    kind = "moe"

    @property
    def is_moe(self) -> bool:
        return True

    @property
    def expert_ffn(self) -> int:
        """Inner width of one routed expert."""
        return self.moe.expert_ffn if self.moe.expert_ffn is not None else self.ffn

    @property
    def shared_ffn(self) -> int:
        """Inner width of one shared expert."""
        return self.moe.shared_ffn if self.moe.shared_ffn is not None else self.expert_ffn

    def moe_layer_ids(self) -> tuple[int, ...]:
        m = self.moe
        dense = set(m.dense_layer_ids)
        return tuple(
            i
            for i in range(self.layers)
            if i >= m.dense_layers and i not in dense and (i + 1) % m.moe_every == 0
        )

    def _problems(self) -> list[Problem]:
        p = super()._problems()
        if not p and self.moe.dense_layers > self.layers:
            p.append(
                Problem("moe.dense_layers", f"{self.moe.dense_layers} exceeds layers = {self.layers}")
            )
        if not p and any(not 0 <= i < self.layers for i in self.moe.dense_layer_ids):
            p.append(
                Problem(
                    "moe.dense_layer_ids",
                    f"{list(self.moe.dense_layer_ids)} has indices outside 0..{self.layers - 1}",
                )
            )
        return p


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n`` in increasing order."""
    return [d for d in range(1, n + 1) if n % d == 0]
