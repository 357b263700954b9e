"""The GPU training-step benchmark (benchmarks/gpu_train_step.py) runs end to end on the CPU.

On a GPU it measures real steps; here it runs the same code on a two-layer Llama-style
model so that a session with a device can spend its minutes measuring, not debugging.
The check that can fail: the real ``LlamaForCausalLM``'s parameter count must equal
llmplan's for the same config (the script refuses to time a model llmplan miscounts).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.oracle
pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_train_step", ROOT / "benchmarks" / "gpu_train_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_cpu_run_writes_measured_and_predicted(tmp_path):
    mod = _script()
    assert mod.main(["--device", "cpu", "--tiny", "--steps", "1", "--warmup", "0", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "gpu-train-steps-tiny.json").read_text())
    assert [r["checkpointing"] for r in data["rows"]] == [False, True]
    for r in data["rows"]:
        assert r["measured"]["params"] == r["predicted"]["params"]
        assert r["measured"]["step_seconds"] > 0 and r["measured"]["peak_memory_bytes"] is None
    assert "| tiny s=128 |" in (tmp_path / "gpu-train-steps-tiny.md").read_text()


@pytest.mark.parametrize("shape", ["1b", "3b", "8b"])
def test_default_shapes_count_like_llmplan(shape):
    # full size on the meta device, built from the script's own config mapping
    import torch
    from transformers import LlamaForCausalLM

    mod = _script()
    config = mod.hf_config(shape, 2048)
    with torch.device("meta"):
        n = sum(p.numel() for p in LlamaForCausalLM(mod.llama_config(config)).parameters())
    assert n == mod.prediction(config, 2048, 1, False, "h100-sxm")["params"]
    # model cards: Llama 3.2 1B 1.24B, 3B 3.21B; Llama 3 8B 8.03B
    assert round(n / 1e9, 2) == {"1b": 1.24, "3b": 3.21, "8b": 8.03}[shape]


def test_8b_shape_is_the_published_llama_3_1_8b_config():
    # the script's 8B keys equal Meta's published config.json (tests/oracle/configs, SOURCES.md)
    published = json.loads((ROOT / "tests" / "oracle" / "configs" / "llama-3.1-8b.json").read_text())
    mine = _script().SHAPES["8b"]
    assert {k: published[k] for k in mine if k != "head_dim"} == {k: v for k, v in mine.items() if k != "head_dim"}
    assert mine["head_dim"] == published["hidden_size"] // published["num_attention_heads"]
