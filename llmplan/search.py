"""Layout search: every valid layout of a plan, ranked, with the Pareto front.

The space: tp (divisors of heads), pp (1 … layers, powers of two and divisors of
layers), the pipeline schedule (1F1B, interleaved with 2 or 4 virtual stages,
DualPipe for MoE training), cp (long sequences), ep (divisors of the experts),
ZeRO stage, micro-batch, recompute, offload, and — where the plan leaves them
free — the GPU count and type. Each GPU type's space is evaluated by
:func:`llmplan.sweep.sweep` (vectorised, only the layouts that fit reach the time
formulas); the best ``top`` layouts are then re-estimated exactly and returned as
full reports.

Layouts that the usual frameworks do not run (:data:`UNSUPPORTED`: ZeRO-2/3 with
pipeline parallelism, DualPipe with fewer than 2·pp micro-batches, selective
recomputation under ``framework = "hf"``) rank after every other layout by default
(``unsupported="last"``), or are left out (``"drop"``) or ranked with the others
(``"rank"``).
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from . import symbols as S
from .errors import LlmplanError
from .model import divisors
from .plan import DUALPIPE_COMM_SMS, Cost, Parallelism, Plan
from .sweep import sweep, unchecked_evolve

__all__ = [
    "OBJECTIVES",
    "POLICIES",
    "UNSUPPORTED",
    "gpu_cost",
    "layout_notes",
    "layout_space",
    "fewest_recomputed_layers",
    "pareto_front",
    "pipeline_schedules",
    "search",
    "unsupported_mask",
    "unsupported_warnings",
]

OBJECTIVES = ("time", "cost", "gpus")

#: What ``unsupported=`` does with the layouts of :data:`UNSUPPORTED`.
POLICIES = ("last", "drop", "rank")

#: The layout warnings of :func:`llmplan.checks.plan_warnings` that mark a layout the usual
#: frameworks do not run (or run otherwise than priced), by the start of their text:
#: ZeRO-2/3 with pp > 1 (Megatron-LM and DeepSpeed allow only ZeRO-1 with PP), DualPipe with
#: fewer than 2·pp micro-batches (refused by deepseek-ai/DualPipe; its bubble formula assumes
#: the full steady phase), the interleaved schedule with fewer micro-batches than stages
#: (refused by Megatron-Core), selective recomputation under ``framework = "hf"`` (transformers
#: has none). Other warnings (uneven stages, tp beyond the NVLink domain, replicated KV heads,
#: routing groups across nodes) are priced by the estimate and do not change the ranking.
UNSUPPORTED = (
    "parallelism.zero = ",
    'parallelism.pp_schedule = "dualpipe" with ',
    'parallelism.pp_schedule = "interleaved" with ',
    'parallelism.framework = "hf" with recompute = "selective"',
)


def recompute_label(par: dict[str, Any]) -> str:
    """A searched layout's recomputation in one word: ``none``, ``selective``, ``full``, or
    ``full(N)`` for full recomputation of the first ``N`` layers of each model chunk
    (``recompute_layers``)."""
    n = par.get("recompute_layers")
    return f"{par['recompute']}({n})" if n else par["recompute"]


def _pow2_upto(n: int) -> list[int]:
    out, x = [], 1
    while x <= n:
        out.append(x)
        x *= 2
    return out


def layout_space(plan: Plan, gpus: Sequence[int]) -> dict[str, list]:
    """The axes searched for ``plan`` (see the module docstring)."""
    model, meth = plan.model, plan.method
    max_gpus = max(gpus)
    tp = [d for d in divisors(model.heads) if d <= min(max_gpus, 64)]
    pp = sorted({p for p in _pow2_upto(min(model.layers, max_gpus, 128))} | {d for d in divisors(model.layers) if d <= min(max_gpus, 128)})
    cp = [c for c in (1, 2, 4, 8, 16) if meth.seq_len % (2 * c) == 0 and meth.seq_len // c >= 2048] or [1]
    ep = [e for e in divisors(model.moe.experts) if e <= max_gpus] if model.is_moe else [1]  # type: ignore[attr-defined]
    return {
        "tp": tp,
        "pp": pp,
        "cp": cp,
        "ep": ep,
        "micro_batch": [1, 2, 4, 8],
        "virtual_stages": [2, 4],
        "gpus": list(gpus),
        "zero": [0, 2, 3] if plan.parallelism.sharding == "fsdp" else [0, 1, 2, 3],  # FSDP has no ZeRO-1
        "recompute": ["none", "selective", "full"],
        # full recomputation of every layer, or of the first 1, 2, 4, … of each model chunk
        # (Megatron's block method): the fewest that fit trade memory for the least compute
        "recompute_layers": [None] + _pow2_upto(max(1, model.layers // 2)),
        "pp_schedule": pipeline_schedules(plan, pp),
        "offload": ["none"],
    }


def pipeline_schedules(plan: Plan, pp: Sequence[int]) -> list[str]:
    """The pipeline schedules searched: 1F1B and interleaved; DualPipe for training a MoE
    model (its point is to hide the expert-parallel all-to-all behind compute, DeepSeek-V3
    report §3.2.1) or when the plan asks for it (GPipe, never faster than 1F1B with more
    activations in memory, is not searched).

    DualPipe needs an even pp among ``pp`` and, on a GPU whose SM count is known, the
    plan's ``comm_sms`` (20 by default) below it; the sweep keeps the layouts with an even
    pp and an even number of micro-batches.
    """
    par, meth, gpu = plan.parallelism, plan.method, plan.cluster.gpu
    out = ["1f1b", "interleaved"]
    comm_sms = DUALPIPE_COMM_SMS if par.comm_sms is None else par.comm_sms
    dualpipe = meth.training and (
        (plan.model.is_moe and meth.kind != "rl") or par.pp_schedule == "dualpipe"
    ) and any(p % 2 == 0 for p in pp) and (gpu.sms is None or comm_sms < gpu.sms)
    if dualpipe:
        out.append("dualpipe")
    return out


def unsupported_mask(plan: Plan, layout: dict[str, np.ndarray]) -> np.ndarray:
    """Per layout of a sweep: whether :func:`llmplan.checks.plan_warnings` gives it one of the
    :data:`UNSUPPORTED` warnings (the same conditions, on arrays)."""
    par, meth = plan.parallelism, plan.method
    pp, zero = layout["pp"], layout["zero"].astype(int)
    out = (pp > 1) & (zero >= 2)
    if meth.training and meth.kind != "rl":
        out |= (layout["pp_schedule"] == "dualpipe") & (layout["micro_batches"] < 2 * pp)
        out |= (layout["pp_schedule"] == "interleaved") & (pp > 1) & (layout["micro_batches"] < pp)
    if par.framework == "hf":
        out |= layout["recompute"] == "selective"
    return out


def unsupported_warnings(warnings: Sequence[str]) -> list[str]:
    """The warnings of ``warnings`` that mark the layout as unsupported (:data:`UNSUPPORTED`)."""
    return [w for w in warnings if w.startswith(UNSUPPORTED)]


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``points`` (every column minimised)."""
    order = np.lexsort(points.T[::-1])
    front: list[int] = []
    for i in order:
        p = points[i]
        if not any(np.all(points[j] <= p) and np.any(points[j] < p) for j in front):
            front.append(i)
    return np.array(front, dtype=int)


def search(
    plan: Plan,
    *,
    objective: str = "time",
    top: int = 5,
    gpus: int | None = None,
    max_gpus: int | None = None,
    gpu_ids: Sequence[str] | None = None,
    deadline_seconds: float | None = None,
    budget: float | None = None,
    unsupported: str = "last",
) -> dict[str, Any]:
    """Search every layout; returns ``{"layouts": [...], "pareto": [...], "evaluated", "feasible",
    "unsupported", "seconds", "notes"}`` (``notes``: what the search left out of the plan,
    such as its uneven pipeline stages — every layout splits its layers evenly).

    ``objective``: ``time`` (total seconds), ``cost`` (cost.total, else GPU-hours) or
    ``gpus`` (fewest GPUs, then time). ``deadline_seconds`` and ``budget`` filter.
    ``unsupported``: what to do with the layouts of :data:`UNSUPPORTED` — rank them after
    every other layout (``"last"``), leave them out (``"drop"``) or rank them with the others
    (``"rank"``); the Pareto front is of the other layouts unless ``"rank"`` (or, under
    ``"last"``, unless every feasible layout is unsupported). Each layout's report lists its
    unsupported warnings under ``"unsupported"`` (a subset of ``"warnings"``).
    """
    from . import catalog
    from .estimate import estimate

    if objective not in OBJECTIVES:
        raise LlmplanError(f"objective {objective!r} is not allowed (allowed: {', '.join(OBJECTIVES)})")
    if unsupported not in POLICIES:
        raise LlmplanError(f"unsupported={unsupported!r} is not allowed (allowed: {', '.join(POLICIES)})")
    start = _time.perf_counter()
    if gpus is not None:
        counts = [gpus]
    else:
        per_node = plan.cluster.per_node
        limit = max_gpus or plan.cluster.gpus or 1024
        counts = sorted({g for g in _pow2_upto(limit)} | {per_node * k for k in _pow2_upto(max(1, limit // per_node))})
        counts = [g for g in counts if g <= limit]
    ids = list(gpu_ids) if gpu_ids else [plan.cluster.gpu.id]
    evaluated = feasible = flagged = 0
    candidates: list[tuple[dict, str, Plan]] = []
    notes = layout_notes(plan)
    gpus_of = {gid: catalog.gpu(gid) if gid != plan.cluster.gpu.id else plan.cluster.gpu for gid in ids}
    costs = {gid: gpu_cost(plan, gpu) for gid, gpu in gpus_of.items()}
    for gid, (_, note) in costs.items():
        if note:
            notes.append(note)
    # one unit for every GPU type: money when each type has its price, else GPU-hours
    priced = plan.cost is not None and all(c is not None for c, _ in costs.values())
    if plan.cost is not None and not priced and len(ids) > 1:
        notes.append("cost ranks by GPU-hours: not every GPU type has a price")
    for gid in ids:
        gpu = gpus_of[gid]
        cluster = attrs.evolve(
            plan.cluster,
            gpu=gpu,
            gpus=counts[0],
            intra_node=None if gid != plan.cluster.gpu.id else plan.cluster.intra_node,
            inter_node=None if gid != plan.cluster.gpu.id else plan.cluster.inter_node,
        )
        base = _free_plan(unchecked_evolve(plan, cost=costs[gid][0]), cluster)
        axes = layout_space(base, counts)
        sw = sweep(base, keep="fits", **axes)  # only the layouts that fit reach the time formulas
        evaluated += sw.enumerated
        ok = sw.fits.copy()
        res = sw.results
        if deadline_seconds is not None:
            ok &= res["time.total_seconds"] <= deadline_seconds
        cost_key = "cost.total" if priced and "cost.total" in res else "time.gpu_hours"
        if budget is not None:
            ok &= res[cost_key] <= budget
        bad = unsupported_mask(base, sw.layout)
        feasible += int(ok.sum())
        flagged += int((ok & bad).sum())
        if unsupported == "drop":
            ok &= ~bad
        idx = np.where(ok)[0]
        if idx.size == 0:
            continue
        t = res["time.total_seconds"][idx]
        c = res[cost_key][idx]
        g = sw.layout["gpus"][idx].astype(float)
        key = {"time": (t, c), "cost": (c, t), "gpus": (g, t)}[objective]
        last = bad[idx] if unsupported == "last" else np.zeros(idx.size, dtype=bool)
        best = idx[np.lexsort((key[1], key[0], last))[: max(top * 4, 20)]]
        clean = ~bad[idx]
        if unsupported != "rank" and clean.any():  # the front of the supported layouts
            idx, t, c, g = idx[clean], t[clean], c[clean], g[clean]
        near = np.argsort(t, kind="stable")[:20000]  # the front among the 20,000 fastest
        front = idx[near][pareto_front(np.stack([t, c, g], axis=1)[near])]
        for row in sw.rows(np.unique(np.concatenate([best, front]))):
            candidates.append((row, gid, base))
    reports = []
    for row, gid, base in candidates:
        p = _plan_for(base, row)
        p, est = fewest_recomputed_layers(p, estimate(p))
        rep = est.report()
        rep["parallelism"] = {k: getattr(p.parallelism, k) for k in ("tp", "pp", "cp", "ep", "zero", "micro_batch", "recompute", "recompute_layers", "pp_schedule", "virtual_stages", "offload")}
        rep["parallelism"]["comm_sms"] = p.parallelism.communication_sms if p.parallelism.pp_schedule == "dualpipe" else None
        rep["parallelism"]["dp"] = int(est.values[S.n_dp])
        rep["parallelism"]["sequence_parallel"] = p.parallelism.sp
        # the plan's TP overlap, in force where there is tensor parallelism with SP to overlap
        rep["parallelism"]["tp_comm_overlap"] = p.parallelism.tp_comm_overlap and p.parallelism.sp and p.parallelism.tp > 1
        rep["cluster"] = {"gpu": gid, "gpus": p.cluster.gpus}
        rep["unsupported"] = unsupported_warnings(rep["warnings"])
        reports.append(rep)

    def cost_of(r):
        return r["cost"]["total"] if priced and r["cost"]["total"] is not None else r["time"]["gpu_hours"]

    def score(r):
        key = {"time": (r["time"]["total_seconds"], cost_of(r)), "cost": (cost_of(r), r["time"]["total_seconds"]), "gpus": (r["cluster"]["gpus"], r["time"]["total_seconds"])}[objective]
        return (bool(r["unsupported"]) and unsupported == "last", *key)

    reports.sort(key=score)
    on_front = [r for r in reports if not r["unsupported"]] if unsupported != "rank" else reports
    on_front = on_front or reports
    pts = np.array([[r["time"]["total_seconds"], cost_of(r), r["cluster"]["gpus"]] for r in on_front]) if on_front else np.zeros((0, 3))
    front = [on_front[i] for i in pareto_front(pts)] if on_front else []
    seen, layouts = set(), []
    for r in reports:
        key = (r["cluster"]["gpu"], r["cluster"]["gpus"], tuple(sorted(r["parallelism"].items(), key=lambda kv: kv[0])))
        if key not in seen:
            seen.add(key)
            layouts.append(r)
    return {
        "layouts": layouts[:top],
        "pareto": front,
        "evaluated": evaluated,
        "feasible": feasible,
        "unsupported": {"policy": unsupported, "feasible": flagged},
        "seconds": _time.perf_counter() - start,
        "notes": notes,
    }


def layout_notes(plan: Plan) -> list[str]:
    """What every searched layout leaves out of ``plan``'s own layout: its uneven pipeline
    stages and its hybrid-sharding group (they belong to one ``pp`` and one ``dp``)."""
    notes = []
    if plan.parallelism.uneven_stages:
        notes.append("parallelism.first_stage_layers / last_stage_layers / account_for_*_in_pipeline_split are not "
                     "searched: every layout splits its layers evenly")
    if plan.parallelism.dp_shard is not None:
        notes.append("parallelism.dp_shard is not searched: every layout shards over its whole data-parallel group")
    return notes


def gpu_cost(plan: Plan, gpu) -> tuple[Cost | None, str | None]:
    """The plan's ``[cost]`` for another GPU type, and a note on where its prices come from.

    The plan's own prices are its GPU's. For another type the catalog's most recent cloud
    price per GPU-hour (the lowest of that date) replaces ``gpu_hour`` and its most recent
    purchase price ``[cost.on_prem] gpu_price``, converted to the plan's currency with its
    ``[cost] rates``; the other keys stay. ``(None, note)`` when a price is missing or
    cannot be converted.
    """
    from . import catalog
    from .inverse import _catalog_prices, _converter, _report_currency

    cost = plan.cost
    if cost is None or gpu.id == plan.cluster.gpu.id:
        return cost, None
    conv = _converter(_report_currency(plan), cost.rates)
    changes: dict[str, Any] = {}
    used = []
    for kind in ("cloud", "purchase"):
        if (cost.gpu_hour if kind == "cloud" else cost.on_prem) is None:
            continue
        found = [(conv(*p.money), p) for p in _catalog_prices(catalog.default(), gpu.id, kind, "latest")]
        found = [(amount, p) for amount, p in found if amount is not None]
        if not found:
            what = "cloud price per GPU-hour" if kind == "cloud" else "purchase price"
            return None, f"{gpu.id}: not priced — no catalog {what} convertible to {_report_currency(plan)} (the plan's [cost] is its own GPU's)"
        amount, p = min(found, key=lambda x: x[0])
        money = (amount, _report_currency(plan))
        if kind == "cloud":
            changes["gpu_hour"] = money
        else:
            changes["on_prem"] = attrs.evolve(cost.on_prem, gpu_price=money)
        used.append(f"{p.id} ({p.amount:,g} {p.currency} per {p.per}, {p.date})")
    return attrs.evolve(cost, **changes), f"{gpu.id}: priced at the catalog's " + ", ".join(used)


def _free_plan(plan: Plan, cluster) -> Plan:
    """``plan`` on ``cluster`` with dp left to the layout (layout rules apply per row); its
    searched ``recompute_layers`` counts are the block method's."""
    return unchecked_evolve(plan, cluster=cluster, parallelism=attrs.evolve(plan.parallelism, dp="auto", recompute_method="block"))


def fewest_recomputed_layers(plan: Plan, est: Any) -> tuple[Plan, Any]:
    """``plan`` (full recomputation of ``recompute_layers = n`` layers per chunk, which fits)
    with the fewest recomputed layers that still fit, and its estimate: memory falls and step
    time grows with the count, so the fewest that fit is the fastest. The search's grid has
    1, 2, 4, …; this bisects between (at most log₂ n scalar estimates). Other plans are
    returned as they are."""
    from .estimate import estimate

    n = plan.parallelism.recompute_layers
    if not plan.parallelism.partial_recompute or n == 1 or not est.fits:
        return plan, est
    lo, hi, best = 0, n, (plan, est)  # lo: known not to fit (0: no recomputation, not tried)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, recompute_layers=mid))
        trial_est = estimate(trial)
        if trial_est.fits:
            hi, best = mid, (trial, trial_est)
        else:
            lo = mid
    return best


def _plan_for(base: Plan, row: dict) -> Plan:
    par = attrs.evolve(
        base.parallelism,
        tp=int(row["tp"]),
        pp=int(row["pp"]),
        cp=int(row["cp"]),
        ep=int(row["ep"]),
        dp="auto",
        micro_batch=int(row["micro_batch"]),
        zero=int(row["zero"]),
        recompute=row["recompute"],
        pp_schedule=row["pp_schedule"],
        virtual_stages=int(row["virtual_stages"]) if row["pp_schedule"] == "interleaved" else None,
        # the plan's comm_sms goes with DualPipe only (an error with any other schedule)
        comm_sms=base.parallelism.comm_sms if row["pp_schedule"] == "dualpipe" else None,
        offload=row["offload"],
        # 0: every layer (recompute = "full") or not applicable
        recompute_layers=int(row.get("recompute_layers", 0)) or None if row["recompute"] == "full" else None,
        **Parallelism.UNSEARCHED,  # an even split, sharded over the whole data-parallel group
    )
    return attrs.evolve(base, cluster=attrs.evolve(base.cluster, gpus=int(row["gpus"])), parallelism=par)
