"""Layout search: DualPipe in the space, the unsupported-layout policy, results that load
back as plans, and ``sweep(keep=…)`` giving the same numbers as the full sweep.

The search runs on a tiny MoE model on 4 GPUs whose whole layout space is counted by hand
below, so every expected number comes from the rules in docs/search.md, not from a run.
"""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
from plans import GPU_A100, LLAMA_7B, NET, NVLINK

import llmplan
from llmplan.checks import plan_warnings
from llmplan.cli import main
from llmplan.errors import LlmplanError
from llmplan.model import Dense, Experts, MoE
from llmplan.plan import Cluster, Method, Parallelism, Plan
from llmplan.search import (
    _free_plan,
    _plan_for,
    layout_space,
    pipeline_schedules,
    search,
    unsupported_mask,
    unsupported_warnings,
)
from llmplan.sweep import sweep

GPU = attrs.evolve(GPU_A100, id="test-h100-132sm", sms=132)  # an SM count: DualPipe's comm_sms applies
# 4 layers, 2 heads (= 2 KV heads), 2 experts, 1,024-token sequences (cp = 1 only)
TINY = MoE(layers=4, hidden=256, heads=2, ffn=512, vocab=1024, moe=Experts(experts=2, top_k=1))


def tiny_plan(*, model=TINY, gpus=4, gpu=GPU, framework="megatron", batch=4, **par) -> Plan:
    return Plan(
        model=model,
        method=Method(kind="pretrain", tokens=10**9, seq_len=1024, global_batch=batch),
        cluster=Cluster(gpu=gpu, gpus=gpus, intra_node=NVLINK, inter_node=NET),
        parallelism=Parallelism(framework=framework, **par),
    )


def key(layout: dict) -> tuple:
    p = layout["parallelism"]
    return (p["tp"], p["pp"], p["ep"], p["micro_batch"], p["zero"], p["recompute"], p["pp_schedule"], p["virtual_stages"],
            p["recompute_layers"])


# The space of TINY on 4 GPUs, by hand (tp·pp·dp = 4, batch 4 = dp · micro_batch · m, ep | dp):
#   tp pp dp  micro_batch (m)        ep
#   1  1  4   1 (1)                  1, 2
#   1  2  2   1 (2), 2 (1)           1, 2
#   1  4  1   1 (4), 2 (2), 4 (1)    1
#   2  1  2   1 (2), 2 (1)           1, 2
#   2  2  1   1 (4), 2 (2), 4 (1)    1
# 1F1B: all 16; interleaved (pp > 1, pp·v ≤ 4 layers: pp 2, v 2): 4 + 3 = 7;
# DualPipe (even pp, even m): tp1 pp2 m2 (ep 1, 2), tp1 pp4 m4 and m2, tp2 pp2 m4 and m2 = 6.
# Each × 4 ZeRO stages × 3 recompute modes; every one fits (a 25M-parameter model on 80 GiB).
# Full recomputation of some layers (recompute_layers 1 or 2, powers of 2 up to 4 layers ÷ 2),
# kept where they leave a layer of the stage not recomputed (pp · v · n < 4): n = 1 and 2
# on pp = 1 (6 1F1B layouts × 2), n = 1 on pp = 2 (7 1F1B, 4 DualPipe: tp1 m2 ep 1 and 2,
# tp2 m4 and m2); none interleaved (pp · v = 4): 23, × 4 ZeRO stages.
DUALPIPE = {(1, 2, 1, 1), (1, 2, 2, 1), (1, 4, 1, 1), (1, 4, 1, 2), (2, 2, 1, 1), (2, 2, 1, 2)}  # tp, pp, ep, mb
PARTIAL = 6 * 2 + 7 + 4
FEASIBLE = (16 + 7 + 6) * 4 * 3 + PARTIAL * 4
# Reported: the search gives each layout the fewest recomputed layers that fit, so the 6 × 4
# full(2) layouts on pp = 1 become their full(1) twins (everything fits) and appear once
REPORTED = FEASIBLE - 6 * 4
# Enumerated: tp {1, 2} × pp {1, 2, 4} × ep {1, 2} × micro_batch {1, 2, 4, 8} = 48 per 1F1B
# structure, 64 interleaved (pp 2 and 4, v 2 and 4), 32 DualPipe (pp 2 and 4); × 4 ZeRO
# stages × (none, selective, full of every layer, and full of 1 or 2 layers: 5).
EVALUATED = (48 + 64 + 32) * 4 * 5
# Unsupported: ZeRO-2/3 with pp > 1 (10 + 7 + 6 layouts with pp > 1, × 2 stages × 3, and the
# 7 + 4 partial ones with pp = 2, × 2), DualPipe with m < 2·pp under ZeRO-0/1 (every DualPipe
# layout but tp2 pp2 m4: 5 × 2 × 3, and 3 partial × 2) and interleaved with m < pp under
# ZeRO-0/1 (m = 1 on pp 2: tp1 mb2 ep 1 and 2, tp2 mb4: 3 × 2 × 3).
UNSUPPORTED = 23 * 2 * 3 + 11 * 2 + 5 * 2 * 3 + 3 * 2 + 3 * 2 * 3
CLEAN_DUALPIPE = {(2, 2, 1, 1, zero, rec, "dualpipe", None, None) for zero in (0, 1) for rec in ("none", "selective", "full")} | {
    (2, 2, 1, 1, zero, "full", "dualpipe", None, 1) for zero in (0, 1)}


@pytest.fixture(scope="module")
def ranked():
    return search(tiny_plan(), gpus=4, top=FEASIBLE, unsupported="rank")


# ----- DualPipe in the space -------------------------------------------------------------


def test_dualpipe_is_searched_for_moe_training_only():
    assert pipeline_schedules(tiny_plan(), [1, 2, 4]) == ["1f1b", "interleaved", "dualpipe"]
    dense = Dense(layers=4, hidden=256, heads=2, ffn=512, vocab=1024)
    assert "dualpipe" not in pipeline_schedules(tiny_plan(model=dense), [1, 2, 4])
    # ... unless the plan asks for it
    assert "dualpipe" in pipeline_schedules(tiny_plan(model=dense, pp=2, pp_schedule="dualpipe"), [1, 2, 4])
    assert "dualpipe" not in pipeline_schedules(tiny_plan(), [1, 3])  # no even pp
    inference = attrs.evolve(tiny_plan(), method=Method(kind="inference", seq_len=1024, batch=1))
    assert "dualpipe" not in pipeline_schedules(inference, [1, 2, 4])
    # 20 SMs for communication (the default) need a GPU with more than 20
    assert "dualpipe" not in pipeline_schedules(tiny_plan(gpu=attrs.evolve(GPU, sms=20)), [1, 2, 4])
    assert "dualpipe" in pipeline_schedules(tiny_plan(gpu=attrs.evolve(GPU, sms=None)), [1, 2, 4])


def test_search_counts_and_dualpipe_layouts_match_the_hand_count(ranked):
    assert ranked["evaluated"] == EVALUATED
    assert ranked["feasible"] == FEASIBLE
    assert ranked["unsupported"] == {"policy": "rank", "feasible": UNSUPPORTED}
    assert len(ranked["layouts"]) == REPORTED  # top = every feasible layout, full(2) on pp = 1 as full(1)
    dual = [lay for lay in ranked["layouts"] if lay["parallelism"]["pp_schedule"] == "dualpipe"]
    assert {(p["tp"], p["pp"], p["ep"], p["micro_batch"]) for p in (lay["parallelism"] for lay in dual)} == DUALPIPE
    assert len(dual) == len(DUALPIPE) * 12 + 4 * 4  # + the partial recomputation of 1 layer on pp = 2
    for lay in dual:
        p = lay["parallelism"]
        m = 4 // (p["dp"] * p["micro_batch"])
        assert p["pp"] % 2 == 0 and m % 2 == 0
        assert p["comm_sms"] == 20 and p["virtual_stages"] is None
    assert all(lay["parallelism"]["comm_sms"] is None for lay in ranked["layouts"] if lay not in dual)


def test_no_dualpipe_for_a_dense_model_or_an_odd_pipeline():
    dense = Dense(layers=4, hidden=256, heads=2, ffn=512, vocab=1024)
    res = search(tiny_plan(model=dense), gpus=4, top=1000, unsupported="rank")
    assert res["layouts"] and not any(lay["parallelism"]["pp_schedule"] == "dualpipe" for lay in res["layouts"])
    # 3 layers on 3 GPUs: pp ∈ {1, 2, 3} is searched, but pp = 2 does not divide 3 GPUs
    three = MoE(layers=3, hidden=256, heads=1, ffn=512, vocab=1024, moe=Experts(experts=2, top_k=1))
    plan = tiny_plan(model=three, gpus=3, batch=6)
    assert "dualpipe" in layout_space(plan, [3])["pp_schedule"]
    res = search(plan, gpus=3, top=1000, unsupported="rank")
    assert {lay["parallelism"]["pp"] for lay in res["layouts"]} == {1, 3}
    assert not any(lay["parallelism"]["pp_schedule"] == "dualpipe" for lay in res["layouts"])


def test_the_plans_comm_sms_goes_to_dualpipe_layouts_only():
    plan = tiny_plan(pp=2, pp_schedule="dualpipe", comm_sms=32)
    res = search(plan, gpus=4, top=FEASIBLE, unsupported="rank")
    assert len(res["layouts"]) == REPORTED
    for lay in res["layouts"]:
        p = lay["parallelism"]
        assert p["comm_sms"] == (32 if p["pp_schedule"] == "dualpipe" else None)


# ----- unsupported layouts ---------------------------------------------------------------


def test_unsupported_layouts_rank_last_by_default(ranked):
    res = search(tiny_plan(), gpus=4, top=FEASIBLE)
    assert res["unsupported"] == {"policy": "last", "feasible": UNSUPPORTED}
    flags = [bool(lay["unsupported"]) for lay in res["layouts"]]
    assert flags == [False] * (REPORTED - UNSUPPORTED) + [True] * UNSUPPORTED
    # inside each class, by time; the same layouts as ranked with the others
    for part in (res["layouts"][: REPORTED - UNSUPPORTED], res["layouts"][REPORTED - UNSUPPORTED :]):
        times = [lay["time"]["total_seconds"] for lay in part]
        assert times == sorted(times)
    assert {key(lay) for lay in res["layouts"]} == {key(lay) for lay in ranked["layouts"]}
    times = [lay["time"]["total_seconds"] for lay in ranked["layouts"]]
    assert times == sorted(times)
    assert all(not lay["unsupported"] for lay in res["pareto"])


def test_unsupported_layouts_can_be_dropped():
    res = search(tiny_plan(), gpus=4, top=FEASIBLE, unsupported="drop")
    assert res["feasible"] == FEASIBLE and res["unsupported"]["feasible"] == UNSUPPORTED
    assert len(res["layouts"]) == REPORTED - UNSUPPORTED
    assert not any(lay["unsupported"] for lay in res["layouts"] + res["pareto"])
    dual = {key(lay) for lay in res["layouts"] if lay["parallelism"]["pp_schedule"] == "dualpipe"}
    assert dual == CLEAN_DUALPIPE  # tp 2, pp 2, m = 4 = 2·pp, ZeRO-0/1
    with pytest.raises(LlmplanError, match="allowed: last, drop, rank"):
        search(tiny_plan(), gpus=4, unsupported="hide")


def test_each_unsupported_layout_names_its_warnings(ranked):
    for lay in ranked["layouts"]:
        p = lay["parallelism"]
        m = 4 // (p["dp"] * p["micro_batch"])
        zero_pp = p["zero"] >= 2 and p["pp"] > 1
        short = p["pp_schedule"] == "dualpipe" and m < 2 * p["pp"]
        few = p["pp_schedule"] == "interleaved" and m < p["pp"]
        assert len(lay["unsupported"]) == zero_pp + short + few
        if few:
            assert any(w.startswith(f'parallelism.pp_schedule = "interleaved" with {m} micro-batches') for w in lay["unsupported"])
        assert set(lay["unsupported"]) <= set(lay["warnings"])
        if zero_pp:
            assert any(w.startswith(f"parallelism.zero = {p['zero']} with pp = {p['pp']}") for w in lay["unsupported"])


@pytest.mark.parametrize("framework", ["megatron", "hf"])
def test_vectorised_flags_equal_the_plan_warnings(framework):
    """Every valid row of the tiny space: ``unsupported_mask`` = the scalar warnings."""
    base = _free_plan(tiny_plan(framework=framework), tiny_plan().cluster)
    sw = sweep(base, keep="valid", **layout_space(base, [4]))
    mask = unsupported_mask(base, sw.layout)
    assert len(sw) == FEASIBLE
    for i, row in enumerate(sw.rows(range(len(sw)))):
        plan = _plan_for(base, row)
        assert mask[i] == bool(unsupported_warnings(plan_warnings(plan))), row
    # under framework = "hf", selective recomputation is one more unsupported case
    selective = sw.layout["recompute"] == "selective"
    assert mask[selective].all() == (framework == "hf")


# ----- results load back as plans --------------------------------------------------------


def test_search_results_round_trip_into_plans_that_estimate_accepts(tmp_path, capsys, ranked):
    """A consumer's path: the report's parallelism and cluster into the plan, TOML, ``llmplan
    estimate``: same numbers. One layout per schedule, supported or not."""
    plan = tiny_plan()
    picks = {}
    for lay in ranked["layouts"]:
        picks.setdefault((lay["parallelism"]["pp_schedule"], bool(lay["unsupported"])), lay)
    assert len(picks) == 6
    for (schedule, _), lay in picks.items():
        par = {k: v for k, v in lay["parallelism"].items() if v is not None}
        p = attrs.evolve(plan, cluster=attrs.evolve(plan.cluster, gpus=lay["cluster"]["gpus"]), parallelism=Parallelism(**par))
        path = tmp_path / f"{schedule}.toml"
        path.write_text(llmplan.dump(p))
        assert main(["estimate", str(path), "--json"]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["time"]["total_seconds"] == pytest.approx(lay["time"]["total_seconds"], rel=1e-12)
        assert rep["memory"]["per_gpu"]["total"] == lay["memory"]["per_gpu"]["total"]
        assert rep["warnings"] == lay["warnings"]


def test_cli_search_json_and_text_show_the_policy(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(llmplan.dump(tiny_plan()))
    assert main(["search", str(path), "--gpus", "4", "--top", "3", "--json", "--unsupported", "rank"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unsupported"] == {"policy": "rank", "feasible": UNSUPPORTED}
    assert all("unsupported" in lay and "comm_sms" in lay["parallelism"] for lay in out["layouts"] + out["pareto"])
    assert main(["search", str(path), "--gpus", "4", "--top", str(FEASIBLE)]) == 0
    text = capsys.readouterr().out
    assert f"{UNSUPPORTED:,} of them unsupported" in text and "ranked last" in text
    assert "dualpipe" in text
    # the unsupported rows are the last ones, marked "!", and their warnings are listed with "!"
    rows = [line.split() for line in text.splitlines() if line.split()[1:2] == [GPU.id]]
    assert [r[0] for r in rows] == [f"{i}{'!' if i > REPORTED - UNSUPPORTED else ''}" for i in range(1, REPORTED + 1)]
    assert "! parallelism.zero = 2 with pp = 2" in text


# ----- sweep(keep=…) ---------------------------------------------------------------------


def test_keeping_only_what_fits_changes_no_number():
    """``keep="fits"`` and ``"valid"`` evaluate fewer rows; the rows kept are the full sweep's, bit for bit."""
    plan = Plan(
        model=LLAMA_7B,
        method=Method(kind="pretrain", tokens=10**11, seq_len=4096, global_batch=256),
        cluster=Cluster(gpu=attrs.evolve(GPU, memory=24 * 2**30), gpus=64, intra_node=NVLINK, inter_node=NET),
        parallelism=Parallelism(),
    )
    base = _free_plan(plan, plan.cluster)
    axes = layout_space(base, [16, 64])
    full = sweep(base, **axes)
    assert full.enumerated == len(full) and 0 < full.fits.sum() < full.valid.sum() < len(full)
    for keep, mask in (("valid", full.valid), ("fits", full.fits)):
        part = sweep(base, keep=keep, **axes)
        assert part.enumerated == len(full) and len(part) == mask.sum()
        for k, v in full.layout.items():
            assert np.array_equal(v[mask], part.layout[k]), k
        for k, v in full.results.items():
            assert np.array_equal(v[mask], part.results[k]), k
        assert np.array_equal(full.fits[mask], part.fits)
    with pytest.raises(LlmplanError, match="allowed: all, valid, fits"):
        sweep(base, keep="some", **axes)


def test_an_fsdp_plan_searches_the_fsdp_stages():
    # FSDP has no ZeRO-1: NO_SHARD, SHARD_GRAD_OP and FULL_SHARD are searched
    res = search(tiny_plan(sharding="fsdp"), gpus=4, top=1000, unsupported="rank")
    assert {lay["parallelism"]["zero"] for lay in res["layouts"]} == {0, 2, 3}


def test_hf_layouts_have_no_sequence_parallelism_by_default():
    # transformers' tp_plan has no SP; the sweep's numbers equal the scalar estimate's
    res = search(tiny_plan(framework="hf"), gpus=4, top=1000, unsupported="rank")
    tp2 = [lay for lay in res["layouts"] if lay["parallelism"]["tp"] == 2]
    assert tp2 and not any(lay["parallelism"]["sequence_parallel"] for lay in tp2)
    meg = search(tiny_plan(), gpus=4, top=1000, unsupported="rank")
    assert all(lay["parallelism"]["sequence_parallel"] for lay in meg["layouts"] if lay["parallelism"]["tp"] == 2)
