"""Pipeline schedules, against a step-by-step walk of Megatron-Core's schedule.

The walk below follows Megatron-Core's ``megatron/core/pipeline_parallel/schedules.py``
as written (not llmplan's formulas): the forward passes of a rank run through the
schedule table — groups of ``N`` micro-batches (``microbatch_group_size_per_vp_stage``,
default the pipeline size ``p``), inside a group chunk 0 for each of them, then chunk 1,
… — and the backward passes through the same table with the chunks reversed. A rank runs
``num_warmup = 2·(p − rank − 1) + (v − 1)·N`` forwards (1F1B: ``p − rank − 1``), capped at
its ``m·v`` chunk passes, then alternates one forward and one backward, then drains the
backwards. Chunk ``c`` of rank ``r`` is virtual stage ``c·p + r``.

* Memory: a forward of a chunk adds that chunk's layers' activations, its backward frees
  them; the peak of the running sum, in layer-micro-batches, is what the GPU holds.
* Time: each pass waits for its rank's previous pass and for the pass it depends on (a
  forward for the previous virtual stage's forward of the same micro-batch, a backward for
  the next stage's backward, the last stage's backward for its own forward), forwards take
  ``f`` and backwards ``2f`` per chunk, point-to-point transfers are free; the makespan
  over the ideal ``m·v·3f`` minus one is the bubble.
"""

from __future__ import annotations

import pytest

from llmplan import symbols as S
from llmplan.checks import plan_warnings
from llmplan.estimate import estimate
from llmplan.model import Dense

from plans import make_plan


def rank_passes(p: int, v: int, m: int, rank: int, group: int | None = None) -> list[tuple[str, int, int]]:
    """The ordered passes ``(kind, micro-batch, chunk)`` of ``rank`` over one step."""
    n = group or p
    table = []  # (micro-batch, chunk) in forward order
    for start in range(0, m, n):
        size = min(n, m - start)
        for chunk in range(v):
            table += [(start + k, chunk) for k in range(size)]
    backward = [(mb, v - 1 - chunk) for mb, chunk in table]
    total = m * v
    warmup = min(p - rank - 1 if v == 1 else 2 * (p - rank - 1) + (v - 1) * n, total)
    passes = [("F", *table[i]) for i in range(warmup)]
    for i in range(total - warmup):
        passes += [("F", *table[warmup + i]), ("B", *backward[i])]
    passes += [("B", *backward[i]) for i in range(total - warmup, total)]
    assert len(passes) == 2 * total
    return passes


def schedule_peak(p: int, v: int, m: int, layers_per_chunk: int, rank: int = 0) -> int:
    """Peak layer-micro-batches of activations held by ``rank`` over one step."""
    held = peak = 0
    for kind, _, _ in rank_passes(p, v, m, rank):
        held += layers_per_chunk if kind == "F" else -layers_per_chunk
        peak = max(peak, held)
    assert held == 0
    return peak


def schedule_bubble(p: int, v: int, m: int, group: int | None = None, f: float = 1.0) -> float:
    """(makespan − m·v·(f + 2f)) ÷ (m·v·(f + 2f)) of one step, every rank walked in its order."""
    stages = p * v
    order = [rank_passes(p, v, m, r, group) for r in range(p)]
    done: dict[tuple[str, int, int], float] = {}
    nxt, free = [0] * p, [0.0] * p
    while any(nxt[r] < len(order[r]) for r in range(p)):
        moved = False
        for r in range(p):
            while nxt[r] < len(order[r]):
                kind, mb, chunk = order[r][nxt[r]]
                k = chunk * p + r
                if kind == "F":
                    dep = ("F", mb, k - 1) if k > 0 else None
                else:
                    dep = ("B", mb, k + 1) if k < stages - 1 else ("F", mb, k)
                if dep is not None and dep not in done:
                    break
                free[r] = max(free[r], done[dep] if dep else 0.0) + (f if kind == "F" else 2 * f)
                done[(kind, mb, k)] = free[r]
                nxt[r] += 1
                moved = True
        assert moved, "the schedule deadlocks"
    ideal = m * v * 3 * f
    return (max(free) - ideal) / ideal


def in_flight_layers(model, p, v, m):
    """llmplan's first-stage activations ÷ one layer's, for a layout with m micro-batches per step."""
    gpus = 64
    dp = gpus // p
    plan = make_plan(
        model=model, pp=p, gpus=gpus, global_batch=dp * m, schedule="interleaved" if v > 1 else "1f1b", virtual=v if v > 1 else None
    )
    est = estimate(plan)
    assert est.values[S.m] == m
    return est.value("memory.per_gpu.activations") / est.value("memory.activations_per_layer")


MODEL_32 = Dense(layers=32, hidden=1024, heads=16, ffn=2816, vocab=32000)
MODEL_24 = Dense(layers=24, hidden=1024, heads=16, ffn=2816, vocab=32000)


@pytest.mark.parametrize(
    "model,p,v",
    [(MODEL_32, 4, 2), (MODEL_32, 4, 4), (MODEL_32, 8, 2), (MODEL_32, 2, 4), (MODEL_24, 4, 3), (MODEL_32, 4, 1), (MODEL_32, 8, 1)],
)
@pytest.mark.parametrize("m_over_p", [0.5, 1, 1.5, 2, 3])
def test_first_stage_in_flight_matches_the_schedule(model, p, v, m_over_p):
    m = int(p * m_over_p)
    layers_per_stage = model.layers // p
    walked = schedule_peak(p, v, m, layers_per_stage // v)
    assert in_flight_layers(model, p, v, m) == pytest.approx(walked, rel=1e-12)
    # the first stage is the most loaded one: every later rank holds no more
    assert all(schedule_peak(p, v, m, layers_per_stage // v, rank=r) <= walked for r in range(p))


def test_interleaving_penalty_only_with_enough_micro_batches():
    """Hand derivation, p = 4, v = 2, 8 layers per stage (chunks of 4 layers).

    m = 8: warm-up 2·3 + 1·4 = 10 chunk forwards + 1 = 11 chunks of 4 layers = 44
    layer-micro-batches = 8 layers × 4 × (1 + 3/8), Megatron-LM's penalty.
    m = 4: 10 ≥ m·v = 8, so all 8 chunk forwards run first: 32 = 8 layers × 4, no penalty.
    """
    assert in_flight_layers(MODEL_32, 4, 2, 8) == pytest.approx(44)
    assert in_flight_layers(MODEL_32, 4, 2, 4) == pytest.approx(32)


def test_uneven_interleaved_chunks_warn():
    """32 layers on 4 stages of 3 chunks: 8 layers per stage do not split into 3 equal chunks."""
    from llmplan.checks import plan_warnings

    def chunk_warnings(v):
        plan = make_plan(model=MODEL_32, pp=4, gpus=64, global_batch=16 * 8, schedule="interleaved", virtual=v)
        return [w for w in plan_warnings(plan) if w.startswith("parallelism.virtual_stages")]

    (w,) = chunk_warnings(3)
    assert "pp × virtual_stages = 12 does not divide layers = 32" in w
    assert chunk_warnings(2) == [] and chunk_warnings(4) == []


def bubble_share(model, p, v, m):
    """llmplan's time.bubble_seconds ÷ time.compute_seconds for a layout with m micro-batches per step."""
    plan = make_plan(model=model, pp=p, gpus=64, global_batch=(64 // p) * m,
                     schedule="interleaved" if v > 1 else "1f1b", virtual=v if v > 1 else None)
    est = estimate(plan)
    assert est.values[S.m] == m
    return est.value("time.bubble_seconds") / est.value("time.compute_seconds")


def test_the_walk_reproduces_the_textbook_bubbles():
    """Hand derivations, chunk passes f forward and 2f backward.

    1F1B, p = 4, m = 8: (m + p − 1)·3f = 33f for 24f of work: bubble 9/24 = (p − 1)/m.
    Interleaved v = 2, m = 8: 48f of work per rank plus p − 1 chunk passes of ramp-up and
    drain, (p − 1)·3f = 9f: bubble 9/48 = (p − 1)/(v·m).
    Interleaved v = 2, m = 2 < p: every forward of the p·v = 8 virtual stages runs first,
    (p·v + m − 1)·3f = 27f for 12f of work: bubble 15/12, not (p − 1)/(v·m) = 3/4.
    """
    assert schedule_bubble(4, 1, 8) == pytest.approx(9 / 24)
    assert schedule_bubble(4, 2, 8) == pytest.approx(3 / 16)
    assert schedule_bubble(4, 2, 2) == pytest.approx(15 / 12)


@pytest.mark.parametrize("model,p,v", [(MODEL_32, 4, 1), (MODEL_32, 8, 1), (MODEL_32, 4, 2), (MODEL_32, 4, 4),
                                       (MODEL_32, 8, 2), (MODEL_32, 2, 4), (MODEL_24, 4, 3)])
@pytest.mark.parametrize("m_over_p", [0.25, 0.5, 0.75, 1, 2, 3])
def test_bubble_matches_the_walk(model, p, v, m_over_p):
    m = int(p * m_over_p)
    if m < 1:
        pytest.skip("no micro-batch")
    assert bubble_share(model, p, v, m) == pytest.approx(schedule_bubble(p, v, m), rel=1e-12)


@pytest.mark.parametrize("p,v,m,group", [(4, 2, 6, 6), (4, 2, 10, 5), (4, 2, 10, 10), (8, 2, 12, 12), (4, 4, 6, 6)])
def test_bubble_holds_for_megatron_group_sizes(p, v, m, group):
    # m not a multiple of p: Megatron-Core runs it with a group size pp ≤ N ≤ m whose
    # remainder is 0 or ≥ pp; the bubble is still (p−1)/(v·m)
    assert schedule_bubble(p, v, m, group) == pytest.approx((p - 1) / (v * m))
    assert bubble_share(MODEL_32 if 32 % (p * v) == 0 else MODEL_24, p, v, m) == pytest.approx((p - 1) / (v * m))


def test_interleaved_micro_batch_warnings():
    def warnings(m):
        plan = make_plan(model=MODEL_32, pp=4, gpus=64, global_batch=16 * m, schedule="interleaved", virtual=2)
        return [w for w in plan_warnings(plan) if "micro-batches per step" in w]

    (few,) = warnings(2)
    assert few.startswith('parallelism.pp_schedule = "interleaved" with 2 micro-batches per step, fewer than pp = 4')
    (odd,) = warnings(6)
    assert odd.startswith("parallelism.virtual_stages = 2 with 6 micro-batches per step, not a multiple of pp = 4")
    assert warnings(4) == [] and warnings(8) == []


def test_search_counts_interleaved_with_too_few_micro_batches_as_unsupported():
    from llmplan.search import unsupported_warnings

    plan = make_plan(model=MODEL_32, pp=4, gpus=64, global_batch=16 * 2, schedule="interleaved", virtual=2)
    assert any("Megatron-Core refuses" in w for w in unsupported_warnings(plan_warnings(plan)))


def _imbalance(model, p, global_batch=64):
    plan = make_plan(model=model, pp=p, gpus=64, global_batch=global_batch)
    est = estimate(plan)
    flops_per_token = est.value("flops.per_step") / (est.values[S.B] * est.values[S.s])
    return est.value("time.stage_imbalance"), flops_per_token


def test_the_last_stage_carries_the_lm_head():
    """p | L: every stage has L/p layers and the last one also the LM head (F_head = 3·2·h·V
    per token, forward and backward), so ι = p·(L/p·F_l + F_head)/(L·F_l + F_head) =
    1 + (p − 1)·F_head/F with F = L·F_l + F_head the hardware FLOPs per token."""
    iota, F = _imbalance(MODEL_32, 4)
    head = 6 * MODEL_32.hidden * MODEL_32.vocab
    assert iota == pytest.approx(1 + 3 * head / F, rel=1e-12)
    assert _imbalance(MODEL_32, 1)[0] == 1


def test_uneven_stages_are_paced_by_the_fullest():
    """10 layers on 4 stages (3, 3, 2 + head, 2 with a small vocabulary whose head costs less
    than a layer): the slowest stage has ⌈10/4⌉ = 3 layers, ι = 4·3·F_l/F with
    F_l = (F − F_head)/10; with a large vocabulary the last stage (⌊10/4⌋ = 2 layers + the
    head) is the slowest: ι = 4·(2·F_l + F_head)/F."""
    small = Dense(layers=10, hidden=1024, heads=16, ffn=2816, vocab=1000)
    iota, F = _imbalance(small, 4)
    head = 6 * 1024 * 1000
    assert head < (F - head) / 10
    assert iota == pytest.approx(4 * 3 * (F - head) / 10 / F, rel=1e-12)
    large = Dense(layers=10, hidden=1024, heads=16, ffn=2816, vocab=256000)
    iota, F = _imbalance(large, 4)
    head = 6 * 1024 * 256000
    assert head > (F - head) / 10
    assert iota == pytest.approx(4 * (2 * (F - head) / 10 + head) / F, rel=1e-12)


def test_interleaving_one_stage_is_a_plan_error_and_an_empty_sweep_says_why():
    # found by fuzzing: the estimate priced pp = 1 "interleaved" as if it were 1F1B, while
    # the sweep drops those rows, so sweep(plan, tp=[t]) of that very plan had no row and
    # raised an IndexError from inside numpy
    from llmplan.errors import LlmplanError, PlanError
    from llmplan.sweep import sweep

    with pytest.raises(PlanError, match=r"parallelism.pp_schedule: 'interleaved' needs pp ≥ 2"):
        make_plan(model=MODEL_32, pp=1, gpus=8, schedule="interleaved", virtual=2)
    plan = make_plan(model=MODEL_32, pp=2, gpus=8, schedule="interleaved", virtual=2)
    with pytest.raises(LlmplanError, match=r"no layout to evaluate: pp_schedule \['interleaved'\] with pp \[1\]"):
        sweep(plan, pp=[1])
    assert len(sweep(plan, pp=[1, 2])) == 1  # pp = 1 left out, pp = 2 kept
