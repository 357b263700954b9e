"""Published configs: llmplan's parameter formulas against the real transformers classes.

Each ``configs/<id>.json`` is a published ``config.json`` (sources in
``SOURCES.md``). The class is built on the meta device (no memory, no
weights, full size — DeepSeek-V3 and Qwen3-235B included, well under a second
each) and its parameters are counted per component by name. llmplan must
agree exactly, component by component.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import oracle_util as O  # noqa: E402

from llmplan.bindings import evaluate, model_values  # noqa: E402
from llmplan.formulas import params as P  # noqa: E402
from llmplan.hf import from_hf_config  # noqa: E402

pytestmark = pytest.mark.oracle

FIXTURES = sorted(p.stem for p in O.CONFIGS.glob("*.json"))


def ours(name: str) -> dict[str, int]:
    model, _ = from_hf_config(O.CONFIGS / f"{name}.json")
    values = model_values(model)
    out = {k: evaluate(e, values) for k, e in P.components(model).items()}
    out["total"] = evaluate(P.total(model), values)
    out["active"] = evaluate(P.active(model), values)
    return out


@pytest.mark.parametrize("name", FIXTURES)
def test_components_total_and_active_match_the_class(name):
    assert ours(name) == O.fixture_counts(name)


# Totals derived by hand from the published dimensions. The formula each line
# spells out is the structure of the transformers class (per layer: attention,
# MLP or experts + router, two norms; then embedding, LM head, final norm).
BY_HAND = {
    # 32·(4·4096² + 3·4096·11008 + 2·4096) + 2·32000·4096 + 4096
    "llama-2-7b": 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 32000 * 4096 + 4096,
    "llama-2-13b": 40 * (4 * 5120**2 + 3 * 5120 * 13824 + 2 * 5120) + 2 * 32000 * 5120 + 5120,
    # GQA: q, o = h²; k, v = h·8·128
    "llama-2-70b": 80 * (2 * 8192**2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192) + 2 * 32000 * 8192 + 8192,
    "llama-3.1-8b": 32 * (2 * 4096**2 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096) + 2 * 128256 * 4096 + 4096,
    "llama-3.1-70b": 80 * (2 * 8192**2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192) + 2 * 128256 * 8192 + 8192,
    "llama-3.1-405b": 126 * (2 * 16384**2 + 2 * 16384 * 1024 + 3 * 16384 * 53248 + 2 * 16384)
    + 2 * 128256 * 16384 + 16384,
    # attention + 8 experts (3·h·f each) + router h·8 + 2 norms
    "mixtral-8x7b": 32 * (2 * 4096**2 + 2 * 4096 * 1024 + 8 * 3 * 4096 * 14336 + 4096 * 8 + 2 * 4096)
    + 2 * 32000 * 4096 + 4096,
    "mixtral-8x22b": 56 * (2 * 6144**2 + 2 * 6144 * 1024 + 8 * 3 * 6144 * 16384 + 6144 * 8 + 2 * 6144)
    + 2 * 32000 * 6144 + 6144,
    # Wqkv h·(h + 2·8·128), out_proj h², 16 experts w1/v1/w2, router h·16, two bias-free LayerNorms
    "dbrx": 40 * (6144 * (6144 + 2 * 8 * 128) + 6144**2 + 16 * 3 * 6144 * 10752 + 6144 * 16 + 2 * 6144)
    + 2 * 100352 * 6144 + 6144,
    # MLA 187,107,328 per layer; 3 dense MLPs; 58 MoE layers of 256 routed + 1 shared expert + router
    "deepseek-v3": 61 * 187_107_328 + 3 * 3 * 7168 * 18432
    + 58 * (257 * 3 * 7168 * 2048 + 256 * 7168) + 61 * 2 * 7168 + 2 * 129280 * 7168 + 7168,
    # q/k norms over one head (2·128)
    "qwen3-8b": 36 * (2 * 4096**2 + 2 * 4096 * 1024 + 2 * 128 + 3 * 4096 * 12288 + 2 * 4096)
    + 2 * 151936 * 4096 + 4096,
    "qwen3-30b-a3b": 48 * (2 * 2048 * 4096 + 2 * 2048 * 512 + 2 * 128 + 128 * 3 * 2048 * 768 + 2048 * 128 + 2 * 2048)
    + 2 * 151936 * 2048 + 2048,
    "qwen3-235b-a22b": 94 * (2 * 4096 * 8192 + 2 * 4096 * 512 + 2 * 128 + 128 * 3 * 4096 * 1536 + 4096 * 128 + 2 * 4096)
    + 2 * 151936 * 4096 + 4096,
    # q/k/v biases (3584 + 2·512)
    "qwen2-7b": 28 * (2 * 3584**2 + 2 * 3584 * 512 + 3584 + 2 * 512 + 3 * 3584 * 18944 + 2 * 3584)
    + 2 * 152064 * 3584 + 3584,
    # q/k RMSNorm over the whole projection (4096 + 4096)
    "olmo-2-1124-7b": 32 * (4 * 4096**2 + 2 * 4096 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 100352 * 4096 + 4096,
    # GPT-2 block 12h² + 13h; token + position tables; tied head; final LayerNorm 2h
    "gpt2": 12 * (12 * 768**2 + 13 * 768) + (50257 + 1024) * 768 + 2 * 768,
    # NeoX block: 4h² + 4h attention, 8h² + 5h MLP (ffn 4h), two LayerNorms 4h; untied head
    "gpt-neox-20b": 44 * (12 * 6144**2 + 13 * 6144) + 2 * 50432 * 6144 + 2 * 6144,
    "pythia-6.9b": 32 * (12 * 4096**2 + 13 * 4096) + 2 * 50432 * 4096 + 2 * 4096,
    # MPT block: Wqkv 3h² + out_proj h² + up/down 8h², two bias-free LayerNorms 2h; tied head; final norm h
    "mpt-7b-instruct": 32 * (12 * 4096**2 + 2 * 4096) + 50432 * 4096 + 4096,
    # DeepSeek-V2-Lite: MLA without a query latent (q_proj h·a·192, kv_a h·(512 + 64), its norm 512,
    # kv_b 512·a·(128 + 128), o a·128·h); one dense MLP; 26 MoE layers of 64 routed experts, two shared
    # (one MLP of 2·1408) and the router; no MTP module
    "deepseek-v2-lite": 27 * (2048 * 16 * 192 + 2048 * 576 + 512 + 512 * 16 * 256 + 16 * 128 * 2048 + 2 * 2048)
    + 3 * 2048 * 10944 + 26 * (64 * 3 * 2048 * 1408 + 3 * 2048 * 2 * 1408 + 2048 * 64) + 2 * 102400 * 2048 + 2048,
    # gpt-oss-20b: attention with biases and one sink per head; 32 experts with gate_up (2f) and down (h)
    # biases; a router with bias; two norms; untied head
    "gpt-oss-20b": 24 * (2880 * 64 * 64 + 2 * 2880 * 8 * 64 + 64 * 64 * 2880 + 64 * 64 + 2 * 8 * 64 + 2880 + 64
                         + 32 * (3 * 2880 * 2880 + 2 * 2880 + 2880) + 2880 * 32 + 32 + 2 * 2880) + 2 * 201088 * 2880 + 2880,
    # Gemma 3: q 1152·4·256, k and v 1152·256, o 4·256·1152, q/k norms 2·256, GeGLU 3·1152·6912,
    # four norms 4·1152; tied head; final norm
    "gemma-3-1b": 26 * (2 * 1152 * 1024 + 2 * 1152 * 256 + 2 * 256 + 3 * 1152 * 6912 + 4 * 1152) + 262144 * 1152 + 1152,
    # Phi-3: fused qkv_proj h·3h and gate_up_proj h·2f hold Llama's parameters; no biases
    "phi-3-mini-4k": 32 * (4 * 3072**2 + 3 * 3072 * 8192 + 2 * 3072) + 2 * 32064 * 3072 + 3072,
    # Qwen2-MoE layer: q/k/v biases, routed experts 3·h·f_e each, one shared expert 3·h·f_s,
    # router h·E and the shared expert's sigmoid gate h·1
    "qwen1.5-moe-a2.7b": 24 * (4 * 2048**2 + 3 * 2048 + 60 * 3 * 2048 * 1408 + 3 * 2048 * 5632 + 2048 * 60 + 2048
                               + 2 * 2048) + 2 * 151936 * 2048 + 2048,
    "qwen2-57b-a14b": 28 * (2 * 3584**2 + 2 * 3584 * 512 + 3584 + 2 * 512 + 64 * 3 * 3584 * 2560 + 3 * 3584 * 20480
                            + 3584 * 64 + 3584 + 2 * 3584) + 2 * 151936 * 3584 + 3584,
}

# Figures as published (model cards, papers); where rounded, the rounding is checked.
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "mixtral-8x7b": 46_702_792_704,  # Mistral: "46.7B total, 12.9B active"
    "gpt2": 124_439_808,  # "124M"
    "deepseek-v3": 671_026_404_352,  # "671B"
    # ggml's MPT-7B conversion log lists every tensor of the published checkpoint (wte 50432×4096,
    # per block norm_1, Wqkv 12288×4096, out_proj, norm_2, up 16384×4096, down; norm_f; no wpe)
    "mpt-7b-instruct": 6_649_286_656,
}


def test_by_hand_covers_every_fixture():
    assert set(BY_HAND) == set(FIXTURES)


@pytest.mark.parametrize("name", FIXTURES)
def test_by_hand_total(name):
    assert O.fixture_counts(name)["total"] == BY_HAND[name] == ours(name)["total"]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_total(name):
    assert O.fixture_counts(name)["total"] == PUBLISHED[name]


def test_rounded_published_sizes():
    c = {name: O.fixture_counts(name) for name in FIXTURES}
    billions = {name: round(v["total"] / 1e9, 1) for name, v in c.items()}
    assert billions["llama-3.1-405b"] == 405.9
    assert billions["qwen3-235b-a22b"] == 235.1
    assert round(c["qwen3-235b-a22b"]["active"] / 1e9, 1) == 22.2  # "A22B"
    assert round(c["qwen3-30b-a3b"]["active"] / 1e9, 1) == 3.4  # "A3B" (3.3B non-embedding)
    assert round(c["mixtral-8x7b"]["active"] / 1e9, 1) == 12.9
    assert round(c["mixtral-8x22b"]["total"] / 1e9) == 141 and round(c["mixtral-8x22b"]["active"] / 1e9) == 39
    assert round(c["dbrx"]["total"] / 1e9) == 132 and round(c["dbrx"]["active"] / 1e9) == 36
    assert round(c["gpt-neox-20b"]["total"] / 1e9, 1) == 20.6
    # Gemma 3 Technical Report (arXiv 2503.19786), Table 1: 1B = 302M embedding + 698M non-embedding
    assert round(c["gemma-3-1b"]["embedding"] / 1e6) == 302
    assert round((c["gemma-3-1b"]["total"] - c["gemma-3-1b"]["embedding"]) / 1e6) == 698
    assert round(c["phi-3-mini-4k"]["total"] / 1e9, 1) == 3.8
    # openai/gpt-oss-20b model card: "21B parameters with 3.6B active" (active without the input embedding)
    assert round(c["gpt-oss-20b"]["total"] / 1e9) == 21
    assert round((c["gpt-oss-20b"]["active"] - c["gpt-oss-20b"]["embedding"]) / 1e9, 1) == 3.6
    assert round(c["deepseek-v2-lite"]["total"] / 1e9, 1) == 15.7  # DeepSeek-V2 report, appendix: "15.7B"  # Abdin et al. 2024: "3.8 billion parameter"
    # Qwen blog (Qwen1.5-MoE, 2024): "14.3B parameters in total and 2.7B activated"
    assert round(c["qwen1.5-moe-a2.7b"]["total"] / 1e9, 1) == 14.3
    assert round(c["qwen1.5-moe-a2.7b"]["active"] / 1e9, 1) == 2.7
    # Qwen2 technical report (Yang et al. 2024), Table 1: 57B total, 14B activated
    assert round(c["qwen2-57b-a14b"]["total"] / 1e9) == 57 and round(c["qwen2-57b-a14b"]["active"] / 1e9) == 14


def test_deepseek_v3_mtp_module():
    """``params.mtp`` against transformers' ``MtpModel`` and the published checkpoint layout.

    transformers' ``DeepseekV3ForCausalLM`` does not build the MTP module
    (``model.layers.61`` is ignored on load), so ``params.total`` equals the
    class count and MTP is reported separately. ``MtpModel`` (used for MTP
    speculative decoding) builds it: enorm + hnorm (2h), eh_proj (2h·h), one
    MoE block, a post-norm h; embedding and head are borrowed.
    """
    h, V = 7168, 129280
    model, _ = from_hf_config(O.CONFIGS / "deepseek-v3.json")
    mtp = evaluate(P.mtp(model), model_values(model))
    moe_block = 187_107_328 + 257 * 3 * h * 2048 + 256 * h + 2 * h
    assert mtp == 2 * h + 2 * h * h + moe_block + h == 11_610_067_968
    hf = O.build(O.fixture("deepseek-v3"))
    assert O.mtp_params(hf, 1) == mtp
    # DeepSeek: "671B main model + 14B MTP = 685B". The checkpoint stores the MTP
    # module's embed_tokens and shared_head.head again (2·V·h = 1.85B), so the MTP
    # share of the file is 13.46B and the weights in the file number 684.49B. The
    # model card's 685B is the safetensors element count, which also includes the
    # FP32 weight_scale_inv tensors (one per 128×128 block of every FP8 matrix,
    # ≈ 0.04B) and the e_score_correction_bias vectors: ≈ 684.53B. The unique MTP
    # parameters are 11.61B (DeepSeek's README_WEIGHTS says "11.5B": one MoE block).
    total = O.fixture_counts("deepseek-v3")["total"]
    assert total + mtp + 2 * V * h == 684_489_830_400
    assert abs(total + mtp + 2 * V * h - 685e9) < 0.6e9


def test_deepseek_v3_router_bias_is_a_buffer_not_a_parameter():
    hf = O.build(O.fixture("deepseek-v3"))
    buffers = {name for name, _ in hf.named_buffers() if name.endswith("e_score_correction_bias")}
    assert len(buffers) == 58  # one per MoE layer, 256 floats each; in the checkpoint, not in parameters()
    assert not any(name.endswith("e_score_correction_bias") for name, _ in hf.named_parameters())
