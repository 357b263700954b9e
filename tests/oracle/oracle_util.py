"""Count parameters of the real transformers classes (meta device: no memory, no weights).

Used by the oracle tests only; imports torch and transformers, so import it after
``pytest.importorskip``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

transformers.logging.set_verbosity_error()

CONFIGS = Path(__file__).parent / "configs"
COMPONENTS = ("embedding", "attention", "mlp", "experts", "shared_experts", "router", "norms", "lm_head")


def fixture(name: str) -> dict[str, Any]:
    """The published ``config.json`` stored as ``configs/<name>.json``."""
    return json.loads((CONFIGS / f"{name}.json").read_text())


def hf_config(config: dict[str, Any]):
    """A transformers config object for a config dict.

    ``quantization_config`` is dropped: the checkpoint's storage format
    (DeepSeek-V3's FP8 blocks) does not change which parameters the class has,
    and ``from_config`` must not try to set up a quantizer.
    """
    d = {k: v for k, v in config.items() if k != "quantization_config"}
    ffn = d.get("ffn_config")
    if isinstance(ffn, dict) and isinstance(ffn.get("moe_normalize_expert_weights"), int):
        # transformers 5.23's strict DbrxFFNConfig types this field `float | None` and rejects
        # the published DBRX value `1` (an int) -- even AutoConfig.from_pretrained fails on it.
        d["ffn_config"] = dict(ffn, moe_normalize_expert_weights=float(ffn["moe_normalize_expert_weights"]))
    return AutoConfig.for_model(**d)


def build(config: dict[str, Any]) -> torch.nn.Module:
    """The ``AutoModelForCausalLM`` class for ``config``, instantiated on the meta device."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config(config))


_EMBED = re.compile(r"(^|\.)(embed_tokens|wte|wpe|embed_in)\.")
_ROUTER = re.compile(r"\.(mlp\.gate|ffn\.router|mlp\.router|mlp\.shared_expert_gate)\.")
_SHARED = re.compile(r"\.shared_experts?\.")
_ATTN = re.compile(r"\.(self_attn|attn|attention)\.")


def component(name: str) -> str:
    """The llmplan component a parameter name belongs to (norms inside attention are attention)."""
    if _EMBED.search(name):
        return "embedding"
    if name.startswith(("lm_head.", "embed_out.")):
        return "lm_head"
    if _SHARED.search(name):  # not Qwen2-MoE's `shared_expert_gate` (a router-like gate)
        return "shared_experts"
    if ".experts." in name:
        return "experts"
    if _ROUTER.search(name):
        return "router"
    if _ATTN.search(name):
        return "attention"
    if ".mlp." in name or ".ffn." in name:  # MPT: blocks.i.ffn.up_proj
        return "mlp"
    module = name.rsplit(".", 2)[-2]
    if "norm" in module or module.startswith("ln_"):
        return "norms"
    raise AssertionError(f"unclassified parameter {name!r}")


def counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts per component plus ``total``.

    ``named_parameters()`` yields a tied tensor once (under its first name, the
    input embedding), so a tied LM head counts 0. Buffers (rotary tables,
    DeepSeek's ``e_score_correction_bias``) are not parameters and are not counted.
    """
    out = dict.fromkeys(COMPONENTS, 0)
    for name, p in model.named_parameters():
        out[component(name)] += p.numel()
    out["total"] = sum(p.numel() for p in model.parameters())
    assert out["total"] == sum(out[c] for c in COMPONENTS)
    return out


def active(model: torch.nn.Module, config) -> int:
    """Parameters one token touches, from the module structure.

    Every experts module (``*.experts``, with its ``num_experts``) holds ``E``
    equal experts; a token visits ``top_k`` of them, so ``(E - top_k)`` experts'
    worth of each such module is inactive.
    """
    total = sum(p.numel() for p in model.parameters())
    inactive = 0
    for name, module in model.named_modules():
        if name.endswith(".experts") and hasattr(module, "num_experts"):
            top_k = getattr(config, "num_experts_per_tok", None)
            if top_k is None:  # DBRX keeps it in the nested ffn_config
                top_k = config.ffn_config.moe_top_k
            n_experts = module.num_experts
            size = sum(p.numel() for p in module.parameters())
            assert size % n_experts == 0, name
            inactive += (n_experts - top_k) * (size // n_experts)
    return total - inactive


@lru_cache(maxsize=None)
def _fixture_counts(name: str) -> tuple[tuple[str, int], ...]:
    cfg = fixture(name)
    model = build(cfg)
    c = counts(model)
    c["active"] = active(model, model.config)
    return tuple(c.items())


def fixture_counts(name: str) -> dict[str, int]:
    """``counts`` (+ ``active``) of the class built from ``configs/<name>.json`` (cached)."""
    return dict(_fixture_counts(name))


def mtp_params(model: torch.nn.Module, num_mtp_layers: int) -> int:
    """Unique parameters of transformers' ``MtpModel`` for ``model`` (shared embedding/head excluded).

    ``transformers.modeling_layers.MtpModel`` builds the modules DeepSeek-V3's
    checkpoint stores as ``model.layers.61``: ``enorm``, ``hnorm``, ``eh_proj``,
    one decoder block (MoE: ``get_mtp_config`` sets ``first_k_dense_replace = 0``)
    and a post-norm; it borrows ``embed_tokens`` and the LM head from the main model.
    """
    from transformers.modeling_layers import MtpModel

    with torch.device("meta"):
        mtp = MtpModel(model, num_mtp_layers)
    shared = {id(p) for p in model.parameters()}
    return sum(p.numel() for p in mtp.parameters() if id(p) not in shared)


# fixture name (None: the class defaults), overrides: the reduced shape of each architecture (structure kept).
SMALL: dict[str, tuple[str, dict]] = {
    "llama": ("llama-3.1-8b", dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                                   num_key_value_heads=2, intermediate_size=384)),
    "qwen3": ("qwen3-8b", dict(num_hidden_layers=2, hidden_size=128, head_dim=48, num_attention_heads=4,
                               num_key_value_heads=2, intermediate_size=384)),
    "mixtral": ("mixtral-8x7b", dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                                     num_key_value_heads=2, intermediate_size=192, num_local_experts=4,
                                     num_experts_per_tok=2)),
    "qwen3_moe": ("qwen3-30b-a3b", dict(num_hidden_layers=3, hidden_size=128, head_dim=32, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=256, moe_intermediate_size=96,
                                        num_experts=4, num_experts_per_tok=2, mlp_only_layers=[1])),
    "deepseek_v3": ("deepseek-v3", dict(num_hidden_layers=3, first_k_dense_replace=1, hidden_size=128,
                                        num_attention_heads=4, num_key_value_heads=4, q_lora_rank=64,
                                        kv_lora_rank=32, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=24,
                                        n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1,
                                        n_shared_experts=1, moe_intermediate_size=64, intermediate_size=256)),
    "deepseek_v2": ("deepseek-v2-lite", dict(num_hidden_layers=3, first_k_dense_replace=1, hidden_size=128,
                                             num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32,
                                             qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=24, n_routed_experts=8,
                                             num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=64,
                                             intermediate_size=256, topk_method="group_limited_greedy", n_group=2,
                                             topk_group=1)),
    "gpt_oss": ("gpt-oss-20b", dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
                                     head_dim=32, intermediate_size=96, num_local_experts=4, num_experts_per_tok=2,
                                     layer_types=["sliding_attention", "full_attention"], pad_token_id=None,
                                     eos_token_id=None)),
    "gpt2": ("gpt2", dict(n_layer=2, n_embd=128, n_head=4, n_positions=256, n_ctx=256)),
    "gpt_neox": ("gpt-neox-20b", dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                                      intermediate_size=512)),
    "mpt": ("mpt-7b-instruct", dict(d_model=128, n_heads=4, n_layers=2, max_seq_len=256)),
    "phi3": ("phi-3-mini-4k", dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
                                   intermediate_size=384, pad_token_id=None, bos_token_id=None, eos_token_id=None)),
    "qwen2_moe": ("qwen1.5-moe-a2.7b", dict(num_hidden_layers=3, hidden_size=128, num_attention_heads=4,
                                            num_key_value_heads=2, intermediate_size=256, moe_intermediate_size=96,
                                            shared_expert_intermediate_size=160, num_experts=4, num_experts_per_tok=2,
                                            mlp_only_layers=[1])),
    "gemma3_text": ("gemma-3-1b", dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                                       num_key_value_heads=2, head_dim=32, intermediate_size=384)),
    "olmoe": (None, dict(model_type="olmoe", num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=96, num_experts=4, num_experts_per_tok=2)),
    "gemma2": (None, dict(model_type="gemma2", num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=32, intermediate_size=384)),
    "gemma": (None, dict(model_type="gemma", num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=32, intermediate_size=384)),
    # no published StarCoder2 config.json among the fixtures: the class defaults (use_bias, tied head,
    # gelu_pytorch_tanh) at a small GQA shape
    "starcoder2": (None, dict(model_type="starcoder2", num_hidden_layers=2, hidden_size=128, num_attention_heads=4,
                              num_key_value_heads=2, intermediate_size=512, bos_token_id=None, eos_token_id=None)),
}


def small_config(name: str, vocab: int, shapes: dict[str, tuple[str, dict]] = SMALL) -> dict:
    """The published config of ``shapes[name]``'s fixture, reduced to its small shape and ``vocab``."""
    fixture_name, overrides = shapes[name]
    cfg = fixture(fixture_name) if fixture_name else {}
    cfg.update(overrides, vocab_size=vocab)
    return cfg


def one_thread():
    """Generator for a fixture: tiny tensors run faster on one intra-op thread (a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
