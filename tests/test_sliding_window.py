"""Sliding-window attention (``[model] sliding_window`` / ``sliding_layers``): attention FLOPs,
training time, and the serving KV cache of windowed layers.

Expected numbers are derived by hand here; ``tests/oracle/test_oracle_window.py`` checks
the same two closed forms against transformers' sliding mask and ``DynamicCache``.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmplan
from llmplan import PlanError, catalog
from llmplan.model import Dense
from llmplan.plan import Cluster, Method, Parallelism, Plan

from test_serving import HUGE, serve, value

GEMMA3_1B = catalog.model("gemma-3-1b")  # 22 of 26 layers windowed at 512 (sliding_window_pattern 6)
NO_WINDOW = attrs.evolve(GEMMA3_1B, sliding_window=None, sliding_layers=None)


def train(model, seq):
    return Plan(
        model=model,
        method=Method(kind="pretrain", tokens=10**9, seq_len=seq, global_batch=8),
        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=8),
        parallelism=Parallelism(),
    )


def test_catalog_gemma3_windows():
    assert (GEMMA3_1B.sliding_window, GEMMA3_1B.n_sliding_layers, GEMMA3_1B.layers) == (512, 22, 26)


@pytest.mark.parametrize("seq", [256, 512, 8192, 32768])
def test_training_attention_flops(seq):
    """Per token and layer the core is 4·a·d·keys; a windowed layer counts
    keys = seq − (seq − 512)²/seq (the causal count seq² less the (seq − 512)² triangle
    the window hides), 22 of 26 layers."""
    a, d = 4, 256
    full = 4 * a * d * seq
    hidden = max(0, seq - 512) ** 2 / seq
    windowed = 4 * a * d * (seq - hidden)
    est, ref = llmplan.estimate(train(GEMMA3_1B, seq)), llmplan.estimate(train(NO_WINDOW, seq))
    # only the attention core differs: 3 passes (forward + backward) × 22 windowed layers
    diff = float(ref.value("flops.per_token")) - float(est.value("flops.per_token"))
    assert diff == pytest.approx(3 * 22 * (full - windowed), rel=1e-12)
    if seq <= 512:
        assert diff == 0


def test_long_sequences_train_faster_with_the_window():
    slow = llmplan.estimate(train(NO_WINDOW, 32768)).results["time.step_seconds"]
    fast = llmplan.estimate(train(GEMMA3_1B, 32768)).results["time.step_seconds"]
    assert fast < slow
    short = [llmplan.estimate(train(m, 512)).results["time.step_seconds"] for m in (GEMMA3_1B, NO_WINDOW)]
    assert short[0] == short[1]


def test_serving_kv_cache_keeps_the_window():
    """bf16 KV, 1 KV head of 256: 2·1·256·2 = 1024 B per token and layer. A 32,768-token
    context keeps 32,768 tokens on the 4 full layers and 512 on the 22 windowed ones."""
    plan = serve(GEMMA3_1B, seq_len=32768, batch=2)
    per_layer_token = 2 * 1 * 256 * 2
    expected = 2 * per_layer_token * (4 * 32768 + 22 * 512)
    assert value(plan, "memory.per_gpu.kv_cache") == pytest.approx(expected, rel=1e-12)
    assert value(serve(NO_WINDOW, seq_len=32768, batch=2), "memory.per_gpu.kv_cache") == pytest.approx(
        2 * per_layer_token * 26 * 32768, rel=1e-12)


def test_serving_decode_reads_the_window_only():
    """Decode at mean context 8,192 + 128/2: the step reads 8,256 tokens on 4 layers and 512 on 22."""
    plan = serve(GEMMA3_1B, seq_len=8192, new_tokens=128, batch=4)
    expected = 4 * 1024 * (4 * 8256 + 22 * 512)
    assert value(plan, "serving.decode_kv_bytes") == pytest.approx(expected, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 26), st.sampled_from([64, 512, 4096]), st.integers(1, 8))
def test_max_context_is_the_longest_that_fits(sliding, window, batch):
    """memory.max_context inverts the windowed KV cache: a sequence of that many tokens
    (the plan's 1,024-token prompt plus generated tokens) fits, one more does not."""
    model = attrs.evolve(GEMMA3_1B, sliding_window=window, sliding_layers=sliding, max_positions=None)
    gpu = attrs.evolve(HUGE, memory=6 * 10**9)
    s_max = int(value(serve(model, gpu=gpu, seq_len=1024, batch=batch), "memory.max_context"))
    if sliding == model.layers:  # the cache stops growing past W: memory does not bound the context
        return
    assert s_max > 1024

    def total(tokens):
        return value(serve(model, gpu=gpu, seq_len=1024, new_tokens=tokens - 1024, batch=batch), "memory.per_gpu.total")

    assert total(s_max) <= gpu.memory < total(s_max + 1)


def test_window_validation_names_the_key():
    with pytest.raises(PlanError, match="sliding_layers"):
        Dense(layers=2, hidden=8, heads=2, ffn=8, vocab=4, sliding_window=4, sliding_layers=3)
    with pytest.raises(PlanError, match="set sliding_window too"):
        Dense(layers=2, hidden=8, heads=2, ffn=8, vocab=4, sliding_layers=1)


def test_all_windowed_context_is_bounded_by_the_model_not_the_cache():
    """Every layer windowed: past W the cache stops growing, so memory.max_context is the
    model's max_positions when it is known — and stays the memory bound without it (two
    models that differ only there must not share a cached formula)."""
    model = attrs.evolve(GEMMA3_1B, sliding_window=512, sliding_layers=26, max_positions=32768)
    assert value(serve(model, seq_len=1024), "memory.max_context") == 32768
    unknown = attrs.evolve(model, max_positions=None)
    bound = value(serve(unknown, seq_len=1024), "memory.max_context")
    assert bound != 32768 and bound > 512
