"""Ring collectives across nodes: rings side by side over the rail NICs (bindings.ring_link).

Expected bandwidths are hand-derived from the catalog's link figures: a data-parallel
group with ``g`` members on each node runs ``g`` rings, each leaving the node through its
own NIC, so it gets ``g`` GPUs' network share, capped by the NVLink the rings also cross.
The nccl-tests figure the catalog cites (NVIDIA/nccl-tests#119: ~96 GB/s all-reduce bus
bandwidth across 8-GPU A100 nodes with 4 × 200 Gb/s HDR) is that node aggregate.
"""

from __future__ import annotations

import importlib

import pytest

from llmplan import catalog, estimate
from llmplan.plan import Cluster, Method, Parallelism, Plan

B = importlib.import_module("llmplan.bindings")


def plan(tp=1, gpus=64, gpu="h100-sxm", nics=None, cp=1):
    return Plan(
        model=catalog.model("llama-2-7b"),
        method=Method(kind="pretrain", tokens=1e9, seq_len=4096, global_batch=gpus // (tp * cp) * 4),
        cluster=Cluster(gpu=catalog.gpu(gpu), gpus=gpus, nics_per_node=nics),
        parallelism=Parallelism(tp=tp, cp=cp, zero=1),
    )


def test_hgx_h100_data_parallel_over_whole_nodes_gets_the_node_aggregate():
    p = plan(tp=1)
    ib, nv = catalog.link("ib-ndr"), catalog.link("nvlink4")
    share = 400e9 / 8 * ib.efficiency  # one 400 Gb/s NDR port per GPU
    bw, alpha = B.ring_link(p, 1, 64)
    assert bw == pytest.approx(min(8 * share, 450e9 * nv.efficiency), rel=1e-12)  # NVLink's 370.8 GB/s caps 376
    assert alpha == ib.latency


def test_one_member_per_node_keeps_the_per_gpu_share():
    p = plan(tp=8)
    share = 400e9 / 8 * catalog.link("ib-ndr").efficiency
    assert B.ring_link(p, 8, 8)[0] == pytest.approx(share, rel=1e-12)


def test_tp2_leaves_four_rings_per_node():
    p = plan(tp=2)
    share = 400e9 / 8 * catalog.link("ib-ndr").efficiency
    assert B.ring_link(p, 2, 32)[0] == pytest.approx(4 * share, rel=1e-12)


def test_a100_with_four_hdr_ports_matches_nccl_tests_119():
    p = plan(gpu="a100-80gb-sxm", gpus=16, nics=4)
    bw = B.ring_link(p, 1, 16)[0]
    assert bw == pytest.approx(4 * 25e9 * catalog.link("ib-hdr").efficiency, rel=1e-12)  # 94 GB/s
    assert 90e9 < bw < 100e9  # the ~96 GB/s bus bandwidth measured in nccl-tests#119


def test_inside_a_node_nothing_changes():
    p = plan(tp=1, gpus=8)
    assert B.ring_link(p, 1, 8) == B._link_for_span(p, 8)


def test_arrays_equal_numbers():
    import numpy as np

    p = plan(tp=1)
    stride, size = np.array([1, 2, 8, 1, 4]), np.array([64, 32, 8, 8, 1])
    bw, alpha = B.ring_link(p, stride, size)
    for i in range(len(stride)):
        assert (bw[i], alpha[i]) == B.ring_link(p, int(stride[i]), int(size[i]))


def test_data_parallel_time_uses_the_ring_bandwidth():
    """Ring all-reduce of the bf16 gradients over 64 GPUs: 2·(n−1)/n of the buffer at the
    ring bandwidth plus 2·(n−1) latency steps (α–β)."""
    p = plan(tp=1)
    est = estimate(p)
    bw = 450e9 * catalog.link("nvlink4").efficiency  # min(8 × 47, 370.8) GB/s, as above
    alpha = catalog.link("ib-ndr").latency
    grads = 2 * est.value("memory.params_on_gpu.trainable")
    assert est.value("communication.dp_seconds") == pytest.approx(2 * 63 / 64 * grads / bw + 2 * 63 * alpha, rel=1e-9)


def test_context_parallel_and_pipeline_sends_keep_the_per_gpu_share():
    """K/V ring passes and stage-to-stage sends move each GPU's own bytes through its own
    NIC: tp 8 · cp 2 puts the cp group on two nodes, one member each — and even a cp
    group with several members per node would not aggregate (one ring, one boundary hop)."""
    from llmplan import symbols as S

    est = estimate(plan(tp=8, cp=2, gpus=64))
    share = 400e9 / 8 * catalog.link("ib-ndr").efficiency
    assert est.values[S.W_cp] == pytest.approx(share, rel=1e-12)
    assert est.values[S.W_dp] == pytest.approx(share, rel=1e-12)  # tp·cp = 16 ≥ 8: one member per node


def test_zero3_gathers_and_reduces_every_micro_batch():
    """ZeRO-3 frees gathered parameters after use: per micro-batch each of the 32 layers is
    all-gathered twice (forward, backward) and its gradients reduce-scattered — 1.5
    all-reduces' bytes and 3·32 collectives of 63 ring steps; global batch 256 over 64
    replicas of micro-batch 1 is m = 4 micro-batches. The traffic hides behind the whole
    compute (forward prefetch), not only the backward's ⅔."""
    from llmplan.plan import Parallelism as P

    base = plan(tp=1)
    p3 = Plan(model=base.model, method=base.method, cluster=base.cluster, parallelism=P(tp=1, zero=3))
    est = estimate(p3)
    bw = 450e9 * catalog.link("nvlink4").efficiency  # eight rings over whole nodes, capped by NVLink
    alpha = catalog.link("ib-ndr").latency
    grads = 2 * est.value("memory.params_on_gpu.trainable")
    m = 4
    expected = m * (1.5 * 2 * 63 / 64 * grads / bw + 3 * 32 * 63 * alpha)
    assert est.value("communication.dp_seconds") == pytest.approx(expected, rel=1e-9)
    assert est.value("communication.dp_bytes") == pytest.approx(m * 1.5 * 2 * 63 / 64 * grads, rel=1e-9)
    T_comp = est.value("time.compute_seconds")
    exposed = est.value("communication.exposed_seconds_per_step")
    assert exposed == pytest.approx(max(0.0, expected - T_comp), rel=1e-9, abs=1e-12)
    # ZeRO-1 on the same plan: one all-reduce per step, hidden behind ⅔ of the compute
    est1 = estimate(base)
    once = 2 * 63 / 64 * grads / bw + 2 * 63 * alpha
    assert est1.value("communication.dp_seconds") == pytest.approx(once, rel=1e-9)


def test_zero2_reduce_scatters_every_micro_batch_and_gathers_once():
    """ZeRO-2 holds only its gradient shard, so each of the m = 4 micro-batches' backward
    reduce-scatters the gradients ((n−1)/n of the buffer, n−1 ring steps) and the updated
    parameters are all-gathered once per step: 5 half all-reduces."""
    from llmplan.plan import Parallelism as P

    base = plan(tp=1)
    est = estimate(Plan(model=base.model, method=base.method, cluster=base.cluster, parallelism=P(tp=1, zero=2)))
    bw = 450e9 * catalog.link("nvlink4").efficiency
    alpha = catalog.link("ib-ndr").latency
    grads = 2 * est.value("memory.params_on_gpu.trainable")
    half = 63 / 64 * grads / bw + 63 * alpha  # one reduce-scatter or all-gather over 64 ranks
    assert est.value("communication.dp_seconds") == pytest.approx((4 + 1) * half, rel=1e-9)
    assert est.value("communication.dp_bytes") == pytest.approx(5 * 63 / 64 * grads, rel=1e-9)
    # one micro-batch per step: exactly ZeRO-1's single all-reduce
    one = Method(tokens=base.method.tokens, seq_len=base.method.seq_len, global_batch=64)
    est1 = estimate(Plan(model=base.model, method=one, cluster=base.cluster, parallelism=P(tp=1, zero=2)))
    assert est1.value("communication.dp_seconds") == pytest.approx(2 * half, rel=1e-9)


def _with(base, **par):
    import attrs

    return attrs.evolve(base, parallelism=attrs.evolve(base.parallelism, **par))


def test_gathers_move_weights_and_reductions_move_gradients():
    """bf16 weights with fp32 gradients (q_w = 2, q_g = 4), 64 replicas, m = 4: per GPU a
    reduce-scatter or all-gather sends 63/64 of its buffer of P parameters.

    ZeRO-0: all-reduce of the gradients, 2·(63/64)·4P. ZeRO-1: gradients reduce-scattered
    (4P) and updated weights gathered (2P) once: (63/64)·6P. ZeRO-2 (DeepSpeed): m
    reduce-scatters and one gather, (63/64)·(4·4P + 2P). FSDP SHARD_GRAD_OP: m·(63/64)·6P.
    ZeRO-3: m·(63/64)·(2·2P + 4P)."""
    import attrs

    base = plan()
    base = attrs.evolve(base, precision=attrs.evolve(base.precision, grads="fp32"))
    P = estimate(base).value("params.total")
    r = 63 / 64 * P
    expected = {(0, "zero"): 2 * r * 4, (1, "zero"): r * 6, (2, "zero"): r * (4 * 4 + 2), (2, "fsdp"): 4 * r * 6,
                (3, "zero"): 4 * r * (2 * 2 + 4), (3, "fsdp"): 4 * r * (2 * 2 + 4)}
    for (zero, sharding), want in expected.items():
        got = estimate(_with(base, zero=zero, sharding=sharding)).value("communication.dp_bytes")
        assert got == pytest.approx(want, rel=1e-12), (zero, sharding)


def test_zero3_lora_gathers_the_frozen_base_too():
    """LoRA under ZeRO-3 / FSDP: the whole stage (bf16 base and adapters) is all-gathered
    twice per micro-batch, only the adapters' gradients are reduce-scattered —
    m·(63/64)·(2·2·(P + P_a) + 2·P_a) with P the base and P_a the adapter parameters."""
    from llmplan.plan import LoRA

    base = plan()
    lora = Plan(model=base.model, cluster=base.cluster, parallelism=Parallelism(zero=3),
                method=Method(kind="lora", tokens=1e9, seq_len=4096, global_batch=64 * 4, lora=LoRA(rank=16)))
    est = estimate(lora)
    P_a = est.value("params.trainable")  # the adapters
    P = est.value("params.total")  # the model's own parameters (adapters not included)
    assert 0 < P_a < P / 100
    want = 4 * 63 / 64 * (2 * 2 * (P + P_a) + 2 * P_a)
    assert est.value("communication.dp_bytes") == pytest.approx(want, rel=1e-12)


def test_hf_tensor_parallel_without_sp_all_reduces_each_column_input():
    """Backward all-reduces per layer: Megatron's fused QKV + FC1 = 2; Hugging Face modules
    under PyTorch's ColwiseParallel without SP all-reduce each column-parallel projection's
    input gradient: Llama q, k, v + gate, up = 5; DBRX (fused Wqkv + gated experts) = 3; GPT-3
    as a GPT-2 class (fused c_attn, ungated c_fc) = 2; DeepSeek-V3 (MLA q_a_proj,
    kv_a_proj_with_mqa + gate, up) = 4. With SP: 2 for all."""
    import attrs
    from llmplan.formulas.comm import tp_backward_collectives

    def count(model, framework, sp):
        model = catalog.model(model) if isinstance(model, str) else model
        return tp_backward_collectives(Plan(model=model, method=Method(kind="pretrain", tokens=1e9, seq_len=1024, global_batch=8),
                                            cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=8),
                                            parallelism=Parallelism(tp=2, framework=framework, sequence_parallel=sp)))

    assert count("llama-2-7b", "megatron", False) == 2
    assert count("llama-2-7b", "hf", None) == 5  # transformers' tp_plan has no SP: the default under "hf"
    assert count("llama-2-7b", "megatron", None) == 2  # SP by default when tp > 1
    assert count("llama-2-7b", "hf", False) == 5
    assert count("llama-2-7b", "hf", True) == 2
    assert count("dbrx", "hf", False) == 3
    assert count(attrs.evolve(catalog.model("gpt3-175b"), hf_model_type="gpt2"), "hf", False) == 2
    assert count("deepseek-v3", "hf", False) == 4
