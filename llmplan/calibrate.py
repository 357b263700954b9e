"""``llmplan calibrate``: measure the GEMM efficiency of *your* GPU and write it where a plan can use it.

The default ``η_gemm`` is an assumption (:data:`llmplan.plan.DEFAULT_GEMM_EFFICIENCY`).
This command times real matrix multiplies with PyTorch on the local device, at the
shapes a plan's layers produce (``tokens × hidden → 3·hidden/tp`` … ) or at a default
set, divides the achieved FLOP/s by the GPU's dense catalog peak for the dtype, and
writes

.. code-block:: toml

    # measured by llmplan calibrate …
    [efficiency]
    gemm = 0.71

to a TOML file, with ``attention = …`` and ``attention_half_length = …``: the fused causal
attention kernel (``torch.nn.functional.scaled_dot_product_attention``, FlashAttention-backed
on recent GPUs) timed forward + backward at the plan's head shape and at 1/2, 1/4 and 1/8
of its sequence length (the same tokens per call), as a fraction of the peak on the FLOPs
the kernel executes (the FlashAttention papers' count: causal forward ``2·b·heads·s²·d``,
backward 2.5 × that), and the curve ``attention · s/(s + attention_half_length)`` fitted to
those four points as llmplan fits the published kernel benchmarks
(:func:`llmplan.plan.default_attention_efficiency`). A plan takes the file with the top-level key
``include = ["calibration.toml"]`` (the plan's own keys win). Needs ``torch``
(``pip install torch``); no network.

``--step`` (:func:`calibrate_step`) measures a whole training step instead: the plan's
model built with transformers on one GPU, cut to a few layers, and the ``gemm`` with which
llmplan's step time of that one-GPU plan equals the measurement.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import LlmplanError

__all__ = [
    "add_cli",
    "attention_shape",
    "calibrate",
    "calibrate_step",
    "gemm_shapes",
    "guess_gpu",
    "measure_attention",
    "measure_attention_curve",
    "measure_gemm",
    "measure_step",
    "step_gemm_efficiency",
    "step_plan",
    "time_training_steps",
]

#: GEMM shapes (m, k, n) used without a plan: square-ish training GEMMs of a 7B–70B model.
DEFAULT_SHAPES: tuple[tuple[int, int, int], ...] = ((8192, 4096, 4096), (8192, 4096, 11008), (8192, 11008, 4096), (8192, 8192, 8192))


def gemm_shapes(plan) -> list[tuple[int, int, int]]:
    """(m, k, n) of the forward GEMMs one GPU runs per layer under ``plan``'s layout.

    The same shapes the time model uses (:func:`llmplan.formulas.flops.gemm_shapes`),
    evaluated for the plan; routed experts are timed as one GEMM of their per-expert shape.
    """
    from .bindings import evaluate
    from .estimate import estimate
    from .formulas.flops import gemm_shapes as layer_gemms

    values = estimate(plan).values
    out: list[tuple[int, int, int]] = []
    for g in layer_gemms(plan.model, flash=True):
        if g.name in ("router", "shared_gate") or evaluate(g.per_micro_batch, values) == 0:
            continue
        shape = tuple(int(evaluate(x, values)) for x in (g.rows, g.inner, g.cols))
        if min(shape) > 0 and shape not in out:
            out.append(shape)
    return out


#: Attention shape (batch, heads, sequence, head dim) used without a plan: a 7B model's 4K sequence.
DEFAULT_ATTENTION: tuple[int, int, int, int] = (1, 32, 4096, 128)


def attention_shape(plan) -> tuple[int, int, int, int] | None:
    """(micro-batch, heads on one GPU, sequence on one GPU, head dim) of ``plan``'s attention
    kernel (``heads ÷ tp``, ``seq_len ÷ cp``); ``None`` without FlashAttention or for MLA
    (whose query/key and value head dims differ)."""
    model, par = plan.model, plan.parallelism
    if not par.flash_attention or model.mla is not None:
        return None
    return (par.micro_batch, model.heads // par.tp, plan.method.seq_len // par.cp, model.d_head)


def causal_attention_flops(b: int, heads: int, s: int, d: int) -> float:
    """FLOPs a causal FlashAttention kernel executes, forward + backward: the forward's two
    matrix multiplies ``2·(2·s·s·d)`` halved by the mask, the backward 2.5 × the forward
    (five matrix multiplies, one recomputing ``QKᵀ``) — Dao 2023, FlashAttention-2 §4.1."""
    forward = 2 * 2 * b * heads * s * s * d / 2
    return 3.5 * forward


def measure_attention(shape: tuple[int, int, int, int], *, device: str = "cuda", dtype: str = "bf16", repeat: int = 10) -> dict[str, Any]:
    """Time ``repeat`` forward + backward passes of causal scaled-dot-product attention."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:  # pragma: no cover - exercised only without torch
        raise LlmplanError("llmplan calibrate needs PyTorch: pip install torch") from None
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "tf32": torch.float32}[dtype]
    b, heads, s, d = shape
    q, k, v = (torch.randn(b, heads, s, d, device=device, dtype=torch_dtype, requires_grad=True) for _ in range(3))
    grad = torch.randn(b, heads, s, d, device=device, dtype=torch_dtype)

    def step():
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(2):  # warm-up
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        step()
    sync()
    seconds = (time.perf_counter() - t0) / repeat
    return {"shape": list(shape), "seconds": seconds, "flops_per_second": causal_attention_flops(*shape) / seconds}


#: Largest relative deviation from the measured points at which ``llmplan calibrate`` keeps
#: the fitted attention curve; above it, the flat rate measured at the plan's own length.
MAX_ATTENTION_FIT_ERROR = 0.10


def measure_attention_curve(shape: tuple[int, int, int, int], peak: float, *, device: str = "cuda", dtype: str = "bf16",
                            repeat: int = 10) -> dict[str, Any]:
    """Time causal attention at ``shape`` = (b, heads, s, d) and at s/2, s/4, s/8 (the same
    ``b·s`` tokens per call; lengths below 16 are skipped), and fit ``rate = R·s/(s + s0)``
    (:func:`llmplan.plan.fit_saturating`). Returns the measurement at ``shape`` with
    ``efficiency`` (its rate ÷ ``peak``), ``curve`` (every point, shortest first), ``eta``
    (``R ÷ peak``, at most 1), ``half_length`` (``s0``, tokens) and ``fit_error`` (largest
    relative deviation of the fit from the points). A fit off the points by more than
    :data:`MAX_ATTENTION_FIT_ERROR`, or with ``s0`` at the edge of its search range, is not
    used: ``eta`` is then the rate at ``shape`` and ``half_length`` 0 (a flat rate)."""
    from .plan import fit_saturating

    b, heads, s, d = shape
    lengths = sorted({s // k for k in (8, 4, 2) if s // k >= 16} | {s})
    curve = [measure_attention((max(1, b * s // n), heads, n, d), device=device, dtype=dtype, repeat=repeat) for n in lengths]
    top = curve[-1]
    eff = top["flops_per_second"] / peak
    if not 0 < eff <= 1.05 or any(not 0 < p["flops_per_second"] / peak <= 1.05 for p in curve):
        raise LlmplanError(
            f"measured {top['flops_per_second'] / 1e12:.1f} TFLOP/s of causal attention against a peak of "
            f"{peak / 1e12:.1f} TFLOP/s: the peak is wrong for this device and dtype; give --peak"
        )
    r, s0, err = top["flops_per_second"], 0.0, 0.0  # one length, or a poor fit: a flat rate at the plan's s
    if len(curve) >= 2:
        fr, fs0, ferr = fit_saturating([float(n) for n in lengths], [p["flops_per_second"] for p in curve])
        # a curve only where it describes the points (within 10 %) and its half length is inside
        # the search range (at the edge the asymptote is an extrapolation, not a measurement)
        if ferr <= MAX_ATTENTION_FIT_ERROR and fs0 < 0.99 * 4 * s:
            r, s0, err = fr, fs0, ferr
    return {**top, "efficiency": min(eff, 1.0), "curve": curve, "eta": min(r / peak, 1.0), "half_length": s0,
            "fit_error": err}


def measure_gemm(shapes: Sequence[tuple[int, int, int]], *, device: str = "cuda", dtype: str = "bf16", repeat: int = 20) -> dict[str, Any]:
    """Time ``repeat`` matmuls of each shape; returns achieved FLOP/s overall and per shape."""
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without torch
        raise LlmplanError("llmplan calibrate needs PyTorch: pip install torch") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LlmplanError("no CUDA device is visible to PyTorch; use --device cpu to try the command on the CPU")
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "tf32": torch.float32}[dtype]
    if dtype == "tf32" and device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    per_shape, total_flop, total_s = [], 0.0, 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=torch_dtype)
        b = torch.randn(k, n, device=device, dtype=torch_dtype)
        for _ in range(3):  # warm-up
            a @ b
        sync()
        t0 = time.perf_counter()
        for _ in range(repeat):
            a @ b
        sync()
        seconds = time.perf_counter() - t0
        flop = 2.0 * m * k * n * repeat
        per_shape.append({"m": m, "k": k, "n": n, "flops_per_second": flop / seconds})
        total_flop += flop
        total_s += seconds
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    sms = torch.cuda.get_device_properties(0).multi_processor_count if device.startswith("cuda") else None
    return {"device": name, "dtype": dtype, "flops_per_second": total_flop / total_s, "shapes": per_shape, "torch": torch.__version__, "sms": sms}


def large_gemm_efficiency(per_shape: Sequence[dict[str, Any]], peak: float, sms: int | None) -> float:
    """The ``η_gemm`` (large-GEMM efficiency) that reproduces the measured times under llmplan's
    GEMM-shape model: ``Σ F_i / tile_efficiency_i ÷ (peak · Σ t_i)`` (compute-bound shapes).

    llmplan applies tile and wave quantisation on top of ``η_gemm``
    (:func:`llmplan.formulas.time.tile_efficiency`), so the calibrated value must not
    contain them a second time.
    """
    from . import symbols as S
    from .bindings import evaluate
    from .formulas.time import tile_efficiency

    adjusted, seconds = 0.0, 0.0
    for r in per_shape:
        m, n = r["m"], r["n"]
        flop = 2.0 * m * r["k"] * n
        q = float(evaluate(tile_efficiency(m, n), {S.n_sm: sms or 1}))
        adjusted += flop / q
        seconds += flop / r["flops_per_second"]
    return adjusted / seconds / peak


def calibrate(
    *,
    peak: float,
    shapes: Sequence[tuple[int, int, int]] = DEFAULT_SHAPES,
    attention: tuple[int, int, int, int] | None = DEFAULT_ATTENTION,
    device: str = "cuda",
    dtype: str = "bf16",
    repeat: int = 20,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Measure, divide by ``peak`` (FLOP/s) and optionally write the ``[efficiency]`` TOML.

    ``attention``: (batch, heads, sequence, head dim) of the causal attention kernel to
    time as well (``None``: GEMMs only).
    """
    result = measure_gemm(shapes, device=device, dtype=dtype, repeat=repeat)
    result["efficiency_at_shapes"] = result["flops_per_second"] / peak
    eff = large_gemm_efficiency(result["shapes"], peak, result["sms"])
    if not 0 < eff <= 1.05:
        raise LlmplanError(
            f"measured {result['flops_per_second'] / 1e12:.1f} TFLOP/s against a peak of {peak / 1e12:.1f} TFLOP/s "
            f"(efficiency {eff:.2f}): the peak is wrong for this device and dtype; give --peak"
        )
    result["efficiency"] = min(eff, 1.0)
    result["peak"] = peak
    if attention is not None:
        result["attention"] = measure_attention_curve(attention, peak, device=device, dtype=dtype, repeat=max(1, repeat // 2))
    if out is not None:
        lines = [
            f"# measured by llmplan calibrate on {result['device']} ({dtype}, torch {result['torch']}) "
            f"on {_dt.date.today().isoformat()}",
            f"# achieved {result['flops_per_second'] / 1e12:.1f} TFLOP/s of {peak / 1e12:.1f} dense peak over "
            + ", ".join(f"{s['m']}x{s['k']}x{s['n']}" for s in result["shapes"]),
            f"# = {result['efficiency_at_shapes']:.3f} of peak at these shapes; gemm below is the large-GEMM "
            f"efficiency after removing llmplan's tile/wave quantisation ({result['sms'] or 'unknown'} SMs)",
        ]
        if "attention" in result:
            a = result["attention"]
            lines.append(
                f"# causal attention (b, heads, s, d) = {tuple(a['shape'])}: {a['flops_per_second'] / 1e12:.1f} TFLOP/s "
                "on the FLOPs the kernel executes (forward + backward = 3.5 × the causal forward)"
            )
            lines.append(
                "# at shorter sequences (same tokens per call): "
                + ", ".join(f"s = {p['shape'][2]}: {p['flops_per_second'] / 1e12:.1f}" for p in a["curve"][:-1])
                + (f" TFLOP/s; fit attention·s/(s + attention_half_length) within {100 * a['fit_error']:.1f} %"
                   if a["half_length"] > 0 else " TFLOP/s; no curve fits them within 10 %: the flat rate at the plan's s")
            )
        lines += ["[efficiency]", f"gemm = {result['efficiency']:.6g}"]
        if "attention" in result:
            lines.append(f"attention = {result['attention']['eta']:.6g}")
            lines.append(f"attention_half_length = {result['attention']['half_length']:.6g}")
        lines.append("")
        Path(out).write_text("\n".join(lines), encoding="utf-8")
    return result


# --- step calibration: a real training step of the plan's model ------------------------------


def step_plan(plan, *, layers: int | None = 4, peak: float | None = None):
    """The one-GPU plan a step calibration measures: ``plan``'s model cut to ``layers``
    layers (``None``: all), its sequence length, micro-batch and FlashAttention choice, full
    recomputation if the plan recomputes fully (else none: transformers has no selective
    form), pure bf16 weights and AdamW states (``bf16-pure``, what a plain PyTorch step
    holds), ``framework = "hf"``, one micro-batch per step. ``peak`` (FLOP/s) replaces the
    GPU's bf16 peak (``--peak``) and drops its bf16 matmul measurement (``mamf``)."""
    import attrs

    from .plan import Cluster, Efficiency, Method, Parallelism, Plan, Precision

    model = plan.model
    if layers is not None:
        model = attrs.evolve(model, layers=min(layers, model.layers))
    gpu = plan.cluster.gpu
    if peak is not None:  # the given peak; the catalog's bf16 matmul measurement is another device's
        mamf = {k: v for k, v in (gpu.mamf or {}).items() if k != "bf16"}
        gpu = attrs.evolve(gpu, peak={**gpu.peak, "bf16": peak}, mamf=mamf)
    par, meth = plan.parallelism, plan.method
    return Plan(
        name=f"step calibration of {plan.name or model.name or 'the plan'}",
        model=model,
        method=Method(kind="pretrain", tokens=meth.seq_len * par.micro_batch * 1000, seq_len=meth.seq_len, global_batch=par.micro_batch),
        precision=Precision(preset="bf16-pure"),
        cluster=Cluster(gpu=gpu, gpus=1),
        parallelism=Parallelism(micro_batch=par.micro_batch, recompute="full" if par.recompute == "full" else "none",
                                flash_attention=par.flash_attention, attention_kernel=par.attention_kernel, framework="hf"),
        efficiency=Efficiency(attention=plan.efficiency.attention, attention_half_length=plan.efficiency.attention_half_length,
                              elementwise_passes=plan.efficiency.elementwise_passes),
    )


def measure_step(plan, *, device: str = "cuda", steps: int = 5, warmup: int = 2) -> dict[str, Any]:
    """Train ``warmup + steps`` real steps of ``plan``'s model (a :func:`step_plan`) with
    transformers and ``torch.optim.AdamW``, bf16, random weights and tokens; the median
    time of the last ``steps`` and, on CUDA, ``max_memory_allocated``. The module's
    parameter count must equal llmplan's."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError:  # pragma: no cover - exercised only without torch
        raise LlmplanError("llmplan calibrate --step needs PyTorch and transformers: pip install torch transformers") from None
    from .estimate import param_counts
    from .hf import to_hf_config

    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise LlmplanError("no CUDA device is visible to PyTorch; use --device cpu to try the command on the CPU")
    config = to_hf_config(plan.model)
    cfg = AutoConfig.for_model(**config)
    cfg._attn_implementation = "sdpa" if plan.parallelism.flash_attention else "eager"
    cfg.use_cache = False
    torch.manual_seed(0)
    with torch.device(device):
        module = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
    params = sum(p.numel() for p in module.parameters())
    expected = param_counts(plan.model).total
    if params != expected:
        raise LlmplanError(f"transformers built {params:,} parameters for {config['model_type']}, llmplan counts {expected:,}")
    ids = torch.randint(0, cfg.vocab_size, (plan.parallelism.micro_batch, plan.method.seq_len), device=device)
    timed = time_training_steps(module, ids, checkpointing=plan.parallelism.recompute == "full", device=device,
                                steps=steps, warmup=warmup)
    return {"params": params, **timed, "model_type": config["model_type"]}


def time_training_steps(module, ids, *, checkpointing: bool, device: str, steps: int, warmup: int) -> dict[str, Any]:
    """Train ``warmup + steps`` steps of the causal LM ``module`` on the token batch ``ids``
    (labels = inputs) with ``torch.optim.AdamW`` (fused on CUDA), non-reentrant gradient
    checkpointing if asked; the median time of the last ``steps`` (synchronised) and, on
    CUDA, ``max_memory_allocated`` over them."""
    import statistics

    import torch

    cuda = device.startswith("cuda")
    if checkpointing:
        module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-5, **({"fused": True} if cuda else {}))
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    for i in range(warmup + steps):
        if cuda and i == warmup:
            torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = time.perf_counter()
        module(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {
        "step_seconds": statistics.median(times),
        "step_seconds_all": times,
        "peak_memory_bytes": float(torch.cuda.max_memory_allocated()) if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else device,
        "torch": torch.__version__,
    }


def predicted_step_seconds(plan, gemm: float | None = None) -> float:
    """llmplan's ``time.step_seconds`` of ``plan`` with ``[efficiency] gemm`` set to ``gemm``."""
    import attrs

    from .estimate import estimate

    if gemm is not None:
        plan = attrs.evolve(plan, efficiency=attrs.evolve(plan.efficiency, gemm=gemm))
    return float(estimate(plan).value("time.step_seconds"))


def step_gemm_efficiency(plan, measured_seconds: float, *, low: float = 1e-4, high: float = 1.0) -> float:
    """The ``[efficiency] gemm`` with which llmplan's step time of ``plan`` equals
    ``measured_seconds`` (bisection; the step time falls as ``gemm`` rises). An error
    when no value in ``[low, high]`` gets there: a peak that is too low, or a step slower
    than the memory-bound terms alone explain."""
    fast, slow = predicted_step_seconds(plan, high), predicted_step_seconds(plan, low)
    if measured_seconds < fast:
        raise LlmplanError(
            f"the measured step ({measured_seconds:.4g} s) is faster than llmplan's model allows even at gemm = {high} "
            f"({fast:.4g} s): the peak is wrong for this device; give --peak"
        )
    if measured_seconds > slow:
        raise LlmplanError(
            f"the measured step ({measured_seconds:.4g} s) is slower than llmplan predicts even at gemm = {low} "
            f"({slow:.4g} s): the peak or the memory bandwidth in the catalog does not describe this device"
        )
    for _ in range(80):  # geometric bisection: the answer to ~1e-9 relative
        mid = (low * high) ** 0.5
        if predicted_step_seconds(plan, mid) > measured_seconds:
            low = mid
        else:
            high = mid
    return (low * high) ** 0.5


def calibrate_step(plan, *, layers: int | None = 4, peak: float | None = None, device: str = "cuda", steps: int = 5,
                   warmup: int = 2, out: str | Path | None = None) -> dict[str, Any]:
    """Measure a real training step of ``plan``'s model on this device (:func:`step_plan`,
    :func:`measure_step`) and find the ``[efficiency] gemm`` that makes llmplan's step
    time equal it (:func:`step_gemm_efficiency`); optionally write the TOML.

    Unlike the GEMM calibration, the value carries everything the step model does not
    resolve — kernel and framework versions, launch gaps, the unfused elementwise work —
    as seen in this one-GPU step; it is meant for plans run with the same software on
    the same GPU type. It sets ``gemm`` only; the attention kernel follows as ``gemm/2``
    unless the plan gives ``[efficiency] attention``.
    """
    small = step_plan(plan, layers=layers, peak=peak)
    measured = measure_step(small, device=device, steps=steps, warmup=warmup)
    default = predicted_step_seconds(small)
    gemm = step_gemm_efficiency(small, measured["step_seconds"])
    result = {**measured, "layers": small.model.layers, "seq_len": small.method.seq_len, "micro_batch": small.parallelism.micro_batch,
              "recompute": small.parallelism.recompute, "predicted_seconds_default": default, "gemm": gemm,
              "peak": small.cluster.gpu.peak["bf16"], "gpu": small.cluster.gpu.id}
    if out is not None:
        lines = [
            f"# measured by llmplan calibrate --step on {measured['device']} (torch {measured['torch']}) on {_dt.date.today().isoformat()}",
            f"# one training step of {measured['model_type']} with {small.model.layers} layers, {measured['params']:,} parameters, "
            f"seq_len {small.method.seq_len}, micro-batch {small.parallelism.micro_batch}, recompute {small.parallelism.recompute}, "
            "bf16 weights and AdamW states, one GPU",
            f"# measured {measured['step_seconds']:.6g} s; llmplan predicted {default:.6g} s with its default efficiency on "
            f"{small.cluster.gpu.id} ({small.cluster.gpu.peak['bf16'] / 1e12:,.1f} TFLOP/s bf16 peak)",
            "# gemm below makes llmplan's step time equal the measurement (it absorbs what the step model does not resolve)",
            "[efficiency]",
            f"gemm = {gemm:.6g}",
            "",
        ]
        Path(out).write_text("\n".join(lines), encoding="utf-8")
    return result


def guess_gpu(name: str) -> str | None:
    """The catalog id of a device named as ``torch.cuda.get_device_name()`` names it
    (``"NVIDIA H100 80GB HBM3"`` → ``"h100-sxm"``), or ``None`` when no entry matches."""
    from . import catalog

    low = name.lower()
    table = [
        ("h100", "pcie", "h100-pcie"),
        ("h100", "", "h100-sxm"),
        ("h800", "", "h800-sxm"),
        ("h200", "", "h200-sxm"),
        ("a100", "40gb", "a100-40gb-sxm"),
        ("a100", "pcie", "a100-80gb-pcie"),
        ("a100", "", "a100-80gb-sxm"),
        ("l40s", "", "l40s"),
        ("4090", "", "rtx-4090"),
        ("rtx 6000 ada", "", "rtx-6000-ada"),
        ("a6000", "", "rtx-a6000"),
        ("b200", "", "b200"),
        ("mi300x", "", "mi300x"),
    ]
    for key, extra, gid in table:
        if key in low and extra in low and gid in catalog.default().gpus:
            return gid
    return None


def add_cli(subparsers) -> None:
    """Register ``llmplan calibrate``."""
    p = subparsers.add_parser("calibrate", help="measure this GPU's GEMM efficiency and write an [efficiency] TOML")
    p.add_argument("plan", nargs="?", help="use the GEMM shapes of this plan's layout")
    p.add_argument("--out", default="calibration.toml", help="TOML file to write (default calibration.toml)")
    p.add_argument("--gpu", help="catalog GPU id for the peak (default: guessed from the device name)")
    p.add_argument("--peak", help='dense peak for the dtype, e.g. "989.4 TFLOP/s" (overrides the catalog)')
    p.add_argument("--device", default="cuda", help="torch device (cuda, cuda:1, cpu)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "tf32", "fp32"])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--no-attention", action="store_true", help="time the GEMMs only, not the causal attention kernel")
    p.add_argument("--step", action="store_true",
                   help="instead: train real steps of PLAN's model (cut to --layers) and fit gemm to the measured step time")
    p.add_argument("--layers", type=int, default=4, help="--step: layers of the model to build (default 4; 0 = all)")
    p.add_argument("--steps", type=int, default=5, help="--step: measured steps after 2 warm-up steps (default 5)")
    p.set_defaults(func=_cmd)


def _cmd_step(args, plan) -> int:
    import attrs

    from . import catalog, units

    if plan is None:
        raise LlmplanError("calibrate --step needs a PLAN: its model, seq_len and micro_batch are what is measured")
    if args.gpu:
        plan = attrs.evolve(plan, cluster=attrs.evolve(plan.cluster, gpu=catalog.gpu(args.gpu)))
    elif args.device.startswith("cuda") and not args.peak:
        import torch

        gid = guess_gpu(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
        if gid is not None:
            plan = attrs.evolve(plan, cluster=attrs.evolve(plan.cluster, gpu=catalog.gpu(gid)))
    peak = units.parse(args.peak, "flops_per_second", what="--peak") if args.peak else None
    if args.layers < 0:
        raise LlmplanError(f"--layers {args.layers}: give a positive number of layers, or 0 for all")
    r = calibrate_step(plan, layers=args.layers or None, peak=peak, device=args.device, steps=max(1, args.steps), out=args.out)
    print(
        f"{r['device']}: {r['model_type']} × {r['layers']} layers, seq {r['seq_len']}, micro-batch {r['micro_batch']}: "
        f"{r['step_seconds']:.4g} s per step (llmplan's default: {r['predicted_seconds_default']:.4g} s) "
        f"→ gemm = {r['gemm']:.3f}; wrote {args.out} (use it with include = [\"{args.out}\"])"
    )
    return 0


def _cmd(args) -> int:
    from . import catalog, load, units

    plan = load(args.plan) if args.plan else None
    if args.step:
        return _cmd_step(args, plan)
    shapes = gemm_shapes(plan) if plan is not None else list(DEFAULT_SHAPES)
    attention = None if args.no_attention else (attention_shape(plan) if plan is not None else DEFAULT_ATTENTION)
    if args.peak:
        peak = units.parse(args.peak, "flops_per_second", what="--peak")
    else:
        gid = args.gpu
        if gid is None and args.device.startswith("cuda"):
            import torch

            gid = guess_gpu(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
        if gid is None:
            raise LlmplanError("cannot tell the GPU's peak: give --gpu ID (see `llmplan catalog gpus`) or --peak")
        gpu = catalog.gpu(gid)
        if args.dtype not in gpu.peak:
            raise LlmplanError(f"{gid} has no {args.dtype} peak in the catalog; give --peak")
        peak = gpu.peak[args.dtype]
    result = calibrate(
        peak=peak, shapes=shapes, attention=attention, device=args.device, dtype=args.dtype, repeat=args.repeat, out=args.out
    )
    att = ""
    if "attention" in result:
        a = result["attention"]
        att = (f", attention = {a['eta']:.3f} (half of it at {a['half_length']:.0f} tokens; "
               f"{a['efficiency']:.3f} at s = {a['shape'][2]})")
    print(
        f"{result['device']}: {result['flops_per_second'] / 1e12:,.1f} TFLOP/s of {peak / 1e12:,.1f} "
        f"→ gemm = {result['efficiency']:.3f}{att}; wrote {args.out} (use it with include = [\"{args.out}\"])"
    )
    return 0
