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
