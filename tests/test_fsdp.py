"""``[parallelism] sharding = "fsdp"``: what PyTorch FSDP holds and moves, by hand.

The measurement against FSDP2 itself is ``tests/oracle/test_oracle_comm.py``; these checks
need no torch. Llama 2 7B (P parameters), bf16-mixed (bf16 weights, fp32 master, AdamW's
two fp32 states: q_w = 2, q_m = 4, q_o = 8), 64 GPUs of data parallelism.
"""

from __future__ import annotations

import attrs
import pytest

import llmplan
from llmplan import PlanError, catalog, estimate
from llmplan.plan import Cluster, Method, Parallelism, Plan, Precision


def plan(zero=3, sharding="fsdp", grads=None, preset="bf16-mixed"):
    return Plan(
        model=catalog.model("llama-2-7b"),
        method=Method(kind="pretrain", tokens=1e9, seq_len=4096, global_batch=64 * 4),
        precision=Precision(preset=preset, grads=grads),
        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=64),
        parallelism=Parallelism(zero=zero, sharding=sharding),
    )


def test_fsdp_full_shard_holds_fp32_shards_and_no_separate_master():
    """FSDP keeps each parameter sharded in its stored (fp32 master) dtype and its gradient
    shard in that dtype: weights 4P/64, gradients 4P/64, optimizer 8P/64 — where DeepSpeed's
    ZeRO-3 holds bf16 shards, bf16 (or fp32) gradient shards and master + states (12P/64)."""
    est = estimate(plan(grads="fp32"))
    P = est.value("params.total")
    got = [est.value(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer")]
    assert got == pytest.approx([4 * P / 64, 4 * P / 64, 8 * P / 64], rel=1e-12)
    ds = estimate(plan(grads="fp32", sharding="zero"))
    assert [ds.value(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer")] == pytest.approx(
        [2 * P / 64, 4 * P / 64, 12 * P / 64], rel=1e-12)
    # without a master copy (bf16-pure) the shards are bf16
    pure = estimate(plan(preset="bf16-pure"))
    assert pure.value("memory.per_gpu.weights") == pytest.approx(2 * P / 64, rel=1e-12)


def test_fsdp_shard_grad_op_holds_the_compute_copy_and_the_shard():
    """SHARD_GRAD_OP: the unsharded bf16 copy (2P) from forward to backward, the fp32 shard
    it is gathered from with AdamW's states ((4 + 8)P/64), fp32 gradient shards (4P/64)."""
    est = estimate(plan(zero=2, grads="bf16"))
    P = est.value("params.total")
    got = [est.value(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer")]
    assert got == pytest.approx([2 * P, 4 * P / 64, 12 * P / 64], rel=1e-12)


def test_fsdp_has_no_zero_1_and_round_trips():
    toml = ('[model]\npreset = "llama-2-7b"\n[method]\ntokens = "1G"\nglobal_batch = 256\n'
            '[cluster]\ngpu = "h100-sxm"\ngpus = 64\n[parallelism]\nzero = {zero}\nsharding = "fsdp"\n')
    with pytest.raises(PlanError) as exc:
        llmplan.loads(toml.format(zero=1))
    assert "parallelism.zero: 1 with sharding = \"fsdp\"" in str(exc.value) and "2 = SHARD_GRAD_OP" in str(exc.value)
    p = llmplan.loads(toml.format(zero=3))
    assert p.parallelism.sharding == "fsdp"
    assert 'sharding = "fsdp"' in llmplan.dump(p) and llmplan.loads(llmplan.dump(p)) == p
    assert attrs.evolve(p.parallelism, sharding="zero").sharding == "zero"
