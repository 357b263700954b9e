"""Communication per step: the α–β model of each collective, on the link each group uses.

A collective over ``n`` GPUs moving a buffer of ``M`` bytes costs
``steps·α + volume/β`` where β is the per-direction bandwidth of the group's
slowest link (``W_tp``, ``W_dp`` … are bound per layout by
:func:`llmplan.bindings.plan_values`: a group inside the NVLink domain gets
NVLink, one that spans nodes gets the node's network share per GPU).

* ring all-reduce: ``2(n−1)`` steps, ``2(n−1)/n · M`` bytes sent per GPU;
* reduce-scatter and all-gather: ``(n−1)`` steps, ``(n−1)/n · M`` each;
* all-to-all: ``(n−1)`` steps, ``(n−1)/n · M``;
* point-to-point: 1 step, ``M``.

Sources: Thakur, Rabenseifner & Gropp 2005 (collective costs); Rajbhandari et
al. 2020 §7 (ZeRO-1/2 move what DP all-reduce moves, ZeRO-3 1.5×); Narayanan et
al. 2021 §3 (TP: 2 all-reduces per layer forward and 2 backward; PP: one
activation send per micro-batch and stage boundary, each way); Korthikanti et
al. 2022 §4.2.2 (SP turns each all-reduce into reduce-scatter + all-gather of the
same volume); Lepikhin et al. 2020 (EP: dispatch and combine all-to-all forward,
again backward); Liu et al. 2023 ring attention (CP passes K/V around the ring).

Overlap (explicit, applied in :mod:`llmplan.formulas.time`): DP gradient traffic hides
behind the backward pass (bucketed all-reduce / reduce-scatter, PyTorch DDP and
Megatron's overlap_grad_reduce) and only the part longer than the backward compute is
exposed (all of it with ``[parallelism] dp_overlap = false``); CP's K/V passes hide
behind the attention compute of the previous block; TP traffic is on the critical path
unless ``tp_comm_overlap`` runs each collective under its GEMM
(:func:`tp_exposed_overlapped`); EP and PP traffic is on the critical path, as in
Megatron-LM without communication overlap tuning — except under DualPipe, where it
overlaps the paired chunk's compute (:func:`llmplan.formulas.time.dualpipe_exposed`).

Models with routing groups (``[model.moe] route_groups``) use DeepSeek-V3's
node-limited dispatch (:func:`group_limited_all_to_all`; report §2.1.2, §3.2.2).
"""

from __future__ import annotations

import sympy

from ..symbols import (
    L,
    L_moe,
    L_max,
    P_max,  # noqa: F401
    a_kv,
    alpha_cp,
    alpha_dp,
    alpha_rep,
    alpha_ep,
    alpha_pp,
    alpha_tp,
    b,
    c,
    d,
    e,
    h,
    k,
    m,
    n_dp,
    n_sh,
    p,
    q_a,
    q_g,
    q_w,
    s,
    t,
    v,
    W_cp,
    W_dp,
    W_rep,
    W_ep,
    W_pp,
    W_tp,
)
from . import Definitions, formula

SRC = "α–β model: Thakur et al. 2005; volumes per ZeRO §7, Megatron-LM §3, Korthikanti §4.2.2, GShard"


@formula("ring_allreduce_bytes", "ring all-reduce sends 2(n−1)/n of the buffer per GPU")
def ring_allreduce_bytes(n, size) -> sympy.Expr:
    """Bytes one GPU sends in a ring all-reduce of ``size`` bytes over ``n`` GPUs."""
    return 2 * (n - 1) / n * size


@formula("ring_allreduce_seconds", "2(n−1) steps of α plus 2(n−1)/n·M/β")
def ring_allreduce_seconds(n, size, alpha, bw) -> sympy.Expr:
    """α–β time of a ring all-reduce."""
    return 2 * (n - 1) * alpha + ring_allreduce_bytes(n, size) / bw


def _gather_seconds(n, size, alpha, bw) -> sympy.Expr:
    """Reduce-scatter, all-gather or all-to-all: (n−1) steps, (n−1)/n of the buffer."""
    return (n - 1) * alpha + (n - 1) / n * size / bw


TP_OVERLAP = (
    "Transformer Engine's userbuffers communication–GEMM overlap (Megatron-LM --tp-comm-overlap, "
    "NeMo/Megatron-Bridge CommOverlapConfig.tp_comm_overlap; ring-exchange method: the GEMM split into "
    "t chunks, each chunk's transfer under the previous chunk's GEMM), the decomposition of Wang et al. "
    "2023, 'Overlap Communication with Dependent Computation via Decomposition in Large Deep Learning "
    "Models' (ASPLOS '23)"
)


@formula("tp_overlap_exposed", TP_OVERLAP)
def tp_overlap_exposed(T_c, T_g, n) -> sympy.Expr:
    """Exposed time of one all-gather (or reduce-scatter) of ``n`` ranks run chunk by chunk
    under the GEMM it feeds (drains): ``max(0, T_c − (n−1)/n · T_g)``.

    The GEMM of time ``T_g`` is split into ``n`` chunks along the gathered (scattered)
    sequence; the chunk the GPU already holds runs first, and each of the ``n − 1``
    transfers (``T_c/(n−1)`` each) runs under one of the other chunks' GEMMs. The
    schedule takes ``T_g/n + (n−1)·max(T_g/n, T_c/(n−1))``: the collective is hidden
    until it is longer than ``(n−1)/n`` of its GEMM. The reduce-scatter's partial
    results travel the same ring in the other order, with the same count. Approximations:
    the chunked GEMMs are taken to run at the whole GEMM's rate, and the copy-engine
    transfers to take no SMs or memory bandwidth from it.
    """
    return sympy.Max(0, T_c - (n - 1) / n * T_g)


#: the GEMMs an attention block's sequence-parallel all-gather feeds (every projection of
#: the gathered input: fused QKV, or MLA's down- and up-projections) and the one its
#: reduce-scatter drains (the output projection); the dense MLP's: up (gate and up fused) / down
TP_OVERLAP_GEMMS = {
    "attention": (("qkv", "q", "q_down", "q_up", "kv_down", "kv_up"), ("attn_out",)),
    "mlp": (("mlp_up",), ("mlp_down",)),
}


def tp_exposed_overlapped(plan, eta_shape) -> sympy.Expr:
    """Tensor-parallel seconds per step left exposed under ``tp_comm_overlap``.

    Per layer, micro-batch and pass (the forward, the recomputed forward under full
    recomputation, the backward) each half of the block has one all-gather and one
    reduce-scatter of ``q_a·s·b·h/c`` bytes over ``t`` ranks (the sequence-parallel pair
    ``communication.tp_seconds`` counts as one all-reduce). In the forward the all-gather
    feeds the column-parallel GEMMs and the reduce-scatter drains the row-parallel one; in
    the backward the output gradient's all-gather feeds the row-parallel GEMM's data
    gradient and the input gradient's reduce-scatter runs under the column-parallel GEMMs'
    weight gradient — the same pairs, each GEMM taking its forward time. Each collective is
    exposed as :func:`tp_overlap_exposed` says, the GEMMs timed at ``η_shape``
    (``time.gemm_efficiency``). The MLP half of an MoE model (its token dispatch) is not
    overlapped and counts in full.
    """
    from ..symbols import F_peak
    from .flops import gemm_shapes

    par, model = plan.parallelism, plan.model
    shapes = {g.name: g for g in gemm_shapes(model, flash=par.flash_attention) if g.weight}

    def seconds(names):
        return sum((2 * g.rows * g.cols * g.inner * g.count for n, g in shapes.items() if n in names),
                   sympy.Integer(0)) / (F_peak * eta_shape)

    T_op = _gather_seconds(t, q_a * s * b * h / c, alpha_tp, W_tp)  # one all-gather or reduce-scatter
    halves = [TP_OVERLAP_GEMMS["attention"]] + ([] if model.is_moe else [TP_OVERLAP_GEMMS["mlp"]])
    per_pass = sum((tp_overlap_exposed(T_op, seconds(feeds), t) + tp_overlap_exposed(T_op, seconds(drains), t)
                    for feeds, drains in halves), sympy.Integer(0))
    if model.is_moe:
        per_pass += 2 * T_op  # the MoE half's pair, exposed
    from .flops import full_recompute_share

    return m * L_max * (2 + full_recompute_share(par)) * per_pass


GROUP_LIMITED = "DeepSeek-V3 report (arXiv 2412.19437) §2.1.2 node-limited routing, §3.2.2 cross-node all-to-all"


@formula("group_limited_all_to_all", GROUP_LIMITED)
def group_limited_all_to_all(token_bytes) -> tuple[sympy.Expr, sympy.Expr]:
    """(bytes one GPU sends, seconds) of one dispatch (or combine) all-to-all under group-limited routing.

    ``token_bytes`` is one micro-batch's tokens on the GPU (``q_a·s·b·h/c``). Each token's
    ``k`` experts come from at most ``k_G`` of the ``G_r`` routing groups (HF ``topk_group``
    of ``n_group``). With experts placed on the expert-parallel ranks in order, a group
    covers ``n_epn/G_r`` whole nodes of the ``n_epn`` the EP group spans (or a node holds
    ``G_r/n_epn`` whole groups), so a token reaches at most
    ``n_dest = min(k, n_epn, k_G·max(1, n_epn/G_r))`` nodes. DeepSeek-V3's dispatch
    (report §3.2.2) sends a token **once per destination node** over InfiniBand, to the
    GPU with the same in-node index, which forwards it over NVLink to the GPUs holding its
    experts there. With routing spread evenly over nodes, the remote share of the
    destination nodes is ``(n_epn − 1)/n_epn``:

    * inter-node copies per token: ``n_dest·(n_epn − 1)/n_epn`` (DeepSeek-V3: 4 · 7/8 =
      3.5, instead of ``k·(e−1)/e`` = 7.9 per-expert copies), at ``W_ep`` (the network
      share per GPU);
    * intra-node copies per token: ``k·(n_epl − 1)/n_epl`` — each routed copy moves over
      NVLink unless its expert sits on the GPU it arrives at (``n_epl`` EP GPUs per node;
      copies to two experts on one GPU are not merged, an upper bound), at ``W_epl``;
    * the two run at once (the report's IB and NVLink "fully overlapped"): time =
      ``max(inter/W_ep, intra/W_epl)`` + ``(n_epn − 1)·α_ep + (n_epl − 1)·α_epl``.

    When the EP group fits in one node (``n_epn = 1``) this is the plain all-to-all of
    ``k`` copies, ``k·(e−1)/e``, on the intra-node link. Exact node counts when
    ``n_epn`` is a multiple or a divisor of ``G_r``; otherwise a group straddles two nodes
    and ``n_dest`` is an approximation (a plan warning says so).
    """
    from ..symbols import G_r, W_epl, alpha_epl, k_G, n_epl, n_epn

    n_dest = sympy.Min(k, n_epn, k_G * sympy.Max(1, n_epn / G_r))
    inter = n_dest * (n_epn - 1) / n_epn * token_bytes
    intra = k * (n_epl - 1) / n_epl * token_bytes
    seconds = sympy.Max(inter / W_ep, intra / W_epl) + (n_epn - 1) * alpha_ep + (n_epl - 1) * alpha_epl
    return inter + intra, seconds


def tp_backward_collectives(plan) -> int:
    """All-reduces per layer in the backward pass of tensor parallelism.

    Megatron-LM fuses Q, K and V into one column-parallel linear layer and the MLP's gate and
    up projections into another, so the backward all-reduces the input gradient twice per
    layer (Narayanan et al. 2021 §3); with sequence parallelism every framework gathers the
    block input once per half and reduce-scatters its gradient once (Korthikanti et al.
    2022 §4.2.2; measured for HF Llama layers under torchtitan's sequence-parallel plan).
    Without sequence parallelism, Hugging Face modules under PyTorch's
    ``ColwiseParallel`` / ``RowwiseParallel`` (transformers' own ``tp_plan``) keep the
    projections separate, and each column-parallel one all-reduces its own input gradient:
    q, k and v (one for a fused QKV class, two for MLA's ``q(_a)_proj`` and
    ``kv_a_proj_with_mqa``) plus gate and up (one without gating or with Phi-3's fused
    ``gate_up_proj``) — 5 for Llama, measured by
    ``tests/oracle/test_oracle_comm.py``. Routed experts are counted like a dense MLP.
    """
    par, model = plan.parallelism, plan.model
    if par.sp or par.framework != "hf":  # (tp = 1 moves nothing whatever the count)
        return 2
    from .adapters import FUSED_QKV_LINEARS

    fused = FUSED_QKV_LINEARS.get(model.hf_model_type or "", {})
    if model.mla is not None:
        attn = 2
    elif fused:
        attn = 1
    else:
        attn = 3
    return attn + (2 if model.gated and "gate_up_proj" not in fused else 1)


def gathered_weight_bytes(q) -> sympy.Expr:
    """Bytes of the stage's parameters as a ZeRO-3 / FSDP all-gather moves them: every
    parameter the GPU holds before sharding, at ``q_w`` — with a LoRA adapter, the frozen
    base in its stored format (``q_base``: NF4 for QLoRA; embeddings, and routed experts the
    loader leaves alone, at ``q_w``) and the adapters at ``q_w``, as
    ``memory.per_gpu.weights`` stores them."""
    plan = q.plan
    P_ne, P_ex = q.ref("memory.params_on_gpu.dense"), q.ref("memory.params_on_gpu.experts")
    if plan.method.adapter is None:
        return q_w * (P_ne + P_ex)
    from .memory import frozen_weight_bytes

    return frozen_weight_bytes(q, P_ne, P_ex) + q_w * q.ref("memory.params_on_gpu.trainable")


def mtp_moe_layers(plan) -> sympy.Expr:
    """MoE blocks of trained multi-token-prediction modules (``L_mtp`` when the modules are
    trained and their block is MoE, else 0); they dispatch like the model's MoE layers."""
    from ..symbols import L_mtp

    model = plan.model
    if not plan.method.trains_mtp(model) or not model.is_moe or (model.layers - 1) not in model.moe_layer_ids():
        return sympy.Integer(0)
    return L_mtp


def define(q: Definitions) -> None:
    """Add ``communication.*`` quantities (training plans)."""
    plan = q.plan
    model, par = plan.model, plan.parallelism
    if not plan.method.training:
        q.define("communication.per_step_bytes", "C_bytes", 0, "B", "no training step", "-")
        q.define("communication.exposed_seconds_per_step", "T_comm", 0, "s", "-", "-")
        return
    q.ref("memory.params_on_gpu.dense")
    q.ref("memory.params_on_gpu.experts")
    # --- data parallel: gradients (and ZeRO-3's parameter gathers) -------------------------
    # gradients are reduced in their dtype (q_g, trainable parameters only); parameters are
    # gathered as they are stored on the GPU (q_w; a LoRA base in its frozen format) —
    # separate terms, so a plan whose gradients are wider than its weights (FSDP's
    # reduce_dtype = fp32 with bf16 parameters) is priced as it runs
    # (tests/oracle/test_oracle_comm.py measures FSDP2's collectives)
    grad_buffer = q_g * q.ref("memory.params_on_gpu.trainable")
    update_buffer = q_w * q.ref("memory.params_on_gpu.trainable")  # the updated parameters (ZeRO-1/2)
    gather_buffer = gathered_weight_bytes(q)  # every parameter of the stage (ZeRO-3, FSDP)

    # ZeRO's collectives run over the shard group: all of dp (n_sh = n_dp) unless hybrid
    # sharding (dp_shard) keeps them inside groups of n_sh ranks
    def ring(size):
        return (n_sh - 1) / n_sh * size  # bytes a GPU sends in a reduce-scatter or all-gather

    def half(size):
        return _gather_seconds(n_sh, size, alpha_dp, W_dp)  # seconds of one of them

    # how the traffic falls over a step (time.dp_exposed hides each part behind its pass):
    # dp_forward runs in every micro-batch's forward; step_grad — gradients reduced once per
    # step — only in the last micro-batch's backward (DDP's no_sync and Megatron-Core's
    # schedules skip the reduction on the others); step_gather — the updated parameters,
    # gathered once per step — in the next step's first forward; the rest in every backward
    dp_forward = step_grad = step_gather = 0
    if par.zero == 3:
        # ZeRO-3 / FSDP FULL_SHARD frees the gathered parameters after use, so every
        # micro-batch all-gathers each layer in its forward and again in its backward and
        # reduce-scatters its gradients: 3 collectives per layer of (n−1)/n of the layer,
        # 1.5 all-reduces' worth of bytes per micro-batch when q_w = q_g (Rajbhandari et al. 2020 §7)
        per_micro = 2 * ring(gather_buffer) + ring(grad_buffer)
        dp_bytes = m * per_micro
        dp_time = m * (per_micro / W_dp + 3 * L_max * (n_sh - 1) * alpha_dp)
        # the forward pass's share: one all-gather per layer per micro-batch (the rest — the
        # backward's all-gathers and reduce-scatters — runs in the backward pass)
        dp_forward = m * (ring(gather_buffer) / W_dp + L_max * (n_sh - 1) * alpha_dp)
        dp_desc = "ZeRO-3 parameter all-gathers (forward and backward) and gradient reduce-scatters, every micro-batch"
    elif par.zero == 2 and par.sharding == "fsdp":
        # FSDP SHARD_GRAD_OP keeps the parameters sharded between steps: it all-gathers them
        # before every micro-batch's forward, keeps them through the backward and
        # reduce-scatters the gradients (torch.distributed.fsdp.ShardingStrategy docs;
        # FSDP2 reshard_after_forward=False, measured) — m all-gathers and m reduce-scatters
        dp_bytes = m * (ring(gather_buffer) + ring(grad_buffer))
        dp_time = m * (half(gather_buffer) + half(grad_buffer))
        dp_forward = m * half(gather_buffer)  # the gathers run ahead of each forward
        dp_desc = "FSDP SHARD_GRAD_OP: parameter all-gather and gradient reduce-scatter every micro-batch"
    elif par.zero == 2:
        # ZeRO-2 keeps only its shard of the gradients, so it cannot accumulate a full
        # gradient over micro-batches: every micro-batch's backward reduce-scatters
        # (Rajbhandari et al. 2020 §5.2), and the updated parameters are all-gathered once
        # per step — (m + 1) half all-reduces when q_w = q_g (one all-reduce when m = 1)
        dp_bytes = m * ring(grad_buffer) + ring(update_buffer)
        dp_time = m * half(grad_buffer) + half(update_buffer)
        step_gather = half(update_buffer)
        dp_desc = "ZeRO-2 gradient reduce-scatter every micro-batch, parameter all-gather once per step"
    elif par.zero == 1:
        # ZeRO-1 / Megatron's distributed optimizer: the accumulated gradients are
        # reduce-scattered once per step, the updated parameter shards all-gathered
        dp_bytes = ring(grad_buffer) + ring(update_buffer)
        dp_time = half(grad_buffer) + half(update_buffer)
        step_grad, step_gather = half(grad_buffer), half(update_buffer)
        dp_desc = "ZeRO-1: gradient reduce-scatter and parameter all-gather, once per step"
    else:
        dp_bytes = ring_allreduce_bytes(n_dp, grad_buffer)
        dp_time = ring_allreduce_seconds(n_dp, grad_buffer, alpha_dp, W_dp)
        step_grad = dp_time
        dp_desc = "data-parallel gradient all-reduce, once per step"
    rep_time = 0  # hybrid sharding's replica all-reduce, kept apart for time.comm_contention
    if par.dp_shard is not None and par.zero >= 1:
        # hybrid sharding: each shard group holds a full copy of the states, so the gradient
        # shards are all-reduced across the n_dp/n_sh replicas — every micro-batch under FSDP2
        # (HSDP's default: tests/oracle/test_oracle_comm.py), once per step for accumulated
        # gradients (Megatron's distributed-optimizer instances, DeepSpeed MiCS)
        # (FSDP all-reduces each unit — each layer — on its own: L_max collectives' latency)
        fsdp = par.sharding == "fsdp"
        times, pieces = (m, L_max) if fsdp else (1, 1)
        n_rep = n_dp / n_sh
        dp_bytes += times * ring_allreduce_bytes(n_rep, grad_buffer / n_sh)
        rep_time = times * pieces * ring_allreduce_seconds(n_rep, grad_buffer / (n_sh * pieces), alpha_rep, W_rep)
        dp_time += rep_time
        if not fsdp:
            step_grad += rep_time  # accumulated gradients: reduced across the replicas once, at the end
        dp_desc += "; hybrid sharding: gradient shards all-reduced across the replicas" + (
            " every micro-batch, layer by layer" if fsdp else " once per step")
    q.define("communication.dp_replica_seconds", "T_rep", rep_time, "s",
             "the part of the data-parallel time that is hybrid sharding's replica all-reduce (0 without it)", SRC)
    q.define("communication.dp_forward_seconds", "T_dpf", dp_forward, "s",
             "the part of the data-parallel time that runs in every micro-batch's forward pass (ZeRO-3's and FSDP "
             "SHARD_GRAD_OP's parameter all-gathers; 0 otherwise)", SRC)
    q.define("communication.dp_step_grad_seconds", "T_dpg", step_grad, "s",
             "the part of the data-parallel time that reduces gradients accumulated over the step (ZeRO-0/1, hybrid "
             "sharding's replica all-reduce outside FSDP): it runs in the last micro-batch's backward pass", SRC)
    q.define("communication.dp_step_gather_seconds", "T_dpu", step_gather, "s",
             "the part of the data-parallel time that all-gathers the updated parameters once per step (ZeRO-1/2): "
             "it runs ahead of the next step's first forward pass", SRC)
    T_dp = q.define("communication.dp_seconds", "T_dp", dp_time, "s", dp_desc, SRC)
    q.define("communication.dp_bytes", "C_dp", dp_bytes, "B", "bytes a GPU sends for DP per step", SRC)
    # --- tensor parallel: per layer, per micro-batch -----------------------------------------
    act = q_a * s * b * h / c
    from .flops import not_rerun_gemms, recompute_share

    # two all-reduces (or RS+AG pairs) per pass: after the attention and MLP output
    # projections forward, before the fused QKV and FC1 backward (Megatron-LM); the
    # recomputed forward repeats them for the recomputed layers
    rerun = sympy.Integer(2)
    if "mlp_down" in not_rerun_gemms(plan):
        # torch's non-reentrant checkpoint stops before the down projection, and so before its
        # all-reduce (with SP: its reduce-scatter, half a pair), in the dense-MLP layers
        from ..symbols import L_dense

        dense = L_dense / L if model.is_moe else 1
        rerun -= (sympy.Rational(1, 2) if par.sp else 1) * dense
    n_coll = 2 + rerun * recompute_share(q) + tp_backward_collectives(plan)
    tp_bytes = n_coll * L_max * m * ring_allreduce_bytes(t, act)
    tp_time = n_coll * L_max * m * ring_allreduce_seconds(t, act, alpha_tp, W_tp)
    T_tp = q.define("communication.tp_seconds", "T_tp", tp_time, "s", "tensor-parallel collectives per step", SRC)
    q.define("communication.tp_bytes", "C_tp", tp_bytes, "B", "bytes a GPU sends for TP per step", SRC)
    # --- pipeline parallel: activations forward, gradients backward -------------------------
    # each tensor-parallel rank sends 1/t of the boundary tensor: with sequence parallelism it
    # holds only that; without it Megatron-LM scatters the (replicated) tensor over the t
    # ranks' links and all-gathers it over the TP group on the receiving stage (Narayanan et
    # al. 2021 §4.1, "scatter/gather communication optimization"; Megatron-LM's default,
    # --no-scatter-gather-tensors-in-pipeline turns it off). Other frameworks send it whole.
    scatter = par.sp or par.framework == "megatron"
    regathered = scatter and not par.sp  # the receiving stage all-gathers the replicated tensor
    p2p = act / t if scatter else act
    regather = _gather_seconds(t, act, alpha_tp, W_tp) if regathered else 0
    regather_bytes = (t - 1) / t * act if regathered else 0
    pp_msgs = 2 * m * v
    pp_bytes = sympy.Piecewise((0, sympy.Eq(p, 1)), (pp_msgs * (p2p + regather_bytes), True))
    pp_time = sympy.Piecewise((0, sympy.Eq(p, 1)), (pp_msgs * (alpha_pp + p2p / W_pp + regather), True))
    T_pp = q.define("communication.pp_seconds", "T_pp", pp_time, "s", "pipeline sends per step (first stage)", SRC)
    # --- expert parallel: dispatch + combine, forward and backward --------------------------
    if model.is_moe:
        # with sequence parallelism each TP rank holds s/t of the tokens and dispatches only
        # those (Megatron-Core's all-to-all dispatcher requires SP for MoE with TP > 1)
        token_bytes = act / t if par.sp else act
        if plan.precision.dtype("compute") == "fp8":
            # forward dispatch in FP8, combine and backward in BF16 (DeepSeek-V3 report §3.3.2)
            token_bytes = token_bytes * sympy.Rational(7, 8)
        moe_layers_on_stage = L_max * (L_moe + mtp_moe_layers(plan)) / L
        if model.moe.route_groups is not None:  # type: ignore[attr-defined]
            one_bytes, one_time = group_limited_all_to_all(token_bytes)
            ep_bytes = 4 * moe_layers_on_stage * m * one_bytes
            ep_time = 4 * moe_layers_on_stage * m * one_time
        else:
            # NCCL's all-to-all: each of the k copies sent on its own, every byte at the EP group's
            # slowest link — across nodes one NIC's share, NVLink peers included: all-to-all cannot
            # aggregate several NICs, its bus bandwidth is one NIC's (NVIDIA/nccl-tests#267)
            routed = k * token_bytes  # each token goes to k experts
            ep_bytes = 4 * moe_layers_on_stage * m * (e - 1) / e * routed
            ep_time = 4 * moe_layers_on_stage * m * _gather_seconds(e, routed, alpha_ep, W_ep)
    else:
        ep_bytes = ep_time = sympy.Integer(0)
    T_ep = q.define("communication.ep_seconds", "T_ep", ep_time, "s", "expert-parallel all-to-all per step", SRC)
    # --- context parallel: K and V around the ring ------------------------------------------
    if par.cp > 1:
        kv = 2 * q_a * s * b * a_kv * d / (c * t)
        cp_bytes = 3 * L_max * m * (c - 1) * kv
        cp_time = 3 * L_max * m * (c - 1) * (alpha_cp + kv / W_cp)
    else:
        cp_bytes = cp_time = sympy.Integer(0)
    T_cp = q.define("communication.cp_seconds", "T_cp", cp_time, "s", "context-parallel K/V ring passes per step", SRC)
    q.define(
        "communication.per_step_bytes",
        "C_bytes",
        dp_bytes + tp_bytes + pp_bytes + ep_bytes + cp_bytes,
        "B",
        "bytes sent by the most loaded GPU per step",
        SRC,
    )
    # exposure is defined in time.py, where the compute it hides behind is known
    q.define("communication.seconds_per_step", "T_comm_all", T_dp + T_tp + T_pp + T_ep + T_cp, "s", "all communication time per step", SRC)
