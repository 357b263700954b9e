"""Hybrid sharding (``[parallelism] dp_shard``: PyTorch HSDP, MiCS, Megatron's distributed-
optimizer instances): states sharded over groups of ``dp_shard`` data-parallel ranks,
replicated across the groups. Expected values are derived by hand here; FSDP2's real HSDP
collectives and shards are measured in ``tests/oracle/test_oracle_comm.py``."""

from __future__ import annotations

import attrs
import pytest

import llmplan
from llmplan import PlanError
from llmplan import symbols as S
from llmplan.estimate import estimate

from plans import NET, NVLINK, make_plan


def hybrid(plan, **par):
    return attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, **par))


def test_states_shard_over_the_group_not_the_whole_data_parallel_size():
    """ZeRO-3, bf16-mixed, 64 GPUs: weights 2 B, gradients 2 B, fp32 master 4 B + AdamW 8 B per
    parameter, each ÷ 8 with dp_shard = 8 instead of ÷ 64."""
    base = make_plan(zero=3, gpus=64)
    full, grouped = estimate(base), estimate(hybrid(base, dp_shard=8))
    P = full.value("memory.params_on_gpu.dense")
    assert grouped.values[S.n_sh] == 8 and full.values[S.n_sh] == 64
    assert grouped.value("memory.per_gpu.weights") == pytest.approx(2 * P / 8, rel=1e-12)
    assert grouped.value("memory.per_gpu.gradients") == pytest.approx(2 * P / 8, rel=1e-12)
    assert grouped.value("memory.per_gpu.optimizer") == pytest.approx(12 * P / 8, rel=1e-12)
    assert full.value("memory.per_gpu.optimizer") == pytest.approx(12 * P / 64, rel=1e-12)


def test_zero1_groups_move_a_replica_all_reduce_once_per_step():
    """ZeRO-1 (Megatron's distributed optimizer with 8 instances of 8 ranks): per step a
    reduce-scatter of the gradients and an all-gather of the parameters inside the group of 8,
    (7/8)·(q_g + q_w)·P, and an all-reduce of the gradient shard across the 8 replicas,
    2·(7/8)·q_g·P/8 — whatever the number of micro-batches."""
    base = make_plan(zero=1, gpus=64, global_batch=64 * 4)
    est = estimate(hybrid(base, dp_shard=8))
    P = est.value("memory.params_on_gpu.trainable")
    qg, qw = est.values[S.q_g], est.values[S.q_w]
    assert est.values[S.m] == 4
    expected = 7 / 8 * (qg + qw) * P + 2 * 7 / 8 * qg * P / 8
    assert est.value("communication.dp_bytes") == pytest.approx(expected, rel=1e-12)


def test_fsdp_groups_all_reduce_every_micro_batch():
    """FSDP FULL_SHARD with dp_shard = 8 over 64 GPUs, m = 2: per micro-batch two gathers and a
    reduce-scatter inside the group, (7/8)·(2·q_w + q_g)·P, and the replica all-reduce of the
    gradient shard, 2·(7/8)·q_g·P/8 (FSDP2's HSDP, measured by the oracle)."""
    base = attrs.evolve(make_plan(zero=3, gpus=64, global_batch=64 * 2),
                        parallelism=attrs.evolve(make_plan(zero=3).parallelism, sharding="fsdp", dp_shard=8))
    est = estimate(base)
    P = est.value("memory.params_on_gpu.trainable")
    qg, qw = est.values[S.q_g], est.values[S.q_w]
    assert est.values[S.m] == 2
    expected = 2 * (7 / 8 * (2 * qw + qg) * P + 2 * 7 / 8 * qg * P / 8)
    assert est.value("communication.dp_bytes") == pytest.approx(expected, rel=1e-12)


def test_a_node_sized_group_runs_on_nvlink_and_its_replicas_on_one_nic_each():
    """tp = 1, 8 GPUs per node: the shard group of 8 is one node (the test NVLink, 300 GB/s ×
    0.8); the replica group has one member per node, so its ring runs at one GPU's network
    share (the test IB link, 25 GB/s × 0.9)."""
    est = estimate(hybrid(make_plan(zero=3, gpus=64), dp_shard=8))
    assert est.values[S.W_dp] == pytest.approx(NVLINK.bandwidth * NVLINK.efficiency)
    assert est.values[S.W_rep] == pytest.approx(NET.bandwidth * NET.efficiency)
    assert est.values[S.alpha_rep] == pytest.approx(NET.latency)


def test_without_dp_shard_nothing_changes():
    base = make_plan(zero=3, gpus=64)
    # one group of all 64: a single replica, whose all-reduce moves nothing
    assert estimate(hybrid(base, dp_shard=64)).value("communication.dp_bytes") == pytest.approx(
        estimate(base).value("communication.dp_bytes"), rel=1e-12)


BASE = """
[model]
preset = "llama-2-7b"
[method]
tokens = "1T"
seq_len = 4096
global_batch = 1024
[cluster]
gpu = "h100-sxm"
gpus = 64
[parallelism]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        llmplan.loads(text)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    "extra,message",
    [
        ("zero = 3\ndp_shard = 6\n", "parallelism.dp_shard: 6 does not divide dp = 64 (allowed: 1, 2, 4, 8, 16, 32, 64)"),
        ("dp_shard = 8\n", "parallelism.dp_shard: 8 with zero = 0: there are no sharded states to group"),
        ("zero = 3\ndp_shard = 0\n", "parallelism.dp_shard: 0 is not a positive integer"),
        ("zero = 3\ndp_shards = 8\n", "parallelism.dp_shards: unknown key (did you mean 'dp_shard'?)"),
    ],
)
def test_bad_dp_shard_names_the_key(extra, message):
    msgs = problems(BASE + extra)
    assert any(m.startswith(message) for m in msgs), msgs


def test_dp_shard_is_not_modelled_for_moe():
    text = BASE.replace('"llama-2-7b"', '"mixtral-8x7b"') + "zero = 3\ndp_shard = 8\n"
    assert any(m.startswith("parallelism.dp_shard: 8 with a MoE model") for m in problems(text))


def test_toml_round_trip_and_search_note():
    from llmplan.search import search

    plan = llmplan.loads(BASE + "zero = 3\nsharding = \"fsdp\"\ndp_shard = 8\n")
    assert llmplan.loads(llmplan.dump(plan)) == plan
    r = search(plan, top=1, gpus=64)
    assert any("dp_shard is not searched" in n for n in r["notes"])


def test_ask_fewest_gpus_says_what_it_left_out():
    from llmplan.inverse import fewest_gpus

    plan = llmplan.loads(BASE + "zero = 3\nsharding = \"fsdp\"\ndp_shard = 8\n")
    r = fewest_gpus(plan, 365 * 86400, max_gpus=256)
    assert r["notes"] == ["parallelism.dp_shard is not searched: every layout shards over its whole data-parallel group"]
    plain = llmplan.loads(BASE + "zero = 3\n")
    assert fewest_gpus(plain, 365 * 86400, max_gpus=256)["notes"] == []


def test_fsdp_hybrid_time_by_hand():
    """FSDP FULL_SHARD, dp_shard = 8 of 64, m = 2, 32 layers: per micro-batch the group's
    gathers and reduce-scatter, (7/8)·(2·q_w + q_g)·P / W_dp + 3·32·7·α_dp, and the replicas'
    all-reduce of the gradient shard, layer by layer: 2·(7/8)·q_g·(P/8) / W_rep + 32·2·7·α_rep."""
    base = attrs.evolve(make_plan(zero=3, gpus=64, global_batch=64 * 2),
                        parallelism=attrs.evolve(make_plan(zero=3).parallelism, sharding="fsdp", dp_shard=8))
    est = estimate(base)
    v = est.values
    P = est.value("memory.params_on_gpu.trainable")
    group = 7 / 8 * (2 * v[S.q_w] + v[S.q_g]) * P / v[S.W_dp] + 3 * 32 * 7 * v[S.alpha_dp]
    replicas = 2 * 7 / 8 * v[S.q_g] * P / 8 / v[S.W_rep] + 32 * 2 * 7 * v[S.alpha_rep]
    assert est.value("communication.dp_seconds") == pytest.approx(2 * (group + replicas), rel=1e-12)
