"""``llmplan calibrate`` with the real PyTorch (CPU build here; the command is the same on a GPU).

The main suite's calibrate tests skip where torch is absent — which is CI's first stage —
so they are repeated here, where CI installs torch, together with the attention
measurement's FLOP convention checked against torch's own SDPA FLOP rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import llmplan  # noqa: E402
from llmplan.calibrate import attention_shape, calibrate, causal_attention_flops  # noqa: E402

pytestmark = pytest.mark.oracle

ROOT = Path(__file__).resolve().parents[2]


def test_causal_attention_flops_against_torchs_sdpa_rules():
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    b, h, s, d = 2, 4, 256, 64
    q = (b, h, s, d)
    fwd = sdpa_flop_count(q, q, q)  # torch counts the full s × s products: 4·b·h·s²·d
    bwd = sdpa_backward_flop_count(q, q, q, q)
    assert fwd == 4 * b * h * s * s * d
    # torch's backward rule counts five products — dV, dP, dQ, dK and the recomputed QKᵀ —
    # 2.5 × the forward, the FlashAttention papers' convention
    assert bwd == 2.5 * fwd
    # the kernel executes half of each under the causal mask: 3.5 × the causal forward
    assert causal_attention_flops(b, h, s, d) == 0.5 * (fwd + bwd)


def test_calibrate_measures_gemm_and_attention_and_a_plan_includes_both(tmp_path):
    out = tmp_path / "calibration.toml"
    plan = llmplan.load(ROOT / "examples/llama2-70b-pretrain.toml")
    assert attention_shape(plan) == (1, 64 // 8, 4096, 128)  # micro-batch 1, 64 heads ÷ tp 8, 4K, d 128
    # a deliberately generous 'peak' for a CPU, so both efficiencies are in (0, 1]
    result = calibrate(peak=1e15, shapes=[(128, 128, 128)], attention=(1, 2, 128, 32), device="cpu", dtype="fp32", repeat=2, out=out)
    assert 0 < result["efficiency"] <= 1 and 0 < result["attention"]["efficiency"] <= 1
    seconds = result["attention"]["seconds"]
    assert result["attention"]["flops_per_second"] == pytest.approx(causal_attention_flops(1, 2, 128, 32) / seconds)
    text = out.read_text()
    assert "gemm = " in text and "attention = " in text and "attention_half_length = " in text
    # the curve was measured at 16, 32, 64 and 128 tokens with the same 128 tokens per call
    assert [p["shape"] for p in result["attention"]["curve"]] == [[8, 2, 16, 32], [4, 2, 32, 32], [2, 2, 64, 32], [1, 2, 128, 32]]
    (tmp_path / "plan.toml").write_text('include = ["calibration.toml"]\n' + (ROOT / "examples/llama2-70b-pretrain.toml").read_text())
    included = llmplan.load(tmp_path / "plan.toml")
    assert included.efficiency.gemm == pytest.approx(result["efficiency"], rel=1e-5)
    assert included.efficiency.attention == pytest.approx(result["attention"]["eta"], rel=1e-5)
    assert included.efficiency.attention_half_length == pytest.approx(result["attention"]["half_length"], rel=1e-5, abs=1e-9)
    # the rate at the measured length is the measurement, within the fit's error (exact when flat)
    a = result["attention"]
    at_s = a["eta"] * 128 / (128 + a["half_length"])
    assert at_s == pytest.approx(a["efficiency"], rel=max(a["fit_error"], 1e-9) + 1e-6)


def test_calibrate_without_attention_writes_gemm_only(tmp_path):
    out = tmp_path / "c.toml"
    result = calibrate(peak=1e15, shapes=[(64, 64, 64)], attention=None, device="cpu", dtype="fp32", repeat=1, out=out)
    assert "attention" not in result and "attention = " not in out.read_text()


def test_calibrate_rejects_a_peak_below_the_measurement():
    with pytest.raises(llmplan.LlmplanError, match="the peak is wrong"):
        calibrate(peak=1.0, shapes=[(64, 64, 64)], attention=None, device="cpu", dtype="fp32", repeat=1)


def test_step_calibration_fits_gemm_to_a_real_cpu_step(tmp_path):
    """A real transformers training step of a two-layer Llama on the CPU, against a stated
    2 TFLOP/s peak: the written gemm makes llmplan's step time equal the measured one, and
    a plan includes the file."""
    from llmplan.calibrate import calibrate_step, predicted_step_seconds, step_plan

    plan = llmplan.Plan(
        model=llmplan.Dense(layers=6, hidden=128, heads=4, kv_heads=2, ffn=352, vocab=1000),
        method=llmplan.Method(tokens=10**6, seq_len=128, global_batch=64),
        cluster=llmplan.Cluster(gpu=llmplan.catalog.gpu("h100-sxm"), gpus=8),
        parallelism=llmplan.Parallelism(micro_batch=2),
    )
    out = tmp_path / "step.toml"
    r = calibrate_step(plan, layers=2, peak=2e12, device="cpu", steps=3, out=out)
    small = step_plan(plan, layers=2, peak=2e12)
    assert r["params"] == llmplan.estimate(small).value("params.total")
    assert 0 < r["gemm"] < 1
    assert predicted_step_seconds(small, r["gemm"]) == pytest.approx(r["step_seconds"], rel=1e-6)
    text = out.read_text()
    assert "[efficiency]" in text and f"gemm = {r['gemm']:.6g}" in text
    (tmp_path / "plan.toml").write_text(
        'include = ["step.toml"]\n[model]\nlayers = 2\nhidden = 128\nheads = 4\nkv_heads = 2\nffn = 352\nvocab = 1000\n'
        '[method]\ntokens = "1M"\nseq_len = 128\nglobal_batch = 64\n[cluster]\ngpu = "h100-sxm"\ngpus = 8\n'
    )
    assert llmplan.load(tmp_path / "plan.toml").efficiency.gemm == pytest.approx(r["gemm"], rel=1e-5)


def test_step_calibration_needs_a_plan():
    from llmplan.cli import main

    assert main(["calibrate", "--step", "--device", "cpu", "--peak", "2 TFLOP/s"]) == 2
