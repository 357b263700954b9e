"""Inverse questions: from a plan (or a budget) back to GPUs, money, model size and tokens.

:func:`llmplan.estimate` answers "how long and how much for *this* plan". The questions
teams ask first run the other way:

* :func:`fewest_gpus` — the fewest GPUs of a type that finish by a deadline;
* :func:`cheapest` — the cheapest way to finish by a deadline, across GPU types and
  renting (cloud price per GPU-hour) vs owning (purchase price amortised), with the
  catalog's prices;
* :func:`largest_model` — the largest Chinchilla-optimal (20 tokens per parameter)
  Llama-shaped model a budget (money or GPU-days) trains on a GPU type;
* :func:`tokens_in` — the tokens a plan's layout trains in a given number of days.

Each answer is computed with the same formulas as ``llmplan estimate``: layouts are
evaluated by :func:`llmplan.sweep.sweep` (vectorised) and the winner is re-estimated
exactly by :func:`llmplan.search.search`. Every function returns a JSON-ready dict;
``llmplan ask …`` prints it (``--json``) or a short table. ``docs/inverse.md`` walks
through each with real output.

**GPU counts.** A count is a candidate when some layout of the search space
(:func:`llmplan.search.layout_space`) can use it: ``N = tp·pp·cp·dp`` with ``dp``
dividing the global batch (in sequences). Above one node only whole nodes are
considered (``whole_nodes=False`` lifts that). :func:`llmplan.search.search` with
``max_gpus`` only tries powers of two and power-of-two node counts; the functions here
try every candidate count, so 1,280 GPUs (tp 2 × pp 5 × dp 128) is found when it is the
answer.

**Costs are proportional to GPU-hours at a fixed GPU type.** Cloud cost is
``GPU-hours × price`` and on-prem cost (:mod:`llmplan.formulas.money`) is
``purchase × N × run hours ÷ (12·Y·H_month) + TDP × N × PUE × hours × price/kWh``,
also ``GPU-hours × (purchase ÷ (12·Y·H_month) + TDP·PUE·price/kWh ÷ 1000)``. So for each
GPU type the cheapest layout under a deadline is the one with the fewest GPU-hours, for
every price; only the comparison across types and prices needs the prices.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .errors import LlmplanError
from .hardware import GPU
from .plan import Plan

__all__ = [
    "DEFAULT_ON_PREM",
    "PRICE_POLICIES",
    "add_cli",
    "candidate_counts",
    "cheapest",
    "fewest_gpus",
    "largest_model",
    "parse_budget",
    "tokens_in",
]

#: On-prem assumptions when the plan has no ``[cost.on_prem]`` table: the defaults of
#: :class:`llmplan.plan.OnPrem` (3 years, PUE 1.0, used 730 h a month, i.e. always on)
#: and no electricity price (energy is then reported in kWh but not priced).
DEFAULT_ON_PREM = {"years": 3.0, "pue": 1.0, "hours_per_month": 730.0, "power_price": None}

#: Which catalog prices :func:`cheapest` compares: ``latest`` — per GPU type and kind,
#: the prices with the most recent date; ``all`` — every price.
PRICE_POLICIES = ("latest", "all")

#: Counts evaluated per vectorised sweep call, and the layouts per call aimed at
#: (about 200k: a few hundred MB at most while the sweep runs).
_CHUNK = 6
_ROWS = 200_000

#: :func:`largest_model` looks at this many shapes past the bisection's boundary (feasibility
#: is not monotone where a head count rules out tensor parallelism).
_SCAN = 4


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _training(plan: Plan, what: str) -> None:
    if not plan.method.training:
        raise LlmplanError(f"{what} answers training plans; this plan's method.kind is {plan.method.kind!r}")
    if plan.method.tokens is None:
        raise LlmplanError(f"{what}: method.tokens is required (a count like \"2T\" or \"chinchilla\")")


def _gpu(plan: Plan, gpu_id: str | GPU | None, cat=None) -> GPU:
    from . import catalog as _catalog

    if gpu_id is None:
        return plan.cluster.gpu
    if isinstance(gpu_id, GPU):
        return gpu_id
    if gpu_id == plan.cluster.gpu.id:
        return plan.cluster.gpu
    return (cat or _catalog.default()).gpu(gpu_id)


def _on_gpu(plan: Plan, gpu: GPU) -> Plan:
    """``plan`` on ``gpu`` with dp left to the layout. Another GPU type takes its own
    catalog links (as search does) and drops the plan's ``[cost]``, whose prices are the
    plan GPU's."""
    from .sweep import unchecked_evolve

    same = gpu.id == plan.cluster.gpu.id
    cluster = attrs.evolve(
        plan.cluster,
        gpu=gpu,
        intra_node=plan.cluster.intra_node if same else None,
        inter_node=plan.cluster.inter_node if same else None,
    )
    return unchecked_evolve(plan, cluster=cluster, parallelism=attrs.evolve(plan.parallelism, dp="auto"), cost=plan.cost if same else None)


def _batch_sequences(plan: Plan) -> int:
    """Sequences per step as the sweep resolves them (``global_batch`` or tokens ÷ seq_len)."""
    meth = plan.method
    if meth.global_batch is not None:
        return int(meth.global_batch)
    if meth.global_batch_tokens is not None:
        return max(1, round(meth.global_batch_tokens / meth.seq_len))
    return 1


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def candidate_counts(plan: Plan, low: int, high: int, *, whole_nodes: bool = True) -> list[int]:
    """GPU counts in ``[low, high]`` that some layout of the search space can use.

    ``N = tp·pp·cp·dp`` with tp, pp, cp from :func:`llmplan.search.layout_space` and dp a
    divisor of the global batch in sequences; with ``whole_nodes``, counts above one
    node are multiples of the node size.
    """
    from .search import layout_space

    low, high = max(1, int(low)), int(high)
    if high < low:
        return []
    axes = layout_space(plan, [high])
    shards = {t * p * c for t in axes["tp"] for p in axes["pp"] for c in axes["cp"]}
    per_node = plan.cluster.per_node
    out = set()
    for dp in _divisors(_batch_sequences(plan)):
        for k in shards:
            n = k * dp
            if low <= n <= high and (not whole_nodes or n <= per_node or n % per_node == 0):
                out.add(n)
    return sorted(out)


def _scan(base: Plan, counts: Sequence[int], deadline_seconds: float | None, *, stop_at_first: bool, unsupported: str = "drop"):
    """Evaluate every layout at ``counts`` (ascending, in chunks).

    Returns ``(per_count, evaluated)``: per count with a layout that fits (and meets the
    deadline), ``{"seconds": fastest total seconds, "gpu_hours": fewest GPU-hours}``.
    Layouts the usual frameworks do not run (:data:`llmplan.search.UNSUPPORTED`: ZeRO-2/3
    with pipeline stages, DualPipe with too few micro-batches …) do not count: an answer
    must be a layout a team can launch, the same set ``_best_report`` then ranks
    (``unsupported="rank"`` counts them too).
    """
    from .search import layout_space, unsupported_mask
    from .sweep import sweep

    per_count: dict[int, dict[str, float]] = {}
    evaluated = 0
    if not counts:
        return per_count, evaluated
    axes = layout_space(base, [max(counts)])
    rows = math.prod(len(v) for k, v in axes.items() if k != "gpus")  # layouts per count (upper bound)
    step = max(1, min(_CHUNK, _ROWS // rows))
    for i in range(0, len(counts), step):
        chunk = list(counts[i : i + step])
        sw = sweep(base, **layout_space(base, chunk))
        evaluated += len(sw)
        ok = sw.fits & ~unsupported_mask(base, sw.layout) if unsupported == "drop" else sw.fits.copy()
        secs = sw.results["time.total_seconds"]
        if deadline_seconds is not None:
            ok &= secs <= deadline_seconds
        hours = sw.results["time.gpu_hours"]
        g = sw.layout["gpus"]
        for n in chunk:
            sel = ok & (g == n)
            if sel.any():
                per_count[n] = {"seconds": float(secs[sel].min()), "gpu_hours": float(hours[sel].min())}
        if stop_at_first and per_count:
            break
    return per_count, evaluated


def _lower_bound(base: Plan, deadline_seconds: float) -> int:
    """GPUs below which no layout can finish by the deadline: run FLOPs ÷ (best peak × deadline).

    Every step time is at least its FLOPs over ``N × peak`` (η ≤ 1); ``min(model,
    hardware)`` FLOPs and the highest peak of the GPU keep the bound safe; 10 % slack.
    """
    from .sweep import sweep

    one = sweep(base, tp=[1], pp=[1], cp=[1], ep=[1], micro_batch=[1], gpus=[1], pp_schedule=["1f1b"])
    flops = min(float(one.results["flops.total"][0]), float(one.results["flops.hardware_total"][0]))
    peak = max(base.cluster.gpu.peak.values())
    return max(1, math.floor(0.9 * flops / (peak * deadline_seconds)))


#: What the inverse questions do with layouts the usual frameworks do not run
#: (:data:`llmplan.search.UNSUPPORTED`): leave them out (default) or rank them with the others.
INVERSE_UNSUPPORTED = ("drop", "rank")


def _check_unsupported(unsupported: str) -> None:
    if unsupported not in INVERSE_UNSUPPORTED:
        raise LlmplanError(f"unsupported={unsupported!r} is not allowed (allowed: {', '.join(INVERSE_UNSUPPORTED)})")


def _best_report(base: Plan, gpus: int, deadline_seconds: float | None, objective: str, unsupported: str = "drop") -> dict[str, Any] | None:
    from .search import search

    res = search(base, gpus=gpus, objective=objective, top=1, deadline_seconds=deadline_seconds, unsupported=unsupported)
    return res["layouts"][0] if res["layouts"] else None


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "gpu": report["cluster"]["gpu"],
        "gpus": report["cluster"]["gpus"],
        "days": report["time"]["days"],
        "gpu_hours": report["time"]["gpu_hours"],
        "mfu": report["time"]["mfu"],
        "memory_per_gpu": report["memory"]["per_gpu"]["total"],
        "parallelism": report["parallelism"],
    }


# ---------------------------------------------------------------------------------------
# (a) fewest GPUs
# ---------------------------------------------------------------------------------------


def fewest_gpus(
    plan: Plan,
    deadline_seconds: float,
    gpu_id: str | None = None,
    *,
    max_gpus: int = 65536,
    whole_nodes: bool = True,
    unsupported: str = "drop",
) -> dict[str, Any]:
    """The fewest GPUs of one type (default: the plan's) that finish ``plan`` by the deadline.

    Candidate counts (:func:`candidate_counts`) are tried in ascending order from a
    lower bound (run FLOPs ÷ (peak × deadline)), every layout of each count evaluated;
    the first count with a layout that fits in memory and finishes in time is the
    answer, and its fastest layout is re-estimated exactly. Layouts the usual frameworks
    do not run (:data:`llmplan.search.UNSUPPORTED`) are left out unless
    ``unsupported="rank"``; the answer's ``layout["unsupported"]`` lists why it is one.

    Returns:
        ``{"gpu", "gpus", "deadline_seconds", "days", "gpu_hours", "layout": <search
        report>, "lower_bound", "counts_tried", "evaluated", "notes"}``; ``gpus`` and
        ``layout`` are ``None`` when nothing up to ``max_gpus`` finishes in time (``reason``
        says so); ``notes``: what the searched layouts leave out of the plan's own
        (:func:`llmplan.search.layout_notes`).
    """
    from .search import layout_notes

    _training(plan, "fewest_gpus")
    _check_unsupported(unsupported)
    if not deadline_seconds > 0:
        raise LlmplanError(f"deadline {deadline_seconds!r} is not a positive number of seconds")
    gpu = _gpu(plan, gpu_id)
    base = _on_gpu(plan, gpu)
    bound = _lower_bound(base, deadline_seconds)
    counts = candidate_counts(base, bound, max_gpus, whole_nodes=whole_nodes)
    per_count, evaluated = _scan(base, counts, deadline_seconds, stop_at_first=True, unsupported=unsupported)
    out: dict[str, Any] = {
        "gpu": gpu.id,
        "gpus": None,
        "deadline_seconds": float(deadline_seconds),
        "deadline_days": deadline_seconds / 86400,
        "days": None,
        "gpu_hours": None,
        "layout": None,
        "lower_bound": bound,
        "counts_tried": [n for n in counts if n <= min(per_count, default=max_gpus)],
        "evaluated": evaluated,
        "notes": layout_notes(plan),
    }
    if not per_count:
        out["reason"] = f"no layout of up to {max_gpus:,} {gpu.id} GPUs fits in memory and finishes in {deadline_seconds / 86400:,.4g} days"
        return out
    n = min(per_count)
    rep = _best_report(base, n, deadline_seconds, "time", unsupported)
    out.update(gpus=n, days=rep["time"]["days"], gpu_hours=rep["time"]["gpu_hours"], layout=rep)
    return out


# ---------------------------------------------------------------------------------------
# (b) cheapest option
# ---------------------------------------------------------------------------------------


def _money(value: Any, what: str) -> tuple[float, str]:
    from . import units

    if isinstance(value, tuple):
        return float(value[0]), str(value[1])
    return units.parse_money(value, what=what)


def _energy_price(value: Any) -> tuple[float, str] | None:
    if value is None or isinstance(value, tuple):
        return value
    # the plan file's own reader of "30 JPY/kWh"
    from .serialize import _energy_price as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise LlmplanError(str(exc)) from None


def _report_currency(plan: Plan) -> str:
    cost = plan.cost
    if cost is None:
        return "USD"
    first = cost.gpu_hour or (cost.on_prem.gpu_price if cost.on_prem else None)
    return cost.currency or (first[1] if first else "USD")


def _converter(currency: str, rates: Mapping[str, float]):
    table = {"USD": 1.0, **rates}

    def conv(amount: float, cur: str) -> float | None:
        if cur == currency:
            return float(amount)
        if cur not in table or currency not in table:
            return None
        return float(amount) / table[cur] * table[currency]

    return conv


def _catalog_prices(cat, gpu_id: str, kind: str, policy: str) -> list:
    found = cat.prices_for(gpu_id, kind)
    if policy == "latest" and found:
        newest = max(p.date for p in found)
        found = [p for p in found if p.date == newest]
    return found


def cheapest(
    plan: Plan,
    deadline_seconds: float,
    gpu_ids: Sequence[str] | None = None,
    *,
    prices: str = "latest",
    rates: Mapping[str, float] | None = None,
    power_price: Any = None,
    max_gpus: int | None = None,
    whole_nodes: bool = True,
    catalog=None,
    unsupported: str = "drop",
) -> dict[str, Any]:
    """The cheapest way to finish ``plan`` by the deadline: GPU type × cloud or on-prem.

    For each GPU type (default: the plan's) the layout with the fewest GPU-hours that
    fits and finishes in time is found over every candidate count from the fewest that
    meets the deadline up to ``max_gpus`` (default 8× that count). Then each price option
    is applied to it:

    * **cloud** — GPU-hours × price per GPU-hour, for the catalog's cloud prices of the
      type (``prices = "latest"``: the most recent date; ``"all"``: every one) and the
      plan's own ``[cost] gpu_hour`` for the plan's GPU;
    * **on-prem** — purchase × N × run hours ÷ (12·Y·H_month) + TDP × N × PUE × hours ×
      price/kWh (:mod:`llmplan.formulas.money`), for the catalog's purchase prices and the
      plan's ``[cost.on_prem] gpu_price``. Y, PUE, H_month and the electricity price come
      from the plan's ``[cost.on_prem]`` if present, else :data:`DEFAULT_ON_PREM`
      (no electricity price unless ``power_price`` is given: a note says so).

    Layouts the usual frameworks do not run are left out unless ``unsupported="rank"``
    (as :func:`fewest_gpus`).

    Money is reported in the plan's cost currency (USD without a ``[cost]`` table).
    Prices in another currency are converted only with the plan's ``[cost] rates``
    (units per 1 USD) and ``rates``; a price that cannot be converted is left out and
    listed in ``skipped`` with the reason.

    Returns:
        ``{"currency", "deadline_seconds", "options": [...cheapest first], "cheapest",
        "per_gpu": {gpu: layout summary with its full search "report", or None},
        "skipped": [...], "assumptions",
        "notes"}``; each option has ``gpu, option ("cloud" | "on-prem"), price, gpus,
        days, gpu_hours, energy_kwh, cost`` (and ``capex``, ``electricity`` on-prem).
    """
    from . import catalog as _catalog

    _training(plan, "cheapest")
    _check_unsupported(unsupported)
    if prices not in PRICE_POLICIES:
        raise LlmplanError(f"prices {prices!r} is not allowed (allowed: {', '.join(PRICE_POLICIES)})")
    if not deadline_seconds > 0:
        raise LlmplanError(f"deadline {deadline_seconds!r} is not a positive number of seconds")
    cat = catalog or _catalog.default()
    ids = list(gpu_ids) if gpu_ids else [plan.cluster.gpu.id]
    currency = _report_currency(plan)
    all_rates = {**(plan.cost.rates if plan.cost is not None else {}), **(rates or {})}
    conv = _converter(currency, all_rates)
    op = plan.cost.on_prem if plan.cost is not None else None
    years = op.years if op else DEFAULT_ON_PREM["years"]
    pue = op.pue if op else DEFAULT_ON_PREM["pue"]
    h_month = op.hours_per_month if op else DEFAULT_ON_PREM["hours_per_month"]
    kwh_price_src = _energy_price(power_price) if power_price is not None else (op.power_price if op else None)
    from .search import layout_notes

    notes: list[str] = layout_notes(plan)
    skipped: list[dict[str, Any]] = []
    kwh_price = None
    if kwh_price_src is not None:
        kwh_price = conv(*kwh_price_src)
        if kwh_price is None:
            skipped.append({"gpu": None, "price": f"{kwh_price_src[0]} {kwh_price_src[1]}/kWh", "reason": _no_rate(kwh_price_src[1], currency)})
            notes.append("electricity not priced (its currency cannot be converted)")
    else:
        notes.append("electricity not priced: give [cost.on_prem] power_price (or power_price=) to include it")
    options: list[dict[str, Any]] = []
    per_gpu: dict[str, Any] = {}
    evaluated = 0
    for gid in ids:
        try:
            gpu = _gpu(plan, gid, cat)
            base = _on_gpu(plan, gpu)
            bound = _lower_bound(base, deadline_seconds)
            first, n_eval = _scan(base, candidate_counts(base, bound, max_gpus or 65536, whole_nodes=whole_nodes), deadline_seconds, stop_at_first=True, unsupported=unsupported)
            evaluated += n_eval
            if not first:
                per_gpu[gid] = None
                skipped.append({"gpu": gid, "price": None, "reason": f"no layout finishes in {deadline_seconds / 86400:,.4g} days"})
                continue
            n0 = min(first)
            upper = max_gpus or 8 * n0
            rest, n_eval = _scan(base, [n for n in candidate_counts(base, n0, upper, whole_nodes=whole_nodes) if n != n0], deadline_seconds, stop_at_first=False, unsupported=unsupported)
            evaluated += n_eval
            per_count = {n0: first[n0], **rest}
            n = min(per_count, key=lambda k: (per_count[k]["gpu_hours"], k))
            rep = _best_report(base, n, deadline_seconds, "cost", unsupported)
        except LlmplanError as exc:
            per_gpu[gid] = None
            skipped.append({"gpu": gid, "price": None, "reason": str(exc)})
            continue
        summary = _summary(rep)
        summary["fewest_gpus"] = n0
        summary["report"] = rep
        per_gpu[gid] = summary
        gh = rep["time"]["gpu_hours"]
        kwh = gpu.tdp * gh * pue / 1000
        quotes: list[tuple[str, Any, tuple[float, str]]] = []
        for p in _catalog_prices(cat, gpu.id, "cloud", prices):
            quotes.append(("cloud", _price_info(p), p.money))
        for p in _catalog_prices(cat, gpu.id, "purchase", prices):
            quotes.append(("on-prem", _price_info(p), p.money))
        if plan.cost is not None and gpu.id == plan.cluster.gpu.id:
            if plan.cost.gpu_hour is not None:
                quotes.append(("cloud", {"id": "plan", "amount": plan.cost.gpu_hour[0], "currency": plan.cost.gpu_hour[1], "per": "gpu-hour", "date": None, "source": "the plan's [cost] gpu_hour"}, plan.cost.gpu_hour))
            if op is not None:
                quotes.append(("on-prem", {"id": "plan", "amount": op.gpu_price[0], "currency": op.gpu_price[1], "per": "gpu", "date": None, "source": "the plan's [cost.on_prem] gpu_price"}, op.gpu_price))
        if not quotes:
            skipped.append({"gpu": gid, "price": None, "reason": "no catalog price for this GPU"})
        for option, info, money in quotes:
            amount = conv(*money)
            if amount is None:
                skipped.append({"gpu": gid, "price": info["id"], "reason": _no_rate(money[1], currency)})
                continue
            row = {
                "gpu": gid,
                "option": option,
                "price": info,
                "price_in_currency": amount,
                "gpus": rep["cluster"]["gpus"],
                "days": rep["time"]["days"],
                "gpu_hours": gh,
                "energy_kwh": kwh,
            }
            if option == "cloud":
                row["cost"] = gh * amount
            else:
                capex = amount * gh / (12 * years * h_month)
                power = kwh * kwh_price if kwh_price is not None else 0.0
                row.update(capex=capex, electricity=power if kwh_price is not None else None, cost=capex + power)
            options.append(row)
    options.sort(key=lambda r: (r["cost"], r["days"]))
    return {
        "currency": currency,
        "deadline_seconds": float(deadline_seconds),
        "deadline_days": deadline_seconds / 86400,
        "options": options,
        "cheapest": options[0] if options else None,
        "per_gpu": per_gpu,
        "skipped": skipped,
        "assumptions": {
            "years": years,
            "pue": pue,
            "hours_per_month": h_month,
            "power_price": None if kwh_price is None else kwh_price,
            "rates_per_usd": {"USD": 1.0, **all_rates},
            "prices": prices,
        },
        "notes": notes,
        "evaluated": evaluated,
    }


def _no_rate(cur: str, currency: str) -> str:
    return f"price in {cur} and no rate to convert it to {currency}: give [cost] rates = {{ {cur if cur != 'USD' else currency} = … }} (units per 1 USD)"


def _price_info(p) -> dict[str, Any]:
    return {"id": p.id, "amount": p.amount, "currency": p.currency, "per": p.per, "date": p.date, "source": p.source}


# ---------------------------------------------------------------------------------------
# (c) largest Chinchilla-optimal model for a budget
# ---------------------------------------------------------------------------------------

_GPU_TIME = re.compile(r"\s*(?P<num>[0-9][0-9_,]*(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*(?P<prefix>[kMGT]?)\s*GPU[- ]?(?P<unit>days?|hours?|h|d)\s*")


def parse_budget(value: Any) -> dict[str, Any]:
    """``"1M USD"`` → money; ``"50k GPU-days"`` / ``"1.2M GPU-hours"`` → GPU-hours.

    Returns ``{"kind": "money", "amount", "currency"}`` or ``{"kind": "gpu_hours", "gpu_hours"}``.
    A tuple ``(amount, currency)`` is money.
    """
    from . import units

    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        m = _GPU_TIME.fullmatch(value)
        if m:
            number = units.parse(m["num"] + m["prefix"], "count", what="budget")
            hours = number * (24 if m["unit"].startswith("d") else 1)
            if not hours > 0:
                raise LlmplanError(f"budget {value!r} is not positive")
            return {"kind": "gpu_hours", "gpu_hours": float(hours), "text": value}
    amount, currency = _money(value, "budget")
    if not amount > 0:
        raise LlmplanError(f"budget {value!r} is not positive")
    return {"kind": "money", "amount": float(amount), "currency": currency, "text": value if isinstance(value, str) else f"{amount} {currency}"}


def largest_model(
    budget: Any,
    gpu_id: str,
    gpus: int,
    *,
    gpu_hour: Any = None,
    rates: Mapping[str, float] | None = None,
    deadline_seconds: float | None = None,
    tokens_per_param: float = 20,
    seq_len: int = 4096,
    global_batch_tokens: int | None = None,
    precision=None,
    vocab: int = 32000,
    catalog=None,
    rel_tol: float = 0.01,
    unsupported: str = "drop",
) -> dict[str, Any]:
    """The largest Chinchilla-optimal Llama-shaped model ``budget`` pre-trains on ``gpus`` × ``gpu_id``.

    Models are :func:`llmplan.capabilities.llama_like` shapes trained on
    ``tokens_per_param`` (20, Hoffmann et al. 2022) tokens per parameter; each is
    evaluated with its fastest layout on the cluster (:func:`llmplan.search.search`,
    which at a fixed GPU count is also its fewest GPU-hours). A money budget becomes
    GPU-hours with ``gpu_hour`` (``"2 USD"``) or, by default, the GPU's most recent
    catalog cloud price (the lowest if several share the date), converted with
    ``rates`` (units per 1 USD) when its currency differs.

    Feasible = some layout fits in memory, costs ≤ the budget (and finishes by
    ``deadline_seconds``). Cost grows with the model (compute ∝ N², 120·N² FLOPs) and so
    does memory, so feasibility is nearly monotone in N: the answer is found by bisection
    on log N, down to adjacent shapes (hidden sizes 128 apart) or ``rel_tol``, and then the
    next :data:`_SCAN` shapes past the boundary are tried too, since a shape whose head
    count rules out tensor parallelism (69 = 3·23 heads) can miss a budget the next one
    makes. Layouts the
    usual frameworks do not run are left out unless ``unsupported="rank"``.

    Returns:
        ``{"model": {name, params, hidden, layers, heads, ffn, vocab}, "tokens", "days",
        "gpu_hours", "cost", "budget", "budget_gpu_hours", "price", "layout",
        "next_larger": {params, hidden, reason}, "probes"}``; ``model`` is ``None`` when
        even the smallest shape does not fit the budget.
    """
    from . import catalog as _catalog
    from .capabilities import PRETRAIN_BATCH_TOKENS, llama_like
    from .estimate import param_counts
    from .plan import Cluster, Method

    _check_unsupported(unsupported)
    cat = catalog or _catalog.default()
    gpu = cat.gpu(gpu_id)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise LlmplanError(f"gpus {gpus!r} is not a positive whole number")
    b = parse_budget(budget)
    price = None
    if b["kind"] == "money":
        if gpu_hour is not None:
            amount, cur = _money(gpu_hour, "gpu_hour")
            price = {"id": "given", "amount": amount, "currency": cur, "per": "gpu-hour", "date": None, "source": "gpu_hour argument"}
        else:
            found = _catalog_prices(cat, gpu.id, "cloud", "latest")
            if not found:
                raise LlmplanError(f"no catalog cloud price for {gpu.id}: give gpu_hour (e.g. --gpu-hour \"2 USD\")")
            price = _price_info(min(found, key=lambda p: p.amount))
        per_hour = _converter(b["currency"], rates or {})(price["amount"], price["currency"])
        if per_hour is None:
            raise LlmplanError(_no_rate(price["currency"], b["currency"]).replace("[cost] rates", "rates"))
        price["in_budget_currency"] = per_hour
        budget_hours = b["amount"] / per_hour
    else:
        budget_hours = b["gpu_hours"]
    batch_tokens = global_batch_tokens or PRETRAIN_BATCH_TOKENS
    cluster = Cluster(gpu=gpu, gpus=None)
    cache: dict[int, tuple[bool, dict[str, Any]]] = {}

    def probe(target: float):
        model = llama_like(target, vocab=vocab)
        if model.hidden in cache:
            return model, *cache[model.hidden]
        n = param_counts(model).total
        method = Method(kind="pretrain", tokens=round(tokens_per_param * n), seq_len=seq_len, global_batch_tokens=batch_tokens)
        kw = {} if precision is None else {"precision": precision}
        plan = Plan(model=model, method=method, cluster=cluster, **kw)
        rep = _best_report(plan, gpus, deadline_seconds, "time", unsupported)
        info: dict[str, Any] = {"params": n, "hidden": model.hidden}
        if rep is None:
            ok = False
            info["reason"] = (
                f"no layout of {gpus:,} {gpu.id} fits in memory" + (" and finishes by the deadline" if deadline_seconds else "")
                + f" (a layout needs {gpus:,} = tp·pp·cp·dp with dp dividing the {_batch_sequences(plan):,}-sequence batch)"
            )
        else:
            ok = rep["time"]["gpu_hours"] <= budget_hours
            info["report"] = rep
            if not ok:
                info["reason"] = f"needs {rep['time']['gpu_hours']:,.0f} GPU-hours, over the budget's {budget_hours:,.0f}"
        cache[model.hidden] = (ok, info)
        return model, ok, info

    # bracket: compute-optimal size from C = 120·N² at 40 % of the bf16 peak, ×/÷ 3
    peak = gpu.peak.get("bf16") or max(gpu.peak.values())
    guess = math.sqrt(budget_hours * 3600 * peak * 0.4 / (6 * tokens_per_param))
    smallest, biggest = llama_like(1.0, vocab=vocab), llama_like(1e16, vocab=vocab)
    n_min, n_max = param_counts(smallest).total, param_counts(biggest).total
    lo, hi = max(n_min, guess / 3), min(n_max, guess * 3)
    _, ok_lo, _ = probe(lo)
    while not ok_lo and lo > n_min:
        hi, lo = lo, max(n_min, lo / 10)
        _, ok_lo, _ = probe(lo)
    result: dict[str, Any] = {
        "gpu": gpu.id,
        "gpus": gpus,
        "budget": b,
        "budget_gpu_hours": budget_hours,
        "price": price,
        "tokens_per_param": tokens_per_param,
        "deadline_seconds": deadline_seconds,
    }
    if not ok_lo:
        _, _, info = probe(n_min)
        result.update(model=None, reason=f"even the smallest shape ({n_min / 1e9:.2f}B) does not fit: {info.get('reason')}", probes=len(cache))
        return result
    _, ok_hi, _ = probe(hi)
    while ok_hi and hi < n_max:
        lo, hi = hi, min(n_max, hi * 10)
        _, ok_hi, _ = probe(hi)
    capped = ok_hi
    if capped:
        lo = hi
    while not capped:
        m_lo, m_hi = llama_like(lo, vocab=vocab), llama_like(hi, vocab=vocab)
        if m_hi.hidden - m_lo.hidden <= 128 or hi / lo <= 1 + rel_tol:
            break
        mid = math.sqrt(lo * hi)
        m_mid, ok, _ = probe(mid)
        if m_mid.hidden in (m_lo.hidden, m_hi.hidden):  # the target maps onto an end: step by shape
            mid = (param_counts(m_lo).total + param_counts(m_hi).total) / 2
            m_mid, ok, _ = probe(mid)
            if m_mid.hidden in (m_lo.hidden, m_hi.hidden):
                break
        if ok:
            lo = mid
        else:
            hi = mid
    if not capped:
        # Feasibility is not quite monotone in N: a shape whose head count has no small
        # factor (69 = 3·23 heads) cannot use tp 2, 4 or 8 and can miss the budget while
        # the next shape makes it. Look at the next _SCAN shapes past the boundary.
        from .capabilities import LLAMA_LIKE_HIDDEN, llama_like_params

        best_hidden, step = llama_like(lo, vocab=vocab).hidden, 1
        while step <= _SCAN and best_hidden + 128 * step <= LLAMA_LIKE_HIDDEN[1]:
            _, ok, _ = probe(llama_like_params(best_hidden + 128 * step, vocab))
            if ok:
                best_hidden, step = best_hidden + 128 * step, 1
            else:
                step += 1
        lo = llama_like_params(best_hidden, vocab)
        hi = llama_like_params(best_hidden + 128, vocab) if best_hidden + 128 <= LLAMA_LIKE_HIDDEN[1] else lo
    model, _, info = probe(lo)
    rep = info["report"]
    n = info["params"]
    result.update(
        model={"name": model.name, "params": n, "hidden": model.hidden, "layers": model.layers, "heads": model.heads, "ffn": model.ffn, "vocab": model.vocab},
        tokens=round(tokens_per_param * n),
        flops=rep["flops"]["total"],
        days=rep["time"]["days"],
        gpu_hours=rep["time"]["gpu_hours"],
        cost=rep["time"]["gpu_hours"] * price["in_budget_currency"] if price else None,
        layout=rep,
        probes=len(cache),
    )
    if capped:
        result["next_larger"] = None
        result["reason"] = "the largest llama_like shape fits the budget (the search is capped there)"
    else:
        _, _, nxt = probe(hi)
        result["next_larger"] = {"params": nxt["params"], "hidden": nxt["hidden"], "reason": nxt.get("reason")}
    return result


# ---------------------------------------------------------------------------------------
# (d) tokens in N days
# ---------------------------------------------------------------------------------------


def tokens_in(plan: Plan, days: float | str) -> dict[str, Any]:
    """Tokens ``plan``'s layout trains in ``days`` (a number, or a duration such as ``"6 weeks"``).

    Derivation (:mod:`llmplan.formulas.time`): ``T_total = (D / (B·s)) · T_step`` and
    ``T_step`` does not depend on the token count ``D`` (it is one optimizer step of
    ``B`` sequences of ``s`` tokens), so at a fixed layout time is proportional to
    tokens and ``D(T) = T · B · s / T_step``. ``tests/test_inverse.py`` checks that the
    plan with ``method.tokens = D(T)`` estimates to exactly ``T``.

    Returns:
        ``{"tokens", "steps", "days", "step_seconds", "tokens_per_step", "params",
        "tokens_per_param", "chinchilla_tokens", "fits"}``.
    """
    from . import symbols as S
    from . import units
    from .estimate import estimate

    _training(plan, "tokens_in")
    if isinstance(days, str):
        days = units.parse(days, "seconds", what="days") / 86400
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not days > 0:
        raise LlmplanError(f"days {days!r} is not a positive number")
    est = estimate(plan)
    step = float(est.value("time.step_seconds"))
    per_step = int(est.values[S.B]) * int(est.values[S.s])
    steps = days * 86400 / step
    tokens = steps * per_step
    n = est.params.active if plan.model.is_moe else est.params.total
    return {
        "tokens": tokens,
        "steps": steps,
        "whole_steps": math.floor(steps),
        "days": float(days),
        "step_seconds": step,
        "tokens_per_step": per_step,
        "gpus": plan.cluster.gpus,
        "gpu": plan.cluster.gpu.id,
        "params": n,
        "tokens_per_param": tokens / n,
        "chinchilla_tokens": 20 * n,
        "fits": est.fits,
        "warnings": [w for w in est.warnings if not w.startswith("does not fit")] + ([] if est.fits else ["the plan does not fit in memory"]),
    }


# ---------------------------------------------------------------------------------------
# CLI: llmplan ask …
# ---------------------------------------------------------------------------------------


def _seconds(text: str, what: str) -> float:
    from . import units

    return float(units.parse(text, "seconds", what=what))


def _rates(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        cur, eq, value = part.partition("=")
        if not eq or not re.fullmatch(r"[A-Z]{3}", cur.strip()):
            raise LlmplanError(f"--rates: {part!r} is not CUR=number (units per 1 USD), e.g. JPY=150")
        try:
            out[cur.strip()] = float(value)
        except ValueError:
            raise LlmplanError(f"--rates: {value!r} is not a number") from None
    return out


def _fmt_money(x: float | None, cur: str) -> str:
    return "—" if x is None else f"{x:,.0f} {cur}"


def _print_unsupported(report: dict[str, Any], indent: str = "  ") -> None:
    """One ``!`` line per reason the answer's layout is unsupported (``--unsupported rank``)."""
    for w in report.get("unsupported") or ():
        print(f"{indent}! unsupported by the usual frameworks: {w}")


def _layout_text(p: dict[str, Any]) -> str:
    from .search import recompute_label

    v = f" v{p['virtual_stages']}" if p.get("virtual_stages") else ""
    return f"tp {p['tp']} · pp {p['pp']}{v} · cp {p['cp']} · dp {p['dp']} · ZeRO-{p['zero']} · mb {p['micro_batch']} · recompute {recompute_label(p)}"


def _json_or_none(args, r: dict, key: str) -> int | None:
    """Print ``r`` as JSON (``--json``) or its reason when ``r[key]`` is empty; the exit status, else ``None``."""
    if args.json:
        print(json.dumps(r, indent=2, default=str))
        return 0 if r[key] else 3
    if r[key] is None:
        print(r["reason"])
        return 3
    return None


def _cmd_fewest(args) -> int:
    from . import load

    r = fewest_gpus(load(args.plan), _seconds(args.deadline, "--deadline"), args.gpu, max_gpus=args.max_gpus,
                    whole_nodes=not args.any_count, unsupported=args.unsupported)
    done = _json_or_none(args, r, "gpus")
    if done is not None:
        return done
    rep = r["layout"]
    print(f"fewest {r['gpu']} GPUs that finish in {r['deadline_days']:,.4g} days: {r['gpus']:,}")
    print(f"  time       {r['days']:,.2f} days   ({r['gpu_hours']:,.0f} GPU-hours, MFU {rep['time']['mfu']:.1%})")
    print(f"  layout     {_layout_text(rep['parallelism'])}")
    _print_unsupported(rep)
    print(f"  memory     {rep['memory']['per_gpu']['total'] / 2**30:,.1f} of {rep['memory']['capacity'] / 2**30:,.1f} GiB")
    if rep["cost"]["total"] is not None:
        print(f"  cost       {_fmt_money(rep['cost']['total'], rep['cost']['currency'])} (the plan's [cost])")
    print(f"  searched   counts {r['counts_tried'][0]:,} … {r['counts_tried'][-1]:,} ({len(r['counts_tried'])} candidates from the bound {r['lower_bound']:,}); {r['evaluated']:,} layouts")
    for note in r["notes"]:
        print(f"  note: {note}")
    return 0


def _cmd_cheapest(args) -> int:
    from . import load

    r = cheapest(
        load(args.plan),
        _seconds(args.deadline, "--deadline"),
        args.gpu.split(",") if args.gpu else None,
        prices=args.prices,
        rates=_rates(args.rates),
        power_price=args.power_price,
        max_gpus=args.max_gpus,
        unsupported=args.unsupported,
    )
    if args.json:
        print(json.dumps(r, indent=2, default=str))
        return 0 if r["options"] else 3
    cur = r["currency"]
    print(f"cheapest way to finish in {r['deadline_days']:,.4g} days ({cur})")
    if r["options"]:
        print(f"  {'#':>2}  {'gpu':<15}{'option':<9}{'price':>22}  {'price id':<36}{'gpus':>6}{'days':>8}{'GPU-hours':>12}{'cost':>16}")
        for i, o in enumerate(r["options"], 1):
            pr = o["price"]
            unit = "/GPU-h" if o["option"] == "cloud" else "/GPU"
            print(
                f"  {i:>2}  {o['gpu']:<15}{o['option']:<9}{pr['amount']:>14,.2f} {pr['currency']}{unit:<6}  {pr['id']:<36}"
                f"{o['gpus']:>6}{o['days']:>8.1f}{o['gpu_hours']:>12,.0f}{_fmt_money(o['cost'], cur):>16}"
            )
    else:
        print("  no option: see skipped")
    for gid, s in r["per_gpu"].items():
        if s:
            print(f"  {gid}: {s['gpus']:,} GPUs (fewest in time: {s['fewest_gpus']:,}), {_layout_text(s['parallelism'])}")
            _print_unsupported(s["report"], indent="    ")
    a = r["assumptions"]
    power = f"{a['power_price']:g} {cur}/kWh" if a["power_price"] is not None else "not priced"
    print(f"  on-prem: {a['years']:g} years, {a['hours_per_month']:g} h/month, PUE {a['pue']:g}, electricity {power}")
    for s in r["skipped"]:
        what = " ".join(x for x in (s["gpu"], s["price"]) if x)
        print(f"  skipped {what}: {s['reason']}")
    for n in r["notes"]:
        print(f"  note: {n}")
    return 0 if r["options"] else 3


def _cmd_largest(args) -> int:
    r = largest_model(
        args.budget,
        args.gpu,
        args.gpus,
        gpu_hour=args.gpu_hour,
        rates=_rates(args.rates),
        deadline_seconds=_seconds(args.deadline, "--deadline") if args.deadline else None,
        tokens_per_param=args.tokens_per_param,
        unsupported=args.unsupported,
    )
    done = _json_or_none(args, r, "model")
    if done is not None:
        return done
    m, rep = r["model"], r["layout"]
    budget = r["budget"]
    print(f"largest Chinchilla-optimal model for {budget['text']} on {r['gpus']:,} × {r['gpu']}: {m['params'] / 1e9:,.1f}B parameters")
    print(f"  shape      hidden {m['hidden']:,}, {m['layers']} layers, {m['heads']} heads, ffn {m['ffn']:,}, vocab {m['vocab']:,} ({m['name']})")
    print(f"  tokens     {r['tokens'] / 1e9:,.0f}B ({r['tokens_per_param']:g} per parameter)")
    print(f"  time       {r['days']:,.1f} days, {r['gpu_hours']:,.0f} GPU-hours of {r['budget_gpu_hours']:,.0f}, MFU {rep['time']['mfu']:.1%}")
    if r["price"]:
        p = r["price"]
        print(f"  cost       {_fmt_money(r['cost'], budget['currency'])} at {p['amount']:g} {p['currency']}/GPU-hour ({p['id']})")
    print(f"  layout     {_layout_text(rep['parallelism'])}")
    _print_unsupported(rep)
    nxt = r.get("next_larger")
    if nxt:
        print(f"  next shape {nxt['params'] / 1e9:,.1f}B (hidden {nxt['hidden']:,}): {nxt['reason']}")
    print(f"  probes     {r['probes']} model sizes evaluated")
    return 0


def _cmd_tokens(args) -> int:
    from . import load

    r = tokens_in(load(args.plan), args.days)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
        return 0
    print(f"in {r['days']:,.4g} days on {r['gpus']:,} × {r['gpu']}: {r['tokens']:.4g} tokens ({r['tokens'] / 1e9:,.0f}B)")
    print(f"  steps      {r['steps']:,.0f} × {r['tokens_per_step']:,} tokens, {r['step_seconds']:,.3f} s each")
    print(f"  per param  {r['tokens_per_param']:,.1f} tokens (Chinchilla: 20 → {r['chinchilla_tokens'] / 1e9:,.0f}B)")
    for w in r["warnings"]:
        print(f"  warning: {w}")
    return 0


def _unsupported_arg(p) -> None:
    p.add_argument("--unsupported", choices=list(INVERSE_UNSUPPORTED), default="drop",
                   help="layouts the usual frameworks do not run (ZeRO-2/3 with PP …): leave out (default) or rank with the others")


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``llmplan ask fewest-gpus|cheapest|largest-model|tokens`` on argparse subparsers."""
    ask = subparsers.add_parser("ask", help="inverse questions: fewest GPUs, cheapest option, largest model, tokens in N days")
    sub = ask.add_subparsers(dest="question", required=True)
    p = sub.add_parser("fewest-gpus", help="the fewest GPUs that finish the plan by a deadline")
    p.add_argument("plan")
    p.add_argument("--deadline", required=True, help='e.g. "30 days"')
    p.add_argument("--gpu", help="catalog GPU id (default: the plan's)")
    p.add_argument("--max-gpus", type=int, default=65536, help="give up above this count")
    p.add_argument("--any-count", action="store_true", help="also counts that are not whole nodes")
    _unsupported_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_fewest)
    p = sub.add_parser("cheapest", help="the cheapest GPU type and cloud / on-prem option under a deadline")
    p.add_argument("plan")
    p.add_argument("--deadline", required=True, help='e.g. "60 days"')
    p.add_argument("--gpu", help="comma-separated catalog GPU ids (default: the plan's)")
    p.add_argument("--prices", choices=list(PRICE_POLICIES), default="latest", help="catalog prices compared (default: the most recent per GPU and kind)")
    p.add_argument("--rates", help="currency rates per 1 USD added to the plan's, e.g. JPY=150")
    p.add_argument("--power-price", help='electricity for on-prem, e.g. "0.12 USD/kWh" (default: the plan\'s, else not priced)')
    p.add_argument("--max-gpus", type=int, help="largest count tried (default: 8× the fewest that meets the deadline)")
    _unsupported_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_cheapest)
    p = sub.add_parser("largest-model", help="the largest Chinchilla-optimal model a budget trains")
    p.add_argument("--budget", required=True, help='money ("1M USD") or GPU time ("50k GPU-days", "1M GPU-hours")')
    p.add_argument("--gpu", required=True, help="catalog GPU id")
    p.add_argument("--gpus", required=True, type=int, help="GPUs in the cluster")
    p.add_argument("--gpu-hour", help='price per GPU-hour (default: the latest catalog cloud price)')
    p.add_argument("--rates", help="currency rates per 1 USD, e.g. JPY=150")
    p.add_argument("--deadline", help="also finish within, e.g. \"90 days\"")
    p.add_argument("--tokens-per-param", type=float, default=20.0)
    _unsupported_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_largest)
    p = sub.add_parser("tokens", help="tokens the plan's layout trains in N days")
    p.add_argument("plan")
    p.add_argument("--days", required=True, type=float)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_tokens)
    return ask
