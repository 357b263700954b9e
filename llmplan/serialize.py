"""TOML ⇄ Python: one cattrs converter for every plan object.

``load(path)`` / ``loads(text)`` build a :class:`~llmplan.plan.Plan` from a
plan file; ``dump(plan)`` writes it back; ``load(dump(plan)) == plan``.
Quantity strings (``"2T"``, ``"80 GiB"``, ``"2 USD"``) are parsed by
:mod:`llmplan.units` at the edge, so the objects hold base-unit numbers.
Unknown keys are errors with the closest valid key suggested; every problem in
a file is reported at once as ``path: message`` (:class:`~llmplan.errors.PlanError`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, override

from . import units
from .errors import LlmplanError, PlanError, Problem, TomlSyntaxError, did_you_mean
from .hardware import GPU, Link
from .model import MLA, Dense, Experts, Model, MoE
from .plan import RL, Cluster, Cost, Efficiency, LoRA, Method, OnPrem, Parallelism, Phase, Plan, Precision

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["converter", "structure", "unstructure", "load", "loads", "dump", "parse_toml"]

converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

# ---------------------------------------------------------------------------------------
# primitives: strict, with messages a user can act on
# ---------------------------------------------------------------------------------------


def _int(value: Any, _: Any = None) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        parsed = units.parse(value, "count", what="value")
        if isinstance(parsed, int):
            return parsed
    raise ValueError(f"{value!r} is not an integer")


def _float(value: Any, _: Any = None) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        return value  # keep ints exact
    if isinstance(value, str):
        return units.parse(value, "count", what="value")
    raise ValueError(f"{value!r} is not a number")


def _bool(value: Any, _: Any = None) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not true or false")


def _str(value: Any, _: Any = None) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not a string")


converter.register_structure_hook(int, _int)
converter.register_structure_hook(float, _float)
converter.register_structure_hook(bool, _bool)
converter.register_structure_hook(str, _str)


def _quantity(dimension: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any = None) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a quantity")
        return units.parse(value, dimension)

    return hook


def _optional(hook: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda value, t=None: None if value is None else hook(value, t)


def _money(value: Any, _: Any = None) -> tuple[float, str]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (value[0], value[1])
    return units.parse_money(value)


def _price(kind: str) -> Callable[[Any, Any], tuple[float, str]]:
    """Money, or the id of a catalog price of ``kind`` (``"h100-sxm-cloud-2026"``)."""

    def hook(value: Any, _: Any = None) -> tuple[float, str]:
        if isinstance(value, str) and " " not in value.strip() and not value.strip()[:1].isdigit():
            from . import catalog

            prices = catalog.default().prices
            if value in prices:
                price = prices[value]
                if price.kind != kind:
                    raise ValueError(f"catalog price {value!r} is a {price.kind} price, not a {kind} price")
                return (price.amount, price.currency)
            ids = [k for k, p in prices.items() if p.kind == kind]
            raise ValueError(f"{value!r} is neither an amount like \"2 USD\" nor a {kind} price id{did_you_mean(value, ids)}")
        return _money(value)

    return hook


def _energy_price(value: Any, _: Any = None) -> tuple[float, str]:
    """``"30 JPY/kWh"`` (or a bare ``"30 JPY"``, read per kWh) → (amount per kWh, currency)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (value[0], value[1])
    if isinstance(value, str) and "/" in value:
        amount, currency, per = units.parse_rate(value, what="power_price")
        if per == "MWh":
            amount = amount / 1000
        elif per != "kWh":
            raise ValueError(f"power_price: {value!r} is not a price per kWh or MWh")
        return (amount, currency)
    return units.parse_money(value, what="power_price")


def _tokens(value: Any, _: Any = None) -> int | float | str:
    if isinstance(value, str) and value.strip().endswith("chinchilla"):
        return " ".join(value.split())
    return units.parse(value, "count", what="tokens")


def _int_or_auto(value: Any, _: Any = None) -> int | str:
    return "auto" if value == "auto" else _int(value)


def _targets(value: Any, _: Any = None) -> tuple[str, ...] | str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{value!r} is not a list of module names or \"all-linear\"")


def _module_names(value: Any, _: Any = None) -> tuple[str, ...]:
    """``[parallelism] recompute_modules``: a list of names (each checked by ``Parallelism``)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    from .plan import RECOMPUTE_MODULES

    raise ValueError(f"{value!r} is not a list of module names (allowed: {', '.join(RECOMPUTE_MODULES)})")


def _flop_rates(name: str) -> Callable[[Any, Any], dict[str, float]]:
    def hook(value: Any, _: Any = None) -> dict[str, float]:
        if not isinstance(value, Mapping):
            raise ValueError(f"{value!r} is not a table of dtype = FLOP/s")
        return {str(k): units.parse(v, "flops_per_second", what=f"{name}.{k}") for k, v in value.items()}

    return hook


def _rates(value: Any, _: Any = None) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{value!r} is not a table of CURRENCY = units per USD")
    return {str(k): _float(v) for k, v in value.items()}


def _parallelism_overrides(value: Any, _: Any = None) -> dict[str, Any]:
    """``[phase.parallelism]``: the keys given, each structured like ``[parallelism]``'s."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{value!r} is not a table of [parallelism] keys")
    full = converter.structure(dict(value), Parallelism)
    return {k: getattr(full, k) for k in value}


#: Per-class field hooks: quantities and the few union-typed fields.
FIELD_HOOKS: dict[type, dict[str, Callable[[Any, Any], Any]]] = {
    GPU: {
        "memory": _quantity("bytes"),
        "memory_bandwidth": _quantity("bytes_per_second"),
        "tdp": _quantity("watts"),
        "peak": _flop_rates("peak"),
        "mamf": _flop_rates("mamf"),
        "nics_per_node": _optional(_int),
    },
    Link: {"bandwidth": _quantity("bytes_per_second"), "latency": _quantity("seconds")},
    Method: {
        "samples": _optional(_int),
        "tokens_per_sample": _optional(_int),
        "epochs": _float,
        "tokens": _optional(_tokens),
        "global_batch_tokens": _optional(_int),
        "global_batch": _optional(_int),
        # serving (method.kind = "inference"; docs/serving.md)
        "requests_per_second": _optional(_float),
        "quant_group_size": _optional(_int),
    },
    LoRA: {"targets": _targets, "alpha": _float},
    # [method.rl] (llmplan.rl, docs/rl.md): optional counts accept "4Ki"-style strings
    RL: {k: _optional(_int) for k in ("group_size", "steps", "rollout_gpus", "rollout_tp", "rollout_pp", "rollout_batch")},
    Efficiency: {"memory_overhead": _optional(_quantity("bytes")), "elementwise_passes": _optional(_float)},
    Parallelism: {"dp": _int_or_auto, "recompute_modules": _optional(_module_names)},
    # [[phase]] (llmplan.phases, docs/phases.md)
    Phase: {
        "tokens": _optional(_tokens),
        "steps": _optional(_int),
        "seq_len": _optional(_int),
        "global_batch": _optional(_int),
        "global_batch_tokens": _optional(_int),
        "parallelism": _parallelism_overrides,
    },
    Cost: {"gpu_hour": _optional(_price("cloud")), "rates": _rates},
    OnPrem: {"gpu_price": _price("purchase"), "power_price": _optional(_energy_price)},
}

#: Fields typed as Literal choices are structured as plain strings; each class's own
#: check reports a bad choice with the allowed values and the closest one.
_PLAIN_STR_FIELDS = {
    (Model, "mlp"),
    (Model, "norm"),
    (Model, "qk_norm"),
    (Model, "attention_bias"),
    (Model, "position"),
    (Link, "kind"),
}


def _register(cls: type) -> None:
    hooks = {}
    for base in cls.__mro__:
        hooks.update({k: v for k, v in FIELD_HOOKS.get(base, {}).items() if k not in hooks})
    overrides = {name: override(struct_hook=hook) for name, hook in hooks.items()}
    for f in attrs.fields(cls):
        if any(issubclass(cls, c) and f.name == n for c, n in _PLAIN_STR_FIELDS):
            overrides[f.name] = override(struct_hook=_str)
    generated = make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=False, **overrides)
    allowed = {f.name for f in attrs.fields(cls)}

    def hook(data: Any, _: Any = None, _cls=cls, _allowed=allowed, _fn=generated) -> Any:
        """Report unknown keys *and* the remaining fields' problems together."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{data!r} is not a table")
        extra = [k for k in data if k not in _allowed]
        if not extra:
            return _fn(data, _cls)
        problems = _problems_from(ForbiddenExtraKeysError("", _cls, set(extra)), "")
        try:
            _fn({k: v for k, v in data.items() if k in _allowed}, _cls)
        except Exception as exc:  # noqa: BLE001 - every structuring problem is collected
            problems += _problems_from(exc, "")
        raise PlanError(problems)

    converter.register_structure_hook(cls, hook)


for _cls in (MLA, Experts, Dense, MoE, GPU, Link, LoRA, RL, Method, Precision, Parallelism, Efficiency, OnPrem, Cost, Phase):
    _register(_cls)

# ---------------------------------------------------------------------------------------
# unstructuring (Python -> TOML-ready dicts): no None (TOML has no null), money as text
# ---------------------------------------------------------------------------------------


def _money_text(value: tuple[float, str]) -> str:
    amount, currency = value
    return f"{amount} {currency}"


def _unstructure_attrs(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, Model):
        out["kind"] = obj.kind
    for f in attrs.fields(type(obj)):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if f.name in ("gpu_hour", "gpu_price"):
            out[f.name] = _money_text(value)
            continue
        if f.name == "power_price":
            out[f.name] = _money_text(value) + "/kWh"
            continue
        if attrs.has(type(value)):
            value = _unstructure_attrs(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            if not value:
                continue
            value = dict(value)
        out[f.name] = value
    return out


def unstructure(obj: Any) -> dict[str, Any]:
    """A TOML-ready dict of any plan object (the inverse of :func:`structure`)."""
    if isinstance(obj, Plan):
        return _unstructure_plan(obj)
    return _unstructure_attrs(obj)


def _range_bound(plan: Plan, path: str, bound: Any) -> Any:
    """A range bound as TOML: money bounds carry the currency of the value they vary."""
    obj: Any = plan
    for part in path.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], str):
        return f"{bound} {obj[1]}"
    return bound


def _unstructure_plan(plan: Plan) -> dict[str, Any]:
    from . import catalog

    out: dict[str, Any] = {}
    if plan.name:
        out["name"] = plan.name
    out["model"] = _unstructure_attrs(plan.model)
    out["method"] = _unstructure_attrs(plan.method)
    out["precision"] = _unstructure_attrs(plan.precision)
    cl = _unstructure_attrs(plan.cluster)
    cat = catalog.default()
    gpu = plan.cluster.gpu
    cl["gpu"] = gpu.id if cat.gpus.get(gpu.id) == gpu else _unstructure_attrs(gpu)
    for key in ("intra_node", "inter_node"):
        link = getattr(plan.cluster, key)
        if link is not None:
            cl[key] = link.id if cat.links.get(link.id) == link else _unstructure_attrs(link)
    out["cluster"] = cl
    out["parallelism"] = _unstructure_attrs(plan.parallelism)
    eff = _unstructure_attrs(plan.efficiency)
    if eff:
        out["efficiency"] = eff
    if plan.cost is not None:
        out["cost"] = _unstructure_attrs(plan.cost)
    if plan.ranges:
        out["ranges"] = {k: [_range_bound(plan, k, b) for b in v] for k, v in plan.ranges.items()}
    if plan.phases:
        out["phase"] = [_unstructure_attrs(phase) for phase in plan.phases]
    return out


# ---------------------------------------------------------------------------------------
# structuring with every problem collected
# ---------------------------------------------------------------------------------------


def _field_names(cls: type) -> list[str]:
    return [f.name for f in attrs.fields(cls)]


def _problems_from(exc: BaseException, prefix: str, cls: type | None = None) -> list[Problem]:
    """Flatten cattrs' exception groups into ``path: message`` problems."""
    if isinstance(exc, PlanError):
        return [p.prefixed(prefix) for p in exc.problems]
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = _field_names(exc.cl)
        if issubclass(exc.cl, Model):
            allowed = allowed + ["kind", "preset", "hf_config"]
        return [
            Problem(
                f"{prefix}.{key}" if prefix else key,
                f"unknown key{did_you_mean(key, allowed)} (allowed: {', '.join(sorted(allowed))})",
            )
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        out: list[Problem] = []
        for sub in exc.exceptions:
            name = None
            for note in getattr(sub, "__notes__", []):
                name = getattr(note, "name", None)
                if name is None and hasattr(note, "index"):
                    name = f"[{note.index}]"
                if name is not None:
                    break
            path = prefix if name is None else (f"{prefix}.{name}" if prefix else str(name))
            if isinstance(sub, KeyError) and not isinstance(sub, LlmplanError) and name is not None:
                out.append(Problem(path, "required key is missing"))
            else:
                out.extend(_problems_from(sub, path))
        return out
    message = str(exc)
    last = prefix.rsplit(".", 1)[-1]
    for label in (last, "value"):
        if label and message.startswith(f"{label}: "):
            message = message[len(label) + 2 :]
            break
    if isinstance(exc, TypeError) and "missing" in message and "required" in message:
        missing = re.findall(r"'(\w+)'", message)
        return [Problem(f"{prefix}.{m}" if prefix else m, "required key is missing") for m in missing]
    return [Problem(prefix, message)]


def structure(data: Mapping[str, Any], cls: type, *, path: str = "") -> Any:
    """Build ``cls`` from a TOML-shaped mapping; raises :class:`PlanError` listing every problem."""
    try:
        if cls is Model:
            return _structure_model(dict(data), path=path)
        return converter.structure(data, cls)
    except PlanError as exc:
        raise exc.prefixed(path) from None
    except (ClassValidationError, ForbiddenExtraKeysError, IterableValidationError, LlmplanError, ValueError, TypeError) as exc:
        raise PlanError(_problems_from(exc, path)) from None


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _structure_model(table: dict[str, Any], *, path: str, catalog=None, base_dir: Path | None = None) -> Model:
    from . import catalog as _catalog

    cat = catalog or _catalog.default()
    warnings: list[str] = []
    preset = table.pop("preset", None)
    hf_config = table.pop("hf_config", None)
    if preset is not None and hf_config is not None:
        raise PlanError(Problem(f"{path}.hf_config", "give preset or hf_config, not both"))
    base: dict[str, Any] = {}
    if preset is not None:
        try:
            base = unstructure(cat.model(preset))
        except LlmplanError as exc:
            raise PlanError(Problem(f"{path}.preset", str(exc))) from None
    elif hf_config is not None:
        from .hf import from_hf_config

        hf_path = Path(hf_config)
        if base_dir is not None and not hf_path.is_absolute():
            hf_path = base_dir / hf_path
        model, warnings = from_hf_config(hf_path)
        base = unstructure(model)
    merged = _deep_merge(base, table)
    kind = merged.pop("kind", "moe" if "moe" in merged else "dense")
    classes = {"dense": Dense, "moe": MoE}
    if kind not in classes:
        raise PlanError(
            Problem(f"{path}.kind", f"{kind!r} is not allowed{did_you_mean(str(kind), classes)} (allowed: dense, moe)")
        )
    if kind == "dense" and "moe" in merged:
        raise PlanError(Problem(f"{path}.moe", "a [model.moe] table needs kind = \"moe\""))
    try:
        return converter.structure(merged, classes[kind])
    except (ClassValidationError, ForbiddenExtraKeysError, PlanError, ValueError, TypeError) as exc:
        raise PlanError(_problems_from(exc, path)) from None


_PLAN_KEYS = ("name", "catalogs", "model", "method", "precision", "cluster", "parallelism", "efficiency", "cost", "ranges", "phase")

_RANGE_CLASSES = {"model": MoE, "method": Method, "precision": Precision, "cluster": Cluster, "parallelism": Parallelism, "efficiency": Efficiency, "cost": Cost}


def _structure_ranges(table: Any) -> tuple[dict[str, tuple[float, float]], list[Problem]]:
    """``[ranges]``: dotted plan key → [low, high], each bound parsed like the key itself."""
    if not isinstance(table, Mapping):
        return {}, [Problem("ranges", f"{table!r} is not a table of \"key.path\" = [low, high]")]
    out: dict[str, tuple[float, float]] = {}
    problems: list[Problem] = []
    for path, bounds in table.items():
        head, _, rest = path.partition(".")
        cls = _RANGE_CLASSES.get(head)
        if cls is None or not rest:
            problems.append(Problem(f"ranges.{path}", f"not a numeric plan key{did_you_mean(head, _RANGE_CLASSES)} (write e.g. \"method.tokens\")"))
            continue
        if not (isinstance(bounds, list) and len(bounds) == 2):
            problems.append(Problem(f"ranges.{path}", f"{bounds!r} is not [low, high]"))
            continue
        field = rest.split(".")[-1]
        hook = None
        for base in cls.__mro__:
            hook = FIELD_HOOKS.get(base, {}).get(field) or hook
        try:
            lo, hi = ((hook or _float)(b, None) for b in bounds)
        except (ValueError, LlmplanError) as exc:
            problems.append(Problem(f"ranges.{path}", str(exc)))
            continue
        if isinstance(lo, tuple):  # money: keep the amounts, the plan's own value sets the currency
            if lo[1] != hi[1]:
                problems.append(Problem(f"ranges.{path}", f"bounds in two currencies ({lo[1]}, {hi[1]})"))
                continue
            lo, hi = lo[0], hi[0]
        out[path] = (lo, hi)
    return out, problems


def _structure_phases(value: Any) -> tuple[list[Phase], list[Problem]]:
    """``[[phase]]``: an array of tables, each structured as a :class:`Phase` at ``phase[i]``."""
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        return [], [Problem("phase", f"{value!r} is not an array of tables (write each phase as [[phase]])")]
    phases: list[Phase] = []
    problems: list[Problem] = []
    own = set(_field_names(Phase))
    for index, table in enumerate(value):
        for key in table:  # keys of another table written into [[phase]]: say where they go
            if key not in own and key in _field_names(Parallelism):
                problems.append(Problem(f"phase[{index}].{key}", "a [parallelism] key: write it under [phase.parallelism]"))
            elif key not in own and key in _field_names(Method):
                problems.append(Problem(f"phase[{index}].{key}", f"a [method] key a phase does not override (a phase takes: {', '.join(sorted(own))})"))
        table = {k: v for k, v in table.items() if k in own or k not in _field_names(Parallelism) + _field_names(Method)}
        try:
            phases.append(structure(table, Phase, path=f"phase[{index}]"))
        except PlanError as exc:
            problems.extend(exc.problems)
    return phases, problems


def _structure_cluster(table: Mapping[str, Any], cat, path: str = "cluster") -> Cluster:
    table = dict(table)
    problems: list[Problem] = []
    gpu_value = table.pop("gpu", None)
    spec = table.pop("gpu_spec", None)
    gpu = None
    if gpu_value is None and spec is None:
        problems.append(Problem(f"{path}.gpu", "required key is missing (a catalog id such as \"h100-sxm\", or a [cluster.gpu_spec] table)"))
    elif spec is not None or isinstance(gpu_value, Mapping):
        try:
            gpu = structure(spec if spec is not None else gpu_value, GPU, path=f"{path}.gpu_spec" if spec is not None else f"{path}.gpu")
        except PlanError as exc:
            problems += exc.problems
    else:
        try:
            gpu = cat.gpu(gpu_value)
        except LlmplanError as exc:
            problems.append(Problem(f"{path}.gpu", str(exc)))
    links: dict[str, Link | None] = {}
    for key in ("intra_node", "inter_node"):
        value = table.pop(key, None)
        if value is None:
            links[key] = None if gpu is None else None
            continue
        try:
            links[key] = structure(value, Link, path=f"{path}.{key}") if isinstance(value, Mapping) else cat.link(value)
        except PlanError as exc:
            problems += exc.problems
        except LlmplanError as exc:
            problems.append(Problem(f"{path}.{key}", str(exc)))
    if gpu is not None:
        for key, default in (("intra_node", gpu.intra_node), ("inter_node", gpu.inter_node)):
            if links.get(key) is None:
                try:
                    links[key] = cat.link(default)
                except LlmplanError as exc:
                    problems.append(Problem(f"{path}.{key}", f"default of {gpu.id}: {exc}"))
    allowed = ["gpu", "gpu_spec", "gpus", "gpus_per_node", "intra_node", "inter_node", "nics_per_node"]
    simple: dict[str, Any] = {}
    for key, value in table.items():
        if key not in allowed:
            problems.append(Problem(f"{path}.{key}", f"unknown key{did_you_mean(key, allowed)} (allowed: {', '.join(allowed)})"))
            continue
        try:
            simple[key] = _int(value)
        except (ValueError, LlmplanError) as exc:
            problems.append(Problem(f"{path}.{key}", str(exc)))
    if problems:
        raise PlanError(problems)
    try:
        return Cluster(gpu=gpu, **links, **simple)
    except PlanError as exc:
        raise exc.prefixed(path) from None


def structure_plan(data: Mapping[str, Any], *, base_dir: Path | None = None, source: str | None = None) -> Plan:
    """Build a :class:`Plan` from a parsed plan file, reporting every problem at once."""
    from . import catalog as _catalog

    problems: list[Problem] = []
    for key in data:
        if key not in _PLAN_KEYS:
            problems.append(Problem(key, f"unknown table or key{did_you_mean(key, _PLAN_KEYS)} (allowed: {', '.join(_PLAN_KEYS)})"))
    cat = _catalog.default()
    extra = data.get("catalogs", [])
    if extra:
        try:
            cat = cat.extend([(base_dir / p) if base_dir else Path(p) for p in extra])
        except LlmplanError as exc:
            problems.append(Problem("catalogs", str(exc)))
    parts: dict[str, Any] = {}

    def attempt(key: str, build: Callable[[], Any]) -> None:
        try:
            parts[key] = build()
        except PlanError as exc:
            problems.extend(exc.problems)
        except LlmplanError as exc:
            problems.append(Problem(key, str(exc)))

    if "model" not in data:
        problems.append(Problem("model", "required table is missing ([model] with preset = \"…\", hf_config = \"…\" or the shape keys)"))
    else:
        attempt("model", lambda: _structure_model(dict(data["model"]), path="model", catalog=cat, base_dir=base_dir))
    if "cluster" not in data:
        problems.append(Problem("cluster", "required table is missing ([cluster] with gpu = \"…\" and gpus = N)"))
    else:
        attempt("cluster", lambda: _structure_cluster(data["cluster"], cat))
    for key, cls in (("method", Method), ("precision", Precision), ("parallelism", Parallelism), ("efficiency", Efficiency), ("cost", Cost)):
        if key in data:
            table = data[key]
            if not isinstance(table, Mapping):
                problems.append(Problem(key, f"{table!r} is not a table"))
                continue
            attempt(key, lambda t=table, c=cls, k=key: structure(t, c, path=k))
    if "name" in data:
        parts["name"] = data["name"] if isinstance(data["name"], str) else str(data["name"])
    if "ranges" in data:
        parts["ranges"], range_problems = _structure_ranges(data["ranges"])
        problems.extend(range_problems)
    if "phase" in data:
        parts["phases"], phase_problems = _structure_phases(data["phase"])
        problems.extend(phase_problems)
    if problems:
        raise PlanError(problems, source)
    try:
        return Plan(**parts)
    except PlanError as exc:
        raise PlanError(exc.problems, source) from None


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_toml(text: str, source: str = "<string>") -> dict[str, Any]:
    """``tomllib.loads`` with syntax errors reported as ``file:line:col: message``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        pos = _TOML_POS.search(message)
        where = f"{source}:{pos.group(1)}:{pos.group(2)}" if pos else source
        clean = _TOML_POS.sub("", message).strip()
        raise TomlSyntaxError(f"{where}: TOML syntax error: {clean}") from None


def _apply_includes(data: dict[str, Any], base_dir: Path | None, source: str) -> dict[str, Any]:
    """``include = ["calibration.toml", …]``: tables of those files, overridden by the plan's own."""
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise PlanError(Problem("include", f"{includes!r} is not a list of file paths"), source)
    merged: dict[str, Any] = {}
    for inc in includes:
        path = Path(inc)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PlanError(Problem("include", f"cannot read {str(path)!r}: {exc.strerror or exc}"), source) from None
        merged = _deep_merge(merged, parse_toml(text, str(path)))
    return _deep_merge(merged, data) if includes else data


def loads(text: str, *, source: str = "<string>", base_dir: str | os.PathLike | None = None) -> Plan:
    """Parse plan TOML text into a :class:`Plan` (``include`` files merged under it)."""
    base = Path(base_dir) if base_dir else None
    data = _apply_includes(parse_toml(text, source), base, source)
    return structure_plan(data, base_dir=base, source=source)


def load(path: str | os.PathLike) -> Plan:
    """Read a plan file. Relative ``hf_config`` and ``catalogs`` paths resolve from its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LlmplanError(f"{path}: cannot read plan file: {exc.strerror or exc}") from None
    return loads(text, source=str(path), base_dir=path.parent)


def dump(plan: Plan, path: str | os.PathLike | None = None) -> str:
    """The plan as TOML text (written to ``path`` too when given); ``loads(dump(p)) == p``."""
    import tomli_w

    text = tomli_w.dumps(unstructure(plan))
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
