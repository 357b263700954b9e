"""Inverse questions (llmplan.inverse): each answer checked against estimate / sweep."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest

import llmplan
from llmplan import catalog
from llmplan.cli import main
from llmplan.errors import LlmplanError
from plans import llama7b_h100_plan
from llmplan.inverse import (
    _on_gpu,
    candidate_counts,
    cheapest,
    fewest_gpus,
    largest_model,
    parse_budget,
    tokens_in,
)
from llmplan.plan import Cost, OnPrem, Parallelism, Plan
from llmplan.search import layout_space, unsupported_mask
from llmplan.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]
LLAMA70 = llmplan.load(ROOT / "examples/llama2-70b-pretrain.toml")
DAY = 86400.0

#: a small plan: Llama 2 7B, 100B tokens, on H100s, priced at 2 USD per GPU-hour
SMALL = llama7b_h100_plan()


def _plan_of(plan: Plan, report: dict, **changes) -> Plan:
    """The plan of a search report's layout (GPU, count, parallelism)."""
    par = dict(report["parallelism"])
    par.pop("dp")
    gpu = catalog.gpu(report["cluster"]["gpu"]) if report["cluster"]["gpu"] != plan.cluster.gpu.id else plan.cluster.gpu
    same = gpu.id == plan.cluster.gpu.id
    cluster = attrs.evolve(plan.cluster, gpu=gpu, gpus=report["cluster"]["gpus"],
                           intra_node=plan.cluster.intra_node if same else None,
                           inter_node=plan.cluster.inter_node if same else None)
    return attrs.evolve(plan, cluster=cluster, parallelism=Parallelism(**par), **changes)


def _feasible_counts(plan: Plan, counts, deadline: float) -> set[int]:
    """Counts with a layout that fits, meets the deadline and is one the usual frameworks
    run (no ZeRO-2/3 with pipeline stages …), by a plain sweep."""
    base = _on_gpu(plan, plan.cluster.gpu)
    sw = sweep(base, **layout_space(base, counts))
    ok = sw.fits & (sw.results["time.total_seconds"] <= deadline) & ~unsupported_mask(base, sw.layout)
    return {int(g) for g in np.unique(sw.layout["gpus"][ok])}


# ---------------------------------------------------------------------------------------
# candidate counts
# ---------------------------------------------------------------------------------------


def test_candidate_counts_are_the_counts_some_layout_can_use():
    base = _on_gpu(LLAMA70, LLAMA70.cluster.gpu)
    counts = candidate_counts(base, 1, 4096)
    assert 1280 in counts  # tp 2 × pp 5 × dp 128: not a power of two, found
    assert 1536 not in counts  # 3 × 512: no layout (heads 64, layers 80, batch 1024)
    assert all(n <= 8 or n % 8 == 0 for n in counts)
    # exactly the counts where the sweep has a valid row
    sw = sweep(base, **layout_space(base, list(range(8, 257, 8))))
    valid = {int(g) for g in np.unique(sw.layout["gpus"][sw.valid])}
    assert valid == {n for n in counts if 8 <= n <= 256}
    assert len(candidate_counts(base, 1, 4096, whole_nodes=False)) >= len(counts)


# ---------------------------------------------------------------------------------------
# (a) fewest GPUs
# ---------------------------------------------------------------------------------------


def test_fewest_gpus_meets_the_deadline_and_no_smaller_count_does():
    r = fewest_gpus(LLAMA70, 30 * DAY)
    n = r["gpus"]
    assert n is not None and r["days"] <= 30
    assert r["layout"]["memory"]["fits"]
    assert r["lower_bound"] <= n
    # every candidate count below the answer, from 1, has no layout that fits in time
    below = [c for c in candidate_counts(_on_gpu(LLAMA70, LLAMA70.cluster.gpu), 1, n) if c < n]
    assert below and not _feasible_counts(LLAMA70, below, 30 * DAY)
    # the answer's layout re-estimates to the same time
    est = llmplan.estimate(_plan_of(LLAMA70, r["layout"]))
    assert est.value("time.days") == pytest.approx(r["days"], rel=1e-9)


def test_fewest_gpus_answers_only_with_layouts_frameworks_run():
    # under framework = "hf" selective recomputation is unsupported (HF models checkpoint
    # whole layers); ZeRO-2/3 with pp > 1 is unsupported everywhere
    plan = attrs.evolve(LLAMA70, parallelism=attrs.evolve(LLAMA70.parallelism, framework="hf"))
    r = fewest_gpus(plan, 30 * DAY)
    n = r["gpus"]
    assert n is not None and r["layout"]["unsupported"] == []
    assert r["layout"]["parallelism"]["recompute"] != "selective"
    assert not (r["layout"]["parallelism"]["pp"] > 1 and r["layout"]["parallelism"]["zero"] >= 2)
    below = [c for c in candidate_counts(_on_gpu(plan, plan.cluster.gpu), 1, n) if c < n]
    assert not _feasible_counts(plan, below, 30 * DAY)
    assert n in _feasible_counts(plan, [n], 30 * DAY)


def test_fewest_gpus_skips_a_count_only_an_unsupported_layout_makes_in_time():
    # at 40 GPUs the fastest Llama 2 70B layout is ZeRO-3 with pipeline stages (unsupported);
    # the fastest supported one is slower. A deadline between the two must not be answered
    # with 40 GPUs and the unsupported layout.
    base = _on_gpu(LLAMA70, LLAMA70.cluster.gpu)
    counts = [c for c in candidate_counts(base, 1, 48) if c <= 40]
    assert counts[-1] == 40
    sw = sweep(base, **layout_space(base, counts))
    bad, g, secs = unsupported_mask(base, sw.layout), sw.layout["gpus"], sw.results["time.total_seconds"]
    fastest_any = secs[sw.fits & (g == 40)].min()
    fastest_supported = secs[sw.fits & ~bad & (g == 40)].min()
    assert fastest_any < fastest_supported
    deadline = (fastest_any + fastest_supported) / 2
    assert not (sw.fits & (g < 40) & (secs <= deadline)).any()  # nothing smaller is in time
    r = fewest_gpus(LLAMA70, deadline)
    assert r["gpus"] > 40 and r["layout"]["unsupported"] == []
    assert r["layout"]["time"]["days"] * DAY <= deadline
    # asked to rank them too, the answer is 40 GPUs with the unsupported layout, flagged
    ranked = fewest_gpus(LLAMA70, deadline, unsupported="rank")
    assert ranked["gpus"] == 40 and ranked["layout"]["unsupported"]
    p = ranked["layout"]["parallelism"]
    assert p["pp"] > 1 and p["zero"] >= 2
    assert ranked["layout"]["time"]["days"] * DAY == pytest.approx(fastest_any, rel=1e-9)


def test_inverse_unsupported_policy_is_checked():
    for call in (lambda: fewest_gpus(LLAMA70, 30 * DAY, unsupported="last"),
                 lambda: cheapest(LLAMA70, 30 * DAY, unsupported="keep")):
        with pytest.raises(LlmplanError, match="allowed: drop, rank"):
            call()


def test_fewest_gpus_other_type_and_impossible_deadline():
    a100 = fewest_gpus(SMALL, 7 * DAY, "a100-80gb-sxm")
    h100 = fewest_gpus(SMALL, 7 * DAY)
    assert a100["gpu"] == "a100-80gb-sxm" and h100["gpu"] == "h100-sxm"
    assert h100["gpus"] <= a100["gpus"]  # ~3× the peak: never more GPUs
    none = fewest_gpus(SMALL, 3600, max_gpus=64)
    assert none["gpus"] is None and "no layout" in none["reason"]
    with pytest.raises(LlmplanError):
        fewest_gpus(SMALL, -1)


# ---------------------------------------------------------------------------------------
# (b) cheapest
# ---------------------------------------------------------------------------------------


def test_cheapest_skips_what_it_cannot_convert_and_says_so():
    r = cheapest(SMALL, 14 * DAY, ["a100-80gb-sxm", "h100-sxm"])
    assert r["currency"] == "USD"
    assert r["options"] and all(o["option"] == "cloud" for o in r["options"])
    skipped = {s["price"] for s in r["skipped"]}
    assert {"a100-80gb-sxm-used-jp-2025", "h100-sxm-new-jp-2025"} <= skipped
    assert all("JPY" in s["reason"] for s in r["skipped"] if s["price"])
    costs = [o["cost"] for o in r["options"]]
    assert costs == sorted(costs) and r["cheapest"] == r["options"][0]
    assert all(o["days"] <= 14 for o in r["options"])
    # "latest" prices only: the A100's 2026 rate, not the 2025 article rates (and the plan's own)
    ids = {o["price"]["id"] for o in r["options"]}
    assert "a100-80gb-sxm-cloud-2026" in ids and "a100-80gb-sxm-cloud-lora-article" not in ids
    assert "plan" in ids  # the plan's [cost] gpu_hour for its own GPU (h100-sxm)
    every = cheapest(SMALL, 14 * DAY, ["a100-80gb-sxm"], prices="all")
    assert {"a100-80gb-sxm-cloud-lora-article", "a100-80gb-sxm-cloud-jp-2025"} <= {s["price"] for s in every["skipped"]} | {o["price"]["id"] for o in every["options"]}


def test_cheapest_costs_equal_the_money_formulas_of_estimate():
    plan = attrs.evolve(SMALL, cost=Cost(gpu_hour=(2.0, "USD"), rates={"JPY": 150.0}))
    r = cheapest(plan, 14 * DAY, ["h100-sxm"], power_price="0.12 USD/kWh")
    opts = {(o["option"], o["price"]["id"]): o for o in r["options"]}
    onprem = opts[("on-prem", "h100-sxm-new-jp-2025")]
    cloud = opts[("cloud", "h100-sxm-cloud-2026")]
    assert onprem["price_in_currency"] == pytest.approx(5_000_000 / 150)
    # the same layout, priced by llmplan.formulas.money through estimate
    on_prem = OnPrem(gpu_price=(5_000_000.0, "JPY"), years=3, pue=1.0, hours_per_month=730, power_price=(0.12, "USD"))
    est = llmplan.estimate(_plan_of(plan, r["per_gpu"]["h100-sxm"]["report"],
                                    cost=Cost(gpu_hour=(2.79, "USD"), rates={"JPY": 150.0}, on_prem=on_prem)))
    assert est.value("time.gpu_hours") == pytest.approx(onprem["gpu_hours"], rel=1e-9)
    assert est.value("cost.on_prem") == pytest.approx(onprem["cost"], rel=1e-9)
    assert est.value("cost.cloud") == pytest.approx(cloud["cost"], rel=1e-9)
    assert est.value("energy.kwh") == pytest.approx(onprem["energy_kwh"], rel=1e-9)
    # the chosen layout has no more GPU-hours than the fastest layout at the fewest count
    fewest = fewest_gpus(plan, 14 * DAY)
    assert onprem["gpu_hours"] <= fewest["gpu_hours"] * (1 + 1e-9)
    assert r["per_gpu"]["h100-sxm"]["fewest_gpus"] == fewest["gpus"]


def test_cheapest_rejects_a_bad_policy():
    with pytest.raises(LlmplanError, match="latest"):
        cheapest(SMALL, DAY, prices="newest")


# ---------------------------------------------------------------------------------------
# (c) largest model
# ---------------------------------------------------------------------------------------


def test_parse_budget():
    assert parse_budget("50k GPU-days") == {"kind": "gpu_hours", "gpu_hours": 1.2e6, "text": "50k GPU-days"}
    assert parse_budget("1.5M GPU-hours")["gpu_hours"] == 1.5e6
    assert parse_budget("1M USD")["amount"] == 1e6 and parse_budget("1M USD")["currency"] == "USD"
    assert parse_budget((3.0, "JPY"))["currency"] == "JPY"
    with pytest.raises(LlmplanError):
        parse_budget("1M dollars")


def test_largest_model_fits_the_budget_and_the_next_shape_does_not():
    r = largest_model("100k USD", "h100-sxm", 64, gpu_hour="2 USD")
    m = r["model"]
    assert m is not None and r["budget_gpu_hours"] == pytest.approx(50_000)
    assert r["gpu_hours"] <= r["budget_gpu_hours"]
    assert r["cost"] == pytest.approx(r["gpu_hours"] * 2) and r["cost"] <= 100_000
    assert r["tokens"] == round(20 * m["params"])
    assert m["params"] == llmplan.param_counts(llmplan.capabilities.llama_like(m["params"])).total
    nxt = r["next_larger"]
    assert nxt["params"] > m["params"] and nxt["hidden"] - m["hidden"] <= 128 * 2
    assert "over the budget" in nxt["reason"] or "fits" in nxt["reason"]
    # same answer in GPU-days
    again = largest_model(f"{50_000 / 24} GPU-days", "h100-sxm", 64)
    assert again["model"]["hidden"] == m["hidden"]
    # a bigger budget buys a bigger model
    bigger = largest_model("400k USD", "h100-sxm", 64, gpu_hour="2 USD")
    assert bigger["model"]["params"] > m["params"]


def test_largest_model_looks_past_a_shape_that_misses_the_budget(monkeypatch):
    """Feasibility need not be monotone (a shape whose head count rules out tensor
    parallelism can cost more than the next one). Here every shape costs its parameter
    count ÷ 10⁶ GPU-hours except hidden 8,960, which costs 10× that; the budget lies
    between the costs of hidden 9,088 and 9,216. The bisection probes 8,960, finds it over
    budget and alone would answer 8,832; the scan past the boundary answers 9,088."""
    from llmplan import inverse
    from llmplan.capabilities import llama_like_params

    def fake(plan, gpus, deadline, objective, unsupported="drop"):
        n = llmplan.param_counts(plan.model).total
        return {"time": {"gpu_hours": n / 1e6 * (10 if plan.model.hidden == 8960 else 1), "days": 1.0}, "flops": {"total": 1.0}}

    monkeypatch.setattr(inverse, "_best_report", fake)
    budget = f"{(llama_like_params(9088) + llama_like_params(9216)) / 2 / 1e6} GPU-hours"
    r = largest_model(budget, "h100-sxm", 64)
    assert r["model"]["hidden"] == 9088
    assert r["next_larger"]["hidden"] == 9216 and "over the budget" in r["next_larger"]["reason"]
    monkeypatch.setattr(inverse, "_SCAN", 0)  # the bisection alone stops below the expensive shape
    assert largest_model(budget, "h100-sxm", 64)["model"]["hidden"] == 8832


def test_largest_model_currency_needs_a_rate():
    with pytest.raises(LlmplanError, match="JPY"):
        largest_model("10M JPY", "h100-sxm", 8, gpu_hour="2 USD")
    r = largest_model("3M JPY", "h100-sxm", 8, gpu_hour="2 USD", rates={"JPY": 150})
    assert r["budget_gpu_hours"] == pytest.approx(3e6 / 150 / 2)
    tiny = largest_model("1 USD", "h100-sxm", 8, gpu_hour="2 USD")
    assert tiny["model"] is None and "smallest" in tiny["reason"]


# ---------------------------------------------------------------------------------------
# (d) tokens in N days
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", [LLAMA70, SMALL], ids=["llama2-70b", "7b"])
def test_tokens_in_days_is_exact_against_estimate(plan):
    r = tokens_in(plan, 30)
    # the plan trained on that many tokens takes exactly 30 days
    est = llmplan.estimate(attrs.evolve(plan, method=attrs.evolve(plan.method, tokens=r["tokens"])))
    assert est.value("time.total_seconds") == pytest.approx(30 * DAY, rel=1e-9)
    assert est.value("time.steps") == pytest.approx(r["steps"], rel=1e-9)
    # proportional: twice the days, twice the tokens; durations as text
    assert tokens_in(plan, 60)["tokens"] == pytest.approx(2 * r["tokens"], rel=1e-12)
    assert tokens_in(plan, "6 weeks")["tokens"] == pytest.approx(42 / 30 * r["tokens"], rel=1e-12)


def test_tokens_in_refuses_serving_plans_and_bad_days():
    serve = llmplan.load(ROOT / "examples/llama2-70b-serve.toml")
    with pytest.raises(LlmplanError, match="training"):
        tokens_in(serve, 1)
    with pytest.raises(LlmplanError):
        tokens_in(SMALL, 0)


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def test_cli_ask_json_and_text(capsys):
    plan = str(ROOT / "examples/llama2-70b-pretrain.toml")
    assert main(["ask", "tokens", plan, "--days", "30", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tokens"] == pytest.approx(tokens_in(LLAMA70, 30)["tokens"])
    assert main(["ask", "fewest-gpus", plan, "--deadline", "30 days", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["gpus"] == fewest_gpus(LLAMA70, 30 * DAY)["gpus"]
    assert main(["ask", "fewest-gpus", plan, "--deadline", "30 days"]) == 0
    assert "fewest a100-80gb-sxm GPUs" in capsys.readouterr().out
    assert main(["ask", "fewest-gpus", plan, "--deadline", "30 days", "--unsupported", "rank", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpus"] == fewest_gpus(LLAMA70, 30 * DAY, unsupported="rank")["gpus"]
    assert main(["ask", "cheapest", plan, "--deadline", "90 days", "--gpu", "a100-80gb-sxm", "--rates", "JPY=150"]) == 0
    out = capsys.readouterr().out
    assert "on-prem" in out and "a100-80gb-sxm-used-jp-2025" in out
    assert main(["ask", "largest-model", "--budget", "20k USD", "--gpu", "h100-sxm", "--gpus", "8", "--gpu-hour", "2 USD", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["params"] > 1e8
    assert main(["ask", "tokens", plan, "--days", "30"]) == 0
    assert "tokens" in capsys.readouterr().out


def test_cli_ask_errors_exit_2(capsys):
    plan = str(ROOT / "examples/llama2-70b-pretrain.toml")
    assert main(["ask", "fewest-gpus", plan, "--deadline", "30 parsecs"]) == 2
    assert "deadline" in capsys.readouterr().err
    assert main(["ask", "cheapest", plan, "--deadline", "30 days", "--rates", "yen"]) == 2
    assert main(["ask", "fewest-gpus", plan, "--deadline", "1 h", "--max-gpus", "64"]) == 3
