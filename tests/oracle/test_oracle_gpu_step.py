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


def test_out_of_memory_is_a_row_and_results_are_written_per_case(tmp_path, monkeypatch):
    """A case that runs out of GPU memory is recorded (with llmplan's fit verdict) and the run
    goes on; the files on disk hold every finished case even when a later one crashes."""
    mod = _script()

    class OutOfMemoryError(RuntimeError):  # what torch.cuda raises, by name
        pass

    calls = []
    real = mod.measure

    def measure(config, seq, batch, ckpt, **kw):
        calls.append(ckpt)
        if len(calls) == 1:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if len(calls) == 2:
            return real(config, seq, batch, ckpt, **kw)
        raise KeyboardInterrupt  # the run is cut short in its third case

    monkeypatch.setattr(mod, "measure", measure)
    args = ["--device", "cpu", "--steps", "1", "--warmup", "0", "--out", str(tmp_path),
            "--cases", "tiny:128:0", "tiny:128:1", "tiny:64:0"]
    with pytest.raises(KeyboardInterrupt):
        mod.main(args)
    rows = json.loads((tmp_path / "gpu-train-steps.json").read_text())["rows"]
    assert [r["case"] for r in rows] == ["tiny:128:0", "tiny:128:1"]
    assert rows[0]["oom"] is True and "out of memory" in rows[0]["measured"]["error"]
    assert isinstance(rows[0]["predicted"]["fits"], bool)
    assert rows[1]["measured"]["params"] == rows[1]["predicted"]["params"] and "oom" not in rows[1]
    md = (tmp_path / "gpu-train-steps.md").read_text()
    assert "out of memory" in md and "| tiny s=128 |" in md


def test_attention_sweep_runs_on_the_cpu_and_lines_up_the_benchmark_shapes(tmp_path):
    spec = importlib.util.spec_from_file_location("attention_sweep", ROOT / "benchmarks" / "attention_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # the GPU shapes are the FlashAttention-2 benchmark's: 16k tokens per call, hidden 2048
    full = mod.shapes(False)
    assert len(full) == 12 and all(b * s == 16384 and h * d == 2048 for b, h, s, d in full)
    assert mod.main(["--device", "cpu", "--tiny", "--repeat", "1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "attention-sweep-tiny.json").read_text())
    assert [r["seq_len"] for r in data["rows"]] == [64, 128]
    assert all(r["measured_tflops"] > 0 and r["predicted_tflops"] is None for r in data["rows"])
    # on a catalog GPU the prediction is llmplan's curve: FlashAttention-2 on H100 at 2k, head dim 128
    from llmplan import catalog

    assert mod.predicted_tflops(catalog.gpu("h100-sxm"), "flash2", 2048, 128) == pytest.approx(265, rel=0.02)
