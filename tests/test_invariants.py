"""Property tests: invariants every estimate must satisfy, over generated plans."""

from __future__ import annotations

import math

import attrs
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llmplan import symbols as S
from llmplan.estimate import estimate
from llmplan.model import Dense, Experts, MoE
from plans import make_plan

HEADS = st.sampled_from([8, 16, 32])


@st.composite
def dense_models(draw):
    heads = draw(HEADS)
    head_dim = draw(st.sampled_from([64, 128]))
    kv = draw(st.sampled_from([h for h in (1, 2, 4, 8, heads) if heads % h == 0]))
    return Dense(
        layers=draw(st.integers(4, 48)),
        hidden=heads * head_dim,
        heads=heads,
        kv_heads=kv,
        ffn=draw(st.integers(2, 6)) * heads * head_dim,
        vocab=draw(st.sampled_from([32000, 50257, 128256])),
        mlp=draw(st.sampled_from(["swiglu", "gelu"])),
    )


@st.composite
def moe_models(draw):
    dense = draw(dense_models())
    experts = draw(st.sampled_from([8, 16, 64]))
    return MoE(
        **{f.name: getattr(dense, f.name) for f in attrs.fields(Dense)},
        moe=Experts(experts=experts, top_k=draw(st.integers(1, 4)), shared_experts=draw(st.integers(0, 1))),
    )


models = st.one_of(dense_models(), moe_models())


@st.composite
def plans(draw, **fixed):
    model = fixed.pop("model", None) or draw(models)
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if model.heads % t == 0]))
    pp = draw(st.sampled_from([p for p in (1, 2, 4) if p <= model.layers]))
    dp = draw(st.sampled_from([1, 2, 4, 8, 16]))
    kw = dict(
        model=model,
        tp=tp,
        pp=pp,
        gpus=tp * pp * dp,
        zero=draw(st.integers(0, 3)),
        recompute=draw(st.sampled_from(["none", "selective", "full"])),
        seq_len=draw(st.sampled_from([1024, 2048, 4096])),
        micro_batch=draw(st.sampled_from([1, 2])),
        flash=draw(st.booleans()),
    )
    kw.update(fixed)
    return make_plan(**kw)


def state_bytes(est) -> float:
    return sum(est.value(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer"))


@given(model=models, dp=st.integers(1, 6))
def test_zero3_model_state_strictly_decreases_as_dp_grows(model, dp):
    small = estimate(make_plan(model=model, zero=3, gpus=2**dp))
    large = estimate(make_plan(model=model, zero=3, gpus=2 ** (dp + 1)))
    assert state_bytes(large) < state_bytes(small)


@given(plan=plans())
def test_zero_stages_are_ordered(plan):
    states = [state_bytes(estimate(attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, zero=z)))) for z in range(4)]
    assert states[3] <= states[2] <= states[1] <= states[0]


@given(plan=plans())
def test_every_quantity_is_finite_and_non_negative(plan):
    est = estimate(plan)
    for key, value in est.results.items():
        if key == "memory.headroom":
            continue
        assert math.isfinite(value), key
        assert value >= 0, key
    for key in ("flops.total", "memory.per_gpu.total", "time.step_seconds", "time.total_seconds", "energy.kwh", "cost.total"):
        assert est.value(key) > 0, key


@settings(max_examples=25)
@given(plan=plans())
def test_doubling_tokens_doubles_time_energy_cost(plan):
    one = estimate(plan)
    two = estimate(attrs.evolve(plan, method=attrs.evolve(plan.method, tokens=2 * plan.method.tokens)))
    for key in ("time.total_seconds", "energy.kwh", "cost.total", "flops.total"):
        assert two.value(key) == pytest.approx(2 * one.value(key), rel=1e-12), key
    assert two.value("time.step_seconds") == pytest.approx(one.value("time.step_seconds"), rel=1e-12)


@given(model=dense_models(), k=st.sampled_from([2, 4, 8]))
def test_tp_divides_sharded_weights_by_k(model, k):
    assume(model.heads % k == 0)
    one = estimate(make_plan(model=model, tp=1, gpus=8))
    many = estimate(make_plan(model=model, tp=k, gpus=8))
    # the final norm (h weights, + h biases for LayerNorm) is replicated on every TP rank, not sharded
    final = model.hidden * (2 if model.norm == "layernorm" else 1)
    assert many.value("memory.params_on_gpu.dense") - final == pytest.approx((one.value("memory.params_on_gpu.dense") - final) / k, rel=1e-12)


@given(plan=plans(recompute="none"))
def test_recompute_never_raises_activations_nor_lowers_hardware_flops(plan):
    results = {}
    for mode in ("none", "selective", "full"):
        est = estimate(attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, recompute=mode)))
        results[mode] = (est.value("memory.per_gpu.activations"), est.value("flops.hardware_total"), est.value("flops.total"))
    assert results["full"][0] <= results["selective"][0] <= results["none"][0]
    assert results["full"][1] >= results["selective"][1] >= results["none"][1]
    assert results["none"][2] == results["full"][2]  # model FLOPs do not change


@given(plan=plans())
def test_breakdown_parts_sum_to_total(plan):
    est = estimate(plan)
    parts = sum(est.value(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer", "activations", "other"))
    assert parts == pytest.approx(est.value("memory.per_gpu.total"), rel=1e-12)
    step = sum(est.value(k) for k in ("time.compute_seconds", "time.bubble_seconds", "communication.exposed_seconds_per_step", "time.optimizer_seconds"))
    assert step == pytest.approx(est.value("time.step_seconds"), rel=1e-12)
    pc = est.params
    assert pc.total == sum(getattr(pc, k) for k in ("embedding", "lm_head", "attention", "mlp", "experts", "shared_experts", "router", "norms"))


@settings(max_examples=25)  # sympy arithmetic on 30-digit floats is slow
@given(plan=plans())
def test_sympy_evaluation_equals_lambdified_number(plan):
    est = estimate(plan)
    q = est.definitions
    bound = {s: sympy.Float(v, 30) if isinstance(v, float) else v
             for s, v in est.values.items() if isinstance(s, sympy.Symbol) and s.name in S.TABLE}
    # every quantity in definition order, each bound to its exact value before the next:
    # xreplace rebuilds every node with numbers in it, so sympy evaluates each one exactly
    # (30-digit floats; Max, Piecewise and the tile/wave rounding steps on numbers) — no
    # lambdify. Quantity by quantity, not q.full(key): the same arithmetic without copying a
    # shared sub-expression into every place that uses it
    for key, item in q.items.items():
        exact = sympy.sympify(sympy.sympify(item.expr).xreplace(bound))
        exact = exact.rewrite(sympy.Piecewise) if exact.has(sympy.Min, sympy.Max) else exact
        bound[item.symbol] = sympy.N(exact, 30)
    assert {"memory.per_gpu.total", "time.step_seconds", "communication.per_step_bytes"} <= set(q.items)
    for key, item in q.items.items():  # every quantity, not only the totals
        assert float(bound[item.symbol]) == pytest.approx(float(est.results[key]), rel=1e-9, abs=1e-300), key


@st.composite
def uneven_plans(draw):
    """A plan with first_stage_layers and/or last_stage_layers that leave every stage a layer."""
    model = draw(dense_models())
    pp = draw(st.sampled_from([p for p in (2, 3, 4, 8) if p <= model.layers]))
    schedule = draw(st.sampled_from(["1f1b", "interleaved", "gpipe"] if 2 * pp <= model.layers else ["1f1b", "gpipe"]))
    which = draw(st.sampled_from(["first", "last", "both"] if pp > 2 else ["first", "last"]))
    free = pp - (2 if which == "both" else 1)
    budget = model.layers - free  # every other stage keeps at least one layer
    first = draw(st.integers(1, budget - (1 if which == "both" else 0))) if which != "last" else None
    last = draw(st.integers(1, budget - (first or 0))) if which != "first" else None
    dp = draw(st.sampled_from([1, 2, 4]))
    m = draw(st.integers(1, 3 * pp))
    plan = make_plan(model=model, pp=pp, gpus=pp * dp, global_batch=dp * m, schedule=schedule,
                     virtual=2 if schedule == "interleaved" else None)
    return attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, first_stage_layers=first, last_stage_layers=last))


@settings(max_examples=30, deadline=None)
@given(uneven_plans())
def test_uneven_stages_report_the_most_loaded_rank(plan):
    layers = plan.parallelism.stage_layers(plan.model.layers)
    assert len(layers) == plan.parallelism.pp and sum(layers) == plan.model.layers and min(layers) >= 1
    est = estimate(plan)
    ranks = est.report()["memory"]["pipeline_ranks"]
    assert est.value("memory.per_gpu.total") == max(r["total"] for r in ranks)
    assert sum(r["reported"] for r in ranks) == 1
    # the slowest stage is at least the average one; the FLOPs do not depend on the split
    assert est.value("time.stage_imbalance") >= 1 - 1e-12
    even = estimate(attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, first_stage_layers=None, last_stage_layers=None)))
    assert est.value("flops.per_step") == even.value("flops.per_step")


@st.composite
def overlapped_plans(draw):
    """Plans whose step overlaps several kinds of traffic: data-parallel (every ZeRO stage,
    gradient accumulation), context-parallel, tensor-parallel with and without overlap."""
    plan = draw(plans(micro_batch=1))
    par = plan.parallelism
    cp = draw(st.sampled_from([1, 2])) if plan.method.seq_len % 4 == 0 else 1
    tp_overlap = par.tp > 1 and draw(st.booleans())
    m = draw(st.sampled_from([1, 2, 8]))
    dp = plan.cluster.gpus // (par.tp * par.pp)
    return attrs.evolve(
        plan,
        cluster=attrs.evolve(plan.cluster, gpus=plan.cluster.gpus * cp),
        method=attrs.evolve(plan.method, global_batch=dp * m),
        parallelism=attrs.evolve(par, cp=cp, tp_comm_overlap=tp_overlap, sequence_parallel=True if tp_overlap else None,
                                 dp_overlap=draw(st.booleans())),
    )


def _fuzz_module():
    """``benchmarks/fuzz_plans.py``: the invariants' one implementation, shared with the fuzzer."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_plans.py"
    spec = importlib.util.spec_from_file_location("fuzz_plans", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz_module()


@settings(max_examples=60, deadline=None)
@given(plan=overlapped_plans(), gpu=st.sampled_from([1.0, 1.5, 3.0]), links=st.sampled_from([1.0, 2.0]))
def test_faster_hardware_never_lengthens_the_step(plan, gpu, links):
    # found by fuzzing: each kind of traffic used to hide behind the compute alone, so a
    # faster GPU exposed more data-parallel *and* context-/tensor-parallel traffic at once,
    # and a step of 9.017 s on B200 took 9.027 s on a B200 twice as fast
    assume(gpu > 1 or links > 1)
    before = estimate(plan).value("time.step_seconds")
    after = estimate(FUZZ.faster_links(FUZZ.faster_gpu(plan, gpu), links)).value("time.step_seconds")
    assert after <= before * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(plan=overlapped_plans())
def test_overlapped_layouts_keep_every_invariant(plan):
    # the fuzzer's checks on generated layouts: every quantity finite and ≥ 0, a GPU or links
    # twice as fast never slower, twice the micro-batches per step never more than twice the
    # step (the bubble, the optimizer step and the once-per-step traffic spread over more
    # tokens, every per-micro-batch cost repeats), the sweep's row equal to the estimate
    assert FUZZ.check(plan, serve=False) == []


def test_the_plan_fuzzer_runs_clean_on_a_few_plans(capsys):
    # benchmarks/fuzz_plans.py: random catalog plans, the invariants above on real shapes
    fuzz = FUZZ
    assert fuzz.main(["--plans", "12", "--seed", "1"]) == 0
    assert fuzz.main(["--plans", "8", "--seed", "1", "--serve"]) == 0
    out = capsys.readouterr().out
    assert "0 kinds of finding" in out and "plans checked" in out


def test_the_plan_fuzzer_reports_a_faster_gpu_that_lengthens_the_step():
    # the check is not vacuous: a "faster" GPU with half the memory bandwidth and peaks
    # is slower, and check() says so
    fuzz = _fuzz_module()  # a fresh copy: its faster_gpu is replaced below
    plan = make_plan()
    slower = fuzz.faster_gpu(plan, 0.5)
    assert estimate(slower).value("time.step_seconds") > estimate(plan).value("time.step_seconds")
    fuzz.faster_gpu, original = (lambda p, k=2.0: slower), fuzz.faster_gpu
    try:
        assert any(p.startswith("a faster GPU lengthens time.step_seconds") for p in fuzz.check(plan, serve=False))
    finally:
        fuzz.faster_gpu = original
