"""DualPipe, computation-communication overlap, group-limited expert routing and MTP FLOPs.

Every expected number is derived by hand in the test from the DeepSeek-V3 technical report
(arXiv 2412.19437): Table 2 (DualPipe's bubble (PP/2 − 1)(F&B + B − 3W), parameters 2×,
activations PP + 1), §3.2.1 (an even number of stages and micro-batches), §3.2.2 (20 of
the H800's 132 SMs communicate; each token reaches at most 4 nodes over InfiniBand and is
forwarded over NVLink), §2.1.2 (node-limited routing) and §2.2 (the MTP module: a
Linear(2h → h) projection, one transformer block and the shared output head).
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plans import GPU_A100, NET, NVLINK

import llmplan
from llmplan import catalog
from llmplan import symbols as S
from llmplan.bindings import evaluate
from llmplan.errors import PlanError
from llmplan.estimate import estimate
from llmplan.hardware import GPU
from llmplan.model import Dense, Experts
from llmplan.plan import Cluster, Method, Parallelism, Plan, Precision

# A small dense model whose FLOPs are easy to write out: a·d = h, a_kv = a, SwiGLU.
L, H, A, FFN, V = 8, 1024, 8, 2816, 32000
SMALL = Dense(layers=L, hidden=H, heads=A, ffn=FFN, vocab=V)
S_LEN = 2048
H100 = attrs.evolve(GPU_A100, id="test-h100-132sm", sms=132)  # an SM count, for the SM scaling


def small_plan(*, pp=4, m=16, schedule="dualpipe", comm_sms=None, gpu=GPU_A100, recompute="none", **method):
    """``pp`` stages on ``pp`` GPUs (dp = 1): the global batch is the micro-batch count ``m``."""
    return Plan(
        model=SMALL,
        method=Method(kind="pretrain", tokens=10**9, seq_len=S_LEN, global_batch=m, **method),
        cluster=Cluster(gpu=gpu, gpus=pp, intra_node=NVLINK, inter_node=NET),
        parallelism=Parallelism(pp=pp, pp_schedule=schedule, comm_sms=comm_sms, recompute=recompute),
    )


def problems(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {p.path: p.message for p in exc.value.problems}


# ----- the bubble ------------------------------------------------------------------------


def test_dualpipe_bubble_equals_the_hand_derivation():
    """(PP/2 − 1)(F&B + B − 3W), F&B = F + B, with F, B, W from the FLOPs of one token.

    Linear layers (per token, layer): Q, K, V, O = 4·h² weights → 8·h² FLOPs forward;
    SwiGLU = 3·h·f weights → 6·h·f; LM head 2·h·V. Attention core: QKᵀ and P·V, 2·s·h each.
    Backward: each linear layer an input- and a weight-gradient GEMM as large as its
    forward; the core's backward is 2 × its forward, all input gradient. FlashAttention
    recomputes QKᵀ (2·s·h) in the backward pass, which belongs to B.
    """
    plan = small_plan(pp=4, m=16)
    est = estimate(plan)
    lin = L * (8 * H * H + 6 * H * FFN) + 2 * H * V
    core = L * 4 * S_LEN * H
    recompute = L * 2 * S_LEN * H
    F = lin + core
    W = lin
    B = 2 * lin + 2 * core + recompute  # a *full* backward chunk (report Table 2)
    assert est.value("flops.per_token") + est.value("flops.recompute_per_token") == F + B
    T_comp, m, p = est.value("time.compute_seconds"), 16, 4
    chunk = T_comp / m  # one forward and one backward chunk of one micro-batch through one stage
    T_F, T_B, T_W = chunk * F / (F + B), chunk * B / (F + B), chunk * W / (F + B)
    assert est.value("time.chunk_forward_seconds") == pytest.approx(T_F, rel=1e-12)
    assert est.value("time.chunk_backward_seconds") == pytest.approx(T_B, rel=1e-12)
    assert est.value("time.chunk_weight_seconds") == pytest.approx(T_W, rel=1e-12)
    bubble = (p / 2 - 1) * ((T_F + T_B) + T_B - 3 * T_W)
    assert est.value("time.bubble_seconds") == pytest.approx(bubble, rel=1e-12)
    # the same plan under 1F1B: (p − 1)(F + B) per micro-batch chunk
    one_f_one_b = estimate(small_plan(pp=4, m=16, schedule="1f1b"))
    # 1F1B's chunk is its slowest stage's: the last of the p stages (L/p layers each) also runs
    # the LM head, 3·2·h·V of the F + B FLOPs per token, so ι = 1 + (p − 1)·6·h·V/(F + B);
    # it scales the GEMM and attention time, the elementwise kernels are the same
    iota = 1 + (p - 1) * 6 * H * V / (F + B)
    assert L % p == 0 and one_f_one_b.value("time.stage_imbalance") == pytest.approx(iota, rel=1e-12)
    elem = one_f_one_b.value("time.elementwise_seconds")
    assert est.value("time.elementwise_seconds") == pytest.approx(elem, rel=1e-12)
    chunk_1f1b = (iota * (T_comp - elem) + elem) / m
    assert one_f_one_b.value("time.bubble_seconds") == pytest.approx(3 * chunk_1f1b, rel=1e-12)


def test_two_stages_have_no_dualpipe_bubble():
    assert estimate(small_plan(pp=2, m=8)).value("time.bubble_seconds") == 0


@settings(max_examples=30, deadline=None)
@given(half_pp=st.integers(1, 4), half_m=st.integers(1, 64), recompute=st.sampled_from(["none", "selective", "full"]))
def test_dualpipe_bubble_is_at_most_1f1b(half_pp, half_m, recompute):
    """With the same compute (no SMs reserved; 1F1B's slowest stage also carries the LM head,
    which DualPipe's pairing of the first and last stage spreads), DualPipe's bubble never
    exceeds 1F1B's."""
    pp, m = 2 * half_pp, 2 * half_m
    dual = estimate(small_plan(pp=pp, m=m, comm_sms=0, recompute=recompute))
    one = estimate(small_plan(pp=pp, m=m, schedule="1f1b", recompute=recompute))
    assert dual.value("time.stage_imbalance") == 1
    elem = one.value("time.elementwise_seconds")
    assert (dual.value("time.compute_seconds") - elem) * one.value("time.stage_imbalance") + elem == pytest.approx(
        one.value("time.compute_seconds"), rel=1e-12)
    assert 0 <= dual.value("time.bubble_seconds") <= one.value("time.bubble_seconds")


# ----- requirements ------------------------------------------------------------------------


def test_odd_pp_is_refused_with_the_key_and_the_allowed_values():
    with pytest.raises(PlanError) as exc:
        llmplan.loads('[model]\npreset = "llama-2-7b"\n[cluster]\ngpu = "h100-sxm"\ngpus = 24\n'
                      '[method]\ntokens = "1T"\nglobal_batch = 16\n[parallelism]\npp = 3\npp_schedule = "dualpipe"\n')
    msg = problems(exc)["parallelism.pp"]
    assert msg.startswith("3:") and "even" in msg and "allowed: 2, 4, 6" in msg


def test_odd_micro_batch_count_is_refused():
    with pytest.raises(PlanError) as exc:
        small_plan(pp=4, m=15)
    msg = problems(exc)["method.global_batch"]
    assert "15 micro-batches" in msg and "even" in msg and "multiple of 2 × dp × micro_batch = 2" in msg
    with pytest.raises(PlanError) as exc:  # the token form names its own key
        Plan(model=SMALL, cluster=Cluster(gpu=GPU_A100, gpus=4, intra_node=NVLINK, inter_node=NET),
             method=Method(tokens=10**9, seq_len=S_LEN, global_batch_tokens=15 * S_LEN),
             parallelism=Parallelism(pp=4, pp_schedule="dualpipe"))
    assert "method.global_batch_tokens" in problems(exc)


def test_comm_sms_only_with_dualpipe_and_below_the_gpu_sms():
    with pytest.raises(PlanError) as exc:
        small_plan(schedule="1f1b", comm_sms=20)
    assert "only with pp_schedule = \"dualpipe\"" in problems(exc)["parallelism.comm_sms"]
    with pytest.raises(PlanError) as exc:
        small_plan(gpu=H100, comm_sms=132)
    assert problems(exc)["parallelism.comm_sms"].startswith("132:") and "allowed: 0 … 131" in problems(exc)["parallelism.comm_sms"]


def test_few_micro_batches_warn():
    est = estimate(small_plan(pp=8, m=8))
    assert any("fewer than 2 × pp = 16" in w for w in est.warnings)
    assert not any("2 × pp" in w for w in estimate(small_plan(pp=4, m=8)).warnings)


# ----- memory --------------------------------------------------------------------------------


def test_two_stages_of_parameters_per_gpu():
    """GPU 0 holds stages 0 and pp−1: twice the layers, the embedding, the LM head and the final norm."""
    layer = 4 * H * H + 3 * H * FFN + 2 * H  # attention, SwiGLU, two RMSNorms
    L_s = L // 4
    dual = estimate(small_plan(pp=4, m=16))
    one = estimate(small_plan(pp=4, m=16, schedule="1f1b"))
    assert one.value("memory.params_on_gpu.dense") == L_s * layer + V * H  # embedding (= LM head size)
    assert dual.value("memory.params_on_gpu.dense") == 2 * L_s * layer + 2 * V * H + H
    # bf16 weights and gradients, fp32 master + two AdamW moments: 2 + 2 + 12 bytes each (ZeRO 0)
    P = 2 * L_s * layer + 2 * V * H + H
    assert dual.value("memory.per_gpu.weights") == 2 * P
    assert dual.value("memory.per_gpu.gradients") == 2 * P
    assert dual.value("memory.per_gpu.optimizer") == 12 * P


def test_pp_plus_one_micro_batches_of_activations():
    """Report Table 2: PP + 1 micro-batches of a stage's activations (1F1B: PP), plus the
    logits of the LM head GPU 0 holds: (2 + 4)·s·b·V bytes (bf16 logits and their fp32 copy)."""
    dual = estimate(small_plan(pp=4, m=16))
    one = estimate(small_plan(pp=4, m=16, schedule="1f1b"))
    A = dual.value("memory.activations_per_layer")
    assert one.value("memory.activations_per_layer") == A
    L_s = L // 4
    assert one.value("memory.per_gpu.activations") == pytest.approx(L_s * 4 * A, rel=1e-12)
    assert dual.value("memory.per_gpu.activations") == pytest.approx(L_s * 5 * A + 6 * S_LEN * V, rel=1e-12)


# ----- SMs for communication and overlap -------------------------------------------------------


def test_comm_sms_scale_the_gemm_time():
    """20 of 132 SMs communicate (report §3.2.2): the GEMMs take 132/112 as long; the memory-bound
    elementwise kernels do not change. Unknown SM count: no scaling."""
    dual = estimate(small_plan(gpu=H100))
    free = estimate(small_plan(gpu=H100, comm_sms=0))
    elem = free.value("time.elementwise_seconds")
    assert dual.value("time.comm_sm_slowdown") == pytest.approx(132 / 112, rel=1e-12)
    # the GEMMs' tiles are also spread over the 112 SMs left (wave quantisation): the shape
    # efficiency under DualPipe is the comm-free plan's formula evaluated with n_sm = 112
    eta_expr = free.definitions.items["time.gemm_efficiency"].expr
    assert dual.value("time.gemm_efficiency") == pytest.approx(evaluate(eta_expr, {**free.values, S.n_sm: 112}), rel=1e-12)
    # the fused attention core (at η_gemm) and the GEMMs (at η_shape) both slow by 132/112
    core = free.value("time.compute_seconds") - elem - gemm_seconds_of(free)
    expected = (core + gemm_seconds_of(free) * free.value("time.gemm_efficiency") / dual.value("time.gemm_efficiency")) * 132 / 112
    assert dual.value("time.compute_seconds") - elem == pytest.approx(expected, rel=1e-12)
    assert estimate(small_plan()).value("time.comm_sm_slowdown") == 1  # GPU_A100 has no sms


def gemm_seconds_of(est) -> float:
    """GEMM part of the compute time: hardware FLOPs minus the attention core, ÷ (GPUs · peak · η_shape).

    The core per token and layer: QKᵀ and P·V forward 4·s·h, backward 2 × that, and
    FlashAttention's recomputed QKᵀ 2·s·h (no recomputation in this plan)."""
    tokens = est.values[S.B] * est.values[S.s]
    core = L * (3 * 4 * S_LEN * H + 2 * S_LEN * H) * tokens
    gemm = est.value("flops.per_step") - core
    return gemm / (est.values[S.N] * est.values[S.F_peak] * est.value("time.gemm_efficiency"))


def test_overlapped_exposure_follows_the_reference_schedule():
    """GPU 0 of deepseek-ai/DualPipe runs 2·(m/2 − p + 1) overlapped pairs in its step 4 and
    p/2 − 1 in its step 5: m − 3p/2 + 1 of its m chunk pairs hide EP and PP traffic."""
    m, p = 16, 4
    est = estimate(small_plan(pp=p, m=m))
    phi = (2 * (m // 2 - p + 1) + (p // 2 - 1)) / m
    assert est.value("communication.overlapped_fraction") == pytest.approx(phi, rel=1e-12)
    T_ovl = est.value("communication.pp_seconds") + est.value("communication.ep_seconds")
    T_comp = est.value("time.compute_seconds")
    hidden = phi * max(0.0, T_ovl - T_comp) + (1 - phi) * T_ovl
    dp_cp = max(0.0, est.value("communication.dp_seconds") - 2 / 3 * T_comp)  # tp = cp = 1
    assert est.value("communication.exposed_seconds_per_step") == pytest.approx(hidden + dp_cp, rel=1e-12)
    one = estimate(small_plan(pp=p, m=m, schedule="1f1b"))  # 1F1B: EP and PP fully exposed
    assert one.value("communication.exposed_seconds_per_step") == pytest.approx(
        one.value("communication.pp_seconds") + max(0.0, one.value("communication.dp_seconds") - 2 / 3 * one.value("time.compute_seconds")),
        rel=1e-12,
    )


# ----- group-limited expert routing -----------------------------------------------------------


def deepseek_plan(*, route=True, schedule="1f1b"):
    model = catalog.model("deepseek-v3")
    if not route:
        model = attrs.evolve(model, moe=attrs.evolve(model.moe, route_groups=None, route_groups_per_token=None))
    return Plan(
        model=model,
        method=Method(kind="pretrain", tokens=14.8e12, seq_len=4096, global_batch=15360, mtp=False),
        precision=Precision(preset="fp8-mixed"),
        cluster=Cluster(gpu=catalog.gpu("h800-sxm"), gpus=2048),
        parallelism=Parallelism(tp=1, pp=16, ep=64, zero=1, recompute="selective", pp_schedule=schedule),
    )


def test_group_limited_ep_traffic_equals_the_hand_derivation():
    """DeepSeek-V3 on 2048 H800, pp 16, ep 64 (8 nodes of 8), no TP: per token and MoE layer a
    dispatch crosses InfiniBand to at most topk_group = 4 of the 8 nodes, 7/8 of them remote:
    3.5 copies; inside each node each of the k = 8 routed copies moves over NVLink unless its
    expert sits on the GPU it arrived at: 8·7/8 = 7 copies. Four all-to-alls (dispatch and
    combine, forward and backward), 4·58/61 MoE layers on a 4-layer stage, m = 120."""
    plan = deepseek_plan()
    est = estimate(plan)
    tok = 2 * 4096 * 7168 * 7 / 8  # bf16 hidden states of one micro-batch; FP8 forward dispatch (§3.3.2)
    moe_layers, m = 4 * 58 / 61, 15360 // 128
    ep_bytes = 4 * moe_layers * m * (3.5 + 7) * tok
    pp_bytes = 2 * m * 2 * 4096 * 7168  # one activation send and one gradient send per micro-batch
    got = est.value("communication.per_step_bytes") - est.value("communication.dp_bytes")
    assert got == pytest.approx(ep_bytes + pp_bytes, rel=1e-12)
    cl = plan.cluster
    ib, nv = cl.inter_link, cl.intra_link
    w_ib = ib.bandwidth * ib.efficiency * cl.nics / cl.per_node  # the node's network share per GPU
    w_nv = nv.bandwidth * nv.efficiency
    one = max(3.5 * tok / w_ib, 7 * tok / w_nv) + 7 * ib.latency + 7 * nv.latency  # IB and NVLink overlap
    assert est.value("communication.ep_seconds") == pytest.approx(4 * moe_layers * m * one, rel=1e-12)
    # without routing groups: the plain all-to-all of k copies, (e − 1)/e of them sent, all at w_ib
    plain = estimate(deepseek_plan(route=False))
    got = plain.value("communication.per_step_bytes") - plain.value("communication.dp_bytes")
    assert got == pytest.approx(4 * moe_layers * m * 8 * 63 / 64 * tok + pp_bytes, rel=1e-12)
    assert plain.value("communication.ep_seconds") == pytest.approx(
        4 * moe_layers * m * (63 * ib.latency + 63 / 64 * 8 * tok / w_ib), rel=1e-12
    )


def test_sequence_parallel_ranks_dispatch_only_their_slice_of_tokens():
    """With tp = 2 and sequence parallelism each TP rank holds s/2 of the sequence and
    dispatches only those tokens: half of the tp = 1 token bytes per all-to-all (the EP
    group now spans t·e = 128 GPUs, 16 nodes, so every copy crosses InfiniBand)."""
    base = deepseek_plan(route=False)
    plan = attrs.evolve(base, parallelism=attrs.evolve(base.parallelism, tp=2))
    assert plan.parallelism.sp
    est = estimate(plan)
    tok = 2 * 4096 * 7168 * 7 / 8 / 2  # bf16 hidden states (FP8 forward dispatch), half the sequence
    moe_layers, m = 4 * 58 / 61, 15360 // 64  # dp = 2048 / (2·16) = 64: 240 micro-batches of one sequence
    cl = plan.cluster
    ib = cl.inter_link
    w_ib = ib.bandwidth * ib.efficiency * cl.nics / cl.per_node
    assert est.value("communication.ep_seconds") == pytest.approx(
        4 * moe_layers * m * (63 * ib.latency + 63 / 64 * 8 * tok / w_ib), rel=1e-12
    )


@pytest.mark.parametrize(("nodes", "dest"), [(8, 4), (16, 8), (2, 2), (4, 4)])
def test_nodes_a_token_reaches(nodes, dest):
    """8 groups of 32 experts, 4 groups per token, top-8: a group is nodes/8 whole nodes (16
    nodes: 2 each, so 4 groups reach 8 nodes) or a node holds 8/nodes whole groups (2 nodes:
    4 groups each; 4 nodes: 2 each, so 4 groups may fill all 4)."""
    from llmplan import symbols as S
    from llmplan.bindings import evaluate
    from llmplan.formulas.comm import group_limited_all_to_all

    sent, _ = group_limited_all_to_all(1)
    vals = {S.k: 8, S.G_r: 8, S.k_G: 4, S.n_epn: nodes, S.n_epl: 8}
    assert evaluate(sent, vals) == pytest.approx(dest * (nodes - 1) / nodes + 8 * 7 / 8, rel=1e-12)


def test_misaligned_groups_warn():
    plan = attrs.evolve(deepseek_plan(), parallelism=Parallelism(tp=1, pp=16, ep=32, zero=1, recompute="selective"))
    assert not any("route_groups" in w for w in estimate(deepseek_plan()).warnings)
    # ep 32 over 4 nodes: 2 whole groups per node, aligned
    assert not any("route_groups" in w for w in estimate(plan).warnings)
    odd = attrs.evolve(plan, model=attrs.evolve(plan.model, moe=attrs.evolve(plan.model.moe, route_groups=16, route_groups_per_token=4)))
    odd = attrs.evolve(odd, cluster=attrs.evolve(odd.cluster, gpus_per_node=6), parallelism=Parallelism(tp=1, pp=16, ep=64, zero=1))
    assert any("do not map onto whole nodes" in w for w in estimate(odd).warnings)


def test_route_group_keys_are_checked():
    with pytest.raises(PlanError) as exc:
        Experts(experts=256, top_k=8, route_groups=8)
    assert "route_groups_per_token" in problems(exc)
    with pytest.raises(PlanError) as exc:
        Experts(experts=256, top_k=8, route_groups=6, route_groups_per_token=4)
    assert "allowed: 1, 2, 4, 8" in problems(exc)["route_groups"]
    with pytest.raises(PlanError) as exc:
        Experts(experts=256, top_k=8, route_groups=64, route_groups_per_token=1)
    assert "fewer than top_k = 8" in problems(exc)["route_groups_per_token"]


# ----- multi-token prediction -----------------------------------------------------------------


def test_mtp_flops_per_token_equal_the_hand_derivation():
    """DeepSeek-V3's MTP module (report §2.2, depth 1), forward FLOPs per token at s = 4096:
    the projection M ∈ R^{h×2h}, one MoE block like the model's (MLA attention: q_a 7168×1536,
    q_b 1536×128·192, kv_a 7168×576, kv_b 512×128·256, o 128·128×7168; core QKᵀ over
    d_qk = 192 and P·V over d_v = 128; 8 routed and 1 shared SwiGLU expert of 2048, router
    7168×256) and the shared output head 7168×129280."""
    h, s, a, V_ = 7168, 4096, 128, 129280
    projection = 2 * (2 * h) * h
    attention = 2 * (h * 1536 + 1536 * a * 192 + h * 576 + 512 * a * 256 + a * 128 * h)
    core = 2 * s * a * 192 + 2 * s * a * 128
    moe = 8 * 2 * 3 * h * 2048 + 2 * 3 * h * 2048 + 2 * h * 256
    head = 2 * h * V_
    mtp = projection + attention + core + moe + head
    assert mtp == 3_565_027_328
    on = estimate(attrs.evolve(deepseek_plan(), method=attrs.evolve(deepseek_plan().method, mtp=None)))
    off = estimate(deepseek_plan())  # mtp = False
    assert on.value("flops.mtp_forward_per_token") == mtp
    assert on.value("flops.per_token") - off.value("flops.per_token") == 3 * mtp
    assert off.value("flops.per_token") == 3 * off.value("flops.forward_per_token")


def test_mtp_switch_defaults_and_errors():
    model = catalog.model("deepseek-v3")
    assert Method(kind="pretrain").trains_mtp(model)
    assert not Method(kind="continued-pretrain").trains_mtp(model)
    assert Method(kind="full-finetune", mtp=True).trains_mtp(model)
    assert not Method(kind="pretrain", mtp=False).trains_mtp(model)
    assert not Method(kind="pretrain").trains_mtp(catalog.model("llama-2-7b"))
    with pytest.raises(PlanError) as exc:
        Method(kind="lora", mtp=True)
    assert "allowed kinds: pretrain, continued-pretrain, full-finetune" in problems(exc)["mtp"]
    with pytest.raises(PlanError) as exc:
        small_plan(mtp=True)
    assert "model.mtp_layers = 0" in problems(exc)["method.mtp"]


def test_dualpipe_gpu_zero_holds_the_trained_mtp_module():
    """Report §2.2: with DualPipe the deepest layers (output head, MTP) share GPU 0 with the
    embedding, so the MTP module's parameters are there: its non-expert part (2 RMSNorms,
    the 2h×h projection, attention, shared expert, router, block norms, final norm) whole
    (tp = 1), its 256 routed experts ÷ ep = 64."""
    dual = deepseek_plan(schedule="dualpipe")
    with_mtp = estimate(attrs.evolve(dual, method=attrs.evolve(dual.method, mtp=True)))
    without = estimate(dual)
    h = 7168
    attention = h * 1536 + 1536 + 1536 * 128 * 192 + h * 576 + 512 + 512 * 128 * 256 + 128 * 128 * h
    dense = 2 * h + 2 * h * h + attention + 3 * h * 2048 + h * 256 + 2 * h + h
    experts = 256 * 3 * h * 2048 // 64
    assert with_mtp.value("memory.params_on_gpu.dense") - without.value("memory.params_on_gpu.dense") == dense
    assert with_mtp.value("memory.params_on_gpu.experts") - without.value("memory.params_on_gpu.experts") == experts


# ----- files ----------------------------------------------------------------------------------


def test_new_keys_round_trip_through_toml():
    model = catalog.model("deepseek-v3")
    plan = Plan(
        model=model,
        method=Method(kind="pretrain", tokens=10**12, seq_len=4096, global_batch=15360, mtp=True),
        cluster=Cluster(gpu=catalog.gpu("h800-sxm"), gpus=2048, intra_node=catalog.link("nvlink4-h800"), inter_node=catalog.link("ib-ndr")),
        parallelism=Parallelism(pp=16, ep=64, zero=1, pp_schedule="dualpipe", comm_sms=24),
    )
    text = llmplan.dump(plan)
    assert "route_groups = 8" in text and "route_groups_per_token = 4" in text
    assert 'pp_schedule = "dualpipe"' in text and "comm_sms = 24" in text and "mtp = true" in text
    assert llmplan.loads(text) == plan


def test_gpu_without_sms_keeps_compute_time():
    gpu = GPU(id="x", name="x", memory=80 * 2**30, memory_bandwidth=2e12, peak={"bf16": 300e12}, nvlink_domain=8)
    est = estimate(small_plan(gpu=gpu))
    assert est.value("time.comm_sm_slowdown") == 1


def test_a_phase_may_switch_to_dualpipe():
    """The pp and comm_sms checks are plan-level, so a [[phase]] may override the schedule alone."""
    from llmplan.plan import Phase

    plan = attrs.evolve(small_plan(schedule="1f1b"), phases=(Phase(name="dual", tokens=10**8, parallelism={"pp_schedule": "dualpipe"}),))
    report = estimate(plan).report()
    assert report["phases"][0]["name"] == "dual"
    with pytest.raises(PlanError) as exc:
        attrs.evolve(small_plan(schedule="1f1b", pp=3, m=16), phases=(Phase(tokens=10**8, parallelism={"pp_schedule": "dualpipe"}),))
    assert any("even number of stages" in p.message for p in exc.value.problems)
