"""Cross-table plan checks: errors that make a layout impossible, warnings that make it slow.

Per-field checks live on each class (``_problems``); these need several tables at
once (the layout against the model and the cluster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import Problem
from .model import divisors

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["plan_problems", "plan_warnings", "resolved_dp"]


def resolved_dp(plan: "Plan") -> int | None:
    """Data-parallel size: explicit, or gpus ÷ (tp·pp·cp); ``None`` when gpus is unknown."""
    par = plan.parallelism
    if par.dp != "auto":
        return par.dp  # type: ignore[return-value]
    gpus = plan.cluster.gpus
    if gpus is None:
        return None
    return gpus // (par.tp * par.pp * par.cp)


def plan_problems(plan: "Plan") -> list[Problem]:
    """Every layout error of ``plan`` (empty when it is valid)."""
    m, par, cl = plan.model, plan.parallelism, plan.cluster
    p: list[Problem] = []
    heads = m.heads
    if heads % par.tp:
        allowed = ", ".join(str(x) for x in divisors(heads))
        p.append(Problem("parallelism.tp", f"{par.tp} does not divide heads = {heads} (allowed: {allowed})"))
    if par.pp > m.layers:
        p.append(Problem("parallelism.pp", f"{par.pp} exceeds layers = {m.layers} (allowed: 1 … {m.layers})"))
    if par.pp_schedule == "interleaved" and par.pp * par.v > m.layers:
        p.append(
            Problem(
                "parallelism.virtual_stages",
                f"pp × virtual_stages = {par.pp * par.v} exceeds layers = {m.layers}",
            )
        )
    if par.cp > 1 and plan.method.seq_len % (2 * par.cp):
        p.append(
            Problem(
                "parallelism.cp",
                f"seq_len = {plan.method.seq_len} is not divisible by 2·cp = {2 * par.cp} (ring attention load balancing)",
            )
        )
    if m.is_moe:
        experts = m.moe.experts  # type: ignore[attr-defined]
        if experts % par.ep:
            allowed = ", ".join(str(x) for x in divisors(experts))
            p.append(Problem("parallelism.ep", f"{par.ep} does not divide experts = {experts} (allowed: {allowed})"))
    elif par.ep != 1:
        p.append(Problem("parallelism.ep", f"{par.ep}: expert parallelism needs a MoE model (allowed: 1)"))
    gpus = cl.gpus
    if gpus is not None:
        mp = par.tp * par.pp * par.cp
        if par.dp == "auto":
            if gpus % mp:
                p.append(
                    Problem(
                        "cluster.gpus",
                        f"{gpus} is not a multiple of tp·pp·cp = {mp} (allowed: multiples of {mp})",
                    )
                )
        elif par.dp * mp != gpus:
            p.append(
                Problem(
                    "parallelism.dp",
                    f"{par.dp}: dp·tp·pp·cp = {par.dp * mp} but cluster.gpus = {gpus} (allowed: \"auto\" or {gpus // mp if gpus % mp == 0 else 'none'})",
                )
            )
    dp = resolved_dp(plan)
    if dp is not None and dp >= 1 and m.is_moe and dp % par.ep:
        p.append(Problem("parallelism.ep", f"{par.ep} does not divide dp = {dp} (ep is carved out of dp)"))
    meth = plan.method
    if dp is not None and dp >= 1 and meth.global_batch is not None and meth.training:
        per_step = dp * par.micro_batch
        if meth.global_batch % per_step:
            p.append(
                Problem(
                    "method.global_batch",
                    f"{meth.global_batch} is not a multiple of dp × micro_batch = {dp} × {par.micro_batch} = {per_step}",
                )
            )
    if plan.precision.dtype("compute") == "fp8" and "fp8" not in cl.gpu.peak:
        p.append(Problem("precision.compute", f"fp8: {cl.gpu.id} has no FP8 tensor cores in the catalog"))
    return p


def plan_warnings(plan: "Plan") -> list[str]:
    """Things that are allowed but probably not wanted."""
    m, par, cl = plan.model, plan.parallelism, plan.cluster
    w: list[str] = []
    if m.mla is None and par.tp > m.n_kv_heads:
        w.append(
            f"parallelism.tp = {par.tp} exceeds kv_heads = {m.n_kv_heads}: "
            f"each KV head is replicated on {par.tp // m.n_kv_heads} GPUs"
        )
    elif m.mla is None and m.n_kv_heads % par.tp:
        w.append(f"parallelism.tp = {par.tp} does not divide kv_heads = {m.n_kv_heads}: KV heads are replicated")
    if par.tp > cl.nvlink_domain:
        w.append(
            f"parallelism.tp = {par.tp} spans beyond the NVLink domain of {cl.gpu.id} "
            f"({cl.nvlink_domain} GPU{'s' if cl.nvlink_domain > 1 else ''}): tensor-parallel traffic crosses a slower link"
        )
    if par.pp > 1 and m.layers % par.pp:
        w.append(
            f"parallelism.pp = {par.pp} does not divide layers = {m.layers}: stages are uneven, "
            "the slowest stage sets the pace"
        )
    if par.pp > 1 and par.zero >= 2:
        w.append(f"parallelism.zero = {par.zero} with pp = {par.pp}: ZeRO-2/3 re-shard gradients every micro-batch (Megatron and DeepSpeed allow only ZeRO-1 with PP)")
    if par.framework == "hf" and par.recompute == "selective":
        w.append(
            'parallelism.framework = "hf" with recompute = "selective": transformers has no selective '
            'recomputation (its gradient checkpointing is recompute = "full"); the attention core is '
            "priced as recomputed, as in Megatron-LM"
        )
    return w
