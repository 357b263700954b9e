"""llmplan.hf: reading and writing Hugging Face config.json (no torch needed).

The published configs under ``tests/oracle/configs`` (sources in
``tests/oracle/SOURCES.md``) double as fixtures here; the oracle suite checks
the same models against the real transformers classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplan.bindings import evaluate, model_values
from llmplan.errors import PlanError
from llmplan.formulas import params as P
from llmplan.hf import SUPPORTED_MODEL_TYPES, from_hf_config, to_hf_config
from llmplan.model import Dense, Experts, MoE

CONFIGS = Path(__file__).parent / "oracle" / "configs"
FIXTURES = sorted(p.stem for p in CONFIGS.glob("*.json"))


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def total(model) -> int:
    return evaluate(P.total(model), model_values(model))


def problems(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {p.path: p.message for p in exc.value.problems}


# ----- sources -------------------------------------------------------------------------------
def test_reads_file_directory_and_mapping(tmp_path):
    cfg = load("llama-2-7b")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    from_file, _ = from_hf_config(tmp_path / "config.json")
    from_dir, _ = from_hf_config(str(tmp_path))
    from_map, _ = from_hf_config(cfg, name="Llama 2 7B")
    assert from_file == from_dir
    assert from_map.name == "Llama 2 7B"
    assert from_file.name == "meta-llama/Llama-2-7b-hf"  # _name_or_path when no name is given
    assert total(from_map) == total(from_file) == 6_738_415_616
    assert from_file.hf_model_type == "llama"
    assert str(tmp_path) in from_file.source


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "llama",\n  "hidden_size": 4096,,\n}\n')
    with pytest.raises(PlanError) as exc:
        from_hf_config(path)
    assert exc.value.problems[0].path == "model.hf_config"
    assert "line 3, column 23" in str(exc.value)
    assert f"{path}:3:23" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(PlanError, match="no config.json"):
        from_hf_config(tmp_path)


def test_unknown_model_type_names_supported_and_closest():
    with pytest.raises(PlanError) as exc:
        from_hf_config({"model_type": "qwen3moe", "hidden_size": 8})
    (problem,) = exc.value.problems
    assert problem.path == "model.hf_config"
    assert "'qwen3moe' is not supported" in problem.message
    assert "did you mean 'qwen3_moe'" in problem.message
    for mt in SUPPORTED_MODEL_TYPES:
        assert mt in problem.message


def test_missing_model_type():
    with pytest.raises(PlanError, match="no 'model_type'"):
        from_hf_config({"hidden_size": 8})


def test_every_missing_required_key_is_listed():
    with pytest.raises(PlanError) as exc:
        from_hf_config({"model_type": "llama", "hidden_size": 64})
    assert set(problems(exc)) == {
        "model.hf_config.num_hidden_layers",
        "model.hf_config.num_attention_heads",
        "model.hf_config.intermediate_size",
        "model.hf_config.vocab_size",
    }
    assert all("required key missing" in m for m in problems(exc).values())


def test_missing_keys_name_their_aliases():
    with pytest.raises(PlanError) as exc:
        from_hf_config({k: v for k, v in load("mixtral-8x7b").items() if k != "num_local_experts"})
    assert problems(exc) == {"model.hf_config.num_local_experts": "required key missing (or 'num_experts')"}


def test_bad_values_are_problems():
    cfg = dict(load("llama-2-7b"), hidden_size="4096", tie_word_embeddings="no")
    with pytest.raises(PlanError) as exc:
        from_hf_config(cfg)
    assert set(problems(exc)) == {"model.hf_config.hidden_size", "model.hf_config.tie_word_embeddings"}


def test_integral_floats_are_accepted():
    model, _ = from_hf_config(dict(load("llama-2-7b"), hidden_size=4096.0))
    assert model.hidden == 4096


def test_model_validation_problems_are_prefixed():
    with pytest.raises(PlanError) as exc:
        from_hf_config(dict(load("llama-2-7b"), num_key_value_heads=5))
    assert "model.kv_heads" in problems(exc)


# ----- per model_type ---------------------------------------------------------------------------
def test_llama_defaults_warn():
    model, warnings = from_hf_config(load("llama-2-7b"))
    assert model == Dense(
        layers=32, hidden=4096, heads=32, kv_heads=32, ffn=11008, vocab=32000, max_positions=4096,
        name="meta-llama/Llama-2-7b-hf", hf_model_type="llama", source=model.source,
    )
    text = "\n".join(warnings)
    assert "attention_bias not given: assumed false" in text
    assert "mlp_bias not given: assumed false" in text
    assert "tie_word_embeddings" not in text  # given explicitly


def test_llama_biases_and_gqa():
    model, _ = from_hf_config(dict(load("llama-3.1-8b"), attention_bias=True, mlp_bias=True))
    assert (model.attention_bias, model.mlp_bias, model.n_kv_heads) == ("all", True, 8)


def test_llama_without_kv_heads_is_mha_with_warning():
    cfg = {k: v for k, v in load("llama-2-7b").items() if k != "num_key_value_heads"}
    model, warnings = from_hf_config(cfg)
    assert model.n_kv_heads == 32
    assert any(w.startswith("num_key_value_heads not given") for w in warnings)


def test_mistral_null_head_dim_and_ignored_bias():
    cfg = {
        "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768, "head_dim": None,
        "attention_bias": True,
    }
    model, warnings = from_hf_config(cfg)
    assert model.head_dim is None and model.d_head == 128
    assert model.attention_bias == "none"  # MistralAttention is bias-free whatever the config says
    assert any("attention_bias = True ignored" in w for w in warnings)


def test_explicit_head_dim_wins():
    model, _ = from_hf_config(load("qwen3-30b-a3b"))
    assert model.hidden // model.heads == 64
    assert model.d_head == 128


def test_qwen3_head_dim_defaults_to_128():
    cfg = {k: v for k, v in load("qwen3-8b").items() if k != "head_dim"}
    cfg.update(hidden_size=2048, num_attention_heads=32)  # 2048 / 32 = 64, yet Qwen3Config says 128
    model, warnings = from_hf_config(cfg)
    assert model.d_head == 128
    assert "head_dim not given: assumed 128 (Qwen3Config default)" in warnings
    assert model.qk_norm == "head"


def test_qwen2_always_has_qkv_biases():
    model, _ = from_hf_config(load("qwen2-7b"))
    assert model.attention_bias == "qkv"
    assert total(model) == 7_615_616_512


def test_mixtral_aliases():
    base = load("mixtral-8x7b")
    a, _ = from_hf_config(base)
    b, _ = from_hf_config({**{k: v for k, v in base.items() if k != "num_local_experts"}, "num_experts": 8})
    assert a == b
    assert a.moe == Experts(experts=8, top_k=2)
    assert a.n_moe_layers == 32 and a.expert_ffn == 14336


def test_qwen3_moe_mlp_only_layers_and_sparse_step():
    cfg = dict(load("qwen3-30b-a3b"), num_hidden_layers=8, mlp_only_layers=[0, 5], decoder_sparse_step=2)
    model, _ = from_hf_config(cfg)
    assert model.moe.dense_layer_ids == (0, 5) and model.moe.moe_every == 2
    # Qwen3MoeDecoderLayer: MoE iff i not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0
    assert model.moe_layer_ids() == tuple(i for i in range(8) if i not in (0, 5) and (i + 1) % 2 == 0)
    assert model.ffn == 6144 and model.expert_ffn == 768


def test_qwen3_moe_num_local_experts_alias_and_zero_experts():
    base = {k: v for k, v in load("qwen3-30b-a3b").items() if k != "num_experts"}
    model, _ = from_hf_config(dict(base, num_local_experts=64))
    assert model.moe.experts == 64
    dense, warnings = from_hf_config(dict(base, num_experts=0))
    assert isinstance(dense, Dense) and any("num_experts = 0" in w for w in warnings)


def test_moe_layout_keys_are_required():
    qwen = {k: v for k, v in load("qwen3-30b-a3b").items() if k not in ("num_experts", "moe_intermediate_size")}
    with pytest.raises(PlanError) as exc:
        from_hf_config(qwen)
    assert set(problems(exc)) == {"model.hf_config.num_experts", "model.hf_config.moe_intermediate_size"}
    ds = {k: v for k, v in load("deepseek-v3").items() if k not in ("first_k_dense_replace", "kv_lora_rank")}
    with pytest.raises(PlanError) as exc:
        from_hf_config(ds)
    assert set(problems(exc)) == {"model.hf_config.first_k_dense_replace", "model.hf_config.kv_lora_rank"}


def test_published_configs_need_few_assumptions():
    """Modern configs state every count-relevant key; old ones leave defaults to the class."""
    for name in ("llama-3.1-8b", "qwen3-30b-a3b", "qwen3-235b-a22b", "dbrx", "olmo-2-1124-7b"):
        assert from_hf_config(load(name))[1] == [], name
    _, warnings = from_hf_config(load("llama-2-7b"))
    assert warnings == [
        "attention_bias not given: assumed false (LlamaConfig default)",
        "mlp_bias not given: assumed false (LlamaConfig default)",
    ]


def test_deepseek_v3():
    model, warnings = from_hf_config(load("deepseek-v3"))
    assert isinstance(model, MoE)
    assert model.mla.q_lora_rank == 1536 and model.mla.qk_head_dim == 192
    assert model.moe.dense_layers == 3 and model.n_moe_layers == 58
    assert (model.moe.experts, model.moe.shared_experts, model.expert_ffn, model.shared_ffn) == (256, 1, 2048, 2048)
    assert model.mtp_layers == 1
    assert model.ffn == 18432
    assert any("quantization_config (fp8)" in w for w in warnings)
    assert total(model) == 671_026_404_352


def test_deepseek_aliases_and_q_lora_null():
    cfg = load("deepseek-v3")
    cfg = {k: v for k, v in cfg.items() if k not in ("n_routed_experts", "num_nextn_predict_layers")}
    cfg.update(num_local_experts=64, num_mtp_layers=2, q_lora_rank=None)
    model, _ = from_hf_config(cfg)
    assert model.moe.experts == 64 and model.mtp_layers == 2 and model.mla.q_lora_rank is None


def test_deepseek_route_groups_from_n_group_and_topk_group():
    """DeepSeek-V3's config.json: n_group = 8, topk_group = 4 (node-limited routing, report §2.1.2)."""
    model, warnings = from_hf_config(load("deepseek-v3"))
    assert (model.moe.route_groups, model.moe.route_groups_per_token) == (8, 4)
    assert not any("n_group" in w or "topk_group" in w for w in warnings)
    d = to_hf_config(model)
    assert (d["n_group"], d["topk_group"]) == (8, 4)
    # absent: DeepseekV3Config's defaults, with a warning each
    cfg = {k: v for k, v in load("deepseek-v3").items() if k not in ("n_group", "topk_group")}
    model, warnings = from_hf_config(cfg)
    assert (model.moe.route_groups, model.moe.route_groups_per_token) == (8, 4)
    assert "n_group not given: assumed 8 (DeepseekV3Config default)" in warnings
    assert "topk_group not given: assumed 4 (DeepseekV3Config default)" in warnings
    # one group holds every expert (Kimi K2's config): no group limit, written back as 1 and 1
    model, _ = from_hf_config({**load("deepseek-v3"), "n_group": 1, "topk_group": 1})
    assert model.moe.route_groups is None and model.moe.route_groups_per_token is None
    assert (to_hf_config(model)["n_group"], to_hf_config(model)["topk_group"]) == (1, 1)


def test_deepseek_route_group_errors_name_the_config_key():
    for bad, key, text in (
        ({"n_group": 6}, "model.hf_config.n_group", "6 does not divide the 256 routed experts"),
        ({"topk_group": 9}, "model.hf_config.topk_group", "9 exceeds n_group = 8 (allowed: 1 … 8)"),
        ({"n_group": 64, "topk_group": 1}, "model.hf_config.topk_group", "fewer than num_experts_per_tok = 8"),
    ):
        with pytest.raises(PlanError) as exc:
            from_hf_config({**load("deepseek-v3"), **bad})
        assert text in problems(exc)[key], bad


def test_deepseek_moe_layer_freq_follows_reference_rule():
    cfg = dict(load("deepseek-v3"), num_hidden_layers=10, first_k_dense_replace=2, moe_layer_freq=3)
    model, warnings = from_hf_config(cfg)
    # modeling_deepseek.py: MoE iff i >= first_k_dense_replace and i % moe_layer_freq == 0
    assert model.moe_layer_ids() == (3, 6, 9)
    assert any("moe_layer_freq = 3" in w and "ignores" in w for w in warnings)


def test_gpt2_keys_and_defaults():
    model, warnings = from_hf_config(load("gpt2"))
    assert (model.layers, model.hidden, model.heads, model.ffn, model.max_positions) == (12, 768, 12, 3072, 1024)
    assert model.position == "learned" and model.norm == "layernorm" and model.mlp == "gelu"
    assert model.attention_bias == "all" and model.mlp_bias
    assert model.tied_embeddings  # GPT2Config ties by default
    assert "n_inner not given: assumed 4·n_embd = 3072 (GPT2MLP rule)" in warnings
    assert any(w.startswith("tie_word_embeddings not given: assumed true") for w in warnings)
    assert total(model) == 124_439_808
    inner, _ = from_hf_config(dict(load("gpt2"), n_inner=1000))
    assert inner.ffn == 1000


def test_gpt_neox():
    model, _ = from_hf_config(load("gpt-neox-20b"))
    assert (model.norm, model.mlp, model.attention_bias, model.mlp_bias) == ("layernorm", "gelu", "all", True)
    assert not model.tied_embeddings and model.position == "rope"
    no_bias, _ = from_hf_config(dict(load("pythia-6.9b"), attention_bias=False))
    assert no_bias.attention_bias == "none" and no_bias.mlp_bias  # the MLP keeps its biases


def test_olmo2_full_qk_norm():
    model, _ = from_hf_config(load("olmo-2-1124-7b"))
    assert model.qk_norm == "full" and model.norm == "rmsnorm"


def test_dbrx_nested_configs():
    model, _ = from_hf_config(load("dbrx"))
    assert (model.hidden, model.heads, model.n_kv_heads, model.layers, model.vocab) == (6144, 48, 8, 40, 100352)
    assert model.moe == Experts(experts=16, top_k=4) and model.ffn == 10752
    assert model.norm == "layernorm-nobias"
    assert model.max_positions == 32768


def test_dbrx_nested_keys_are_required():
    cfg = load("dbrx")
    cfg["ffn_config"] = {k: v for k, v in cfg["ffn_config"].items() if k not in ("moe_num_experts", "ffn_hidden_size")}
    cfg["attn_config"] = {}
    with pytest.raises(PlanError) as exc:
        from_hf_config(cfg)
    assert set(problems(exc)) == {
        "model.hf_config.ffn_config.moe_num_experts",
        "model.hf_config.ffn_config.ffn_hidden_size",
        "model.hf_config.attn_config.kv_n_heads",
    }


def test_mpt_keys_alibi_and_no_biases():
    model, warnings = from_hf_config(load("mpt-7b-instruct"))
    assert (model.layers, model.hidden, model.heads, model.ffn, model.vocab) == (32, 4096, 32, 16384, 50432)
    assert model.position == "none" and model.norm == "layernorm-nobias" and model.mlp == "gelu"
    assert model.attention_bias == "none" and not model.mlp_bias and model.tied_embeddings
    assert model.max_positions == 2048
    assert any(w.startswith("learned_pos_emb = true ignored") for w in warnings)
    # by hand: embedding V·h (tied head); per block Wqkv 3h², out_proj h², up/down 2·4h², two
    # weight-only LayerNorms 2h; final LayerNorm h
    h = 4096
    assert total(model) == 50432 * h + 32 * (12 * h * h + 2 * h) + h == 6_649_286_656
    # transformers' MptMLP is 4·d_model whatever expansion_ratio says
    ratio, ratio_warnings = from_hf_config(dict(load("mpt-7b-instruct"), expansion_ratio=2))
    assert ratio.ffn == 4 * h and any(w.startswith("expansion_ratio = 2 ignored") for w in ratio_warnings)
    _, biased = from_hf_config(dict(load("mpt-7b-instruct"), no_bias=False))
    assert any(w.startswith("no_bias = false ignored") for w in biased)


def test_mpt_grouped_query_attention_is_refused():
    cfg = load("mpt-7b-instruct")
    cfg["attn_config"] = dict(cfg["attn_config"], attn_type="grouped_query_attention", kv_n_heads=8)
    with pytest.raises(PlanError) as exc:
        from_hf_config(cfg)
    assert "multi-head only" in problems(exc)["model.hf_config.attn_config.attn_type"]


def test_tie_defaults_per_type():
    expected = {"gpt2": True, "mpt": True, "gemma3_text": True}  # (and gemma, starcoder2: no fixture)
    for name in FIXTURES:
        cfg = {k: v for k, v in load(name).items() if k != "tie_word_embeddings"}
        model, _ = from_hf_config(cfg)
        assert model.tied_embeddings is expected.get(cfg["model_type"], False), name


def test_hidden_act_maps_to_gated_kind():
    model, _ = from_hf_config(dict(load("llama-2-7b"), hidden_act="gelu_pytorch_tanh"))
    assert model.mlp == "geglu"
    odd, warnings = from_hf_config(dict(load("llama-2-7b"), hidden_act="relu"))
    assert odd.mlp == "swiglu" and any("recorded as swiglu" in w for w in warnings)


# ----- writing -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FIXTURES)
def test_round_trip_through_to_hf_config(name):
    model, _ = from_hf_config(load(name))
    d = to_hf_config(model)
    assert d["model_type"] == model.hf_model_type
    again, _ = from_hf_config(d)
    strip = dict(name="", source="")
    import attrs

    assert attrs.evolve(again, **strip) == attrs.evolve(model, **strip)


def test_to_hf_config_without_hf_model_type_picks_a_class():
    assert to_hf_config(Dense(layers=1, hidden=8, heads=2, ffn=8, vocab=4))["model_type"] == "llama"
    moe = MoE(layers=1, hidden=8, heads=2, ffn=8, vocab=4, moe=Experts(experts=2, top_k=1))
    assert to_hf_config(moe)["model_type"] == "mixtral"


def test_to_hf_config_refuses_what_the_class_cannot_build():
    m = Dense(layers=1, hidden=8, heads=2, ffn=8, vocab=4, qk_norm="head", hf_model_type="llama")
    with pytest.raises(PlanError, match="qk_norm 'head' cannot be expressed as a 'llama' config"):
        to_hf_config(m)
    with pytest.raises(PlanError, match="not supported"):
        to_hf_config(Dense(layers=1, hidden=8, heads=2, ffn=8, vocab=4, hf_model_type="falcon"))


def test_plan_file_docs_list_every_supported_model_type():
    doc = (Path(__file__).parents[1] / "docs" / "plan-file.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `hf_config` |"))
    assert [t for t in SUPPORTED_MODEL_TYPES if f"`{t}`" not in row] == []


# ----- Gemma 3, Qwen2-MoE, Phi-3, StarCoder2 ---------------------------------------------------
#: google/gemma-3-12b-it config.json as a public copy quotes it (a sparse text_config: transformers
#: omits the keys that equal Gemma3TextConfig's defaults); the vision tower is left out here
GEMMA3_12B = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {"hidden_size": 3840, "intermediate_size": 15360, "model_type": "gemma3_text",
                    "num_attention_heads": 16, "num_hidden_layers": 48, "num_key_value_heads": 8,
                    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
    "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model", "num_hidden_layers": 27},
}


def test_gemma3_multimodal_reads_its_sparse_text_config():
    model, warnings = from_hf_config(GEMMA3_12B)
    assert model.hf_model_type == "gemma3_text" and model.sandwich_norm and model.qk_norm == "head"
    assert (model.vocab, model.d_head, model.tied_embeddings) == (262_208, 256, True)  # class defaults
    assert any("vision tower" in w for w in warnings)
    assert any("vocab_size not given: assumed 262208" in w for w in warnings)
    # 5 sliding layers in every 6 (transformers' default pattern): 40 of 48
    assert (model.sliding_window, model.n_sliding_layers) == (1024, 40)
    # by hand: q 3840·16·256, k and v 3840·8·256, o 16·256·3840, q/k norms 2·256, GeGLU 3·3840·15360,
    # four norms per layer; tied embedding 262208·3840; final norm
    h, a, kv, d, f = 3840, 16, 8, 256, 15360
    layer = 2 * h * a * d + 2 * h * kv * d + 2 * d + 3 * h * f + 4 * h
    assert total(model) == 48 * layer + 262_208 * h + h == 11_766_034_176
    # Gemma 3 Technical Report (arXiv 2503.19786), Table 1: 12B has 10,759M non-embedding parameters
    assert round((total(model) - 262_208 * h) / 1e6) == 10_759


def test_gemma3_writes_back_as_its_text_model():
    model, _ = from_hf_config(GEMMA3_12B)
    cfg = to_hf_config(model)
    assert cfg["model_type"] == "gemma3_text" and cfg["head_dim"] == 256
    assert total(from_hf_config(cfg)[0]) == total(model)
    with pytest.raises(PlanError, match="sandwich norms"):
        to_hf_config(Dense(layers=1, hidden=8, heads=2, ffn=8, vocab=4, sandwich_norm=True, hf_model_type="llama"))


def test_qwen2_moe_layer_pattern_and_shared_expert():
    cfg = load("qwen1.5-moe-a2.7b") | {"num_hidden_layers": 4, "decoder_sparse_step": 2, "mlp_only_layers": [3]}
    model, _ = from_hf_config(cfg)
    # MoE iff (i + 1) % 2 == 0 and i not in mlp_only_layers: layer 1 only
    assert model.moe_layer_ids() == (1,)
    assert model.moe.shared_experts == 1 and model.moe.shared_expert_gate and model.shared_ffn == 5632
    h, E = 2048, 60
    router = evaluate(P.router_per_layer(model), model_values(model))
    assert router == h * E + h  # the router and the shared expert's Linear(h, 1) gate


def test_phi3_and_starcoder2_keys():
    phi, _ = from_hf_config(load("phi-3-mini-4k") | {"attention_bias": True})
    assert phi.attention_bias == "none"  # Phi3Attention builds no biases whatever the config says
    assert phi.sliding_window is None  # the fixture's copy states no window
    phi, _ = from_hf_config(load("phi-3-mini-4k") | {"sliding_window": 2047})  # as Phi-3-mini-4k's config.json
    assert (phi.sliding_window, phi.n_sliding_layers) == (2047, 32)  # Phi3Config windows every layer
    sc, warnings = from_hf_config({"model_type": "starcoder2", "hidden_size": 64, "num_hidden_layers": 2,
                                   "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 256,
                                   "vocab_size": 100, "use_bias": False})
    assert (sc.norm, sc.mlp, sc.attention_bias, sc.mlp_bias, sc.tied_embeddings) == ("layernorm", "gelu", "none", False, True)
    # LayerNorms keep their bias: 2 norms · 2·64 per layer + final 2·64; no Linear bias
    assert total(sc) == 2 * (64 * 64 * 2 + 2 * 64 * 32 + 2 * 64 * 256 + 4 * 64) + 100 * 64 + 2 * 64


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("mixtral-8x7b", {}, (None, 0)),  # MixtralConfig: no window by default
        ("mixtral-8x7b", {"sliding_window": 4096}, (4096, 32)),
        # a Mistral config without the key gets MistralConfig's 4096 (Mistral 7B v0.1), null none
        ("mixtral-8x7b", {"model_type": "mistral"}, (4096, 32)),
        ("mixtral-8x7b", {"model_type": "mistral", "sliding_window": None}, (None, 0)),
        # Qwen: only with use_sliding_window, on the layers from max_window_layers on
        ("qwen2-7b", {"sliding_window": 4096}, (None, 0)),
        ("qwen2-7b", {"use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 20}, (4096, 8)),
        # an explicit layer_types list wins
        ("gemma-3-1b", {"layer_types": ["sliding_attention", "full_attention"] * 13}, (512, 13)),
    ],
)
def test_sliding_window_layers_follow_the_class(name, extra, expected):
    model, _ = from_hf_config(load(name) | extra)
    assert (model.sliding_window, model.n_sliding_layers) == expected
    again, _ = from_hf_config(to_hf_config(model))  # and survive the round trip
    assert (again.sliding_window, again.n_sliding_layers) == expected


def test_olmoe_reads_full_qk_norms_and_refuses_a_foreign_head_dim():
    cfg = {"model_type": "olmoe", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 16,
           "num_key_value_heads": 16, "intermediate_size": 1024, "vocab_size": 50304, "num_experts": 64,
           "num_experts_per_tok": 8}
    model, _ = from_hf_config(cfg)
    assert (model.qk_norm, model.moe.experts, model.moe.top_k, model.is_moe) == ("full", 64, 8, True)
    # by hand: q/k/v/o 4·h², q/k norms 2·h, 64 experts 3·h·1024, router h·64, two norms; untied head
    h = 2048
    assert total(model) == 16 * (4 * h * h + 2 * h + 64 * 3 * h * 1024 + h * 64 + 2 * h) + 2 * 50304 * h + h
    with pytest.raises(PlanError) as exc:
        from_hf_config(cfg | {"head_dim": 64})
    assert "model.hf_config.head_dim" in problems(exc)
