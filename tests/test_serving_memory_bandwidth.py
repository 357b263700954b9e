"""``[efficiency] memory_bandwidth``: the serving memory-bandwidth efficiency η_mem.

The decode step of a small model on one GPU is memory-bound; its bytes are derived by hand
below (weights read once per step + the KV cache at the mean context), so its time is
exactly bytes ÷ (W_hbm · η_mem) for any η_mem the plan gives.
"""

from __future__ import annotations

import attrs
import pytest

import llmplan
from llmplan import PlanError
from llmplan.formulas.serving import DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY
from llmplan.hardware import GPU
from llmplan.model import Dense
from llmplan.plan import Cluster, Efficiency, Method, Parallelism, Plan

W_HBM = 2e12  # B/s
TEST_GPU = GPU(id="test-mbu", name="test MBU", memory=80 * 2**30, memory_bandwidth=W_HBM, peak={"bf16": 1e15}, tdp=700, arch="Hopper")

L, H, A, A_KV, F, V = 2, 64, 4, 2, 160, 256
D = H // A
PROMPT, NEW = 100, 20
MODEL = Dense(layers=L, hidden=H, heads=A, kv_heads=A_KV, ffn=F, vocab=V)

# --- by hand: bf16 weights and KV cache, batch 1, tp = pp = 1 --------------------------------
# a decode step reads every layer's weights (Q/K/V/O: 2·h·a·d + 2·h·a_kv·d; SwiGLU: 3·h·f;
# two RMSNorm weights: 2·h) and the LM head (h·V); not the input embedding (one row) nor
# the final norm
PER_LAYER = 2 * H * A * D + 2 * H * A_KV * D + 3 * H * F + 2 * H  # 12,288 + 30,720 + 128
WEIGHT_BYTES = 2 * (L * PER_LAYER + H * V)
# keys and values of every layer and KV head, at the mean context prompt + new_tokens / 2
KV_BYTES = (PROMPT + NEW // 2) * 2 * L * A_KV * D * 2


def plan(eta: float | None = None, *, batch: int = 1) -> Plan:
    return Plan(
        model=MODEL,
        method=Method(kind="inference", seq_len=PROMPT, new_tokens=NEW, batch=batch),
        cluster=Cluster(gpu=TEST_GPU, gpus=1),
        parallelism=Parallelism(),
        efficiency=Efficiency(memory_bandwidth=eta),
    )


def test_hand_numbers():
    assert WEIGHT_BYTES == 2 * (2 * 43_136 + 16_384) == 205_312
    assert KV_BYTES == 110 * 256 == 28_160


@pytest.mark.parametrize("eta", [None, 1.0, 0.85, 0.5, 0.25])
def test_decode_step_is_bytes_over_bandwidth_times_eta(eta):
    r = llmplan.estimate(plan(eta)).results
    assert r["serving.decode_weight_bytes"] == WEIGHT_BYTES
    assert r["serving.decode_kv_bytes"] == KV_BYTES
    in_force = DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY if eta is None else eta
    expected = (WEIGHT_BYTES + KV_BYTES) / (W_HBM * in_force)
    assert r["time.decode_step_seconds"] == pytest.approx(expected, rel=1e-12)
    # the compute side is far below: 2 FLOPs per weight at 60 % of 1 PFLOP/s
    assert 2 * (L * (PER_LAYER - 2 * H) + H * V) / (1e15 * 0.6) < expected / 100


def test_decode_time_scales_exactly_as_one_over_eta():
    base = llmplan.estimate(plan(1.0)).results["time.decode_step_seconds"]
    for eta in (0.8, 0.5, 0.1):
        got = llmplan.estimate(plan(eta)).results["time.decode_step_seconds"]
        assert got * eta == pytest.approx(base, rel=1e-12)
    default = llmplan.estimate(plan()).results["time.decode_step_seconds"]
    assert default * DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY == pytest.approx(base, rel=1e-12)
    # TPOT and throughput follow (the batch's prefill is memory-bound here too)
    slow, fast = llmplan.estimate(plan(0.35)).results, llmplan.estimate(plan(0.7)).results
    assert slow["time.tpot_seconds"] == pytest.approx(2 * fast["time.tpot_seconds"], rel=1e-12)
    assert slow["throughput.decode_tokens_per_second"] == pytest.approx(fast["throughput.decode_tokens_per_second"] / 2, rel=1e-12)


TOML = """
[model]
layers = 2
hidden = 64
heads = 4
kv_heads = 2
ffn = 160
vocab = 256
[method]
kind = "inference"
seq_len = 100
new_tokens = 20
[cluster]
gpu = "h100-sxm"
gpus = 1
[efficiency]
memory_bandwidth = 0.55
"""


def test_memory_bandwidth_round_trips_toml_and_python():
    p = llmplan.loads(TOML)
    assert p.efficiency.memory_bandwidth == 0.55
    text = llmplan.dump(p)
    assert "memory_bandwidth = 0.55" in text
    assert llmplan.loads(text) == p
    assert attrs.evolve(p, efficiency=Efficiency(memory_bandwidth=0.55)) == p
    # absent: not written, and the default applies
    bare = llmplan.loads(TOML.replace("[efficiency]\nmemory_bandwidth = 0.55\n", ""))
    assert bare.efficiency.memory_bandwidth is None
    assert "memory_bandwidth" not in llmplan.dump(bare).split("[cluster]")[1]  # the catalog GPU is written by its id
    assert llmplan.estimate(p).results["time.decode_step_seconds"] == pytest.approx(
        llmplan.estimate(bare).results["time.decode_step_seconds"] * DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY / 0.55, rel=1e-12
    )


@pytest.mark.parametrize("bad", ["0", "1.5", "-0.2"])
def test_bad_memory_bandwidth_names_key_value_and_range(bad):
    with pytest.raises(PlanError) as info:
        llmplan.loads(TOML.replace("0.55", bad))
    assert [str(p) for p in info.value.problems] == [f"efficiency.memory_bandwidth: {bad} is not in (0, 1]"]


def test_memory_bandwidth_wrong_type_and_python_check():
    with pytest.raises(PlanError) as info:
        llmplan.loads(TOML.replace("0.55", "true"))
    assert [p.path for p in info.value.problems] == ["efficiency.memory_bandwidth"]
    with pytest.raises(PlanError, match=r"memory_bandwidth: 1\.2 is not in \(0, 1\]"):
        Efficiency(memory_bandwidth=1.2)
