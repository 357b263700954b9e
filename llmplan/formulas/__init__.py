"""Formulas: small functions that return sympy expressions, one module per concern.

* :mod:`~llmplan.formulas.params` — parameter counts (exact, per component);
* :mod:`~llmplan.formulas.flops` — FLOPs per token / per step;
* :mod:`~llmplan.formulas.memory` — bytes per GPU;
* :mod:`~llmplan.formulas.comm` — collectives and bytes on the wire;
* :mod:`~llmplan.formulas.time` — step and run time;
* :mod:`~llmplan.formulas.money` — cloud and on-prem cost, energy;
* :mod:`~llmplan.formulas.scaling` — scaling laws.

Each formula function is registered with :func:`formula` (name, concern, source)
so the docs' formulas page can render the very expressions the code evaluates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs

__all__ = ["FormulaInfo", "REGISTRY", "formula"]

F = TypeVar("F", bound=Callable)


@attrs.frozen
class FormulaInfo:
    """Registry entry: the function, its dotted name, concern and literature source."""

    name: str
    concern: str
    source: str
    func: Callable


REGISTRY: dict[str, FormulaInfo] = {}


def formula(name: str, source: str) -> Callable[[F], F]:
    """Register a formula function under ``concern.name`` with its citation."""

    def wrap(func: F) -> F:
        concern = func.__module__.rsplit(".", 1)[-1]
        key = f"{concern}.{name}"
        if key in REGISTRY:
            raise ValueError(f"formula {key!r} registered twice")
        REGISTRY[key] = FormulaInfo(key, concern, source, func)
        func.formula_name = key  # type: ignore[attr-defined]
        func.source = source  # type: ignore[attr-defined]
        return func

    return wrap


# ---------------------------------------------------------------------------------------
# Quantities a plan reports, defined in terms of symbols and of each other
# ---------------------------------------------------------------------------------------

import sympy  # noqa: E402


@attrs.frozen
class Q:
    """One reported quantity: its contract key, its own symbol and its defining formula.

    ``expr`` may reference the symbols of quantities defined before it, so
    ``explain`` can show ``T_step = T_comp + T_bubble + …`` rather than one
    unreadable expansion; :meth:`Definitions.full` expands it to input symbols.
    """

    key: str
    symbol: sympy.Symbol
    expr: sympy.Expr
    unit: str
    description: str
    source: str


@attrs.define
class Definitions:
    """Ordered quantity definitions for one plan structure (see :func:`llmplan.estimate.definitions`)."""

    plan: object
    #: which pipeline rank memory.* describes: "first" (rank 0; the default), "middle" (rank 1)
    #: or "last" (rank pp − 1) — llmplan.estimate evaluates all three for uneven stages
    stage: str = "first"
    items: dict[str, Q] = attrs.field(factory=dict)
    by_symbol: dict[sympy.Symbol, Q] = attrs.field(factory=dict)

    def define(self, key: str, label: str, expr, unit: str, description: str, source: str) -> sympy.Symbol:
        """Add quantity ``key`` (its symbol is named ``label``) and return that symbol."""
        if key in self.items:
            raise ValueError(f"quantity {key!r} defined twice")
        sym = sympy.Symbol(label, real=True)
        q = Q(key, sym, sympy.sympify(expr), unit, description, source)
        self.items[key] = q
        self.by_symbol[sym] = q
        return sym

    def ref(self, key: str) -> sympy.Symbol:
        """The symbol of an already defined quantity."""
        return self.items[key].symbol

    def full(self, key: str, keep: tuple[str, ...] = ()) -> sympy.Expr:
        """The defining formula of ``key`` expanded down to input symbols.

        Quantities named in ``keep`` stay as their own symbols (not expanded).
        """
        expr = self.items[key].expr
        while True:
            deps = {s: self.by_symbol[s].expr for s in expr.free_symbols if s in self.by_symbol and self.by_symbol[s].key not in keep}
            if not deps:
                return expr
            expr = expr.xreplace(deps)
