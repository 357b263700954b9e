"""Time: step time from compute, pipeline bubble, exposed communication and the optimizer step.

``T_step = T_comp + T_bubble + T_exposed + T_opt`` where

* ``T_comp = F_step / (N · F_peak · η_gemm)`` — hardware FLOPs of the step over the
  cluster's achievable rate (``η_gemm``: llmplan's efficiency model, documented in
  ``docs/concepts.md#efficiency``);
* ``T_bubble = T_comp · (p−1)/(v·m)`` — the 1F1B pipeline bubble with ``v``
  interleaved chunks (Narayanan et al. 2021 §2.2.1–2.2.2; GPipe the same with v = 1);
  DualPipe's ``(p/2 − 1)(F&B + B − 3W)`` (DeepSeek-V3 report Table 2,
  :func:`define_dualpipe_bubble`), which also overlaps EP and PP traffic with compute
  (:func:`dualpipe_exposed`) and gives ``comm_sms`` SMs to communication;
* ``T_exposed`` — TP, PP and EP traffic in full, DP traffic beyond the backward pass
  it overlaps (2/3 of ``T_comp``), CP traffic beyond the attention compute;
* ``T_opt`` — the optimizer reads and writes every state byte it owns once
  (memory-bandwidth bound).

With ``[efficiency] mfu = x`` the whole step is instead
``F_model_step / (N · F_peak · x)``, as the contract defines.
Total time = steps × step time, steps = D / (B·s).
"""

from __future__ import annotations

import sympy

from ..symbols import B, D, N, W_hbm, eta, eta_gemm, m, p, q_g, q_m, q_o, q_w, s, v, F_peak  # noqa: F401
from . import Definitions

NARAYANAN = "Narayanan et al. 2021 §2.2 (bubble (p−1)/(v·m)), eq. (4)"


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
        if plan.precision.dtype("compute") == "fp8":
            # FP8 covers the GEMMs; the attention core (QKᵀ, ·V) stays in BF16
            from ..symbols import F_peak16, L
            from .flops import attention_core_per_token

            passes = 3 + (1 if plan.parallelism.recompute in ("selective", "full") else 0)
            F_core = passes * L * attention_core_per_token(plan.model) * B * s
            compute = (F_step - F_core) / (N * F_peak * eta_gemm) + F_core / (N * F_peak16 * eta_gemm)
            compute_src = "FP8 GEMMs at the FP8 peak, attention core at the BF16 peak (DeepSeek-V3 report §3.3)"
        else:
            compute = F_step / (N * F_peak * eta_gemm)
            compute_src = "hardware FLOPs ÷ (GPUs × peak × η_gemm)"
        from ..symbols import L_s, kappa

        rec = plan.parallelism.recompute
        A0, A = q.ref("memory.activations_per_layer_no_recompute"), q.ref("memory.activations_per_layer")
        recompute_passes = {"none": 0, "selective": 2 * (A0 - A), "full": 2 * A0}[rec]
        q.define(
            "time.elementwise_seconds",
            "T_elem",
            m * L_s * (kappa * A0 + recompute_passes) / W_hbm,
            "s",
            "memory-bound kernels between the GEMMs: κ passes over every stored activation byte "
            "(+ the recomputed forward's write and read)",
            "memory-bandwidth roofline over the Korthikanti et al. 2022 activation tensors",
        )
        if plan.parallelism.pp_schedule == "dualpipe":  # the GEMMs run on the SMs communication leaves
            compute = compute * define_comm_sm_slowdown(q)
        compute = compute + q.ref("time.elementwise_seconds")
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
            q.define("time.bubble_seconds", "T_bubble", T_comp * (p - 1) / (v * m), "s", "pipeline bubble", NARAYANAN)
            overlapped = q.ref("communication.pp_seconds") + q.ref("communication.ep_seconds")
        T_dp = q.ref("communication.dp_seconds")
        T_cp = q.ref("communication.cp_seconds")
        exposed = (
            q.ref("communication.tp_seconds")
            + overlapped
            + sympy.Max(0, T_dp - sympy.Rational(2, 3) * T_comp)
            + sympy.Max(0, T_cp - sympy.Rational(1, 3) * T_comp)
        )
        q.define(
            "communication.exposed_seconds_per_step",
            "T_exposed",
            exposed,
            "s",
            "communication not hidden behind compute",
            "overlap model in llmplan.formulas.comm",
        )
        P_state = q.ref("memory.params_on_gpu.trainable")
        zero = plan.parallelism.zero
        from ..symbols import n_dp

        owned = P_state / n_dp if zero >= 1 else P_state
        q.define(
            "time.optimizer_seconds",
            "T_opt",
            2 * (q_w + q_g + q_m + q_o) * owned / W_hbm,
            "s",
            "optimizer step: read and write each owned state byte once",
            "memory-bandwidth roofline",
        )
    parts = q.ref("time.compute_seconds") + q.ref("time.bubble_seconds") + q.ref("communication.exposed_seconds_per_step") + q.ref("time.optimizer_seconds")
    adapter = plan.method.adapter
    if adapter is not None and plan.method.base_bits == 4 and not mfu_override:
        from ..symbols import W_hbm as _W, q_base

        passes = 3 if plan.parallelism.recompute == "full" else 2
        frozen = q.ref("memory.params_on_gpu.dense") + q.ref("memory.params_on_gpu.experts")
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
