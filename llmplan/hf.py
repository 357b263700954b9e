"""Read a Hugging Face ``config.json`` into a :class:`~llmplan.model.Model`, and write one back.

:func:`from_hf_config` reads a *local* ``config.json`` (a path to the file, to a
directory holding it, or an already-loaded mapping) and returns a
:class:`~llmplan.model.Dense` or :class:`~llmplan.model.MoE` plus a list of
warnings, one for every value that had to be assumed. It never touches the
network.

Which parameters exist is decided by the ``model_type``, exactly as the
transformers class of that type builds them (transformers 5.x
``models/<type>/configuration_<type>.py`` defaults and ``modeling_<type>.py``
module definitions), never guessed from width ratios:

=============  ==========  ===========  ================  =========  ========  =======
model_type     MLP         norm         attention biases  MLP bias   q/k norm  tied
=============  ==========  ===========  ================  =========  ========  =======
llama          gated       RMSNorm      attention_bias    mlp_bias   none      key (F)
mistral        gated       RMSNorm      none (fixed)      none       none      key (F)
mixtral        gated MoE   RMSNorm      none (fixed)      none       none      key (F)
qwen2          gated       RMSNorm      q/k/v (fixed)     none       none      key (F)
qwen3          gated       RMSNorm      attention_bias    none       per head  key (F)
qwen3_moe      gated MoE   RMSNorm      attention_bias    none       per head  key (F)
deepseek_v2    gated MoE   RMSNorm      attention_bias    none       (MLA)     key (F)
deepseek_v3    gated MoE   RMSNorm      attention_bias    none       (MLA)     key (F)
olmo2          gated       RMSNorm      attention_bias    none       full      key (F)
qwen2_moe      gated MoE   RMSNorm      qkv_bias (q/k/v)  none       none      key (F)
olmoe          gated MoE   RMSNorm      attention_bias    none       full      key (F)
phi3           gated       RMSNorm      none (fixed)      none       none      key (F)
starcoder2     plain GELU  LayerNorm    use_bias (all)    use_bias   none      key (T)
gemma          gated       RMSNorm 1+w  attention_bias    none       none      key (T)
gemma2         gated       RMSNorm 1+w  attention_bias    none       none      key (T)
gemma3_text    gated       RMSNorm 1+w  attention_bias    none       per head  key (T)
gpt_oss        gated MoE   RMSNorm      attention_bias    experts    none      key (F)
gpt2           plain GELU  LayerNorm    all (fixed)       yes        none      key (T)
gpt_neox       plain GELU  LayerNorm    attention_bias    yes        none      key (F)
dbrx           gated MoE   LN, no bias  none (fixed)      none       none      never
mpt            GELU, 4·h   LN, no bias  none (fixed)      none       none      key (T)
=============  ==========  ===========  ================  =========  ========  =======

"key (F)" = ``tie_word_embeddings``, default false; gpt2, mpt and starcoder2 default to true.
Qwen2-MoE adds one shared expert of ``shared_expert_intermediate_size`` behind a sigmoid
gate ``Linear(hidden, 1)``; Phi-3 fuses Q, K, V into ``qkv_proj`` and gate and up into
``gate_up_proj`` (the same parameters as Llama's separate matrices, fewer LoRA adapters).
Gemma's RMSNorm scales by ``1 + w`` in fp32 (same parameters, more saved activations);
Gemma 2 and 3 add post-attention and post-MLP norms (``sandwich_norm``: four per layer);
Gemma 2 soft-caps attention scores and logits (``attn_softcap``, ``logit_softcap``),
Gemma 3 has per-head q/k norms instead. A multimodal ``gemma3`` config is read through its ``text_config``
(the language model; the vision tower and projector are not counted, with a warning).
Sliding-window layers (Gemma 3, Mistral 7B v0.1, StarCoder2, Phi-3-mini, Qwen with
``use_sliding_window``) set ``sliding_window`` and ``sliding_layers`` as the class assigns
its layer types (parameters do not depend on them).
MPT has no position table (ALiBi): transformers' ``MptModel`` builds none whatever
``learned_pos_emb`` says, and no bias anywhere whatever ``no_bias`` says (MosaicML's
published checkpoints have none either).

:func:`to_hf_config` goes the other way: a minimal config dict (with
``model_type``) that ``transformers.AutoConfig.for_model(**d)`` accepts, used by
the oracle tests to build the real class. It is a *shape* config, not a
loadable checkpoint config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import PlanError, Problem, did_you_mean
from .model import HF_COMPOSITE_ACTIVATIONS, MLA, Dense, Experts, Model, MoE

__all__ = ["SUPPORTED_MODEL_TYPES", "from_hf_config", "to_hf_config"]

SUPPORTED_MODEL_TYPES = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "qwen2_moe",
    "olmoe",
    "deepseek_v2",
    "deepseek_v3",
    "phi3",
    "starcoder2",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gpt_oss",
    "gpt2",
    "gpt_neox",
    "olmo2",
    "dbrx",
    "mpt",
)

_PATH = "model.hf_config"


# ----- loading -----------------------------------------------------------------------------
def _load(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The config as a dict, and a description of where it came from."""
    if isinstance(source, Mapping):
        return dict(source), "<mapping>"
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise PlanError(Problem(_PATH, f"no config.json at {str(path)!r}"))
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(
            Problem(_PATH, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"),
            source=f"{path}:{exc.lineno}:{exc.colno}",
        ) from None
    if not isinstance(data, dict):
        raise PlanError(Problem(_PATH, f"expected a JSON object, got {type(data).__name__}"), str(path))
    return data, str(path)


class _Reader:
    """Reads keys from one config (or a nested sub-config), collecting problems and warnings."""

    def __init__(self, cfg: Mapping[str, Any], model_type: str, prefix: str = ""):
        self.cfg = cfg
        self.model_type = model_type
        self.prefix = prefix
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.activation: str | None = None  # the MLP's activation function, as read
        self.root: _Reader = self  # the top-level reader (nested readers record into it)

    def sub(self, key: str) -> "_Reader":
        """A reader over the nested dict ``key`` (DBRX ``attn_config``); shares the logs."""
        value = self.cfg.get(key)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            self.problems.append(Problem(self._path(key), f"expected an object, got {value!r}"))
            value = {}
        child = _Reader(value, self.model_type, prefix=f"{self.prefix}{key}.")
        child.problems = self.problems
        child.warnings = self.warnings
        child.root = self.root
        return child

    def _path(self, key: str) -> str:
        return f"{_PATH}.{self.prefix}{key}"

    def _find(self, keys: tuple[str, ...]) -> tuple[str | None, Any]:
        for key in keys:
            if self.cfg.get(key) is not None:
                return key, self.cfg[key]
        return None, None

    def _as_int(self, key: str, value: Any, *, allow_zero: bool = False) -> int | None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
            what = "a non-negative integer" if allow_zero else "a positive integer"
            self.problems.append(Problem(self._path(key), f"{value!r} is not {what}"))
            return None
        return value

    def req(self, *keys: str, allow_zero: bool = False) -> int | None:
        """A required integer, under the first of ``keys`` (aliases) that is present."""
        key, value = self._find(keys)
        if key is None:
            also = f" (or {', '.join(repr(k) for k in keys[1:])})" if len(keys) > 1 else ""
            self.problems.append(Problem(self._path(keys[0]), f"required key missing{also}"))
            return None
        return self._as_int(key, value, allow_zero=allow_zero)

    def opt_int(self, *keys: str, default: int | None, why: str, allow_zero: bool = False) -> int | None:
        """An optional integer; a missing key takes ``default`` and leaves a warning."""
        key, value = self._find(keys)
        if key is None:
            if default is not None or why:
                self.warnings.append(f"{self.prefix}{keys[0]} not given: assumed {default} ({why})")
            return default
        return self._as_int(key, value, allow_zero=allow_zero)

    def flag(self, key: str, default: bool, why: str) -> bool:
        """An optional boolean; a missing key takes ``default`` and leaves a warning."""
        value = self.cfg.get(key)
        if value is None:
            self.warnings.append(
                f"{self.prefix}{key} not given: assumed {str(default).lower()} ({why})"
            )
            return default
        if not isinstance(value, bool):
            self.problems.append(Problem(self._path(key), f"{value!r} is not true or false"))
            return default
        return value

    def int_list(self, key: str) -> tuple[int, ...]:
        value = self.cfg.get(key)
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value
        ):
            self.problems.append(Problem(self._path(key), f"{value!r} is not a list of layer indices"))
            return ()
        return tuple(value)

    def ignored(self, key: str, why: str) -> None:
        """Warn when a key is set that the transformers class of this type does not read."""
        value = self.cfg.get(key)
        if value not in (None, False, 0, [], {}):
            self.warnings.append(f"{self.prefix}{key} = {value!r} ignored: {why}")


def _activation(r: _Reader, key: str, default: str) -> str:
    """The activation name under ``key`` (DBRX nests it: ``ffn_act_fn = {"name": ...}``)."""
    act = r.cfg.get(key)
    if isinstance(act, Mapping):
        act = act.get("name")
    if act is None:
        r.warnings.append(f"{r.prefix}{key} not given: assumed {default!r}")
        act = default
    act = str(act).lower()
    r.root.activation = act
    return act


def _gated_mlp(r: _Reader, key: str = "hidden_act", default: str = "silu") -> str:
    """Gated MLP kind from the activation: silu → swiglu, gelu* → geglu (both 3 matrices)."""
    act = _activation(r, key, default)
    if act in ("silu", "swish"):
        return "swiglu"
    if act.startswith("gelu"):
        return "geglu"
    r.warnings.append(
        f"{r.prefix}{key} = {act!r} in a gated MLP: recorded as swiglu (same three matrices)"
    )
    return "swiglu"


def _plain_mlp(r: _Reader, key: str, default: str) -> str:
    """Two-matrix MLP kind from the activation (GPT-2, GPT-NeoX)."""
    act = _activation(r, key, default)
    if act.startswith("gelu"):
        return "gelu"
    if act == "relu":
        return "relu"
    r.warnings.append(f"{r.prefix}{key} = {act!r}: recorded as gelu (same two matrices)")
    return "gelu"


def _tied(r: _Reader, default: bool = False) -> bool:
    cls = f"{r.model_type} config default"
    return r.flag("tie_word_embeddings", default, cls)


def _quantization(r: _Reader) -> None:
    q = r.cfg.get("quantization_config")
    if isinstance(q, Mapping):
        method = q.get("quant_method", "?")
        r.warnings.append(
            f"quantization_config ({method}) noted but not applied: parameter counts are "
            "format-independent; set weight precision in the plan"
        )


# ----- one reader per model_type -------------------------------------------------------------
def _common(r: _Reader, *, head_dim_default: int | None = None, head_dim_why: str = "") -> dict[str, Any]:
    """Keys shared by the llama-style configs."""
    heads = r.req("num_attention_heads")
    fields: dict[str, Any] = {
        "layers": r.req("num_hidden_layers"),
        "hidden": r.req("hidden_size"),
        "heads": heads,
        "ffn": r.req("intermediate_size"),
        "vocab": r.req("vocab_size"),
        "kv_heads": r.opt_int(
            "num_key_value_heads", default=heads, why="= num_attention_heads, multi-head attention"
        ),
        "head_dim": r.opt_int("head_dim", default=head_dim_default, why=head_dim_why)
        if head_dim_default is not None
        else _explicit_head_dim(r),
        "max_positions": r.opt_int("max_position_embeddings", default=None, why=""),
        "norm": "rmsnorm",
        "position": "rope",
    }
    return fields


def _explicit_head_dim(r: _Reader) -> int | None:
    """``head_dim`` when given (Qwen3-30B-A3B: 128 ≠ 2048/32); ``None`` = hidden // heads."""
    value = r.cfg.get("head_dim")
    if value is None:
        return None
    return r._as_int("head_dim", value)


def _llama(r: _Reader) -> dict[str, Any]:
    f = _common(r)
    f["mlp"] = _gated_mlp(r)
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "LlamaConfig default") else "none"
    f["mlp_bias"] = r.flag("mlp_bias", False, "LlamaConfig default")
    f["tied_embeddings"] = _tied(r)
    return f


def _mistral(r: _Reader) -> dict[str, Any]:
    f = _common(r)
    f["mlp"] = _gated_mlp(r)
    r.ignored("attention_bias", "the mistral/mixtral classes build bias-free projections")
    r.ignored("mlp_bias", "the mistral/mixtral classes build bias-free projections")
    f["tied_embeddings"] = _tied(r)
    # MistralConfig's sliding_window defaults to 4096 (Mistral 7B v0.1); MixtralConfig's to none
    _window(r, f, "all", 4096 if r.model_type == "mistral" else None)
    return f


def _every_layer_experts(r: _Reader, f: dict[str, Any], *keys: str, **extra: Any) -> tuple[dict[str, Any], Experts | None]:
    """Routed experts of width ``intermediate_size`` in every layer, none shared (Mixtral, OLMoE,
    gpt-oss): the expert count under the first of ``keys``, ``num_experts_per_tok``."""
    experts = r.req(*keys)
    top_k = r.req("num_experts_per_tok")
    if experts is None or top_k is None:
        return f, None
    return f, Experts(experts=experts, top_k=top_k, **extra)


def _mixtral(r: _Reader) -> tuple[dict[str, Any], Experts | None]:
    return _every_layer_experts(r, _mistral(r), "num_local_experts", "num_experts")


def _qwen2(r: _Reader) -> dict[str, Any]:
    f = _common(r)
    _window(r, f, "qwen")
    f["mlp"] = _gated_mlp(r)
    # Qwen2Attention: q/k/v Linear(bias=True), o_proj bias=False, whatever the config says.
    f["attention_bias"] = "qkv"
    r.ignored("attention_bias", "Qwen2Attention always has q/k/v biases and no o_proj bias")
    f["tied_embeddings"] = _tied(r)
    return f


def _qwen3(r: _Reader) -> dict[str, Any]:
    f = _common(r, head_dim_default=128, head_dim_why="Qwen3Config default")
    _window(r, f, "qwen")
    f["mlp"] = _gated_mlp(r)
    f["qk_norm"] = "head"
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "Qwen3Config default") else "none"
    f["tied_embeddings"] = _tied(r)
    return f


def _qwen3_moe(r: _Reader) -> tuple[dict[str, Any], Experts | None]:
    f = _common(r)  # intermediate_size: the width of the dense mlp_only_layers
    f["mlp"] = _gated_mlp(r)
    f["qk_norm"] = "head"
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "Qwen3MoeConfig default") else "none"
    f["tied_embeddings"] = _tied(r)
    r.ignored("shared_expert_intermediate_size", "Qwen3-MoE has no shared expert")
    # The MoE layout is required: the Qwen3MoeConfig defaults describe no particular model.
    experts = r.req("num_experts", "num_local_experts", allow_zero=True)
    top_k = r.req("num_experts_per_tok")
    expert_ffn = r.req("moe_intermediate_size")
    step = r.opt_int("decoder_sparse_step", default=1, why="Qwen3MoeConfig default")
    dense_ids = r.int_list("mlp_only_layers")
    if experts == 0:
        r.warnings.append("num_experts = 0: every layer is a dense MLP (built as a dense model)")
        return f, None
    if None in (experts, top_k, expert_ffn, step):
        return f, None
    # Qwen3MoeDecoderLayer: MoE iff layer not in mlp_only_layers and (i + 1) % step == 0.
    return f, Experts(
        experts=experts,
        top_k=top_k,
        expert_ffn=expert_ffn,
        dense_layer_ids=dense_ids,
        moe_every=step,
    )


def _deepseek_v2(r: _Reader) -> tuple[dict[str, Any], Experts | None]:
    """DeepSeek-V2 / V2-Lite: V3's MLA and MoE layout without multi-token prediction; the
    node-limited routing only with ``topk_method = "group_limited_greedy"``."""
    return _deepseek_v3(r, v2=True)


def _deepseek_v3(r: _Reader, *, v2: bool = False) -> tuple[dict[str, Any], Experts | None]:
    f = _common(r)
    f["mlp"] = _gated_mlp(r)
    f["tied_embeddings"] = _tied(r)
    f["kv_heads"] = None  # MLA: keys and values come from the shared latent
    f["head_dim"] = None
    cls = "DeepseekV2Config" if v2 else "DeepseekV3Config"
    bias = r.flag("attention_bias", False, f"{cls} default")
    f["attention_bias"] = "all" if bias else "none"
    q_lora = r.cfg.get("q_lora_rank")
    mla_vals = {
        "kv_lora_rank": r.req("kv_lora_rank"),
        "qk_nope_head_dim": r.req("qk_nope_head_dim"),
        "qk_rope_head_dim": r.req("qk_rope_head_dim"),
        "v_head_dim": r.req("v_head_dim"),
        "q_lora_rank": None if q_lora is None else r._as_int("q_lora_rank", q_lora),
    }
    if "q_lora_rank" not in r.cfg:
        r.warnings.append("q_lora_rank not given: assumed null (queries projected directly)")
    if v2:
        r.ignored("num_nextn_predict_layers", "DeepSeek-V2 has no multi-token-prediction module")
    else:
        f["mtp_layers"] = r.opt_int(
            "num_nextn_predict_layers",
            "num_mtp_layers",
            default=1,
            why="DeepseekV3Config default num_mtp_layers",
            allow_zero=True,
        )
    experts = r.req("n_routed_experts", "num_local_experts")
    top_k = r.req("num_experts_per_tok")
    shared = r.req("n_shared_experts", allow_zero=True)
    expert_ffn = r.req("moe_intermediate_size")
    first_dense = r.req("first_k_dense_replace", allow_zero=True)
    freq = r.opt_int("moe_layer_freq", default=1, why="DeepSeek reference default")
    # group-limited routing (DeepseekV3TopkRouter; report sec. 2.1.2): no parameters, but it
    # bounds the nodes a token's dispatch reaches (llmplan.formulas.comm)
    if v2:  # DeepseekV2Moe limits the groups only for topk_method "group_limited_greedy"
        limited = r.cfg.get("topk_method", "greedy") == "group_limited_greedy"
        groups = r.opt_int("n_group", default=None, why="") if limited else None
        per_token = r.opt_int("topk_group", default=None, why="") if limited else None
    else:
        groups = r.opt_int("n_group", default=8, why="DeepseekV3Config default")
        per_token = r.opt_int("topk_group", default=4, why="DeepseekV3Config default")
    route = _route_groups(r, groups, per_token, experts, top_k)
    layers = f["layers"]
    if any(v is None for k, v in mla_vals.items() if k != "q_lora_rank"):
        return f, None
    f["mla"] = MLA(**mla_vals)
    if None in (experts, top_k, shared, expert_ffn, first_dense, freq, layers):
        return f, None
    dense_ids: tuple[int, ...] = ()
    if freq != 1:
        # DeepSeek's reference modeling_deepseek.py: MoE iff i >= first_k_dense_replace and
        # i % moe_layer_freq == 0. transformers' built-in DeepseekV3DecoderLayer ignores the key.
        dense_ids = tuple(i for i in range(first_dense, layers) if i % freq)
        r.warnings.append(
            f"moe_layer_freq = {freq}: following DeepSeek's reference rule (MoE iff i % freq == 0); "
            "transformers' DeepseekV3 class ignores moe_layer_freq and would make every layer "
            f">= {first_dense} MoE"
        )
    return f, Experts(
        experts=experts,
        top_k=top_k,
        shared_experts=shared,
        expert_ffn=expert_ffn,
        shared_ffn=expert_ffn,  # DeepseekV3MoE: one MLP of width moe_intermediate_size * n_shared
        dense_layers=min(first_dense, layers),
        dense_layer_ids=dense_ids,
        # e_score_correction_bias is a buffer in transformers, not a parameter: no router bias.
        router_bias=False,
        **route,
    )


def _route_groups(r: _Reader, groups: int | None, per_token: int | None, experts: int | None, top_k: int | None) -> dict[str, Any]:
    """``n_group``/``topk_group`` → ``route_groups``/``route_groups_per_token``; one group
    (every expert in it, e.g. Kimi K2's config) is no group limit: both ``None``."""
    if groups is None or per_token is None or experts is None or top_k is None or groups == 1:
        return {}
    if experts % groups:
        r.problems.append(Problem(r._path("n_group"), f"{groups} does not divide the {experts} routed experts "
                                  "(the router splits them into n_group equal groups)"))
        return {}
    if per_token > groups:
        r.problems.append(Problem(r._path("topk_group"), f"{per_token} exceeds n_group = {groups} (allowed: 1 … {groups})"))
        return {}
    if per_token * (experts // groups) < top_k:
        r.problems.append(Problem(r._path("topk_group"), f"{per_token}: {per_token} groups of {experts // groups} experts hold "
                                  f"fewer than num_experts_per_tok = {top_k}"))
        return {}
    return {"route_groups": groups, "route_groups_per_token": per_token}


def _olmo2(r: _Reader) -> dict[str, Any]:
    f = _common(r)
    f["mlp"] = _gated_mlp(r)
    f["qk_norm"] = "full"  # Olmo2Attention: RMSNorm over the whole q (a·d) and k (a_kv·d)
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "Olmo2Config default") else "none"
    f["tied_embeddings"] = _tied(r)
    return f


def _qwen2_moe(r: _Reader) -> tuple[dict[str, Any], Experts | None]:
    """Qwen1.5-MoE / Qwen2-MoE: routed experts plus one gated shared expert in every sparse layer."""
    f = _common(r)  # intermediate_size: the width of the dense mlp_only_layers
    _window(r, f, "qwen")
    f["mlp"] = _gated_mlp(r)
    # Qwen2MoeAttention: q/k/v Linear(bias=config.qkv_bias), o_proj bias-free
    f["attention_bias"] = "qkv" if r.flag("qkv_bias", True, "Qwen2MoeConfig default") else "none"
    f["tied_embeddings"] = _tied(r)
    # The MoE layout is required: the Qwen2MoeConfig defaults are Qwen1.5-MoE-A2.7B's, not a rule.
    experts = r.req("num_experts", "num_local_experts", allow_zero=True)
    top_k = r.req("num_experts_per_tok")
    expert_ffn = r.req("moe_intermediate_size")
    shared_ffn = r.req("shared_expert_intermediate_size", allow_zero=True)
    step = r.opt_int("decoder_sparse_step", default=1, why="Qwen2MoeConfig default")
    dense_ids = r.int_list("mlp_only_layers")
    if experts == 0:
        r.warnings.append("num_experts = 0: every layer is a dense MLP (built as a dense model)")
        return f, None
    if None in (experts, top_k, expert_ffn, shared_ffn, step):
        return f, None
    # Qwen2MoeDecoderLayer: MoE iff layer not in mlp_only_layers and (i + 1) % step == 0;
    # Qwen2MoeSparseMoeBlock: one shared expert (built even at width 0) and its sigmoid gate
    return f, Experts(
        experts=experts,
        top_k=top_k,
        expert_ffn=expert_ffn,
        shared_experts=1,
        shared_ffn=shared_ffn,
        shared_expert_gate=True,
        dense_layer_ids=dense_ids,
        moe_every=step,
    )


def _olmoe(r: _Reader) -> tuple[dict[str, Any], Experts | None]:
    """OLMoE (``OlmoeForCausalLM``): pre-norm blocks, RMSNorm over the whole q and k
    projections, every layer MoE (routed experts only)."""
    f = _common(r)
    if f.get("head_dim") not in (None, (f["hidden"] or 0) // (f["heads"] or 1)):
        r.problems.append(Problem(r._path("head_dim"), f"{f['head_dim']} != hidden_size / num_attention_heads: "
                                  "OlmoeAttention sizes its q/k norms from hidden_size (allowed: leave it out)"))
    f["mlp"] = _gated_mlp(r)
    f["qk_norm"] = "full"
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "OlmoeConfig default") else "none"
    f["tied_embeddings"] = _tied(r)
    r.ignored("clip_qkv", "clamping Q, K and V keeps no parameters; its saved tensors are not counted")
    return _every_layer_experts(r, f, "num_experts", "num_local_experts")


def _phi3(r: _Reader) -> dict[str, Any]:
    """Phi-3 / Phi-4 (``Phi3ForCausalLM``): fused ``qkv_proj`` and ``gate_up_proj``, no biases."""
    f = _common(r)
    f["mlp"] = _gated_mlp(r)
    r.ignored("attention_bias", "Phi3Attention builds bias-free qkv_proj and o_proj")
    f["tied_embeddings"] = _tied(r)
    _window(r, f, "all")
    return f


def _starcoder2(r: _Reader) -> dict[str, Any]:
    """StarCoder2: GQA with RoPE, LayerNorm, a plain GELU MLP (``c_fc``/``c_proj``), biases on every
    Linear and norm while ``use_bias`` (default true), tied head by default."""
    f = _common(r)
    f["mlp"] = _plain_mlp(r, "hidden_act", "gelu_pytorch_tanh")
    f["norm"] = "layernorm"
    bias = r.flag("use_bias", True, "Starcoder2Config default")
    f["attention_bias"] = "all" if bias else "none"
    f["mlp_bias"] = bias
    if not bias:  # nn.LayerNorm(elementwise_affine=True) keeps its bias whatever use_bias says
        r.warnings.append("use_bias = false: no Linear biases; the LayerNorms keep theirs")
    f["tied_embeddings"] = _tied(r, default=True)
    _window(r, f, "all")
    return f


def _window(r: _Reader, f: dict[str, Any], rule: str, default: int | None = None) -> None:
    """Set ``sliding_window`` / ``sliding_layers`` the way the class assigns layer types:
    ``layer_types`` when the config lists them, else ``rule`` — ``"all"`` (Mistral,
    StarCoder2, Phi-3: every layer when ``sliding_window`` is set), ``"gemma3"`` (every
    layer but each ``sliding_window_pattern``-th, default 6) or ``"qwen"`` (with
    ``use_sliding_window``, the layers from ``max_window_layers`` on)."""
    layers = f.get("layers")
    window = r.cfg["sliding_window"] if "sliding_window" in r.cfg else default
    if not window or layers is None:
        return
    types = r.cfg.get("layer_types")
    if isinstance(types, (list, tuple)) and types:
        sliding = sum(1 for t in types if t == "sliding_attention")
    elif rule in ("gemma2", "gemma3"):  # every pattern-th layer full: Gemma 2 alternates, Gemma 3 is 5:1
        pattern = r.cfg.get("sliding_window_pattern") or (2 if rule == "gemma2" else 6)
        sliding = sum(1 for i in range(layers) if (i + 1) % int(pattern))
    elif rule == "qwen":
        if not r.cfg.get("use_sliding_window"):
            return
        sliding = max(0, layers - int(r.cfg.get("max_window_layers") or 0))
    else:
        sliding = layers
    if sliding:
        f["sliding_window"] = r._as_int("sliding_window", window)
        f["sliding_layers"] = sliding


def _gemma(r: _Reader) -> dict[str, Any]:
    """Gemma (1): GeGLU, head_dim 256 by default, RMSNorm scaling by ``1 + w``, tied head."""
    f = _common(r, head_dim_default=256, head_dim_why="GemmaConfig default")
    f["mlp"] = _gated_mlp(r, "hidden_act", "gelu_pytorch_tanh")
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "GemmaConfig default") else "none"
    f["tied_embeddings"] = _tied(r, default=True)
    return f


#: Gemma3TextConfig's defaults (transformers 5): a published text_config omits the keys that equal them
_GEMMA3_DEFAULTS = {"vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4}


def _gemma3_text(r: _Reader) -> dict[str, Any]:
    """Gemma 3 (``Gemma3ForCausalLM``): Gemma's norms, four per layer (pre and post each sublayer),
    per-head q/k norms, GeGLU, head_dim 256 by default, tied head, 5:1 sliding/full layers."""
    missing = {k: v for k, v in _GEMMA3_DEFAULTS.items() if r.cfg.get(k) is None}
    for key, value in missing.items():
        r.warnings.append(f"{r.prefix}{key} not given: assumed {value} (Gemma3TextConfig default)")
    r.cfg = {**r.cfg, **missing}
    f = _common(r, head_dim_default=256, head_dim_why="Gemma3TextConfig default")
    f["mlp"] = _gated_mlp(r, "hidden_activation", "gelu_pytorch_tanh")
    f["qk_norm"] = "head"
    f["sandwich_norm"] = True
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "Gemma3TextConfig default") else "none"
    f["tied_embeddings"] = _tied(r, default=True)
    _softcaps(r, f, None, None)
    _window(r, f, "gemma3", 4096)
    return f


def _softcaps(r: _Reader, f: dict[str, Any], attn: float | None, logits: float | None) -> None:
    """``attn_logit_softcapping`` / ``final_logit_softcapping`` (class defaults ``attn``, ``logits``)."""
    for key, field, default in (("attn_logit_softcapping", "attn_softcap", attn),
                                ("final_logit_softcapping", "logit_softcap", logits)):
        value = r.cfg[key] if key in r.cfg else default
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            r.problems.append(Problem(r._path(key), f"{value!r} is not a positive number (or null)"))
            continue
        if key not in r.cfg:
            r.warnings.append(f"{r.prefix}{key} not given: assumed {default} ({r.model_type} config default)")
        f[field] = float(value)


def _gemma2(r: _Reader) -> dict[str, Any]:
    """Gemma 2 (``Gemma2ForCausalLM``): Gemma's norms, four per layer, GeGLU, head_dim 256 by
    default, tied head, soft-capped attention scores (50) and logits (30), every other layer
    windowed (4096)."""
    f = _common(r, head_dim_default=256, head_dim_why="Gemma2Config default")
    f["mlp"] = _gated_mlp(r, "hidden_activation", "gelu_pytorch_tanh")
    f["sandwich_norm"] = True
    f["attention_bias"] = "all" if r.flag("attention_bias", False, "Gemma2Config default") else "none"
    f["tied_embeddings"] = _tied(r, default=True)
    _softcaps(r, f, 50.0, 30.0)
    _window(r, f, "gemma2", 4096)
    return f


def _gemma3(r: _Reader) -> dict[str, Any]:
    """A multimodal Gemma 3 config (``Gemma3ForConditionalGeneration``): its ``text_config``."""
    r.warnings.append("gemma3: the language model (text_config) only; the vision tower and the "
                      "multimodal projector are not counted")
    text = r.sub("text_config")
    if "tie_word_embeddings" in r.cfg and "tie_word_embeddings" not in text.cfg:
        text.cfg = {**text.cfg, "tie_word_embeddings": r.cfg["tie_word_embeddings"]}
    return _gemma3_text(text)


def _gpt_oss(r: _Reader) -> tuple[dict[str, Any], Experts | None]:
    """gpt-oss (``GptOssForCausalLM``): GQA with biases and a learned sink per head, every
    other layer windowed (128), every layer MoE with biased experts and a biased router."""
    f = _common(r, head_dim_default=64, head_dim_why="GptOssConfig default")
    f["mlp"] = "swiglu"  # GptOssExperts: a fused gate_up of 2·f, a clamped SwiGLU, a down projection
    f["attention_bias"] = "all" if r.flag("attention_bias", True, "GptOssConfig default") else "none"
    f["mlp_bias"] = True  # gate_up_proj_bias (2·f) and down_proj_bias (h) on every expert
    f["attention_sinks"] = True
    f["tied_embeddings"] = _tied(r)
    _window(r, f, "gemma2", 128)
    return _every_layer_experts(r, f, "num_local_experts", "num_experts", router_bias=True)


def _gpt2(r: _Reader) -> dict[str, Any]:
    hidden = r.req("n_embd", "hidden_size")
    inner = r.cfg.get("n_inner")
    if inner is None:
        ffn = None if hidden is None else 4 * hidden
        r.warnings.append(f"n_inner not given: assumed 4·n_embd = {ffn} (GPT2MLP rule)")
    else:
        ffn = r._as_int("n_inner", inner)
    r.ignored("add_cross_attention", "cross-attention blocks are not modelled")
    return {
        "layers": r.req("n_layer", "num_hidden_layers"),
        "hidden": hidden,
        "heads": r.req("n_head", "num_attention_heads"),
        "ffn": ffn,
        "vocab": r.req("vocab_size"),
        "max_positions": r.req("n_positions", "max_position_embeddings"),
        "position": "learned",
        "mlp": _plain_mlp(r, "activation_function", "gelu_new"),
        "norm": "layernorm",
        "attention_bias": "all",  # Conv1D always has a bias
        "mlp_bias": True,
        "tied_embeddings": _tied(r, default=True),
    }


def _gpt_neox(r: _Reader) -> dict[str, Any]:
    r.ignored("num_key_value_heads", "GPT-NeoX fuses Q, K and V for every head (multi-head)")
    bias = r.flag("attention_bias", True, "GPTNeoXConfig default")
    parallel = r.flag("use_parallel_residual", True, "GPTNeoXConfig default")
    return {
        "layers": r.req("num_hidden_layers"),
        "hidden": r.req("hidden_size"),
        "heads": r.req("num_attention_heads"),
        "ffn": r.req("intermediate_size"),
        "vocab": r.req("vocab_size"),
        "max_positions": r.opt_int("max_position_embeddings", default=None, why=""),
        "position": "rope",
        "mlp": _plain_mlp(r, "hidden_act", "gelu"),
        "norm": "layernorm",
        "attention_bias": "all" if bias else "none",
        "mlp_bias": True,  # GPTNeoXMLP: nn.Linear default bias=True
        "parallel_residual": parallel,
        "tied_embeddings": _tied(r),
    }


def _dbrx(r: _Reader) -> tuple[dict[str, Any], Experts | None]:
    attn = r.sub("attn_config")
    ffn = r.sub("ffn_config")
    mlp = _gated_mlp(ffn, "ffn_act_fn")  # DbrxExpertGLU: w1, v1, w2 (gated)
    if r.cfg.get("tie_word_embeddings"):
        r.problems.append(Problem(f"{_PATH}.tie_word_embeddings", "DBRX does not support tied embeddings"))
    f = {
        "layers": r.req("n_layers", "num_hidden_layers"),
        "hidden": r.req("d_model", "hidden_size"),
        "heads": r.req("n_heads", "num_attention_heads"),
        "vocab": r.req("vocab_size"),
        "max_positions": r.opt_int("max_seq_len", "max_position_embeddings", default=None, why=""),
        # The HF defaults (kv_n_heads 1, 4 experts of 3584, top-1) describe no published DBRX,
        # so these are required rather than assumed.
        "kv_heads": attn.req("kv_n_heads"),
        "ffn": ffn.req("ffn_hidden_size"),
        "mlp": mlp,
        "norm": "layernorm-nobias",  # nn.LayerNorm(d_model, bias=False)
        "position": "rope",
        "tied_embeddings": False,
    }
    experts = ffn.req("moe_num_experts")
    top_k = ffn.req("moe_top_k")
    if experts is None or top_k is None:
        return f, None
    return f, Experts(experts=experts, top_k=top_k)


def _mpt(r: _Reader) -> dict[str, Any]:
    """MPT (MosaicML; transformers' ``MptForCausalLM``): fused ``Wqkv``, a GELU MLP of
    4·``d_model`` (transformers ignores ``expansion_ratio``), bias-free LayerNorms, ALiBi,
    tied head by default."""
    attn = r.sub("attn_config")
    hidden = r.req("d_model", "hidden_size")
    ratio = r.cfg.get("expansion_ratio", 4)
    if ratio != 4:
        r.warnings.append(
            f"expansion_ratio = {ratio!r} ignored: transformers' MptMLP is 4·d_model whatever the config says "
            "(MosaicML's own modeling code honours it; set model.ffn to count that one)"
        )
    if r.cfg.get("learned_pos_emb"):
        r.warnings.append("learned_pos_emb = true ignored: transformers' MptModel has no position table (ALiBi)")
    if r.cfg.get("no_bias") is False:
        r.warnings.append("no_bias = false ignored: transformers' MPT builds no biases either way")
    attn.ignored("qk_ln", "transformers' MptAttention has no q/k LayerNorm")
    if attn.cfg.get("attn_type", "multihead_attention") != "multihead_attention" or attn.cfg.get("kv_n_heads"):
        r.problems.append(Problem(
            f"{_PATH}.attn_config.attn_type",
            f"{attn.cfg.get('attn_type')!r}: transformers' MptAttention is multi-head only (multihead_attention)",
        ))
    return {
        "layers": r.req("n_layers", "num_hidden_layers"),
        "hidden": hidden,
        "heads": r.req("n_heads", "num_attention_heads"),
        "ffn": None if hidden is None else 4 * hidden,
        "vocab": r.req("vocab_size"),
        "max_positions": r.opt_int("max_seq_len", default=None, why=""),
        "position": "none",
        "mlp": "gelu",  # MptMLP: GELU(approximate="none")
        "norm": "layernorm-nobias",
        "attention_bias": "none",
        "mlp_bias": False,
        "tied_embeddings": _tied(r, default=True),
    }


# (kind, reader): a "dense" reader returns the fields, a "moe" one (fields, Experts | None).
_READERS: dict[str, tuple[str, Callable]] = {
    "llama": ("dense", _llama),
    "mistral": ("dense", _mistral),
    "qwen2": ("dense", _qwen2),
    "qwen3": ("dense", _qwen3),
    "olmo2": ("dense", _olmo2),
    "phi3": ("dense", _phi3),
    "starcoder2": ("dense", _starcoder2),
    "gemma": ("dense", _gemma),
    "gemma2": ("dense", _gemma2),
    "gemma3_text": ("dense", _gemma3_text),
    "gemma3": ("dense", _gemma3),  # read only: its text_config, written back as gemma3_text
    "gpt_oss": ("moe", _gpt_oss),
    "gpt2": ("dense", _gpt2),
    "gpt_neox": ("dense", _gpt_neox),
    "mpt": ("dense", _mpt),
    "mixtral": ("moe", _mixtral),
    "qwen3_moe": ("moe", _qwen3_moe),
    "qwen2_moe": ("moe", _qwen2_moe),
    "olmoe": ("moe", _olmoe),
    "deepseek_v2": ("moe", _deepseek_v2),
    "deepseek_v3": ("moe", _deepseek_v3),
    "dbrx": ("moe", _dbrx),
}


def from_hf_config(
    source: str | os.PathLike | Mapping[str, Any], *, name: str = ""
) -> tuple[Model, list[str]]:
    """Read a local Hugging Face ``config.json`` into a model.

    Args:
        source: path to a ``config.json``, to a directory containing one, or the
            already-loaded mapping. Never fetched from the network.
        name: display name; default the config's ``_name_or_path`` (or empty).

    Returns:
        ``(model, warnings)``: a :class:`Dense` or :class:`MoE` with
        ``hf_model_type`` set, and one warning string per assumed value.

    Raises:
        PlanError: invalid JSON (with line and column), an unsupported
            ``model_type`` (with the supported list and the closest match), or
            missing / invalid keys (one problem per key, at
            ``model.hf_config.<key>``).
    """
    cfg, origin = _load(source)
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise PlanError(
            Problem(
                _PATH,
                f"no 'model_type' key (supported: {', '.join(SUPPORTED_MODEL_TYPES)})",
            ),
            None if origin == "<mapping>" else origin,
        )
    if model_type not in _READERS:
        raise PlanError(
            Problem(
                _PATH,
                f"model_type {model_type!r} is not supported{did_you_mean(model_type, SUPPORTED_MODEL_TYPES)} "
                f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})",
            ),
            None if origin == "<mapping>" else origin,
        )
    kind, read = _READERS[model_type]
    r = _Reader(cfg, model_type)
    if kind == "dense":
        fields, experts = read(r), None
    else:
        fields, experts = read(r)
    _quantization(r)
    if r.problems:
        raise PlanError(r.problems, None if origin == "<mapping>" else origin)
    if r.activation in HF_COMPOSITE_ACTIVATIONS:  # saves more for the backward pass than a native kernel
        fields["hf_activation"] = r.activation
    fields = {k: v for k, v in fields.items() if v is not None}  # None = the Model default
    display = name or str(cfg.get("_name_or_path") or "")
    common = dict(
        fields,
        name=display,
        hf_model_type="gemma3_text" if model_type == "gemma3" else model_type,
        source=f"Hugging Face config.json ({origin})",
    )
    try:
        if experts is None:
            model: Model = Dense(**common)
        else:
            model = MoE(moe=experts, **common)
    except PlanError as exc:
        raise exc.prefixed("model") from None
    return model, r.warnings


# ----- writing ---------------------------------------------------------------------------------
def _unsupported(model: Model, mt: str, what: list[str]) -> None:
    if what:
        raise PlanError(
            [Problem("model", f"{w} cannot be expressed as a {mt!r} config") for w in what]
        )


#: types whose transformers class can build sliding-window layers, and how it is told which
_WINDOW_RULES = {"mistral": "all", "mixtral": "all", "phi3": "all", "starcoder2": "all",
                 "qwen2": "qwen", "qwen2_moe": "qwen", "qwen3": "qwen", "gemma2": "types", "gemma3_text": "types",
                 "gpt_oss": "types"}


def _window_keys(model: Model, mt: str, want: Callable[[bool, str], None]) -> dict[str, Any]:
    """The config keys that give ``model``'s sliding-window layers (or none) to class ``mt``."""
    rule = _WINDOW_RULES.get(mt)
    if model.sliding_window is None:
        return {"sliding_window": None} if rule is not None else {}
    if rule is None:
        want(False, "sliding-window attention")
        return {}
    n, layers = model.n_sliding_layers, model.layers
    if rule == "all":
        want(n == layers, f"a sliding window on {n} of {layers} layers (the class windows all or none)")
        return {"sliding_window": model.sliding_window}
    if rule == "qwen":
        return {"use_sliding_window": True, "sliding_window": model.sliding_window, "max_window_layers": layers - n}
    return {"sliding_window": model.sliding_window,
            "layer_types": ["sliding_attention"] * n + ["full_attention"] * (layers - n)}


def to_hf_config(model: Model) -> dict[str, Any]:
    """A minimal transformers config dict for ``model`` (``AutoConfig.for_model(**d)`` accepts it).

    The type is ``model.hf_model_type``; a model without one is written as
    ``deepseek_v3`` (MLA), ``mixtral`` (MoE), ``gpt2`` (learned positions) or
    ``llama``. Raises :class:`PlanError` when the model has a feature the chosen
    class does not build (the count would silently differ).
    """
    mt = model.hf_model_type
    if mt is None:
        if model.mla is not None:
            mt = "deepseek_v3"
        elif model.is_moe:
            mt = "mixtral"
        elif model.position == "learned":
            mt = "gpt2"
        else:
            mt = "llama"
    if mt not in SUPPORTED_MODEL_TYPES:
        raise PlanError(
            Problem(
                "model.hf_model_type",
                f"{mt!r} is not supported{did_you_mean(mt, SUPPORTED_MODEL_TYPES)} "
                f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})",
            )
        )
    bad: list[str] = []

    def want(cond: bool, what: str) -> None:
        if not cond:
            bad.append(what)

    moe = model.moe if model.is_moe else None  # type: ignore[attr-defined]
    deepseek = mt in ("deepseek_v2", "deepseek_v3")
    want((moe is not None) == (mt in ("mixtral", "qwen3_moe", "qwen2_moe", "olmoe", "deepseek_v2", "deepseek_v3", "dbrx",
                                      "gpt_oss")),
         f"kind {model.kind!r}")
    want((model.mla is not None) == deepseek, "MLA attention" if model.mla else "no MLA")
    if mt in ("gpt2",):
        want(model.position == "learned", f"position {model.position!r}")
    elif mt == "mpt":
        want(model.position == "none", f"position {model.position!r} (MPT uses ALiBi)")
    else:
        want(model.position == "rope", f"position {model.position!r}")
    norm = {"gpt2": "layernorm", "gpt_neox": "layernorm", "starcoder2": "layernorm", "dbrx": "layernorm-nobias",
            "mpt": "layernorm-nobias"}.get(mt, "rmsnorm")
    want(model.norm == norm, f"norm {model.norm!r}")
    want(model.qk_norm == {"qwen3": "head", "qwen3_moe": "head", "olmo2": "full", "olmoe": "full",
                                  "gemma3_text": "head"}.get(mt, "none"),
         f"qk_norm {model.qk_norm!r}")
    if mt in ("gpt2", "gpt_neox", "mpt", "starcoder2"):
        want(not model.gated and (mt != "mpt" or model.mlp == "gelu"), f"mlp {model.mlp!r}")
    else:
        want(model.gated, f"mlp {model.mlp!r}")

    d: dict[str, Any] = {"model_type": mt}
    d.update(_window_keys(model, mt, want))
    want(model.hf_activation is None or mt != "mpt", f"hf_activation {model.hf_activation!r} (MptMLP's GELU is fixed)")
    want(not model.parallel_residual or mt == "gpt_neox", "a parallel residual")
    want(model.sandwich_norm == (mt in ("gemma2", "gemma3_text")), "sandwich norms" if model.sandwich_norm else "no sandwich norms")
    softcaps = mt in ("gemma2", "gemma3_text")
    want(model.attention_sinks == (mt == "gpt_oss"), "attention sinks" if model.attention_sinks else "no attention sinks")
    want(softcaps or (model.attn_softcap is None and model.logit_softcap is None), "soft-capping")
    if mt == "gpt2":
        want(model.attention_bias == "all" and model.mlp_bias, "bias-free projections")
        want(model.kv_heads in (None, model.heads), "grouped-query attention")
        want(model.head_dim in (None, model.hidden // model.heads), "head_dim != hidden/heads")
        d.update(
            n_layer=model.layers, n_embd=model.hidden, n_head=model.heads, n_inner=model.ffn,
            vocab_size=model.vocab, n_positions=model.max_positions,
            activation_function=model.hf_activation or ("relu" if model.mlp == "relu" else "gelu"),
            tie_word_embeddings=model.tied_embeddings,
        )
        _unsupported(model, mt, bad)
        return d
    if mt == "mpt":
        want(model.attention_bias == "none" and not model.mlp_bias, "biases")
        want(model.kv_heads in (None, model.heads), "grouped-query attention")
        want(model.head_dim in (None, model.hidden // model.heads), "head_dim != hidden/heads")
        want(model.ffn == 4 * model.hidden, f"ffn {model.ffn} != 4·hidden (MptMLP's fixed width)")
        d.update(
            n_layers=model.layers, d_model=model.hidden, n_heads=model.heads,
            expansion_ratio=4, vocab_size=model.vocab,
            max_seq_len=model.max_positions or 2048, tie_word_embeddings=model.tied_embeddings,
        )
        _unsupported(model, mt, bad)
        return d
    if mt == "dbrx":
        want(model.attention_bias == "none" and not model.mlp_bias, "biases")
        want(not model.tied_embeddings, "tied embeddings")
        want(model.head_dim in (None, model.hidden // model.heads), "head_dim != hidden/heads")
        want(moe is None or (moe.shared_experts == 0 and moe.dense_layers == 0
             and not moe.dense_layer_ids and moe.moe_every == 1 and moe.expert_ffn in (None, model.ffn)),
             "a DBRX MoE layout other than every-layer routed experts")
        d.update(
            n_layers=model.layers, d_model=model.hidden, n_heads=model.heads, vocab_size=model.vocab,
            max_seq_len=model.max_positions or 2048,
            attn_config={"kv_n_heads": model.n_kv_heads, "rope_theta": 500000.0},
            ffn_config={
                "ffn_hidden_size": model.ffn,
                "moe_num_experts": moe.experts if moe else 1,
                "moe_top_k": moe.top_k if moe else 1,
                "ffn_act_fn": {"name": model.hf_activation or ("silu" if model.mlp == "swiglu" else "gelu")},
            },
            tie_word_embeddings=False,
        )
        _unsupported(model, mt, bad)
        return d

    d.update(
        num_hidden_layers=model.layers,
        hidden_size=model.hidden,
        num_attention_heads=model.heads,
        intermediate_size=model.ffn,
        vocab_size=model.vocab,
        tie_word_embeddings=model.tied_embeddings,
    )
    if model.max_positions is not None:
        d["max_position_embeddings"] = model.max_positions
    if mt == "gpt_neox":
        want(model.kv_heads in (None, model.heads), "grouped-query attention")
        want(model.head_dim in (None, model.hidden // model.heads), "head_dim != hidden/heads")
        want(model.mlp_bias, "a bias-free MLP")
        want(model.attention_bias in ("all", "none"), f"attention_bias {model.attention_bias!r}")
        d.update(attention_bias=model.attention_bias == "all",
                 hidden_act=model.hf_activation or ("relu" if model.mlp == "relu" else "gelu"),
                 use_parallel_residual=model.parallel_residual)
        _unsupported(model, mt, bad)
        return d

    if mt == "starcoder2":
        want(model.attention_bias in ("all", "none") and model.mlp_bias == (model.attention_bias == "all"),
             f"attention_bias {model.attention_bias!r} with mlp_bias {model.mlp_bias} (one use_bias key)")
        d.update(num_key_value_heads=model.n_kv_heads, use_bias=model.attention_bias == "all",
                 hidden_act=model.hf_activation or ("relu" if model.mlp == "relu" else "gelu_pytorch_tanh"))
        if model.head_dim is not None:
            d["head_dim"] = model.d_head
        _unsupported(model, mt, bad)
        return d

    act = model.hf_activation or ("gelu_pytorch_tanh" if model.mlp == "geglu" else "silu")
    if mt == "gpt_oss":
        assert moe is not None
        want(model.attention_bias in ("all", "none"), f"attention_bias {model.attention_bias!r}")
        want(model.mlp_bias and model.mlp == "swiglu" and moe.router_bias and moe.shared_experts == 0
             and moe.dense_layers == 0 and not moe.dense_layer_ids and moe.moe_every == 1
             and moe.expert_ffn in (None, model.ffn), "a MoE layout other than biased SwiGLU experts in every layer")
        d.update(num_key_value_heads=model.n_kv_heads, head_dim=model.d_head, attention_bias=model.attention_bias == "all",
                 num_local_experts=moe.experts, num_experts_per_tok=moe.top_k)
        if model.sliding_window is None:
            d["layer_types"] = ["full_attention"] * model.layers
        _unsupported(model, mt, bad)
        return d
    if mt in ("gemma", "gemma2", "gemma3_text"):
        want(model.attention_bias in ("all", "none") and not model.mlp_bias, f"attention_bias {model.attention_bias!r} / MLP biases")
        d.update({"hidden_act" if mt == "gemma" else "hidden_activation": act,
                  "num_key_value_heads": model.n_kv_heads, "head_dim": model.d_head,
                  "attention_bias": model.attention_bias == "all"})
        if softcaps:
            d.update(attn_logit_softcapping=model.attn_softcap, final_logit_softcapping=model.logit_softcap)
        if mt != "gemma" and model.sliding_window is None:  # no window: every layer full attention
            d["layer_types"] = ["full_attention"] * model.layers
        _unsupported(model, mt, bad)
        return d

    d["hidden_act"] = act
    if model.mla is None:
        d["num_key_value_heads"] = model.n_kv_heads
        if model.head_dim is not None or mt == "qwen3":  # Qwen3Config's head_dim default is 128
            d["head_dim"] = model.d_head
    if mt == "llama":
        want(model.attention_bias in ("all", "none"), f"attention_bias {model.attention_bias!r}")
        d.update(attention_bias=model.attention_bias == "all", mlp_bias=model.mlp_bias)
    elif mt in ("qwen3", "qwen3_moe", "olmo2", "olmoe", "deepseek_v2", "deepseek_v3"):
        want(model.attention_bias in ("all", "none"), f"attention_bias {model.attention_bias!r}")
        want(not model.mlp_bias, "MLP biases")
        d["attention_bias"] = model.attention_bias == "all"
    elif mt == "qwen2":
        want(model.attention_bias == "qkv", f"attention_bias {model.attention_bias!r}")
        want(not model.mlp_bias, "MLP biases")
    elif mt == "qwen2_moe":
        want(model.attention_bias in ("qkv", "none"), f"attention_bias {model.attention_bias!r}")
        want(not model.mlp_bias, "MLP biases")
        d["qkv_bias"] = model.attention_bias == "qkv"
    else:  # mistral, mixtral, phi3
        want(model.attention_bias == "none" and not model.mlp_bias, "biases")
        if mt == "phi3":  # Phi3Config's token ids (32000 …) must lie inside a small shape's vocabulary
            d.update(pad_token_id=None, bos_token_id=None, eos_token_id=None)

    if mt in ("mixtral", "olmoe"):
        assert moe is not None
        # OlmoeAttention sizes q_norm by hidden_size and k_norm by (hidden // heads)·a_kv
        want(mt == "mixtral" or model.head_dim in (None, model.hidden // model.heads), "head_dim != hidden/heads")
        want(moe.shared_experts == 0 and moe.dense_layers == 0 and not moe.dense_layer_ids
             and moe.moe_every == 1 and moe.expert_ffn in (None, model.ffn) and not moe.router_bias,
             f"a MoE layout other than every-layer routed experts of width ffn ({mt})")
        d.update({"num_local_experts" if mt == "mixtral" else "num_experts": moe.experts,
                  "num_experts_per_tok": moe.top_k})
    elif mt == "qwen3_moe":
        assert moe is not None
        want(moe.shared_experts == 0 and moe.dense_layers == 0 and not moe.router_bias,
             "shared experts / leading dense layers / router bias")
        d.update(num_experts=moe.experts, num_experts_per_tok=moe.top_k,
                 moe_intermediate_size=model.expert_ffn,  # type: ignore[attr-defined]
                 mlp_only_layers=list(moe.dense_layer_ids), decoder_sparse_step=moe.moe_every)
    elif mt == "qwen2_moe":
        assert moe is not None
        want(moe.shared_experts == 1 and moe.shared_expert_gate and moe.dense_layers == 0 and not moe.router_bias,
             "a MoE layout other than one gated shared expert per sparse layer (Qwen2MoeSparseMoeBlock)")
        d.update(num_experts=moe.experts, num_experts_per_tok=moe.top_k,
                 moe_intermediate_size=model.expert_ffn,  # type: ignore[attr-defined]
                 shared_expert_intermediate_size=model.shared_ffn,  # type: ignore[attr-defined]
                 mlp_only_layers=list(moe.dense_layer_ids), decoder_sparse_step=moe.moe_every)
    elif deepseek:
        assert moe is not None and model.mla is not None
        mla = model.mla
        want(moe.moe_every == 1 and not moe.dense_layer_ids and not moe.router_bias
             and model.shared_ffn == model.expert_ffn,  # type: ignore[attr-defined]
             "a DeepSeek MoE layout the transformers class cannot build")
        want(mt == "deepseek_v3" or model.mtp_layers == 0, "multi-token prediction (DeepSeek-V2 has none)")
        d.update(
            n_routed_experts=moe.experts, num_experts_per_tok=moe.top_k,
            n_shared_experts=moe.shared_experts,
            moe_intermediate_size=model.expert_ffn,  # type: ignore[attr-defined]
            first_k_dense_replace=moe.dense_layers,
            q_lora_rank=mla.q_lora_rank, kv_lora_rank=mla.kv_lora_rank,
            qk_nope_head_dim=mla.qk_nope_head_dim, qk_rope_head_dim=mla.qk_rope_head_dim,
            v_head_dim=mla.v_head_dim,
            num_key_value_heads=model.heads,
            # group-limited routing; no parameters. One group = no limit (routing groups must divide the experts)
            n_group=moe.route_groups or 1, topk_group=moe.route_groups_per_token or 1,
        )
        if mt == "deepseek_v3":
            d["num_nextn_predict_layers"] = model.mtp_layers
        elif moe.route_groups:
            d["topk_method"] = "group_limited_greedy"
    _unsupported(model, mt, bad)
    return d
