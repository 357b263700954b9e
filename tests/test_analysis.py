"""Sensitivity (elasticities from symbolic derivatives) and input ranges."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan import symbols as S
from llmplan.analysis import evolve_path, ranges, sensitivity

ROOT = Path(__file__).resolve().parents[1]
PLAN = llmplan.load(ROOT / "examples/llama2-70b-pretrain.toml")


def test_time_is_proportional_to_tokens_elasticity_one():
    est = llmplan.estimate(PLAN)
    elastic = {name: e for name, e, _ in sensitivity(est, "time.days")}
    # time = steps × step time and steps = D/(B·s): exactly proportional to D
    assert elastic["D"] == pytest.approx(1.0, abs=1e-9)


def test_cost_elasticity_to_price_is_one():
    est = llmplan.estimate(PLAN)
    elastic = {name: e for name, e, _ in sensitivity(est, "cost.total")}
    assert elastic["c_hour"] == pytest.approx(1.0, abs=1e-9)


def test_elasticity_matches_a_finite_difference():
    est = llmplan.estimate(PLAN)
    elastic = {name: e for name, e, _ in sensitivity(est, "time.days")}
    # hold the attention kernel at the plan's effective rate (a flat [efficiency] attention of
    # time.attention_efficiency), so that only η_gemm moves (on a GPU without an attention
    # benchmark η_attn defaults to η_gemm / 2)
    fixed = evolve_path(PLAN, "efficiency.attention", float(est.value("time.attention_efficiency")))
    eta = float(est.values[S.eta_gemm])
    up = llmplan.estimate(evolve_path(fixed, "efficiency.gemm", eta * 1.001))
    down = llmplan.estimate(evolve_path(fixed, "efficiency.gemm", eta / 1.001))
    import math

    numeric = (math.log(up.value("time.days")) - math.log(down.value("time.days"))) / (2 * math.log(1.001))
    assert elastic["eta_gemm"] == pytest.approx(numeric, rel=1e-3)


def test_ranges_of_a_monotone_output_are_the_corner_values():
    r = ranges(PLAN, {"method.tokens": (1e12, 3e12)}, samples=8)
    low = llmplan.estimate(evolve_path(PLAN, "method.tokens", 1e12)).value("time.days")
    high = llmplan.estimate(evolve_path(PLAN, "method.tokens", 3e12)).value("time.days")
    out = r["outputs"]["time.days"]
    assert out["exact"] is True
    assert out["low"] == pytest.approx(low) and out["high"] == pytest.approx(high)
    assert r["most_sensitive"]["time.days"] == "method.tokens"


@settings(max_examples=6, deadline=None)
@given(lo=st.floats(0.3, 0.5), width=st.floats(0.01, 0.3), x=st.floats(0, 1))
def test_range_bounds_contain_every_sampled_point(lo, width, x):
    hi = min(lo + width, 1.0)
    r = ranges(PLAN, {"efficiency.mfu": (lo, hi), "method.tokens": (1e12, 2e12)}, samples=4)
    point = evolve_path(evolve_path(PLAN, "efficiency.mfu", lo + x * (hi - lo)), "method.tokens", 1.5e12)
    est = llmplan.estimate(point)
    for key in ("time.days", "cost.total", "energy.kwh"):
        b = r["outputs"][key]
        assert b["low"] * (1 - 1e-9) <= est.value(key) <= b["high"] * (1 + 1e-9)


def test_bad_range_keys_are_reported(tmp_path):
    text = (ROOT / "examples/llama2-70b-pretrain.toml").read_text()
    text += '\n[ranges]\n"methd.tokens" = ["1T", "2T"]\n"method.tokens" = ["3T", "2T", "1T"]\n'
    with pytest.raises(llmplan.PlanError) as info:
        llmplan.loads(text)
    msgs = [str(p) for p in info.value.problems]
    assert any(m.startswith("ranges.methd.tokens: not a numeric plan key (did you mean 'method'?)") for m in msgs)
    assert any(m.startswith("ranges.method.tokens:") and "is not [low, high]" in m for m in msgs)


def test_gpt4_example_reports_ranges_and_the_driver():
    out = subprocess.run(
        [sys.executable, "-m", "llmplan", "estimate", "examples/gpt4-guess.toml", "--json"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)["ranges"]
    days = r["outputs"]["time.days"]
    assert days["low"] < days["high"]
    assert r["most_sensitive"]["cost.total"] in ("cost.gpu_hour", "efficiency.mfu", "method.tokens", "model.layers")


def test_explain_sensitivity_cli():
    out = subprocess.run(
        [sys.executable, "-m", "llmplan", "explain", "examples/llama2-70b-pretrain.toml", "--sensitivity", "--top", "5"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "time.days" in out.stdout and "training tokens" in out.stdout
