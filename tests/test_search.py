"""Sweeps and layout search: vectorised numbers equal scalar estimates; the best is best."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan.search import pareto_front, search
from llmplan.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]
PLAN = llmplan.load(ROOT / "examples/llama2-70b-pretrain.toml")
AXES = dict(tp=[1, 2, 4, 8, 6], pp=[1, 2, 4, 3], micro_batch=[1, 2, 3], gpus=[512, 2048], zero=[0, 1, 3], recompute=["selective", "full"])
SWEEP = sweep(PLAN, **AXES)


def _plan(row):
    from llmplan.search import _plan_for

    return _plan_for(PLAN, row)


def test_invalid_layouts_are_flagged():
    lay = SWEEP.layout
    bad_tp = lay["tp"] == 6  # does not divide 64 heads
    assert not SWEEP.valid[bad_tp].any()
    bad_batch = lay["micro_batch"] == 3  # 1024 sequences are not a multiple of dp × 3
    assert not SWEEP.valid[bad_batch].any()
    assert SWEEP.valid.any()


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_each_valid_row_equals_the_scalar_estimate(data):
    valid = np.where(SWEEP.valid)[0]
    i = data.draw(st.sampled_from(valid.tolist()))
    row = SWEEP.rows([i])[0]
    est = llmplan.estimate(_plan(row))
    for key in ("memory.per_gpu.total", "time.step_seconds", "time.total_seconds", "communication.per_step_bytes", "cost.total"):
        assert row[key] == pytest.approx(est.value(key), rel=1e-9), key


def test_best_layout_never_loses_to_an_enumerated_one():
    result = search(PLAN, gpus=2048, top=3)
    best = result["layouts"][0]["time"]["total_seconds"]
    full = sweep(PLAN, tp=[1, 2, 4, 8], pp=[1, 2, 4, 8], micro_batch=[1, 2, 4], gpus=[2048], zero=[0, 1, 2, 3], recompute=["none", "selective", "full"])
    assert best <= full.results["time.total_seconds"][full.fits].min() * (1 + 1e-9)
    assert result["evaluated"] > 1000 and result["feasible"] > 0


def test_pareto_front_has_no_dominated_point():
    rng = np.random.default_rng(0)
    pts = rng.random((200, 3))
    front = pareto_front(pts)
    for i in front:
        dominated = np.all(pts <= pts[i], axis=1) & np.any(pts < pts[i], axis=1)
        assert not dominated.any()
    others = set(range(200)) - set(front.tolist())
    for j in others:
        assert any(np.all(pts[i] <= pts[j]) and np.any(pts[i] < pts[j]) for i in front)


def test_search_cli_json():
    out = subprocess.run(
        [sys.executable, "-m", "llmplan", "search", "examples/llama2-70b-pretrain.toml", "--gpus", "1024", "--top", "2", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert set(r) >= {"layouts", "evaluated", "feasible", "seconds"}
    assert len(r["layouts"]) == 2
    lay = r["layouts"][0]
    assert lay["cluster"]["gpus"] == 1024
    assert lay["parallelism"]["tp"] * lay["parallelism"]["pp"] * lay["parallelism"]["cp"] * lay["parallelism"]["dp"] == 1024
    assert lay["memory"]["fits"] is True


@settings(max_examples=6, deadline=None)
@given(
    objective=st.sampled_from(["time", "cost", "gpus"]),
    gpus=st.sampled_from([512, 1024, 2048]),
)
def test_search_best_never_loses_to_an_enumerated_layout(objective, gpus):
    """Property: for any objective, no layout of the searched space beats the reported best."""
    from llmplan.search import layout_space

    result = search(PLAN, gpus=gpus, top=1, objective=objective)
    best = result["layouts"][0]
    axes = layout_space(PLAN, [gpus])
    full = sweep(PLAN, **axes)
    ok = full.fits
    metric = {
        "time": full.results["time.total_seconds"],
        "cost": full.results["cost.total"],
        "gpus": full.layout["gpus"].astype(float),
    }[objective]
    got = {"time": best["time"]["total_seconds"], "cost": best["cost"]["total"], "gpus": best["cluster"]["gpus"]}[objective]
    assert got <= metric[ok].min() * (1 + 1e-9)


# --- prices per GPU type -----------------------------------------------------------------
# The catalog's h100-sxm prices (llmplan/data/prices.toml): cloud 5 USD (2025) and
# 2.79 USD (2026-04), purchase 5,000,000 JPY (2025); h200-sxm has none.


def test_the_plans_gpu_keeps_the_plans_prices():
    from llmplan.search import gpu_cost

    assert gpu_cost(PLAN, PLAN.cluster.gpu) == (PLAN.cost, None)


def test_another_gpu_takes_its_latest_catalog_price_in_the_plans_currency():
    import attrs

    from llmplan import catalog
    from llmplan.plan import Cost, OnPrem
    from llmplan.search import gpu_cost

    h100 = catalog.gpu("h100-sxm")
    cost, note = gpu_cost(PLAN, h100)  # the plan: 3 USD per A100-hour
    assert cost.gpu_hour == (2.79, "USD") and "h100-sxm-cloud-2026" in note
    yen = attrs.evolve(PLAN, cost=Cost(gpu_hour=(450, "JPY"), rates={"JPY": 150.0}, on_prem=OnPrem(gpu_price=(1_800_000, "JPY"), years=4)))
    cost, _ = gpu_cost(yen, h100)
    assert cost.gpu_hour == (pytest.approx(2.79 * 150), "JPY")
    assert cost.on_prem.gpu_price == (5_000_000, "JPY") and cost.on_prem.years == 4
    assert cost.rates == {"JPY": 150.0}
    no_rate = attrs.evolve(PLAN, cost=Cost(gpu_hour=(450, "JPY")))
    cost, note = gpu_cost(no_rate, h100)  # USD prices cannot become JPY without a rate
    assert cost is None and "not priced" in note


def test_search_ranks_every_type_by_its_own_price():
    """At a fixed layout the H100's cost is its GPU-hours × 2.79 USD, the A100's × the plan's 3."""
    r = search(PLAN, gpu_ids=["a100-80gb-sxm", "h100-sxm"], objective="cost", top=20, gpus=2048)
    seen = set()
    for rep in r["layouts"]:
        price = {"a100-80gb-sxm": 3, "h100-sxm": 2.79}[rep["cluster"]["gpu"]]
        assert rep["cost"]["total"] == pytest.approx(rep["time"]["gpu_hours"] * price, rel=1e-9)
        seen.add(rep["cluster"]["gpu"])
    assert any("h100-sxm: priced at the catalog's" in n for n in r["notes"])
    costs = [rep["cost"]["total"] for rep in r["layouts"] if not rep["unsupported"]]
    assert costs == sorted(costs)


def test_search_without_a_price_for_every_type_ranks_by_gpu_hours():
    r = search(PLAN, gpu_ids=["a100-80gb-sxm", "h200-sxm"], objective="cost", top=10, gpus=2048)
    assert "cost ranks by GPU-hours: not every GPU type has a price" in r["notes"]
    assert any(n.startswith("h200-sxm: not priced") for n in r["notes"])
    hours = [rep["time"]["gpu_hours"] for rep in r["layouts"] if not rep["unsupported"]]
    assert hours == sorted(hours)


def test_rows_at_sixteen_thousand_gpus_equal_the_scalar_estimate():
    # peak × gpus = 989.4e12 × 16,384 ≈ 1.6e19 exceeds int64 (9.2e18): integer layout arrays
    # multiplied by the integer peak once wrapped around and gave negative step times
    from llmplan.search import _free_plan, _plan_for

    plan = llmplan.load(ROOT / "examples/llama3-405b-pretrain.toml")
    base = _free_plan(plan, plan.cluster)
    sw = sweep(base, tp=[1, 8], pp=[16, 32], cp=[1], micro_batch=[1, 2], gpus=[16384], zero=[1], recompute=["full"],
               pp_schedule=["1f1b"])
    rows = sw.rows(np.where(sw.valid)[0])
    assert len(rows) == 8
    for row in rows:
        est = llmplan.estimate(_plan_for(base, row))
        assert row["time.step_seconds"] > 0
        for key in ("time.step_seconds", "time.compute_seconds", "time.bubble_seconds", "memory.per_gpu.total"):
            assert row[key] == pytest.approx(float(est.value(key)), rel=1e-9), key
