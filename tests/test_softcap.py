"""Gemma 2's soft-capping (``[model] attn_softcap``, ``logit_softcap``): the stored ``tanh``
outputs, derived by hand (measured against transformers in
``tests/oracle/test_oracle_activations.py``)."""

from __future__ import annotations

import attrs
import pytest

import llmplan
from llmplan import PlanError, catalog
from llmplan.hf import from_hf_config
from llmplan.model import Dense
from llmplan.plan import Cluster, Method, Parallelism, Plan, Precision

# a Gemma 2 shape (read through hf_config: soft-caps 50 and 30 by class default, every other
# layer windowed at 4096)
GEMMA2, _ = from_hf_config({"model_type": "gemma2", "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
                            "num_key_value_heads": 2, "head_dim": 64, "intermediate_size": 512, "vocab_size": 1000})
PLAIN = attrs.evolve(GEMMA2, attn_softcap=None, logit_softcap=None)


def activations(model, *, flash: bool, seq=512, micro=2) -> float:
    plan = Plan(
        model=model,
        method=Method(kind="pretrain", tokens=10**9, seq_len=seq, global_batch=micro),
        precision=Precision(preset="bf16-mixed"),
        cluster=Cluster(gpu=catalog.gpu("h100-sxm"), gpus=1),
        parallelism=Parallelism(micro_batch=micro, flash_attention=flash),
    )
    return llmplan.estimate(plan).results["memory.per_gpu.activations"]


def test_gemma2_reads_its_softcaps():
    assert (GEMMA2.attn_softcap, GEMMA2.logit_softcap, GEMMA2.sandwich_norm) == (50.0, 30.0, True)
    assert (GEMMA2.sliding_window, GEMMA2.n_sliding_layers) == (4096, 2)


def test_logit_softcap_keeps_one_more_vocabulary_tensor():
    """bf16, s = 512, b = 2, V = 1000: the tanh output, 2·512·2·1000 = 2,048,000 bytes."""
    diff = activations(attrs.evolve(GEMMA2, attn_softcap=None), flash=True) - activations(PLAIN, flash=True)
    assert diff == 2 * 512 * 2 * 1000
    # FlashAttention caps the scores inside the kernel: the attention cap stores nothing there
    assert activations(GEMMA2, flash=True) == activations(attrs.evolve(GEMMA2, attn_softcap=None), flash=True)


def test_attn_softcap_keeps_the_tanh_of_the_scores_unfused():
    """Unfused attention: per layer a·s²·b·q_a = 4·512²·2·2 = 4,194,304 bytes, 4 layers (one
    micro-batch in flight on one GPU)."""
    diff = activations(attrs.evolve(GEMMA2, logit_softcap=None), flash=False) - activations(PLAIN, flash=False)
    assert diff == 4 * (4 * 512**2 * 2 * 2)


def test_softcap_must_be_positive():
    with pytest.raises(PlanError, match="attn_softcap"):
        Dense(layers=1, hidden=8, heads=2, ffn=8, vocab=4, attn_softcap=0)
    with pytest.raises(PlanError, match="final_logit_softcapping"):
        from_hf_config({"model_type": "gemma2", "num_hidden_layers": 1, "hidden_size": 8, "num_attention_heads": 2,
                        "intermediate_size": 8, "vocab_size": 4, "final_logit_softcapping": -1})
