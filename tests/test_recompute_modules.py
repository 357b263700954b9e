"""``[parallelism] recompute_modules`` and ``[precision] linear_inputs`` / ``activation_func_inputs``.

Every expected number below is derived by hand in the comments, per token (``s = b = 1``),
without tensor parallelism, with FlashAttention and without dropout, from the terms of
:func:`llmplan.formulas.memory.activations_per_layer`'s docstring.
"""

from __future__ import annotations

import attrs
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan import PlanError, catalog
from llmplan import symbols as S
from llmplan.bindings import model_values
from llmplan.estimate import estimate
from llmplan.formulas.flops import selective_recompute_per_token
from llmplan.formulas.memory import activations_per_layer
from llmplan.model import MLA, Dense, Experts, MoE
from llmplan.plan import DEFAULT_RECOMPUTE_MODULES, RECOMPUTE_MODULES, Parallelism, Precision
from plans import make_plan

# A small DeepSeek-shaped model: h = 64, a = 4 heads; MLA with r_q = 32, r_kv = 16,
# d_nope = 8, d_rope = 4, d_v = 8; one dense layer (f = 96, SwiGLU) then 3 MoE layers of
# E = 8 routed experts, k = 2, f_e = 24, one shared expert of f_s = 24.
TINY_MLA = MoE(
    name="tiny-mla-moe",
    layers=4,
    hidden=64,
    heads=4,
    ffn=96,
    vocab=1000,
    mla=MLA(q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8),
    moe=Experts(experts=8, top_k=2, shared_experts=1, expert_ffn=24, dense_layers=1),
)


def per_token(model, *, moe_layer, recompute="selective", modules=None, fp8=False, q_a=2, t=1):
    """Bytes one layer stores per token (s = b = 1), numbers substituted."""
    expr = activations_per_layer(
        model, tp_sp=True, flash=True, recompute=recompute, moe_layer=moe_layer, modules=modules,
        linear_inputs=fp8, act_inputs=fp8,
    )
    vals = {**model_values(model), S.s: 1, S.b: 1, S.t: t, S.t_e: 1, S.q_a: q_a, S.q_lin: 1, S.q_act: 1}
    return expr.subs(vals)


# --- hand derivations: the small MLA / MoE model, q_a = 2 ---------------------------------------

# every layer: the two norms' inputs 2·2·64 = 256
# MLA attention: input 2·64 = 128; latents as norm inputs 2·(16 + 32) = 96 and as up-projection
# inputs 96; Q 2·4·(8 + 4) = 96, K 96, V 2·4·8 = 64; output-projection input 2·4·8 = 64  → 640
# dense MLP: input 2·64 = 128; gate, up, product 3·2·96 = 576                             → 704
# MoE MLP: input 128; 2 dispatched copies 2·2·64 = 256; fp32 router logits 4·8 = 32;
# routed inner 2·3·2·24 = 288; shared inner 3·2·24 = 144                                  → 848
DENSE_LAYER = 256 + 640 + 704  # 1600
MOE_LAYER = 256 + 640 + 848  # 1744

# what each module stops storing (per token)
LAYERNORM = 128 + 96 + 128  # attention input, the latents' normalised copies, MLP input
MLA_UP_PROJ = 96 + 96 + 64 - 2 * 4  # Q, K, V; the RoPE key's input (2·d_rope) is stored instead
MOE_ACT = 2 * 2 * 24  # each routed copy's SwiGLU product (the down-projection's input)
MLP = 3 * 2 * 96  # the dense MLP's inner tensors
SHARED_EXPERTS = 3 * 2 * 24  # the shared expert's inner tensors


def test_hand_derived_layers_without_recomputation():
    assert per_token(TINY_MLA, moe_layer=False, recompute="none") == DENSE_LAYER
    assert per_token(TINY_MLA, moe_layer=True, recompute="none") == MOE_LAYER
    # the default selective recomputation (attention core) stores the same with FlashAttention
    assert per_token(TINY_MLA, moe_layer=True) == MOE_LAYER


@pytest.mark.parametrize(
    "module, dense_saving, moe_saving",
    [
        ("core_attn", 0, 0),  # FlashAttention stores no s² scores anyway
        ("layernorm", LAYERNORM, LAYERNORM),
        ("mla_up_proj", MLA_UP_PROJ, MLA_UP_PROJ),
        ("moe_act", 0, MOE_ACT),
        ("mlp", MLP, 0),
        ("shared_experts", 0, SHARED_EXPERTS),
    ],
)
def test_each_module_removes_its_hand_derived_bytes(module, dense_saving, moe_saving):
    assert per_token(TINY_MLA, moe_layer=False, modules=(module,)) == DENSE_LAYER - dense_saving
    assert per_token(TINY_MLA, moe_layer=True, modules=(module,)) == MOE_LAYER - moe_saving


def test_modules_add_up():
    every = RECOMPUTE_MODULES
    assert per_token(TINY_MLA, moe_layer=False, modules=every) == DENSE_LAYER - LAYERNORM - MLA_UP_PROJ - MLP
    assert per_token(TINY_MLA, moe_layer=True, modules=every) == (
        MOE_LAYER - LAYERNORM - MLA_UP_PROJ - MOE_ACT - SHARED_EXPERTS
    )


def test_fp8_cached_inputs_hand_derived():
    # q_lin = q_act = 1: attention input 64, latents' up-projection inputs 48 (norm inputs stay 96),
    # Q/K/V 256 and the output-projection input 64 stay at q_a                               → 528
    # dense MLP: input 64, gate and up 2·96 = 192, product 96                                → 352
    # MoE MLP: input 128 (the router's, BF16), dispatched copies 2·64 = 128, logits 32,
    # routed 2·(2·24 + 24) = 144, shared 2·24 + 24 = 72                                      → 504
    assert per_token(TINY_MLA, moe_layer=False, recompute="none", fp8=True) == 256 + 528 + 352
    assert per_token(TINY_MLA, moe_layer=True, recompute="none", fp8=True) == 256 + 528 + 504


def test_deepseek_recipe_on_the_small_model():
    report = ("core_attn", "layernorm", "mla_up_proj", "moe_act")
    # MLA: latents as norm inputs 96, RoPE key input 8, output-projection input 64           → 168
    # MoE MLP: dispatched copies 128, logits 32, routed SwiGLU inputs 2·2·24 = 96, shared 72  → 328
    assert per_token(TINY_MLA, moe_layer=True, modules=report, fp8=True) == 256 + 168 + 328
    # dense MLP: gate and up 192, product 96                                                 → 288
    assert per_token(TINY_MLA, moe_layer=False, modules=report, fp8=True) == 256 + 168 + 288


def test_deepseek_v3_layer_with_the_reports_savings():
    """DeepSeek-V3 (h = 7168, a = 128, r_q = 1536, r_kv = 512, d_nope = 128, d_rope = 64,
    d_v = 128, E = 256, k = 8, f_e = f_s = 2048, dense f = 18432), per token, q_a = 2, FP8 caches."""
    ds = catalog.model("deepseek-v3")
    report = ("core_attn", "layernorm", "mla_up_proj", "moe_act")
    norms = 2 * 2 * 7168  # 28,672
    attn = 2 * (512 + 1536) + 2 * 64 + 2 * 128 * 128  # latents 4,096 + RoPE key 128 + attention output 32,768
    moe = 8 * 7168 + 4 * 256 + 8 * 2 * 2048 + (2 * 2048 + 2048)  # 57,344 + 1,024 + 32,768 + 6,144
    assert per_token(ds, moe_layer=True, modules=report, fp8=True) == norms + attn + moe == 162944
    dense = 2 * 18432 + 18432  # SwiGLU inputs and the product, FP8
    assert per_token(ds, moe_layer=False, modules=report, fp8=True) == norms + attn + dense == 120960
    # without any of it (Korthikanti's count, selective = attention core): 455,680 B per token
    assert per_token(ds, moe_layer=True) == 455680


def test_sequence_parallelism_divides_the_norm_outputs():
    # t = 2 with SP: every saving above halves (replicated tensors ÷ t with SP, the rest ÷ t)
    full = per_token(TINY_MLA, moe_layer=False, t=2)
    assert full - per_token(TINY_MLA, moe_layer=False, modules=("layernorm",), t=2) == sympy.Rational(LAYERNORM, 2)
    assert full - per_token(TINY_MLA, moe_layer=False, modules=("mla_up_proj",), t=2) == sympy.Rational(MLA_UP_PROJ, 2)


def test_without_flash_core_attn_drops_the_scores():
    model = Dense(layers=2, hidden=64, heads=4, ffn=128, vocab=1000)
    kw = dict(tp_sp=False, flash=False, moe_layer=False)
    vals = {**model_values(model), S.s: 16, S.b: 1, S.t: 1, S.q_a: 2}
    kept = activations_per_layer(model, recompute="selective", modules=(), **kw).subs(vals)
    dropped = activations_per_layer(model, recompute="selective", modules=("core_attn",), **kw).subs(vals)
    assert kept - dropped == 2 * 4 * 16**2 * 1  # the softmax output q_a·a·s²·b, s = 16


# --- FLOPs: what the recomputation charges ------------------------------------------------------


def test_recomputed_flops_hand_derived():
    vals = {**model_values(TINY_MLA), S.s: 1}
    f = lambda mods: selective_recompute_per_token(TINY_MLA, mods).subs(vals)  # noqa: E731
    # q up-projection 2·32·4·(8 + 4) = 3072 and kv up-projection 2·16·4·(8 + 8) = 2048, on 4 layers
    assert f(("mla_up_proj",)) == 4 * (3072 + 2048)
    assert f(("mlp",)) == 1 * 2 * 3 * 64 * 96  # the one dense layer
    assert f(("shared_experts",)) == 3 * 2 * 3 * 64 * 24  # the 3 MoE layers' shared expert
    assert f(("layernorm", "moe_act")) == 0  # elementwise: no GEMM FLOPs
    assert f(("core_attn",)) == 4 * 2 * 1 * 4 * (12 + 8)  # 2·s·a·(d_qk + d_v), s = 1


def tiny_plan(**par):
    model = attrs.evolve(TINY_MLA, heads=4)
    base = make_plan(model=model, gpus=8, recompute="selective")
    return attrs.evolve(base, parallelism=attrs.evolve(base.parallelism, **par))


def test_recomputation_is_charged_in_flops_and_time():
    base = estimate(tiny_plan())
    up = estimate(tiny_plan(recompute_modules=("core_attn", "mla_up_proj")))
    assert up.value("flops.recompute_per_token") - base.value("flops.recompute_per_token") == 4 * (3072 + 2048)
    assert up.value("flops.hardware_total") > base.value("flops.hardware_total")
    assert up.value("flops.total") == base.value("flops.total")  # model FLOPs unchanged
    # the recomputed Q, K, V are written and read again by the elementwise kernels
    assert up.value("memory.activations_recomputed_per_layer") > base.value("memory.activations_recomputed_per_layer")
    assert up.value("time.elementwise_seconds") > base.value("time.elementwise_seconds")
    assert up.value("time.step_seconds") > base.value("time.step_seconds")


def test_default_modules_are_the_attention_core_and_empty_is_no_recomputation():
    default = estimate(tiny_plan())
    explicit = estimate(tiny_plan(recompute_modules=DEFAULT_RECOMPUTE_MODULES))
    assert DEFAULT_RECOMPUTE_MODULES == ("core_attn",)
    for key in ("memory.per_gpu.total", "flops.recompute_per_token", "time.step_seconds"):
        assert explicit.value(key) == default.value(key)
    nothing = estimate(tiny_plan(recompute_modules=()))
    none = estimate(tiny_plan(recompute="none"))
    for key in ("memory.per_gpu.activations", "flops.recompute_per_token", "time.step_seconds"):
        assert nothing.value(key) == pytest.approx(none.value(key), rel=1e-12)


def test_fp8_caching_changes_memory_not_time():
    plain = estimate(tiny_plan())
    fp8 = attrs.evolve(tiny_plan(), precision=Precision(linear_inputs="fp8", activation_func_inputs="fp8"))
    cached = estimate(fp8)
    assert cached.value("memory.per_gpu.activations") < plain.value("memory.per_gpu.activations")
    assert cached.value("time.step_seconds") == pytest.approx(plain.value("time.step_seconds"), rel=1e-12)
    assert cached.value("memory.activations_per_layer_no_recompute") == plain.value("memory.activations_per_layer_no_recompute")


# --- property: recomputing more never stores more, never computes less ---------------------------

MODELS = [
    TINY_MLA,
    attrs.evolve(TINY_MLA, mla=MLA(kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8)),  # no q latent
    Dense(layers=3, hidden=64, heads=4, kv_heads=2, ffn=160, vocab=1000, mlp="gelu"),
    Dense(layers=3, hidden=64, heads=4, ffn=160, vocab=1000, dropout=True),
]


@settings(max_examples=40)
@given(
    model=st.sampled_from(MODELS),
    chosen=st.sets(st.sampled_from(RECOMPUTE_MODULES)),
    added=st.sampled_from(RECOMPUTE_MODULES),
    flash=st.booleans(),
    fp8=st.booleans(),
    tp=st.sampled_from([1, 2]),
)
def test_adding_a_module_never_stores_more_nor_computes_less(model, chosen, added, flash, fp8, tp):
    before, after = tuple(sorted(chosen)), tuple(sorted(chosen | {added}))
    vals = {**model_values(model), S.s: 128, S.b: 2, S.t: tp, S.t_e: 1, S.q_a: 2, S.q_lin: 1, S.q_act: 1}
    for moe_layer in (False, True) if model.is_moe else (False,):
        kw = dict(tp_sp=tp > 1, flash=flash, recompute="selective", moe_layer=moe_layer, linear_inputs=fp8, act_inputs=fp8)
        stored = [activations_per_layer(model, modules=m, **kw).subs(vals) for m in (before, after)]
        assert stored[1] <= stored[0]
        assert stored[1] > 0
    flops = [selective_recompute_per_token(model, m, mtp=False).subs(vals) for m in (before, after)]
    assert flops[1] >= flops[0]


@settings(max_examples=6)
@given(chosen=st.sets(st.sampled_from(RECOMPUTE_MODULES)), added=st.sampled_from(RECOMPUTE_MODULES))
def test_adding_a_module_on_a_whole_plan(chosen, added):
    before = estimate(tiny_plan(recompute_modules=tuple(sorted(chosen))))
    after = estimate(tiny_plan(recompute_modules=tuple(sorted(chosen | {added}))))
    # the stored micro-batches shrink by more than the one layer being recomputed grows
    assert after.value("memory.per_gpu.activations") <= before.value("memory.per_gpu.activations")
    assert after.value("flops.hardware_total") >= before.value("flops.hardware_total")
    assert after.value("time.elementwise_seconds") >= before.value("time.elementwise_seconds")


# --- validation ----------------------------------------------------------------------------------

BASE = """
[model]
preset = "deepseek-v3"
[method]
tokens = "1T"
seq_len = 4096
global_batch = 1024
[precision]
preset = "fp8-mixed"
{precision}
[cluster]
gpu = "h800-sxm"
gpus = 256
[parallelism]
pp = 4
ep = 64
zero = 1
recompute = "selective"
{parallelism}
"""


def plan_text(parallelism: str = "", precision: str = "") -> str:
    return BASE.format(parallelism=parallelism, precision=precision)


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        llmplan.loads(text)
    return [str(p) for p in info.value.problems]


def test_unknown_module_names_the_key_the_value_the_allowed_and_the_closest():
    (msg,) = problems(plan_text('recompute_modules = ["core_attn", "layernrom"]'))
    assert msg.startswith("parallelism.recompute_modules: 'layernrom' is not allowed (did you mean 'layernorm'?)")
    assert "(allowed: core_attn, layernorm, mla_up_proj, moe_act, mlp, shared_experts)" in msg


def test_every_bad_module_is_reported_at_once():
    msgs = problems(plan_text('recompute_modules = ["mla_upproj", "moe", "mlp", "mlp"]'))
    assert len(msgs) == 3
    assert "'mla_upproj' is not allowed (did you mean 'mla_up_proj'?)" in msgs[0]
    assert "'moe'" in msgs[1] and "not modelled" in msgs[1]
    assert msgs[2] == "parallelism.recompute_modules: 'mlp' given more than once"


def test_recompute_modules_must_be_a_list():
    (msg,) = problems(plan_text('recompute_modules = "layernorm"'))
    assert msg.startswith("parallelism.recompute_modules: 'layernorm' is not a list of module names")
    with pytest.raises(PlanError, match="recompute_modules: .* is not a list of module names"):
        Parallelism(recompute="selective", recompute_modules=("layernorm", 3))


def test_cached_input_dtypes_are_checked():
    (msg,) = problems(plan_text(precision='linear_inputs = "fp9"'))
    assert msg.startswith("precision.linear_inputs: 'fp9' is not allowed (did you mean 'fp8'?")
    (msg,) = problems(plan_text(precision='activation_func_inputs = "bf61"'))
    assert msg.startswith("precision.activation_func_inputs: 'bf61' is not allowed (did you mean 'bf16'?")


def test_cached_input_dtypes_default_to_the_activations():
    p = Precision(preset="fp8-mixed")
    # FP8 compute: the Linear inputs are saved quantised (Transformer Engine's Linear keeps
    # its FP8 transposed input); the activation function's inputs stay at the activations'
    assert p.bytes("linear_inputs") == 1
    assert p.bytes("activation_func_inputs") == p.bytes("activations") == 2
    assert Precision().bytes("linear_inputs") == Precision().bytes("activations") == 2
    assert Precision(activations="fp32").bytes("linear_inputs") == 4
    assert Precision(linear_inputs="fp8").bytes("linear_inputs") == 1


def test_warnings_for_modules_that_change_nothing():
    full = estimate(make_plan(recompute="full"))
    assert not any("recompute_modules" in w for w in full.warnings)
    plan = make_plan(recompute="full")
    plan = attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, recompute_modules=("layernorm",)))
    assert any('ignored with recompute = "full"' in w for w in estimate(plan).warnings)
    dense = make_plan(recompute="selective")
    dense = attrs.evolve(dense, parallelism=attrs.evolve(dense.parallelism, recompute_modules=("mla_up_proj", "moe_act")))
    warned = [w for w in estimate(dense).warnings if "recompute_modules" in w]
    assert len(warned) == 2 and "no multi-head latent attention" in warned[0] and "no MoE layers" in warned[1]


# --- TOML round trip ------------------------------------------------------------------------------


def test_toml_round_trip_of_the_new_keys():
    text = plan_text(
        'recompute_modules = ["core_attn", "layernorm", "mla_up_proj", "moe_act"]',
        'linear_inputs = "fp8"\nactivation_func_inputs = "fp8"',
    )
    plan = llmplan.loads(text)
    assert plan.parallelism.recompute_modules == ("core_attn", "layernorm", "mla_up_proj", "moe_act")
    assert plan.precision.linear_inputs == plan.precision.activation_func_inputs == "fp8"
    dumped = llmplan.dump(plan)
    assert 'linear_inputs = "fp8"' in dumped and "recompute_modules" in dumped
    assert llmplan.loads(dumped) == plan
    # an empty list (selective, nothing recomputed) survives too; an absent key stays absent
    empty = attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, recompute_modules=()))
    assert llmplan.loads(llmplan.dump(empty)) == empty
    plain = llmplan.loads(plan_text())
    assert "recompute_modules" not in llmplan.dump(plain) and plain.parallelism.recompute_modules is None


def test_python_lists_are_the_same_plan_as_toml():
    assert Parallelism(recompute="selective", recompute_modules=["layernorm"]) == Parallelism(
        recompute="selective", recompute_modules=("layernorm",)
    )


def test_phase_may_override_recompute_modules():
    text = plan_text() + '\n[[phase]]\nname = "long"\ntokens = "1G"\nparallelism = { recompute_modules = ["layernorm"] }\n'
    plan = llmplan.loads(text)
    assert plan.phases[0].parallelism == {"recompute_modules": ("layernorm",)}
    assert llmplan.loads(llmplan.dump(plan)) == plan


def test_deepseek_v3_validation_run_uses_the_reports_recipe():
    from llmplan.validation import runs

    (run,) = [r for r in runs() if r.id == "deepseek-v3"]
    par, prec = run.plan.parallelism, run.plan.precision
    assert par.recompute == "selective"
    assert set(par.recompute_modules) == {"core_attn", "layernorm", "mla_up_proj", "moe_act"}
    assert (prec.linear_inputs, prec.activation_func_inputs) == ("fp8", "fp8")
    # report sec. 3.3.3: BF16 AdamW moments, FP32 master weights and gradients
    assert (prec.bytes("optimizer_states"), prec.bytes("master"), prec.bytes("grads")) == (2, 4, 4)
