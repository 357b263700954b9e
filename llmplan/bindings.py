"""Binding plan objects to symbol values, and fast numeric evaluation.

:func:`model_values` maps the symbols of :mod:`llmplan.symbols` to a model's
numbers. :func:`evaluate` turns an expression into a number through a cached
``sympy.lambdify``: the first call for an expression compiles it, later calls
are plain Python (or numpy, when the bound values are arrays — a sweep over
thousands of layouts is one vectorised call).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import sympy

from . import symbols as S
from .model import Model

__all__ = ["model_values", "evaluate", "compile_expr"]


def model_values(model: Model) -> dict[sympy.Symbol, int]:
    """Values of every model-shape symbol for ``model`` (unused ones get 1)."""
    vals: dict[sympy.Symbol, int] = {
        S.L: model.layers,
        S.h: model.hidden,
        S.a: model.heads,
        S.a_kv: model.n_kv_heads,
        S.d: model.d_head,
        S.f: model.ffn,
        S.V: model.vocab,
        S.P_max: model.max_positions or 1,
        S.L_moe: model.n_moe_layers,
        S.L_dense: model.n_dense_layers,
        S.L_mtp: model.mtp_layers,
        S.W_win: model.sliding_window or 1,
        S.L_win: model.n_sliding_layers,
        S.E: 1,
        S.k: 1,
        S.E_s: 0,
        S.f_e: 1,
        S.f_s: 1,
        S.r_q: 1,
        S.r_kv: 1,
        S.d_nope: 1,
        S.d_rope: 1,
        S.d_v: 1,
        S.G_r: 1,
        S.k_G: 1,
    }
    if model.is_moe:
        moe = model.moe  # type: ignore[attr-defined]
        vals.update(
            {
                S.E: moe.experts,
                S.k: moe.top_k,
                S.E_s: moe.shared_experts,
                S.f_e: model.expert_ffn,  # type: ignore[attr-defined]
                S.f_s: model.shared_ffn,  # type: ignore[attr-defined]
                # group-limited routing (DeepSeek-V3 §2.1.2); 1 of 1 group = no limit
                S.G_r: moe.route_groups or 1,
                S.k_G: moe.route_groups_per_token or 1,
            }
        )
    if model.mla is not None:
        mla = model.mla
        vals.update(
            {
                S.r_q: mla.q_lora_rank or 1,
                S.r_kv: mla.kv_lora_rank,
                S.d_nope: mla.qk_nope_head_dim,
                S.d_rope: mla.qk_rope_head_dim,
                S.d_v: mla.v_head_dim,
            }
        )
    return vals


@lru_cache(maxsize=4096)
def compile_expr(expr: sympy.Expr, args: tuple[sympy.Symbol, ...]):
    """``lambdify`` once per (expression, argument order) to plain Python (exact on ints).

    Array inputs go through :func:`llmplan.sweep.sweep`, which compiles for numpy.
    """
    return sympy.lambdify(args, expr, modules="math", cse=use_cse(expr))


def use_cse(expr: sympy.Expr) -> bool:
    """Common-subexpression elimination pays for ordinary formulas; for the GEMM-shape
    efficiency (thousands of operations over tile and wave counts) it triples the compile
    time for little gain, so expressions with rounding steps compile without it."""
    from .formulas.time import _Step

    return not expr.has(_Step)


@lru_cache(maxsize=8192)
def _free(expr: sympy.Expr) -> tuple[sympy.Symbol, ...]:
    """The free symbols of ``expr`` in name order (cached: walking a large tree is slow)."""
    return tuple(sorted(expr.free_symbols, key=lambda s: s.name))


def evaluate(expr: sympy.Expr, values: Mapping[sympy.Symbol, Any]) -> Any:
    """Numeric value of ``expr`` with ``values`` bound (cached lambdify).

    Integer-valued inputs and integer coefficients give exact Python ints.
    """
    expr = sympy.sympify(expr)
    free = _free(expr)
    if not free:
        value = expr
        return int(value) if value.is_Integer else float(value)
    missing = [s.name for s in free if s not in values]
    if missing:
        raise KeyError(f"no value bound for symbol(s) {', '.join(missing)}")
    fn = compile_expr(expr, free)
    return fn(*(values[s] for s in free))


# ---------------------------------------------------------------------------------------
# a whole plan
# ---------------------------------------------------------------------------------------


def _link_for_span(plan, span: int) -> tuple[float, float]:
    """(bandwidth B/s per direction × efficiency, latency s) for a group spanning ``span`` consecutive GPUs."""
    cl = plan.cluster
    if span <= 1:
        return float("inf"), 0.0
    if span <= cl.nvlink_domain and span <= max(cl.per_node, cl.nvlink_domain):
        link = cl.intra_link
        return link.bandwidth * link.efficiency, link.latency
    if span <= cl.per_node:
        from . import catalog

        pcie = catalog.default().link("pcie5" if cl.gpu.arch.lower().startswith(("hopper", "blackwell", "cdna")) else "pcie4")
        return pcie.bandwidth * pcie.efficiency, pcie.latency
    net = cl.inter_link
    per_gpu = net.bandwidth * cl.nics / cl.per_node
    return per_gpu * net.efficiency, net.latency


def ring_members_per_node(per_node: int, stride: Any, size: Any) -> Any:
    """Members a group of ``size`` ranks ``stride`` apart has on each node (numpy arrays allowed)."""
    import numpy as np

    return np.where(stride >= per_node, 1, np.minimum(size, per_node // np.maximum(stride, 1)))


def ring_link(plan, stride: Any, size: Any) -> tuple[Any, Any]:
    """(bandwidth B/s × efficiency, latency s) of a ring collective — all-reduce, reduce-scatter,
    all-gather — over ``size`` ranks ``stride`` apart (tp: stride 1; dp: stride tp·cp);
    numbers or numpy arrays (sweeps).

    A group inside a node uses :func:`_link_for_span`. A group across nodes with ``g > 1``
    members on each node runs ``g`` rings side by side (NCCL builds one ring per
    channel, each leaving the node through its own rail NIC; consecutive ranks of a ring
    are NVLink neighbours): the inter-node share is ``g`` GPUs' NIC bandwidth, capped by
    the intra-node link the rings also cross — ``min(g · W_net/GPU, W_intra)``. With one
    member per node (tp·cp fills the node) this is the per-GPU network share. The
    node-aggregate figure is what nccl-tests reports as multi-node all-reduce bus
    bandwidth (NVIDIA/nccl-tests#119: ~96 GB/s on an 8-GPU node with 4 × 200 Gb/s HDR,
    the node's 100 GB/s, not the 12.5 GB/s of one GPU's share). All-to-all and
    point-to-point traffic (EP, CP, PP) do not aggregate: every GPU's bytes leave
    through its own share.
    """
    import numpy as np

    per_node = plan.cluster.per_node
    scalar = np.ndim(stride) == 0 and np.ndim(size) == 0
    stride, size = np.asarray(stride), np.asarray(size)
    if scalar:
        link = lambda span: _link_for_span(plan, int(span))  # noqa: E731
    else:
        from .sweep import _link_arrays

        link = lambda span: _link_arrays(plan, np.broadcast_to(span, np.broadcast(stride, size).shape))  # noqa: E731
    bw, alpha = link(stride * size)
    local = ring_members_per_node(per_node, stride, size)
    intra, _ = link(stride * local)
    across = (stride * size > per_node) & (local > 1)
    bw = np.where(across, np.minimum(local * bw, intra), bw)
    return (float(bw), float(alpha)) if scalar else (bw, alpha)


def ep_node_layout(plan, tp: Any = None, cp: Any = None, ep: Any = None) -> tuple[Any, Any]:
    """(nodes the expert-parallel group spans, its GPUs per node) — numbers or numpy arrays.

    Ranks are laid out tp → cp → ep (Megatron-LM): an EP group's ranks are ``tp·cp`` apart,
    so it spans ``min(ep, ⌈tp·cp·ep / gpus_per_node⌉)`` nodes with ``ep ÷ nodes`` of its
    GPUs on each (1 when ``tp·cp`` fills a node).
    """
    import numpy as np

    par, per_node = plan.parallelism, plan.cluster.per_node
    tp = par.tp if tp is None else tp
    cp = par.cp if cp is None else cp
    ep = par.ep if ep is None else ep
    nodes = np.minimum(ep, -(-(tp * cp * ep) // per_node))
    local = np.maximum(1, ep // nodes)
    if np.ndim(nodes) == 0:
        return int(nodes), int(local)
    return nodes, local


#: NCCL's channel limit (MAXCHANNELS in NCCL's src/include/device.h)
NCCL_MAX_CHANNELS = 32


def ring_sms(plan, stride: Any, size: Any) -> Any:
    """SMs an NCCL ring collective over ``size`` ranks ``stride`` apart occupies on each GPU
    (numbers or numpy arrays, as :func:`ring_link`).

    NCCL runs one CTA per channel, each on an SM no compute kernel shares (NVIDIA/nccl#689,
    #1656). A ring with two or more members on a node crosses NVLink: two channels per link
    (NVIDIA/nccl#1703), at most :data:`NCCL_MAX_CHANNELS` — A100 24, H100 32, H800 16 (0 when
    the GPU's ``nvlinks`` is unknown or the node's link is not NVLink). A ring with one member
    per node runs over the GPU's network share: two channels per NIC (NVIDIA/nccl#438). 0 for
    a group of one, or when the GPU's ``sms`` is unknown.
    """
    import numpy as np

    cl = plan.cluster
    scalar = np.ndim(stride) == 0 and np.ndim(size) == 0
    stride, size = np.asarray(stride), np.asarray(size)
    per_node = cl.per_node
    local = ring_members_per_node(per_node, stride, size)
    nvlink = (
        min(2 * cl.gpu.nvlinks, NCCL_MAX_CHANNELS, cl.gpu.sms - 1)
        if cl.gpu.sms and cl.gpu.nvlinks and cl.intra_link.kind == "nvlink"
        else 0
    )
    network = 2 * max(1, round(cl.nics / per_node))
    out = np.where(size <= 1, 0, np.where(local > 1, nvlink, network))
    if not cl.gpu.sms:
        out = np.zeros_like(out)
    return int(out) if scalar else out


def ep_intra_link(plan, tp: Any = None, cp: Any = None, ep: Any = None) -> tuple[Any, Any]:
    """Bandwidth and latency between an expert-parallel group's GPUs on one node (span ≤ a node)."""
    import numpy as np

    par, per_node = plan.parallelism, plan.cluster.per_node
    tp = par.tp if tp is None else tp
    cp = par.cp if cp is None else cp
    ep = par.ep if ep is None else ep
    span = np.minimum(tp * cp * ep, per_node)
    if np.ndim(span) == 0:
        return _link_for_span(plan, int(span))
    from .sweep import _link_arrays

    return _link_arrays(plan, span)


def resolved_batch(plan, dp: int) -> tuple[int, list[str]]:
    """Global batch in sequences (contract: a token batch becomes whole sequences, then a
    multiple of dp × micro_batch, with a warning when that moves it by more than 1 %)."""
    meth, par = plan.method, plan.parallelism
    unit = dp * par.micro_batch
    warnings: list[str] = []
    if meth.global_batch is not None:
        return meth.global_batch, warnings
    if meth.global_batch_tokens is not None:
        seqs = max(1, round(meth.global_batch_tokens / meth.seq_len))
        rounded = max(unit, round(seqs / unit) * unit)
        if abs(rounded * meth.seq_len - meth.global_batch_tokens) > 0.01 * meth.global_batch_tokens:
            warnings.append(
                f"method.global_batch_tokens = {meth.global_batch_tokens} becomes {rounded} sequences "
                f"({rounded * meth.seq_len} tokens), a multiple of dp × micro_batch = {unit}"
            )
        return rounded, warnings
    warnings.append(f"method.global_batch not given: assuming dp × micro_batch = {unit} sequences")
    return unit, warnings


def core_dtype(prec) -> str:
    """The dtype the fused attention kernel runs in: the compute dtype, BF16 under FP8 GEMMs."""
    compute = prec.dtype("compute")
    return "bf16" if compute == "fp8" else compute


def attention_rate(plan, gemm16: float | None = None):
    """The fused attention kernel's speed this plan assumes (:class:`llmplan.plan.AttentionRate`):
    ``[efficiency] attention`` as a flat rate, else the default of ``[parallelism]
    attention_kernel`` on the plan's GPU for the model's head dimension (MLA: the query/key
    head, clamped to the benchmarks' 128)."""
    from .plan import AttentionRate, default_attention_efficiency

    eff = plan.efficiency
    if eff.attention is not None:
        return AttentionRate(eff.attention, float(eff.attention_half_length or 0.0), "[efficiency] attention")
    m = plan.model
    head_dim = m.d_head if m.mla is None else m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim
    return default_attention_efficiency(plan.cluster.gpu, plan.parallelism.attention_kernel, head_dim, gemm16)


def plan_values(plan, params_total: int, params_active: int) -> tuple[dict[sympy.Symbol, Any], list[str]]:
    """Bind every input symbol for ``plan``; returns (values, warnings)."""
    from .checks import resolved_dp
    from .errors import PlanError, Problem
    from .plan import DEFAULT_ELEMENTWISE_PASSES, DEFAULT_MEMORY_OVERHEAD, default_gemm_efficiency

    vals: dict[sympy.Symbol, Any] = model_values(plan.model)
    warnings: list[str] = []
    meth, par, prec, cl = plan.method, plan.parallelism, plan.precision, plan.cluster
    if cl.gpus is None:
        raise PlanError(Problem("cluster.gpus", "required key is missing (only `llmplan search` chooses it)"))
    if meth.training and meth.tokens is None and meth.samples is None:
        raise PlanError(Problem("method.tokens", f"required to estimate a {meth.kind!r} run (a count like \"2T\", \"chinchilla\", or samples × tokens_per_sample)"))
    dp = resolved_dp(plan)
    batch, w = resolved_batch(plan, dp)
    warnings += w
    tokens = meth.tokens
    if meth.samples is not None:
        tokens = meth.samples * meth.tokens_per_sample * meth.epochs
    from .plan import chinchilla_fraction

    fraction = chinchilla_fraction(tokens)
    if fraction is not None:
        tokens = fraction * 20 * (params_active if plan.model.is_moe else params_total)
        if plan.model.is_moe:
            warnings.append("method.tokens = 'chinchilla' for a MoE model: 20 × active parameters (Hoffmann et al. fit dense models only)")
    gemm16 = plan.efficiency.gemm or default_gemm_efficiency(cl.gpu, core_dtype(prec))[0]
    attn = attention_rate(plan, gemm16)
    stages = par.stage_layers(plan.model.layers)
    shard = par.dp_shard or dp  # hybrid sharding's group, else all of dp
    if meth.training:
        m_count = batch // (dp * par.micro_batch)
    else:
        m_count = 1
    vals.update(
        {
            S.s: meth.seq_len + (meth.new_tokens if not meth.training else 0),
            S.b: par.micro_batch if meth.training else meth.batch,
            S.B: batch if meth.training else meth.batch,
            S.D: tokens if tokens is not None else 0,
            S.N: cl.gpus,
            S.t: par.tp,
            S.p: par.pp,
            S.n_dp: dp,
            S.n_sh: shard,  # the ZeRO / FSDP shard group: dp unless hybrid sharding
            S.c: par.cp,
            S.e: par.ep,
            S.t_e: par.expert_tp,
            S.v: par.v,
            S.m: m_count,
            # the reported GPU is rank 0 unless llmplan.estimate picks another (uneven stages);
            # serving reports the fullest stage
            S.L_s: stages[0] if meth.training else max(stages),
            S.L_max: max(stages),
            S.L_last: stages[-1],
            S.i_pp: 0,
            # [parallelism] recompute_layers (bound, unused, without it: the formulas then recompute every layer)
            S.n_rc: par.recompute_layers or 0,
            S.n_node: cl.per_node,
            S.q_w: prec.bytes("weights"),
            S.q_g: prec.bytes("grads"),
            S.q_m: prec.bytes("master"),
            S.q_o: prec.optimizer_bytes(),
            S.q_a: prec.bytes("activations"),
            S.q_kv: prec.bytes("kv_cache"),
            S.q_lin: prec.bytes("linear_inputs"),
            S.q_act: prec.bytes("activation_func_inputs"),
            S.N_tr: params_total,
            S.r: 1,
            S.q_base: prec.bytes("weights"),
            S.M_cap: cl.gpu.memory,
            S.W_hbm: cl.gpu.memory_bandwidth,
            S.n_sm: cl.gpu.sms or 1,
            S.P_tdp: cl.gpu.tdp,
            # η_gemm: the plan's, else GEMM_FRACTION_OF_MAMF (0.75) × the GPU's measured max achievable matmul rate ÷ peak
            S.eta_gemm: plan.efficiency.gemm or default_gemm_efficiency(cl.gpu, prec.dtype("compute"))[0],
            # the GEMMs an FP8 recipe keeps in BF16 (output head, router): the plan's η_gemm, else
            # the default of the BF16 dtype (= η_gemm without FP8)
            S.eta_gemm16: gemm16,
            # η_attn and s_attn: the plan's η_attn (flat), else the kernel's measured benchmark on
            # this GPU (llmplan/data/attention.toml), else half the GEMM efficiency of the core's dtype
            S.eta_attn: attn.eta,
            S.s_attn: attn.s_attn,
            S.eta: plan.efficiency.mfu or 1.0,
            S.goodput: plan.efficiency.goodput or 1.0,
            S.kappa: DEFAULT_ELEMENTWISE_PASSES if plan.efficiency.elementwise_passes is None else plan.efficiency.elementwise_passes,
            S.M_over: plan.efficiency.memory_overhead
            if plan.efficiency.memory_overhead is not None
            else DEFAULT_MEMORY_OVERHEAD,
            S.T_run: 3600.0,
        }
    )
    adapter = meth.adapter
    if adapter is not None:
        from .formulas.adapters import lora_params, nf4_bytes_per_param

        vals[S.r] = adapter.rank
        vals[S.N_tr] = int(evaluate(lora_params(plan.model, adapter.targets), vals))
        bits = meth.base_bits
        if bits == 4:
            vals[S.q_base] = float(nf4_bytes_per_param(adapter.double_quant, adapter.block_size))
        elif bits == 8:
            vals[S.q_base] = 1
    compute = prec.dtype("compute")
    peak = cl.gpu.peak.get(compute)
    if peak is None:
        raise PlanError(
            Problem(
                "cluster.gpu",
                f"{cl.gpu.id} has no {compute} peak in the catalog (known: {', '.join(cl.gpu.peak) or 'none'}); "
                "add it in a [cluster.gpu_spec] peak table",
            )
        )
    vals[S.F_peak] = peak
    vals[S.F_peak8] = cl.gpu.peak.get("fp8", peak)
    vals[S.F_peak16] = cl.gpu.peak.get("bf16", cl.gpu.peak.get("fp16", peak))
    # links per group, Megatron's rank order tp → cp → ep/dp → pp
    t, c = par.tp, par.cp
    # tp and dp run ring collectives (ring_link: rings side by side over the rail NICs);
    # cp (K/V ring passes) and ep (all-to-all) send each GPU's own bytes through its share
    vals[S.W_tp], vals[S.alpha_tp] = ring_link(plan, 1, t)
    # data parallel: the shard group (all of dp unless dp_shard) is consecutive ranks tp·cp apart;
    # hybrid sharding's replica group strides over the shard groups
    vals[S.W_dp], vals[S.alpha_dp] = ring_link(plan, t * c, shard)
    vals[S.W_rep], vals[S.alpha_rep] = ring_link(plan, t * c * shard, max(1, dp // shard))
    for span, bw_sym, alpha_sym in ((t * c, S.W_cp, S.alpha_cp), (t * c * par.ep, S.W_ep, S.alpha_ep)):
        bw, alpha = _link_for_span(plan, span)
        vals[bw_sym], vals[alpha_sym] = bw, alpha
    bw, alpha = _link_for_span(plan, t * c * dp + 1)  # neighbouring stage: next block of ranks
    vals[S.W_pp], vals[S.alpha_pp] = bw, alpha
    # expert-parallel nodes and the intra-node forwarding of group-limited dispatch (comm.py)
    vals[S.n_epn], vals[S.n_epl] = ep_node_layout(plan)
    vals[S.W_epl], vals[S.alpha_epl] = ep_intra_link(plan)
    # DualPipe: SMs running communication; no scaling when the GPU's SM count is unknown
    vals[S.n_csm] = par.communication_sms if cl.gpu.sms else 0
    # SMs the hidden collectives occupy: the DP shard group, HSDP's replica group, the CP ring
    vals[S.n_ccl] = ring_sms(plan, t * c, shard)
    vals[S.n_ccr] = ring_sms(plan, t * c * shard, max(1, dp // shard)) if par.dp_shard is not None else 0
    vals[S.n_ccp] = ring_sms(plan, t, c)
    vals[S.W_nv] = cl.intra_link.bandwidth
    vals[S.W_net] = cl.inter_link.bandwidth * cl.nics / cl.per_node
    vals[S.alpha_nv] = cl.intra_link.latency
    vals[S.alpha_net] = cl.inter_link.latency
    cost = plan.cost
    if cost is not None:
        cur, conv = _currency(plan)
        if cost.gpu_hour is not None:
            vals[S.c_hour] = conv(cost.gpu_hour, "cost.gpu_hour")
        if cost.on_prem is not None:
            op = cost.on_prem
            vals[S.c_gpu] = conv(op.gpu_price, "cost.on_prem.gpu_price")
            vals[S.Y] = op.years
            vals[S.PUE] = op.pue
            vals[S.H_month] = op.hours_per_month
            if op.power_price is not None:
                vals[S.c_kwh] = conv(op.power_price, "cost.on_prem.power_price")
    vals.setdefault(S.PUE, 1.0)
    # --- serving (method.kind = "inference"; llmplan.formulas.serving) -----------------
    if not meth.training:
        from .formulas.serving import serving_values

        serving_vals, serving_warnings = serving_values(plan)
        vals.update(serving_vals)
        # a serving plan has no global batch: drop resolved_batch's training warning
        warnings = [w for w in warnings if not w.startswith("method.global_batch")] + serving_warnings
    # --- end serving ---------------------------------------------------------------------
    return vals, warnings


def _currency(plan):
    """(report currency, converter (amount, currency) → report currency)."""
    from .errors import PlanError, Problem

    cost = plan.cost
    first = cost.gpu_hour or (cost.on_prem.gpu_price if cost.on_prem else None)
    report = cost.currency or (first[1] if first else "USD")
    rates = {"USD": 1.0, **cost.rates}

    def conv(money, path):
        amount, cur = money
        if cur == report:
            return amount
        missing = [x for x in (cur, report) if x not in rates]
        if missing:
            raise PlanError(
                Problem("cost.rates", f"no rate for {', '.join(missing)} (needed to convert {path} = {amount} {cur} to {report}); give e.g. rates = {{ {missing[0]} = … }} per 1 USD")
            )
        return amount / rates[cur] * rates[report]

    return report, conv
