"""The fused attention kernel's speed: measured benchmarks per GPU and kernel, not η_gemm / 2.

Expected numbers are the bar labels of the FlashAttention-2 paper's forward + backward
benchmarks (Dao 2023; Dao-AILab/flash-attention assets/flash2_a100_fwd_bwd_benchmark.png and
flash2_h100_fwd_bwd_benchmark.png, causal panels), typed here from the figures.
"""

from __future__ import annotations

import attrs
import pytest

import llmplan
from llmplan import catalog
from llmplan import symbols as S
from llmplan.errors import PlanError
from llmplan.plan import ATTENTION_KERNELS, Efficiency, Parallelism, default_attention_efficiency
from llmplan.serialize import dump, loads
from tests.plans import llama7b_h100_plan, make_plan

SEQ = (512, 1024, 2048, 4096, 8192, 16384)
#: (GPU id, kernel, head dim) -> TFLOP/s at SEQ, causal, forward + backward
BARS = {
    ("a100-80gb-sxm", "flash2", 128): (99, 133, 155, 173, 182, 189),
    ("a100-80gb-sxm", "flash2", 64): (88, 119, 140, 156, 165, 171),
    ("a100-80gb-sxm", "flash1", 128): (55, 62, 69, 76, 80, 83),
    ("a100-80gb-sxm", "flash1", 64): (58, 70, 77, 87, 92, 97),
    ("a100-80gb-sxm", "xformers", 128): (58, 72, 82, 87, 91, 92),
    ("a100-80gb-sxm", "xformers", 64): (51, 60, 66, 68, 69, 67),
    ("a100-80gb-sxm", "triton", 128): (50, 61, 68, 74, 78, 80),
    ("a100-80gb-sxm", "triton", 64): (59, 75, 79, 76, 79, 80),
    ("h100-sxm", "flash2", 128): (163, 221, 265, 294, 308, 328),
    ("h100-sxm", "flash2", 64): (141, 192, 232, 257, 273, 284),
    ("h100-sxm", "flash1", 128): (98, 109, 108, 126, 135, 137),
    ("h100-sxm", "flash1", 64): (104, 123, 136, 138, 149, 156),
}
#: the fit's documented largest deviation from the bars (FlashAttention-1 at head dim 128 on
#: H100 has a dip at 2k the two-parameter curve cannot follow)
FIT_ERROR = {("h100-sxm", "flash1", 128): 0.12}


def curve(gpu: str, kernel: str, head_dim: int, s: float) -> float:
    """TFLOP/s of the default curve: η_attn · F_peak · s / (s + s_attn)."""
    g = catalog.gpu(gpu)
    a = default_attention_efficiency(g, kernel, head_dim)
    return a.eta * g.peak["bf16"] / 1e12 * s / (s + a.s_attn)


@pytest.mark.parametrize("key", list(BARS))
def test_curve_follows_the_published_benchmark(key):
    gpu, kernel, hd = key
    tol = FIT_ERROR.get(key, 0.065)
    for s, bar in zip(SEQ, BARS[key]):
        assert curve(gpu, kernel, hd, s) == pytest.approx(bar, rel=tol), (key, s)
    # max_error: the worse of the kernel's two head-dimension rows on this GPU
    both = max(FIT_ERROR.get((gpu, kernel, d), 0.065) for d in (64, 128))
    assert default_attention_efficiency(catalog.gpu(gpu), kernel, hd).max_error <= both


def test_the_same_kernel_gains_about_1_7x_from_a100_to_h100_not_the_peak_ratio():
    # the figures: FlashAttention-2 at 16k, 328 / 189 = 1.74; at 2k, 265 / 155 = 1.71 —
    # the A100 code runs unchanged on H100 (no wgmma), while the dense peaks differ 989.4 / 312 = 3.17
    for s, ratio in ((16384, 328 / 189), (2048, 265 / 155)):
        got = curve("h100-sxm", "flash2", 128, s) / curve("a100-80gb-sxm", "flash2", 128, s)
        assert got == pytest.approx(ratio, rel=0.04)
        assert got < 0.6 * 989.4 / 312


def test_h100_siblings_and_a100_40gb_share_the_measured_rows():
    for sibling in ("h800-sxm", "h200-sxm"):
        assert default_attention_efficiency(catalog.gpu(sibling)).eta == default_attention_efficiency(catalog.gpu("h100-sxm")).eta
    a40, a80 = catalog.gpu("a100-40gb-sxm"), catalog.gpu("a100-80gb-sxm")
    assert default_attention_efficiency(a40, "triton").s_attn == default_attention_efficiency(a80, "triton").s_attn


def test_head_dims_between_the_rows_interpolate_and_outside_clamp():
    for s in SEQ:
        lo, hi = sorted((curve("a100-80gb-sxm", "flash2", 64, s), curve("a100-80gb-sxm", "flash2", 128, s)))
        assert lo <= curve("a100-80gb-sxm", "flash2", 96, s) <= hi
    assert curve("h100-sxm", "flash2", 192, 4096) == curve("h100-sxm", "flash2", 128, 4096)
    assert curve("h100-sxm", "flash2", 32, 4096) == curve("h100-sxm", "flash2", 64, 4096)


def test_no_benchmark_falls_back_to_half_the_gemm_efficiency():
    # the RTX 4090 has no row; xformers has no H100 bar
    for gpu, kernel in (("rtx-4090", "flash2"), ("h100-sxm", "xformers")):
        a = default_attention_efficiency(catalog.gpu(gpu), kernel, gemm16=0.5)
        assert (a.eta, a.s_attn) == (0.25, 0.0)
        assert "no measured" in a.source


def test_plan_reports_the_kernel_rate_at_its_sequence_length():
    plan = llama7b_h100_plan()  # Llama 2 7B shape: head dim 128, FlashAttention-2 by default
    for seq, bar in ((2048, 265), (4096, 294), (8192, 308)):
        p = attrs.evolve(plan, method=attrs.evolve(plan.method, seq_len=seq))
        got = float(llmplan.estimate(p).value("time.attention_efficiency"))
        assert got * 989.4 == pytest.approx(bar, rel=0.02)


def test_context_parallelism_shortens_the_kernel_call():
    plan = llama7b_h100_plan()
    at = lambda seq, cp: float(llmplan.estimate(  # noqa: E731
        attrs.evolve(plan, method=attrs.evolve(plan.method, seq_len=seq),
                     parallelism=attrs.evolve(plan.parallelism, cp=cp))).value("time.attention_efficiency"))
    assert at(8192, 2) == pytest.approx(at(4096, 1), rel=1e-12)
    assert at(8192, 2) < at(8192, 1)


def test_slower_kernel_slower_step_by_the_attention_term_only():
    plan = attrs.evolve(llama7b_h100_plan(), cluster=attrs.evolve(llama7b_h100_plan().cluster, gpu=catalog.gpu("a100-80gb-sxm")))
    fast = llmplan.estimate(plan)
    slow = llmplan.estimate(attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, attention_kernel="flash1")))
    assert float(slow.value("time.step_seconds")) > float(fast.value("time.step_seconds"))
    # the GEMMs are untouched: the compute time differs by F_core·(1/rate_slow − 1/rate_fast)
    expr = fast.definitions.items["time.compute_seconds"].expr
    core = fast.definitions.items["time.attention_efficiency"].symbol
    swapped = dict(fast.values)
    swapped[core] = slow.values[core]
    from llmplan.bindings import evaluate

    assert float(evaluate(expr, swapped)) == pytest.approx(float(slow.value("time.compute_seconds")), rel=1e-12)


def test_efficiency_attention_sets_a_flat_rate():
    plan = attrs.evolve(llama7b_h100_plan(), efficiency=Efficiency(attention=0.4))
    for seq in (512, 8192):
        est = llmplan.estimate(attrs.evolve(plan, method=attrs.evolve(plan.method, seq_len=seq)))
        assert (est.values[S.eta_attn], est.values[S.s_attn]) == (0.4, 0)
        assert float(est.value("time.attention_efficiency")) == pytest.approx(0.4, rel=1e-12)


def test_bad_kernel_names_the_key_and_the_closest_value():
    with pytest.raises(PlanError) as err:
        Parallelism(attention_kernel="flash_2")
    text = str(err.value)
    assert "attention_kernel" in text and "'flash2'" in text
    for kernel in ATTENTION_KERNELS:
        assert kernel in text
    with pytest.raises(PlanError, match="flash_attention = false"):
        Parallelism(attention_kernel="flash1", flash_attention=False)


def test_attention_kernel_round_trips_through_toml():
    plan = attrs.evolve(make_plan(), parallelism=attrs.evolve(make_plan().parallelism, attention_kernel="xformers"))
    again = loads(dump(plan))
    assert again.parallelism.attention_kernel == "xformers"
    assert again == plan


#: The same figures' "PyTorch" bars: standard attention (baddbmm, causal-mask add, softmax,
#: einsum; flash-attention benchmarks/benchmark_flash_attention.py, attention_pytorch),
#: TFLOP/s on the causal count at 512, 2k and 8k tokens.
PYTORCH_BARS = {
    ("a100-80gb-sxm", 128): (23, 32, 34),
    ("a100-80gb-sxm", 64): (15, 17, 18),
    ("h100-sxm", 128): (40, 57, 63),
    ("h100-sxm", 64): (26, 31, 32),
}


def unfused_core_tflops(gpu: str, head_dim: int, s: int, framework: str) -> float:
    """llmplan's rate for the unfused attention core at the benchmark's shape (16k tokens per
    call, hidden 2048), on the causal FLOP count: the step time of a one-layer model without
    FlashAttention less that of the same model whose fused core runs at the full peak (whose
    core time is then exactly its executed FLOPs ÷ peak)."""
    from llmplan.model import Dense
    from llmplan.plan import Cluster, Method, Plan, Precision

    heads, b = 2048 // head_dim, 16384 // s
    model = Dense(layers=1, hidden=2048, heads=heads, ffn=64, vocab=128, max_positions=s,
                  hf_model_type="llama" if framework == "hf" else None)
    g = catalog.gpu(gpu)

    def seconds(flash: bool, eff: Efficiency) -> float:
        plan = Plan(model=model, method=Method(kind="pretrain", tokens=16384 * 1000, seq_len=s, global_batch=b),
                    precision=Precision(preset="bf16-pure"), cluster=Cluster(gpu=g, gpus=1),
                    parallelism=Parallelism(micro_batch=b, flash_attention=flash, framework=framework), efficiency=eff)
        est = llmplan.estimate(plan)
        return float(est.value("time.compute_seconds")) + float(est.value("time.elementwise_seconds"))

    causal_flops = 3.5 * 4 * b * heads * s * s * head_dim / 2
    core = seconds(False, Efficiency()) - (seconds(True, Efficiency(attention=1.0)) - causal_flops / g.peak["bf16"])
    return causal_flops / core / 1e12


@pytest.mark.parametrize("key", list(PYTORCH_BARS))
def test_unfused_core_with_hf_accounting_is_within_25_percent_of_standard_pytorch_attention(key):
    """The eager path's measured error (docs/concepts.md#efficiency): −22 … +20 % over 512–8k
    tokens with framework = "hf" (its fp32 softmax and extra stored tensors in the elementwise
    term); the Megatron accounting, which describes fused scale-mask-softmax kernels, is
    1.6–2.3 × faster than this unfused PyTorch code."""
    gpu, d = key
    for s, bar in zip((512, 2048, 8192), PYTORCH_BARS[key]):
        assert unfused_core_tflops(gpu, d, s, "hf") == pytest.approx(bar, rel=0.25), (key, s)
        assert 1.5 < unfused_core_tflops(gpu, d, s, "megatron") / bar < 2.5, (key, s)
