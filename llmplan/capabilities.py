"""What can this cluster do? A models × methods matrix built on :func:`llmplan.estimate`.

For each model and training method the matrix says whether it fits on the cluster,
how long a stated token budget takes, and — when it does not fit — the smallest
change that makes it fit: more GPUs of the same kind, or a GPU with more memory at
the same count.

**Layout rule.** Every cell is a real :class:`~llmplan.plan.Plan` evaluated by
:func:`llmplan.estimate`. Its layout is chosen from a short, fixed list of the
layouts practitioners start from, cheapest communication first:

1. ``dp`` — data parallel, ZeRO-1 (optimizer state sharded), selective recompute;
   ``dp+full`` the same with full recompute (activation checkpointing);
2. ``fsdp`` — ZeRO-3 / FSDP full-shard over all GPUs, full recompute;
3. ``tp`` — tensor parallel inside the NVLink domain (the largest *t* that fits the
   domain, divides the heads and the GPU count), ZeRO-1, selective recompute;
4. ``tp+fsdp`` — the same *t*, ZeRO-3 over the data-parallel replicas, full recompute;
5. ``3d`` — the same *t*, pipeline stages across nodes (the fewest powers of two
   whose model state fits), ZeRO-1, full recompute (Megatron-LM's rule: tensor
   parallel inside the NVLink domain, pipeline across nodes — article 000 §3);
6. ``fsdp+offload`` — ZeRO-3 with the optimizer state in host memory (ZeRO-Offload).

Among the layouts that fit, the one with the shortest estimated time is reported;
when none fits, the one needing the least memory is shown with its breakdown.
Sequences are 4,096 tokens for pre-training and 2,048 for fine-tuning, in global
batches of about 4M (pre-training) or 64 sequences (fine-tuning); precision is
``bf16-mixed`` with AdamW; LoRA/QLoRA use rank 16 on q/k/v/o (PEFT's usual targets; the
MLA projections for DeepSeek-V3).
Every one of these is an argument.

**Token budgets** default to :func:`llmplan.data_sizing.training_tokens`: 20 tokens
per parameter from scratch (20 × active parameters for MoE, as
``method.tokens = "chinchilla"``), 10 % of that for continued pre-training, and
50k samples × 1,000 tokens × 3 epochs for fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from . import catalog as _catalog
from .data_sizing import training_tokens
from .errors import LlmplanError
from .estimate import estimate, param_counts
from .hardware import GPU
from .model import Dense, Model
from .plan import Cluster, LoRA, Method, Parallelism, Plan, Precision

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_MODELS",
    "SERVING_METHODS",
    "Cell",
    "Layout",
    "Matrix",
    "add_cli",
    "best_layout",
    "capabilities",
    "layouts",
    "llama_like",
]

DEFAULT_MODELS = ("llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-405b", "mixtral-8x7b", "deepseek-v3")
DEFAULT_METHODS = ("pretrain", "continued-pretrain", "full-finetune", "lora", "qlora")

#: Serving columns: ``serve-<weight dtype>`` (inference at a 4,096-token context,
#: 512 generated tokens, one sequence; KV cache in bf16). The article's rows
#: ("70B INT4 on 4× A6000", "70B FP16 on 8× A100") are of this kind.
SERVING_METHODS = ("serve-fp16", "serve-int8", "serve-int4")
SERVING_CONTEXT, SERVING_NEW_TOKENS = 4096, 512

#: Tokens per optimizer step for pre-training (Llama 2: 4M tokens, published.md §1.1).
PRETRAIN_BATCH_TOKENS = 4 * 2**20
#: Sequences per optimizer step for fine-tuning (an assumption; gradient accumulation
#: reaches it on any number of GPUs).
FINETUNE_BATCH = 64

_GiB = 2**30


@attrs.frozen
class Layout:
    """One candidate layout: a name from the rule list and its :class:`Parallelism`."""

    name: str
    parallelism: Parallelism


@attrs.frozen
class Cell:
    """One (model, method) entry of the matrix.

    Attributes:
        model, method: the row and column.
        params: total parameters; ``active``: per token.
        tokens: the token budget the time is for.
        fits: whether some layout of the rule list fits on the cluster.
        layout: the chosen layout's name (fastest fitting, else least memory).
        parallelism: its tp, pp, zero, recompute, offload.
        memory: per-GPU bytes of the chosen layout by part (weights … total) and capacity.
        days, gpu_hours, mfu: for ``tokens`` with the chosen layout (``None`` when it does not fit).
        more_gpus: the smallest GPU count of the same kind that fits (``None`` when it fits
            already or nothing up to 4096× does).
        bigger_gpu: the smallest-memory catalog GPU that fits at the same count.
        warnings: the estimate's warnings.
    """

    model: str
    method: str
    params: int
    active: int
    tokens: float
    fits: bool
    layout: str
    parallelism: dict[str, Any]
    memory: dict[str, float]
    days: float | None
    gpu_hours: float | None
    mfu: float | None
    more_gpus: int | None = None
    bigger_gpu: str | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    decode_tokens_per_second: float | None = None

    def verdict(self) -> str:
        """Short article-style text: ``"yes, 3.2 days"`` or ``"no: fits on 16 GPUs or h200-sxm"``."""
        if self.error is not None:
            return "invalid plan"
        if self.fits and self.decode_tokens_per_second is not None:
            return f"yes, {self.decode_tokens_per_second:,.0f} tok/s"
        if self.fits:
            return f"yes, {human_time(self.days)}"
        options = []
        if self.more_gpus is not None:
            options.append(f"{self.more_gpus} GPUs")
        if self.bigger_gpu is not None:
            options.append(self.bigger_gpu)
        return "no" + (f": fits on {' or '.join(options)}" if options else "")

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Matrix:
    """The capabilities of one cluster: :class:`Cell` per (model, method)."""

    gpu: str
    gpus: int
    cells: tuple[Cell, ...]

    def cell(self, model: str, method: str) -> Cell:
        for c in self.cells:
            if c.model == model and c.method == method:
                return c
        raise KeyError((model, method))

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "gpus": self.gpus, "cells": [c.to_dict() for c in self.cells]}

    def table(self) -> str:
        """The article-style matrix: models down, methods across, verdicts in the cells."""
        models = list(dict.fromkeys(c.model for c in self.cells))
        methods = list(dict.fromkeys(c.method for c in self.cells))
        head = [f"{self.gpus}× {self.gpu}"] + methods
        rows = [head]
        for m in models:
            rows.append([m] + [self.cell(m, meth).verdict() for meth in methods])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = ["", "time: llmplan's estimate for the token budget (pretrain: 20 tokens/param; continued: 10 % of that;",
                 "fine-tune/LoRA/QLoRA: 50k samples × 1,000 tokens × 3 epochs unless given)."]
        if any(m.startswith("serve-") for m in methods):
            notes.append(f"serve-*: weights in that dtype, {SERVING_CONTEXT:,}-token context + {SERVING_NEW_TOKENS} generated, one sequence; tok/s = decode throughput.")
        return "\n".join(lines + notes)


def human_time(days: float | None) -> str:
    """``0.2`` → ``"4.8 h"``, ``12`` → ``"12 days"``, ``400`` → ``"1.1 years"``."""
    if days is None:
        return "—"
    if days < 1:
        return f"{days * 24:.1f} h"
    if days < 60:
        return f"{days:.3g} days"
    if days < 730:
        return f"{days / 30:.3g} months"
    return f"{days / 365:.3g} years"


# ---------------------------------------------------------------------------------------
# layouts
# ---------------------------------------------------------------------------------------


def _tp_size(model: Model, cluster: Cluster) -> int:
    """Largest power of two ≤ the NVLink domain (and node) that divides heads and GPUs."""
    limit = min(cluster.nvlink_domain, cluster.per_node, cluster.gpus or 1)
    t = 1
    while t * 2 <= limit and model.heads % (t * 2) == 0 and (cluster.gpus or 1) % (t * 2) == 0:
        t *= 2
    return t


def _pp_size(model: Model, cluster: Cluster, tp: int, params: int) -> int | None:
    """Fewest pipeline stages (power of two) whose 16 bytes/param of model state fit in
    60 % of a GPU with ``tp``-way tensor parallelism; ``None`` when the cluster is too small."""
    gpus = cluster.gpus or 1
    need = 16 * params / (0.6 * cluster.gpu.memory * tp)
    p = 1
    while p < need:
        p *= 2
    p = max(p, 2)
    if p > model.layers or tp * p > gpus or gpus % (tp * p):
        return None
    return p


def layouts(model: Model, cluster: Cluster, params: int | None = None) -> list[Layout]:
    """The candidate layouts of the rule list (module docstring) valid on ``cluster``."""
    gpus = cluster.gpus or 1
    out = [
        Layout("dp", Parallelism(zero=1, recompute="selective")),
        Layout("dp+full", Parallelism(zero=1, recompute="full")),
        Layout("fsdp", Parallelism(zero=3, recompute="full")),
    ]
    t = _tp_size(model, cluster)
    if t > 1:
        out.append(Layout("tp", Parallelism(tp=t, zero=1, recompute="selective")))
        if gpus // t > 1:
            out.append(Layout("tp+fsdp", Parallelism(tp=t, zero=3, recompute="full")))
        if params is not None:
            p = _pp_size(model, cluster, t, params)
            if p is not None:
                out.append(Layout("3d", Parallelism(tp=t, pp=p, zero=1, recompute="full")))
    out.append(Layout("fsdp+offload", Parallelism(zero=3, recompute="full", offload="optimizer")))
    return out


#: LoRA targets for multi-head latent attention (DeepSeek-V3), PEFT module names.
MLA_TARGETS = ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")


def _method(kind: str, tokens: float, seq_len: int | None, lora: LoRA | None, model: Model | None = None) -> Method:
    if lora is None and model is not None and model.mla is not None:
        lora = LoRA(targets=MLA_TARGETS)
    training_seq = seq_len or (4096 if kind in ("pretrain", "continued-pretrain") else 2048)
    tokens = max(1, round(tokens))
    if kind in ("pretrain", "continued-pretrain"):
        return Method(kind=kind, tokens=tokens, seq_len=training_seq, global_batch_tokens=PRETRAIN_BATCH_TOKENS)
    return Method(
        kind=kind,
        tokens=tokens,
        seq_len=training_seq,
        global_batch_tokens=FINETUNE_BATCH * training_seq,
        lora=lora if kind in ("lora", "qlora") else None,
    )


def _num(value: Any) -> float | None:
    """A plain float (numpy scalars and sympy numbers included)."""
    return None if value is None else float(value)


_LAST_ERROR: list[str] = []


def _evaluate(plan: Plan):
    try:
        return estimate(plan)
    except (LlmplanError, ValueError, KeyError, ZeroDivisionError) as exc:  # an invalid combination is not a candidate
        _LAST_ERROR[:] = [f"{type(exc).__name__}: {exc}"]
        return None


def _serving_layouts(model: Model, cluster: Cluster) -> list[Layout]:
    gpus = cluster.gpus or 1
    out = []
    for tp in (d for d in range(1, gpus + 1) if gpus % d == 0 and model.heads % d == 0):
        pp = gpus // tp
        if pp <= model.layers:
            out.append(Layout(f"serve tp{tp} pp{pp}", Parallelism(tp=tp, pp=pp)))
    return out


def best_layout(
    model: Model,
    method: Method,
    cluster: Cluster,
    *,
    params: int | None = None,
    precision=None,
) -> tuple[Layout, Any] | None:
    """(layout, estimate) of the fastest fitting candidate, else of the least-memory one.

    Serving plans try every tp × pp = GPUs split (tp dividing the heads) instead of the
    training rule list: weights only need to be spread, not sharded for an optimizer.
    """
    fitting, others = [], []
    candidates = layouts(model, cluster, params) if method.training else _serving_layouts(model, cluster)
    for lay in candidates:
        kw = {} if precision is None else {"precision": precision}
        try:
            plan = Plan(model=model, method=method, cluster=cluster, parallelism=lay.parallelism, **kw)
        except (LlmplanError, ValueError) as exc:
            _LAST_ERROR[:] = [f"{type(exc).__name__}: {exc}"]
            continue
        est = _evaluate(plan)
        if est is None:
            continue
        (fitting if est.fits else others).append((lay, est))
    if fitting:
        if not method.training:  # serving: the highest decode throughput
            return max(fitting, key=lambda x: x[1].results.get("throughput.decode_tokens_per_second", 0.0))
        return min(fitting, key=lambda x: x[1].results["time.total_seconds"])
    if others:
        return min(others, key=lambda x: x[1].results["memory.per_gpu.total"])
    return None


def _with_gpus(cluster: Cluster, gpus: int, gpu: GPU | None = None) -> Cluster:
    return attrs.evolve(cluster, gpus=gpus, gpu=gpu or cluster.gpu)


def _fits_with(model, method, cluster, params, precision) -> bool:
    found = best_layout(model, method, cluster, params=params, precision=precision)
    return found is not None and found[1].fits


def _more_gpus(model, method, cluster, params, precision, limit: int = 4096) -> int | None:
    """Smallest count (doubling, then refining between the last two powers) that fits."""
    n = cluster.gpus or 1
    lo, hi = n, None
    count = n * 2
    while count <= max(limit, n * 2):
        if _fits_with(model, method, _with_gpus(cluster, count), params, precision):
            hi = count
            break
        lo = count
        count *= 2
    if hi is None:
        return None
    # refine on multiples of the node size (or of 1 below a node)
    unit = cluster.per_node if lo >= cluster.per_node else 1
    best = hi
    lo_m = (lo // unit + 1) * unit
    candidates = list(range(lo_m, hi, unit))
    if len(candidates) > 16:  # keep it cheap: a binary search over the multiples
        a, b = 0, len(candidates) - 1
        while a <= b:
            mid = (a + b) // 2
            if _fits_with(model, method, _with_gpus(cluster, candidates[mid]), params, precision):
                best, b = candidates[mid], mid - 1
            else:
                a = mid + 1
        return best
    for c in candidates:
        if _fits_with(model, method, _with_gpus(cluster, c), params, precision):
            return c
    return best


def _bigger_gpu(model, method, cluster, params, precision, cat) -> str | None:
    """Smallest-memory catalog GPU with more memory (and a peak for the compute dtype) that fits."""
    current = cluster.gpu.memory
    for g in sorted(cat.gpus.values(), key=lambda g: (g.memory, g.id)):
        if g.memory <= current or "bf16" not in g.peak:
            continue
        cl = Cluster(gpu=g, gpus=cluster.gpus)
        if _fits_with(model, method, cl, params, precision):
            return g.id
    return None


# ---------------------------------------------------------------------------------------
# the matrix
# ---------------------------------------------------------------------------------------


def _model_of(spec, cat) -> tuple[str, Model]:
    if isinstance(spec, Model):
        return (spec.name or "model"), spec
    return spec, cat.model(spec)


def _cluster_of(spec, cat) -> Cluster:
    if isinstance(spec, Cluster):
        return spec
    gpu, gpus = spec
    gpu = gpu if isinstance(gpu, GPU) else cat.gpu(gpu)
    return Cluster(gpu=gpu, gpus=int(gpus))


def _budget(kind: str, pc, model: Model, token_budget) -> float:
    if isinstance(token_budget, Mapping) and kind in token_budget:
        return float(token_budget[kind])
    if token_budget is not None and not isinstance(token_budget, Mapping):
        return float(token_budget)
    sizing_params = pc.active if model.is_moe else pc.total
    return training_tokens(kind, sizing_params)


def capabilities(
    cluster_spec: Cluster | tuple[str | GPU, int],
    models: Iterable[str | Model] = DEFAULT_MODELS,
    methods: Iterable[str] = DEFAULT_METHODS,
    token_budget: float | Mapping[str, float] | None = None,
    *,
    seq_len: int | None = None,
    lora: LoRA | None = None,
    precision=None,
    search: bool = True,
    catalog=None,
) -> Matrix:
    """The capabilities matrix of a cluster.

    Args:
        cluster_spec: a :class:`~llmplan.plan.Cluster`, or ``(gpu id or GPU, count)``.
        models: catalog ids or :class:`~llmplan.model.Model` objects (rows).
        methods: training kinds (columns).
        token_budget: tokens per run: one number for every method, a mapping
            method → tokens, or ``None`` for the defaults of
            :func:`llmplan.data_sizing.training_tokens`.
        seq_len: sequence length (default 4,096 pre-training, 2,048 fine-tuning).
        lora: adapter settings for lora/qlora (default rank 16 on q/k/v/o).
        precision: a :class:`~llmplan.plan.Precision` (default ``bf16-mixed``, AdamW).
        search: look for the smallest change when a cell does not fit.
        catalog: a :class:`~llmplan.catalog.Catalog` (default: the bundled one).
    """
    cat = catalog or _catalog.default()
    cluster = _cluster_of(cluster_spec, cat)
    cells = []
    for spec in models:
        name, model = _model_of(spec, cat)
        pc = param_counts(model)
        for kind in methods:
            cell_precision = precision
            if kind.startswith("serve-"):
                dtype = kind.removeprefix("serve-")
                tokens = 0.0
                method = Method(kind="inference", seq_len=seq_len or SERVING_CONTEXT, batch=1, new_tokens=SERVING_NEW_TOKENS)
                cell_precision = Precision(weights=dtype, activations="bf16", kv_cache="bf16")
            else:
                tokens = _budget(kind, pc, model, token_budget)
                method = _method(kind, tokens, seq_len, lora, model)
            _LAST_ERROR.clear()
            found = best_layout(model, method, cluster, params=pc.total, precision=cell_precision)
            if found is None:
                error = _LAST_ERROR[0] if _LAST_ERROR else "no valid layout"
                cells.append(Cell(name, kind, pc.total, pc.active, tokens, False, "none", {}, {}, None, None, None, error=error))
                continue
            lay, est = found
            r = est.results
            mem = {k: _num(r.get(f"memory.per_gpu.{k}")) for k in ("weights", "gradients", "optimizer", "activations", "other", "total")}
            mem["capacity"] = _num(r.get("memory.capacity"))
            par = lay.parallelism
            pdict = {"tp": par.tp, "pp": par.pp, "dp": (cluster.gpus or 1) // (par.tp * par.pp), "zero": par.zero,
                     "recompute": par.recompute, "offload": par.offload}
            more = bigger = None
            if not est.fits and search:
                more = _more_gpus(model, method, cluster, pc.total, cell_precision)
                bigger = _bigger_gpu(model, method, cluster, pc.total, cell_precision, cat)
            cells.append(
                Cell(
                    model=name,
                    method=kind,
                    params=pc.total,
                    active=pc.active,
                    tokens=tokens,
                    fits=est.fits,
                    layout=lay.name,
                    parallelism=pdict,
                    memory=mem,
                    days=_num(r.get("time.days")) if est.fits else None,
                    gpu_hours=_num(r.get("time.gpu_hours")) if est.fits else None,
                    mfu=_num(r.get("time.mfu")) if est.fits else None,
                    more_gpus=more,
                    bigger_gpu=bigger,
                    warnings=tuple(est.warnings),
                    decode_tokens_per_second=_num(r.get("throughput.decode_tokens_per_second")) if est.fits and kind.startswith("serve-") else None,
                )
            )
    return Matrix(gpu=cluster.gpu.id, gpus=cluster.gpus or 1, cells=tuple(cells))


#: The hidden sizes :func:`llama_like` chooses among (multiples of 128).
LLAMA_LIKE_HIDDEN = (1024, 32768)


def _llama_like_ffn(hidden: int) -> int:
    return math.ceil(8 * hidden / 3 / 256) * 256


def llama_like_params(hidden: int, vocab: int = 32000) -> int:
    """Parameters of the :func:`llama_like` shape with this ``hidden`` size (a multiple of 128)."""
    layers, ffn = hidden // 128, _llama_like_ffn(hidden)
    return layers * (4 * hidden * hidden + 3 * hidden * ffn + 2 * hidden) + 2 * vocab * hidden + hidden


def llama_like(params: float, *, vocab: int = 32000, name: str | None = None) -> Dense:
    """A Llama-shaped dense model of about ``params`` parameters (for "a 10B / 30B / 100B model").

    Shape rule (Llama 1/2): head width 128, layers = hidden / 128, SwiGLU MLP of
    ≈ 8h/3 rounded up to a multiple of 256, so ≈ 12·L·h² + 2·V·h parameters;
    ``hidden`` is the multiple of 128 that brings the total closest to ``params``.
    The exact count is :func:`llmplan.param_counts` of the result.
    """
    best = None
    for hidden in range(LLAMA_LIKE_HIDDEN[0], LLAMA_LIKE_HIDDEN[1] + 1, 128):
        n = llama_like_params(hidden, vocab)
        if best is None or abs(n - params) < abs(best[0] - params):
            best = (n, hidden)
    _, hidden = best
    layers, ffn = hidden // 128, _llama_like_ffn(hidden)
    return Dense(
        name=name or f"llama-like-{params / 1e9:g}b",
        layers=layers,
        hidden=hidden,
        heads=hidden // 128,
        ffn=ffn,
        vocab=vocab,
        source=f"llmplan.capabilities.llama_like({params:g}): Llama-shaped (head 128, layers = hidden/128, SwiGLU ffn ≈ 8h/3)",
    )


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def _cmd(args) -> int:
    models: Sequence[str] = args.models.split(",") if args.models else DEFAULT_MODELS
    methods: Sequence[str] = args.methods.split(",") if args.methods else DEFAULT_METHODS
    budget = None
    if args.tokens:
        from .units import parse

        budget = parse(args.tokens, "count", what="--tokens")
    matrix = capabilities((args.gpu, args.gpus), models, methods, budget)
    if args.json:
        print(json.dumps(matrix.to_dict(), indent=2, default=str))
    else:
        print(matrix.table())
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``llmplan capabilities --gpu ID --gpus N [--json]`` on an argparse subparsers object."""
    p = subparsers.add_parser("capabilities", help="what a cluster can train: models × methods, fit and time")
    p.add_argument("--gpu", required=True, help="catalog GPU id (llmplan catalog gpus)")
    p.add_argument("--gpus", required=True, type=int, help="number of GPUs")
    p.add_argument("--models", help=f"comma-separated catalog model ids (default: {','.join(DEFAULT_MODELS)})")
    p.add_argument("--methods", help=f"comma-separated methods (default: {','.join(DEFAULT_METHODS)}; serving: {','.join(SERVING_METHODS)})")
    p.add_argument("--tokens", help='token budget for every method ("100M", "2T"); default per method')
    p.add_argument("--json", action="store_true", help="print the matrix as JSON")
    p.set_defaults(func=_cmd)
    return p
