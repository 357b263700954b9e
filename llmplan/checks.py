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


def _stage_layer_problems(plan: "Plan") -> list[Problem]:
    """``first_stage_layers`` / ``last_stage_layers`` (or Megatron-Core's
    ``account_for_*_in_pipeline_split``) that leave a stage without layers."""
    par, layers = plan.parallelism, plan.model.layers
    if not par.uneven_stages or par.pp < 2 or par.pp > layers or par.pp_schedule == "dualpipe":
        return []
    keys = [k for k in ("first_stage_layers", "last_stage_layers") if getattr(par, k) is not None]
    if not keys:  # the account_for_* flags
        if min(par.stage_layers(layers)) < 1:
            flag = "account_for_embedding_in_pipeline_split" if par.fixed_ends[0] else "account_for_loss_in_pipeline_split"
            return [Problem(f"parallelism.{flag}", f"true with {layers} layers on pp = {par.pp}: an end stage is left "
                                                   "without transformer layers")]
        return []
    fixed = sum(getattr(par, k) for k in keys)
    free = par.pp - len(keys)
    given = " + ".join(f"{k} = {getattr(par, k)}" for k in keys)
    key = f"parallelism.{keys[-1]}"
    if free == 0 and fixed != layers:
        return [Problem(key, f"{given} ≠ layers = {layers}: with pp = 2 the two stages hold every layer")]
    if free and layers - fixed < free:
        return [Problem(key, f"{given} leaves {layers - fixed} layer(s) for the other {free} stage(s) of pp = {par.pp} "
                             f"(allowed: at most {layers - free} in all, every stage holds at least one layer)")]
    return []


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
    if par.pp_schedule == "interleaved" and par.pp == 1:
        p.append(
            Problem(
                "parallelism.pp_schedule",
                "'interleaved' needs pp ≥ 2: one stage has no pipeline to interleave (allowed with pp = 1: 1f1b, gpipe)",
            )
        )
    elif par.pp_schedule == "interleaved" and par.pp * par.v > m.layers:
        p.append(
            Problem(
                "parallelism.virtual_stages",
                f"pp × virtual_stages = {par.pp * par.v} exceeds layers = {m.layers}",
            )
        )
    p += _stage_layer_problems(plan)
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
    if par.dp_shard is not None and isinstance(par.dp_shard, int) and par.dp_shard >= 1:
        if m.is_moe:
            p.append(Problem("parallelism.dp_shard", f"{par.dp_shard} with a MoE model: hybrid sharding of expert-data-parallel "
                             "states is not modelled (leave dp_shard out)"))
        elif dp is not None and dp >= 1 and dp % par.dp_shard:
            allowed = ", ".join(str(x) for x in divisors(dp))
            p.append(Problem("parallelism.dp_shard", f"{par.dp_shard} does not divide dp = {dp} (allowed: {allowed})"))
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
    p += _dualpipe_problems(plan, dp)
    if meth.mtp and m.mtp_layers == 0:
        p.append(Problem("method.mtp", "true, but model.mtp_layers = 0: the model has no multi-token-prediction modules to train"))
    return p


def micro_batches_per_step(plan: Plan, dp: int) -> tuple[int, str]:
    """Micro-batches per step ``m`` of a training plan and the batch key that sets it."""
    from .bindings import resolved_batch

    meth = plan.method
    key = "method.global_batch_tokens" if meth.global_batch is None and meth.global_batch_tokens is not None else "method.global_batch"
    batch, _ = resolved_batch(plan, dp)
    return batch // (dp * plan.parallelism.micro_batch), key


def _dualpipe_problems(plan: Plan, dp: int | None) -> list[Problem]:
    """DualPipe needs an even ``pp`` and an even number of micro-batches (DeepSeek-V3 report
    §3.2.1: the pipeline stages and micro-batches must be divisible by 2); ``comm_sms`` goes
    with DualPipe only and stays below the GPU's SMs."""
    par, meth, gpu = plan.parallelism, plan.method, plan.cluster.gpu
    p: list[Problem] = []
    # checked here, not on Parallelism, so that a [[phase]] may override either key alone
    if par.comm_sms is not None and par.pp_schedule != "dualpipe":
        p.append(Problem("parallelism.comm_sms", f"only with pp_schedule = \"dualpipe\" (pp_schedule is "
                         f"{par.pp_schedule!r}; the other schedules do not overlap communication with compute)"))
    if par.pp_schedule != "dualpipe":
        return p
    if par.pp % 2:
        p.append(Problem("parallelism.pp", f"{par.pp}: pp_schedule = \"dualpipe\" needs an even number of stages, its two "
                         "directions meet in the middle (DeepSeek-V3 report §3.2.1; allowed: 2, 4, 6, …)"))
    if not meth.training:
        return p
    if dp is not None and dp >= 1 and meth.kind != "rl":
        m, key = micro_batches_per_step(plan, dp)
        if m % 2:
            unit = 2 * dp * par.micro_batch
            p.append(Problem(key, f"gives {m} micro-batches per step (global batch ÷ (dp × micro_batch)); "
                             f"pp_schedule = \"dualpipe\" needs an even number, half for each direction "
                             f"(allowed: a global batch that is a multiple of 2 × dp × micro_batch = {unit} sequences)"))
    if gpu.sms is not None and par.communication_sms >= gpu.sms:
        p.append(Problem("parallelism.comm_sms", f"{par.communication_sms}: {gpu.id} has {gpu.sms} SMs and compute needs "
                         f"some (allowed: 0 … {gpu.sms - 1})"))
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
    stages = par.stage_layers(m.layers)
    if par.uneven_stages and par.pp > 1:
        first_set, last_set = par.fixed_ends
        free = par.pp - first_set - last_set
        middle = stages[first_set:len(stages) - last_set]
        e, l = par.counted_ends
        chunks = par.pp * (par.v if par.pp_schedule == "interleaved" else 1)
        if (e or l) and (m.layers + e + l) % chunks:
            w.append(
                f"parallelism.account_for_*_in_pipeline_split: layers + embedding + loss = {m.layers + e + l} is not a "
                f"multiple of {chunks} (Megatron-Core asks for an even split of them); llmplan gives the first stages "
                "one layer more"
            )
        elif free and len(set(middle)) > 1:
            w.append(
                f"parallelism.first_stage_layers / last_stage_layers: the other {free} stages split {sum(middle)} layers "
                f"unevenly ({max(middle)} or {min(middle)} each; Megatron-Core asks for an even split), the slowest "
                f"stage ({max(stages)} layers) sets the pace (time.stage_imbalance)"
            )
        # (with the account_for_* flags Megatron-Core splits layers + embedding + loss into the chunks)
        if par.pp_schedule == "interleaved" and par.v > 1 and not (e or l) and any(n % par.v for n in stages):
            w.append(
                f"parallelism.virtual_stages = {par.v} does not divide every stage's layers ({', '.join(map(str, sorted(set(stages))))}): "
                "the model chunks are uneven (Megatron-LM asks for equal chunks); llmplan prices a chunk as its stage's layers ÷ virtual_stages"
            )
    elif par.pp > 1 and m.layers % par.pp:
        w.append(
            f"parallelism.pp = {par.pp} does not divide layers = {m.layers}: stages are uneven, "
            f"the slowest stage ({-(-m.layers // par.pp)} layers) sets the pace (time.stage_imbalance)"
        )
    elif par.pp > 1 and par.pp_schedule == "interleaved" and par.v > 1 and m.layers % (par.pp * par.v):
        w.append(
            f"parallelism.virtual_stages = {par.v}: pp × virtual_stages = {par.pp * par.v} does not divide "
            f"layers = {m.layers}, so the model chunks are uneven (Megatron-LM asks for equal chunks); "
            f"llmplan prices each chunk as {-(-m.layers // par.pp) / par.v:g} layers"
        )
    if par.pp > 1 and par.zero >= 2:
        w.append(f"parallelism.zero = {par.zero} with pp = {par.pp}: ZeRO-2/3 re-shard gradients every micro-batch (Megatron and DeepSpeed allow only ZeRO-1 with PP)")
    w += _interleaved_warnings(plan)
    w += _dualpipe_warnings(plan)
    w += _recompute_module_warnings(plan)
    if par.recompute_layers is not None and par.recompute != "full":
        w.append(f'parallelism.recompute_layers applies to recompute = "full" only; ignored with recompute = "{par.recompute}"')
    if par.recompute_method != "block" and (par.recompute_layers is None or par.recompute != "full"):
        w.append(f'parallelism.recompute_method = "{par.recompute_method}" applies to recompute = "full" with recompute_layers; ignored')
    adapter = plan.method.adapter
    if m.is_moe and adapter is not None and adapter.quantize_experts is None and plan.method.base_bits < 16:
        w.append(
            f"method.lora: {plan.method.base_bits}-bit base with the routed experts kept 16-bit, as transformers 5 and "
            "bitsandbytes load them (fused 3-D expert tensors are not nn.Linear; bitsandbytes issue #1849); "
            "set [method.lora] quantize_experts = true for a stack that quantises them (transformers 4, Unsloth)"
        )
    if par.framework == "hf" and par.recompute == "selective":
        w.append(
            'parallelism.framework = "hf" with recompute = "selective": transformers has no selective '
            'recomputation (its gradient checkpointing is recompute = "full"); the attention core is '
            "priced as recomputed, as in Megatron-LM"
        )
    return w


def _recompute_module_warnings(plan: "Plan") -> list[str]:
    """``[parallelism] recompute_modules`` that change nothing: without ``recompute = "selective"``,
    or naming a part the model does not have."""
    m, par = plan.model, plan.parallelism
    if par.recompute_modules is None:
        return []
    if par.recompute != "selective":
        return [f'parallelism.recompute_modules applies to recompute = "selective" only; ignored with recompute = "{par.recompute}"']
    moe = m.moe if m.is_moe else None  # type: ignore[attr-defined]
    missing = {
        "mla_up_proj": (m.mla is None, "no multi-head latent attention"),
        "moe_act": (moe is None, "no MoE layers"),
        "shared_experts": (moe is None or not moe.shared_experts, "no shared experts"),
        "mlp": (m.is_moe and m.n_dense_layers == 0, "no dense-MLP layers"),
    }
    return [
        f"parallelism.recompute_modules: {name!r} changes nothing for this model ({why})"
        for name in par.recompute_modules
        if name in missing and missing[name][0]
        for why in (missing[name][1],)
    ]


def _interleaved_warnings(plan: Plan) -> list[str]:
    """Interleaved 1F1B with fewer micro-batches than stages (Megatron-Core refuses it) or a
    count that is not a multiple of ``pp`` (Megatron-Core then needs a custom group size)."""
    par, meth = plan.parallelism, plan.method
    dp = resolved_dp(plan)
    if par.pp_schedule != "interleaved" or par.pp < 2 or not meth.training or meth.kind == "rl" or dp is None or dp < 1:
        return []
    micro, _ = micro_batches_per_step(plan, dp)
    if micro < par.pp:
        return [
            f"parallelism.pp_schedule = \"interleaved\" with {micro} micro-batches per step, fewer than pp = "
            f"{par.pp}: Megatron-Core refuses it (the group of micro-batches per virtual stage must be between pp "
            "and their number, schedules.py), and every forward runs before the first backward: the bubble is "
            "((p−1) + (v−1)(p−m))/(v·m), more than (p−1)/(v·m)"
        ]
    if micro % par.pp:
        return [
            f"parallelism.virtual_stages = {par.v} with {micro} micro-batches per step, not a multiple of pp = "
            f"{par.pp}: Megatron-Core then needs microbatch_group_size_per_vp_stage N with pp ≤ N ≤ {micro} "
            "(the remainder 0 or ≥ pp); the bubble (p−1)/(v·m) holds for any such N, the first stage's "
            "activations are counted for groups of pp"
        ]
    return []


def _dualpipe_warnings(plan: Plan) -> list[str]:
    """DualPipe with fewer than 2·pp micro-batches; routing groups that do not align with the EP nodes."""
    from .bindings import ep_node_layout

    par, meth, m = plan.parallelism, plan.method, plan.model
    w: list[str] = []
    dp = resolved_dp(plan)
    if par.pp_schedule == "dualpipe" and meth.training and meth.kind != "rl" and dp is not None and dp >= 1:
        micro, _ = micro_batches_per_step(plan, dp)
        if micro < 2 * par.pp:
            w.append(
                f"parallelism.pp_schedule = \"dualpipe\" with {micro} micro-batches per step, fewer than 2 × pp = "
                f"{2 * par.pp}: DeepSeek's reference implementation requires at least 2 × pp (deepseek-ai/DualPipe "
                "dualpipe.py), and the bubble (pp/2 − 1)(F&B + B − 3W) assumes a full steady phase"
            )
    groups = m.moe.route_groups if m.is_moe else None  # type: ignore[attr-defined]
    if groups is not None and plan.cluster.gpus is not None:
        nodes, _ = ep_node_layout(plan)
        if nodes > 1 and nodes % groups and groups % nodes:
            w.append(
                f"model.moe.route_groups = {groups} and the expert-parallel group spans {nodes} nodes: groups do not "
                "map onto whole nodes, so the nodes a token reaches are approximated as if they did"
            )
    return w
