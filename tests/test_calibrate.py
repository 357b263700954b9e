"""`llmplan calibrate` (on the CPU here: the command is the same on a GPU) and plan `include`."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmplan
from llmplan.calibrate import gemm_shapes

ROOT = Path(__file__).resolve().parents[1]


def test_gemm_shapes_follow_the_layout():
    plan = llmplan.load(ROOT / "examples/llama2-70b-pretrain.toml")
    shapes = gemm_shapes(plan)
    # tokens per micro-batch = 1 × 4096; QKV out = (64 + 2·8)·128 / tp 8 = 1280; gated MLP = 2·28672/8
    assert (4096, 8192, 1280) in shapes
    assert (4096, 8192, 2 * 28672 // 8) in shapes
    assert (4096, 28672 // 8, 8192) in shapes


def test_calibrate_writes_an_efficiency_file_a_plan_can_include(tmp_path):
    pytest.importorskip("torch")
    from llmplan.calibrate import calibrate

    out = tmp_path / "calibration.toml"
    # a deliberately generous 'peak' for a CPU so that the efficiency is in (0, 1]
    result = calibrate(peak=1e15, shapes=[(128, 128, 128)], device="cpu", dtype="fp32", repeat=2, out=out)
    assert 0 < result["efficiency"] <= 1
    text = out.read_text()
    assert "[efficiency]" in text and "gemm = " in text
    plan_text = (ROOT / "examples/llama2-70b-pretrain.toml").read_text()
    (tmp_path / "plan.toml").write_text('include = ["calibration.toml"]\n' + plan_text)
    plan = llmplan.load(tmp_path / "plan.toml")
    assert plan.efficiency.gemm == pytest.approx(result["efficiency"], rel=1e-5)


def test_calibrate_rejects_a_peak_below_the_measurement():
    pytest.importorskip("torch")
    from llmplan.calibrate import calibrate

    with pytest.raises(llmplan.LlmplanError, match="the peak is wrong"):
        calibrate(peak=1.0, shapes=[(64, 64, 64)], device="cpu", dtype="fp32", repeat=1)


def test_plan_keys_win_over_included_ones(tmp_path):
    (tmp_path / "eff.toml").write_text("[efficiency]\ngemm = 0.5\nmemory_overhead = \"1 GiB\"\n")
    text = 'include = ["eff.toml"]\n' + (ROOT / "examples/llama2-70b-pretrain.toml").read_text() + "\n[efficiency]\ngemm = 0.7\n"
    (tmp_path / "p.toml").write_text(text)
    plan = llmplan.load(tmp_path / "p.toml")
    assert plan.efficiency.gemm == 0.7 and plan.efficiency.memory_overhead == 2**30


def test_missing_include_is_a_plan_error(tmp_path):
    (tmp_path / "p.toml").write_text('include = ["nope.toml"]\n' + (ROOT / "examples/llama2-70b-pretrain.toml").read_text())
    with pytest.raises(llmplan.PlanError, match=r"include: cannot read"):
        llmplan.load(tmp_path / "p.toml")


@pytest.mark.parametrize(
    "name,gid",
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200-sxm"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb-sxm"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb-sxm"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb-pcie"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("Tesla T4", None),
    ],
)
def test_device_names_map_to_catalog_ids(name, gid):
    from llmplan.calibrate import guess_gpu

    assert guess_gpu(name) == gid


# --- calibrate --step: the solver and the measured plan (no torch needed) ------------------


def _tiny_plan(**par):
    import llmplan
    from llmplan import catalog

    return llmplan.Plan(
        model=llmplan.Dense(layers=6, hidden=256, heads=4, kv_heads=2, ffn=704, vocab=1000),
        method=llmplan.Method(tokens=10**6, seq_len=256, global_batch=64),
        cluster=llmplan.Cluster(gpu=catalog.gpu("h100-sxm"), gpus=8),
        parallelism=llmplan.Parallelism(micro_batch=2, **par),
    )


def test_step_plan_is_one_gpu_one_micro_batch_of_the_plans_model():
    from llmplan.calibrate import step_plan

    small = step_plan(_tiny_plan(recompute="selective"), layers=2, peak=2e12)
    assert small.model.layers == 2 and small.model.hidden == 256
    assert small.cluster.gpus == 1 and small.method.global_batch == 2 and small.parallelism.micro_batch == 2
    assert small.method.seq_len == 256 and small.parallelism.recompute == "none"  # transformers: no selective form
    assert small.precision.preset == "bf16-pure" and small.parallelism.framework == "hf"
    assert small.cluster.gpu.peak["bf16"] == 2e12 and "bf16" not in small.cluster.gpu.mamf
    assert step_plan(_tiny_plan(recompute="full"), layers=None).parallelism.recompute == "full"
    assert step_plan(_tiny_plan(), layers=None).model.layers == 6
    # the plan's attention kernel and a calibrated attention curve carry over to the step plan
    import attrs

    from llmplan.plan import Efficiency

    curved = attrs.evolve(_tiny_plan(attention_kernel="flash1"), efficiency=Efficiency(attention=0.4, attention_half_length=300))
    small = step_plan(curved, layers=2)
    assert small.parallelism.attention_kernel == "flash1"
    assert (small.efficiency.attention, small.efficiency.attention_half_length) == (0.4, 300)


@pytest.mark.parametrize("gemm", [0.003, 0.37, 0.81])
def test_step_solver_recovers_the_efficiency_behind_a_step_time(gemm):
    """Round trip: the step time llmplan predicts at a chosen gemm, handed back as the
    'measurement', gives that gemm again."""
    from llmplan.calibrate import predicted_step_seconds, step_gemm_efficiency, step_plan

    small = step_plan(_tiny_plan(), layers=2, peak=2e12)
    seconds = predicted_step_seconds(small, gemm)
    assert step_gemm_efficiency(small, seconds) == pytest.approx(gemm, rel=1e-6)


def test_step_solver_refuses_impossible_measurements():
    from llmplan import LlmplanError
    from llmplan.calibrate import predicted_step_seconds, step_gemm_efficiency, step_plan

    small = step_plan(_tiny_plan(), layers=2, peak=2e12)
    with pytest.raises(LlmplanError, match="faster than llmplan's model allows"):
        step_gemm_efficiency(small, predicted_step_seconds(small, 1.0) / 2)
    with pytest.raises(LlmplanError, match="slower than llmplan predicts"):
        step_gemm_efficiency(small, predicted_step_seconds(small, 1e-4) * 2)


def _fake_attention(rate_of_s):
    """A stand-in for measure_attention whose kernel runs at ``rate_of_s(s)`` FLOP/s."""
    from llmplan.calibrate import causal_attention_flops

    def measure(shape, **_):
        flops = causal_attention_flops(*shape)
        return {"shape": list(shape), "seconds": flops / rate_of_s(shape[2]), "flops_per_second": rate_of_s(shape[2])}

    return measure


def test_attention_curve_recovers_a_kernel_that_saturates(monkeypatch, tmp_path):
    import llmplan.calibrate as cal

    # a kernel reaching 300 TFLOP/s on long sequences and half of it at 500 tokens
    monkeypatch.setattr(cal, "measure_attention", _fake_attention(lambda s: 300e12 * s / (s + 500)))
    curve = cal.measure_attention_curve((2, 8, 4096, 128), 1000e12)
    assert [p["shape"] for p in curve["curve"]] == [[16, 8, 512, 128], [8, 8, 1024, 128], [4, 8, 2048, 128], [2, 8, 4096, 128]]
    assert curve["eta"] == pytest.approx(0.3, rel=1e-4)
    assert curve["half_length"] == pytest.approx(500, rel=1e-3)
    assert curve["efficiency"] == pytest.approx(0.3 * 4096 / 4596, rel=1e-9)  # measured at the plan's own s
    # written to the file, and a plan that includes it runs the kernel on that curve
    monkeypatch.setattr(cal, "measure_gemm", lambda shapes, **_: {"flops_per_second": 600e12, "sms": 132, "device": "fake",
                                                                   "torch": "-", "shapes": [{"m": 8192, "k": 8192, "n": 8192, "flops_per_second": 600e12}]})
    out = tmp_path / "calibration.toml"
    cal.calibrate(peak=1000e12, attention=(1, 8, 2048, 128), out=out)
    text = out.read_text()
    assert "attention = 0.3" in text and "attention_half_length = 500" in text
    (tmp_path / "plan.toml").write_text('include = ["calibration.toml"]\n' + (ROOT / "examples/llama2-70b-pretrain.toml").read_text())
    plan = llmplan.load(tmp_path / "plan.toml")
    rate = float(llmplan.estimate(plan).value("time.attention_efficiency"))
    assert rate == pytest.approx(0.3 * 4096 / (4096 + 500), rel=1e-3)  # the plan's 4K tokens per call


def test_attention_measurements_no_curve_fits_give_a_flat_rate(monkeypatch):
    import llmplan.calibrate as cal

    # slower on longer sequences: no saturating curve describes it
    monkeypatch.setattr(cal, "measure_attention", _fake_attention(lambda s: 400e12 - 0.05e12 * s))
    curve = cal.measure_attention_curve((1, 8, 4096, 128), 1000e12)
    assert curve["half_length"] == 0
    assert curve["eta"] == curve["efficiency"] == pytest.approx((400 - 0.05 * 4096) / 1000)


def test_attention_half_length_needs_attention():
    from llmplan.plan import Efficiency

    with pytest.raises(llmplan.PlanError, match="attention_half_length"):
        Efficiency(attention_half_length=512)
    with pytest.raises(llmplan.PlanError, match="attention_half_length"):
        Efficiency(attention=0.5, attention_half_length=-1)
    assert Efficiency(attention=0.5, attention_half_length=512).attention_half_length == 512
