"""Golden tests of the cost engine against independent numbers (papers, hand derivations)."""

from __future__ import annotations

import math

import attrs
import pytest
import sympy

from llmplan import symbols as S
from llmplan.estimate import definitions
from llmplan.formulas import memory as M
from llmplan.model import Dense
from llmplan.plan import Precision

from plans import make_plan


def gpt(layers: int, hidden: int, heads: int, vocab: int = 51200, seq: int = 2048) -> Dense:
    """A Megatron/GPT-3 shaped model (biases, LayerNorm, GELU MLP of 4h, learned positions, tied)."""
    return Dense(
        layers=layers,
        hidden=hidden,
        heads=heads,
        ffn=4 * hidden,
        vocab=vocab,
        mlp="gelu",
        norm="layernorm",
        attention_bias="all",
        mlp_bias=True,
        position="learned",
        max_positions=seq,
        tied_embeddings=True,
        dropout=True,
    )


# --- ZeRO (Rajbhandari et al. 2020, Figure 1): Ψ = 7.5B, K = 12, N_d = 64 ------------------


@pytest.mark.parametrize("stage, expected_gb", [(0, 120), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_figure_1(stage, expected_gb):
    plan = make_plan(zero=stage)
    q = definitions(plan)
    expr = sum(q.full(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer"))
    # bind the figure's inputs: Ψ parameters on the GPU (no experts), fp16 weights/grads, K = 12, N_d = 64 (the shard group is all of dp)
    values = {S.q_w: 2, S.q_g: 2, S.q_m: 4, S.q_o: 8, S.n_dp: 64, S.n_sh: 64, S.e: 1, S.t_e: 1}
    dense = q.full("memory.params_on_gpu.dense")
    experts = q.full("memory.params_on_gpu.experts")
    states = expr.subs({dense: 7.5e9, experts: 0}).subs(values)
    # ZeRO paper: (2 + 2 + K)Ψ, 2Ψ + 2Ψ + KΨ/N_d, 2Ψ + (2+K)Ψ/N_d, (2+2+K)Ψ/N_d
    assert float(states) / 1e9 == pytest.approx(expected_gb, abs=0.05)


def test_megatron_18_bytes_per_param_with_distributed_optimizer():
    # Megatron-LM: fp32 gradients → 6 + 12/DP bytes per parameter with the distributed optimizer
    plan = make_plan(zero=1, grads="fp32")
    q = definitions(plan)
    dense = q.full("memory.params_on_gpu.dense")
    per_param = sum(q.full(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer"))
    per_param = per_param.subs({dense: 1, q.full("memory.params_on_gpu.experts"): 0})
    vals = {S.q_w: plan.precision.bytes("weights"), S.q_g: plan.precision.bytes("grads"), S.q_m: plan.precision.bytes("master"), S.q_o: plan.precision.optimizer_bytes(), S.e: 1, S.t_e: 1}
    n = sympy.Symbol("n", positive=True)
    # the distributed optimizer shards over the whole data-parallel group: n_sh = n_dp = n
    got = sympy.simplify(per_param.subs(vals).subs({S.n_dp: n, S.n_sh: n}))
    assert sympy.simplify(got - (6 + sympy.Integer(12) / n)) == 0
    assert got.subs(n, 1) == 18


def test_article_16_bytes_per_param():
    plan = make_plan(zero=0)
    p = plan.precision
    assert p.bytes("weights") + p.bytes("grads") + p.bytes("master") + p.optimizer_bytes() == 16


def test_parallel_residual_stores_one_norm_input_fewer():
    # GPT (a·d = h, f = 4h, dropout, no flash), Korthikanti eq. (1) sbh(34 + 5as/h) in 16 bits;
    # with a parallel residual both LayerNorms read the layer input: the second norm's input,
    # 2·sbh bytes, is not a tensor of its own: sbh(32 + 5as/h)
    model = attrs.evolve(gpt(24, 2304, 24), parallel_residual=True)
    expr = M.activations_per_layer(model, tp_sp=False, flash=False, recompute="none", moe_layer=False)
    got = sympy.simplify(expr.subs({S.d: S.h / S.a, S.f: 4 * S.h, S.a_kv: S.a, S.q_a: 2, S.t: 1}))
    assert sympy.simplify(got - S.s * S.b * S.h * (32 + 5 * S.a * S.s / S.h)) == 0


def test_lion_keeps_one_moment():
    # Chen et al. 2023 (Lion, Algorithm 2): only the momentum m is kept between steps, so under
    # bf16-mixed: bf16 weights 2 + bf16 gradients 2 + fp32 master 4 + one fp32 moment 4 = 12
    # bytes per parameter, against AdamW's 16 (two moments); pure bf16: 2 + 2 + 0 + 2 = 6
    assert Precision(optimizer="lion").optimizer_bytes() == 4
    p = Precision(optimizer="lion")
    assert p.bytes("weights") + p.bytes("grads") + p.bytes("master") + p.optimizer_bytes() == 12
    pure = Precision(preset="bf16-pure", optimizer="lion")
    assert pure.bytes("weights") + pure.bytes("grads") + pure.bytes("master") + pure.optimizer_bytes() == 6


# --- Korthikanti et al. 2022, per-layer activations (GPT: a·d = h, f = 4h, dropout) --------

s, b, h, a, t = S.s, S.b, S.h, S.a, S.t


def _acts(**kw) -> sympy.Expr:
    model = gpt(24, 2304, 24)
    expr = M.activations_per_layer(model, moe_layer=False, **kw)
    return sympy.simplify(expr.subs({S.d: h / a, S.f: 4 * h, S.a_kv: a, S.q_a: 2}))


@pytest.mark.parametrize(
    "kw, expected",
    [
        (dict(tp_sp=False, flash=False, recompute="none"), s * b * h * (10 + 24 / t + 5 * a * s / (h * t))),  # eq. (2)
        (dict(tp_sp=True, flash=False, recompute="none"), s * b * h / t * (34 + 5 * a * s / h)),  # eq. (4)
        (dict(tp_sp=True, flash=False, recompute="selective"), 34 * s * b * h / t),  # eq. (6) per layer
        (dict(tp_sp=False, flash=False, recompute="full"), 2 * s * b * h),  # full recompute
    ],
)
def test_korthikanti_per_layer(kw, expected):
    assert sympy.simplify(_acts(**kw) - expected) == 0


def test_korthikanti_eq1_without_parallelism():
    got = _acts(tp_sp=False, flash=False, recompute="none").subs(t, 1)
    assert sympy.simplify(got - s * b * h * (34 + 5 * a * s / h)) == 0


def test_flash_attention_drops_the_s_squared_terms():
    got = _acts(tp_sp=True, flash=True, recompute="none")
    assert sympy.simplify(got - 34 * s * b * h / t) == 0


# --- Narayanan et al. 2021 eq. (3) and the worked examples ---------------------------------

MEGATRON_TABLE_1 = [  # (params B, heads, hidden, layers)
    (1.7, 24, 2304, 24),
    (3.6, 32, 3072, 30),
    (7.5, 32, 4096, 36),
    (18.4, 48, 6144, 40),
    (39.1, 64, 8192, 48),
    (76.1, 80, 10240, 60),
    (145.6, 96, 12288, 80),
    (310.1, 128, 16384, 96),
    (529.6, 128, 20480, 105),
    (1008.0, 160, 25600, 128),
]


@pytest.mark.parametrize("billions, heads, hidden, layers", MEGATRON_TABLE_1)
def test_narayanan_eq3_flops_per_iteration(billions, heads, hidden, layers):
    model = gpt(layers, hidden, heads)
    plan = make_plan(model=model, recompute="full", seq_len=2048, flash=False)  # 2021: no FlashAttention
    q = definitions(plan)
    per_token = q.full("flops.per_token") + q.full("flops.recompute_per_token")
    from llmplan.bindings import evaluate, model_values

    vals = model_values(model) | {S.s: 2048}
    got = evaluate(per_token, vals)
    B, sq, l, hh, V = 1, 2048, layers, hidden, 51200
    expected = 96 * B * sq * l * hh**2 * (1 + sq / (6 * hh) + V / (16 * l * hh)) / sq  # eq. (3) per token
    assert got == pytest.approx(expected, rel=1e-12)


def test_narayanan_eq2_parameter_count_differs_by_final_layernorm_only():
    from llmplan.estimate import param_counts

    l, hh, V, sq = 128, 25600, 51200, 2048
    eq2 = 12 * l * hh**2 * (1 + 13 / (12 * hh) + (V + sq) / (12 * l * hh))
    assert param_counts(gpt(l, hh, 160)).total == pytest.approx(eq2 + 2 * hh, rel=1e-12)
    assert round(eq2 / 1e9, 1) == 1008.0


@pytest.mark.parametrize(
    "layers, hidden, heads, tokens, gpus, tflops, days",
    [
        (96, 12288, 96, 300e9, 1024, 140e12, 34),  # GPT-3 175B (Narayanan et al. §5.1)
        (128, 25600, 160, 450e9, 3072, 163e12, 84),  # 1T model
    ],
)
def test_narayanan_worked_examples(layers, hidden, heads, tokens, gpus, tflops, days):
    model = gpt(layers, hidden, heads)
    plan = make_plan(model=model, recompute="full", seq_len=2048, tokens=int(tokens), gpus=gpus, tp=8, pp=8 if gpus == 1024 else 64, flash=False)
    from llmplan.estimate import estimate

    est = estimate(plan)
    got_days = est.value("flops.hardware_total") / (gpus * tflops) / 86400
    assert got_days == pytest.approx(days, rel=0.03)  # the paper rounds to whole days and uses 8TP/(nX)


def test_six_nd_is_close_to_exact_for_large_models():
    model = gpt(96, 12288, 96, vocab=50257)
    plan = make_plan(model=model, seq_len=2048, tokens=300 * 10**9, gpus=1024, tp=8, pp=8)
    from llmplan.estimate import estimate

    est = estimate(plan)
    ratio = est.value("flops.total") / est.value("flops.six_nd")
    # exact/6ND = 1 + s/(6h) + (embedding terms): about 1.03 for GPT-3
    assert 1.0 < ratio < 1.05
    assert est.value("flops.total") == pytest.approx(3.14e23, rel=0.06)  # Brown et al. 2020 Table D.1


def test_flash_attention_adds_its_backward_qk_recompute_to_hardware_flops_only():
    from llmplan.estimate import estimate

    model = gpt(24, 2304, 24)
    plain = estimate(make_plan(model=model, seq_len=2048, flash=False))
    flash = estimate(make_plan(model=model, seq_len=2048, flash=True))
    assert flash.value("flops.total") == plain.value("flops.total")
    # FlashAttention-2 backward recomputes S = QKᵀ: 2·s·a·d = 2·2048·2304 FLOPs per token per layer (a·d = h)
    extra = 24 * 2 * 2048 * 2304 * plain.value("time.steps") * plain.values[S.B] * 2048
    assert flash.value("flops.hardware_total") - plain.value("flops.hardware_total") == pytest.approx(extra, rel=1e-12)


def test_pipeline_bubble_is_p_minus_1_over_v_m():
    plan = make_plan(pp=4, schedule="interleaved", virtual=2, gpus=64, global_batch=64, tp=1)
    from llmplan.estimate import estimate

    est = estimate(plan)
    p, v, m = 4, 2, est.values[S.m]
    assert m == 64 // (64 // 4)
    assert est.value("time.bubble_seconds") == pytest.approx(est.value("time.compute_seconds") * (p - 1) / (v * m))


def test_ring_allreduce_volume():
    from llmplan.formulas.comm import ring_allreduce_bytes

    assert ring_allreduce_bytes(8, 1000) == 1750  # 2·7/8 of the buffer
    assert math.isclose(float(ring_allreduce_bytes(2, 1)), 1.0)


def test_attribute_access_value_expr_breakdown_explain():
    from llmplan.estimate import estimate

    est = estimate(make_plan(zero=1, recompute="selective"))
    acts = est.memory.activations
    assert acts.value == est.value("memory.per_gpu.activations")
    assert acts.expr.free_symbols
    assert "Korthikanti" in acts.explain()
    total = est.memory.per_gpu.total
    assert sum(total.breakdown.values()) == pytest.approx(total.value)
    assert set(total.breakdown) == {f"memory.per_gpu.{k}" for k in ("weights", "gradients", "optimizer", "activations", "other")}
    assert est.time.days.value == pytest.approx(est.value("time.total_seconds") / 86400)
    assert "\\" in acts.latex() or acts.latex()


def test_goodput_stretches_wall_clock_but_not_mfu():
    import attrs

    from llmplan.estimate import estimate

    plan = make_plan(zero=1)
    lossy = attrs.evolve(plan, efficiency=attrs.evolve(plan.efficiency, goodput=0.8))
    a, b = estimate(plan), estimate(lossy)
    assert b.value("time.total_seconds") == pytest.approx(a.value("time.total_seconds") / 0.8)
    assert b.value("cost.total") == pytest.approx(a.value("cost.total") / 0.8)
    assert b.value("time.mfu") == pytest.approx(a.value("time.mfu"))
