"""Sensitivity and uncertainty: which input matters, and how wide the answer is.

* :func:`sensitivity` — the elasticity ``∂ log y / ∂ log x = (∂y/∂x)·x/y`` of a reported
  quantity with respect to every input symbol, from the *symbolic* derivative of its
  formula (expanded to inputs), evaluated at the plan's values, ranked by magnitude.
  An elasticity of 1 means +1 % in the input gives +1 % in the output.
* :func:`ranges` — any plan input given as an interval (``method.tokens``,
  ``efficiency.mfu``, ``model.hidden`` …) makes the outputs intervals. Every corner of
  the box is evaluated, plus a Latin-hypercube sample of the inside; when each
  output's elasticities keep their sign over all corners (monotone in every input)
  the corner bounds are exact, otherwise they are the sampled hull (``exact: false``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import sympy

from .errors import PlanError, Problem, did_you_mean
from .estimate import estimate
from .plan import Plan
from .symbols import TABLE

__all__ = ["sensitivity", "ranges", "RANGE_OUTPUTS", "evolve_path"]

#: outputs reported as ranges
RANGE_OUTPUTS = (
    "time.total_seconds",
    "time.days",
    "time.gpu_hours",
    "cost.total",
    "energy.kwh",
    "memory.per_gpu.total",
    "flops.total",
)

#: Quantities :func:`sensitivity` treats as inputs rather than expanding.
OPAQUE = ("time.gemm_efficiency",)

_NUMPY_HEAVISIDE = {"Heaviside": lambda x, h0=0.5: float(np.heaviside(x, h0)), "DiracDelta": lambda x, *a: 0.0}


def sensitivity(est, key: str, *, top: int | None = None) -> list[tuple[str, float, str]]:
    """Elasticities of quantity ``key`` w.r.t. each input symbol: ``[(name, elasticity, meaning)]``.

    Sorted by decreasing magnitude; inputs with zero effect are left out.
    """
    # The GEMM-shape efficiency is not expanded: differentiating its expansion (hundreds of
    # Max/Piecewise terms over tile and wave counts) symbolically takes minutes. It enters
    # by the chain rule instead — ∂y/∂x = ∂y/∂x|η + ∂y/∂η · ∂η/∂x — with ∂η/∂x taken
    # numerically on η's formula with its tile/wave counts and branches frozen at the
    # plan's values (they are step functions: derivative 0 almost everywhere).
    keep = tuple(k for k in OPAQUE if k in est.definitions.items)
    expr = est.definitions.full(key, keep)
    values = dict(est.values)
    inner: dict[sympy.Symbol, dict[sympy.Symbol, float]] = {}
    for k in keep:
        q = est.definitions.items[k]
        values[q.symbol] = est.results[k]
        if q.symbol in expr.free_symbols:
            inner[q.symbol] = _frozen_elasticities(q.expr, est.values)
    y = est.value(key)
    out = []
    if not y:
        return out
    direct = {}
    for sym in expr.free_symbols | {x for e in inner.values() for x in e}:
        if sym not in values:
            continue
        x = values[sym]
        if not isinstance(x, (int, float)) or x == 0 or not math.isfinite(float(x)):
            continue
        if sym not in expr.free_symbols:
            direct[sym] = 0.0
            continue
        deriv = sympy.diff(expr, sym)
        if deriv == 0:
            direct[sym] = 0.0
            continue
        free = tuple(sorted(deriv.free_symbols, key=lambda s: s.name))
        fn = sympy.lambdify(free, deriv, modules=[_NUMPY_HEAVISIDE, "math"])
        direct[sym] = float(fn(*(values[s] for s in free))) * float(x) / float(y)
    for sym, value in direct.items():
        if sym in inner:
            continue  # an opaque intermediate: reported through the inputs it depends on
        value += sum(direct.get(eta, 0.0) * e.get(sym, 0.0) for eta, e in inner.items())
        if value != 0 and math.isfinite(value):
            out.append((sym.name, value, TABLE[sym.name].description if sym.name in TABLE else ""))
    out.sort(key=lambda r: -abs(r[1]))
    return out[:top] if top else out


def _frozen_elasticities(expr: sympy.Expr, values: dict, rel: float = 1e-6) -> dict[sympy.Symbol, float]:
    """Elasticities of ``expr`` w.r.t. its continuous inputs (efficiencies, peaks,
    bandwidths, bytes per element) by central differences, with every rounding step
    (``Ceil``, ``Floor``) and ``Piecewise`` branch frozen at ``values``.

    Whole-number inputs (sizes, counts, the layout) are left out: through tile and wave
    counts they move ``expr`` in steps, whose derivative is 0 almost everywhere (the
    sawtooth between steps is not a trend)."""
    from .bindings import evaluate
    from .formulas.time import _Step

    steps = {n: sympy.Integer(int(evaluate(n, values))) for n in sympy.preorder_traversal(expr) if isinstance(n, _Step)}
    expr = expr.xreplace(steps)

    def pick(pw):
        for branch, cond in pw.args:
            if cond is sympy.true or bool(evaluate(cond, values)):
                return branch
        return pw.args[-1][0]

    expr = expr.replace(lambda n: isinstance(n, sympy.Piecewise), pick)
    free = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    fn = sympy.lambdify(free, expr, modules="math")
    base = [float(values[s]) for s in free]
    y0 = fn(*base)
    out: dict[sympy.Symbol, float] = {}
    if not y0:
        return out
    for i, sym in enumerate(free):
        if base[i] == 0 or sym.is_integer:
            continue
        up, down = list(base), list(base)
        up[i] *= 1 + rel
        down[i] *= 1 - rel
        out[sym] = (fn(*up) - fn(*down)) / (2 * rel * y0)
    return out


def evolve_path(plan: Plan, path: str, value: Any) -> Plan:
    """A copy of ``plan`` with the attribute at dotted ``path`` (``method.tokens``) replaced."""
    head, _, rest = path.partition(".")
    fields = {f.name for f in attrs.fields(type(plan))}
    if head not in fields:
        raise PlanError(Problem(f"ranges.{path}", f"unknown key{did_you_mean(head, fields)} (allowed: {', '.join(sorted(fields))})"))
    current = getattr(plan, head)
    if rest:
        if current is None or not attrs.has(type(current)):
            raise PlanError(Problem(f"ranges.{path}", f"{head} is not a table here"))
        return attrs.evolve(plan, **{head: evolve_path(current, rest, value)})
    if isinstance(current, tuple) and len(current) == 2 and isinstance(current[1], str):
        return attrs.evolve(plan, **{head: (value, current[1])})  # money: (amount, currency)
    if isinstance(current, bool) or not isinstance(current, (int, float, type(None))):
        raise PlanError(Problem(f"ranges.{path}", f"{head} = {current!r} is not a number that can be a range"))
    if isinstance(current, int):
        value = int(round(float(value)))  # integer inputs (layers, widths, counts) stay integers
    else:
        value = float(value)
    return attrs.evolve(plan, **{head: value})


def ranges(
    plan: Plan,
    intervals: Mapping[str, Sequence[float]],
    *,
    samples: int = 256,
    seed: int = 0,
    outputs: Sequence[str] = RANGE_OUTPUTS,
) -> dict[str, Any]:
    """Propagate input intervals to output intervals.

    Returns ``{"outputs": {key: {"low", "high", "exact"}}, "most_sensitive": {key: input path},
    "evaluated": n}``. Integer inputs (layers, hidden …) are sampled as integers.
    """
    paths = list(intervals)
    lows = np.array([float(intervals[p][0]) for p in paths])
    highs = np.array([float(intervals[p][1]) for p in paths])
    bad = [p for p, lo, hi in zip(paths, lows, highs) if not lo <= hi]
    if bad:
        raise PlanError([Problem(f"ranges.{p}", "low bound exceeds high bound") for p in bad])
    rng = np.random.default_rng(seed)
    corners = list(itertools.product(*zip(lows, highs)))
    inner = []
    if paths:
        cut = (np.arange(samples) + rng.random((len(paths), samples))) / samples
        for row in cut:
            rng.shuffle(row)
        inner = list((lows[:, None] + cut * (highs - lows)[:, None]).T)
    results: dict[str, list[float]] = {k: [] for k in outputs}
    corner_values: list[dict[str, float]] = []
    for n, point in enumerate(corners + [tuple(p) for p in inner]):
        p = plan
        for path, value in zip(paths, point):
            p = evolve_path(p, path, value)
        try:
            est = estimate(p)
        except PlanError:
            continue  # e.g. a sampled width that heads no longer divide
        vals = {k: est.value(k) for k in outputs if k in est.results}
        for k, v in vals.items():
            results[k].append(float(v))
        if n < len(corners):
            corner_values.append(vals)
    out: dict[str, Any] = {}
    most: dict[str, str] = {}
    for k, vals in results.items():
        if not vals:
            continue
        monotone = _monotone_on_corners(k, paths, corners, corner_values)
        out[k] = {"low": min(vals), "high": max(vals), "exact": monotone}
        widest = _widest_input(k, paths, lows, highs, plan)
        if widest:
            most[k] = widest
    return {"outputs": out, "most_sensitive": most, "evaluated": len(corners) + len(inner)}


def _monotone_on_corners(key, paths, corners, corner_values) -> bool:
    """True when moving any one input from low to high changes ``key`` with one sign everywhere."""
    if len(corner_values) != len(corners):
        return False
    index = {c: v.get(key) for c, v in zip(corners, corner_values)}
    for i in range(len(paths)):
        signs = set()
        for c in corners:
            lo_c = list(c)
            hi_c = list(c)
            # pair corners that differ only in input i
            lo_c[i], hi_c[i] = min(x[i] for x in corners), max(x[i] for x in corners)
            a, b = index.get(tuple(lo_c)), index.get(tuple(hi_c))
            if a is None or b is None:
                return False
            signs.add(np.sign(b - a))
        signs.discard(0.0)
        if len(signs) > 1:
            return False
    return True


def _widest_input(key, paths, lows, highs, plan) -> str:
    """The input whose interval alone moves ``key`` the most (one-at-a-time from the plan)."""
    best, width = "", 0.0
    for path, lo, hi in zip(paths, lows, highs):
        vals = []
        for x in (lo, hi):
            try:
                vals.append(float(estimate(evolve_path(plan, path, x)).value(key)))
            except (PlanError, KeyError):
                pass
        if len(vals) == 2 and abs(vals[1] - vals[0]) > max(width, 0.0):
            best, width = path, abs(vals[1] - vals[0])
    return best
