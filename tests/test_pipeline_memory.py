"""Activations in flight on a pipeline stage, against a step-by-step walk of the schedule.

The walk below follows Megatron-Core's ``megatron/core/pipeline_parallel/schedules.py``
as written (not llmplan's formula): the forward passes of a rank run through the
schedule table — groups of ``p`` micro-batches (``microbatch_group_size_per_vp_stage``,
default the pipeline size), inside a group chunk 0 for each of them, then chunk 1, … —
and the backward passes through the same table with the chunks reversed. A rank runs
``num_warmup = 2·(p − rank − 1) + (v − 1)·p`` forwards (1F1B: ``p − rank − 1``), capped at
its ``m·v`` chunk passes, then alternates one forward and one backward, then drains the
backwards. A forward of a chunk adds that chunk's layers' activations, its backward
frees them; the peak of the running sum, in layer-micro-batches, is what the GPU holds.
"""

from __future__ import annotations

import pytest

from llmplan import symbols as S
from llmplan.estimate import estimate
from llmplan.model import Dense

from plans import make_plan


def schedule_peak(p: int, v: int, m: int, layers_per_chunk: int, rank: int = 0) -> int:
    """Peak layer-micro-batches of activations held by ``rank`` over one step."""
    table = []  # (micro-batch, chunk) in forward order
    for start in range(0, m, p):
        size = min(p, m - start)
        for chunk in range(v):
            table += [(start + k, chunk) for k in range(size)]
    backward = [(mb, v - 1 - chunk) for mb, chunk in table]
    total = m * v
    if v == 1:
        warmup = min(p - rank - 1, total)
    else:
        warmup = min(2 * (p - rank - 1) + (v - 1) * p, total)
    held = peak = 0
    fwd = bwd = 0

    def forward():
        nonlocal held, peak, fwd
        held += layers_per_chunk
        peak = max(peak, held)
        fwd += 1

    def back():
        nonlocal held, bwd
        held -= layers_per_chunk
        bwd += 1

    for _ in range(warmup):
        forward()
    for _ in range(total - warmup):
        forward()
        back()
    while bwd < total:
        back()
    assert held == 0 and fwd == total and len(backward) == total
    return peak


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
