"""Evaluate a plan: every reported quantity as value + formula + source.

>>> est = llmplan.estimate(plan)                       # doctest: +SKIP
>>> est["memory.per_gpu.activations"].value            # bytes
>>> print(est["time.step_seconds"].explain())          # formula, numbers, result
>>> est.report()                                        # the JSON contract

Definitions (the sympy expressions) depend only on the plan's *structure*
(architecture options, ZeRO stage, recompute mode …) and are cached on it;
numbers are bound afterwards and evaluated through cached ``lambdify``.
"""

from __future__ import annotations

from typing import Any

import attrs
import sympy

from . import symbols as S
from .bindings import evaluate, model_values, plan_values
from .checks import plan_warnings
from .formulas import Definitions, comm, flops, memory, money, serving, time
from .formulas import params as P
from .model import Model
from .plan import Plan
from .symbols import TABLE

__all__ = ["Term", "ParamCounts", "Estimate", "estimate", "param_counts", "definitions"]


@attrs.frozen
class ParamCounts:
    """Exact parameter counts of a model (integers).

    Attributes:
        total: everything the transformers class holds (MTP excluded).
        active: used per token (only top-k routed experts), embeddings and head included.
        embedding, lm_head, attention, mlp, experts, shared_experts, router, norms:
            whole-model components (sum = total).
        mtp: DeepSeek multi-token-prediction modules (not in total).
    """

    total: int
    active: int
    embedding: int
    lm_head: int
    attention: int
    mlp: int
    experts: int
    shared_experts: int
    router: int
    norms: int
    mtp: int
    per_layer: dict[str, int]


def param_counts(model: Model) -> ParamCounts:
    """Exact parameter counts of ``model`` (see :mod:`llmplan.formulas.params`)."""
    vals = model_values(model)
    comp = {k: int(evaluate(v, vals)) for k, v in P.components(model).items()}
    per_layer = {
        "attention": int(evaluate(P.attention_per_layer(model), vals)),
        "mlp": int(evaluate(P.mlp_per_layer(model), vals)) if model.n_dense_layers else 0,
        "expert": int(evaluate(P.expert(model), vals)) if model.is_moe else 0,
        "shared_experts": int(evaluate(P.shared_experts_per_layer(model), vals)),
        "router": int(evaluate(P.router_per_layer(model), vals)),
        "norms": int(evaluate(P.norms_per_layer(model), vals)),
    }
    return ParamCounts(
        total=int(evaluate(P.total(model), vals)),
        active=int(evaluate(P.active(model), vals)),
        mtp=int(evaluate(P.mtp(model), vals)),
        per_layer=per_layer,
        **comp,
    )


@attrs.frozen
class Term:
    """One reported quantity of an estimate.

    Attributes:
        key: contract name (``"memory.per_gpu.activations"``).
        value: the number, in ``unit``.
        expr: its defining formula (may name other quantities' symbols).
        full_expr: the formula expanded to input symbols (computed on first use).
        unit, description, source: what it is and where the formula comes from.
        values: the bound numbers of the symbols in ``expr``.
    """

    key: str
    value: Any
    expr: sympy.Expr
    unit: str
    description: str
    source: str
    values: dict
    _expand: Any = attrs.field(default=None, eq=False, repr=False)

    @property
    def full_expr(self) -> sympy.Expr:
        """The formula expanded down to input symbols."""
        return self.expr if self._expand is None else self._expand(self.key)

    @property
    def breakdown(self) -> dict[str, Any]:
        """The reported quantities this one is built from, with their values."""
        out = {}
        for sym in sorted(self.expr.free_symbols, key=lambda x: x.name):
            key = self.values.get(("desc", sym))
            if key:
                out[key] = self.values.get(sym)
        return out

    def latex(self) -> str:
        """LaTeX of the defining formula."""
        return sympy.latex(self.expr)

    def explain(self) -> str:
        """Formula, the numbers substituted into it, and the result with its unit."""
        lines = [f"{self.key} — {self.description}", f"  formula:  {_sym_name(self)} = {sympy.sstr(self.expr)}"]
        if self.source and self.source != "-":
            lines.append(f"  source:   {self.source}")
        syms = sorted(self.expr.free_symbols, key=lambda s: s.name)
        if syms:
            lines.append("  where:")
            for sym in syms:
                meaning = TABLE[sym.name].description if sym.name in TABLE else _derived_desc(self, sym)
                unit = TABLE[sym.name].unit if sym.name in TABLE else ""
                lines.append(f"    {sym.name:>10} = {_fmt(self.values.get(sym))} {unit}  ({meaning})".rstrip())
        lines.append(f"  result:   {_fmt(self.value)} {self.unit}")
        return "\n".join(lines)


def _sym_name(term: Term) -> str:
    return term.values.get("__symbol__", term.key)


def _derived_desc(term: Term, sym) -> str:
    return term.values.get(("desc", sym), "")


def _fmt(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e7:
            return f"{value:,.6g}"
        return f"{value:.6g}"
    return str(value)


def _structure_key(plan: Plan) -> tuple:
    """Everything about a plan that changes the *shape* of its formulas (not its numbers)."""
    m, par, meth = plan.model, plan.parallelism, plan.method
    moe = m.moe if m.is_moe else None  # type: ignore[attr-defined]
    return (
        type(m).__name__,
        m.mlp,
        m.norm,
        m.qk_norm,
        m.attention_bias,
        m.mlp_bias,
        m.position,
        m.tied_embeddings,
        m.dropout,
        m.parallel_residual,
        m.sandwich_norm,
        m.sliding_window is not None,
        m.n_sliding_layers == m.layers,
        m.max_positions is not None,  # memory.max_context of an all-windowed model is bounded by it
        m.attn_softcap is not None,
        m.attention_sinks,
        m.logit_softcap is not None,
        m.mtp_layers > 0,
        None if m.mla is None else m.mla.q_lora_rank is None,
        None if moe is None else (moe.shared_experts > 0, moe.router_bias, moe.shared_expert_gate),
        m.n_dense_layers > 0,
        meth.kind,
        meth.quant_scope,
        meth.base_bits == 4,
        meth.experts_quantized,
        plan.precision.dtype("compute") == "fp8",
        par.zero,
        par.dp_shard is not None and par.zero >= 1,  # hybrid sharding: the replicas' all-reduce
        # FSDP ZeRO-2/3: per-micro-batch gathers; parameter and gradient shards in the master dtype when there is one
        None if par.zero < 2 or par.sharding != "fsdp" else plan.precision.dtype("master") is not None,
        par.recompute,
        par.partial_recompute,  # [parallelism] recompute_layers: the recomputed share (n_rc) in the formulas
        par.grouped_recompute,  # recompute_method = "uniform": groups of n_rc layers
        # [parallelism] recompute_modules and [precision] linear_inputs / activation_func_inputs
        tuple(sorted(par.selective_modules)),
        plan.precision.linear_inputs is not None,
        plan.precision.activation_func_inputs is not None,
        par.flash_attention,
        par.sp,
        par.tp_comm_overlap and par.sp,  # communication.tp_exposed_seconds: the overlap model or all of T_tp
        par.dp_overlap,  # communication.dp_exposed_seconds: hidden behind the backward or all exposed
        par.pp_schedule,
        par.offload,
        # framework = "hf": activations_per_layer(hf=True), whose terms also follow hf_model_type
        (par.framework, (m.hf_model_type, m.hf_activation) if par.framework == "hf" else None),
        par.pp == 1,
        par.cp > 1,
        plan.efficiency.mfu is not None,
        # [method] mtp (MTP FLOPs) and group-limited routing (comm.group_limited_all_to_all)
        meth.trains_mtp(m),
        None if moe is None else moe.route_groups is not None,
        None if plan.cost is None else (plan.cost.gpu_hour is not None, plan.cost.on_prem is not None and plan.cost.on_prem.power_price is not None, plan.cost.on_prem is not None),
    )


_DEF_CACHE: dict[tuple, Definitions] = {}


def definitions(plan: Plan, stage: str = "first") -> Definitions:
    """The quantity definitions (sympy) for ``plan``'s structure, cached.

    ``stage``: the pipeline rank ``memory.*`` describes — ``"first"`` (rank 0), ``"middle"``
    (rank 1) or ``"last"`` (rank pp − 1); only plans with uneven stages
    (``first_stage_layers`` / ``last_stage_layers``) distinguish them.
    """
    key = (_structure_key(plan), stage if plan.parallelism.uneven_stages else "first")
    cached = _DEF_CACHE.get(key)
    if cached is not None:
        return cached
    q = Definitions(plan, stage=key[1])
    flops.define(q)
    if not plan.method.training:
        serving.define(q)
    else:
        memory.define(q)
        comm.define(q)
        time.define(q)
        money.define(q)
    _DEF_CACHE[key] = q
    return q


class Estimate:
    """The evaluated plan. Index by contract key: ``est["time.days"].value``."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.params = param_counts(plan.model)
        values, warnings = plan_values(plan, self.params.total, self.params.active)
        self.warnings: list[str] = plan_warnings(plan) + warnings
        #: (rank, layers, memory.per_gpu.total) of each pipeline rank evaluated — the first,
        #: second and last of a plan with uneven stages; empty otherwise
        self.stage_memory: list[tuple[int, int, float]] = []
        par = plan.parallelism
        if plan.method.training and par.uneven_stages and par.pp > 1:
            layers = par.stage_layers(plan.model.layers)
            ranks = {0: "first", 1: "middle", par.pp - 1: "last"}  # rank 1 is a middle stage when pp ≥ 3
            best = None
            for rank, stage in sorted(ranks.items()):
                vals = dict(values)
                vals[S.L_s], vals[S.i_pp] = layers[rank], rank
                q = definitions(plan, stage)
                results = self._evaluate(q, vals)
                total = results["memory.per_gpu.total"]
                self.stage_memory.append((rank, layers[rank], float(total)))
                if best is None or total > best[2]["memory.per_gpu.total"]:
                    best = (q, vals, results)
            self.definitions, self.values, self.results = best
        else:
            self.definitions = definitions(plan)
            self.results = self._evaluate(self.definitions, values)
            self.values = values
        if self.plan.method.training and not self.fits:
            total, cap = self.results["memory.per_gpu.total"], self.results["memory.capacity"]
            self.warnings.append(
                f"does not fit: {total / 2**30:.1f} GiB needed on the most loaded GPU, {cap / 2**30:.1f} GiB available"
            )

    @staticmethod
    def _evaluate(q: Definitions, values: dict) -> dict[str, Any]:
        """Evaluate every quantity of ``q`` in order, binding each result's symbol in ``values``."""
        results: dict[str, Any] = {}
        for key, item in q.items.items():
            value = evaluate(item.expr, values)
            values[item.symbol] = value
            results[key] = value
        return results

    @property
    def fits(self) -> bool:
        """Whether the most loaded GPU's total is within its capacity."""
        return bool(self.results["memory.per_gpu.total"] <= self.results["memory.capacity"])

    def keys(self) -> list[str]:
        return list(self.results)

    def __getitem__(self, key: str) -> Term:
        if key.startswith("params."):
            name = key.split(".", 1)[1]
            value = getattr(self.params, name, None) if name != "trainable" else self.report()["params"]["trainable"]
            if value is None:
                raise KeyError(key)
            expr = P.total(self.plan.model) if name in ("total", "trainable") else (
                P.active(self.plan.model) if name == "active" else P.components(self.plan.model).get(name, sympy.Integer(value))
            )
            return Term(key, value, expr, "params", "parameter count", P.__doc__.splitlines()[0], dict(self.values))
        if key not in self.definitions.items:
            from .errors import LlmplanError, did_you_mean

            known = list(self.definitions.items) + [f"params.{k}" for k in ("total", "active", "trainable")]
            raise LlmplanError(f"unknown quantity {key!r}{did_you_mean(key, known)}; known: {', '.join(known)}")
        q = self.definitions.items[key]
        vals = {s: self.values[s] for s in q.expr.free_symbols if s in self.values}
        vals["__symbol__"] = q.symbol.name
        for s in q.expr.free_symbols:
            if s in self.definitions.by_symbol:
                vals[("desc", s)] = self.definitions.by_symbol[s].key
        return Term(key, self.results[key], q.expr, q.unit, q.description, q.source, vals, self.definitions.full)

    def value(self, key: str) -> Any:
        """The number of one quantity."""
        if key in self.results:
            return self.results[key]
        return self[key].value

    def __getattr__(self, name: str) -> Any:
        # attribute access to groups: est.memory.activations, est.time.days …
        if name.startswith("_") or name in ("plan", "params", "definitions", "values", "warnings", "results", "stage_memory"):
            raise AttributeError(name)
        prefixes = {k.split(".", 1)[0] for k in self.results}
        if name in prefixes:
            return _Node(self, name)
        raise AttributeError(f"Estimate has no quantity group {name!r} (groups: {', '.join(sorted(prefixes))})")


    def report(self) -> dict[str, Any]:
        """The JSON report (``plan-format.md`` contract keys, plus breakdowns)."""
        r = self.results
        g = lambda k: _num(r.get(k))  # noqa: E731
        pc = self.params
        training = self.plan.method.training
        mem_keys = ["weights", "gradients", "optimizer", "activations", "other", "total"]
        if not training:
            mem_keys.insert(4, "kv_cache")
        out: dict[str, Any] = {
            "name": self.plan.name,
            "params": {
                "total": pc.total,
                "active": pc.active,
                "trainable": (int(self.values[S.N_tr]) if self.plan.method.adapter else pc.total) if training else 0,
                "embedding": pc.embedding,
                "lm_head": pc.lm_head,
                "attention": pc.attention,
                "mlp": pc.mlp,
                "experts": pc.experts,
                "shared_experts": pc.shared_experts,
                "router": pc.router,
                "norms": pc.norms,
                "mtp": pc.mtp,
            },
            "flops": {
                "total": g("flops.total"),
                "hardware_total": g("flops.hardware_total"),
                "per_token": g("flops.per_token"),
                "six_nd": g("flops.six_nd"),
            },
            "memory": {
                "per_gpu": {k: g(f"memory.per_gpu.{k}") for k in mem_keys},
                "capacity": g("memory.capacity"),
                "fits": self.fits,
            },
            "communication": {
                "per_step_bytes": g("communication.per_step_bytes"),
                "exposed_seconds_per_step": g("communication.exposed_seconds_per_step"),
            },
            "time": {
                k: g(f"time.{k}")
                for k in ("step_seconds", "total_seconds", "days", "gpu_hours", "mfu", "hfu", "tflops_per_gpu", "steps")
            },
            "cost": {"total": g("cost.total"), "currency": self._currency()},
            "energy": {"kwh": g("energy.kwh")},
            "warnings": list(self.warnings),
        }
        if self.stage_memory:  # uneven stages: the pipeline ranks compared for the most loaded GPU
            reported = int(self.values[S.i_pp])
            out["memory"]["pipeline_ranks"] = [
                {"rank": rank, "layers": layers, "total": _num(total), "reported": rank == reported}
                for rank, layers, total in self.stage_memory
            ]
        if "cost.cloud" in r:
            out["cost"]["cloud"] = g("cost.cloud")
        if "cost.on_prem" in r:
            out["cost"]["on_prem"] = g("cost.on_prem")
        if "cost.break_even_hours_per_month" in r:
            out["cost"]["break_even_hours_per_month"] = g("cost.break_even_hours_per_month")
        if not training:
            # --- serving keys (llmplan.formulas.serving; documented in docs/serving.md) ---
            target = self.plan.method.requests_per_second is not None
            for k in ("kv_cache_per_token", "bytes_per_linear_weight", "max_batch", "max_context", "kv_cache_capacity_tokens"):
                out["memory"][k] = g(f"memory.{k}")
            for k in ("prefill_seconds", "decode_step_seconds", "ttft_seconds", "tpot_seconds", "request_seconds"):
                out["time"][k] = g(f"time.{k}")
            out["throughput"] = {
                k: g(f"throughput.{k}")
                for k in (
                    "decode_tokens_per_second",
                    "decode_tokens_per_second_per_replica",
                    "requests_per_second",
                    "requests_per_second_per_replica",
                    "output_tokens_per_second",
                )
            }
            out["serving"] = {
                "gpus_per_replica": g("serving.gpus_per_replica"),
                "replicas_in_cluster": self.values.get(S.n_dp),
                "target_requests_per_second": self.plan.method.requests_per_second,
                "replicas": g("serving.replicas") if target else None,
                "gpus": g("serving.gpus") if target else None,
            }
            for k in ("per_hour", "per_million_input_tokens", "per_million_output_tokens", "per_million_tokens"):
                out["cost"][k] = g(f"cost.{k}")
            out["cost"]["per_hour_at_target"] = g("cost.per_hour_at_target") if target else None
            if not self.fits:
                out["warnings"].append(
                    f"does not fit: {r['memory.per_gpu.total'] / 2**30:.1f} GiB needed per GPU, "
                    f"{r['memory.capacity'] / 2**30:.1f} GiB available (memory.max_batch = {g('memory.max_batch')})"
                )
            # --- end serving keys ---
        if self.plan.ranges:
            from .analysis import ranges

            out["ranges"] = ranges(self.plan, self.plan.ranges)
        if self.plan.phases:  # [[phase]]: "phases" and "phases_total" (llmplan.phases)
            from .phases import phases_report

            out.update(phases_report(self.plan))
        return out

    def _currency(self) -> str | None:
        if self.plan.cost is None:
            return None
        from .bindings import _currency

        return _currency(self.plan)[0]


class _Node:
    """A group of quantities reached by attribute access (``est.memory.per_gpu``)."""

    def __init__(self, est: Estimate, prefix: str):
        self._est, self._prefix = est, prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        keys = self._est.results
        for key in (f"{self._prefix}.{name}", f"{self._prefix}.per_gpu.{name}"):
            if key in keys:
                return self._est[key]
        sub = f"{self._prefix}.{name}"
        if any(k.startswith(sub + ".") for k in keys):
            return _Node(self._est, sub)
        children = sorted({k[len(self._prefix) + 1 :].split(".")[0] for k in keys if k.startswith(self._prefix + ".")})
        raise AttributeError(f"{self._prefix} has no {name!r} (has: {', '.join(children)})")

    def __dir__(self):
        return sorted({k[len(self._prefix) + 1 :].split(".")[0] for k in self._est.results if k.startswith(self._prefix + ".")})

    def __repr__(self) -> str:
        return f"<quantities {self._prefix}.{{{', '.join(self.__dir__())}}}>"


def _num(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def estimate(plan: Plan) -> Estimate:
    """Evaluate ``plan``: every quantity of the contract, with its formula."""
    if plan.method.kind == "rl":  # RL post-training: composed of derived plans (llmplan.rl, docs/rl.md)
        from .rl import RLEstimate

        return RLEstimate(plan)
    return Estimate(plan)
