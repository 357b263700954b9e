"""RL post-training (``method.kind = "rl"``): GRPO/PPO steps composed of derived plans.

Expected numbers are derived by hand in the test where the test is about a number;
elsewhere the test checks how the parts compose (sums, ratios, monotonicity).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from plans import GPU_A100, LLAMA_7B, NET, NVLINK

import llmplan
from llmplan import PlanError, catalog
from llmplan import symbols as S
from llmplan.estimate import param_counts
from llmplan.plan import RL, Cluster, Cost, Method, Parallelism, Plan
from llmplan.rl import PARTS, RLEstimate, rollout_plan, update_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "qwen3-235b-grpo.toml"

#: Llama-2-7B's shape (tests/plans.py) counted by hand: per layer 4·h² attention + 3·h·f
#: SwiGLU MLP + 2·h norms; embedding and untied head V·h each; final norm h.
H, F, V, LAYERS = 4096, 11008, 32000, 32
PER_LAYER = 4 * H * H + 3 * H * F + 2 * H  # 202,383,360
LLAMA_7B_PARAMS = LAYERS * PER_LAYER + 2 * V * H + H  # 6,738,415,616


def make(*, gpus=8, tp=1, pp=1, zero=1, cost=True, **rl) -> Plan:
    rl.setdefault("prompts_per_step", 32)
    rl.setdefault("prompt_tokens", 512)
    rl.setdefault("response_tokens", 1024)
    return Plan(
        model=LLAMA_7B,
        method=Method(kind="rl", rl=RL(**rl)),
        cluster=Cluster(gpu=GPU_A100, gpus=gpus, intra_node=NVLINK, inter_node=NET),
        parallelism=Parallelism(tp=tp, pp=pp, zero=zero, recompute="full"),
        cost=Cost(gpu_hour=(2.0, "USD")) if cost else None,
        name="test RL",
    )


def rl_report(plan) -> dict:
    return llmplan.estimate(plan).report()["rl"]


def test_parameter_count_of_the_test_shape():
    assert LLAMA_7B_PARAMS == 6_738_415_616
    assert llmplan.estimate(make()).params.total == LLAMA_7B_PARAMS


# --- memory ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
@pytest.mark.parametrize("offload_idle", [False, True])
def test_memory_parts_sum_to_total_for_every_model_and_phase(algorithm, offload_idle):
    report = llmplan.estimate(make(algorithm=algorithm, offload_idle=offload_idle, reward="none")).report()
    rl = report["rl"]
    for role, model in rl["models"].items():
        if model is None:
            continue
        mem = model["memory"]
        assert sum(v for k, v in mem.items() if k != "total") == mem["total"], role
    for name, phase in rl["memory"]["phases"].items():
        per_gpu = phase["per_gpu"]
        assert sum(per_gpu[p] for p in PARTS) == per_gpu["total"], name
    # the top-level memory is the peak phase's, and the peak is the largest phase
    peak = rl["memory"]["peak_phase"]
    assert report["memory"]["per_gpu"] == rl["memory"]["phases"][peak]["per_gpu"]
    assert report["memory"]["per_gpu"]["total"] == max(p["per_gpu"]["total"] for p in rl["memory"]["phases"].values())
    assert report["memory"]["fits"] == (report["memory"]["per_gpu"]["total"] <= report["memory"]["capacity"])


def test_trained_policy_memory_is_the_training_estimate_of_the_derived_plan():
    plan = make(group_size=4)
    derived = update_plan(plan)
    assert derived.method.kind == "full-finetune"
    assert derived.method.seq_len == 512 + 1024
    assert derived.method.global_batch == 32 * 4
    train = llmplan.estimate(derived)
    policy = rl_report(plan)["models"]["policy"]["memory"]
    for part in ("weights", "gradients", "optimizer", "activations", "other", "total"):
        assert policy[part] == train.results[f"memory.per_gpu.{part}"]


def test_reference_weights_by_hand_zero3_shards_them_over_dp():
    # bf16 weights, 2 bytes each, every parameter (the final norm's h included).
    # ZeRO-3 over dp = 8 GPUs (tp = pp = 1): 2 × 6,738,415,616 ÷ 8.
    ref = rl_report(make(zero=3))["models"]["reference"]["memory"]
    assert ref == {"weights": 1_684_603_904, "total": 1_684_603_904}
    assert 2 * LLAMA_7B_PARAMS // 8 == 1_684_603_904
    # ZeRO-1 does not shard weights: the whole frozen copy on every GPU
    assert rl_report(make(zero=1))["models"]["reference"]["memory"]["weights"] == 2 * LLAMA_7B_PARAMS
    # tensor parallelism splits it (vocabulary-parallel embedding and head too); the final norm is replicated
    assert rl_report(make(zero=1, tp=2))["models"]["reference"]["memory"]["weights"] == 2 * ((LLAMA_7B_PARAMS - H) / 2 + H)


def test_reference_none_and_a_reward_model_preset():
    without = rl_report(make(reference="none"))
    assert without["models"]["reference"] is None
    assert "reference" not in without["time"]["scoring"]
    with_rm = rl_report(make(reward="llama-2-7b"))
    rm = with_rm["models"]["reward"]
    assert rm["model"] == "Llama 2 7B" and rm["trained"] is False
    assert rm["memory"]["weights"] == 2 * LLAMA_7B_PARAMS  # same shape as the test policy, ZeRO-1
    assert with_rm["time"]["scoring"]["reward"] == pytest.approx(with_rm["time"]["scoring"]["reference"])


def test_ppo_has_a_trained_critic_and_grpo_does_not():
    grpo = rl_report(make(algorithm="grpo"))
    ppo = rl_report(make(algorithm="ppo", group_size=8))
    assert grpo["models"]["critic"] is None
    assert "critic" not in grpo["time"]["update"] and "critic" not in grpo["time"]["scoring"]
    critic = ppo["models"]["critic"]
    assert critic["trained"] is True and critic["memory"]["gradients"] > 0 and critic["memory"]["optimizer"] > 0
    assert critic["memory"] == ppo["models"]["policy"]["memory"]  # default: the policy's shape
    assert ppo["time"]["update"]["critic"] == pytest.approx(ppo["time"]["update"]["policy"])
    assert ppo["time"]["step_seconds"] > grpo["time"]["step_seconds"]
    assert "update_critic" in ppo["memory"]["phases"] and "update_critic" not in grpo["memory"]["phases"]
    # PPO defaults to one response per prompt (verl / OpenRLHF)
    assert rl_report(make(algorithm="ppo"))["group_size"] == 1


def test_ppo_critic_of_another_shape_is_trained_with_its_own_plan():
    ppo = rl_report(make(algorithm="ppo", critic="qwen3-8b"))
    critic = ppo["models"]["critic"]
    assert critic["model"] == "Qwen3-8B"
    assert critic["params"] == param_counts(catalog.model("qwen3-8b")).total
    assert critic["params"] != ppo["models"]["policy"]["params"]
    assert critic["memory"]["optimizer"] != ppo["models"]["policy"]["memory"]["optimizer"]
    assert ppo["time"]["update"]["critic"] > 0 and ppo["time"]["scoring"]["critic"] > 0


def test_offload_idle_keeps_each_phase_to_its_own_models():
    resident = llmplan.estimate(make(offload_idle=False))
    offloaded = llmplan.estimate(make(offload_idle=True))
    r, o = resident.report()["rl"], offloaded.report()["rl"]
    pol, ref, roll = (r["models"][k]["memory"] for k in ("policy", "reference", "rollout"))
    state = pol["weights"] + pol["gradients"] + pol["optimizer"] + ref["weights"]
    assert r["memory"]["phases"]["rollout"]["per_gpu"]["total"] == state + roll["total"]
    assert o["memory"]["phases"]["rollout"]["per_gpu"]["total"] == roll["total"]
    assert o["memory"]["phases"]["update_policy"]["per_gpu"]["total"] == pol["total"]
    assert r["memory"]["phases"]["update_policy"]["per_gpu"]["total"] == pol["total"] + ref["weights"]
    assert o["memory"]["per_gpu"]["total"] <= r["memory"]["per_gpu"]["total"]


# --- time -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_step_time_is_rollout_plus_scoring_plus_update(algorithm):
    est = llmplan.estimate(make(algorithm=algorithm, reward="llama-2-7b", group_size=4))
    t = est.report()["rl"]["time"]
    assert t["step_seconds"] == pytest.approx(t["rollout_seconds"] + t["scoring_seconds"] + t["update_seconds"], rel=1e-12)
    assert t["rollout_seconds"] == pytest.approx(t["rollout_prefill_seconds"] + t["rollout_decode_seconds"], rel=1e-12)
    assert t["scoring_seconds"] == pytest.approx(sum(t["scoring"].values()), rel=1e-12)
    assert t["update_seconds"] == pytest.approx(sum(t["update"].values()), rel=1e-12)
    assert est.report()["time"]["step_seconds"] == t["step_seconds"]
    assert isinstance(est, RLEstimate) and est.value("rl.time.step_seconds") == t["step_seconds"]


def test_rollout_time_is_waves_of_prefill_and_decode_steps_of_the_inference_plan():
    plan = make(prompts_per_step=32, group_size=4)  # 128 sequences on 8 replicas of tp = pp = 1
    rl = rl_report(plan)
    roll = rl["models"]["rollout"]
    assert (roll["replicas"], roll["sequences_per_replica"], roll["waves"]) == (8, 16, 1)
    serve = llmplan.estimate(rollout_plan(plan, 16)).results
    assert serve["memory.per_gpu.kv_cache"] == roll["memory"]["kv_cache"]
    # Llama-2-7B KV cache: 2 × 32 layers × 4096 × 2 B = 512 KiB per token, 16 × (512 + 1024) tokens
    assert roll["memory"]["kv_cache"] == 2 * 32 * 4096 * 2 * 16 * (512 + 1024)
    assert rl["time"]["rollout_decode_seconds"] == pytest.approx(1024 * serve["time.decode_step_seconds"])
    assert rl["time"]["rollout_prefill_seconds"] == pytest.approx(serve["time.prefill_seconds"])


def test_doubling_response_tokens_increases_rollout_time():
    short = rl_report(make(response_tokens=1024))["time"]
    long = rl_report(make(response_tokens=2048))["time"]
    assert long["rollout_seconds"] > short["rollout_seconds"]
    # twice the decode steps, each over a longer mean context
    assert long["rollout_decode_seconds"] >= 2 * short["rollout_decode_seconds"]
    assert long["update_seconds"] > short["update_seconds"] and long["scoring_seconds"] > short["scoring_seconds"]


def test_rollout_runs_in_waves_when_the_kv_cache_is_full():
    plan = make(prompts_per_step=512, group_size=16, response_tokens=4096)  # 1,024 sequences per GPU
    est = llmplan.estimate(plan)
    roll = est.report()["rl"]["models"]["rollout"]
    assert roll["sequences_per_replica"] == 1024
    assert roll["concurrent_sequences"] == roll["max_batch"] < 1024
    assert roll["waves"] == math.ceil(1024 / roll["max_batch"])
    assert roll["memory"]["total"] <= est.results["memory.capacity"]
    assert any(w.startswith("rollout:") and "waves" in w for w in est.warnings)
    capped = rl_report(attrs.evolve(plan, method=Method(kind="rl", rl=attrs.evolve(plan.method.rl, rollout_batch=64))))
    assert capped["models"]["rollout"]["concurrent_sequences"] == 64 and capped["models"]["rollout"]["waves"] == 16


def test_scoring_is_forward_flops_over_the_achievable_rate():
    plan = make(group_size=4)
    rl = rl_report(plan)
    train = llmplan.estimate(update_plan(plan))
    tokens = 32 * 4 * (512 + 1024)
    eta = train.values[S.eta_gemm]  # the plan's η_gemm (default DEFAULT_GEMM_EFFICIENCY)
    expected = train.results["flops.forward_per_token"] * tokens / (8 * 312e12 * eta)
    assert rl["time"]["scoring"]["reference"] == pytest.approx(expected, rel=1e-12)
    assert rl["time"]["scoring"]["policy"] == pytest.approx(expected, rel=1e-12)  # old log-probs


def test_update_time_is_epochs_times_the_training_step():
    one = rl_report(make(epochs=1))
    two = rl_report(make(epochs=2))
    step = llmplan.estimate(update_plan(make(epochs=1))).results["time.step_seconds"]
    assert one["time"]["update"]["policy"] == pytest.approx(step)
    assert two["time"]["update"]["policy"] == pytest.approx(2 * step)


def test_separate_pools_score_and_train_on_the_training_gpus():
    plan = make(gpus=16, placement="separate", rollout_gpus=8)
    rl = rl_report(plan)
    assert rl["gpus"] == {"rollout": 8, "train": 8}
    assert rl["memory"]["phases"]["rollout"]["gpus"] == "rollout"
    assert rl["memory"]["phases"]["update_policy"]["gpus"] == "training"
    assert rl["models"]["rollout"]["replicas"] == 8
    coloc = rl_report(make(gpus=16))
    # scoring runs on 8 GPUs instead of 16: twice as long
    assert rl["time"]["scoring"]["reference"] == pytest.approx(2 * coloc["time"]["scoring"]["reference"])


def test_run_totals_and_cost_follow_the_step():
    plan = make(steps=100)
    report = llmplan.estimate(plan).report()
    step = report["rl"]["time"]["step_seconds"]
    assert report["time"]["total_seconds"] == pytest.approx(100 * step)
    assert report["time"]["gpu_hours"] == pytest.approx(8 * 100 * step / 3600)
    assert report["cost"]["total"] == pytest.approx(2.0 * 8 * 100 * step / 3600)
    assert report["rl"]["cost"]["per_step"] == pytest.approx(2.0 * 8 * step / 3600)
    no_steps = llmplan.estimate(make()).report()
    assert no_steps["time"]["total_seconds"] is None and no_steps["cost"]["total"] is None
    assert 0 < report["time"]["mfu"] < 1


# --- plan file, errors --------------------------------------------------------------------


def _example_text(old: str, new: str) -> str:
    text = EXAMPLE.read_text()
    assert old in text
    return text.replace(old, new)


def test_unknown_algorithm_suggests_the_closest():
    with pytest.raises(PlanError) as exc:
        llmplan.loads(_example_text('algorithm = "grpo"', 'algorithm = "gpro"'))
    assert [p.path for p in exc.value.problems] == ["method.rl.algorithm"]
    assert "did you mean 'grpo'" in str(exc.value)


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        ('reward = "none"', 'reward = "llama-2-7bb"', "method.rl.reward", "did you mean 'llama-2-7b'"),
        ('placement = "colocated"', 'placement = "colocate"', "method.rl.placement", "did you mean 'colocated'"),
        ('epochs = 1', 'epoch = 1', "method.rl.epoch", "did you mean 'epochs'"),
        ('reference = "policy"', 'critic = "policy"', "method.rl.critic", "grpo has no critic"),
        ('group_size = 8 ', 'group_size = 1 ', "method.rl.group_size", "at least 2"),
        ('placement = "colocated"', 'placement = "separate"', "method.rl.rollout_gpus", "required"),
        ('rollout_pp = 2', 'rollout_pp = 3', "method.rl.rollout_tp", "does not divide the 64 rollout GPUs"),
        ('prompts_per_step = 128', 'prompts_per_step = "2Ki"\nrollout_gpus = 0', "method.rl.rollout_gpus", "not a positive integer"),
        ('kind = "rl"', 'kind = "rlhf"', "method.kind", "did you mean 'rl'"),
        ('kind = "rl"', 'kind = "pretrain"\ntokens = "1T"', "method.rl", "needs kind = \"rl\""),
    ],
)
def test_plan_file_errors(old, new, path, words):
    with pytest.raises(PlanError) as exc:
        llmplan.loads(_example_text(old, new))
    assert path in [p.path for p in exc.value.problems], str(exc.value)
    assert words in str(exc.value)


def test_batch_must_split_over_the_training_data_parallel_replicas():
    with pytest.raises(PlanError) as exc:
        make(prompts_per_step=3, group_size=3)  # 9 sequences, dp = 8
    assert exc.value.problems[0].path == "method.rl.prompts_per_step"
    assert "dp × micro_batch = 8 × 1 = 8" in str(exc.value)


def test_a_reward_model_that_the_layout_cannot_hold_is_named():
    make(tp=16, gpus=16)  # the 32-head policy takes tp = 16
    with pytest.raises(PlanError) as exc:
        make(tp=16, gpus=16, reward="llama-2-13b")  # 40 heads
    [problem] = exc.value.problems
    assert problem.path == "method.rl.reward"
    assert "'llama-2-13b' under the plan's layout: parallelism.tp: 16 does not divide heads = 40" in problem.message


def test_example_fits_round_trips_and_reports_from_the_cli():
    plan = llmplan.load(EXAMPLE)
    assert llmplan.loads(llmplan.dump(plan)) == plan
    out = subprocess.run(
        [sys.executable, "-m", "llmplan", "estimate", str(EXAMPLE), "--json"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rl = report["rl"]
    assert rl["algorithm"] == "grpo" and rl["models"]["critic"] is None and rl["models"]["reward"] is None
    assert report["memory"]["fits"] and rl["memory"]["fits"]
    assert rl["models"]["rollout"]["waves"] == 1 and rl["models"]["rollout"]["replicas"] == 4
    # every model resident at once does not fit 80 GB: the reason the example offloads idle models
    resident = attrs.evolve(plan, method=Method(kind="rl", rl=attrs.evolve(plan.method.rl, offload_idle=False)))
    assert not llmplan.estimate(resident).fits
    text = subprocess.run(
        [sys.executable, "-m", "llmplan", "estimate", str(EXAMPLE)], capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout
    assert "RL post-training" in text and "rollout engine" in text


def test_explain_an_rl_quantity():
    est = llmplan.estimate(make())
    term = est["rl.time.step_seconds"]
    assert {s.name for s in term.expr.free_symbols} == {"T_roll", "T_score", "T_upd"}
    assert "rl.time.rollout_seconds" in term.explain()
    assert est["rl.memory.reference.weights"].value == est.report()["rl"]["models"]["reference"]["memory"]["weights"]
    assert est.rl.time.step_seconds.value == est.value("rl.time.step_seconds")
