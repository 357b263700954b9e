"""Uneven pipeline stages (``first_stage_layers`` / ``last_stage_layers``) and the most loaded rank.

Expected values are derived by hand in each test, or walked from Megatron-Core's schedule
(``schedule_peak`` in ``test_pipeline_schedule.py``, which follows ``schedules.py`` and not
llmplan's formulas).
"""

from __future__ import annotations

import attrs
import pytest

import llmplan
from llmplan import PlanError
from llmplan import symbols as S
from llmplan.estimate import estimate
from llmplan.model import Dense
from llmplan.plan import Parallelism

from plans import make_plan
from test_pipeline_schedule import schedule_peak

MODEL_32 = Dense(layers=32, hidden=1024, heads=16, ffn=2816, vocab=32000)
# one layer by hand: attention 4·h² (no biases), SwiGLU 3·h·f, two RMSNorms 2·h
LAYER_PARAMS = 4 * 1024**2 + 3 * 1024 * 2816 + 2 * 1024
assert LAYER_PARAMS == 12_847_104


def uneven(plan, **keys):
    return attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, **keys))


@pytest.mark.parametrize(
    "layers,par,expected",
    [
        (126, Parallelism(pp=16, first_stage_layers=7, last_stage_layers=7), (7,) + (8,) * 14 + (7,)),  # Llama 3 405B
        (10, Parallelism(pp=4), (3, 3, 2, 2)),
        (32, Parallelism(pp=4), (8, 8, 8, 8)),
        (10, Parallelism(pp=4, last_stage_layers=1), (3, 3, 3, 1)),
        (10, Parallelism(pp=4, first_stage_layers=1), (1, 3, 3, 3)),
        (32, Parallelism(pp=4, first_stage_layers=6), (6, 9, 9, 8)),
        (10, Parallelism(pp=2, first_stage_layers=4, last_stage_layers=6), (4, 6)),
        (10, Parallelism(pp=1), (10,)),
    ],
)
def test_stage_layers(layers, par, expected):
    assert par.stage_layers(layers) == expected
    assert sum(expected) == layers


def test_even_split_keeps_one_evaluation():
    est = estimate(make_plan(model=MODEL_32, pp=4, gpus=64))
    assert est.stage_memory == []
    assert "pipeline_ranks" not in est.report()["memory"]


def test_a_middle_rank_can_be_the_most_loaded_1f1b():
    """32 layers on 4 stages with 6 on the first: (6, 9, 9, 8). 1F1B with m = 8: rank 0 holds
    6 layers × 4 micro-batches = 24 layer-micro-batches and the embedding, rank 1 holds
    9 × 3 = 27 (the walk) and nothing else. With ZeRO-0 bf16 weights rank 1's are
    2 B × 9 × LAYER_PARAMS, rank 0's 2 B × (6 × LAYER_PARAMS + V·h)."""
    plan = uneven(make_plan(model=MODEL_32, pp=4, gpus=64, global_batch=16 * 8), first_stage_layers=6)
    est = estimate(plan)
    assert est.values[S.m] == 8
    assert schedule_peak(4, 1, 8, 9, rank=1) == 27
    ranks = est.report()["memory"]["pipeline_ranks"]
    assert [(r["rank"], r["layers"]) for r in ranks] == [(0, 6), (1, 9), (3, 8)]
    assert [r["reported"] for r in ranks] == [False, True, False]
    A = est.value("memory.activations_per_layer")
    assert est.value("memory.per_gpu.activations") == pytest.approx(27 * A, rel=1e-12)
    assert est.value("memory.per_gpu.weights") == pytest.approx(2 * 9 * LAYER_PARAMS, rel=1e-12)
    # rank 0 evaluated on its own terms
    first = {r["rank"]: r["total"] for r in ranks}[0]
    rank0_weights = 2 * (6 * LAYER_PARAMS + 32000 * 1024)
    rank0_acts = schedule_peak(4, 1, 8, 6, rank=0) * A
    others = est.value("memory.per_gpu.total") - est.value("memory.per_gpu.weights") - est.value("memory.per_gpu.activations")
    # gradients and optimizer states scale with the parameters like the weights (ZeRO-0)
    per_param = others - est.value("memory.per_gpu.other")
    assert first == pytest.approx(
        rank0_weights + rank0_acts + per_param * (6 * LAYER_PARAMS + 32000 * 1024) / (9 * LAYER_PARAMS)
        + est.value("memory.per_gpu.other"),
        rel=1e-9,
    )


def test_a_middle_rank_interleaved_matches_the_walk():
    """(4, 12, 12, 4) layers, v = 2 (chunks of 2 and 6 layers), m = 8: rank 1 warms up with
    2·(4 − 1 − 1) + (2 − 1)·4 = 8 chunk forwards, then one more: 9 chunks × 6 layers = 54."""
    plan = make_plan(model=MODEL_32, pp=4, gpus=64, global_batch=16 * 8, schedule="interleaved", virtual=2)
    est = estimate(uneven(plan, first_stage_layers=4, last_stage_layers=4))
    assert schedule_peak(4, 2, 8, 6, rank=1) == 54
    assert est.values[S.i_pp] == 1
    A = est.value("memory.activations_per_layer")
    assert est.value("memory.per_gpu.activations") == pytest.approx(54 * A, rel=1e-12)
    assert not any("virtual_stages" in w for w in est.warnings)  # 4 and 12 both split in 2


def test_the_last_rank_can_be_the_most_loaded():
    """(2, 2, 2, 26): the last rank holds 26 layers, the final norm and the LM head — weights
    2 B × (26 × LAYER_PARAMS + h + V·h) — one micro-batch of activations and the logits."""
    est = estimate(uneven(make_plan(model=MODEL_32, pp=4, gpus=64), first_stage_layers=2, last_stage_layers=26))
    assert est.values[S.i_pp] == 3
    assert est.value("memory.per_gpu.weights") == pytest.approx(2 * (26 * LAYER_PARAMS + 1024 + 32000 * 1024), rel=1e-12)
    A = est.value("memory.activations_per_layer")
    logits = est.value("memory.per_gpu.activations") - 26 * A
    seq, mb, q_a = 4096, 1, 2
    assert logits == pytest.approx((q_a + 4) * seq * mb * 32000, rel=1e-12)  # bf16 logits and their fp32 copy


def test_the_first_rank_stays_reported_when_it_is_the_fullest():
    est = estimate(uneven(make_plan(model=MODEL_32, pp=4, gpus=64), first_stage_layers=10))
    assert est.values[S.i_pp] == 0
    assert est.values[S.L_s] == 10


def _iota(plan):
    est = estimate(plan)
    F = est.value("flops.per_step") / (est.values[S.B] * est.values[S.s])
    return est.value("time.stage_imbalance"), F


def test_imbalance_follows_the_fullest_and_the_last_stage():
    """(6, 9, 9, 8): ι = 4·max(9·F_l, 8·F_l + F_head)/F with F_l = (F − F_head)/32 and
    F_head = 6·h·V. With a 1K vocabulary the head costs less than a layer and the 9-layer
    stages set the pace; with 32K it costs more, and the last stage (8 layers + head) does."""
    small = attrs.evolve(MODEL_32, vocab=1000)
    iota, F = _iota(uneven(make_plan(model=small, pp=4, gpus=64), first_stage_layers=6))
    head = 6 * 1024 * 1000
    layer = (F - head) / 32
    assert head < layer
    assert iota == pytest.approx(4 * 9 * layer / F, rel=1e-12)
    iota, F = _iota(uneven(make_plan(model=MODEL_32, pp=4, gpus=64), first_stage_layers=6))
    head = 6 * 1024 * 32000
    layer = (F - head) / 32
    assert head > layer
    assert iota == pytest.approx(4 * (8 * layer + head) / F, rel=1e-12)


def test_balancing_the_ends_removes_the_heads_imbalance():
    """The Llama 3 405B recipe on a small model: 30 layers on 4 stages, one fewer on the
    last — (8, 8, 8, 6) — keeps ι at 4·8·F_l/F as long as two layers cost more than the head."""
    model = attrs.evolve(MODEL_32, layers=30)
    iota, F = _iota(uneven(make_plan(model=model, pp=4, gpus=64), last_stage_layers=6))
    head = 6 * 1024 * 32000
    layer = (F - head) / 30
    assert iota == pytest.approx(4 * 8 * layer / F, rel=1e-12)


BASE = """
[model]
preset = "llama-3.1-405b"
[method]
tokens = "15T"
seq_len = 8192
global_batch = 2048
[cluster]
gpu = "h100-sxm"
gpus = 16384
[parallelism]
tp = 8
pp = 16
pp_schedule = "interleaved"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        llmplan.loads(text)
    return [str(p) for p in info.value.problems]


def test_toml_keys_round_trip():
    plan = llmplan.loads(BASE + "first_stage_layers = 7\nlast_stage_layers = 7\n")
    assert plan.parallelism.stage_layers(126) == (7,) + (8,) * 14 + (7,)
    assert llmplan.loads(llmplan.dump(plan)) == plan


@pytest.mark.parametrize(
    "extra,message",
    [
        ("first_stage_layers = 0\n", "parallelism.first_stage_layers: 0 is not a positive integer"),
        ("first_stage_layers = 60\nlast_stage_layers = 60\n",
         "parallelism.last_stage_layers: first_stage_layers = 60 + last_stage_layers = 60 leaves 6 layer(s) for the other 14 stage(s)"),
        ("first_stage_layer = 7\n", "parallelism.first_stage_layer: unknown key (did you mean 'first_stage_layers'?)"),
    ],
)
def test_bad_stage_layers_name_the_key(extra, message):
    assert any(m.startswith(message) for m in problems(BASE + extra)), problems(BASE + extra)


def test_stage_layers_need_a_pipeline_and_not_dualpipe():
    text = BASE.replace("pp = 16", "pp = 1").replace('pp_schedule = "interleaved"', "") + "last_stage_layers = 7\n"
    assert any(m.startswith("parallelism.last_stage_layers: set with pp = 1") for m in problems(text))
    text = BASE.replace('"interleaved"', '"dualpipe"') + "first_stage_layers = 7\n"
    assert any("dualpipe" in m and m.startswith("parallelism.first_stage_layers") for m in problems(text))
    two = BASE.replace("pp = 16", "pp = 2").replace('pp_schedule = "interleaved"', "")
    assert any(m.startswith("parallelism.last_stage_layers: first_stage_layers = 60 + last_stage_layers = 60 ≠ layers = 126")
               for m in problems(two + "first_stage_layers = 60\nlast_stage_layers = 60\n"))


def test_uneven_middle_and_chunks_warn():
    plan = llmplan.loads(BASE + "first_stage_layers = 6\n")  # 120 layers over 15 stages: 8 each
    est = estimate(plan)
    assert not any("unevenly" in w for w in est.warnings)
    assert not any("does not divide every stage's layers" in w for w in est.warnings)  # 6 and 8 split in 2
    plan = llmplan.loads(BASE + "first_stage_layers = 7\nlast_stage_layers = 7\n")
    warnings = estimate(plan).warnings
    assert any("virtual_stages = 2 does not divide every stage's layers (7, 8)" in w for w in warnings)
    plan = llmplan.loads(BASE + "first_stage_layers = 5\n")  # 121 over 15: 9 × 1 + 8 × 14
    assert any("split 121 layers unevenly (9 or 8 each" in w for w in estimate(plan).warnings)


def test_search_splits_evenly():
    from llmplan.search import search

    plan = uneven(make_plan(model=MODEL_32, pp=4, gpus=64), first_stage_layers=6)
    result = search(plan, top=3)
    assert result["layouts"]
    assert any("first_stage_layers" in n for n in result["notes"])
    assert search(make_plan(model=MODEL_32, pp=4, gpus=64), top=1)["notes"] == []
    # Megatron-Core's flags belong to one pp as well: every layout splits evenly (was a PlanError at pp = 1)
    flagged = search(uneven(make_plan(model=MODEL_32, pp=4, gpus=64), account_for_embedding_in_pipeline_split=True), top=3)
    assert any("account_for_*_in_pipeline_split" in n for n in flagged["notes"])
    assert all("pipeline_ranks" not in rep["memory"] for rep in flagged["layouts"])
    for rep in result["layouts"]:
        assert rep["parallelism"].get("first_stage_layers") is None
        assert "pipeline_ranks" not in rep["memory"]


def test_the_text_report_names_the_reported_rank(capsys):
    from pathlib import Path

    from llmplan.cli import main

    example = Path(__file__).resolve().parents[1] / "examples/llama3-405b-pretrain.toml"
    assert main(["estimate", str(example)]) == 0
    out = capsys.readouterr().out
    assert "Memory on the most loaded GPU (pipeline rank 1, 8 layers)" in out
    assert "ranks compared  0: 7 layers" in out and "15: 7 layers" in out


def _rank_total(plan, rank: int) -> float:
    """memory.per_gpu.total of pipeline rank ``rank``, evaluated on its own (brute force)."""
    from llmplan.bindings import plan_values
    from llmplan.estimate import Estimate, definitions, param_counts

    pc = param_counts(plan.model)
    values, _ = plan_values(plan, pc.total, pc.active)
    layers = plan.parallelism.stage_layers(plan.model.layers)
    stage = "first" if rank == 0 else "last" if rank == plan.parallelism.pp - 1 else "middle"
    values[S.L_s], values[S.i_pp] = layers[rank], rank
    results = Estimate._evaluate(definitions(plan, stage), values)
    return results["memory.per_gpu.total"]


from hypothesis import given, settings  # noqa: E402
from test_invariants import uneven_plans  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(uneven_plans())
def test_no_unexamined_rank_holds_more(plan):
    """Every pipeline rank evaluated one by one: none holds more than the reported GPU (the
    middle ranks after rank 1 hold no more layers and fewer in-flight micro-batches)."""
    est = estimate(plan)
    totals = [_rank_total(plan, r) for r in range(plan.parallelism.pp)]
    assert est.value("memory.per_gpu.total") == pytest.approx(max(totals), rel=1e-12)


@pytest.mark.parametrize(
    "layers,par,expected",
    [
        # Megatron-Core: the embedding and the loss count as a layer each: 128 ÷ 16 = 8 per stage
        (126, Parallelism(pp=16, account_for_embedding_in_pipeline_split=True, account_for_loss_in_pipeline_split=True),
         (7,) + (8,) * 14 + (7,)),
        (31, Parallelism(pp=4, account_for_loss_in_pipeline_split=True), (8, 8, 8, 7)),
        (31, Parallelism(pp=4, account_for_embedding_in_pipeline_split=True), (7, 8, 8, 8)),
        # 127 + 1 = 128 is not a multiple of 3: the first stages take one more (43, 43, 42), then − 1 on the first
        (127, Parallelism(pp=3, account_for_embedding_in_pipeline_split=True), (42, 43, 42)),
    ],
)
def test_megatron_account_for_flags(layers, par, expected):
    assert par.stage_layers(layers) == expected
    assert sum(expected) == layers and par.uneven_stages


def test_account_flags_equal_the_explicit_counts():
    explicit = llmplan.loads(BASE + "first_stage_layers = 7\nlast_stage_layers = 7\n")
    flags = llmplan.loads(BASE + "account_for_embedding_in_pipeline_split = true\naccount_for_loss_in_pipeline_split = true\n")
    a, b = estimate(explicit), estimate(flags)
    assert a.report()["memory"]["pipeline_ranks"] == b.report()["memory"]["pipeline_ranks"]
    assert a.value("time.step_seconds") == b.value("time.step_seconds")


@pytest.mark.parametrize(
    "extra,message",
    [
        ("account_for_loss_in_pipeline_split = true\nlast_stage_layers = 7\n",
         "parallelism.account_for_loss_in_pipeline_split: true together with last_stage_layers"),
        ("account_for_embedding_in_pipeline_split = 1\n",
         "parallelism.account_for_embedding_in_pipeline_split: 1 is not true or false"),
        ("account_for_embedding_in_pipline_split = true\n",
         "parallelism.account_for_embedding_in_pipline_split: unknown key (did you mean 'account_for_embedding_in_pipeline_split'?)"),
    ],
)
def test_bad_account_flags_name_the_key(extra, message):
    assert any(m.startswith(message) for m in problems(BASE + extra)), problems(BASE + extra)


def test_account_flags_warn_when_megatron_would_refuse_the_split():
    plan = llmplan.loads(BASE + "account_for_embedding_in_pipeline_split = true\n")  # 127 over 16 × 2 chunks
    assert any("layers + embedding + loss = 127 is not a multiple of 32" in w for w in estimate(plan).warnings)
    plan = llmplan.loads(BASE.replace('pp_schedule = "interleaved"', "") + "account_for_embedding_in_pipeline_split = true\n"
                         "account_for_loss_in_pipeline_split = true\n")
    assert not any("account_for" in w for w in estimate(plan).warnings)  # 128 over 16


def test_account_flags_with_interleaving_have_whole_chunks():
    """128 = 126 + embedding + loss over 16 stages × 2 chunks: chunks of 4, the first and last
    with 3 — no uneven-chunk warning, unlike the explicit 7s (7 ÷ 2)."""
    flags = llmplan.loads(BASE + "account_for_embedding_in_pipeline_split = true\naccount_for_loss_in_pipeline_split = true\n")
    assert not any("does not divide every stage's layers" in w for w in estimate(flags).warnings)
