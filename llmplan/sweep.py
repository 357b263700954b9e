"""Vectorised evaluation of many layouts of one plan.

``sweep(plan, tp=[1, 2, 4, 8], pp=[1, 2, 4], micro_batch=[1, 2], gpus=[64, 128])``
evaluates every combination at once: the plan's formulas (cached per
structure) are compiled with ``lambdify`` to numpy and called with arrays, so
100,000 layouts cost a few numpy passes rather than 100,000 estimates.
Structural axes (``zero``, ``recompute``, ``pp_schedule``, ``offload``) are
looped over; each of their combinations is one vectorised call.

``recompute_layers`` (``[parallelism] recompute_layers``: positive counts, ``None`` for every
layer) applies to the ``recompute = "full"`` rows; the other rows carry 0 in that column, as
do the full rows that recompute every layer (``None``). With ``None`` on the axis, a count that
covers every layer of a model chunk duplicates that row and is marked invalid.

Layouts that break a rule (tp must divide heads, dp·tp·pp·cp = gpus, the global
batch must be a multiple of dp × micro_batch, ep must divide experts and dp, pp ≤
layers) are marked invalid in ``valid``; ``fits`` says whether memory fits.
``keep="valid"`` or ``keep="fits"`` drops the other rows *before* their formulas are
evaluated (the memory formulas come first, so ``"fits"`` evaluates time and cost for the
layouts that fit only): the kept rows' numbers are the same, far fewer are computed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import attrs
import numpy as np
import sympy

from . import symbols as S
from .bindings import _free, plan_values, use_cse
from .estimate import definitions, param_counts
from .plan import Parallelism, Plan

__all__ = ["Sweep", "sweep", "NUMERIC_AXES", "STRUCTURAL_AXES"]

NUMERIC_AXES = ("tp", "pp", "cp", "ep", "micro_batch", "gpus", "virtual_stages", "recompute_layers")
STRUCTURAL_AXES = ("zero", "recompute", "pp_schedule", "offload")
KEEP = ("all", "valid", "fits")


@lru_cache(maxsize=4096)
def _vector_fn(expr: sympy.Expr, args: tuple[sympy.Symbol, ...]):
    return sympy.lambdify(args, expr, modules="numpy", cse=use_cse(expr))


@attrs.frozen
class Sweep:
    """The evaluated layouts (flat arrays, one entry per layout).

    Attributes:
        layout: axis name → array of values (``tp``, ``pp``, ``dp``, ``zero`` …), and
            ``micro_batches``, the micro-batches per step *m* = global batch ÷ (dp × micro_batch).
        results: quantity key → array (same keys as :class:`~llmplan.estimate.Estimate`).
        valid: the layout satisfies every divisibility and size rule.
        fits: valid and the most loaded GPU's memory fits.
        enumerated: combinations of the axes enumerated, the rows dropped by ``keep``
            included (``len`` counts the rows kept).
    """

    layout: dict[str, np.ndarray]
    results: dict[str, np.ndarray]
    valid: np.ndarray
    fits: np.ndarray
    enumerated: int = attrs.field(default=-1)

    def __attrs_post_init__(self) -> None:
        if self.enumerated < 0:
            object.__setattr__(self, "enumerated", int(self.valid.size))

    def __len__(self) -> int:
        return int(self.valid.size)

    def rows(self, index: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """Layout and results of the given flat indices, as dicts of Python numbers."""
        out = []
        for i in np.asarray(index).tolist():
            row = {k: _py(v[i]) for k, v in self.layout.items()}
            row.update({k: _py(v[i]) for k, v in self.results.items()})
            out.append(row)
        return out


def _py(x):
    return x.item() if hasattr(x, "item") else x


def _link_arrays(plan: Plan, span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`llmplan.bindings._link_for_span`."""
    from .bindings import _link_for_span

    cl = plan.cluster
    tiers = [(1, *(_link_for_span(plan, 1)))]
    domain = max(1, min(cl.nvlink_domain, max(cl.per_node, cl.nvlink_domain)))
    if domain > 1:
        tiers.append((domain, *_link_for_span(plan, domain)))
    if cl.per_node > domain:
        tiers.append((cl.per_node, *_link_for_span(plan, cl.per_node)))
    net_bw, net_alpha = _link_for_span(plan, max(cl.per_node, domain) + 1)
    bw = np.full(span.shape, net_bw, dtype=float)
    alpha = np.full(span.shape, net_alpha, dtype=float)
    for limit, b, a in reversed(tiers):
        mask = span <= limit
        bw[mask], alpha[mask] = b, a
    return bw, alpha


def sweep(plan: Plan, keep: str = "all", **axes: Sequence[Any]) -> Sweep:
    """Evaluate ``plan`` for every combination of the given layout axes.

    Numeric axes: ``tp, pp, cp, ep, micro_batch, gpus, virtual_stages, recompute_layers``
    (positive counts or ``None``; 0 in the layout where every layer or none is recomputed);
    structural: ``zero, recompute, pp_schedule, offload``. An axis not given
    keeps the plan's value. ``dp`` follows as gpus ÷ (tp·pp·cp).

    ``keep``: ``"all"`` rows (every combination, invalid ones included), only the
    ``"valid"`` ones, or only those that ``"fits"`` in memory; rows dropped are not
    evaluated past the test that drops them (``Sweep.enumerated`` still counts them).
    """
    from .errors import LlmplanError, did_you_mean

    unknown = set(axes) - set(NUMERIC_AXES) - set(STRUCTURAL_AXES)
    if unknown:
        name = sorted(unknown)[0]
        raise LlmplanError(f"unknown sweep axis {name!r}{did_you_mean(name, NUMERIC_AXES + STRUCTURAL_AXES)}")
    if keep not in KEEP:
        raise LlmplanError(f"keep={keep!r} is not allowed (allowed: {', '.join(KEEP)})")
    par, cl = plan.parallelism, plan.cluster
    base = {
        "tp": par.tp,
        "pp": par.pp,
        "cp": par.cp,
        "ep": par.ep,
        "micro_batch": par.micro_batch,
        "gpus": cl.gpus,
        "virtual_stages": par.virtual_stages or 2,
        "recompute_layers": par.recompute_layers,
        "zero": par.zero,
        "recompute": par.recompute,
        "pp_schedule": par.pp_schedule,
        "offload": par.offload,
    }
    values = {k: list(axes[k]) if k in axes else [base[k]] for k in base}
    for n in values["recompute_layers"]:
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise LlmplanError(f"sweep axis recompute_layers: {n!r} is not a positive integer or None (every layer)")
    counts = sorted({int(n) for n in values["recompute_layers"] if n is not None})
    every = None in values["recompute_layers"]
    if values["gpus"] == [None]:
        from .errors import PlanError, Problem

        raise PlanError(Problem("cluster.gpus", "give gpus in the plan or as a sweep axis"))
    params = param_counts(plan.model)
    parts: list[tuple[dict, dict, np.ndarray, np.ndarray]] = []
    enumerated = 0
    for struct in itertools.product(*(values[k] for k in STRUCTURAL_AXES)):
        sdict = dict(zip(STRUCTURAL_AXES, struct))
        numeric = {k: values[k] for k in NUMERIC_AXES}
        if sdict["pp_schedule"] == "dualpipe":
            numeric["pp"] = [p for p in numeric["pp"] if p % 2 == 0]  # two directions: even pp
            if not numeric["pp"]:
                continue
        if sdict["pp_schedule"] != "interleaved":
            numeric["virtual_stages"] = [1]
        else:
            numeric["pp"] = [p for p in numeric["pp"] if p > 1]
            if not numeric["pp"]:
                continue
        # recompute_layers: with counts on the axis, every layer (0) is priced by the same
        # structure as the counts, at n_rc = layers (a recomputed fraction of exactly 1)
        # (the block method only: under "uniform" a count is a group size, and every layer at
        # once is not recompute_layers = None)
        if sdict["recompute"] != "full" or not counts:
            groups = [[0]]
        elif plan.parallelism.recompute_method == "block":
            groups = [([0] if every else []) + counts]
        else:
            groups = ([[0]] if every else []) + [counts]
        for rl in groups:
            numeric["recompute_layers"] = rl
            # every combination, in itertools.product order (the last axis varies fastest)
            mesh = np.meshgrid(*(np.asarray(v, dtype=np.int64) for v in numeric.values()), indexing="ij")
            cols = {k: a.ravel() for k, a in zip(NUMERIC_AXES, mesh)}
            enumerated += cols["tp"].size
            # formulas differ structurally for pp = 1 and cp > 1: evaluate those groups apart
            for single, ctx in itertools.product((True, False), (False, True)):
                sel = (cols["pp"] == 1) == single
                sel &= (cols["cp"] > 1) == ctx
                if not sel.any():
                    continue
                sub = {k: v[sel] for k, v in cols.items()}
                parts.append(_evaluate_group(plan, params, sdict, sub, keep, dedupe=every))
    if not parts:
        raise LlmplanError(
            f"the sweep has no layout to evaluate: pp_schedule {values['pp_schedule']} with pp {values['pp']} "
            "('interleaved' needs pp ≥ 2, 'dualpipe' an even pp)"
        )
    layout = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    results = {k: np.concatenate([np.broadcast_to(p[1][k], p[2].shape) for p in parts]) for k in parts[0][1]}
    valid = np.concatenate([p[2] for p in parts])
    fits = np.concatenate([p[3] for p in parts])
    return Sweep(layout, results, valid, fits, enumerated)


def _template(plan: Plan, sdict: dict, sub: dict) -> Plan:
    """A valid plan with the group's structure (first layout of the group) to bind scalars."""
    par = attrs.evolve(
        plan.parallelism,
        tp=1,
        pp=int(sub["pp"][0]),
        cp=int(sub["cp"][0]),
        ep=1,
        dp="auto",
        micro_batch=1,
        zero=sdict["zero"],
        recompute=sdict["recompute"],
        pp_schedule=sdict["pp_schedule"],
        comm_sms=plan.parallelism.comm_sms if sdict["pp_schedule"] == "dualpipe" else None,
        offload=sdict["offload"],
        sequence_parallel=plan.parallelism.sp_with_tp,  # what the group's tp > 1 layouts run (the template's tp is 1)
        virtual_stages=None,
        # the group's recompute_layers structure (its counts are bound per row)
        recompute_layers=1 if sdict["recompute"] == "full" and sub["recompute_layers"].any() else None,
        **Parallelism.UNSEARCHED,  # an even split, sharded over the whole data-parallel group
    )
    gpus = int(sub["pp"][0] * sub["cp"][0])
    meth = plan.method
    if meth.global_batch is None and meth.global_batch_tokens is None:
        meth = attrs.evolve(meth, global_batch=1)
    elif meth.global_batch is None:
        meth = attrs.evolve(meth, global_batch=max(1, round(meth.global_batch_tokens / meth.seq_len)), global_batch_tokens=None)
    else:
        meth = attrs.evolve(meth, global_batch=meth.global_batch)
    return _unchecked_plan(plan, meth, par, gpus)


def _unchecked_plan(plan: Plan, method, par, gpus: int) -> Plan:
    """``plan`` with another method, layout and GPU count, *without* the plan-level layout
    check: the template only carries structure and scalar bindings, and the layout rules
    are applied per row by :func:`_evaluate_group`."""
    return unchecked_evolve(plan, method=method, parallelism=par, cluster=attrs.evolve(plan.cluster, gpus=gpus))


def unchecked_evolve(plan: Plan, **changes: Any) -> Plan:
    """``attrs.evolve`` for a :class:`Plan` that skips its cross-table checks."""
    obj = object.__new__(Plan)
    for f in attrs.fields(Plan):
        object.__setattr__(obj, f.name, changes.get(f.name, getattr(plan, f.name)))
    return obj


def _evaluate_group(plan: Plan, params, sdict: dict, sub: dict, keep: str = "all", dedupe: bool = False):
    template = _template(plan, sdict, sub)
    q = definitions(template)
    vals, _ = plan_values(template, params.total, params.active)
    model = plan.model
    tp, pp, cp, ep, mb, gpus, vs, rl = (sub[k] for k in NUMERIC_AXES)
    B = vals[S.B]
    valid = (model.heads % tp == 0) & (pp <= model.layers) & (gpus % (tp * pp * cp) == 0)
    dp = np.maximum(gpus // (tp * pp * cp), 1)
    valid &= (B % (dp * mb)) == 0
    valid &= pp * vs <= model.layers
    if dedupe and template.parallelism.partial_recompute:  # the row recomputing every layer is there
        valid &= (rl == 0) | (pp * vs * rl < model.layers)
    if model.is_moe:
        valid &= (model.moe.experts % ep == 0) & (dp % ep == 0)
    else:
        valid &= ep == 1
    if (cp > 1).any():
        valid &= plan.method.seq_len % (2 * cp) == 0
    m = np.maximum(B // (dp * mb), 1)
    if sdict["pp_schedule"] == "dualpipe":  # even pp and micro-batches (DeepSeek-V3 report §3.2.1)
        valid &= (pp % 2 == 0) & (m % 2 == 0)
    if keep != "all":  # drop the invalid rows before any formula runs
        sub = {k: v[valid] for k, v in sub.items()}
        tp, pp, cp, ep, mb, gpus, vs, rl = (sub[k] for k in NUMERIC_AXES)
        dp, m, valid = dp[valid], m[valid], valid[valid]
    vals.update(
        {
            S.t: tp,
            S.p: pp,
            S.c: cp,
            S.e: ep,
            S.b: mb,
            S.N: gpus,
            S.n_dp: dp,
            S.n_sh: dp,  # the sweep shards over the whole data-parallel group (no dp_shard)
            S.m: m,
            S.v: vs,
            # an even split (the search does not place first/last_stage_layers): ⌈L/p⌉ on the
            # first stages, ⌊L/p⌋ on the last (Parallelism.stage_layers)
            S.L_s: -(-model.layers // pp),
            S.L_max: -(-model.layers // pp),
            S.L_last: model.layers // pp,
            S.i_pp: 0,
            S.n_rc: np.where(rl == 0, model.layers, rl),  # 0: every layer
            S.t_e: tp if plan.parallelism.etp is None else np.full(tp.shape, plan.parallelism.etp),
        }
    )
    for key, span in (("cp", tp * cp), ("ep", tp * cp * ep)):
        bw, alpha = _link_arrays(template, span)
        vals[getattr(S, f"W_{key}")], vals[getattr(S, f"alpha_{key}")] = bw, alpha
    from .bindings import ring_link

    vals[S.W_tp], vals[S.alpha_tp] = ring_link(template, np.ones_like(tp), tp)
    vals[S.W_dp], vals[S.alpha_dp] = ring_link(template, tp * cp, dp)
    from .bindings import ring_sms

    vals[S.n_ccl], vals[S.n_ccp] = ring_sms(template, tp * cp, dp), ring_sms(template, tp, cp)
    vals[S.n_ccr] = np.zeros_like(dp)  # the sweep has no hybrid sharding
    bw, alpha = _link_arrays(template, tp * cp * dp + 1)
    vals[S.W_pp], vals[S.alpha_pp] = bw, alpha
    from .bindings import ep_intra_link, ep_node_layout

    vals[S.n_epn], vals[S.n_epl] = ep_node_layout(template, tp, cp, ep)
    vals[S.W_epl], vals[S.alpha_epl] = ep_intra_link(template, tp, cp, ep)
    # the formulas run in float64: an int64 array times a large integer (peak FLOP/s × gpus
    # reaches 1.6e19 on 16,384 H100s) would wrap around silently
    vals = {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind in "iu" else v for k, v in vals.items()}
    layout = dict(sub)
    layout["dp"] = dp
    layout["micro_batches"] = m
    rows = tp.shape
    results: dict[str, np.ndarray] = {}
    fits = None
    for key, item in q.items.items():
        free = _free(item.expr)
        if not free:
            value = np.full(rows, float(item.expr))
        else:
            value = _vector_fn(item.expr, free)(*(vals[s] for s in free))
        vals[item.symbol] = value
        results[key] = np.broadcast_to(np.asarray(value, dtype=float), rows)
        if fits is None and "memory.per_gpu.total" in results and "memory.capacity" in results:
            fits = valid & (results["memory.per_gpu.total"] <= results["memory.capacity"])
            if keep == "fits":  # time and cost only for the layouts that fit
                vals = {s: _take(v, fits, rows) for s, v in vals.items()}
                results = {k: _take(v, fits, rows) for k, v in results.items()}
                layout = {k: v[fits] for k, v in layout.items()}
                valid, fits = valid[fits], fits[fits]
                rows = valid.shape
    if fits is None:
        fits = valid & (results["memory.per_gpu.total"] <= results["memory.capacity"])
    for k, v in sdict.items():
        layout[k] = np.full(rows, v, dtype=object)
    return layout, results, valid, fits


def _take(value, mask: np.ndarray, rows: tuple[int]):
    """``value[mask]`` for a per-row array of ``rows`` rows; a scalar binding as it is."""
    if isinstance(value, np.ndarray) and value.shape == rows:
        return value[mask]
    return value
