"""Validation: llmplan's predictions against published training runs.

Every run here has a known model shape and hardware, and a throughput, GPU-hour or
wall-clock figure that its authors published. Each is written as an ordinary
:class:`~llmplan.plan.Plan`, evaluated with llmplan's **default** efficiency model
(no ``[efficiency]`` table, so ``η_gemm`` = 0.75 × the GPU's measured maximum achievable
matmul rate ÷ its peak — 0.652 on A100, 0.602 on H100/H800 in BF16, 0.532 in FP8; nothing
is tuned per run), and each
predicted number is compared with the published one. The 0.75 is the one constant fitted
to training runs — to Megatron-LM's Table 1 (:data:`CALIBRATION_GROUPS`,
:func:`fit_gemm_fraction`); every other run is held out (:attr:`Report.held_out`, what the
targets are judged on), and :func:`cross_validate` refits it leaving each group out.

The published numbers are copied from ``shared/reference/published.toml`` (the
project's collection of cited figures; human-readable companion ``published.md``).
Every copied number names the TOML key it comes from (:attr:`Ref.ref`), and
``tests/test_validation.py`` checks that the two still agree, so this table cannot
drift from its source.

Where a run's layout was not published (the Llama family, OPT's TP degree), the plan
uses a stated assumption (:attr:`Run.assumptions`), and :func:`validate` also reports
the spread of the prediction over a grid of alternative layouts that fit
(:attr:`RunResult.spread`): how much of the error could be the layout guess.

Usage::

    from llmplan import validation
    report = validation.validate()
    print(validation.text_table(report))
    validation.write_results(report, "benchmarks/results")   # validation.md + .json

``python benchmarks/validate_runs.py`` does the same from the command line.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import attrs

from . import __version__, catalog
from .errors import LlmplanError, PlanError
from .estimate import Estimate, estimate, param_counts
from .model import Dense
from .plan import GEMM_FRACTION_OF_MAMF, Cluster, Efficiency, LoRA, Method, Parallelism, Plan, Precision, default_gemm_efficiency, golden_min

__all__ = [
    "METRICS",
    "CALIBRATION_GROUPS",
    "TARGET_MEDIAN",
    "TARGET_WORST",
    "Comparison",
    "CrossValidation",
    "Metric",
    "Ref",
    "Report",
    "Run",
    "RunResult",
    "Stats",
    "cross_validate",
    "cross_validation_json",
    "cross_validation_markdown",
    "cross_validation_gpu_text",
    "cross_validation_rows",
    "sensitivity_rows",
    "fit_gemm_fraction",
    "gemm_fraction",
    "markdown",
    "runs",
    "text_table",
    "to_json",
    "validate",
    "write_results",
]

#: Targets of the issue "Accuracy you can check": median |error| and worst |error|.
TARGET_MEDIAN = 0.10
TARGET_WORST = 0.25

#: The groups of runs whose published numbers set :data:`llmplan.plan.GEMM_FRACTION_OF_MAMF`,
#: the one constant of llmplan's efficiency model that is fitted to training runs:
#: Megatron-LM's Table 1 (Narayanan et al. 2021; ten GPT shapes, 1.7B–1T, on 32–3,072
#: A100, every layout fact published), the table the earlier unfitted default cited.
#: Every other run is held out: :attr:`Report.held_out` is what the targets are judged on.
CALIBRATION_GROUPS = ("megatron-table1",)

#: Where the published numbers come from, relative to the repository's parent
#: (``/work/shared/reference/published.toml`` next to ``/work/main``).
PUBLISHED_TOML = "shared/reference/published.toml"


# ---------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One kind of published number and how llmplan predicts it.

    Attributes:
        key: short id (``"gpu_hours"``).
        label: column title.
        unit: unit of the value.
        description: what the number is, and which llmplan quantity predicts it.
        throughput: True when a larger value means a faster run (TFLOP/s,
            tokens/s); False for time (GPU-hours, days).
        predict: ``(estimate, plan) -> value``.
        fmt: how to print a value.
    """

    key: str
    label: str
    unit: str
    description: str
    throughput: bool
    predict: Callable[[Estimate, Plan], float]
    fmt: Callable[[float], str]


def _f(est: Estimate, key: str) -> float:
    return float(est.value(key))


def _tokens(plan: Plan) -> float:
    return float(plan.method.tokens)  # type: ignore[arg-type]


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "tflops_per_gpu",
            "TFLOP/s per GPU",
            "TFLOP/s",
            "achieved hardware TFLOP/s per GPU, recomputation included (Narayanan et al. 2021 eq. (3) "
            "convention, which the Megatron-LM, BLOOM and OPT figures use); llmplan: time.tflops_per_gpu",
            True,
            lambda est, plan: _f(est, "time.tflops_per_gpu"),
            lambda v: f"{v:.1f}",
        ),
        Metric(
            "hfu",
            "% of peak",
            "1",
            "achieved TFLOP/s ÷ dense peak, recomputation included (Megatron-LM Table 1's '% of theoretical peak'; "
            "published.toml calls it mfu, but it counts the recomputed forward pass, i.e. PaLM's HFU); llmplan: time.hfu",
            True,
            lambda est, plan: _f(est, "time.hfu"),
            lambda v: f"{100 * v:.1f} %",
        ),
        Metric(
            "mfu",
            "MFU",
            "1",
            "model FLOPs utilisation: model FLOPs (recomputation not counted) ÷ (time × GPUs × dense peak), "
            "PaLM's definition, which Korthikanti et al. 2022 use; llmplan: time.mfu",
            True,
            lambda est, plan: _f(est, "time.mfu"),
            lambda v: f"{100 * v:.1f} %",
        ),
        Metric(
            "step_seconds",
            "step time",
            "s",
            "end-to-end time of one optimizer step (Korthikanti et al. 2022 Table 5's iteration time); "
            "llmplan: time.step_seconds",
            False,
            lambda est, plan: _f(est, "time.step_seconds"),
            lambda v: f"{v:,.2f} s",
        ),
        Metric(
            "tokens_per_sec_per_gpu",
            "tokens/s per GPU",
            "tokens/s",
            "training tokens per second per GPU; llmplan: tokens ÷ (time.total_seconds × GPUs)",
            True,
            lambda est, plan: _tokens(plan) / (_f(est, "time.total_seconds") * plan.cluster.gpus),
            lambda v: f"{v:,.0f}",
        ),
        Metric(
            "gpu_hours",
            "GPU-hours",
            "GPU·h",
            "GPU-hours of the whole pre-training run; llmplan: time.gpu_hours (an uninterrupted run: "
            "published figures also contain failures, restarts, checkpointing and evaluation)",
            False,
            lambda est, plan: _f(est, "time.gpu_hours"),
            lambda v: f"{v:,.0f}",
        ),
        Metric(
            "days",
            "days",
            "days",
            "wall-clock days of the run (for Megatron-LM Table 2: the paper's eq. (4) estimate for 300B tokens); "
            "llmplan: time.days",
            False,
            lambda est, plan: _f(est, "time.days"),
            lambda v: f"{v:,.1f}",
        ),
        Metric(
            "days_per_1t_tokens",
            "days per 1T tokens",
            "days",
            "wall-clock days per 10^12 training tokens; llmplan: time.days × 10^12 ÷ tokens",
            False,
            lambda est, plan: _f(est, "time.days") * 1e12 / _tokens(plan),
            lambda v: f"{v:,.2f}",
        ),
    )
}


# ---------------------------------------------------------------------------------------
# run definitions
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A number copied from ``published.toml``.

    Attributes:
        key: a :data:`METRICS` key (a published result to compare), or a plan input
            (``gpus``, ``tp``, ``pp``, ``dp``, ``model_parallel`` (tp·pp), ``ep``, ``zero``, ``micro_batch``,
            ``global_batch``, ``global_batch_tokens``, ``batch_per_dp``, ``grad_accum``, ``seq_len``,
            ``tokens``, ``layers``, ``hidden``, ``heads``, ``kv_heads``, ``ffn``, ``vocab``,
            ``params`` (llmplan's exact total parameter count)).
        value: the number as published.
        ref: dotted path of the value in ``published.toml`` (``runs.bloom_176b.gpu_hours``).
        primary: for results: counted in the overall statistics. ``False`` marks a
            restatement of another published number of the same run (Megatron's % of
            peak = TFLOP/s ÷ 312; BLOOM's 117 days = its GPU-hours ÷ 384 ÷ 24).
        tol: for inputs: relative difference allowed between the plan and the
            published value (e.g. "4M tokens" is 1024 × 4096 = 4,194,304 in the plan).
        note: caveat shown next to the comparison.
    """

    key: str
    value: float
    ref: str
    primary: bool = True
    tol: float = 0.0
    note: str = ""

    @property
    def is_result(self) -> bool:
        return self.key in METRICS


@dataclass(frozen=True)
class Run:
    """One published run as an llmplan plan, with the numbers to check.

    Attributes:
        id: stable id (``"bloom-176b"``).
        label: display name.
        group: ``megatron-table1`` | ``megatron-table2`` | ``production`` | ``llama3-405b-table4`` |
            ``llm-foundry-<table>`` (MosaicML's MPT benchmark tables, one group each).
        plan: the plan (default efficiency model: ``plan.efficiency`` is empty).
        refs: published inputs and results, each with its ``published.toml`` key.
        layout: ``"published"``, ``"partly assumed"`` or ``"assumed"``.
        assumptions: every choice not taken from the source, and why.
        source: citation of the published figures.
        spread_grid: for assumed layouts: alternative layouts (Parallelism and GPU
            count) over which the prediction's spread is reported.
    """

    id: str
    label: str
    group: str
    plan: Plan
    refs: tuple[Ref, ...]
    layout: str
    assumptions: tuple[str, ...]
    source: str
    spread_grid: tuple[tuple[Parallelism, int], ...] = ()

    @property
    def results(self) -> tuple[Ref, ...]:
        return tuple(r for r in self.refs if r.is_result)

    @property
    def inputs(self) -> tuple[Ref, ...]:
        return tuple(r for r in self.refs if not r.is_result)


def plan_input(plan: Plan, key: str) -> float:
    """The value of a plan input named like a :class:`Ref` key (for consistency checks)."""
    par, meth, model, cl = plan.parallelism, plan.method, plan.model, plan.cluster
    if key == "gpus":
        return cl.gpus
    if key == "dp":
        return cl.gpus // (par.tp * par.pp * par.cp)
    if key == "model_parallel":
        return par.tp * par.pp
    if key in ("tp", "pp", "cp", "ep", "zero", "micro_batch"):
        return getattr(par, key)
    if key == "batch_per_dp":
        return meth.global_batch // (cl.gpus // (par.tp * par.pp * par.cp))
    if key == "grad_accum":
        return meth.global_batch // (cl.gpus // (par.tp * par.pp * par.cp) * par.micro_batch)
    if key == "params":
        return param_counts(model).total
    if key == "global_batch":
        return meth.global_batch
    if key == "global_batch_tokens":
        return meth.global_batch * meth.seq_len
    if key in ("seq_len", "tokens"):
        return getattr(meth, key)
    if key == "kv_heads":
        return model.n_kv_heads
    if key in ("layers", "hidden", "heads", "ffn", "vocab"):
        return getattr(model, key)
    raise KeyError(key)


A100 = "a100-80gb-sxm"
H100 = "h100-sxm"
H800 = "h800-sxm"

NARAYANAN = "Narayanan et al. 2021, 'Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM' (SC'21, arXiv 2104.04473)"

#: Megatron-LM Table 1: (catalog id, toml key, tp, pp, gpus, batch, TFLOP/s, % of peak).
MEGATRON_TABLE1: tuple[tuple[str, str, int, int, int, int, float, float], ...] = (
    ("megatron-gpt-1.7b", "megatron_1_7b", 1, 1, 32, 512, 137.0, 0.44),
    ("megatron-gpt-3.6b", "megatron_3_6b", 2, 1, 64, 512, 138.0, 0.44),
    ("megatron-gpt-7.5b", "megatron_7_5b", 4, 1, 128, 512, 142.0, 0.46),
    ("megatron-gpt-18.4b", "megatron_18_4b", 8, 1, 256, 1024, 135.0, 0.43),
    ("megatron-gpt-39.1b", "megatron_39_1b", 8, 2, 512, 1536, 138.0, 0.44),
    ("megatron-gpt-76.1b", "megatron_76_1b", 8, 4, 1024, 1792, 140.0, 0.45),
    ("megatron-gpt-145.6b", "megatron_145_6b", 8, 8, 1536, 2304, 148.0, 0.47),
    ("megatron-gpt-310.1b", "megatron_310_1b", 8, 16, 1920, 2160, 155.0, 0.50),
    ("megatron-gpt-529.6b", "megatron_529_6b", 8, 35, 2520, 2520, 163.0, 0.52),
    ("megatron-gpt-1t", "megatron_1008b", 8, 64, 3072, 3072, 163.0, 0.52),
)

#: Tokens given to throughput-only plans (Megatron-LM Table 1, OPT): any number
#: works, TFLOP/s per GPU does not depend on it; 300B is the paper's GPT-3 example.
THROUGHPUT_TOKENS = 300e9


#: Runs from 2021–2022 predate FlashAttention (Dao et al. 2022): their attention
#: materialised the s² scores (Megatron's fused scaled-masked softmax, metaseq,
#: Megatron-DeepSpeed), and GPT-style runs trained with dropout 0.1 (Megatron-LM's
#: default, OPT). Both are facts of those codebases, not fitted.
PRE_FLASH = dict(flash_attention=False)

#: Sequence parallelism (Korthikanti et al. 2022, arXiv 2205.05198, May 2022) came after
#: Megatron-LM's 2021 paper, BigScience's Megatron-DeepSpeed fork (BLOOM's training script
#: has no --sequence-parallel) and metaseq's OPT-175B run (Oct 2021 – Jan 2022): with tensor
#: parallelism, those runs kept the LayerNorm and dropout regions (and the checkpointed layer
#: inputs) whole on every tensor-parallel rank. llmplan's default with tp > 1 is sequence
#: parallelism, so these runs say so.
PRE_SP = dict(sequence_parallel=False)


def _with_dropout(model):
    return attrs.evolve(model, dropout=True)


def _smallest_interleaving(layers: int, pp: int) -> int:
    """The fewest chunks per GPU (≥ 2) that split a stage's layers evenly, as Megatron-LM
    requires (60 layers on 4 stages: 3 chunks of 5; 105 on 35: 3 chunks of 1)."""
    per_stage = layers // pp
    return next(v for v in range(2, per_stage + 1) if per_stage % v == 0)


#: Megatron-LM before 2023 reduced the gradients after the whole pipeline's backward pass:
#: its default ``--DDP-impl local`` calls ``allreduce_gradients()`` once
#: ``forward_backward_func`` has returned (megatron/training.py ``train_step``), with no
#: overlap; Megatron-Core's ``overlap_grad_reduce`` replaced it in 2023 (commit 3fb3e95ec,
#: "Deprecate torchDDP and get rid of args.DDP_impl")
MEGATRON_LOCAL_DDP = "gradients all-reduced after the backward pass, not overlapped (dp_overlap = false): Megatron-LM's " \
    "default --DDP-impl local of 2021–2022 calls allreduce_gradients() after forward_backward_func"


def _megatron_parallelism(tp: int, pp: int, layers: int, *, zero: int = 0, micro_batch: int = 1) -> Parallelism:
    # Interleaved schedule where there is a pipeline, with the smallest interleaving that
    # splits each stage evenly (the paper does not give the chunk count). Megatron-LM's own
    # data parallelism (zero = 0) is its local DDP (MEGATRON_LOCAL_DDP); the ZeRO-3 rows ran
    # DeepSpeed, which prefetches and overlaps
    return Parallelism(
        tp=tp,
        pp=pp,
        zero=zero,
        dp_overlap=zero == 3,
        micro_batch=micro_batch,
        recompute="full",
        pp_schedule="interleaved" if pp > 1 else "1f1b",
        virtual_stages=_smallest_interleaving(layers, pp) if pp > 1 else None,
        **PRE_FLASH,
        **(PRE_SP if tp > 1 else {}),
    )


def _megatron_table1() -> list[Run]:
    out = []
    for model_id, key, tp, pp, gpus, batch, tflops, peak in MEGATRON_TABLE1:
        model = _with_dropout(catalog.model(model_id))
        t = f"benchmarks.{key}"
        plan = Plan(
            name=f"Megatron-LM Table 1: {model.name}",
            model=model,
            method=Method(kind="pretrain", tokens=THROUGHPUT_TOKENS, seq_len=2048, global_batch=batch),
            precision=Precision(preset="fp16-mixed"),
            cluster=Cluster(gpu=catalog.gpu(A100), gpus=gpus),
            parallelism=_megatron_parallelism(tp, pp, model.layers),
        )
        out.append(
            Run(
                id=model_id.replace("megatron-gpt-", "megatron-t1-"),
                label=f"Megatron GPT {model_id.removeprefix('megatron-gpt-').upper()} (T1)",
                group="megatron-table1",
                plan=plan,
                refs=(
                    Ref("gpus", gpus, f"{t}.gpu_count"),
                    Ref("tp", tp, f"{t}.tp"),
                    Ref("pp", pp, f"{t}.pp"),
                    Ref("dp", gpus // (tp * pp), f"{t}.dp"),
                    Ref("global_batch", batch, f"{t}.global_batch_seqs"),
                    Ref("seq_len", 2048, f"{t}.seq_len"),
                    Ref("layers", model.layers, f"{t}.layers"),
                    Ref("hidden", model.hidden, f"{t}.hidden"),
                    Ref("heads", model.heads, f"{t}.heads"),
                    Ref("vocab", model.vocab, f"{t}.vocab"),
                    Ref("tflops_per_gpu", tflops, f"{t}.tflops_per_gpu"),
                    Ref("hfu", peak, f"{t}.mfu", primary=False, note="= TFLOP/s ÷ 312"),
                ),
                layout="published",
                assumptions=(
                    "micro-batch 1 (not given in Table 1)",
                    "interleaved schedule where pp > 1, with the fewest chunks per GPU (≥ 2) that split a stage evenly, as "
                    "Megatron-LM requires (the chunk count is not given)",
                    "full recomputation, as the paper's eq. (3) counts (4 passes)",
                    MEGATRON_LOCAL_DDP,
                    "no sequence parallelism (published in 2022, after this paper): every tensor-parallel rank holds "
                    "and normalises the whole hidden state",
                    "fp16 mixed precision (the paper says 'mixed precision'; A100 fp16 and bf16 peaks are equal)",
                    "A100 80GB SXM on DGX A100 nodes: 8 GPUs on NVLink 3, HDR InfiniBand (catalog defaults)",
                ),
                source=f"{NARAYANAN}, Table 1",
            )
        )
    return out


def _gpt3_megatron() -> Dense:
    """GPT-3 175B with Megatron-LM's padded 51,200 vocabulary (the paper's 174.6B, eq. (2))."""
    base = catalog.model("megatron-gpt-145.6b")
    return attrs.evolve(
        base,
        name="GPT-3 174.6B (Megatron-LM shape)",
        layers=96,
        hidden=12288,
        heads=96,
        ffn=4 * 12288,
        source="Brown et al. 2020 Table 2.1 (96 layers, d 12288, 96 heads) with Megatron-LM's GPT block and padded "
        "vocabulary 51,200: 174.6B by Narayanan et al. 2021 eq. (2) (published.md sec. 2)",
    )


def _megatron_table2() -> list[Run]:
    # (id, toml key, model, gpus, batch, mb, tp, pp, zero, TFLOP/s, days)
    rows = (
        # Table 2 in its order; the rows published.toml names only in its entries' source
        # notes are copied to benchmarks/published_extra.toml ("extra:" keys)
        ("megatron-t2-ptdp-175b-384", "megatron_table2_ptdp_175b_384", "175b", 384, 1536, 1, 8, 12, 0, 153.0, 84.0),
        ("megatron-t2-ptdp-175b-768", "extra:megatron_table2_ptdp_175b_768", "175b", 768, 1536, 1, 8, 12, 0, 149.0, 43.0),
        ("megatron-t2-ptdp-175b-1536", "megatron_table2_ptdp_175b_1536", "175b", 1536, 1536, 1, 8, 12, 0, 141.0, 23.0),
        ("megatron-t2-ptdp-530b-560", "extra:megatron_table2_ptdp_530b_560", "530b", 560, 2240, 1, 8, 35, 0, 171.0, 156.0),
        ("megatron-t2-ptdp-530b-1120", "extra:megatron_table2_ptdp_530b_1120", "530b", 1120, 2240, 1, 8, 35, 0, 167.0, 80.0),
        ("megatron-t2-ptdp-530b-2240", "megatron_table2_ptdp_530b_2240", "530b", 2240, 2240, 1, 8, 35, 0, 159.0, 42.0),
        ("megatron-t2-zero3-175b-384", "megatron_table2_zero3_175b_384", "175b", 384, 1536, 4, 1, 1, 3, 144.0, 90.0),
        ("megatron-t2-zero3-175b-768", "extra:megatron_table2_zero3_175b_768", "175b", 768, 1536, 2, 1, 1, 3, 88.0, 74.0),
        ("megatron-t2-zero3-175b-1536", "extra:megatron_table2_zero3_175b_1536", "175b", 1536, 1536, 1, 1, 1, 3, 44.0, 74.0),
        ("megatron-t2-zero3-530b-640", "extra:megatron_table2_zero3_530b_640", "530b", 640, 2560, 4, 1, 1, 3, 138.0, 169.0),
        ("megatron-t2-zero3-530b-1120", "extra:megatron_table2_zero3_530b_1120", "530b", 1120, 2240, 2, 1, 1, 3, 98.0, 137.0),
        ("megatron-t2-zero3-530b-2240", "megatron_table2_zero3_530b_2240", "530b", 2240, 2240, 1, 1, 1, 3, 48.0, 140.0),
    )
    out = []
    for rid, key, which, gpus, batch, mb, tp, pp, zero, tflops, days in rows:
        model = _with_dropout(_gpt3_megatron() if which == "175b" else catalog.model("megatron-gpt-529.6b"))
        extra = key.startswith("extra:")
        t = f"extra:benchmarks.{key.removeprefix('extra:')}" if extra else f"benchmarks.{key}"
        ptdp = zero == 0
        plan = Plan(
            name=f"Megatron-LM Table 2: {model.name}, {'PTD-P' if ptdp else 'ZeRO-3'}, {gpus} GPUs",
            model=model,
            method=Method(kind="pretrain", tokens=300e9, seq_len=2048, global_batch=batch),
            precision=Precision(preset="fp16-mixed"),
            cluster=Cluster(gpu=catalog.gpu(A100), gpus=gpus),
            parallelism=_megatron_parallelism(tp, pp, model.layers, zero=zero, micro_batch=mb),
        )
        refs = [
            Ref("gpus", gpus, f"{t}.gpu_count"),
            Ref("global_batch", batch, f"{t}.global_batch_seqs"),
            Ref("micro_batch", mb, f"{t}.micro_batch"),
            Ref("tflops_per_gpu", tflops, f"{t}.tflops_per_gpu"),
            Ref(
                "days",
                days,
                f"{t}.days_for_300b_tokens",
                primary=False,
                note="the paper's eq. (4) from the measured TFLOP/s, for 300B tokens",
            ),
        ]
        if ptdp:
            refs.insert(1, Ref("model_parallel", tp * pp, f"{t}.model_parallel_size"))
            assumptions = (
                (f"model-parallel size {tp * pp} split as tp = {tp} (one DGX node) × pp = {pp}, as in Table 1 "
                "(Table 2 gives only the product)"),
                "interleaved schedule with the fewest chunks per GPU (≥ 2) that split a stage evenly; full recomputation; "
                "no sequence parallelism (published in 2022, after this paper)",
                MEGATRON_LOCAL_DDP,
                "fp16 mixed precision; A100 80GB SXM, NVLink 3 + HDR InfiniBand",
            )
            layout = "partly assumed"
        else:
            assumptions = (
                "pure data parallelism with ZeRO-3 (Table 2: 'ZeRO-3 without model parallelism')",
                "full recomputation (the paper's eq. (3) FLOP count)",
                "fp16 mixed precision; A100 80GB SXM, NVLink 3 + HDR InfiniBand",
            )
            layout = "published"
        out.append(
            Run(
                id=rid,
                label=f"Megatron {'PTD-P' if ptdp else 'ZeRO-3'} {which.upper()} {gpus} GPUs (T2)",
                group="megatron-table2",
                plan=plan,
                refs=tuple(refs),
                layout=layout,
                assumptions=assumptions,
                source=f"{NARAYANAN}, Table 2" + (" (benchmarks/published_extra.toml)" if extra else ""),
            )
        )
    return out


KORTHIKANTI = ("Korthikanti et al. 2022, 'Reducing Activation Recomputation in Large Transformer Models' "
               "(arXiv 2205.05198; MLSys 2023)")


def _korthikanti() -> list[Run]:
    """The 530B model on 2,240 A100 with full recomputation and with sequence parallelism plus
    selective recomputation: the two MFUs of Korthikanti et al. 2022's abstract."""
    out = []
    model = _with_dropout(catalog.model("megatron-gpt-529.6b"))
    for rid, key, label, sp, recompute, mfu in (
        ("korthikanti-530b-full-recompute", "korthikanti_530b_full_recompute", "full recomputation", False, "full", 0.421),
        ("korthikanti-530b-selective-sp", "korthikanti_530b_selective_sp", "sequence parallelism + selective recomputation",
         True, "selective", 0.542),
    ):
        t = f"extra:runs.{key}"
        par = attrs.evolve(_megatron_parallelism(8, 35, model.layers), sequence_parallel=sp, recompute=recompute)
        out.append(
            Run(
                id=rid,
                label=f"Megatron 530B 2240 GPUs, {label} (Korthikanti 2022)",
                group="korthikanti-2022",
                plan=Plan(
                    name=f"Korthikanti et al. 2022: 530B, {label}",
                    model=model,
                    method=Method(kind="pretrain", tokens=THROUGHPUT_TOKENS, seq_len=2048, global_batch=2240),
                    precision=Precision(preset="bf16-mixed"),
                    cluster=Cluster(gpu=catalog.gpu(A100), gpus=2240),
                    parallelism=par,
                ),
                refs=(
                    Ref("gpus", 2240, f"{t}.gpus"),
                    Ref("mfu", mfu, f"{t}.mfu"),
                ),
                layout="partly assumed",
                assumptions=(
                    "published (the abstract): a 530B GPT-3-style model on 2,240 A100 GPUs, MFU 42.1 % with "
                    "recomputation and 54.2 % with sequence parallelism and selective recomputation",
                    ("not published there, taken from Megatron-LM's Table 2 row of the same model and GPU count "
                    "(Narayanan et al. 2021): 105 layers, h = 20,480, 128 heads, sequence 2,048, tensor parallelism 8 × "
                    "pipeline 35 × data 8, global batch 2,240, micro-batch 1, the interleaved schedule with 3 chunks "
                    "per GPU, dropout 0.1, no FlashAttention; A100 80GB with NVLink 3 and HDR InfiniBand"),
                    ("the baseline without sequence parallelism (the paper's subject is adding it); selective "
                    "recomputation = the attention core only (the paper's definition)"),
                    MEGATRON_LOCAL_DDP,
                ),
                source=f"{KORTHIKANTI}, abstract (benchmarks/published_extra.toml)",
            )
        )
    return out


#: Korthikanti et al. 2022 Table 3 (configurations) and Table 5 (end-to-end iteration time, s):
#: (key, catalog model or None for the 22B, tp, pp, GPUs, global batch, micro-batch, interleaved
#: chunks, time with full recomputation, time with sequence parallelism + selective).
KORTHIKANTI_TABLE5: tuple[tuple[str, str | None, int, int, int, int, int, int, float, float], ...] = (
    ("22b", None, 8, 1, 8, 4, 4, 1, 1.42, 1.10),
    ("175b", "gpt3-175b", 8, 8, 64, 64, 1, 3, 18.13, 13.75),
    ("530b", "megatron-gpt-529.6b", 8, 35, 280, 280, 1, 3, 49.05, 37.83),
    ("1t", "megatron-gpt-1t", 8, 64, 512, 512, 1, 1, 94.42, 71.49),
)


def _korthikanti_table5() -> list[Run]:
    """Korthikanti et al. 2022 Table 5: iteration time of four GPT models with full
    recomputation and with sequence parallelism plus selective recomputation (``extra:``)."""
    out = []
    for key, model_id, tp, pp, gpus, batch, mb, v, t_full, t_sel in KORTHIKANTI_TABLE5:
        if model_id is None:
            model = Dense(name="Megatron GPT 22B (Korthikanti et al. 2022)", layers=48, hidden=6144, heads=64,
                          ffn=4 * 6144, vocab=51200, mlp="gelu", norm="layernorm", attention_bias="all",
                          mlp_bias=True, position="learned", max_positions=2048, tied_embeddings=True,
                          hf_model_type="gpt2", source="Korthikanti et al. 2022 Table 3: 64 heads, hidden 6144, "
                          "48 layers; GPT block as Megatron-LM's (ffn 4h, vocabulary 51,200, learned positions)")
        else:
            model = catalog.model(model_id)
        model = attrs.evolve(_with_dropout(model), vocab=51200)  # Megatron-LM's padded GPT-2 vocabulary
        m = f"extra:runs.korthikanti_t5_{key}"
        for mode, sp, recompute, seconds in (("full", False, "full", t_full), ("selective-sp", True, "selective", t_sel)):
            par = Parallelism(tp=tp, pp=pp, micro_batch=mb, recompute=recompute, sequence_parallel=sp,
                              pp_schedule="interleaved" if v > 1 else "1f1b", virtual_stages=v if v > 1 else None,
                              **PRE_FLASH)
            label = "full recomputation" if mode == "full" else "SP + selective recomputation"
            out.append(
                Run(
                    id=f"korthikanti-t5-{key}-{mode}",
                    label=f"GPT {key.upper()} {gpus} GPUs, {label} (Korthikanti 2022 T5)",
                    group="korthikanti-2022",
                    plan=Plan(
                        name=f"Korthikanti et al. 2022 Table 5: {key.upper()}, {label}",
                        model=model,
                        method=Method(kind="pretrain", tokens=THROUGHPUT_TOKENS, seq_len=2048, global_batch=batch),
                        precision=Precision(preset="fp16-mixed"),
                        cluster=Cluster(gpu=catalog.gpu(A100), gpus=gpus),
                        parallelism=par,
                    ),
                    refs=(
                        Ref("gpus", gpus, f"{m}.gpus"),
                        Ref("tp", tp, f"{m}.tp"),
                        Ref("pp", pp, f"{m}.pp"),
                        Ref("global_batch", batch, f"{m}.global_batch"),
                        Ref("micro_batch", mb, f"{m}.micro_batch"),
                        Ref("layers", model.layers, f"{m}.layers"),
                        Ref("hidden", model.hidden, f"{m}.hidden"),
                        Ref("heads", model.heads, f"{m}.heads"),
                        Ref("step_seconds", seconds, f"{m}.seconds_{mode.replace('-', '_')}"),
                    ),
                    layout="published",
                    assumptions=(
                        ("published (Table 3): heads, hidden, layers, tensor × pipeline parallelism, GPUs, global "
                         "batch, micro-batch (no data parallelism); sequence 2,048"),
                        (f"interleaved chunks per GPU: {v} (Calculon's transcription of the configuration; "
                         "the paper's table does not print it)") if v > 1 else
                        "the non-interleaved 1F1B schedule (Calculon's transcription of the configuration)",
                        ("full recomputation without sequence parallelism — the paper's baseline" if mode == "full" else
                         "sequence parallelism and selective recomputation of the attention core — the paper's method"),
                        ("GPT blocks as Megatron-LM's (GELU, LayerNorm, biases, dropout, learned positions, vocabulary "
                         "51,200), no FlashAttention, fp16 mixed precision; A100 80GB, NVLink 3 and HDR InfiniBand"),
                    ),
                    source=f"{KORTHIKANTI}, Tables 3 and 5 (benchmarks/published_extra.toml)",
                )
            )
    return out


def _meta_grid(gpus_options: Sequence[int], batch: int) -> tuple[tuple[Parallelism, int], ...]:
    """Alternative layouts for a Meta run whose layout is not published."""
    grid = []
    for gpus in gpus_options:
        for tp in (1, 2, 4, 8):
            for pp in (1, 2, 4, 8):
                dp = gpus // (tp * pp)
                if dp < 1 or batch % dp:
                    continue
                grid.append((Parallelism(tp=tp, pp=pp, zero=1, recompute="selective", attention_kernel="xformers"), gpus))
    return tuple(grid)


LLAMA_LAYOUT_NOTE = (
    "layout not published: tp = the number of model-parallel shards of Meta's released checkpoint "
    "(consolidated.*.pth: 7B/8B 1, 13B 2, 65B/70B 8 — the model-parallel size of Meta's reference code), "
    "pp = 1 (Meta's fairscale code has no pipeline), ZeRO-1, selective recomputation, FlashAttention "
    "(xformers memory-efficient attention: [parallelism] attention_kernel = \"xformers\", whose measured speed "
    "llmplan has for A100 only — on H100 it falls back to half the GEMM efficiency), micro-batch 1"
)


def _llama_run(
    rid: str,
    label: str,
    key: str,
    model,
    gpu: str,
    gpus: int,
    tp: int,
    seq: int,
    batch: int,
    tokens: float,
    results: tuple[Ref, ...],
    extra_refs: tuple[Ref, ...],
    gpu_note: str,
    batch_note: str,
    source: str,
    grid_gpus: Sequence[int],
    network: str | None = None,
    goodput: tuple[float, str] | None = None,
) -> Run:
    t = f"runs.{key}"
    plan = Plan(
        name=label,
        model=model,
        method=Method(kind="pretrain", tokens=tokens, seq_len=seq, global_batch=batch),
        precision=Precision(preset="bf16-mixed"),
        cluster=Cluster(gpu=catalog.gpu(gpu), gpus=gpus, inter_node=None if network is None else catalog.link(network)),
        parallelism=Parallelism(tp=tp, pp=1, zero=1, recompute="selective", attention_kernel="xformers"),
        efficiency=Efficiency(goodput=goodput[0]) if goodput else Efficiency(),
    )
    refs = (
        Ref("layers", model.layers, f"{t}.layers"),
        Ref("hidden", model.hidden, f"{t}.hidden"),
        Ref("heads", model.heads, f"{t}.heads"),
        Ref("vocab", model.vocab, f"{t}.vocab"),
        Ref("seq_len", seq, f"{t}.seq_len"),
        Ref("tokens", tokens, f"{t}.tokens"),
        *extra_refs,
        *results,
    )
    return Run(
        id=rid,
        label=label,
        group="production",
        plan=plan,
        refs=refs,
        layout="assumed",
        assumptions=(LLAMA_LAYOUT_NOTE, gpu_note, batch_note) + ((goodput[1],) if goodput else ()),
        source=source,
        spread_grid=_meta_grid(grid_gpus, batch),
    )


#: Jean Zay's inter-node fabric for BLOOM: Omni-Path 100 Gb/s, 4 ports per 8-GPU node.
#: No catalog entry exists; line rate from the BLOOM paper, efficiency and latency as ib-hdr.
OMNI_PATH_100 = attrs.evolve(
    catalog.link("ib-hdr"),
    id="omni-path-100",
    name="Intel Omni-Path 100 Gb/s (Jean Zay)",
    bandwidth=100e9 / 8,
    status="assumed",
    source="BLOOM paper (arXiv 2211.05100) sec. 3.4: 4 x Omni-Path 100 Gbps per node (published.md sec. 5); "
    "efficiency and latency assumed equal to ib-hdr",
    notes="defined in llmplan.validation for the BLOOM-176B run",
)


def _production() -> list[Run]:
    out: list[Run] = []
    card2 = "meta-llama/llama-models models/llama2/MODEL_CARD.md (GPU-hours; 2.0T tokens, 4M-token batch, 4k context)"
    batch2 = Ref(
        "global_batch_tokens",
        4.0e6,
        "runs.{}.global_batch_tokens",
        tol=0.05,
        note="'4M tokens' = 1024 sequences of 4096 = 4,194,304 in the plan",
    )
    for rid, label, key, cat_id, gpus, tp, hours in (
        ("llama2-7b", "Llama 2 7B", "llama2_7b", "llama-2-7b", 1024, 1, 184320.0),
        ("llama2-13b", "Llama 2 13B", "llama2_13b", "llama-2-13b", 1024, 2, 368640.0),
        ("llama2-70b", "Llama 2 70B", "llama2_70b", "llama-2-70b", 2048, 8, 1720320.0),
    ):
        out.append(
            _llama_run(
                rid,
                label,
                key,
                catalog.model(cat_id),
                A100,
                gpus,
                tp,
                4096,
                1024,
                2.0e12,
                (Ref("gpu_hours", hours, f"runs.{key}.gpu_hours"),),
                (
                    replace(batch2, ref=batch2.ref.format(key)),
                    Ref("kv_heads", catalog.model(cat_id).n_kv_heads, f"runs.{key}.kv_heads"),
                    Ref("ffn", catalog.model(cat_id).ffn, f"runs.{key}.ffn"),
                ),
                f"GPU count not published: {gpus} A100 80GB assumed (LLaMA-1 65B used 2048); "
                "it only enters through communication (and the bubble, with pp > 1)",
                "global batch 1024 sequences of 4096 tokens (the card's 4M tokens)",
                card2,
                (512, 1024, 2048),
            )
        )

    # LLaMA-1 65B: 2048 A100, 380 tokens/s/GPU, ~21 days, 1,022,362 GPU-hours.
    llama1 = Dense(
        name="LLaMA-1 65B",
        layers=80,
        hidden=8192,
        heads=64,
        ffn=22016,
        vocab=32000,
        mlp="swiglu",
        norm="rmsnorm",
        tied_embeddings=False,
        max_positions=2048,
        hf_model_type="llama",
        source="Touvron et al. 2023 (LLaMA) Table 2; ffn 22016 from the HF config (published.md sec. 1.1)",
    )
    out.append(
        _llama_run(
            "llama1-65b",
            "LLaMA-1 65B",
            "llama1_65b",
            llama1,
            A100,
            2048,
            8,
            2048,
            2048,
            1.4e12,
            (
                Ref("gpu_hours", 1022362.0, "runs.llama1_65b.gpu_hours"),
                Ref(
                    "tokens_per_sec_per_gpu",
                    380.0,
                    "runs.llama1_65b.tokens_per_sec_per_gpu",
                    primary=False,
                    note="throughput while running; Table 15's GPU-hours = 1.4T ÷ 380 tokens/s (±0.1 %)",
                ),
                Ref(
                    "days",
                    21.0,
                    "runs.llama1_65b.wall_clock_days",
                    primary=False,
                    note="'approximately 21 days' = GPU-hours ÷ 2048 ÷ 24",
                ),
            ),
            (Ref("gpus", 2048, "runs.llama1_65b.gpu_count"), Ref("kv_heads", 64, "runs.llama1_65b.kv_heads")),
            "2048 A100 80GB (published)",
            "global batch 2048 sequences of 2048 tokens = 4M tokens (LLaMA paper Table 2; not in published.toml)",
            "Touvron et al. 2023, LLaMA, sec. 2.4 (2048 A100 80GB, 380 tokens/s/GPU, ~21 days) and Table 15 (GPU-hours)",
            (2048,),
        )
    )

    # LLaMA-1 7B / 13B / 33B: Table 15's GPU-hours; GPU count not published (65B: 2048 A100).
    for rid, label, key, layers, hidden, heads, ffn, tokens, gpus, tp, hours in (
        ("llama1-7b", "LLaMA-1 7B", "llama1_7b", 32, 4096, 32, 11008, 1.0e12, 1024, 1, 82432.0),
        ("llama1-13b", "LLaMA-1 13B", "llama1_13b", 40, 5120, 40, 13824, 1.0e12, 1024, 2, 135168.0),
        ("llama1-33b", "LLaMA-1 33B", "llama1_33b", 60, 6656, 52, 17920, 1.4e12, 2048, 4, 530432.0),
    ):
        model = attrs.evolve(
            llama1,
            name=label,
            layers=layers,
            hidden=hidden,
            heads=heads,
            ffn=ffn,
            source=f"Touvron et al. 2023 (LLaMA) Table 2; ffn {ffn} from the HF LLaMA config",
        )
        out.append(
            _llama_run(
                rid,
                label,
                key,
                model,
                A100,
                gpus,
                tp,
                2048,
                2048,
                tokens,
                (Ref("gpu_hours", hours, f"runs.{key}.gpu_hours"),),
                (),
                f"GPU count not published: {gpus} A100 80GB assumed (the 65B used 2048); it only enters "
                "through communication",
                "global batch 2048 sequences of 2048 tokens = 4M tokens (LLaMA paper Table 2; not in published.toml)",
                "Touvron et al. 2023, LLaMA, Table 2 (shape, tokens) and Table 15 (GPU-hours)",
                (512, 1024, 2048),
            )
        )

    card3 = "meta-llama/llama-models models/llama3/MODEL_CARD.md (GPU-hours on H100-80GB, 15T+ tokens, 8k sequences)"
    for rid, label, key, cat_id, gpus, tp, hours in (
        ("llama3-8b", "Llama 3 8B", "llama3_8b", "llama-3.1-8b", 1024, 1, 1.3e6),
        ("llama3-70b", "Llama 3 70B", "llama3_70b", "llama-3.1-70b", 2048, 8, 6.4e6),
    ):
        model = attrs.evolve(catalog.model(cat_id), name=label, max_positions=8192)
        out.append(
            _llama_run(
                rid,
                label,
                key,
                model,
                H100,
                gpus,
                tp,
                8192,
                1024,
                15.0e12,
                (Ref("gpu_hours", hours, f"runs.{key}.gpu_hours", note="the card's '15T+' tokens taken as 15T"),),
                (
                    Ref("kv_heads", model.n_kv_heads, f"runs.{key}.kv_heads"),
                    Ref("ffn", model.ffn, f"runs.{key}.ffn"),
                ),
                f"GPU count not published: {gpus} H100 80GB SXM assumed; Quantum-2 InfiniBand 400 Gb/s per GPU, the fabric of the smaller Llama 3 models (Llama 3 paper sec. 3.3.1; the 405B ran on RoCE)",
                "global batch not published: 1024 sequences of 8192 = 8M tokens assumed (Llama 3 paper sec. 3.4.1 "
                "uses 8M tokens at 8k sequences for 405B; not in published.toml)",
                card3,
                (512, 1024, 2048),
                network="ib-ndr",
                goodput=(
                    0.9,
                    "goodput 0.9: the Llama 3 paper (arXiv 2407.21783) sec. 3.3.4 reports more than 90 % effective "
                    "training time, measured on the 405B run; taken as the family's figure (the card's GPU-hours "
                    "are consumed time, interruptions included)",
                ),
            )
        )

    # DeepSeek-V3: 2048 H800, PP16 (DualPipe), EP64, ZeRO-1 DP, no TP, FP8.
    t = "runs.deepseek_v3"
    ds = catalog.model("deepseek-v3")
    out.append(
        Run(
            id="deepseek-v3",
            label="DeepSeek-V3 (pre-training)",
            group="production",
            plan=Plan(
                name="DeepSeek-V3 pre-training",
                model=ds,
                method=Method(kind="pretrain", tokens=14.8e12, seq_len=4096, global_batch=15360),
                # report sec. 3.3.3: BF16 AdamW moments; FP32 master weights and gradients; Linear
                # inputs and SwiGLU inputs cached in FP8 for the backward pass
                precision=Precision(
                    preset="fp8-mixed", optimizer_states="bf16", grads="fp32", linear_inputs="fp8", activation_func_inputs="fp8"
                ),
                cluster=Cluster(gpu=catalog.gpu(H800), gpus=2048),
                parallelism=Parallelism(
                    tp=1,
                    pp=16,
                    ep=64,
                    zero=1,
                    micro_batch=1,
                    recompute="selective",
                    # report sec. 3.2.3 (RMSNorm, MLA up-projections) and 3.3.3 (SwiGLU output)
                    recompute_modules=("core_attn", "layernorm", "mla_up_proj", "moe_act"),
                    pp_schedule="dualpipe",
                ),
            ),
            refs=(
                Ref("gpus", 2048, f"{t}.gpu_count"),
                Ref("tp", 1, f"{t}.tp"),
                Ref("pp", 16, f"{t}.pp"),
                Ref("ep", 64, f"{t}.ep"),
                Ref("zero", 1, f"{t}.dp_zero_stage"),
                Ref("seq_len", 4096, f"{t}.seq_len"),
                Ref("tokens", 14.8e12, f"{t}.tokens"),
                Ref("layers", ds.layers, f"{t}.layers"),
                Ref("hidden", ds.hidden, f"{t}.hidden"),
                Ref("heads", ds.heads, f"{t}.heads"),
                Ref("vocab", ds.vocab, f"{t}.vocab"),
                Ref("gpu_hours", 2.664e6, f"{t}.gpu_hours_pretrain", note="pre-training only (context extension and post-training excluded)"),
                Ref(
                    "days_per_1t_tokens",
                    3.7,
                    f"{t}.days_per_trillion_tokens",
                    primary=False,
                    note="= 180K GPU-hours per 1T tokens ÷ 2048 ÷ 24",
                ),
            ),
            layout="partly assumed",
            assumptions=(
                "global batch 15,360 sequences of 4096 throughout (the report ramps 3072 → 15,360 over the first 469B tokens)",
                ("DualPipe (sec. 3.2.1) as llmplan models it: bubble (PP/2 - 1)(F&B + B - 3W) with F&B = F + B; the "
                "EP all-to-all and PP sends hidden behind the paired chunk's compute in the reference schedule's "
                "overlapped forward-backward pairs, the rest exposed; 20 of the 132 SMs reserved for communication "
                "(sec. 3.2.2); two stages' parameters and PP + 1 micro-batches of activations per GPU"),
                ("node-limited routing (sec. 2.1.2, 3.2.2): each token's dispatch crosses InfiniBand to at most 4 of the "
                "8 nodes of its EP group, once per node, and is forwarded over NVLink, IB and NVLink overlapped"),
                "the MTP module (depth 1, sec. 2.2) trains with the model: one more MoE block, projection and output head per token",
                "AdamW moments in BF16, master weights and gradients in FP32 (sec. 3.3.3)",
                ("micro-batch 1 (not published); recomputation of every RMSNorm and the MLA up-projections (sec. 3.2.3), "
                "of the routed experts' SwiGLU output (sec. 3.3.3) and of the attention core; Linear and SwiGLU inputs "
                "cached in FP8, the attention output (the output projection's input) at BF16 — the report's E5M6 is "
                "not modelled — and the router input at BF16 (sec. 3.3.1); the shared expert's SwiGLU output stored in FP8 "
                "(Megatron-Core's moe_act covers the routed experts) and the 3 dense layers' SwiGLU inputs in FP8 too "
                "(the report names the MoE's). With all of it the predicted total still exceeds the 80 GB: FP32 "
                "gradients of two stages unsharded under ZeRO-1, pp + 1 micro-batches of 4 layers each"),
                (f"FP8 compute at the H800's dense FP8 peak (1979 TFLOP/s) with the default η_gemm = "
                f"{default_gemm_efficiency(catalog.gpu('h800-sxm'), 'fp8')[0]:.3f} ({GEMM_FRACTION_OF_MAMF} × the H100 SXM's "
                f"measured FP8 matmul rate, 1402.6 TFLOP/s; the attention core in BF16 at "
                f"{default_gemm_efficiency(catalog.gpu('h800-sxm'), 'bf16')[0]:.3f})"),
                "H800: NVLink 4 limited to 200 GB/s per direction, NDR InfiniBand (catalog)",
            ),
            source="DeepSeek-V3 Technical Report (arXiv 2412.19437) Table 1, sec. 1 and sec. 3.1-3.2; deepseek-ai/DeepSeek-V3 README",
        )
    )

    # BLOOM-176B: 384 A100, DP8 x TP4 x PP12, ZeRO-1, bf16.
    t = "runs.bloom_176b"
    bloom = Dense(
        name="BLOOM-176B",
        layers=70,
        hidden=14336,
        heads=112,
        ffn=4 * 14336,
        vocab=250880,
        mlp="gelu",
        norm="layernorm",
        attention_bias="all",
        mlp_bias=True,
        position="none",
        max_positions=2048,
        tied_embeddings=True,
        hf_model_type="bloom",
        source="BLOOM paper (arXiv 2211.05100) sec. 3.4; bigscience-workshop/bigscience train/tr11-176B-ml/tr11-176B-ml.slurm "
        "(NHIDDEN 14336, NLAYERS 70, NHEADS 112, --pad-vocab-size-to 250880, ALiBi)",
    )
    out.append(
        Run(
            id="bloom-176b",
            label="BLOOM-176B",
            group="production",
            plan=Plan(
                name="BLOOM-176B pre-training",
                model=bloom,
                method=Method(kind="pretrain", tokens=366e9, seq_len=2048, global_batch=2048),
                # DeepSpeed's BF16_Optimizer (ZeRO stage 0 in the script, its own stage-1 sharding) keeps a
                # flat fp32 gradient accumulator and all-reduces it
                precision=Precision(preset="bf16-mixed", grads="fp32"),
                cluster=Cluster(gpu=catalog.gpu(A100), gpus=384, inter_node=OMNI_PATH_100, nics_per_node=4),
                parallelism=Parallelism(
                    tp=4, pp=12, zero=1, micro_batch=2, recompute="full", pp_schedule="1f1b",
                    first_stage_layers=5, last_stage_layers=5, **PRE_FLASH, **PRE_SP,
                ),
            ),
            refs=(
                Ref("gpus", 384, f"{t}.gpu_count"),
                Ref("tp", 4, f"{t}.tp"),
                Ref("pp", 12, f"{t}.pp"),
                Ref("dp", 8, f"{t}.dp"),
                Ref("zero", 1, f"{t}.dp_zero_stage"),
                Ref("global_batch", 2048, f"{t}.global_batch_seqs"),
                Ref("seq_len", 2048, f"{t}.seq_len"),
                Ref("tokens", 366e9, f"{t}.tokens"),
                Ref("layers", 70, f"{t}.layers"),
                Ref("hidden", 14336, f"{t}.hidden"),
                Ref("heads", 112, f"{t}.heads"),
                Ref("vocab", 250680, f"{t}.vocab", tol=0.001, note="padded to 250,880 in training"),
                Ref("gpu_hours", 1082990.0, f"{t}.gpu_hours"),
                Ref("tflops_per_gpu", 150.0, f"{t}.tflops_per_gpu", note="steady-state throughput (model card)"),
                Ref("tflops_per_gpu", 156.0, f"{t}.tflops_per_gpu_alt", primary=False, note="GENCI: 156 TFLOP/s = 50 % of peak"),
                Ref("days", 117.0, f"{t}.wall_clock_days", primary=False, note="≈ GPU-hours ÷ 384 ÷ 24"),
            ),
            layout="published",
            assumptions=(
                ("micro-batch 2, full activation checkpointing, vocabulary padded to 250,880: from the training script "
                "bigscience-workshop/bigscience train/tr11-176B-ml/tr11-176B-ml.slurm (not in published.toml)"),
                ("the script's --pp-partition-method 'type:transformer|embedding' counts the input embedding and the "
                "tied output embedding as one layer each: 72 units on 12 stages, so 5 transformer layers on the "
                "first and the last stage and 6 on the others (first_stage_layers = last_stage_layers = 5)"),
                ("no sequence parallelism (the script has no --sequence-parallel; the fork predates it); "
                "DeepSpeed's BF16_Optimizer (the script's ZeRO stage 0: 'it implements its own zero stage 1 "
                "equivalent') keeps fp32 gradients and all-reduces them (grads = \"fp32\")"),
                "global batch 2048 sequences throughout (the script ramps it up from 192 over the first ~20B tokens)",
                "DeepSpeed's pipeline engine taken as 1F1B (not interleaved)",
                ("A100 80GB SXM with NVLink 3 inside a node; between nodes 4 × 100 Gb/s Omni-Path per node (BLOOM paper "
                "sec. 3.4, published.md sec. 5), modelled as a 100 Gb/s port with InfiniBand HDR's efficiency and latency"),
            ),
            source="BLOOM paper (arXiv 2211.05100) sec. 3.4; BigScience model card (~150 TFLOP/s); GENCI (156 TFLOP/s); layout per Zhao et al., A Survey of LLMs",
        )
    )

    # OPT-175B: 992 A100 80GB, up to 147 TFLOP/s, FSDP + Megatron TP, no PP.
    t = "runs.opt_175b"
    opt = Dense(
        name="OPT-175B",
        layers=96,
        hidden=12288,
        heads=96,
        ffn=4 * 12288,
        vocab=50272,
        mlp="relu",
        norm="layernorm",
        attention_bias="all",
        mlp_bias=True,
        position="learned",
        max_positions=2048,
        tied_embeddings=True,
        hf_model_type="opt",
        dropout=True,
        source="Zhang et al. 2022 (OPT) Table 1 (96 layers, 96 heads, d 12288); HF facebook/opt config family (ReLU, vocab 50272)",
    )
    out.append(
        Run(
            id="opt-175b",
            label="OPT-175B",
            group="production",
            plan=Plan(
                name="OPT-175B pre-training",
                model=opt,
                method=Method(kind="pretrain", tokens=180e9, seq_len=2048, global_batch=992),
                precision=Precision(preset="fp16-mixed"),
                cluster=Cluster(gpu=catalog.gpu(A100), gpus=992),
                parallelism=Parallelism(tp=8, pp=1, zero=3, micro_batch=8, recompute="full", **PRE_FLASH, **PRE_SP),
            ),
            refs=(
                Ref("gpus", 992, f"{t}.gpu_count"),
                Ref("seq_len", 2048, f"{t}.seq_len"),
                Ref("tokens", 180e9, f"{t}.tokens"),
                Ref("layers", 96, f"{t}.layers"),
                Ref("hidden", 12288, f"{t}.hidden"),
                Ref("heads", 96, f"{t}.heads"),
                Ref(
                    "global_batch_tokens",
                    2.0e6,
                    f"{t}.global_batch_tokens",
                    tol=0.02,
                    note="2M tokens: 992 sequences of 2048 = 2,031,616 (a multiple of dp = 124)",
                ),
                Ref("tflops_per_gpu", 147.0, f"{t}.tflops_per_gpu", note="'up to' 147: a peak, not an average"),
            ),
            layout="partly assumed",
            assumptions=(
                ("tp = 8 inside a node (the TP degree is not in published.toml; metaseq trained OPT-175B with "
                "model-parallel size 8), FSDP full sharding = ZeRO-3 over the 124 data-parallel replicas; no "
                "sequence parallelism (the run ended before it was published)"),
                ("full activation checkpointing and a FLOP count with recomputation (how OPT counted its 147 TFLOP/s "
                "is not stated; without recomputation the published figure would correspond to 3/4 of ours)"),
                ("fp16 mixed precision (published); micro-batch 8 = each replica's whole share of the batch, no "
                "gradient accumulation (not published: FSDP re-gathers every layer's parameters for every micro-batch, "
                "so fully sharded runs accumulate only when memory forces them to; with full recomputation 8 "
                "sequences fit)"),
            ),
            source="Zhang et al. 2022, OPT, sec. 2.4 (992 A100 80GB, up to 147 TFLOP/s per GPU)",
            spread_grid=tuple(
                # each replica's whole share of the 992 sequences as one micro-batch, as in the plan
                (Parallelism(tp=tp, pp=1, zero=3, micro_batch=tp, recompute="full"), 992) for tp in (1, 2, 4, 8)
            ),
        )
    )
    out.append(_mpt_7b())
    return out


def _mpt_7b() -> Run:
    """MPT-7B pre-training (MosaicML 2023): 440 A100-40GB, FSDP, 1T tokens in about 9.5 days."""
    t = "runs.mpt_7b"
    tokens, gpus, batch = 1.0e12, 440, 1760

    def layout(mb: int, recompute: str) -> tuple[Parallelism, int]:
        return Parallelism(zero=3, sharding="fsdp", micro_batch=mb, recompute=recompute, attention_kernel="flash1"), gpus

    return Run(
        id="mpt-7b",
        label="MPT-7B",
        group="production",
        plan=Plan(
            name="MPT-7B pre-training",
            model=catalog.model("mpt-7b"),
            method=Method(kind="pretrain", tokens=tokens, seq_len=2048, global_batch=batch),
            precision=Precision(preset="bf16-mixed", optimizer="lion"),
            cluster=Cluster(gpu=catalog.gpu("a100-40gb-sxm"), gpus=gpus, inter_node=ROCE_200),
            parallelism=layout(4, "full")[0],
        ),
        refs=(
            Ref("gpus", gpus, "extra:production.mpt_7b.gpu_count", note="the model card: 440 A100-40GBs"),
            Ref("tokens", tokens, f"{t}.tokens"),
            Ref("days", 9.5, f"{t}.wall_clock_days", note="'about 9.5 days' of wall clock (4 hardware failures resumed automatically)"),
        ),
        layout="partly assumed",
        assumptions=(
            ("published (the model card, mosaicml/mpt-7b): 440 A100-40GB, sharded data parallelism with FSDP, the Lion "
             "optimizer (one moment per parameter), sequences of 2,048 tokens, 1T tokens; the architecture from its "
             "config.json (ALiBi, no biases, tied LM head; llmplan's count 6,649,286,656 = HF MptForCausalLM's, oracle-tested)"),
            ("not published for the 7B: the global batch — 1,760 sequences assumed (4 per GPU; MPT-30B's card gives 1,760 "
             "for its stage on the same 440 A100-40GB), run as one micro-batch of 4 per GPU (FSDP re-gathers every layer "
             "for every micro-batch) with full activation checkpointing (llm-foundry's mpt-7b.yaml and every 7B row of its "
             "A100 40GB benchmark table checkpoint); the spread adds micro-batches 1 and 2 and no checkpointing where it fits"),
            ("precision bf16-mixed (Composer amp_bf16: fp32 master weights and Lion momentum); FlashAttention's "
             "Triton port (attn_impl 'triton', with the ALiBi bias), described as FlashAttention-1 (attention_kernel = "
             "\"flash1\": the port's docstring puts its forward + backward slightly below the CUDA version's)"),
            ("fabric: MosaicML's A100 clusters as llm-foundry's A100 tables give them, 1600 Gb/s RoCE per 8-GPU node = "
             "200 Gb/s per GPU (efficiency and latency as llmplan's roce-400) — the run's own cluster is not described"),
            ("the card's 9.5 days are wall clock, interruptions included (the announcement: four hardware failures, "
             "resumed automatically); no goodput is published, so none is applied. The announcement's ~$200k is not "
             "compared: the price per GPU-hour behind it is not published"),
        ),
        source=("HF mosaicml/mpt-7b model card ('Training Configuration': 440 A100-40GBs for about 9.5 days, FSDP, LION); "
                "MosaicML blog 'Introducing MPT-7B' (2023-05-05: 1T tokens, 9.5 days, zero human intervention, ~$200k)"),
        spread_grid=tuple(layout(mb, rc) for rc in ("full", "none") for mb in (1, 2, 4)),
    )


#: Llama 3 paper Table 4: (run id, extra key, GPUs, cp, dp, seq, sequences per DP rank,
#: TFLOP/s per GPU, BF16 MFU). tp = 8 and pp = 16 in every row.
LLAMA3_405B_TABLE4: tuple[tuple[str, str, int, int, int, int, int, float, float], ...] = (
    ("llama3-405b-8k-8192", "llama3_405b_8k_8192", 8192, 1, 64, 8192, 32, 430.0, 0.43),
    ("llama3-405b-8k-16384", "llama3_405b_8k_16384", 16384, 1, 128, 8192, 16, 400.0, 0.41),
    ("llama3-405b-128k-16384", "llama3_405b_128k_16384", 16384, 16, 8, 131072, 16, 380.0, 0.38),
)

LLAMA3_PAPER = "Llama Team, AI @ Meta, 'The Llama 3 Herd of Models' (arXiv 2407.21783)"


def _llama3_405b() -> list[Run]:
    """Llama 3 405B pre-training throughput, Table 4 of the Llama 3 paper (``extra:`` refs)."""
    model = catalog.model("llama-3.1-405b")
    out = []
    for rid, key, gpus, cp, dp, seq, per_dp, tflops, mfu in LLAMA3_405B_TABLE4:
        t = f"extra:runs.{key}"
        plan = Plan(
            name=f"Llama 3 405B, {seq // 1024}K, {gpus} GPUs",
            model=attrs.evolve(model, name="Llama 3 405B"),
            method=Method(kind="pretrain", tokens=15.6e12, seq_len=seq, global_batch=dp * per_dp),
            precision=Precision(preset="bf16-mixed"),
            cluster=Cluster(gpu=catalog.gpu(H100), gpus=gpus, inter_node=catalog.link("roce-400")),
            parallelism=Parallelism(
                tp=8, cp=cp, pp=16, zero=2, recompute="none", micro_batch=1, pp_schedule="interleaved", virtual_stages=2,
                first_stage_layers=7, last_stage_layers=7,
            ),
        )
        out.append(
            Run(
                id=rid,
                label=f"Llama 3 405B {seq // 1024}K × {gpus} (Table 4)",
                group="llama3-405b-table4",
                plan=plan,
                refs=(
                    Ref("gpus", gpus, f"{t}.gpus"),
                    Ref("tp", 8, f"{t}.tp"),
                    Ref("cp", cp, f"{t}.cp"),
                    Ref("pp", 16, f"{t}.pp"),
                    Ref("dp", dp, f"{t}.dp"),
                    Ref("seq_len", seq, f"{t}.seq_len"),
                    Ref("batch_per_dp", per_dp, f"{t}.batch_per_dp"),
                    Ref("tflops_per_gpu", tflops, f"{t}.tflops_per_gpu"),
                    Ref("hfu", mfu, f"{t}.bf16_mfu", primary=False, note="BF16 MFU = TFLOP/s ÷ 989; no recomputation, so MFU = HFU"),
                ),
                layout="partly assumed",
                assumptions=(
                    "published: tp, cp, pp, dp, GPUs, sequence length, sequences per DP rank (Table 4); H100 80GB, "
                    "RoCE 400 Gb/s per GPU for the 405B run (sec. 3.3.1); interleaved 1F1B with one layer fewer on the "
                    "first and last stage (126 layers on 16 stages: 7 + 14 × 8 + 7, first_stage_layers = last_stage_layers = 7), no "
                    "activation checkpointing (sec. 3.3.2); FSDP sharding optimizer states and gradients = ZeRO-2",
                    "not published: virtual stages per GPU — 2, the smallest interleaving (the spread adds 4; 8 would need "
                    "pp × v = 128 ≤ 126 layers); "
                    "micro-batch 1 sequence (the DP rank's sequences are the micro-batches); FlashAttention",
                    "the FLOP convention of Table 4 is not stated; llmplan counts the attention core in full "
                    "(non-causal, as Narayanan et al. 2021), which matters most for the 128K row",
                    "tokens 15.6T (sec. 3.1) only set the run length; TFLOP/s per GPU does not depend on them",
                ),
                source=f"{LLAMA3_PAPER}, Table 4 (benchmarks/published_extra.toml)",
                spread_grid=tuple(
                    (Parallelism(tp=8, cp=cp, pp=16, zero=2, recompute="none", pp_schedule="interleaved", virtual_stages=v,
                                 first_stage_layers=7, last_stage_layers=7), gpus)
                    for v in (2, 4)
                ),
            )
        )
    return out


# ---------------------------------------------------------------------------------------
# MosaicML llm-foundry: measured MPT training throughput (``extra:`` refs)
# ---------------------------------------------------------------------------------------

LLM_FOUNDRY = (
    "MosaicML llm-foundry, scripts/train/benchmarking/README.md ('MPT Training Benchmarks', "
    "commit 495218376830)"
)

#: MPT shapes (d_model, n_heads, n_layers) of llm-foundry's scripts/train/yamls/pretrain/mpt-<size>.yaml;
#: every size has expansion_ratio 4 and vocab_size 50368.
MPT_SHAPES: dict[str, tuple[int, int, int]] = {
    "125m": (768, 12, 12),
    "350m": (1024, 16, 24),
    "760m": (1536, 12, 24),
    "1b": (2048, 16, 24),
    "3b": (2560, 20, 32),
    "7b": (4096, 32, 32),
    "13b": (5120, 40, 40),
    "30b": (7168, 56, 48),
    "70b": (8192, 64, 80),
}
MPT_VOCAB = 50368


def gpt2_style(name: str, d: int, heads: int, layers: int, vocab: int, positions: int, *, dropout: bool, source: str) -> Dense:
    """A GPT-2-style decoder: biases on every Linear and LayerNorm, GELU MLP of 4·d, a learned
    position table of ``positions``, the LM head tied to the token embedding."""
    return Dense(
        name=name,
        layers=layers,
        hidden=d,
        heads=heads,
        ffn=4 * d,
        vocab=vocab,
        mlp="gelu",
        norm="layernorm",
        attention_bias="all",
        mlp_bias=True,
        position="learned",
        max_positions=positions,
        tied_embeddings=True,
        dropout=dropout,
        source=source,
    )


def mpt_model(size: str, seq_len: int) -> Dense:
    """MPT as llm-foundry's throughput benchmarks built it: the yaml's shape with MPTConfig's
    defaults (``no_bias = False``: biases on every Linear and LayerNorm; ``learned_pos_emb = True``
    with ``max_seq_len`` set to the run's sequence length by submit_benchmarks.py; GELU MLP of
    4·d_model; LM head tied to the token embedding; no dropout). Its parameter count equals the
    README's NumParams for every row (``tests/test_validation.py``). Not Hugging Face's
    ``MptForCausalLM``, which has ALiBi and no biases."""
    d, heads, layers = MPT_SHAPES[size]
    return gpt2_style(
        f"MPT-{size.upper()}",
        d,
        heads,
        layers,
        MPT_VOCAB,
        seq_len,
        dropout=False,
        source=f"mosaicml/llm-foundry scripts/train/yamls/pretrain/mpt-{size}.yaml (d_model {d}, n_heads {heads}, "
        f"n_layers {layers}, expansion_ratio 4, vocab 50368) with MPTConfig's defaults (no_bias false, "
        "learned_pos_emb true, tied LM head)",
    )


#: MosaicML's A100 clusters: "1600 Gbps node-node interconnect (RoCE)" per 8-GPU node (the titles
#: of the README's A100 tables) = 200 Gb/s per GPU. No catalog link at 200 Gb/s RoCE; efficiency
#: and latency as roce-400.
ROCE_200 = attrs.evolve(
    catalog.link("roce-400"),
    id="roce-200",
    name="RoCE v2, 200 Gb/s per GPU (MosaicML A100 clusters)",
    bandwidth=200e9 / 8,
    status="assumed",
    source="llm-foundry scripts/train/benchmarking/README.md, A100 table titles: '1600 Gbps node-node "
    "interconnect (RoCE)' per 8-GPU node; efficiency and latency assumed equal to roce-400",
    notes="defined in llmplan.validation for the llm-foundry A100 runs",
)

#: One README row: (size, seq_len, GPUs, micro-batch, gradient accumulation, global batch in
#: sequences, ZeRO stage (FSDP FULL_SHARD = 3, SHARD_GRAD_OP = 2), activation checkpointing,
#: NumParams, measured tokens/s per GPU).
MptRow = tuple[str, int, int, int, int, int, int, bool, int, int]

MPT_H100_BF16_LARGE: tuple[MptRow, ...] = (
    ("70b", 2048, 512, 8, 1, 4096, 3, True, 64862437376, 1007),
    ("70b", 2048, 256, 8, 1, 2048, 3, True, 64862437376, 1035),
    ("70b", 2048, 128, 8, 1, 1024, 3, True, 64862437376, 1058),
    ("30b", 2048, 512, 8, 1, 4096, 3, True, 29975214080, 2115),
    ("30b", 2048, 256, 8, 1, 2048, 3, True, 29975214080, 2148),
    ("30b", 2048, 128, 8, 1, 1024, 3, True, 29975214080, 2199),
    ("13b", 2048, 512, 16, 1, 8192, 3, True, 12853954560, 4952),
    ("13b", 2048, 256, 16, 1, 4096, 3, True, 12853954560, 4989),
    ("13b", 2048, 128, 16, 1, 2048, 3, True, 12853954560, 5080),
    ("7b", 2048, 512, 6, 1, 3072, 3, False, 6658859008, 9670),
    ("7b", 2048, 256, 6, 1, 1536, 3, False, 6658859008, 10119),
    ("7b", 2048, 128, 6, 1, 768, 3, False, 6658859008, 10475),
    ("3b", 2048, 512, 8, 1, 4096, 2, False, 2651837440, 21664),
    ("3b", 2048, 256, 8, 1, 2048, 2, False, 2651837440, 22772),
    ("3b", 2048, 128, 8, 1, 1024, 2, False, 2651837440, 23422),
    ("1b", 2048, 512, 12, 1, 6144, 2, False, 1315950592, 39837),
    ("1b", 2048, 256, 12, 1, 3072, 2, False, 1315950592, 42555),
    ("1b", 2048, 128, 12, 1, 1536, 2, False, 1315950592, 44123),
)

MPT_H100_BF16: tuple[MptRow, ...] = (
    ("70b", 2048, 64, 8, 4, 2048, 3, True, 64862437376, 1039),
    ("70b", 2048, 32, 2, 16, 1024, 3, True, 64862437376, 882),
    ("30b", 8192, 8, 1, 21, 168, 3, True, 30019254272, 1384),
    ("30b", 4096, 8, 1, 21, 168, 3, True, 29989894144, 1802),
    ("30b", 2048, 32, 14, 3, 1344, 3, True, 29975214080, 2308),
    ("30b", 2048, 16, 10, 3, 480, 3, True, 29975214080, 2263),
    ("30b", 2048, 8, 3, 21, 504, 3, True, 29975214080, 2002),
    ("30b", 1024, 8, 6, 21, 1008, 3, True, 29967874048, 2084),
    ("13b", 32768, 8, 1, 3, 24, 3, True, 13011240960, 1976),
    ("13b", 16384, 8, 3, 3, 72, 3, True, 12927354880, 2985),
    ("13b", 4096, 8, 10, 3, 240, 3, True, 12864440320, 4717),
    ("13b", 2048, 64, 2, 1, 128, 3, False, 12853954560, 4800),
    ("13b", 2048, 32, 2, 1, 64, 3, False, 12853954560, 4811),
    ("13b", 2048, 16, 2, 1, 32, 3, False, 12853954560, 4767),
    ("13b", 2048, 8, 2, 1, 16, 3, False, 12853954560, 4792),
    ("13b", 1024, 8, 40, 3, 960, 3, True, 12848711680, 5502),
    ("7b", 65536, 8, 1, 2, 16, 3, True, 6918905856, 1956),
    ("7b", 32768, 8, 2, 2, 32, 3, True, 6784688128, 3318),
    ("7b", 8192, 8, 8, 2, 128, 3, True, 6684024832, 6935),
    ("7b", 4096, 8, 16, 2, 256, 3, True, 6667247616, 8611),
    ("7b", 2048, 8, 6, 1, 48, 3, False, 6658859008, 10643),
    ("7b", 1024, 8, 64, 2, 1024, 3, True, 6654664704, 10203),
    ("3b", 65536, 8, 1, 2, 16, 3, True, 2814366720, 3262),
    ("3b", 32768, 8, 3, 6, 144, 3, True, 2730480640, 5873),
    ("3b", 16384, 8, 1, 6, 48, 3, False, 2688537600, 11152),
    ("3b", 8192, 8, 3, 6, 144, 3, False, 2667566080, 16578),
    ("3b", 4096, 8, 5, 6, 240, 3, False, 2657080320, 20964),
    ("3b", 2048, 64, 6, 3, 1152, 3, False, 2651837440, 22525),
    ("3b", 2048, 32, 6, 3, 576, 3, False, 2651837440, 23021),
    ("3b", 2048, 16, 10, 3, 480, 3, False, 2651837440, 24142),
    ("3b", 1024, 8, 20, 6, 960, 3, False, 2649216000, 27046),
    ("3b", 512, 8, 40, 6, 1920, 3, False, 2647905280, 27965),
    ("1b", 65536, 8, 1, 2, 16, 3, True, 1445974016, 5506),
    ("1b", 32768, 8, 1, 4, 32, 3, False, 1378865152, 12025),
    ("1b", 16384, 8, 2, 4, 64, 3, False, 1345310720, 19649),
    ("1b", 8192, 8, 3, 4, 96, 3, False, 1328533504, 29157),
    ("1b", 4096, 8, 7, 4, 224, 3, False, 1320144896, 38535),
    ("1b", 2048, 64, 20, 1, 1280, 3, False, 1315950592, 44402),
    ("1b", 2048, 32, 20, 1, 640, 3, False, 1315950592, 45130),
    ("1b", 2048, 16, 20, 1, 320, 3, False, 1315950592, 46037),
    ("1b", 2048, 8, 14, 1, 112, 3, False, 1315950592, 45455),
    ("1b", 1024, 8, 18, 4, 576, 3, False, 1313853440, 48910),
    ("1b", 512, 8, 56, 4, 1792, 3, False, 1312804864, 52275),
    ("760m", 32768, 8, 1, 2, 16, 3, False, 807656448, 16291),
    ("760m", 16384, 8, 3, 2, 48, 3, False, 782490624, 27815),
    ("760m", 8192, 8, 6, 2, 96, 3, False, 769907712, 41825),
    ("760m", 4096, 8, 12, 2, 192, 3, False, 763616256, 55459),
    ("760m", 2048, 32, 24, 1, 768, 3, False, 760470528, 67971),
    ("760m", 2048, 16, 24, 1, 384, 3, False, 760470528, 68551),
    ("760m", 2048, 8, 24, 2, 384, 3, False, 760470528, 63147),
    ("760m", 1024, 8, 48, 2, 768, 3, False, 758897664, 78581),
    ("760m", 512, 8, 96, 2, 1536, 3, False, 758111232, 83749),
)

MPT_H100_FP8: tuple[MptRow, ...] = (
    ("3b", 32768, 8, 3, 6, 144, 3, True, 2730480640, 5856),
    ("3b", 8192, 8, 3, 6, 144, 3, False, 2667566080, 19146),
    ("3b", 2048, 8, 10, 6, 480, 3, False, 2651837440, 30586),
    ("3b", 512, 8, 40, 6, 1920, 3, False, 2647905280, 36527),
    ("1b", 32768, 8, 1, 4, 32, 3, False, 1378865152, 12580),
    ("1b", 8192, 8, 2, 4, 64, 3, False, 1328533504, 32010),
    ("1b", 512, 8, 56, 4, 1792, 3, False, 1312804864, 70315),
)

MPT_A100_80GB: tuple[MptRow, ...] = (
    ("70b", 2048, 64, 8, 4, 2048, 3, True, 64862437376, 410),
    ("70b", 2048, 32, 2, 16, 1024, 3, True, 64862437376, 373),
    ("30b", 8192, 8, 1, 21, 168, 3, True, 30019254272, 574),
    ("30b", 4096, 8, 1, 21, 168, 3, True, 29989894144, 814),
    ("30b", 2048, 8, 3, 21, 504, 3, True, 29975214080, 916),
    ("30b", 1024, 8, 6, 21, 1008, 3, True, 29967874048, 946),
    ("30b", 512, 8, 12, 21, 2016, 3, True, 29964204032, 967),
    ("13b", 32768, 8, 1, 3, 24, 3, True, 13011240960, 1016),
    ("13b", 16384, 8, 3, 3, 72, 3, True, 12927354880, 1431),
    ("13b", 8192, 8, 5, 3, 120, 3, True, 12885411840, 1795),
    ("13b", 4096, 8, 10, 3, 240, 3, True, 12864440320, 2060),
    ("13b", 2048, 8, 2, 3, 48, 3, False, 12853954560, 2262),
    ("13b", 1024, 8, 40, 3, 960, 3, True, 12848711680, 2330),
    ("7b", 65536, 8, 1, 2, 16, 3, True, 6918905856, 1013),
    ("7b", 32768, 8, 2, 2, 32, 3, True, 6784688128, 1672),
    ("7b", 16384, 8, 4, 2, 64, 3, True, 6717579264, 2453),
    ("7b", 8192, 8, 8, 2, 128, 3, True, 6684024832, 3206),
    ("7b", 4096, 8, 16, 2, 256, 3, True, 6667247616, 3684),
    ("7b", 2048, 8, 6, 2, 96, 3, False, 6658859008, 4641),
    ("7b", 1024, 8, 64, 2, 1024, 3, True, 6654664704, 4357),
    ("3b", 65536, 8, 1, 2, 16, 3, True, 2814366720, 1767),
    ("3b", 32768, 8, 3, 6, 144, 3, True, 2730480640, 3029),
    ("3b", 16384, 8, 1, 6, 48, 3, False, 2688537600, 5529),
    ("3b", 8192, 8, 3, 6, 144, 3, False, 2667566080, 7695),
    ("3b", 4096, 8, 5, 6, 240, 3, False, 2657080320, 9457),
    ("3b", 2048, 8, 10, 2, 160, 3, False, 2651837440, 10811),
    ("3b", 1024, 8, 20, 6, 960, 3, False, 2649216000, 11580),
    ("3b", 512, 8, 40, 6, 1920, 3, False, 2647905280, 12127),
    ("1b", 65536, 8, 1, 2, 16, 3, True, 1445974016, 3044),
    ("1b", 32768, 8, 1, 4, 32, 3, False, 1378865152, 6275),
    ("1b", 16384, 8, 2, 4, 64, 3, False, 1345310720, 9956),
    ("1b", 8192, 8, 3, 4, 96, 3, False, 1328533504, 13814),
    ("1b", 4096, 8, 7, 4, 224, 3, False, 1320144896, 17807),
    ("1b", 2048, 8, 14, 4, 448, 3, False, 1315950592, 20513),
    ("1b", 1024, 8, 18, 4, 576, 3, False, 1313853440, 22112),
    ("1b", 512, 8, 56, 4, 1792, 3, False, 1312804864, 23148),
    ("760m", 65536, 8, 1, 2, 16, 3, True, 857988096, 4143),
    ("760m", 32768, 8, 1, 2, 16, 3, False, 807656448, 8802),
    ("760m", 16384, 8, 3, 2, 48, 3, False, 782490624, 14274),
    ("760m", 8192, 8, 6, 2, 96, 3, False, 769907712, 20933),
    ("760m", 4096, 8, 12, 2, 192, 3, False, 763616256, 27351),
    ("760m", 2048, 8, 24, 2, 384, 3, False, 760470528, 32434),
    ("760m", 1024, 8, 48, 2, 768, 3, False, 758897664, 29765),
    ("760m", 512, 8, 96, 2, 1536, 3, False, 758111232, 29446),
    ("350m", 65536, 8, 1, 2, 16, 3, False, 420997120, 7524),
    ("350m", 32768, 8, 2, 2, 32, 3, False, 387442688, 13652),
    ("350m", 16384, 8, 4, 2, 64, 3, False, 370665472, 23559),
    ("350m", 8192, 8, 8, 2, 128, 3, False, 362276864, 36569),
    ("350m", 4096, 8, 16, 2, 256, 3, False, 358082560, 49555),
    ("350m", 2048, 8, 32, 2, 512, 3, False, 355985408, 58782),
    ("350m", 1024, 8, 64, 2, 1024, 3, False, 354936832, 64813),
    ("350m", 512, 8, 128, 2, 2048, 3, False, 354412544, 69330),
    ("125m", 65536, 8, 1, 2, 16, 3, False, 174070272, 20368),
    ("125m", 32768, 8, 2, 2, 32, 3, False, 148904448, 36407),
    ("125m", 16384, 8, 4, 2, 64, 3, False, 136321536, 60040),
    ("125m", 8192, 8, 8, 2, 128, 3, False, 130030080, 90392),
    ("125m", 4096, 8, 16, 2, 256, 3, False, 126884352, 118396),
    ("125m", 2048, 8, 40, 2, 640, 3, False, 125311488, 142830),
    ("125m", 2048, 8, 32, 2, 512, 3, False, 125311488, 141737),
    ("125m", 1024, 8, 64, 2, 1024, 3, False, 124525056, 156468),
    ("125m", 512, 8, 128, 2, 2048, 3, False, 124131840, 165681),
)

MPT_A100_40GB: tuple[MptRow, ...] = (
    ("70b", 2048, 128, 4, 1, 512, 3, True, 64862437376, 376),
    ("70b", 2048, 64, 2, 1, 128, 3, True, 64862437376, 276),
    ("30b", 2048, 128, 6, 1, 768, 3, True, 29975214080, 865),
    ("30b", 2048, 32, 4, 1, 128, 3, True, 29975214080, 857),
    ("13b", 8192, 8, 1, 16, 128, 3, True, 12885411840, 1407),
    ("13b", 4096, 8, 2, 16, 256, 3, True, 12864440320, 1603),
    ("13b", 2048, 128, 16, 1, 2048, 3, True, 12853954560, 1972),
    ("13b", 2048, 64, 16, 1, 1024, 3, True, 12853954560, 1976),
    ("13b", 2048, 32, 14, 1, 448, 3, True, 12853954560, 1998),
    ("13b", 2048, 16, 10, 1, 160, 3, True, 12853954560, 1993),
    ("13b", 2048, 8, 4, 16, 512, 3, True, 12853954560, 1668),
    ("13b", 1024, 8, 8, 16, 1024, 3, True, 12848711680, 1727),
    ("13b", 512, 8, 16, 16, 2048, 3, True, 12846090240, 1763),
    ("7b", 16384, 8, 1, 4, 32, 3, True, 6717579264, 2249),
    ("7b", 8192, 8, 3, 4, 96, 3, True, 6684024832, 2887),
    ("7b", 4096, 8, 6, 4, 192, 3, True, 6667247616, 3366),
    ("7b", 2048, 128, 18, 1, 2304, 3, True, 6658859008, 3623),
    ("7b", 2048, 64, 18, 1, 1152, 3, True, 6658859008, 3665),
    ("7b", 2048, 32, 18, 1, 576, 3, True, 6658859008, 3725),
    ("7b", 2048, 16, 16, 1, 256, 3, True, 6658859008, 3645),
    ("7b", 2048, 8, 12, 4, 384, 3, True, 6658859008, 3679),
    ("7b", 1024, 8, 24, 4, 768, 3, True, 6654664704, 3854),
    ("7b", 512, 8, 48, 4, 1536, 3, True, 6652567552, 3895),
    ("3b", 32768, 8, 1, 4, 32, 3, True, 2730480640, 2955),
    ("3b", 16384, 8, 2, 8, 128, 3, True, 2688537600, 4465),
    ("3b", 8192, 8, 1, 8, 64, 3, False, 2667566080, 7149),
    ("3b", 4096, 8, 2, 8, 128, 3, False, 2657080320, 8777),
    ("3b", 2048, 128, 6, 1, 768, 3, False, 2651837440, 9538),
    ("3b", 2048, 64, 6, 1, 384, 3, False, 2651837440, 9736),
    ("3b", 2048, 32, 6, 1, 192, 3, False, 2651837440, 9914),
    ("3b", 2048, 16, 5, 1, 80, 3, False, 2651837440, 9750),
    ("3b", 2048, 8, 5, 8, 320, 3, False, 2651837440, 10065),
    ("3b", 1024, 8, 10, 8, 640, 3, False, 2649216000, 10731),
    ("3b", 512, 8, 20, 8, 1280, 3, False, 2647905280, 11324),
    ("1b", 32768, 8, 1, 4, 32, 3, True, 1378865152, 5095),
    ("1b", 16384, 8, 1, 8, 64, 3, False, 1345310720, 9715),
    ("1b", 8192, 8, 2, 8, 128, 3, False, 1328533504, 13474),
    ("1b", 4096, 8, 4, 8, 256, 3, False, 1320144896, 16856),
    ("1b", 2048, 128, 10, 1, 1280, 3, False, 1315950592, 18647),
    ("1b", 2048, 64, 10, 1, 640, 3, False, 1315950592, 19001),
    ("1b", 2048, 32, 10, 1, 320, 3, False, 1315950592, 15555),
    ("1b", 2048, 16, 8, 1, 128, 3, False, 1315950592, 19085),
    ("1b", 2048, 8, 8, 8, 512, 3, False, 1315950592, 19271),
    ("1b", 1024, 8, 16, 8, 1024, 3, False, 1313853440, 20959),
    ("1b", 512, 8, 32, 8, 2048, 3, False, 1312804864, 21782),
    ("760m", 32768, 8, 1, 4, 32, 3, True, 807656448, 7183),
    ("760m", 16384, 8, 1, 4, 32, 3, False, 782490624, 13914),
    ("760m", 8192, 8, 3, 4, 96, 3, False, 769907712, 20106),
    ("760m", 4096, 8, 6, 4, 192, 3, False, 763616256, 25863),
    ("760m", 2048, 128, 12, 1, 1536, 3, False, 760470528, 28940),
    ("760m", 2048, 64, 12, 1, 768, 3, False, 760470528, 29344),
    ("760m", 2048, 32, 12, 1, 384, 3, False, 760470528, 29648),
    ("760m", 2048, 16, 12, 1, 192, 3, False, 760470528, 29607),
    ("760m", 2048, 8, 12, 4, 384, 3, False, 760470528, 30173),
    ("760m", 1024, 8, 24, 4, 768, 3, False, 758897664, 33422),
    ("760m", 512, 8, 48, 4, 1536, 3, False, 758111232, 34938),
    ("350m", 32768, 8, 1, 4, 32, 3, False, 387442688, 13416),
    ("350m", 16384, 8, 2, 4, 64, 3, False, 370665472, 22896),
    ("350m", 8192, 8, 4, 4, 128, 3, False, 362276864, 34933),
    ("350m", 4096, 8, 8, 4, 256, 3, False, 358082560, 46833),
    ("350m", 2048, 128, 18, 1, 2304, 3, False, 355985408, 51934),
    ("350m", 2048, 64, 18, 1, 1152, 3, False, 355985408, 52689),
    ("350m", 2048, 32, 18, 1, 576, 3, False, 355985408, 53811),
    ("350m", 2048, 16, 18, 1, 288, 3, False, 355985408, 55413),
    ("350m", 2048, 8, 16, 4, 512, 3, False, 355985408, 55995),
    ("350m", 1024, 8, 32, 4, 1024, 3, False, 354936832, 62523),
    ("350m", 512, 8, 64, 4, 2048, 3, False, 354412544, 66284),
    ("125m", 32768, 8, 1, 4, 32, 3, False, 148904448, 32651),
    ("125m", 16384, 8, 2, 3, 48, 3, False, 136321536, 55484),
    ("125m", 8192, 8, 5, 3, 120, 3, False, 130030080, 86858),
    ("125m", 4096, 8, 13, 3, 312, 3, False, 126884352, 115162),
    ("125m", 2048, 128, 26, 1, 3328, 3, False, 125311488, 123936),
    ("125m", 2048, 64, 26, 1, 1664, 3, False, 125311488, 125234),
    ("125m", 2048, 32, 26, 1, 832, 3, False, 125311488, 127122),
    ("125m", 2048, 16, 26, 1, 416, 3, False, 125311488, 130535),
    ("125m", 2048, 8, 26, 3, 624, 3, False, 125311488, 136334),
    ("125m", 1024, 8, 52, 3, 1248, 3, False, 124525056, 148289),
    ("125m", 512, 8, 104, 3, 2496, 3, False, 124131840, 156735),
)


#: The README's tables: (id part, group, title, short label, catalog GPU, precision preset,
#: inter-node link or None for the catalog default, rows).
MPT_TABLES: tuple[tuple[str, str, str, str, str, str, Any, tuple[MptRow, ...]], ...] = (
    ("h100-bf16-large", "llm-foundry-h100-bf16-large", "H100 80GB BF16 (Large Scale, >= 128 GPUs)", "H100 BF16, ≥ 128 GPUs",
     H100, "bf16-mixed", None, MPT_H100_BF16_LARGE),
    ("h100-bf16", "llm-foundry-h100-bf16", "H100 80GB BF16", "H100 BF16", H100, "bf16-mixed", None, MPT_H100_BF16),
    ("h100-fp8", "llm-foundry-h100-fp8", "H100 80GB FP8", "H100 FP8", H100, "fp8-mixed", None, MPT_H100_FP8),
    ("a100-80gb", "llm-foundry-a100-80gb", "A100 80GB with 1600 Gbps node-node interconnect (RoCE)", "A100 80GB",
     A100, "bf16-mixed", ROCE_200, MPT_A100_80GB),
    ("a100-40gb", "llm-foundry-a100-40gb", "A100 40GB with 1600 Gbps node-node interconnect (RoCE)", "A100 40GB",
     "a100-40gb-sxm", "bf16-mixed", ROCE_200, MPT_A100_40GB),
)

_MPT_DEFAULT_MP = (
    "DEFAULT's fp32 gradient reduction as [precision] grads = \"fp32\": fp32 reduce-scatters and gradient shards, "
    "bf16 all-gathers (2·2 + 4 bytes per parameter per micro-batch under FULL_SHARD)"
)

#: Precision as each table gives it (Composer precision, FSDP mixed_precision), keyed by table.
_MPT_PRECISION = {
    "h100-bf16-large": "precision amp_bf16, FSDP mixed_precision DEFAULT (bf16 parameters, gradients reduced in "
    "fp32) → bf16-mixed; " + _MPT_DEFAULT_MP,
    "h100-bf16": "precision amp_bf16, FSDP mixed_precision DEFAULT (bf16 parameters, gradients reduced in fp32) → "
    "bf16-mixed; " + _MPT_DEFAULT_MP,
    "a100-80gb": "precision amp_bf16 with FSDP mixed_precision DEFAULT (bf16 parameters, gradients reduced in fp32), "
    "the two 70b rows 'bf16' with PURE (bf16 parameters and reduction) → bf16-mixed (PURE: bf16 gradients); " + _MPT_DEFAULT_MP,
    "a100-40gb": "precision 'bf16' (the older runs' Composer setting) with FSDP mixed_precision PURE (bf16 parameters, "
    "gradient reduction and buffers) → bf16-mixed, whose bf16 gradient traffic PURE matches",
    "h100-fp8": (
        "precision amp_fp8 (TransformerEngine Linear layers, fc_type 'te') → fp8-mixed: the GEMMs at the H100's FP8 "
        "peak × η_gemm, the attention core in BF16; llm-foundry's tied LM head is a plain F.linear and stays in BF16, "
        "as llmplan's fp8 preset times it (the BF16 peak × η_gemm16); FSDP mixed_precision DEFAULT: "
        + _MPT_DEFAULT_MP
    ),
}


def _mpt_fabric(gpu: str, inter_node: Any) -> str:
    if inter_node is not None:
        return ("8-GPU A100 nodes on NVLink 3; between nodes 1600 Gb/s RoCE per node (the table's title) = 200 Gb/s "
                "per GPU, efficiency and latency as llmplan's roce-400 (only rows with more than 8 GPUs cross nodes)")
    return ("8-GPU H100 SXM nodes on NVLink 4; the README gives no fabric for its H100 tables: llmplan's default, "
            "InfiniBand NDR 400 Gb/s per GPU, assumed (only rows with more than 8 GPUs cross nodes)")


def mpt_mixed_precision(part: str, size: str) -> str:
    """FSDP ``mixed_precision`` of an llm-foundry table row: ``PURE`` for the A100 40GB table
    and the A100 80GB table's two 70B rows (Composer precision 'bf16'), ``DEFAULT`` for the
    rest (``amp_bf16`` / ``amp_fp8``); tests/test_validation.py checks it against each row's
    ``mp_mode`` in benchmarks/published_extra.toml."""
    return "PURE" if part == "a100-40gb" or (part == "a100-80gb" and size == "70b") else "DEFAULT"


def _shape_refs(model, m: str) -> tuple[Ref, ...]:
    """Refs of a model shape kept under ``m`` with the MPT / OLMo-core key names
    (``n_layers``, ``d_model``, ``n_heads``, ``vocab_size``)."""
    return (
        Ref("layers", model.layers, f"{m}.n_layers"),
        Ref("hidden", model.hidden, f"{m}.d_model"),
        Ref("heads", model.heads, f"{m}.n_heads"),
        Ref("vocab", model.vocab, f"{m}.vocab_size"),
    )


def _llm_foundry() -> list[Run]:
    """MPT training throughput measured by MosaicML (llm-foundry's benchmarking README), every row."""
    out = []
    for part, group, title, short, gpu, preset, inter_node, rows in MPT_TABLES:
        seen = [(r[0], r[1], r[2]) for r in rows]
        for size, seq, gpus, mb, accum, batch, zero, ckpt, n_params, tps in rows:
            suffix = f"-b{batch}" if seen.count((size, seq, gpus)) > 1 else ""
            rid = f"mpt-{part}-{size}-{seq}-{gpus}{suffix}"
            t = "extra:runs." + rid.replace("-", "_")
            m = f"extra:mpt_models.mpt_{size}"
            model = mpt_model(size, seq)
            # FSDP mixed_precision DEFAULT reduces gradients in fp32 (PURE: in bf16)
            grads = "fp32" if mpt_mixed_precision(part, size) == "DEFAULT" else None
            plan = Plan(
                name=f"llm-foundry {title}: {model.name}, {seq} tokens, {gpus} GPUs",
                model=model,
                method=Method(kind="pretrain", tokens=THROUGHPUT_TOKENS, seq_len=seq, global_batch=batch),
                precision=Precision(preset=preset, grads=grads),
                cluster=Cluster(gpu=catalog.gpu(gpu), gpus=gpus, inter_node=inter_node),
                parallelism=Parallelism(zero=zero, sharding="fsdp", micro_batch=mb, recompute="full" if ckpt else "none",
                                        attention_kernel="flash1"),
            )
            out.append(
                Run(
                    id=rid,
                    label=f"MPT-{size.upper()} {seq} tok, mb {mb}{', ckpt' if ckpt else ''} ({short})",
                    group=group,
                    plan=plan,
                    refs=(
                        Ref("gpus", gpus, f"{t}.gpus"),
                        Ref("seq_len", seq, f"{t}.seq_len"),
                        Ref("micro_batch", mb, f"{t}.micro_batch"),
                        Ref("grad_accum", accum, f"{t}.grad_accum"),
                        Ref("global_batch", batch, f"{t}.global_batch"),
                        Ref("params", n_params, f"{t}.num_params"),
                        *_shape_refs(model, m),
                        Ref("tokens_per_sec_per_gpu", tps, f"{t}.tokens_per_sec_per_gpu"),
                    ),
                    layout="published",
                    assumptions=(
                        ("published (the README row): GPUs, sequence length, micro-batch, gradient accumulation, global "
                         "batch, precision, FSDP sharding over every GPU (FULL_SHARD = ZeRO-3, SHARD_GRAD_OP = ZeRO-2; no "
                         "tensor or pipeline parallelism), activation checkpointing (True = full recomputation of every "
                         "block), NumParams (= llmplan's exact count of the shape)"),
                        ("MPT shape from llm-foundry's mpt-<size>.yaml with MPTConfig's defaults: biases on every Linear and "
                         "LayerNorm, learned position table of max_seq_len = the run's sequence length, GELU MLP 4·d, tied "
                         "LM head, no dropout; flash-attn's Triton port (the benchmarks' attn_impl 'triton', "
                         "flash_attn_triton.py), described as FlashAttention-1 (attention_kernel = \"flash1\"): "
                         "no benchmark of the port exists, and its docstring says its forward + backward is "
                         "slightly slower than the CUDA version's"),
                        _MPT_PRECISION[part],
                        _mpt_fabric(gpu, inter_node),
                        ("the README's MFU and HFU restate its tokens/s with 6 × NumParams (embeddings and the position "
                         "table included) + 12·L·d·s FLOPs per token — not llmplan's count (time.mfu: matmul weights and "
                         "the LM head), so they are not compared; tokens (300B) only set the run length"),
                    ),
                    source=f"{LLM_FOUNDRY}, table '{title}' (benchmarks/published_extra.toml)",
                )
            )
    return out


OLMO_CORE = "allenai/OLMo-core, README.md throughput table and src/scripts/train/ (commit 7e58d1289bc2, 2025-03-12)"

#: OLMo-core's model configs at that commit (``TransformerConfig``): name, d_model, layers, heads,
#: KV heads, FFN hidden size, QK-norm and the reordered-norm block (OLMo 2) or not (Llama).
OLMO_CORE_MODELS: dict[str, tuple[str, int, int, int, int, int, bool]] = {
    "olmo2_1b": ("OLMo2-1B", 2048, 18, 16, 16, 5632, True),
    "olmo2_7b": ("OLMo2-7B", 4096, 32, 32, 32, 11008, True),
    "llama3_8b": ("Llama3-8B (OLMo-core)", 4096, 32, 32, 8, 14336, False),
    "olmo2_13b": ("OLMo2-13B", 5120, 40, 40, 40, 13824, True),
}
OLMO_CORE_VOCAB = 100352

#: (toml key, model key, micro-batch, global batch (sequences), FP8, tokens/s per GPU).
OLMO_CORE_ROWS: tuple[tuple[str, str, int, int, bool, int], ...] = (
    ("olmo_core_olmo2_1b_bf16", "olmo2_1b", 8, 1024, False, 55000),
    ("olmo_core_olmo2_1b_fp8", "olmo2_1b", 8, 1024, True, 65000),
    ("olmo_core_olmo2_7b_bf16", "olmo2_7b", 2, 1024, False, 10000),
    ("olmo_core_olmo2_7b_fp8", "olmo2_7b", 2, 1024, True, 13000),
    ("olmo_core_llama3_8b_bf16", "llama3_8b", 2, 1024, False, 9500),
    ("olmo_core_llama3_8b_fp8", "llama3_8b", 2, 1024, True, 12500),
    ("olmo_core_olmo2_13b_bf16", "olmo2_13b", 1, 2048, False, 4600),
    ("olmo_core_olmo2_13b_fp8", "olmo2_13b", 1, 2048, True, 5500),
)
#: GPUs assumed for the OLMo-core rows (not published): 8 nodes; the spread adds 16 and 128.
OLMO_CORE_GPUS = 64


def olmo_core_model(key: str):
    """An OLMo-core model as its ``TransformerConfig`` builds it, through llmplan's reader of
    the equivalent Hugging Face config (``olmo2``: QK-norm over the whole query and key
    projections, norms after each sub-block; ``llama`` otherwise); untied LM head, vocabulary
    :data:`OLMO_CORE_VOCAB`."""
    from .hf import from_hf_config

    name, d, layers, heads, kv, ffn, olmo2 = OLMO_CORE_MODELS[key]
    config = {"model_type": "olmo2" if olmo2 else "llama", "hidden_size": d, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv, "intermediate_size": ffn,
              "vocab_size": OLMO_CORE_VOCAB, "tie_word_embeddings": False, "max_position_embeddings": 4096}
    model, _ = from_hf_config(config, name=name)
    return model


def _olmo_core() -> list[Run]:
    """OLMo-core's throughput table on H100 (2025): OLMo 2 1B/7B/13B and a Llama-3-8B shape,
    BF16 and torchao float8, HSDP, torch.compile."""
    out = []
    for key, mkey, mb, batch, fp8, tps in OLMO_CORE_ROWS:
        model = olmo_core_model(mkey)
        t, m = f"extra:runs.{key}", f"extra:olmo_core_models.{mkey}"

        def layout(gpus: int) -> tuple[Parallelism, int]:  # HSDP: FULL_SHARD inside each 8-GPU node
            return Parallelism(zero=3, sharding="fsdp", dp_shard=8, micro_batch=mb, recompute="none"), gpus

        plan = Plan(
            name=f"OLMo-core {model.name} {'BF16/FP8' if fp8 else 'BF16'}",
            model=model,
            method=Method(kind="pretrain", tokens=THROUGHPUT_TOKENS, seq_len=4096, global_batch=batch),
            precision=Precision(preset="fp8-mixed" if fp8 else "bf16-mixed", grads="fp32"),
            cluster=Cluster(gpu=catalog.gpu(H100), gpus=OLMO_CORE_GPUS),
            parallelism=layout(OLMO_CORE_GPUS)[0],
        )
        refs = [
            Ref("seq_len", 4096, f"{t}.seq_len"),
            Ref("micro_batch", mb, f"{t}.micro_batch"),
            Ref("global_batch", batch, f"{t}.global_batch"),
            *_shape_refs(model, m),
            Ref("kv_heads", model.n_kv_heads, f"{m}.n_kv_heads"),
            Ref("ffn", model.ffn, f"{m}.ffn_hidden_size"),
            Ref("tokens_per_sec_per_gpu", tps, f"{t}.tokens_per_sec_per_gpu"),
        ]
        out.append(
            Run(
                id=key.replace("_", "-"),
                label=f"{model.name} 4096 tok, mb {mb} ({'H100 BF16/FP8' if fp8 else 'H100 BF16'}, OLMo-core)",
                group="olmo-core-h100-fp8" if fp8 else "olmo-core-h100-bf16",
                plan=plan,
                refs=tuple(refs),
                layout="partly assumed",
                assumptions=(
                    ("published (README and the training script at the same commit): model config, sequence length "
                     "4096, micro-batch (rank_microbatch_size ÷ 4096), global batch, HSDP over 8-GPU nodes with bf16 parameters and fp32 "
                     "gradient reduction, no activation checkpointing, torch.compile, torch SDPA attention (FlashAttention "
                     "kernels on H100), fused AdamW" + ("; torchao float8 for most matrix multiplications" if fp8 else "")),
                    (f"not published: the GPU count — {OLMO_CORE_GPUS} H100 (8 nodes) assumed, the spread adds 16 and 128; "
                     "the fabric — llmplan's default InfiniBand NDR 400 Gb/s per GPU"),
                    ("HSDP as published: FULL_SHARD inside each 8-GPU node (OLMo-core's num_replicas = the node count), "
                     "the gradient shards all-reduced across the nodes every micro-batch (zero = 3, sharding = \"fsdp\", "
                     "dp_shard = 8)"),
                    ("framework = \"megatron\" activation and elementwise accounting: torch.compile fuses the elementwise "
                     "work much as Megatron-LM's kernels do (no compile speed-up is modelled otherwise)"),
                    "the README's numbers are rounded (to about 2 %); tokens (300B) only set the run length",
                ),
                source=f"{OLMO_CORE} (benchmarks/published_extra.toml)",
                spread_grid=tuple(layout(g) for g in (16, 128)),
            )
        )
    return out


FLASH_ATTN_GPT3 = (
    "Dao-AILab/flash-attention, training/README.md 'Training speed' and training/configs/experiment/pile/ "
    "(commit 4a6eaa9f, 2022-11-29)"
)

#: flash-attention's GPT-3 training benchmark on one 8 × A100 80GB SXM4 node (training/README.md):
#: (size, config, d_model, layers, heads, micro-batch, global batch (sequences), ZeRO stage,
#: tokens/s per GPU = the node's / 8). Added after the fitted constant was fixed: held out.
FLASH_ATTN_GPT3_ROWS: tuple[tuple[str, str, int, int, int, int, int, int, float], ...] = (
    ("125m", "gpt3s-flash", 768, 12, 12, 32, 256, 0, 1_310_000 / 8),
    ("355m", "gpt3m-flash", 1024, 24, 16, 32, 256, 0, 503_000 / 8),
    ("760m", "gpt3l-flash", 1536, 24, 16, 16, 256, 1, 245_000 / 8),
    ("1.3b", "gpt3xl-flash", 2048, 24, 16, 8, 512, 1, 169_000 / 8),
    ("2.7b", "gpt3-2.7B-flash-hdim128", 2560, 32, 20, 4, 512, 1, 85_000 / 8),
)
#: GPT-2's 50257 tokens padded to a multiple of 8 (the configs' pad_vocab_size_multiple)
FLASH_ATTN_GPT3_VOCAB = 50264


def flash_attn_gpt3_model(size: str) -> Dense:
    """``flash_attn.models.gpt.GPTLMHeadModel`` as the benchmark configs build it: GPT-2 blocks
    (biases on every Linear and LayerNorm, GELU MLP of 4·d_model), learned positions for 2,048
    tokens, the LM head tied to the token embedding, GPT2Config's dropout 0.1."""
    _, cfg, d, layers, heads, *_ = next(r for r in FLASH_ATTN_GPT3_ROWS if r[0] == size)
    return gpt2_style(
        f"GPT3-{size.upper()} (flash-attn)",
        d,
        heads,
        layers,
        FLASH_ATTN_GPT3_VOCAB,
        2048,
        dropout=True,
        source=f"Dao-AILab/flash-attention training/configs/experiment/pile/{cfg}.yaml @ 4a6eaa9f (n_embd {d}, "
        f"n_layer {layers}, n_head {heads}; vocab 50257 padded to 50264) with flash_attn.models.gpt's GPT-2 blocks",
    )


def _flash_attn_gpt3() -> list[Run]:
    """flash-attention's own GPT-3 training speed on 8 × A100 80GB (2022), every row."""
    out = []
    for size, cfg, _d, _l, _h, mb, batch, zero, tps in FLASH_ATTN_GPT3_ROWS:
        key = size.replace(".", "p")
        t, m = f"extra:runs.flash_attn_gpt3_{key}", f"extra:flash_attn_models.gpt3_{key}"
        model = flash_attn_gpt3_model(size)
        plan = Plan(
            name=f"flash-attention GPT3-{size.upper()} on 8 A100 80GB",
            model=model,
            method=Method(kind="pretrain", tokens=THROUGHPUT_TOKENS, seq_len=2048, global_batch=batch),
            precision=Precision(preset="bf16-mixed", grads="fp32"),
            cluster=Cluster(gpu=catalog.gpu("a100-80gb-sxm"), gpus=8),
            parallelism=Parallelism(zero=zero, micro_batch=mb, recompute="none", attention_kernel="flash1"),
        )
        out.append(
            Run(
                id=f"flash-attn-gpt3-{size}",
                label=f"GPT3-{size.upper()} 2048 tok, mb {mb} (A100 80GB, flash-attention 2022)",
                group="flash-attn-a100",
                plan=plan,
                refs=(
                    Ref("gpus", 8, f"{t}.gpus"),
                    Ref("seq_len", 2048, f"{t}.seq_len"),
                    Ref("micro_batch", mb, f"{t}.micro_batch"),
                    Ref("global_batch", batch, f"{t}.global_batch"),
                    *_shape_refs(model, m),
                    Ref("tokens_per_sec_per_gpu", tps, f"{t}.tokens_per_sec_per_gpu"),
                ),
                layout="published",
                assumptions=(
                    (f"published (the README and {cfg}.yaml at the same commit): one node of 8 A100 80GB SXM4 on "
                     f"NVLink, sequence length 2048, per-GPU batch {mb} (the config's choice for an 80 GB GPU), global "
                     f"batch {batch} sequences, bf16 autocast, "
                     + ("plain DDP" if zero == 0 else "DDP with a ZeRO-1 sharded AdamW (DDPStrategyZero1)")
                     + ", no activation checkpointing"),
                    ("the model: flash_attn.models.gpt's GPT-2 blocks (biases, LayerNorm, GELU MLP 4·d), learned "
                     "positions, tied head, dropout 0.1 (GPT2Config's default) with fused dropout + add + LayerNorm, "
                     "fused dense + GELU and a fused cross-entropy: llmplan's Megatron activation and elementwise "
                     "accounting (framework \"megatron\", fused kernels)"),
                    ("the CUDA FlashAttention of November 2022 (version 1): attention_kernel = \"flash1\", the "
                     "FlashAttention-2 paper's A100 benchmark of it (measured without dropout; this model's "
                     "attention dropout runs inside the kernel)"),
                    ("parameters and gradients in fp32 (Lightning's bf16 autocast keeps fp32 weights): "
                     "bf16-mixed with fp32 gradients; tokens (300B) only set the run length"),
                    "added after the fitted GEMM constant (0.74) was fixed: held-out evidence",
                ),
                source=f"{FLASH_ATTN_GPT3} (benchmarks/published_extra.toml)",
            )
        )
    return out


MEGATRON_BRIDGE = (
    "NVIDIA-NeMo/Megatron-Bridge, docs/performance-summary.md (DGX-H100 rows) and the performance recipes of "
    "scripts/performance/ and src/megatron/bridge/recipes/ at the same commit"
)

#: Megatron-Bridge's published DGX-H100 throughput of dense Llama models (FP8 current scaling,
#: micro-batch 1, sequence parallelism with TE userbuffers TP overlap, interleaved pipelines):
#: (toml key, NeMo container, commit, task, catalog model, GPUs, global batch, sequence length,
#: tp, pp, cp, virtual stages, tokens/s per GPU). Task ``pretrain`` (the distributed optimizer
#: with overlapped gradient reduce-scatter and parameter gather), ``sft`` (full fine-tuning:
#: the distributed optimizer without those overlaps) or ``lora`` (LoRA rank 16, alpha 32, on
#: the fused QKV projection only). Added after the fitted GEMM constant (0.74) was fixed: held out.
MEGATRON_BRIDGE_ROWS: tuple[tuple[str, str, str, str, str, int, int, int, int, int, int, int, int], ...] = (
    ("mbridge_2511_llama3_8b", "25.11", "5776a6d90", "pretrain", "llama-3.1-8b", 8, 128, 8192, 1, 1, 1, 0, 14451),
    ("mbridge_2511_llama3_70b", "25.11", "5776a6d90", "pretrain", "llama-3.1-70b", 64, 128, 8192, 4, 8, 1, 5, 1602),
    ("mbridge_2511_llama31_405b", "25.11", "5776a6d90", "pretrain", "llama-3.1-405b", 1024, 512, 8192, 8, 8, 2, 8, 292),
    ("mbridge_2604_llama3_70b", "26.04.01", "21d102f5e", "pretrain", "llama-3.1-70b", 64, 256, 8192, 4, 8, 1, 5, 1664),
    ("mbridge_2604_llama31_405b", "26.04.01", "21d102f5e", "pretrain", "llama-3.1-405b", 1024, 1536, 8192, 8, 8, 2, 8, 328),
    ("mbridge_2606_llama3_70b_sft", "26.06", "8f341b04f", "sft", "llama-3.1-70b", 32, 32, 4096, 4, 4, 1, 5, 1638),
    ("mbridge_2606_llama3_70b_lora", "26.06", "8f341b04f", "lora", "llama-3.1-70b", 8, 32, 4096, 2, 4, 1, 20, 2643),
)
#: Megatron-Core pads the vocabulary to a multiple of make_vocab_size_divisible_by (128) × tp
MEGATRON_VOCAB_MULTIPLE = 128
#: Megatron-Bridge's LoRA for Llama 3 70B: dim 16, alpha 32 (llama3_70b_peft_config); the H100
#: performance recipe targets linear_qkv only, one adapter on the fused projection. llmplan's Llama
#: modules are q, k and v apart, so the plan has three adapters: two more h × 16 A matrices per
#: layer, 0.03 % of the layer's FLOPs
MBRIDGE_LORA = LoRA(rank=16, alpha=32, targets=("q_proj", "k_proj", "v_proj"))
#: Rows whose layout differs from the 70B / 405B recipes'. Llama 3 8B on 8 H100 (25.11): the
#: summary's table gives FSDP = 1 (Megatron-FSDP: ZeRO-3 sharding of parameters, gradients and
#: optimizer states) and no pipeline; the H100 FP8 preset at that commit
#: (LLAMA3_8B_PRETRAIN_CONFIG_H100_FP8_CS_BASE_CONFIG) sets recompute_num_layers = 5, which the
#: scripts apply as recompute_granularity = "full", recompute_method = "block"
#: (utils/overrides.py): the first 5 of the 32 layers recomputed
MBRIDGE_LAYOUTS: dict[str, tuple[dict, str]] = {
    "mbridge_2511_llama3_8b": (
        dict(zero=3, sharding="fsdp", recompute="full", recompute_layers=5, pp_schedule="1f1b"),
        "Megatron-FSDP (the table's FSDP = 1: parameters, gradients and optimizer states sharded over the 8 GPUs, "
        "zero = 3 with sharding = \"fsdp\") with overlapped gathers and reduce-scatters, full recomputation of the "
        "first 5 of the 32 layers (the preset's recompute_num_layers = 5, which the scripts run as Megatron's block "
        "method: recompute_layers = 5), bf16 gradient reduction, no CUDA graphs; the preset itself sets no FSDP "
        "(docs/validation.md item 23 gives that reading, the distributed optimizer, too)",
    ),
}
MBRIDGE_NAMES = {"llama-3.1-8b": "Llama 3 8B", "llama-3.1-70b": "Llama 3 70B", "llama-3.1-405b": "Llama 3.1 405B"}


def _megatron_bridge() -> list[Run]:
    """Megatron-Bridge's DGX-H100 Llama 3 8B / 70B / 3.1 405B FP8 throughput: pre-training (NeMo
    25.11, 26.04.01), full fine-tuning and LoRA (26.06)."""
    out = []
    for key, container, commit, task, mid, gpus, batch, seq, tp, pp, cp, vp, tps in MEGATRON_BRIDGE_ROWS:
        t = f"extra:runs.{key}"
        base = catalog.model(mid)
        multiple = MEGATRON_VOCAB_MULTIPLE * tp
        vocab = -(-base.vocab // multiple) * multiple
        big = base.layers > 100  # 405B: the embedding and the loss count as layers of the pipeline split
        name = MBRIDGE_NAMES[mid]
        layout, own_recipe = MBRIDGE_LAYOUTS.get(key, (dict(zero=1, recompute="none", pp_schedule="interleaved",
                                                            virtual_stages=vp), None))
        model = attrs.evolve(base, name=name, vocab=vocab)
        kind = {"pretrain": "pretrain", "sft": "full-finetune", "lora": "lora"}[task]
        what = {"pretrain": "", "sft": " SFT", "lora": " LoRA"}[task]
        plan = Plan(
            name=f"{name}{what} FP8 on {gpus} H100 (Megatron-Bridge {container})",
            model=model,
            method=Method(kind=kind, tokens=THROUGHPUT_TOKENS, seq_len=seq, global_batch=batch,
                          lora=MBRIDGE_LORA if task == "lora" else None),
            precision=Precision(preset="fp8-mixed"),
            cluster=Cluster(gpu=catalog.gpu(H100), gpus=gpus),
            parallelism=Parallelism(
                tp=tp, pp=pp, cp=cp, micro_batch=1, **layout, tp_comm_overlap=True, dp_overlap=task == "pretrain",
                account_for_embedding_in_pipeline_split=big, account_for_loss_in_pipeline_split=big,
            ),
        )
        recipe = own_recipe or {
            "pretrain": ("the distributed optimizer (zero = 1) with overlapped gradient reduce-scatter and parameter "
                         "all-gather, bf16 gradient reduction, no activation recomputation, no CUDA graphs"),
            "sft": ("full fine-tuning with the distributed optimizer (zero = 1) whose gradient reduction and parameter "
                    "gather are not overlapped (overlap_grad_reduce = overlap_param_gather = false: dp_overlap = false), "
                    "bf16 gradient reduction, no activation recomputation, Transformer Engine CUDA graphs of the MLP "
                    "(CPU launch time, not modelled)"),
            "lora": ("LoRA rank 16, alpha 32 on the fused QKV projection (as q, k and v adapters here), the frozen base "
                     "in FP8 GEMMs, one data-parallel rank, no activation recomputation"),
        }[task]
        out.append(
            Run(
                id=key.replace("_", "-"),
                label=f"{name}{what} FP8, {gpus} H100, GBS {batch} (Megatron-Bridge {container})",
                group="megatron-bridge-h100-fp8",
                plan=plan,
                refs=(
                    Ref("gpus", gpus, f"{t}.gpus"),
                    Ref("tp", tp, f"{t}.tp"),
                    Ref("pp", pp, f"{t}.pp"),
                    Ref("cp", cp, f"{t}.cp"),
                    Ref("global_batch", batch, f"{t}.global_batch"),
                    Ref("micro_batch", 1, f"{t}.micro_batch"),
                    Ref("seq_len", seq, f"{t}.seq_len"),
                    Ref("tokens_per_sec_per_gpu", tps, f"{t}.tokens_per_sec_per_gpu"),
                ),
                layout="published",
                assumptions=(
                    (f"published (the performance summary's {container} DGX-H100 row and the recipes at commit "
                     f"{commit}): GPUs, global batch, micro-batch 1, sequence length {seq}, tp {tp}, pp {pp}, cp {cp}, "
                     + ("FP8 with current (tensorwise) scaling, data parallelism only, " if tp == pp == 1 else
                        f"{vp} virtual stages, FP8 with current (tensorwise) scaling, sequence parallelism, Transformer "
                        "Engine's userbuffers TP overlap (tp_comm_overlap), ")
                     + recipe
                     + ("; the embedding and the loss each count as a layer of the pipeline split (126 + 2 = 128 "
                        "layers on 64 virtual stages)" if big else "")),
                    (f"the vocabulary padded to a multiple of 128 × tp = {multiple} ({base.vocab} → {vocab}), "
                     "Megatron-Core's rule with should_pad_vocab; the performance scripts' default --data mock: "
                     f"full {seq}-token sequences"
                     + (" (the fine-tuning recipes' packed SQuAD is replaced by it)" if task != "pretrain" else "")
                     + ", no data-loading cost"),
                    ("DGX-H100: 8 H100 SXM on NVLink 4 per node, eight 400 Gb/s InfiniBand NDR NICs (llmplan's "
                     "default network); the Model TFLOP/s column is not compared (its FLOP convention is the "
                     "recipe's own); tokens (300B) only set the run length"),
                    "added after the fitted GEMM constant (0.74) was fixed: held-out evidence",
                ),
                source=f"{MEGATRON_BRIDGE}, {container} container (commit {commit}) (benchmarks/published_extra.toml)",
            )
        )
    return out


#: The runs of ``published.toml`` that are not in the table, each with why: what a time
#: prediction needs (the hardware, and a time, GPU-hours or throughput to compare with) is
#: not published there, or the hardware is one llmplan does not model. Every ``runs.*``
#: entry is either referenced by a :class:`Run` or listed here (``tests/test_validation.py``).
NOT_VALIDATED: dict[str, str] = {
    "gpt3_175b": "V100s of unpublished number and layout; no time or GPU-hours, only the total compute "
    "(3.14e23 FLOPs = 6·N·D, Brown et al. 2020 Table D.1)",
    "falcon_40b": "384 A100 and 2,800 PF-days of compute, but no wall-clock time, GPU-hours or throughput to compare with",
    "chinchilla_70b": "TPU training (llmplan models GPUs: no TPU in the catalog, no ICI torus); only the compute budget is given",
    "gopher_280b": "4,096 TPU v3: llmplan models GPUs (no TPU in the catalog, no ICI torus); no time is given",
    "palm_540b": "6,144 TPU v4 chips in two Pathways pods: llmplan models GPUs (no TPU in the catalog, no ICI torus)",
    "lamda_137b": "1,024 TPU v3: llmplan models GPUs (no TPU in the catalog, no ICI torus)",
    "mixtral_8x7b": "architecture only: training hardware, tokens and time are not published",
    "dbrx": "3,072 H100 and 12T tokens, but no time, GPU-hours or throughput to compare with",
    "qwen3_235b_a22b": "architecture only: training hardware and time are not published",
    "mpt_30b": "three stages on three clusters (440 and 216 A100-40GB, then 256 H100 at 8k) with no time per stage "
    "in published.toml (the blog's time table is marked unverified)",
    "olmo_7b": "architecture and tokens only: the paper's GPU-hours are marked unverified in published.toml "
    "(OLMo-core's measured throughput is in the table instead, from benchmarks/published_extra.toml)",
    "olmo_1b": "architecture and tokens only: no hardware or time in published.toml",
    "olmo2_7b": "architecture and tokens only: the paper's GPU-hours are marked unverified in published.toml "
    "(OLMo-core's measured throughput is in the table instead)",
    "olmo2_13b": "architecture and tokens only: no hardware or time in published.toml "
    "(OLMo-core's measured throughput is in the table instead)",
}


@lru_cache(maxsize=1)
def _runs() -> tuple[Run, ...]:
    return tuple(_megatron_table1() + _megatron_table2() + _korthikanti() + _korthikanti_table5() + _production()
                 + _llama3_405b() + _llm_foundry() + _olmo_core() + _flash_attn_gpt3() + _megatron_bridge())


def runs(ids: Iterable[str] | None = None) -> list[Run]:
    """The run definitions (all, or those with the given ids, in table order)."""
    all_runs = _runs()
    if ids is None:
        return list(all_runs)
    wanted = list(ids)
    known = {r.id for r in all_runs}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise KeyError(f"unknown run id(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [r for r in all_runs if r.id in wanted]


# ---------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One predicted number next to its published value.

    ``error`` = (predicted − published) ÷ published. ``implied_gemm`` is the η_gemm
    that would have reproduced the published number with the rest of llmplan's step
    model held fixed (a diagnostic, never fed back into a plan).
    """

    run: str
    label: str
    group: str
    metric: str
    predicted: float
    published: float
    error: float
    primary: bool
    ref: str
    note: str
    implied_gemm: float | None

    @property
    def abs_error(self) -> float:
        return abs(self.error)


@dataclass
class RunResult:
    """A run's evaluated plan: comparisons, where the step time goes, warnings."""

    run: Run
    fits: bool
    memory_gib: float
    mfu: float
    hfu: float
    tflops_per_gpu: float
    step_seconds: float
    breakdown: dict[str, float]
    warnings: list[str]
    comparisons: list[Comparison]
    spread: dict[str, Any] | None = None
    eta_gemm: float = 0.0  # the plan's large-GEMM efficiency (η_gemm), as bound


@dataclass(frozen=True)
class Stats:
    """Summary of a set of comparisons."""

    n: int
    median_abs: float
    mean_signed: float
    worst_abs: float
    worst_run: str
    within_25: int

    @property
    def meets_targets(self) -> bool:
        return self.median_abs <= TARGET_MEDIAN and self.worst_abs <= TARGET_WORST


@dataclass
class Report:
    """Everything :func:`validate` found."""

    results: list[RunResult]
    by_metric: dict[str, Stats]
    overall: Stats
    overall_all: Stats
    by_group: dict[str, Stats]
    #: primary comparisons by where the published number is kept: the project's
    #: ``shared/reference/published.toml`` (the runs the accuracy issue lists) or
    #: ``benchmarks/published_extra.toml`` (Llama 3 Table 4, llm-foundry's MPT tables, ...)
    by_source: dict[str, Stats] = field(default_factory=dict)
    version: str = __version__
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def comparisons(self) -> list[Comparison]:
        return [c for r in self.results for c in r.comparisons]

    @property
    def held_out(self) -> Stats:
        """Primary comparisons of the runs not in :data:`CALIBRATION_GROUPS`: the targets' set."""
        return _stats([c for c in self.comparisons if c.primary and c.group not in CALIBRATION_GROUPS])


def _stats(comps: Sequence[Comparison]) -> Stats:
    if not comps:
        return Stats(0, math.nan, math.nan, math.nan, "", 0)
    worst = max(comps, key=lambda c: c.abs_error)
    return Stats(
        n=len(comps),
        median_abs=statistics.median(c.abs_error for c in comps),
        mean_signed=statistics.fmean(c.error for c in comps),
        worst_abs=worst.abs_error,
        worst_run=f"{worst.run} ({worst.metric})",
        within_25=sum(c.abs_error <= TARGET_WORST for c in comps),
    )


BREAKDOWN_KEYS = {
    "compute": "time.compute_seconds",
    "bubble": "time.bubble_seconds",
    "tp": "communication.tp_exposed_seconds",
    "pp": "communication.pp_seconds",
    "ep": "communication.ep_seconds",
    "dp": "communication.dp_seconds",
    "cp": "communication.cp_seconds",
    "exposed": "communication.exposed_seconds_per_step",
    "optimizer": "time.optimizer_seconds",
    "step": "time.step_seconds",
}


def _breakdown(est: Estimate) -> dict[str, float]:
    out = {}
    for name, key in BREAKDOWN_KEYS.items():
        try:
            out[name] = float(est.value(key))
        except (LlmplanError, KeyError):  # a quantity a future model drops: report what exists
            out[name] = math.nan
    # only the exposed part of EP and PP traffic (DualPipe hides some), split in their proportion
    ovl = out["ep"] + out["pp"]
    if ovl > 0 and "communication.ep_pp_exposed_seconds" in est.definitions.items:
        shown = float(est.value("communication.ep_pp_exposed_seconds"))
        out["ep"], out["pp"] = out["ep"] * shown / ovl, out["pp"] * shown / ovl
    # what of the DP and CP traffic is not hidden: the rest of the exposed time
    out["dp_cp_exposed"] = max(0.0, out["exposed"] - out["tp"] - out["pp"] - out["ep"])
    return out


def _implied_gemm(metric: Metric, predicted: float, published: float, b: dict[str, float], eta_gemm: float) -> float | None:
    """η_gemm that would reproduce ``published`` with bubble/communication/optimizer held fixed.

    ``eta_gemm`` is the plan's own. The compute time and the bubble scale with 1/η_gemm
    (the memory-bound elementwise part is scaled too: a small error); exposed communication and the
    optimizer step are held at their predicted values (DP overlap, which depends on the
    compute time, is not re-solved).
    """
    ratio = published / predicted if not metric.throughput else predicted / published  # T_pub / T_pred
    t_pub = b["step"] * ratio
    rest = t_pub - b["exposed"] - b["optimizer"]
    scaled = b["compute"] + b["bubble"]
    if not (rest > 0 and scaled > 0):
        return None
    return eta_gemm * scaled / rest


def evaluate_run(run: Run, *, spread: bool = True) -> RunResult:
    """Evaluate one run's plan and compare it with every published result.

    ``spread=False`` skips the alternative-layout grid of runs with assumed layouts.
    """
    est = estimate(run.plan)
    b = _breakdown(est)
    from .symbols import eta_gemm

    eta = float(est.values[eta_gemm])
    comps = []
    for ref in run.results:
        metric = METRICS[ref.key]
        pred = float(metric.predict(est, run.plan))
        comps.append(
            Comparison(
                run=run.id,
                label=run.label,
                group=run.group,
                metric=ref.key,
                predicted=pred,
                published=float(ref.value),
                error=(pred - ref.value) / ref.value,
                primary=ref.primary,
                ref=ref.ref,
                note=ref.note,
                implied_gemm=_implied_gemm(metric, pred, ref.value, b, eta),
            )
        )
    return RunResult(
        run=run,
        fits=est.fits,
        memory_gib=float(est.value("memory.per_gpu.total")) / 2**30,
        mfu=float(est.value("time.mfu")),
        hfu=float(est.value("time.hfu")),
        tflops_per_gpu=float(est.value("time.tflops_per_gpu")),
        step_seconds=b["step"],
        breakdown=b,
        warnings=list(est.warnings),
        comparisons=comps,
        spread=_spread(run, est) if spread and run.spread_grid else None,
        eta_gemm=eta,
    )


#: Alternative layouts whose pipeline bubble exceeds this fraction of the compute
#: time are left out of the spread (Megatron-LM's rule of thumb: m ≥ 4·(p − 1)).
MAX_BUBBLE = 0.25


def _spread(run: Run, base=None) -> dict[str, Any] | None:
    """Range of the run's primary prediction over alternative layouts that fit (the fit and bubble filters apply only where the run's own layout passes them)."""
    primary = next((r for r in run.results if r.primary), None)
    if primary is None:
        return None
    metric = METRICS[primary.key]
    # the filters below drop layouts nobody would run; a published layout that llmplan
    # itself says does not fit (or has a large bubble) really ran, so for such a run the
    # filter is not applied
    base = estimate(run.plan) if base is None else base
    check_fit = base.fits
    check_bubble = float(base.value("time.bubble_seconds")) <= MAX_BUBBLE * float(base.value("time.compute_seconds"))
    points = []
    for par, gpus in run.spread_grid:
        try:
            plan = attrs.evolve(
                run.plan,
                parallelism=attrs.evolve(
                    run.plan.parallelism,
                    tp=par.tp,
                    pp=par.pp,
                    zero=par.zero,
                    micro_batch=par.micro_batch,
                    recompute=par.recompute,
                    **(
                        dict(pp_schedule=par.pp_schedule, virtual_stages=par.virtual_stages)
                        if par.pp_schedule == "interleaved"
                        else {}
                    ),
                ),
                cluster=attrs.evolve(run.plan.cluster, gpus=gpus),
            )
            est = estimate(plan)
        except PlanError:  # a layout the plan rules reject (e.g. batch not a multiple of dp)
            continue
        if check_fit and not est.fits:
            continue
        if check_bubble and float(est.value("time.bubble_seconds")) > MAX_BUBBLE * float(est.value("time.compute_seconds")):
            continue  # a pipeline nobody would run: fewer than 4 micro-batches per stage
        value = float(metric.predict(est, plan))
        v = f" v{par.virtual_stages}" if par.pp_schedule == "interleaved" else ""
        mb = f" mb{par.micro_batch}" if par.micro_batch != run.plan.parallelism.micro_batch else ""
        rc = f" {par.recompute}" if par.recompute != run.plan.parallelism.recompute else ""
        points.append((value, f"tp{par.tp} pp{par.pp}{v}{mb}{rc} × {gpus}"))
    if not points:
        return None
    lo, hi = min(points), max(points)
    return {
        "metric": primary.key,
        "layouts": len(points),
        "min": lo[0],
        "min_layout": lo[1],
        "max": hi[0],
        "max_layout": hi[1],
        "error_min": (lo[0] - primary.value) / primary.value,
        "error_max": (hi[0] - primary.value) / primary.value,
    }


SOURCE_SHARED = "published.toml"
SOURCE_EXTRA = "published_extra.toml"


def validate(ids: Iterable[str] | None = None, *, spread: bool = True) -> Report:
    """Evaluate every run (or the given ids) and summarise the errors.

    ``spread=False`` skips the layout-sensitivity grid (faster).
    """
    results = [evaluate_run(r, spread=spread) for r in runs(ids)]
    comps = [c for r in results for c in r.comparisons]
    by_metric = {m: _stats([c for c in comps if c.metric == m]) for m in METRICS if any(c.metric == m for c in comps)}
    primary = [c for c in comps if c.primary]
    groups = []
    for r in results:
        if r.run.group not in groups:
            groups.append(r.run.group)
    return Report(
        results=results,
        by_metric=by_metric,
        overall=_stats(primary),
        overall_all=_stats(comps),
        by_group={g: _stats([c for c in primary if c.group == g]) for g in groups},
        by_source={
            name: st
            for name, st in (
                (SOURCE_SHARED, _stats([c for c in primary if not c.ref.startswith("extra:")])),
                (SOURCE_EXTRA, _stats([c for c in primary if c.ref.startswith("extra:")])),
            )
            if st.n
        },
    )


# ---------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------


def _pct(x: float | None, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:+.1f} %" if signed else f"{100 * x:.1f} %"


def _layout(plan: Plan) -> str:
    par, cl = plan.parallelism, plan.cluster
    dp = cl.gpus // (par.tp * par.pp * par.cp)
    parts = [f"TP{par.tp}", f"PP{par.pp}"]
    if par.ep > 1:
        parts.append(f"EP{par.ep}")
    parts.append(f"DP{dp}")
    if par.zero:
        parts.append(f"Z{par.zero}")
    return " ".join(parts) + f" · {cl.gpus} {cl.gpu.id}"


def _stats_row(name: str, s: Stats) -> list[str]:
    verdict = "yes" if s.meets_targets else "no"
    return [
        name,
        str(s.n),
        _pct(s.median_abs, signed=False),
        _pct(s.mean_signed),
        f"{_pct(s.worst_abs, signed=False)} — {s.worst_run}",
        f"{s.within_25}/{s.n}",
        verdict,
    ]


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def comparison_rows(report: Report, groups: Iterable[str] | None = None) -> list[list[str]]:
    """The main table's rows: run, layout, metric, predicted, published, error (only the
    runs of ``groups`` when given)."""
    rows = []
    for res in _in_groups(report, groups):
        for c in res.comparisons:
            m = METRICS[c.metric]
            rows.append(
                [
                    res.run.label,
                    _layout(res.run.plan) + ("" if res.run.layout == "published" else f" ({res.run.layout})"),
                    m.label,
                    m.fmt(c.predicted),
                    m.fmt(c.published),
                    _pct(c.error) + ("" if c.primary else " †"),
                ]
            )
    return rows


def summary_rows(report: Report) -> list[list[str]]:
    rows = [_stats_row(METRICS[k].label, s) for k, s in report.by_metric.items()]
    rows += [_stats_row(f"group: {g}", s) for g, s in report.by_group.items()]
    rows += [_stats_row(f"source: {name}", s) for name, s in report.by_source.items()]
    rows.append(_stats_row("**held out (primary, not the calibration set)**", report.held_out))
    rows.append(_stats_row("overall (primary)", report.overall))
    rows.append(_stats_row("overall (every comparison)", report.overall_all))
    return rows


SUMMARY_HEADER = ("set", "n", "median abs error", "mean signed error", "worst abs error", "within 25 %", "targets met")
TABLE_HEADER = ("run", "layout", "metric", "predicted", "published", "error")


def text_table(report: Report) -> str:
    """A plain-text table for the terminal."""
    rows = [list(TABLE_HEADER)] + comparison_rows(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    right = {3, 4, 5}

    def line(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows[1:]]
    out.append("")
    out.append("(† = restates another published number of the same run; not in the overall statistics)")
    out.append("")
    srows = [list(SUMMARY_HEADER)] + [[c.replace("**", "") for c in r] for r in summary_rows(report)]
    sw = [max(len(r[i]) for r in srows) for i in range(len(SUMMARY_HEADER))]
    out.append("  ".join(c.ljust(w) for c, w in zip(srows[0], sw)))
    out.append("  ".join("-" * w for w in sw))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, sw)) for r in srows[1:]]
    out.append("")
    out.append(
        f"targets: median |error| ≤ {TARGET_MEDIAN:.0%}, every comparison within {TARGET_WORST:.0%} — "
        f"{'met' if report.held_out.meets_targets else 'NOT met'} (held-out primary comparisons)"
    )
    return "\n".join(out)


def _default_gemm_text() -> str:
    """``η_gemm``'s default on the validation's GPUs, from the catalog (e.g. "A100 0.652, …")."""
    a100, h100 = catalog.gpu("a100-80gb-sxm"), catalog.gpu("h100-sxm")
    return (
        f"A100 {default_gemm_efficiency(a100, 'bf16')[0]:.3f}, H100/H800 BF16 "
        f"{default_gemm_efficiency(h100, 'bf16')[0]:.3f}, FP8 {default_gemm_efficiency(h100, 'fp8')[0]:.3f}"
    )


def _in_groups(report: Report, groups: Iterable[str] | None) -> list[RunResult]:
    keep = None if groups is None else set(groups)
    return [r for r in report.results if keep is None or r.run.group in keep]


def breakdown_rows(report: Report, groups: Iterable[str] | None = None) -> list[list[str]]:
    rows = []
    for res in _in_groups(report, groups):
        b = res.breakdown
        step = b["step"]

        def share(x: float, step: float = step) -> str:
            return "–" if not step or math.isnan(x) or x == 0 else f"{100 * x / step:.1f}"

        implied = [c.implied_gemm for c in res.comparisons if c.primary]
        rows.append(
            [
                res.run.label,
                f"{step:.2f}",
                share(b["compute"]),
                share(b["bubble"]),
                share(b["tp"]),
                share(b["pp"]),
                share(b["ep"]),
                share(b["dp_cp_exposed"]),
                share(b["optimizer"]),
                f"{100 * res.mfu:.1f} %",
                f"{res.memory_gib:.1f}" + ("" if res.fits else " (does not fit)"),
                ", ".join(_eta(i) for i in implied) or "–",
            ]
        )
    return rows


def _eta(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value <= 1 else f"{value:.2f} (> 1: impossible)"


BREAKDOWN_HEADER = (
    "run",
    "step s",
    "compute %",
    "bubble %",
    "TP %",
    "PP %",
    "EP %",
    "DP exposed %",
    "optimizer %",
    "predicted MFU",
    "GiB / GPU",
    "implied η_gemm",
)


def markdown(report: Report) -> str:
    """The results file ``benchmarks/results/validation.md``."""
    parts = [
        "# Validation against published training runs",
        "",
        (f"Generated by `python benchmarks/validate_runs.py` (llmplan {report.version}; run definitions in "
        "`llmplan/validation.py`; published numbers from `shared/reference/published.toml`). Every plan uses "
        f"llmplan's default efficiency model (η_gemm = {GEMM_FRACTION_OF_MAMF} × the GPU's measured maximum "
        f"achievable matmul rate ÷ its peak for a large GEMM — {_default_gemm_text()} — the "
        "GEMM-shape model on top; the one fitted constant, "
        f"{GEMM_FRACTION_OF_MAMF}, is fitted to {', '.join(CALIBRATION_GROUPS)} alone); nothing is tuned per run — the only `[efficiency]` key a run sets is a goodput its own "
        "paper publishes (Llama 3: > 90 %, in the run's assumptions). Error = (predicted − published) ÷ published."),
        "",
        "## Summary",
        "",
        md_table(SUMMARY_HEADER, summary_rows(report)),
        "",
        (f"Targets: median |error| ≤ {TARGET_MEDIAN:.0%} and every comparison within {TARGET_WORST:.0%}, judged on "
        "the *held-out* primary comparisons: every run except the calibration set "
        f"({', '.join(CALIBRATION_GROUPS)}), whose published numbers set the one fitted constant. "
        "*Primary* comparisons are one per independent published number; a comparison marked † restates "
        "another number of the same run (Megatron's % of peak = TFLOP/s ÷ 312, BLOOM's days = GPU-hours ÷ 384 ÷ 24, "
        "LLaMA-1's 380 tokens/s and 21 days = its GPU-hours, DeepSeek's days per 1T tokens, the eq. (4) days of "
        "Megatron Table 2) and is counted only in its metric's row and in 'every comparison'. The *source* rows "
        "split the primary comparisons by where the published number is kept: `published.toml` holds the runs the "
        "accuracy issue lists (Megatron-LM Tables 1–2, Llama, BLOOM, OPT, DeepSeek-V3), `published_extra.toml` the "
        "evidence added since (Llama 3 405B Table 4, Korthikanti et al. 2022, llm-foundry's MPT tables, OLMo-core, "
        "flash-attention's GPT-3 benchmark, Megatron-Bridge's DGX-H100 rows)."),
        "",
        "## Predicted vs published",
        "",
        md_table(TABLE_HEADER, comparison_rows(report)),
        "",
        ("Published GPU-hours and days (Llama, BLOOM, DeepSeek-V3) are what the runs really consumed: failures, "
        "restarts, checkpointing, evaluation and any slower phase (batch ramp-up) included. llmplan predicts an "
        "uninterrupted run, so it should come out *lower* than those figures by the run's goodput loss. "
        "Throughput figures (TFLOP/s, tokens/s) are measured while training and carry no such loss."),
        "",
        "## Where llmplan's predicted step time goes",
        "",
        ("Shares of the predicted step time (TP, PP, EP: their traffic on the critical path — under DualPipe only the part not hidden behind the paired chunk). *Implied η_gemm* is the GEMM efficiency that would reproduce the "
        "published number (primary comparisons) with the bubble, exposed communication and optimizer step held "
        "at their predicted values — a diagnostic, not a setting (compare it with the run's default η_gemm: "
        f"{_default_gemm_text()}). "
        "A value above 1 means the predicted exposed communication alone is longer than the published step."),
        "",
        md_table(BREAKDOWN_HEADER, breakdown_rows(report)),
        "",
    ]
    spreads = [r for r in report.results if r.spread]
    if spreads:
        parts += [
            "## Sensitivity to the assumed layout",
            "",
            ("For runs whose layout was not published: the range of the primary prediction over alternative "
            "layouts that fit (tp ∈ {1, 2, 4, 8} × pp ∈ {1, 2, 4, 8} × the GPU counts shown, ZeRO-1, "
            "selective recomputation; OPT: tp ∈ {1, 2, 4, 8} with FSDP)."),
            "",
            md_table(
                ("run", "metric", "layouts", "lowest (layout)", "highest (layout)", "error range"),
                [
                    [
                        r.run.label,
                        METRICS[r.spread["metric"]].label,
                        str(r.spread["layouts"]),
                        f"{METRICS[r.spread['metric']].fmt(r.spread['min'])} ({r.spread['min_layout']})",
                        f"{METRICS[r.spread['metric']].fmt(r.spread['max'])} ({r.spread['max_layout']})",
                        f"{_pct(r.spread['error_min'])} … {_pct(r.spread['error_max'])}",
                    ]
                    for r in spreads
                ],
            ),
            "",
        ]
    parts += ["## Run definitions and assumptions", ""]
    for res in report.results:
        run = res.run
        parts.append(f"**{run.label}** (`{run.id}`) — {_layout(run.plan)}; layout {run.layout}. Source: {run.source}.")
        parts.append("")
        for a in run.assumptions:
            parts.append(f"- {a}")
        for c in res.comparisons:
            if c.note:
                parts.append(f"- {METRICS[c.metric].label} {METRICS[c.metric].fmt(c.published)}: {c.note} (`{c.ref}`)")
        for w in res.warnings:
            parts.append(f"- llmplan warning: {w}")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def to_json(report: Report) -> dict[str, Any]:
    """The results as a JSON-serialisable dict (``benchmarks/results/validation.json``)."""

    def stats(s: Stats) -> dict[str, Any]:
        return {
            "n": s.n,
            "median_abs_error": _clean(s.median_abs),
            "mean_signed_error": _clean(s.mean_signed),
            "worst_abs_error": _clean(s.worst_abs),
            "worst": s.worst_run,
            "within_25_percent": s.within_25,
            "meets_targets": s.meets_targets,
        }

    return {
        "llmplan_version": report.version,
        "efficiency_model": {
            "gemm_fraction_of_mamf": GEMM_FRACTION_OF_MAMF,
            "calibration_groups": list(CALIBRATION_GROUPS),
            "gemm": {r.run.id: r.eta_gemm for r in report.results},
            "gemm_shape_model": True,
            "per_run_overrides": False,
            "published_goodput": {r.run.id: r.run.plan.efficiency.goodput for r in report.results if r.run.plan.efficiency.goodput},
        },
        "targets": {"median_abs_error": TARGET_MEDIAN, "worst_abs_error": TARGET_WORST},
        "source": PUBLISHED_TOML,
        "summary": {
            "held_out_primary": stats(report.held_out),
            "overall_primary": stats(report.overall),
            "overall_all": stats(report.overall_all),
            "by_metric": {k: stats(s) for k, s in report.by_metric.items()},
            "by_group": {k: stats(s) for k, s in report.by_group.items()},
            "by_source": {k: stats(s) for k, s in report.by_source.items()},
        },
        "runs": [
            {
                "id": r.run.id,
                "label": r.run.label,
                "group": r.run.group,
                "layout": r.run.layout,
                "layout_text": _layout(r.run.plan),
                "source": r.run.source,
                "assumptions": list(r.run.assumptions),
                "fits": r.fits,
                "memory_gib_per_gpu": r.memory_gib,
                "predicted_mfu": r.mfu,
                "predicted_hfu": r.hfu,
                "predicted_tflops_per_gpu": r.tflops_per_gpu,
                "step_seconds": r.step_seconds,
                "breakdown_seconds": {k: _clean(v) for k, v in r.breakdown.items()},
                "warnings": r.warnings,
                "spread": r.spread,
                "comparisons": [
                    {
                        "metric": c.metric,
                        "predicted": c.predicted,
                        "published": c.published,
                        "error": c.error,
                        "primary": c.primary,
                        "published_ref": c.ref,
                        "note": c.note,
                        "implied_gemm": c.implied_gemm,
                    }
                    for c in r.comparisons
                ],
            }
            for r in report.results
        ],
    }


def write_results(report: Report, directory: str | Path) -> tuple[Path, Path]:
    """Write ``validation.md`` and ``validation.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    md = directory / "validation.md"
    js = directory / "validation.json"
    md.write_text(markdown(report), encoding="utf-8")
    js.write_text(json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js


# ---------------------------------------------------------------------------------------
# the one constant fitted to training runs: GEMM_FRACTION_OF_MAMF
# ---------------------------------------------------------------------------------------



@contextmanager
def gemm_fraction(value: float):
    """Evaluate plans with ``GEMM_FRACTION_OF_MAMF = value`` inside the block (restored on exit).

    For fitting and cross-validating the constant; it sets a module global, so it is not
    thread-safe.
    """
    from . import plan as plan_module

    old = plan_module.GEMM_FRACTION_OF_MAMF
    plan_module.GEMM_FRACTION_OF_MAMF = value
    try:
        yield
    finally:
        plan_module.GEMM_FRACTION_OF_MAMF = old


def _log_errors(results: Iterable[RunResult]) -> list[float]:
    """``log(predicted/published)`` of every primary comparison."""
    return [math.log1p(c.error) for r in results for c in r.comparisons if c.primary]


def _mean_abs_log(results: Iterable[RunResult]) -> float:
    """Mean ``|log(predicted/published)|`` of the results' primary comparisons.

    The absolute log error: symmetric in over- and under-prediction, and, like the
    median the targets use, not dominated by a few runs that no single constant explains.
    """
    return statistics.fmean(abs(e) for e in _log_errors(results))


def fraction_loss(fraction: float, selected: Sequence[Run]) -> float:
    """:func:`_mean_abs_log` of ``selected``'s runs evaluated at ``GEMM_FRACTION_OF_MAMF = fraction``."""
    with gemm_fraction(fraction):
        return _mean_abs_log([evaluate_run(r, spread=False) for r in selected])


def fit_gemm_fraction(groups: Sequence[str] = CALIBRATION_GROUPS, lo: float = 0.4, hi: float = 1.0, tol: float = 1e-4) -> float:
    """The ``GEMM_FRACTION_OF_MAMF`` that minimises :func:`fraction_loss` on ``groups``' runs.

    A golden-section search (:func:`llmplan.plan.golden_min`) on ``[lo, hi]`` to ``tol``. ``fit_gemm_fraction()`` on the
    calibration set gives the constant in :mod:`llmplan.plan` (rounded to two decimals;
    ``tests/test_validation.py`` checks that it still does).
    """
    selected = [r for r in runs() if r.group in groups]
    if not selected:
        raise KeyError(f"no runs in group(s) {', '.join(groups)}")
    return golden_min(lambda f: fraction_loss(f, selected), lo, hi, tol=tol)


@dataclass
class CrossValidation:
    """Leave-one-group-out cross-validation of ``GEMM_FRACTION_OF_MAMF``.

    For each group of runs the constant is fitted (:func:`fraction_loss`, on a grid) to
    every *other* group's primary comparisons and the group is predicted with that value:
    every comparison in :attr:`comparisons` comes from a constant its own run did not see.

    Attributes:
        grid: the fractions tried.
        fractions: group → the fraction fitted without it.
        comparisons: every primary comparison, each at its group's held-out fraction.
        overall: their summary.
        by_group: per group.
        by_gpu: GPU family (``"A100"``, ``"H100/H800"``) → the fraction fitted to that
            family's runs alone: how much of the GPUs' difference the MAMF normalisation
            leaves.
        held_out_by_fraction: grid fraction → the held-out statistics (every run outside
            :data:`CALIBRATION_GROUPS`) had the constant been that value: how much the
            targets depend on its exact value.
    """

    grid: list[float]
    fractions: dict[str, float]
    comparisons: list[Comparison]
    overall: Stats
    by_group: dict[str, Stats]
    by_gpu: dict[str, float] = field(default_factory=dict)
    held_out_by_fraction: dict[float, Stats] = field(default_factory=dict)


def cross_validate(grid: Sequence[float] | None = None) -> CrossValidation:
    """Leave-one-group-out cross-validation of the fitted constant (see :class:`CrossValidation`).

    Every run is evaluated once per grid point (default 0.50, 0.51, …, 0.95).
    """
    grid = list(grid) if grid is not None else [round(0.5 + 0.01 * i, 2) for i in range(46)]
    all_runs = runs()
    groups = list(dict.fromkeys(r.group for r in all_runs))
    at: dict[float, list[RunResult]] = {}
    for f in grid:
        with gemm_fraction(f):
            at[f] = [evaluate_run(r, spread=False) for r in all_runs]
    fractions, comps = {}, []
    for g in groups:
        best = min(grid, key=lambda f, g=g: _mean_abs_log(r for r in at[f] if r.run.group != g))
        fractions[g] = best
        comps += [c for r in at[best] if r.run.group == g for c in r.comparisons if c.primary]
    by_gpu = {}
    for family in dict.fromkeys(gpu_family(r.plan.cluster.gpu.id) for r in all_runs):
        by_gpu[family] = min(
            grid, key=lambda f, family=family: _mean_abs_log(r for r in at[f] if gpu_family(r.run.plan.cluster.gpu.id) == family)
        )
    return CrossValidation(
        grid=grid,
        fractions=fractions,
        comparisons=comps,
        overall=_stats(comps),
        by_group={g: _stats([c for c in comps if c.group == g]) for g in groups},
        by_gpu=by_gpu,
        held_out_by_fraction={
            f: _stats([c for r in at[f] if r.run.group not in CALIBRATION_GROUPS for c in r.comparisons if c.primary])
            for f in grid
        },
    )


def gpu_family(gpu_id: str) -> str:
    """The GPU family of a catalog id for :attr:`CrossValidation.by_gpu` (``"a100-80gb-sxm"`` → ``"A100"``;
    the H800 is an H100 with slower links: ``"H100/H800"``)."""
    head = gpu_id.split("-")[0].upper()
    return "H100/H800" if head in ("H100", "H800") else head


CV_HEADER = ("left-out group", "n", "fraction fitted without it", "median abs error", "mean signed error", "worst abs error", "within 25 %")


def cross_validation_rows(cv: CrossValidation) -> list[list[str]]:
    """One row per left-out group, then the whole held-out set."""
    rows = []
    for g, s in cv.by_group.items():
        rows.append([g, str(s.n), f"{cv.fractions[g]:.2f}", _pct(s.median_abs, signed=False), _pct(s.mean_signed),
                     f"{_pct(s.worst_abs, signed=False)} — {s.worst_run}", f"{s.within_25}/{s.n}"])
    o = cv.overall
    rows.append(["**every group, each left out**", str(o.n), f"{min(cv.fractions.values()):.2f}–{max(cv.fractions.values()):.2f}",
                 _pct(o.median_abs, signed=False), _pct(o.mean_signed), f"{_pct(o.worst_abs, signed=False)} — {o.worst_run}",
                 f"{o.within_25}/{o.n}"])
    return rows


def cross_validation_markdown(cv: CrossValidation) -> str:
    """``benchmarks/results/crossvalidation.md``."""
    return "\n".join([
        "# Leave-one-group-out cross-validation of GEMM_FRACTION_OF_MAMF",
        "",
        (f"Generated by `python benchmarks/validate_runs.py` (llmplan {__version__}). For each group of runs the "
         "one fitted constant of the efficiency model is refitted — the grid value "
         f"({cv.grid[0]:.2f}–{cv.grid[-1]:.2f} in steps of 0.01) that minimises the mean |log(predicted/published)| "
         "of every *other* group's primary comparisons — and the left-out group is predicted with it. The default, "
         f"{GEMM_FRACTION_OF_MAMF}, is the fit to {', '.join(CALIBRATION_GROUPS)} alone."),
        "",
        md_table(CV_HEADER, cross_validation_rows(cv)),
        "",
        cross_validation_gpu_text(cv),
        "",
        "Held-out statistics had the constant been another value (every run outside the calibration set):",
        "",
        md_table(SENSITIVITY_HEADER, sensitivity_rows(cv)),
        "",
    ])


SENSITIVITY_HEADER = ("GEMM_FRACTION_OF_MAMF", "n", "median abs error", "mean signed error", "within 25 %")


def sensitivity_rows(cv: CrossValidation, span: float = 0.04) -> list[list[str]]:
    """Held-out statistics at the grid fractions within ``span`` of the default."""
    rows = []
    for f, st in cv.held_out_by_fraction.items():
        if abs(f - GEMM_FRACTION_OF_MAMF) <= span + 1e-9:
            mark = " (default)" if abs(f - GEMM_FRACTION_OF_MAMF) < 1e-9 else ""
            rows.append([f"{f:.2f}{mark}", str(st.n), _pct(st.median_abs, signed=False), _pct(st.mean_signed),
                         f"{st.within_25}/{st.n}"])
    return rows


def cross_validation_gpu_text(cv: CrossValidation) -> str:
    """One sentence: the fraction fitted to each GPU family's runs alone."""
    parts = ", ".join(f"{family} {f:.2f}" for family, f in cv.by_gpu.items())
    return (f"Fitted to each GPU family's runs alone (same loss and grid): {parts}. The MAMF normalisation "
            "leaves this much of the GPUs' difference; the default is one fraction for every GPU.")


def cross_validation_json(cv: CrossValidation) -> dict[str, Any]:
    """``benchmarks/results/crossvalidation.json``."""
    def stats(s: Stats) -> dict[str, Any]:
        return {"n": s.n, "median_abs_error": _clean(s.median_abs), "mean_signed_error": _clean(s.mean_signed),
                "worst_abs_error": _clean(s.worst_abs), "worst": s.worst_run, "within_25_percent": s.within_25}

    return {
        "llmplan_version": __version__,
        "default_fraction": GEMM_FRACTION_OF_MAMF,
        "calibration_groups": list(CALIBRATION_GROUPS),
        "grid": cv.grid,
        "fraction_without_group": cv.fractions,
        "fraction_by_gpu_family": cv.by_gpu,
        "held_out_by_fraction": {f"{f:.2f}": stats(st) for f, st in cv.held_out_by_fraction.items()},
        "overall": stats(cv.overall),
        "by_group": {g: stats(s) for g, s in cv.by_group.items()},
        "comparisons": [
            {"run": c.run, "group": c.group, "metric": c.metric, "predicted": c.predicted, "published": c.published,
             "error": c.error, "fraction": cv.fractions[c.group]}
            for c in cv.comparisons
        ],
    }
