"""Default GEMM efficiency from the GPU's measured maximum achievable matmul rate (MAMF).

Expected numbers are the figures of S. Bekman's *Machine Learning Engineering*, "Maximum
Achievable Matmul FLOPS comparison table" (v2), written out here and multiplied by hand —
not read back from the catalog.
"""

from __future__ import annotations

import textwrap

import attrs
import pytest

from llmplan import catalog
from llmplan import symbols as S
from llmplan.errors import LlmplanError
from llmplan.estimate import estimate
from llmplan.plan import DEFAULT_GEMM_EFFICIENCY, GEMM_FRACTION_OF_MAMF, Efficiency, Precision, default_gemm_efficiency
from tests.plans import GPU_A100, llama7b_h100_plan, make_plan

# Bekman's table (TFLOP/s): measured MAMF and the vendor's dense peak
A100_SXM_BF16 = (271.2, 312.0)
H100_SXM_BF16 = (794.5, 989.4)  # the table rounds the peak to 989
H100_SXM_FP8 = (1402.6, 1978.9)


# the fraction of MAMF fitted to Megatron-LM's Table 1 (tests/test_validation.py refits it)
FRACTION = 0.75


def test_the_constant_and_the_no_mamf_default():
    assert GEMM_FRACTION_OF_MAMF == FRACTION
    # a GPU without a measurement gets the A100's value: 0.75 × 271.2/312 = 0.6519
    assert DEFAULT_GEMM_EFFICIENCY == pytest.approx(FRACTION * 271.2 / 312, abs=5e-4)


@pytest.mark.parametrize(
    ("gpu", "dtype", "expected"),
    [
        ("a100-80gb-sxm", "bf16", FRACTION * 271.2 / 312.0),  # 0.6519
        ("a100-40gb-sxm", "bf16", FRACTION * 271.2 / 312.0),
        ("a100-80gb-sxm", "fp16", FRACTION * 271.2 / 312.0),  # fp16: the bf16 figure (same tensor rate)
        ("a100-80gb-pcie", "bf16", FRACTION * 252.9 / 312.0),  # 0.5998
        ("h100-sxm", "bf16", FRACTION * 794.5 / 989.4),  # 0.6023
        ("h100-sxm", "fp8", FRACTION * 1402.6 / 1978.9),  # 0.5316
        ("h800-sxm", "fp8", FRACTION * 1402.6 / 1978.9),  # H100 SXM's figure (same compute)
        ("h200-sxm", "bf16", FRACTION * 794.5 / 989.4),
        ("mi300x", "bf16", FRACTION * 668.4 / 1307.4),  # 0.3783
        ("l40s", "bf16", 0.652),  # no measurement: the A100-based default
        ("a100-80gb-sxm", "fp8", 0.652),  # no fp8 on an A100 at all: the default
    ],
)
def test_default_gemm_efficiency_by_hand(gpu, dtype, expected):
    eta, source = default_gemm_efficiency(catalog.gpu(gpu), dtype)
    assert eta == pytest.approx(expected, rel=1e-9)
    assert gpu in source


def test_h100_runs_slower_per_flop_than_a100_by_the_mamf_ratio():
    h, a = default_gemm_efficiency(catalog.gpu("h100-sxm"), "bf16")[0], default_gemm_efficiency(catalog.gpu("a100-80gb-sxm"), "bf16")[0]
    # (794.5/989.4) / (271.2/312) = 0.8030 / 0.8692 = 0.9238
    assert h / a == pytest.approx((794.5 / 989.4) / (271.2 / 312.0), rel=1e-9)
    assert h / a == pytest.approx(0.9238, abs=1e-4)


def test_plan_binds_the_gpu_default_and_the_plan_override_wins():
    plan = llama7b_h100_plan()
    est = estimate(plan)
    assert est.values[S.eta_gemm] == pytest.approx(FRACTION * 794.5 / 989.4)
    # the attention core: FlashAttention-2's measured H100 speed, not η_gemm / 2 — at this plan's
    # 4,096 tokens the FlashAttention-2 paper's H100 figure (causal, head dim 128) gives 294 TFLOP/s
    assert float(est.value("time.attention_efficiency")) * 989.4 == pytest.approx(294, rel=0.02)
    # the same plan with that η_gemm written out gives the same step time
    explicit = attrs.evolve(plan, efficiency=Efficiency(gemm=FRACTION * 794.5 / 989.4))
    assert float(estimate(explicit).value("time.step_seconds")) == pytest.approx(float(est.value("time.step_seconds")), rel=1e-12)
    # an override applies to every dtype
    over = estimate(attrs.evolve(plan, efficiency=Efficiency(gemm=0.5)))
    assert (over.values[S.eta_gemm], over.values[S.eta_attn]) == (0.5, est.values[S.eta_attn])
    # and [efficiency] attention sets the attention kernel alone
    attn = estimate(attrs.evolve(plan, efficiency=Efficiency(attention=0.6)))
    assert (attn.values[S.eta_gemm], attn.values[S.eta_attn]) == (est.values[S.eta_gemm], 0.6)
    # a test GPU without a mamf table gets the A100-based 0.652, and without an attention benchmark
    # η_attn = η_gemm / 2
    fallback = estimate(make_plan())
    assert (fallback.values[S.eta_gemm], fallback.values[S.eta_attn], fallback.values[S.s_attn]) == (0.652, 0.326, 0)
    assert estimate(attrs.evolve(make_plan(), efficiency=Efficiency(gemm=0.5))).values[S.eta_attn] == 0.25


def test_fp8_gemms_at_the_fp8_figure_and_the_attention_core_at_bf16s():
    plan = attrs.evolve(llama7b_h100_plan(), precision=Precision(compute="fp8"))
    est = estimate(plan)
    assert est.values[S.eta_gemm] == pytest.approx(FRACTION * 1402.6 / 1978.9)
    # the attention core stays in BF16: the BF16 plan's FlashAttention-2 rate
    assert est.values[S.eta_attn] == estimate(llama7b_h100_plan()).values[S.eta_attn]
    # the compute time's attention-core term is F_core ÷ (N · 2 · F_peak16 · η_core), η_core the
    # kernel's rate at this sequence length (time.attention_efficiency): evaluating its
    # expression with η_core doubled must remove exactly half of that term
    from llmplan.bindings import evaluate

    expr = est.definitions.items["time.compute_seconds"].expr
    base = float(evaluate(expr, est.values))
    assert base == pytest.approx(float(est.value("time.compute_seconds")), rel=1e-12)
    core = est.definitions.items["time.attention_efficiency"].symbol
    doubled = dict(est.values)
    doubled[core] = 2 * est.values[core]
    core_half = base - float(evaluate(expr, doubled))
    assert core_half > 0
    quadrupled = dict(est.values)
    quadrupled[core] = 4 * est.values[core]
    # core/2 removed by doubling, 3·core/4 by quadrupling: the core term is ∝ 1/η_attn
    assert base - float(evaluate(expr, quadrupled)) == pytest.approx(1.5 * core_half, rel=1e-9)


def test_gpu_entry_mamf_round_trips_and_is_checked(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(
        textwrap.dedent(
            """
            [gpus.lab-gpu]
            name = "lab GPU"
            memory = "80 GiB"
            memory_bandwidth = "3 TB/s"
            peak = { bf16 = "1000 TFLOP/s" }
            mamf = { bf16 = "700 TFLOP/s" }
            """
        ),
        encoding="utf-8",
    )
    g = catalog.load(path).gpu("lab-gpu")
    assert g.mamf == {"bf16": 700e12}
    assert default_gemm_efficiency(g, "bf16")[0] == pytest.approx(FRACTION * 0.7)
    # above the peak, or for a dtype without a peak: an error naming the key
    with pytest.raises(LlmplanError) as err:
        attrs.evolve(GPU_A100, mamf={"bf16": 400e12})
    assert "mamf.bf16" in str(err.value) and "312" in str(err.value)
    with pytest.raises(LlmplanError) as err:
        attrs.evolve(GPU_A100, mamf={"bf61": 200e12})
    assert "mamf.bf61" in str(err.value) and "bf16" in str(err.value)


def test_attention_kernel_time_by_hand():
    # Llama 2 7B, 4096-token sequences, 1024 per step on 64 H100, no recomputation.
    # Per token and layer the full (non-causal) core FLOPs are: forward 4·s·h (QKᵀ and P·V),
    # backward twice that, plus FlashAttention's recomputed QKᵀ 2·s·h = 14·s·h; the causal
    # kernel executes half of them at η_attn of the 989.4 TFLOP/s BF16 peak.
    base = attrs.evolve(llama7b_h100_plan(), parallelism=attrs.evolve(llama7b_h100_plan().parallelism, recompute="none"))
    s, h, layers, seqs, gpus, peak = 4096, 4096, 32, 1024, 64, 989.4e12
    executed = layers * 14 * s * h * seqs * s / 2
    t = {}
    for eta in (0.25, 0.5):
        est = estimate(attrs.evolve(base, efficiency=Efficiency(attention=eta)))
        t[eta] = float(est.value("time.compute_seconds"))
    assert t[0.25] - t[0.5] == pytest.approx(executed / (gpus * peak) * (1 / 0.25 - 1 / 0.5), rel=1e-9)
