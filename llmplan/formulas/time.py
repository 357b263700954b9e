"""Time: step time from compute, pipeline bubble, exposed communication and the optimizer step.

``T_step = T_comp + T_bubble + T_exposed + T_opt + T_ccl`` where

* ``T_comp = ι·(F_gemm / (N · F_peak · η_shape) + F_core / (N · F_peak · η_gemm)) + T_elem (+ T_cast)`` —
  the step's matrix multiplies at the efficiency their shapes allow (``η_shape``: a large
  GEMM's ``η_gemm`` times tile/wave quantisation, or the memory roofline when the GEMM is
  memory-bound — :func:`gemm_seconds`), FlashAttention's fused core at ``η_gemm``, and the
  memory-bound elementwise kernels (documented in ``docs/concepts.md#efficiency``), and
  under FP8 compute the casts of the GEMM operands (:func:`fp8_cast_bytes`); ``ι`` is the
  slowest pipeline stage's share (:func:`stage_imbalance`: the LM head on the last stage,
  uneven layer counts);
* ``T_bubble = T_comp · (p−1)/(v·m)`` — the 1F1B pipeline bubble with ``v``
  interleaved chunks (Narayanan et al. 2021 §2.2.1–2.2.2; GPipe the same with v = 1;
  interleaved with m < p, which Megatron-Core refuses: ``((p−1) + (v−1)(p−m))/(v·m)``);
  DualPipe's ``(p/2 − 1)(F&B + B − 3W)`` (DeepSeek-V3 report Table 2,
  :func:`define_dualpipe_bubble`), which also overlaps EP and PP traffic with compute
  (:func:`dualpipe_exposed`) and gives ``comm_sms`` SMs to communication;
* ``T_exposed`` — PP and EP traffic in full; TP traffic in full, or under
  ``tp_comm_overlap`` each collective beyond its GEMM (:func:`llmplan.formulas.comm.tp_overlap_exposed`);
  DP traffic beyond the backward pass it overlaps (2/3 of ``T_comp``; ZeRO-3: each pass's
  traffic beyond that pass's FLOP share; all of it with ``dp_overlap = false``), CP traffic
  beyond the attention compute;
* ``T_opt`` — the optimizer reads and writes every state byte it owns once
  (memory-bandwidth bound);
* ``T_ccl`` — the SMs hidden DP/CP collectives take from the compute they overlap
  (:func:`comm_contention`).

With ``[efficiency] mfu = x`` the whole step is instead
``F_model_step / (N · F_peak · x)``, as the contract defines.
Total time = steps × step time, steps = D / (B·s).
"""

from __future__ import annotations

from typing import Any

import sympy

from ..symbols import B, D, N, W_hbm, eta, eta_attn, eta_gemm, eta_gemm16, m, n_sm, p, q_a, q_g, q_m, q_o, q_w, s, v, F_peak, F_peak16  # noqa: F401
from . import Definitions, formula

NARAYANAN = "Narayanan et al. 2021 §2.2 (bubble (p−1)/(v·m)), eq. (4)"
QUANTISATION = (
    "NVIDIA Deep Learning Performance Guide, 'Matrix Multiplication Background' (tile and wave "
    "quantisation); Williams, Waterman & Patterson 2009 (roofline)"
)

#: Output tiles (rows × columns) a GEMM library chooses among for large half-precision
#: GEMMs on Ampere/Hopper (CUTLASS's and cuBLAS's common thread-block tiles); the model takes
#: the one with the least quantisation loss, as the library's heuristic tries to.
GEMM_TILES: tuple[tuple[int, int], ...] = ((128, 128), (128, 256), (256, 128))


class _Step(sympy.Function):
    """A rounding step for tile and wave counts: unevaluated on symbols (sympy's own
    ``ceiling``/``floor`` spend long in assumption queries on symbolic products),
    derivative 0 (flat almost everywhere — what ``llmplan explain --sensitivity`` needs),
    printed as ``math.*`` / ``numpy.*`` by ``lambdify``."""

    nargs = 1
    _sympy_func: Any = None
    _name = ""
    _tex = ("", "")

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return cls._sympy_func(x)
        return None

    def fdiff(self, argindex=1):
        return sympy.Integer(0)

    def _pythoncode(self, printer):
        return f"{printer._module_format('math.' + self._name)}({printer._print(self.args[0])})"

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.' + self._name)}({printer._print(self.args[0])})"

    def _latex(self, printer):
        return self._tex[0] + printer._print(self.args[0]) + self._tex[1]


class Ceil(_Step):
    """``⌈x⌉``."""

    _sympy_func = sympy.ceiling
    _name = "ceil"
    _tex = (r"\left\lceil ", r" \right\rceil")


class Floor(_Step):
    """``⌊x⌋``."""

    _sympy_func = sympy.floor
    _name = "floor"
    _tex = (r"\left\lfloor ", r" \right\rfloor")


STAGES = (
    "1F1B paces every stage at the slowest one (Narayanan et al. 2021 §2.2); Megatron-LM places the LM head "
    "on the last stage (Megatron-Core's account_for_loss_in_pipeline_split and the Llama 3 paper §3.3.2, "
    "one layer fewer on the first and last stages, balance it)"
)


@formula("stage_imbalance", STAGES)
def stage_imbalance(plan, flops_per_token) -> sympy.Expr:
    """``ι`` = the slowest pipeline stage's hardware FLOPs ÷ the average stage's (1 when ``pp = 1``).

    The pipeline runs at the pace of its slowest stage: with ``F`` the hardware FLOPs per
    token, ``F_head = 3·2·h·V`` the LM head's forward and backward and
    ``F_layer = (F − F_head)/L`` a layer's share, the fullest stage holds ``L_max`` layers
    and the last ``L_last`` layers and the head:
    ``ι = p·max(L_max·F_layer, L_last·F_layer + F_head) / F``. An even split puts
    ``⌈L/p⌉`` layers on the first stages and ``⌊L/p⌋`` on the last;
    ``[parallelism] first_stage_layers`` / ``last_stage_layers`` set the ends
    (:meth:`llmplan.plan.Parallelism.stage_layers`).
    Approximations: every layer costs the average layer (dense and MoE layers of a mixed
    model alike; trained MTP modules, which sit on the last stage, are spread like layers),
    the embedding lookup is free; DualPipe, whose GPUs each hold a first-half and a
    last-half stage, is taken as balanced (``ι = 1``).
    """
    par = plan.parallelism
    if par.pp == 1 or par.pp_schedule == "dualpipe":
        return sympy.Integer(1)
    from ..symbols import L, L_last, L_max, V, h

    head = 6 * h * V
    layer = (flops_per_token - head) / L
    return p * sympy.Max(L_max * layer, L_last * layer + head) / flops_per_token


ATTENTION_SOURCE = (
    "Dao 2023 (FlashAttention-2), forward + backward benchmarks on A100 and H100 "
    "(llmplan/data/attention.toml); fit rate = R·s/(s + s_attn)"
)


@formula("attention_efficiency", ATTENTION_SOURCE)
def attention_efficiency() -> sympy.Expr:
    """Fraction of the BF16 peak a fused causal attention kernel achieves, on the FLOPs it executes.

    ``η_attn · s_k/(s_k + s_attn)`` with ``s_k = s/c`` the sequence length of one kernel call
    (context parallelism splits it): the kernel approaches ``η_attn`` on long sequences and
    reaches half of it at ``s_attn`` tokens. ``η_attn`` and ``s_attn`` come from a least-squares
    fit to the kernel's measured forward + backward speed on the GPU at 512–16k tokens
    (:func:`llmplan.plan.default_attention_efficiency`; the fit stays within 0.6–6.3 % of
    the benchmark's bars, 11.6 % for FlashAttention-1 at head dimension 128 on H100). Beyond
    16k the curve is an extrapolation to its asymptote. ``[efficiency] attention`` sets a
    flat ``η_attn`` (``s_attn = 0``), as does a GPU or kernel with no benchmark (half the
    GEMM efficiency). Approximations: the benchmarks' shape (16k tokens per call, hidden
    2048, FP16) stands for every batch and width; sliding windows are not shortened.
    """
    from ..symbols import c, s_attn

    s_k = s / c
    return eta_attn * s_k / (s_k + s_attn)


@formula("tile_efficiency", QUANTISATION)
def tile_efficiency(rows, cols, count=1) -> sympy.Expr:
    """Fraction of the GPU's tile slots doing useful work for ``count`` GEMMs of ``rows × cols`` outputs.

    The output is cut into ``T_m × T_n`` tiles, one per streaming multiprocessor at a
    time. Tile quantisation: partly filled edge tiles cost as much as full ones,
    ``M·N·count / (tiles·T_m·T_n)`` with ``tiles = count·⌈M/T_m⌉·⌈N/T_n⌉``. Wave
    quantisation: with at least ``n_sm`` tiles the last, partly filled wave costs a full
    one, ``tiles / (⌈tiles/n_sm⌉·n_sm)``; with fewer tiles than SMs the library splits the
    reduction (split-K / stream-K) into ``⌊n_sm/tiles⌋`` parts, ``tiles·⌊n_sm/tiles⌋ / n_sm``.
    The best tile of :data:`GEMM_TILES` is taken. Approximations: every tile shape is
    assumed to reach the same ``η_gemm``; split-K's partial-sum reduction is not charged.
    """
    options = []
    for tm, tn in GEMM_TILES:
        tiles = count * Ceil(rows / tm) * Ceil(cols / tn)
        filled = rows * cols * count / (tiles * tm * tn)
        waves = sympy.Piecewise(
            (tiles * Floor(n_sm / tiles) / n_sm, tiles < n_sm),
            (tiles / (Ceil(tiles / n_sm) * n_sm), True),
            evaluate=False,
        )
        options.append(filled * waves)
    return sympy.Max(*options, evaluate=False)


@formula("gemm_seconds", QUANTISATION)
def gemm_seconds(rows, cols, inner, count=1, peak=F_peak, efficiency=eta_gemm) -> sympy.Expr:
    """Time of ``count`` GEMMs ``[rows × inner]·[inner × cols]``: the slower of compute and memory.

    Compute: ``2·M·N·K·count / (F_peak · η_gemm · tile_efficiency)`` — ``η_gemm`` is what
    a large, well-shaped GEMM achieves (``peak`` / ``efficiency``: ``F_peak16`` / ``η_gemm16``
    for a GEMM an FP8 recipe keeps in BF16). Memory: reading both operands and writing the
    result once, ``q_a·count·(M·K + K·N + M·N) / W_hbm`` (roofline).
    """
    flops = 2 * rows * cols * inner * count
    memory = q_a * count * (rows * inner + inner * cols + rows * cols)
    return sympy.Max(flops / (peak * efficiency * tile_efficiency(rows, cols, count)), memory / W_hbm, evaluate=False)


def gemm_efficiency(plan) -> sympy.Expr:
    """``η_shape``: FLOP-weighted achieved fraction of peak over every GEMM of a training step.

    Sum over :func:`llmplan.formulas.flops.gemm_shapes` of each GEMM's forward pass (again
    with full recomputation, for the recomputed share of the layers and not for
    :func:`llmplan.formulas.flops.not_rerun_gemms`, and for the GEMMs selective recomputation
    repeats: :func:`recomputed_gemms`), its input-gradient pass and, for a trained weight, its
    weight-gradient pass: ``Σ F / (F_peak · Σ gemm_seconds)``. Under FP8 compute the GEMMs
    FP8 recipes keep in BF16 (:data:`FP8_EXCLUDED_GEMMS`: the output head and the MoE router)
    run at the BF16 peak and ``η_gemm16``, so η_shape is then the FP8-equivalent rate of the
    mix.
    """
    from .flops import not_rerun_gemms

    par, model = plan.parallelism, plan.model
    moe = model.moe if model.is_moe else None
    key = (
        model.mla is None,
        None if model.mla is None else model.mla.q_lora_rank is None,
        None if moe is None else moe.shared_experts > 0,
        model.gated,
        par.flash_attention,
        par.recompute == "full",
        par.partial_recompute,  # recompute_layers: the repeated forward weighted by the recomputed share
        not_rerun_gemms(plan),  # torch's non-reentrant checkpoint: the layers' last projections not rerun
        recomputed_gemms(plan),
        plan.method.adapter is None,
        par.pp_schedule == "dualpipe",
        plan.precision.dtype("compute") == "fp8",
    )
    eta = _GEMM_EFFICIENCY_CACHE.get(key)
    if eta is None:
        eta = _GEMM_EFFICIENCY_CACHE[key] = _gemm_efficiency(plan)
    return eta


def recomputed_gemms(plan) -> tuple[str, ...]:
    """Names of the :func:`llmplan.formulas.flops.gemm_shapes` GEMMs whose forward pass
    ``[parallelism] recompute_modules`` repeats (``mla_up_proj``, ``mlp``, ``shared_experts``)."""
    from .flops import RECOMPUTED_GEMMS

    return tuple(sorted(g for mod in plan.parallelism.selective_modules for g in RECOMPUTED_GEMMS.get(mod, ())))


#: η_shape depends on a few structural choices only (not on ZeRO, offload or most schedules):
#: built once per combination, so sweeps over structures do not rebuild it.
_GEMM_EFFICIENCY_CACHE: dict[tuple, sympy.Expr] = {}


def _gemm_efficiency(plan) -> sympy.Expr:
    from .flops import gemm_shapes

    par = plan.parallelism
    again = recomputed_gemms(plan)  # selective recomputation's GEMMs run their forward twice
    trained = plan.method.adapter is None
    fp8 = plan.precision.dtype("compute") == "fp8"
    flops_sum, seconds_sum = sympy.Integer(0), sympy.Integer(0)
    from .flops import full_recompute_share, not_rerun_gemms

    full = full_recompute_share(par)  # with recompute_layers, that share of the layers repeats its forward
    not_rerun = not_rerun_gemms(plan)  # framework = "hf": the layers' last projections
    for g in gemm_shapes(plan.model, flash=par.flash_attention):
        fwd_passes = 2 if g.name in again else 1 + (0 if g.name in not_rerun else full)
        # FP8 recipes keep the output head and the router in BF16
        rate = dict(peak=F_peak16, efficiency=eta_gemm16) if fp8 and g.name in FP8_EXCLUDED_GEMMS else {}
        for i, (M, Nn, K) in enumerate(g.passes(weight_grad=trained)):
            times = fwd_passes if i == 0 else 1
            flops_sum += times * g.per_micro_batch * 2 * M * Nn * K * g.count
            seconds_sum += times * g.per_micro_batch * gemm_seconds(M, Nn, K, g.count, **rate)
    eta = flops_sum / (F_peak * seconds_sum)
    if par.pp_schedule == "dualpipe":
        # the GEMMs' tiles are spread over the SMs communication leaves them
        from ..symbols import n_csm

        # unevaluated, as the expression was built: re-evaluating its Max and Piecewise
        # nodes takes seconds and changes no value
        with sympy.evaluate(False):
            eta = eta.xreplace({n_sm: n_sm - n_csm})
    return eta


#: GEMMs an FP8 recipe keeps in BF16 — not cast, and timed at the BF16 peak and ``η_gemm16``:
#: the MoE router (and Qwen2-MoE's shared-expert gate, a Linear(h, 1)) and the output head (DeepSeek-V3 report §3.3.1: embedding, output head, MoE
#: gating, normalisation and attention stay in higher precision; Megatron-LM's output layer is
#: not a Transformer Engine module; OLMo-core's ``Transformer.apply_fp8`` ignores
#: ``lm_head.w_out``; llm-foundry's tied head is a plain ``F.linear``).
FP8_EXCLUDED_GEMMS = frozenset({"router", "shared_gate", "lm_head"})

FP8_CAST = (
    "NVIDIA Transformer Engine: FP8 GEMMs on Hopper take both operands K-major, so each FP8 Linear "
    "casts its input and its output gradient to FP8 together with a transposed copy (cast_transpose), "
    "and its weight once per step (FP8 weight cache across micro-batches); DeepSeek-V3 report §3.5.2 "
    "(BF16 activations read from HBM, quantised, written back in FP8 and read again by the MMA)"
)


@formula("fp8_cast_bytes", FP8_CAST)
def fp8_cast_bytes(plan) -> sympy.Expr:
    """Device-memory bytes one GPU moves per step to cast FP8 GEMM operands (memory-bound kernels).

    For every weight GEMM of :func:`llmplan.formulas.flops.gemm_shapes` that runs in FP8
    (all but :data:`FP8_EXCLUDED_GEMMS`) on ``M`` rows, ``K`` inputs, ``N`` outputs and ``C``
    GEMMs side by side: per micro-batch its input (``M×K``) and its output gradient
    (``M×N``) are read in BF16 (2 bytes) and written in FP8 with a transposed copy
    (1 + 1 bytes) — ``4·C·M·(K + N)``; per step its weight likewise, ``4·C·K·N``. Summed
    over the stage's layers (the model's layers ÷ ``p``) and the ``m`` micro-batches.
    Approximations: a cast fused into the preceding norm (Transformer Engine's
    LayerNormLinear) saves part of one pass; under sequence parallelism the cast is of
    the gathered input (Transformer Engine casts before the gather, moving ``1/t`` of
    it); recomputed forward passes cast again and are not charged; amax/scale updates
    are not charged.
    """
    from .flops import gemm_shapes

    per_mb, per_step = sympy.Integer(0), sympy.Integer(0)
    for g in gemm_shapes(plan.model, flash=plan.parallelism.flash_attention):
        if not g.weight or g.name in FP8_EXCLUDED_GEMMS:
            continue
        per_mb += g.per_micro_batch * 4 * g.count * g.rows * (g.inner + g.cols)
        per_step += g.per_micro_batch * 4 * g.count * g.inner * g.cols
    return (m * per_mb + per_step) / p


def define(q: Definitions) -> None:
    """Add ``time.*`` quantities."""
    plan = q.plan
    mfu_override = plan.efficiency.mfu is not None
    if not plan.method.training:
        return
    F_step = q.ref("flops.per_step")
    model_step = q.ref("flops.per_token") * B * s
    if mfu_override:
        q.define("time.compute_seconds", "T_comp", model_step / (N * F_peak * eta), "s", "step time at the given MFU", "plan-format.md: [efficiency] mfu")
        q.define("time.bubble_seconds", "T_bubble", 0, "s", "included in the given MFU", "-")
        q.define("communication.exposed_seconds_per_step", "T_exposed", 0, "s", "included in the given MFU", "-")
        q.define("time.optimizer_seconds", "T_opt", 0, "s", "included in the given MFU", "-")
    else:
        from ..symbols import F_peak16, L
        from .flops import attention_core_per_token, flash_backward_recompute_per_token

        eta_shape = q.define(
            "time.gemm_efficiency",
            "eta_shape",
            gemm_efficiency(plan),
            "1",
            "achieved fraction of peak over the step's GEMMs: η_gemm × tile/wave quantisation, "
            "or the memory roofline where a GEMM is memory-bound",
            QUANTISATION,
        )
        if plan.parallelism.flash_attention:
            # the fused attention core: FLOPs counted in full (non-causal), of which a causal
            # kernel executes half, at the kernel's rate for its sequence length
            # (attention_efficiency: [efficiency] attention, else the kernel's measured
            # benchmark on the GPU). FP8 recipes keep it in BF16. docs/concepts.md
            from .flops import recompute_share

            # the attention core's forward runs again under selective (core_attn) or full
            # recomputation (for the recomputed share of the layers with recompute_layers)
            rec_core = 1 if "core_attn" in plan.parallelism.selective_modules else recompute_share(q)
            passes = 3 + rec_core
            core_tok = passes * attention_core_per_token(plan.model) + flash_backward_recompute_per_token(plan.model)
            core_layers = L
            if plan.method.trains_mtp(plan.model):  # the MTP modules' blocks have an attention core too
                from ..symbols import L_mtp

                core_layers = L + L_mtp
            F_core = core_layers * core_tok * B * s
            fp8 = plan.precision.dtype("compute") == "fp8"
            # the kernel executes half of the full count (the causal mask skips the rest) at η_attn
            eta_core = q.define(
                "time.attention_efficiency",
                "eta_core",
                attention_efficiency(),
                "1",
                "achieved fraction of the BF16 peak in the fused causal attention kernel at this "
                "plan's sequence length per kernel call (s ÷ cp), on the FLOPs it executes",
                ATTENTION_SOURCE,
            )
            core_rate = 2 * (F_peak16 if fp8 else F_peak) * eta_core
            compute = (F_step - F_core) / (N * F_peak * eta_shape) + F_core / (N * core_rate)
            compute_src = "GEMMs at η_shape, FlashAttention's fused causal core at time.attention_efficiency"
            if plan.precision.dtype("compute") == "fp8":
                compute_src += " of the BF16 peak (FP8 covers the GEMMs only: DeepSeek-V3 report §3.3)"
        else:
            compute = F_step / (N * F_peak * eta_shape)
            compute_src = "every matrix multiply, the unfused attention core's batched GEMMs included, at η_shape"
        iota = q.define(
            "time.stage_imbalance",
            "iota",
            stage_imbalance(plan, F_step / (B * s)),
            "1",
            "hardware FLOPs of the slowest pipeline stage over the average stage's: the fullest stage's "
            "layers, or the last stage's layers and the LM head (1 without a pipeline)",
            STAGES,
        )
        compute = compute * iota
        compute_src += "; × the slowest pipeline stage's share (time.stage_imbalance)"
        from ..symbols import L_max, kappa

        rec = plan.parallelism.recompute
        A0, A_rec = q.ref("memory.activations_per_layer_no_recompute"), q.ref("memory.activations_recomputed_per_layer")
        from .flops import recompute_share

        # the recomputed forward writes and reads its tensors again: every layer's (full; the
        # recomputed share with recompute_layers) or what selective recomputation drops
        recompute_passes = 2 * A_rec if rec == "selective" else 2 * A0 * recompute_share(q)
        q.define(
            "time.elementwise_seconds",
            "T_elem",
            m * L_max * (kappa * A0 + recompute_passes) / W_hbm,
            "s",
            "memory-bound kernels between the GEMMs: κ passes over every stored activation byte "
            "(+ the recomputed forward's write and read)",
            "memory-bandwidth roofline over the Korthikanti et al. 2022 activation tensors",
        )
        if plan.parallelism.pp_schedule == "dualpipe":  # the GEMMs run on the SMs communication leaves
            compute = compute * define_comm_sm_slowdown(q)
        compute = compute + q.ref("time.elementwise_seconds")
        if plan.precision.dtype("compute") == "fp8":
            q.define(
                "time.fp8_cast_seconds",
                "T_cast",
                fp8_cast_bytes(plan) / W_hbm,
                "s",
                "memory-bound casts of FP8 GEMM operands: inputs and output gradients (with transposed "
                "copies) every micro-batch, weights once per step",
                FP8_CAST,
            )
            compute = compute + q.ref("time.fp8_cast_seconds")
        T_comp = q.define(
            "time.compute_seconds",
            "T_comp",
            compute,
            "s",
            "compute time of one step at the achievable GEMM rate",
            compute_src,
        )
        if plan.parallelism.pp_schedule == "dualpipe":
            define_dualpipe_bubble(q, T_comp)
            overlapped = dualpipe_exposed(q, T_comp)
        else:
            if plan.parallelism.pp_schedule == "interleaved":
                # (p−1)/(v·m) holds for m ≥ p (Megatron-Core's only case); with fewer micro-batches
                # every forward runs first and the walk through the p·v virtual stages takes
                # (p·v + m − 1)(F + B) per chunk — checked against a dependency walk of the
                # schedule in tests/test_pipeline_schedule.py
                bubble = ((p - 1) + (v - 1) * sympy.Max(p - m, 0)) / (v * m)
                src = NARAYANAN + "; m < p: a walk of Megatron-Core's interleaved schedule"
            else:
                bubble, src = (p - 1) / (v * m), NARAYANAN
            q.define("time.bubble_seconds", "T_bubble", T_comp * bubble, "s", "pipeline bubble", src)
            overlapped = q.ref("communication.pp_seconds") + q.ref("communication.ep_seconds")
        overlapped = q.define(
            "communication.ep_pp_exposed_seconds",
            "T_eppx",
            overlapped,
            "s",
            "expert-parallel and pipeline traffic on the critical path (all of it, except what DualPipe's paired chunks hide)",
            "overlap model in llmplan.formulas.time",
        )
        T_dp = q.ref("communication.dp_seconds")
        T_cp = q.ref("communication.cp_seconds")
        # context-parallel K/V passes overlap the attention of the previous block (⅓ of the compute)
        T_cpx = q.define("communication.cp_exposed_seconds", "T_cpx", sympy.Max(0, T_cp - sympy.Rational(1, 3) * T_comp),
                         "s", "context-parallel traffic not hidden behind compute",
                         "overlap model in llmplan.formulas.time: K/V passes behind the attention compute")
        if plan.parallelism.tp_comm_overlap and plan.parallelism.sp:
            from .comm import TP_OVERLAP, tp_exposed_overlapped

            tp_x, tp_src = tp_exposed_overlapped(plan, eta_shape), TP_OVERLAP
        else:
            tp_x, tp_src = q.ref("communication.tp_seconds"), "overlap model in llmplan.formulas.time: TP on the critical path"
        T_tpx = q.define("communication.tp_exposed_seconds", "T_tpx", tp_x, "s",
                         "tensor-parallel traffic not hidden behind compute (all of it unless tp_comm_overlap)", tp_src)
        if not plan.parallelism.dp_overlap:
            # [parallelism] dp_overlap = false (Megatron's overlap_grad_reduce / overlap_param_gather
            # off, DeepSpeed's overlap_comm off): the reduction starts after the backward pass, the
            # gathers when their layer needs them — none of it hidden
            dp_exposed = T_dp
            dp_src = "[parallelism] dp_overlap = false: no data-parallel traffic hidden"
        else:
            # each part behind the pass it runs in (time.dp_exposed); a pass lasts its compute and
            # the traffic on its critical path (TP, CP, EP and PP exposed), which the
            # data-parallel streams overlap as well
            fwd_flops, bwd_flops, _ = dualpipe_chunk_flops(q)
            keys = ("communication.dp_forward_seconds", "communication.dp_step_grad_seconds",
                    "communication.dp_step_gather_seconds")
            # a part this layout does not have is 0 (its definition is), not its symbol, so
            # dp_exposed_seconds can drop its Max; the per-backward rest likewise
            T_f, T_g, T_u = (0 if q.items[k].expr == 0 else q.ref(k) for k in keys)
            rest = q.items["communication.dp_seconds"].expr - sum(q.items[k].expr for k in keys)
            T_b = 0 if rest == 0 else T_dp - T_f - T_g - T_u
            dp_exposed = dp_exposed_seconds(
                T_f, T_b, T_g, T_u, T_comp + T_tpx + T_cpx + overlapped, fwd_flops / (fwd_flops + bwd_flops), m,
            )
            dp_src = DP_OVERLAP
        T_dpx = q.define("communication.dp_exposed_seconds", "T_dpx", dp_exposed, "s",
                         "data-parallel traffic not hidden behind compute", dp_src)
        exposed = T_tpx + overlapped + T_dpx + T_cpx
        q.define(
            "communication.exposed_seconds_per_step",
            "T_exposed",
            exposed,
            "s",
            "communication not hidden behind compute",
            "overlap model in llmplan.formulas.comm",
        )
        define_comm_contention(q, T_dp, T_dpx, T_cp, T_cpx)
        P_state = q.ref("memory.params_on_gpu.trainable")
        zero = plan.parallelism.zero
        from ..symbols import n_sh

        owned = P_state / n_sh if zero >= 1 else P_state
        q.define(
            "time.optimizer_seconds",
            "T_opt",
            2 * (q_w + q_g + q_m + q_o) * owned / W_hbm,
            "s",
            "optimizer step: read and write each owned state byte once",
            "memory-bandwidth roofline",
        )
    parts = q.ref("time.compute_seconds") + q.ref("time.bubble_seconds") + q.ref("communication.exposed_seconds_per_step") + q.ref("time.optimizer_seconds")
    if not mfu_override:
        parts += q.ref("time.comm_contention_seconds")
    adapter = plan.method.adapter
    if adapter is not None and plan.method.base_bits == 4 and not mfu_override:
        from ..symbols import W_hbm as _W, q_base

        from .flops import recompute_share

        passes = 2 + recompute_share(q)  # + the recomputed forward (of the recomputed share of layers)
        frozen = q.ref("memory.params_on_gpu.dense")
        if plan.method.experts_quantized:  # 16-bit experts ([method.lora] quantize_experts) need no dequantisation
            frozen = frozen + q.ref("memory.params_on_gpu.experts")
        parts += q.define(
            "time.dequant_seconds",
            "T_deq",
            passes * m * frozen * (q_base + 2) / _W,
            "s",
            "NF4 → bf16 dequantisation of the base weights in every forward and backward pass",
            "memory-bandwidth roofline: read q_base, write 2 bytes per weight (Dettmers et al. 2023)",
        )
    step = q.define(
        "time.step_seconds",
        "T_step",
        parts,
        "s",
        "one optimizer step",
        NARAYANAN,
    )
    steps = q.define("time.steps", "n_steps", D / (B * s), "steps", "optimizer steps in the run", "tokens ÷ tokens per step")
    from ..symbols import goodput

    steady = q.define(
        "time.steady_seconds",
        "T_steady",
        steps * step,
        "s",
        "uninterrupted run time: steps × step time (the MFU basis)",
        NARAYANAN,
    )
    total = q.define(
        "time.total_seconds",
        "T_total",
        steady / goodput,
        "s",
        "wall-clock time of the run: the uninterrupted time ÷ goodput ([efficiency] goodput, default 1)",
        "goodput: the fraction of wall-clock time spent on productive steps (failures, restarts, checkpoints excluded)",
    )
    q.define("time.days", "T_days", total / 86400, "days", "wall-clock days", "-")
    q.define("time.gpu_hours", "GPU_h", total * N / 3600, "GPU·h", "GPU-hours", "-")
    q.define(
        "time.mfu",
        "MFU",
        q.ref("flops.total") / (steady * N * F_peak),
        "1",
        "model FLOPs utilisation: flops.total ÷ (time × GPUs × dense peak)",
        "Chowdhery et al. 2022 (PaLM) App. B; plan-format.md",
    )
    q.define(
        "time.hfu",
        "HFU",
        q.ref("flops.hardware_total") / (steady * N * F_peak),
        "1",
        "hardware FLOPs utilisation (recomputation included)",
        "Chowdhery et al. 2022 (PaLM) App. B",
    )
    q.define(
        "time.tflops_per_gpu",
        "X_gpu",
        q.ref("flops.hardware_total") / (steady * N) / 10**12,
        "TFLOP/s",
        "achieved hardware TFLOP/s per GPU (Narayanan et al.'s throughput metric)",
        "Narayanan et al. 2021 §5.1",
    )


# ---------------------------------------------------------------------------------------
# DualPipe (DeepSeek-V3 report, arXiv 2412.19437, §3.2.1–3.2.2, Table 2)
# ---------------------------------------------------------------------------------------

from . import formula as _formula

DUALPIPE = "DeepSeek-V3 report (arXiv 2412.19437) §3.2.1 and Table 2; deepseek-ai/DualPipe"


NCCL_SMS = (
    "NCCL: one CTA per channel on an SM of its own, not shared with compute kernels (NVIDIA/nccl "
    "issues #689, #1656); two CTAs per NVLink link to saturate it (NVIDIA/nccl#1703); at most "
    "MAXCHANNELS = 32 channels (NCCL src/include/device.h); two channels per NIC for network "
    "rings (NVIDIA/nccl#438)"
)


DP_OVERLAP = (
    "overlap model in llmplan.formulas.time: each data-parallel collective behind the pass it runs in — "
    "ZeRO-3 / FSDP prefetch each layer's gathers behind the compute of the same pass (FSDP forward_prefetch / "
    "backward_prefetch, DeepSpeed's prefetch bucket); accumulated gradients are reduced only in the last "
    "micro-batch's backward (torch DistributedDataParallel.no_sync; Megatron-Core's schedules.py runs every "
    "micro-batch but the last under no_sync_func); Megatron's overlap_param_gather gathers the updated parameters "
    "ahead of the next step's first forward"
)


@_formula("dp_exposed", DP_OVERLAP)
def dp_exposed_seconds(T_fwd, T_bwd, T_grad, T_gather, T_pass, f_fwd, m) -> sympy.Expr:
    """Data-parallel traffic left exposed: each part's time beyond the pass it overlaps.

    A step of ``m`` micro-batches spends ``T_pass`` on its critical path — the compute and
    the tensor-, context-, expert- and pipeline-parallel traffic left exposed, which the
    data-parallel streams overlap too — ``f_fwd`` of it in forward passes (the forward's
    FLOP share, recomputation counted in the backward: F ÷ (F + B) as
    :func:`dualpipe_chunk_flops` splits them), so one micro-batch's forward lasts
    ``f_fwd·T_pass/m`` and its backward ``(1 − f_fwd)·T_pass/m``. The traffic:

    - ``T_fwd`` (``communication.dp_forward_seconds``): ZeRO-3's and FSDP's parameter
      all-gathers, ``T_fwd/m`` ahead of every micro-batch's forward;
    - ``T_bwd``: what every micro-batch's backward sends (ZeRO-3's re-gathers and
      reduce-scatters, ZeRO-2's reduce-scatter, FSDP's replica all-reduce), ``T_bwd/m`` each;
    - ``T_grad`` (``communication.dp_step_grad_seconds``): gradients accumulated over the step,
      reduced during the last micro-batch's backward only (DDP's ``no_sync``, Megatron-Core);
    - ``T_gather`` (``communication.dp_step_gather_seconds``): the updated parameters (ZeRO-1/2),
      gathered during the next step's first forward (Megatron's ``overlap_param_gather``).

    Each micro-batch's pass hides what it carries; the first forward and the last backward
    carry the once-per-step parts as well. Approximations: every pass runs at the step's
    average rate, and the pipeline bubble hides nothing.
    """
    def passes(every, once, window):
        # (m − 1) passes carrying every/m each, and one carrying every/m + once; where a part
        # is absent (0 in the plan's structure) the sum is one Max — the same number, a
        # smaller expression for lambdify
        if once == 0:
            return 0 if every == 0 else sympy.Max(0, every - m * window)
        if every == 0:
            return sympy.Max(0, once - window)
        return (m - 1) * sympy.Max(0, every / m - window) + sympy.Max(0, every / m + once - window)

    return passes(T_fwd, T_gather, f_fwd * T_pass / m) + passes(T_bwd, T_grad, (1 - f_fwd) * T_pass / m)


@_formula("comm_contention", NCCL_SMS)
def comm_contention(T_dp, T_rep, T_dpx, T_cp, T_cpx) -> sympy.Expr:
    """Compute time lost to the SMs of hidden collectives: ``Σ n_x/n_sm × (hidden traffic of x)``.

    Data- and context-parallel collectives hidden behind compute still take SMs while they
    run — NCCL's CTAs do not share an SM with compute kernels — so the compute they overlap
    proceeds at ``(n_sm − n_x)/n_sm`` of its rate and the step grows by ``n_x/n_sm`` of the
    hidden time. ``n_x`` is NCCL's channel count for the collective's group
    (:func:`llmplan.bindings.ring_sms`): two per NVLink link up to 32 where the ring crosses
    NVLink (A100 24, H100 32, H800 16), two per NIC where it has one member per node. The
    hidden data-parallel time is ``T_dp − T_dpx`` (``communication.dp_exposed_seconds``), its
    shard-group part (``n_ccl``) counted first, hybrid sharding's replica all-reduce
    (``T_rep``, ``n_ccr``) in what is left; the context-parallel exchange's hidden time is
    ``T_cp − T_cpx`` (``communication.cp_exposed_seconds``, ``n_ccp``). Approximations: all of a collective's CTAs run for its whole
    duration; the memory bandwidth it uses is not charged; PP and EP traffic is exposed
    (no overlap, no contention), and so is TP's unless ``tp_comm_overlap``, whose
    copy-engine transfers take no SMs (:func:`llmplan.formulas.comm.tp_overlap_exposed`);
    under DualPipe the EP/PP kernels' SMs are ``time.comm_sm_slowdown``'s.
    """
    from ..symbols import n_ccl, n_ccp, n_ccr, n_sm

    hidden = T_dp - T_dpx
    T_main = T_dp - T_rep
    hidden_main = T_main - sympy.Max(0, T_main - hidden)
    hidden_rep = 0 if T_rep == 0 else hidden - hidden_main
    return (n_ccl * hidden_main + n_ccr * hidden_rep + n_ccp * (T_cp - T_cpx)) / n_sm


def define_comm_contention(q: Definitions, T_dp, T_dpx, T_cp, T_cpx) -> sympy.Symbol:
    """``time.comm_contention_seconds`` (:func:`comm_contention`), part of the step time."""
    par = q.plan.parallelism
    # without hybrid sharding the replica term is left out of the expression (faster to compile)
    T_rep = q.ref("communication.dp_replica_seconds") if par.dp_shard is not None and par.zero >= 1 else 0
    return q.define(
        "time.comm_contention_seconds",
        "T_ccl",
        comm_contention(T_dp, T_rep, T_dpx, T_cp, T_cpx),
        "s",
        "compute lost to the SMs that hidden data- and context-parallel collectives occupy",
        NCCL_SMS,
    )


def define_comm_sm_slowdown(q: Definitions) -> sympy.Symbol:
    """``time.comm_sm_slowdown`` = ``n_sm / (n_sm − n_csm)``: DualPipe's communication kernels
    occupy ``n_csm`` of the GPU's ``n_sm`` SMs (DeepSeek-V3: 20 of 132, report §3.2.2), so the
    GEMMs run at that fraction of the rate; 1 when the SM count is unknown (``n_csm`` = 0)."""
    from ..symbols import n_csm, n_sm

    return q.define(
        "time.comm_sm_slowdown",
        "s_csm",
        n_sm / (n_sm - n_csm),
        "1",
        "compute-time factor of the SMs dedicated to communication ([parallelism] comm_sms)",
        "DeepSeek-V3 report §3.2.2: 20 of the H800's 132 SMs run the all-to-all",
    )


def dualpipe_chunk_flops(q: Definitions) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
    """(F, B, W) per trained token: forward, full backward and weight-gradient FLOPs.

    The report's Table 2 uses *F* (a forward chunk), *B* (a **full** backward chunk: input
    and weight gradients — with B so defined its 1F1B bubble is (PP−1)(F+B)) and *W* (the
    weight-gradient part, which zero-bubble schedules defer). From llmplan's FLOP count:
    every linear layer's backward is an input-gradient and a weight-gradient GEMM, each as
    large as its forward; the attention core (``flops.attention_core_per_token``) has no
    weights, its backward (2 × forward) is all input gradient. So, per token, with ``F_lin``
    the forward FLOPs of the linear layers and ``F_core`` those of the attention cores:

    * F = ``F_lin + F_core`` = ``flops.forward_per_token`` (+ ``flops.mtp_forward_per_token``);
    * W = ``F_lin`` (LoRA: only the adapters have weight gradients, ``2·N_tr``);
    * B = ``flops.per_token + flops.recompute_per_token − F`` = ``2·F_lin + 2·F_core + R``:
      recomputation (selective, full, FlashAttention's ``QKᵀ``) runs in the backward pass
      and belongs to B.
    """
    plan = q.plan
    from ..symbols import L, L_mtp
    from .flops import attention_core_per_token

    fwd = q.ref("flops.forward_per_token")
    blocks = L
    if "flops.mtp_forward_per_token" in q.items:
        fwd = fwd + q.ref("flops.mtp_forward_per_token")
        blocks = L + L_mtp
    if plan.method.adapter is not None:
        from ..symbols import N_tr

        F, W = fwd + 2 * N_tr, 2 * N_tr
    else:
        F, W = fwd, fwd - blocks * attention_core_per_token(plan.model)
    B = q.ref("flops.per_token") + q.ref("flops.recompute_per_token") - F
    return F, B, W


@_formula("dualpipe_bubble", DUALPIPE)
def dualpipe_bubble(T_F, T_B, T_W) -> sympy.Expr:
    """DualPipe's bubble ``(p/2 − 1)·(F&B + B − 3W)`` (report Table 2), with ``F&B`` — two
    mutually overlapped forward and backward chunks — taken as ``F + B``: the overlap hides
    communication, and two chunks' compute on one GPU's SMs still takes the sum of their
    times (compute-bound). 1F1B's is ``(p − 1)·(F + B)``."""
    return (p / 2 - 1) * ((T_F + T_B) + T_B - 3 * T_W)


def define_dualpipe_bubble(q: Definitions, T_comp) -> None:
    """``time.chunk_{forward,backward,weight}_seconds`` and ``time.bubble_seconds`` under DualPipe.

    A chunk is one micro-batch through one stage, and every GPU runs ``m`` forward and ``m``
    backward chunks per step (each direction carries half of the micro-batches through one
    of its two stages), so ``T_comp = m·(F + B)`` as under 1F1B; F, B and W split ``T_comp/m``
    in the ratio of their FLOPs (:func:`dualpipe_chunk_flops`; each part taken to run at the
    step's average rate).
    """
    F, B, W = dualpipe_chunk_flops(q)
    chunk = T_comp / m
    src = DUALPIPE + "; F, B, W split T_comp/m in the ratio of their FLOPs"
    T_F = q.define("time.chunk_forward_seconds", "T_F", chunk * F / (F + B), "s",
                   "forward chunk: one micro-batch through one pipeline stage", src)
    T_B = q.define("time.chunk_backward_seconds", "T_B", chunk * B / (F + B), "s",
                   "full backward chunk (input and weight gradients, recomputation included)", src)
    T_W = q.define("time.chunk_weight_seconds", "T_W", chunk * W / (F + B), "s",
                   "the weight-gradient part of a backward chunk", src)
    q.define("time.bubble_seconds", "T_bubble", dualpipe_bubble(T_F, T_B, T_W), "s",
             "pipeline bubble of DualPipe: (p/2 − 1)(F&B + B − 3W), F&B = F + B", DUALPIPE)


def dualpipe_exposed(q: Definitions, T_comp) -> sympy.Expr:
    """Exposed expert-parallel and pipeline communication under DualPipe.

    DualPipe runs a forward chunk and a backward chunk as a pair and interleaves the
    all-to-all dispatch and combine and the pipeline sends of each with the computation of
    the other (report §3.2.1, Figure 4), so a pair takes ``max(compute, communication)``.
    In the reference schedule (deepseek-ai/DualPipe ``dualpipe.py``, steps 4 and 5) GPU 0
    runs ``n_pair = m − 3p/2 + 1`` overlapped pairs (one fewer when p = 2) out of its ``m``
    forward and ``m`` backward chunks; the others (warm-up, cool-down) run alone with their
    communication exposed. With ``φ = n_pair/m`` and per-step ``T_ep + T_pp``:

    ``exposed = φ·max(0, T_ep + T_pp − T_comp) + (1 − φ)·(T_ep + T_pp)``.
    """
    pairs = sympy.Piecewise((m - 3, sympy.Eq(p, 2)), (m - sympy.Rational(3, 2) * p + 1, True))
    phi = q.define(
        "communication.overlapped_fraction",
        "phi_ovl",
        sympy.Max(0, pairs) / m,
        "1",
        "fraction of GPU 0's chunks whose all-to-all and pipeline sends overlap the paired chunk's compute",
        DUALPIPE + " (the reference schedule's overlapped forward-backward pairs)",
    )
    T_ovl = q.ref("communication.ep_seconds") + q.ref("communication.pp_seconds")
    return phi * sympy.Max(0, T_ovl - T_comp) + (1 - phi) * T_ovl
