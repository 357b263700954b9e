"""Plots of estimates and searches (optional: ``pip install 'llmplan[plot]'``).

* :func:`memory_breakdown` — the memory of the most loaded GPU by part, stacked, against
  the GPU's capacity (one bar per report: compare layouts side by side);
* :func:`time_cost_vs_gpus` — days and cost of a plan against its GPU count, each count
  with its best layout from :func:`llmplan.search.search`;
* :func:`pareto` — days against cost of the layouts a search returned, coloured by GPU
  count, the Pareto front joined.

matplotlib is imported only inside these functions and drawn with its Agg canvas (no
display, no change to the global pyplot backend); the file type follows the path's
extension (``.png``, ``.svg``, ``.pdf``). The numbers behind each plot come from the
``*_data`` functions, which need no matplotlib (``tests/test_plots.py`` checks them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import LlmplanError

__all__ = [
    "MEMORY_PARTS",
    "memory_breakdown",
    "memory_breakdown_data",
    "pareto",
    "pareto_data",
    "time_cost_data",
    "time_cost_vs_gpus",
]

#: Parts of ``memory.per_gpu`` stacked by :func:`memory_breakdown`, bottom to top
#: (``kv_cache`` only in serving reports; ``total`` is their sum and is not stacked).
MEMORY_PARTS = ("weights", "gradients", "optimizer", "activations", "kv_cache", "other")

_GiB = 2**30
_COLOURS = {
    "weights": "#4c72b0",
    "gradients": "#dd8452",
    "optimizer": "#55a868",
    "activations": "#c44e52",
    "kv_cache": "#8172b3",
    "other": "#937860",
}


def _figure(width: float = 7.0, height: float = 4.2):
    """A matplotlib Figure on the Agg canvas; a clear error when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise LlmplanError("plotting needs matplotlib: pip install 'llmplan[plot]'") from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise LlmplanError(f"{path}: the folder {path.parent} does not exist")
    fig.savefig(path)
    return path


def _human(value: float, _pos: Any = None) -> str:
    """Axis label for money and GPU-hours: 250k, 4.2M, 1.1G."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:,.3g}{suffix}"
    return f"{value:,.3g}"


def _money_axis(axis) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(_human))


def _report(obj: Any) -> dict[str, Any]:
    """A report dict from an :class:`~llmplan.estimate.Estimate` or a report."""
    if hasattr(obj, "report") and callable(obj.report):
        rep = obj.report()
        plan = getattr(obj, "plan", None)
        if plan is not None and plan.method.training:
            from . import symbols as S

            par = plan.parallelism
            rep.setdefault("cluster", {"gpu": plan.cluster.gpu.id, "gpus": plan.cluster.gpus})
            rep.setdefault("parallelism", {"tp": par.tp, "pp": par.pp, "virtual_stages": par.virtual_stages,
                                           "dp": int(obj.values[S.n_dp]), "zero": par.zero, "recompute": par.recompute})
        return rep
    if isinstance(obj, Mapping) and "memory" in obj:
        return dict(obj)
    raise LlmplanError(f"expected an Estimate or its report(), got {type(obj).__name__}")


def _label(rep: Mapping[str, Any], i: int) -> str:
    from .search import recompute_label

    par = rep.get("parallelism")
    if par:
        v = f" v{par['virtual_stages']}" if par.get("virtual_stages") else ""
        cl = rep.get("cluster", {})
        head = f"{cl.get('gpus', '')} × {cl.get('gpu', '')}\n" if cl else ""
        return f"{head}tp{par['tp']} pp{par['pp']}{v} dp{par['dp']}\nZeRO-{par['zero']} {recompute_label(par)}"
    return rep.get("name") or f"plan {i + 1}"


# ---------------------------------------------------------------------------------------
# memory breakdown
# ---------------------------------------------------------------------------------------


def memory_breakdown_data(reports: Any, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The numbers of :func:`memory_breakdown`: ``{"labels", "parts": {part: [GiB …]}, "capacity": [GiB …], "total": [GiB …]}``."""
    reps = [_report(r) for r in (reports if isinstance(reports, (list, tuple)) else [reports])]
    if not reps:
        raise LlmplanError("memory_breakdown needs at least one report")
    if labels is not None and len(labels) != len(reps):
        raise LlmplanError(f"{len(labels)} labels for {len(reps)} reports")
    parts = [p for p in MEMORY_PARTS if any(p in r["memory"]["per_gpu"] for r in reps)]
    return {
        "labels": list(labels) if labels is not None else [_label(r, i) for i, r in enumerate(reps)],
        "parts": {p: [(r["memory"]["per_gpu"].get(p) or 0) / _GiB for r in reps] for p in parts},
        "capacity": [r["memory"]["capacity"] / _GiB for r in reps],
        "total": [r["memory"]["per_gpu"]["total"] / _GiB for r in reps],
        "title": reps[0].get("name") or "",
    }


def memory_breakdown(reports: Any, path: str | os.PathLike, *, labels: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Stacked bar of ``memory.per_gpu`` parts (GiB) with the GPU's capacity as a line.

    ``reports``: an :class:`~llmplan.estimate.Estimate`, its ``report()``, or a list of
    them (one bar each, e.g. the layouts of a search). Returns the written path.
    """
    data = memory_breakdown_data(reports, labels)
    fig = _figure(max(4.5, 1.4 * len(data["labels"]) + 3), 4.2)
    ax = fig.add_subplot()
    xs = list(range(len(data["labels"])))
    bottom = [0.0] * len(xs)
    for part, values in data["parts"].items():
        if not any(values):
            continue
        ax.bar(xs, values, 0.6, bottom=bottom, label=part.replace("_", " "), color=_COLOURS[part])
        bottom = [b + v for b, v in zip(bottom, values)]
    for x, cap, tot in zip(xs, data["capacity"], data["total"]):
        ax.hlines(cap, x - 0.42, x + 0.42, colors="black", linestyles="--", linewidth=1.5)
        ax.annotate(f"{tot:,.1f} GiB", (x, tot), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.plot([], [], "k--", label=f"capacity ({data['capacity'][0]:,.0f} GiB)" if len(set(data["capacity"])) == 1 else "capacity")
    ax.set_xticks(xs, data["labels"], fontsize=8)
    ax.set_ylabel("GiB on the most loaded GPU")
    ax.set_ylim(0, max(max(data["capacity"]), max(data["total"])) * 1.15)
    ax.set_title(title if title is not None else (data["title"] or "Memory per GPU"), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------
# time and cost vs GPUs
# ---------------------------------------------------------------------------------------


def time_cost_data(plan, gpus: Sequence[int], *, objective: str = "time", deadline_seconds: float | None = None) -> list[dict[str, Any]]:
    """For each count in ``gpus``, the best layout (:func:`llmplan.search.search`, ``objective``):
    ``[{"gpus", "days", "cost", "currency", "gpu_hours", "parallelism"} or {"gpus", "days": None} …]``.
    ``cost`` is ``cost.total`` in the plan's currency, or GPU-hours without a ``[cost]``."""
    from .search import search

    if not gpus:
        raise LlmplanError("give at least one GPU count")
    rows = []
    for n in sorted({int(g) for g in gpus}):
        res = search(plan, gpus=n, top=1, objective=objective, deadline_seconds=deadline_seconds)
        if not res["layouts"]:
            rows.append({"gpus": n, "days": None, "cost": None, "currency": None, "gpu_hours": None, "parallelism": None})
            continue
        r = res["layouts"][0]
        cost, cur = r["cost"]["total"], r["cost"]["currency"]
        if cost is None:
            cost, cur = r["time"]["gpu_hours"], "GPU-hours"
        rows.append({"gpus": n, "days": r["time"]["days"], "cost": cost, "currency": cur, "gpu_hours": r["time"]["gpu_hours"], "parallelism": r["parallelism"]})
    return rows


def time_cost_vs_gpus(plan, path: str | os.PathLike, gpus: Sequence[int] = (256, 512, 1024, 2048, 4096), *, objective: str = "time", deadline_seconds: float | None = None) -> Path:
    """Days (left axis) and cost (right axis) against GPU count, best layout per count.

    Counts with no layout that fits are marked at the bottom. Returns the written path.
    """
    rows = time_cost_data(plan, gpus, objective=objective, deadline_seconds=deadline_seconds)
    ok = [r for r in rows if r["days"] is not None]
    if not ok:
        raise LlmplanError(f"no layout fits at any of {', '.join(str(r['gpus']) for r in rows)} GPUs")
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot()
    xs = [r["gpus"] for r in ok]
    ax.plot(xs, [r["days"] for r in ok], "o-", color="#4c72b0", label="days")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x:,}" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel(f"GPUs ({plan.cluster.gpu.id})")
    ax.set_ylabel("days", color="#4c72b0")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    cur = ok[0]["currency"]
    ax2.plot(xs, [r["cost"] for r in ok], "s--", color="#dd8452", label=f"cost ({cur})")
    ax2.set_ylabel(f"cost ({cur})", color="#dd8452")
    ax2.set_ylim(bottom=0)
    _money_axis(ax2.yaxis)
    for r in rows:
        if r["days"] is None:
            ax.annotate("no fit", (r["gpus"], 0), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8, color="grey")
    if deadline_seconds is not None:
        ax.axhline(deadline_seconds / 86400, color="grey", linestyle=":", linewidth=1)
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    ax.set_title(plan.name or "Time and cost vs GPUs", fontsize=10)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------
# Pareto front of a search
# ---------------------------------------------------------------------------------------


def pareto_data(search_result: Mapping[str, Any]) -> dict[str, Any]:
    """The points of :func:`pareto`: every distinct layout of ``layouts`` and ``pareto``, with
    ``days``, ``cost`` (``cost.total``, else GPU-hours), ``gpus``, ``gpu``, ``on_front`` (not
    dominated in days and cost among these points) and ``search_front`` (on the search's own
    front, which also counts fewer GPUs as better)."""
    if not isinstance(search_result, Mapping) or "layouts" not in search_result:
        raise LlmplanError("pareto needs the dict llmplan.search.search returns")
    seen: dict[tuple, dict[str, Any]] = {}
    front_keys = set()
    for source in ("pareto", "layouts"):
        for r in search_result.get(source, []):
            key = (r["cluster"]["gpu"], r["cluster"]["gpus"], tuple(sorted(r["parallelism"].items())))
            if source == "pareto":
                front_keys.add(key)
            if key in seen:
                continue
            cost, cur = r["cost"]["total"], r["cost"]["currency"]
            if cost is None:
                cost, cur = r["time"]["gpu_hours"], "GPU-hours"
            seen[key] = {"days": r["time"]["days"], "cost": cost, "currency": cur, "gpus": r["cluster"]["gpus"], "gpu": r["cluster"]["gpu"]}
    import numpy as np

    from .search import pareto_front

    points = []
    for key, p in seen.items():
        p["search_front"] = key in front_keys
        points.append(p)
    points.sort(key=lambda p: (p["days"], p["cost"]))
    front = set(pareto_front(np.array([[p["days"], p["cost"]] for p in points])).tolist()) if points else set()
    for i, p in enumerate(points):
        p["on_front"] = i in front
    return {"points": points, "currency": points[0]["currency"] if points else None}


def pareto(search_result: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Days against cost of a search's layouts, coloured by GPU count; the front joined.

    ``search_result``: the dict :func:`llmplan.search.search` returns (its ``layouts``
    and ``pareto``). Returns the written path.
    """
    data = pareto_data(search_result)
    pts = data["points"]
    if not pts:
        raise LlmplanError("the search found no feasible layout: nothing to plot")
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot()
    from matplotlib.colors import LogNorm, Normalize

    counts = [p["gpus"] for p in pts]
    norm = LogNorm(min(counts), max(counts)) if min(counts) != max(counts) else Normalize(min(counts) - 1, max(counts) + 1)
    markers = {g: m for g, m in zip(sorted({p["gpu"] for p in pts}), "os^DvP*X")}
    sc = None
    for gpu, marker in markers.items():
        sel = [p for p in pts if p["gpu"] == gpu]
        sc = ax.scatter(
            [p["days"] for p in sel],
            [p["cost"] for p in sel],
            c=[p["gpus"] for p in sel],
            cmap="viridis",
            norm=norm,
            marker=marker,
            s=[70 if p["on_front"] else 35 for p in sel],
            edgecolors=["black" if p["on_front"] else "none" for p in sel],
            label=gpu if len(markers) > 1 else None,
            zorder=3,
        )
    front = sorted((p for p in pts if p["on_front"]), key=lambda p: p["days"])
    if len(front) > 1:
        ax.plot([p["days"] for p in front], [p["cost"] for p in front], "-", color="grey", linewidth=1, zorder=2, label="Pareto front")
    for p in front:
        ax.annotate(f"{p['gpus']:,} × {p['gpu']}", (p["days"], p["cost"]), textcoords="offset points", xytext=(6, 6), fontsize=8)
    cbar = fig.colorbar(sc, ax=ax)
    cbar.set_label("GPUs")
    ax.set_xlabel("days")
    ax.set_ylabel(f"cost ({data['currency']})")
    _money_axis(ax.yaxis)
    days = [p["days"] for p in pts]
    if max(days) / min(days) > 8:
        ax.set_xscale("log")
        ax.set_xlabel("days (log scale)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(title or "Layouts found: days vs cost (outlined: Pareto front)", fontsize=10)
    return _save(fig, path)
