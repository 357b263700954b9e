"""Every supported model_type, every structural option: formulas against the real classes.

Random small shapes (hypothesis) are written out with :func:`llmplan.hf.to_hf_config`,
built by transformers on the meta device and counted by parameter name; the
llmplan components, total and active count must match exactly. This covers the
options the published fixtures leave at their defaults (biases on, tied heads,
q/k norms, GQA/MQA, explicit head_dim, Qwen3-MoE layer patterns, MLA without a
query latent, shared experts, ...).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import oracle_util as O  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from llmplan.bindings import evaluate, model_values  # noqa: E402
from llmplan.formulas import params as P  # noqa: E402
from llmplan.hf import SUPPORTED_MODEL_TYPES, from_hf_config, to_hf_config  # noqa: E402
from llmplan.model import MLA, Dense, Experts, MoE  # noqa: E402

pytestmark = pytest.mark.oracle

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(model) -> None:
    """llmplan's count of ``model`` equals transformers' count of ``to_hf_config(model)``."""
    config = to_hf_config(model)
    hf = O.build(config)
    expected = O.counts(hf)
    values = model_values(model)
    got = {k: evaluate(e, values) for k, e in P.components(model).items()}
    got["total"] = evaluate(P.total(model), values)
    assert got == expected, config
    assert evaluate(P.active(model), values) == O.active(hf, hf.config), config
    again, _ = from_hf_config(config)  # and the config reads back to the same count
    assert evaluate(P.total(again), model_values(again)) == expected["total"]


@st.composite
def shape(draw, *, gqa=True, explicit_head_dim=False, tie=True):
    heads = draw(st.sampled_from([1, 2, 4]))
    per_head = draw(st.sampled_from([4, 8]))
    kv = draw(st.sampled_from([h for h in (1, 2, 4) if heads % h == 0])) if gqa else None
    head_dim = draw(st.sampled_from([4, 8, 16])) if explicit_head_dim and draw(st.booleans()) else None
    return dict(
        layers=draw(st.integers(1, 3)),
        hidden=heads * per_head,
        heads=heads,
        kv_heads=kv,
        head_dim=head_dim,
        ffn=draw(st.integers(1, 40)),
        vocab=draw(st.integers(16, 50)),  # Olmo2Config pads with token 1
        tied_embeddings=draw(st.booleans()) if tie else False,
    )


@st.composite
def experts(draw, layers, **extra):
    n = draw(st.integers(1, 4))
    return Experts(experts=n, top_k=draw(st.integers(1, n)), **extra)


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]), st.booleans(), st.sampled_from(["swiglu", "geglu"]))
def test_llama(s, bias, mlp_bias, mlp):
    check(Dense(**s, attention_bias=bias, mlp_bias=mlp_bias, mlp=mlp, hf_model_type="llama"))


@SETTINGS
@given(shape(explicit_head_dim=True))
def test_mistral(s):
    check(Dense(**s, hf_model_type="mistral"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.data())
def test_mixtral(s, data):
    check(MoE(**s, moe=data.draw(experts(s["layers"])), hf_model_type="mixtral"))


@SETTINGS
@given(shape(explicit_head_dim=True))
def test_qwen2(s):
    check(Dense(**s, attention_bias="qkv", hf_model_type="qwen2"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]))
def test_qwen3(s, bias):
    check(Dense(**s, qk_norm="head", attention_bias=bias, hf_model_type="qwen3"))


def qwen_layout(data, layers: int, **extra) -> Experts:
    """Random Qwen-MoE experts: mlp_only_layers and decoder_sparse_step (and ``extra``)."""
    dense_ids = data.draw(st.lists(st.integers(0, layers - 1), unique=True, max_size=layers))
    return data.draw(experts(layers, expert_ffn=data.draw(st.integers(1, 24)), dense_layer_ids=tuple(sorted(dense_ids)),
                             moe_every=data.draw(st.integers(1, 3)), **extra))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]), st.data())
def test_qwen3_moe(s, bias, data):
    moe = qwen_layout(data, s["layers"])
    check(MoE(**s, qk_norm="head", attention_bias=bias, moe=moe, hf_model_type="qwen3_moe"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "qkv"]), st.data())
def test_qwen2_moe(s, bias, data):
    moe = qwen_layout(data, s["layers"], shared_experts=1, shared_ffn=data.draw(st.integers(1, 24)),
                      shared_expert_gate=True)
    check(MoE(**s, attention_bias=bias, moe=moe, hf_model_type="qwen2_moe"))


@SETTINGS
@given(shape(explicit_head_dim=True))
def test_phi3(s):
    check(Dense(**s, hf_model_type="phi3"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]))
def test_gemma(s, bias):
    check(Dense(**s, mlp="geglu", attention_bias=bias, hf_model_type="gemma"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]))
def test_gemma2(s, bias):
    check(Dense(**s, mlp="geglu", sandwich_norm=True, attention_bias=bias, attn_softcap=50.0, logit_softcap=30.0,
                hf_model_type="gemma2"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]))
def test_gemma3_text(s, bias):
    check(Dense(**s, mlp="geglu", qk_norm="head", sandwich_norm=True, attention_bias=bias, hf_model_type="gemma3_text"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.booleans(), st.sampled_from(["gelu", "relu"]))
def test_starcoder2(s, bias, mlp):
    check(Dense(**s, mlp=mlp, norm="layernorm", attention_bias="all" if bias else "none", mlp_bias=bias,
                hf_model_type="starcoder2"))


@SETTINGS
@given(shape(), st.sampled_from(["none", "all"]), st.data())
def test_olmoe(s, bias, data):  # OlmoeAttention sizes its q/k norms from hidden_size: no explicit head_dim
    check(MoE(**s, qk_norm="full", attention_bias=bias, moe=data.draw(experts(s["layers"])), hf_model_type="olmoe"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]))
def test_olmo2(s, bias):
    check(Dense(**s, qk_norm="full", attention_bias=bias, hf_model_type="olmo2"))


def deepseek(s, data, model_type: str) -> MoE:
    """A random MLA + MoE shape (V3 with 0 or 1 MTP module; V2 has none)."""
    s = dict(s, kv_heads=None, head_dim=None)
    mla = MLA(
        q_lora_rank=data.draw(st.one_of(st.none(), st.integers(1, 16))),
        kv_lora_rank=data.draw(st.integers(1, 16)),
        qk_nope_head_dim=data.draw(st.sampled_from([2, 4, 8])),
        qk_rope_head_dim=data.draw(st.sampled_from([2, 4])),
        v_head_dim=data.draw(st.sampled_from([2, 4, 8])),
    )
    layers = s["layers"]
    expert_ffn = data.draw(st.integers(1, 24))
    moe = data.draw(
        experts(layers, shared_experts=data.draw(st.integers(0, 2)), expert_ffn=expert_ffn,
                shared_ffn=expert_ffn, dense_layers=data.draw(st.integers(0, layers)))
    )
    mtp = data.draw(st.integers(0, 1)) if model_type == "deepseek_v3" else 0
    return MoE(**s, mla=mla, moe=moe, attention_bias=data.draw(st.sampled_from(["none", "all"])),
               mtp_layers=mtp, hf_model_type=model_type)


@SETTINGS
@given(shape(gqa=False), st.data())
def test_deepseek_v3(s, data):
    check(deepseek(s, data, "deepseek_v3"))


@SETTINGS
@given(shape(gqa=False), st.data())
def test_deepseek_v2(s, data):
    check(deepseek(s, data, "deepseek_v2"))


@SETTINGS
@given(shape(gqa=False), st.integers(1, 64), st.sampled_from(["gelu", "relu"]))
def test_gpt2(s, positions, mlp):
    check(Dense(**s, mlp=mlp, norm="layernorm", attention_bias="all", mlp_bias=True,
                position="learned", max_positions=positions, hf_model_type="gpt2"))


@SETTINGS
@given(shape(explicit_head_dim=True), st.sampled_from(["none", "all"]), st.data())
def test_gpt_oss(s, bias, data):
    moe = data.draw(experts(s["layers"], router_bias=True))
    check(MoE(**s, attention_bias=bias, mlp_bias=True, attention_sinks=True, moe=moe, hf_model_type="gpt_oss"))


@SETTINGS
@given(shape(gqa=False), st.sampled_from(["none", "all"]))
def test_gpt_neox(s, bias):
    check(Dense(**s, mlp="gelu", norm="layernorm", attention_bias=bias, mlp_bias=True, hf_model_type="gpt_neox"))


@SETTINGS
@given(shape(tie=False), st.data())
def test_dbrx(s, data):
    check(MoE(**s, norm="layernorm-nobias", moe=data.draw(experts(s["layers"])), hf_model_type="dbrx"))


@SETTINGS
@given(shape(gqa=False), st.integers(1, 64))
def test_mpt(s, positions):
    # transformers' MptMLP is always 4·d_model
    check(Dense(**dict(s, ffn=4 * s["hidden"]), mlp="gelu", norm="layernorm-nobias",
                position="none", max_positions=positions, hf_model_type="mpt"))


def test_every_supported_type_has_a_property_test():
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    assert set(SUPPORTED_MODEL_TYPES) <= tested
