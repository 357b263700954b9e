"""Sliding-window attention against transformers' own mask and cache.

llmplan counts a sliding-window layer's attention (``flops.attended_keys``) and its KV
cache (``serving.kv_tokens_kept``) in closed form. The referees here are the mask
function transformers applies (``masking_utils.sliding_window_causal_mask_function``:
key ``j`` is visible to query ``i`` iff ``i − W < j ≤ i``) and the cache its
``DynamicCache`` keeps for a Gemma 3 model (``DynamicSlidingWindowLayer``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import oracle_util as O  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.masking_utils import causal_mask_function, sliding_window_causal_mask_function  # noqa: E402

from llmplan import symbols as S  # noqa: E402
from llmplan.bindings import evaluate, model_values  # noqa: E402
from llmplan.formulas.flops import attended_keys  # noqa: E402
from llmplan.formulas.serving import kv_tokens_kept, prefill_keys  # noqa: E402
from llmplan.hf import from_hf_config  # noqa: E402

pytestmark = pytest.mark.oracle


def visible_pairs(mask_function, n: int) -> int:
    """Query–key pairs ``mask_function`` lets through in a sequence of ``n`` tokens."""
    zero = torch.tensor(0)
    q, kv = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return int(mask_function(zero, zero, q, kv).expand(n, n).sum())


@pytest.mark.parametrize(("n", "window"), [(64, 16), (100, 33), (40, 40), (30, 64)])
def test_attended_keys_follow_the_sliding_mask(n, window):
    """Every layer windowed: llmplan's count n·keys is the causal count n² less the
    pairs the window hides, in the same convention (each masked-out pair twice, less the
    n − W pairs on the window's edge diagonal, as n² is twice the causal pairs less n)."""
    causal = visible_pairs(causal_mask_function, n)
    windowed = visible_pairs(sliding_window_causal_mask_function(window), n)
    assert causal == n * (n + 1) // 2
    model, _ = from_hf_config(O.small_config("gemma3_text", 100) | {"sliding_window": window,
                                                                   "layer_types": ["sliding_attention"] * 2})
    assert model.n_sliding_layers == model.layers == 2
    values = model_values(model) | {S.s: n, S.s_p: n}
    counted = n * evaluate(attended_keys(model), values)
    hidden = causal - windowed
    assert n * n - counted == 2 * hidden - max(0, n - window)
    # the prefill's mean keys per query are the visible pairs exactly
    assert n * evaluate(prefill_keys(model), values) == windowed


def test_kv_cache_keeps_the_window_on_sliding_layers():
    """A Gemma 3 model, 2 of every 3 layers windowed (W = 16), after a 64-token prompt:
    transformers keeps W − 1 tokens in a sliding layer (the next query adds the W-th),
    llmplan counts W — one token per sliding layer more, stated in ``kv_tokens_kept``."""
    cfg = O.small_config("gemma3_text", 100) | {"num_hidden_layers": 6, "sliding_window": 16,
                                                "sliding_window_pattern": 3}
    model, _ = from_hf_config(cfg)
    assert (model.sliding_window, model.n_sliding_layers) == (16, 4)
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(O.hf_config(cfg), attn_implementation="sdpa").eval()
    n = 64
    with torch.no_grad():
        cache = hf(input_ids=torch.randint(0, 100, (1, n)), use_cache=True).past_key_values
    cached = sum(layer.keys.shape[-2] for layer in cache.layers)
    assert cached == 2 * n + 4 * (16 - 1)
    values = model_values(model) | {S.s: n}
    assert model.layers * evaluate(kv_tokens_kept(model), values) == cached + model.n_sliding_layers
