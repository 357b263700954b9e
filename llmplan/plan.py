"""The plan: what to run (method), in which number formats (precision), on what
hardware (cluster), laid out how (parallelism), at what efficiency and price.

Each class maps one-to-one onto a table of the plan file
(``docs/plan-file.md``, ``shared/reference/plan-format.md``); TOML and Python
are two spellings of the same objects (:mod:`llmplan.serialize`).
"""

from __future__ import annotations

from functools import lru_cache

import attrs

from .errors import PlanError, Problem, did_you_mean
from .hardware import GPU, Link
from .model import Dense, MoE, _Checked, _choice, _pos_number
from .model import _positive_int as _pos_int

__all__ = [
    "Method",
    "LoRA",
    "RL",
    "Precision",
    "Cluster",
    "Parallelism",
    "Efficiency",
    "OnPrem",
    "Cost",
    "Phase",
    "Plan",
    "METHOD_KINDS",
    "PRECISION_PRESETS",
    "DTYPE_BYTES",
    "OPTIMIZERS",
    "FRAMEWORKS",
    "SHARDINGS",
    "PP_SCHEDULES",
    "DUALPIPE_COMM_SMS",
    "RECOMPUTE_MODULES",
    "DEFAULT_RECOMPUTE_MODULES",
    "ATTENTION_KERNELS",
]

#: Fraction of the GPU's *maximum achievable matmul rate* (MAMF: the best of a brute-force
#: search over large GEMM shapes, measured per GPU and dtype — S. Bekman, *Machine Learning
#: Engineering*, "Maximum Achievable Matmul FLOPS comparison table") that a training step's
#: large GEMMs reach: ``η_gemm = GEMM_FRACTION_OF_MAMF × mamf / peak`` (A100 0.652, H100 SXM
#: BF16 0.602, FP8 0.532). It is the one constant of the efficiency model fitted to
#: training runs: the minimum of the mean |log(predicted/published)| over Megatron-LM's
#: Table 1 (Narayanan et al. 2021: ten GPT shapes, 1.7B–1T, on 32–3,072 A100, every layout
#: fact published) is 0.755 (:func:`llmplan.validation.fit_gemm_fraction`; rounded to two
#: decimals; ``tests/test_validation.py`` refits it). Every other validation run is held
#: out, and leave-one-group-out cross-validation refits 0.75–0.78 whichever group is left
#: out (``docs/validation.md``). What the GEMMs lose beyond MAMF (launch gaps, clocks under
#: a whole step's load, shapes worse than the search's best) is in this number; what runs
#: between them is priced separately (elementwise traffic, bubble, exposed communication,
#: optimizer step).
GEMM_FRACTION_OF_MAMF = 0.75

#: ``η_gemm`` on a GPU whose catalog entry has no measured maximum achievable matmul rate
#: (``mamf``): the A100 SXM's default, ``GEMM_FRACTION_OF_MAMF`` × its MAMF ÷ peak (271.2 of
#: 312 TFLOP/s in BF16, the catalog's figures) = 0.652 — an **assumption** for such a GPU.
DEFAULT_GEMM_EFFICIENCY = round(GEMM_FRACTION_OF_MAMF * 271.2 / 312.0, 3)


def default_gemm_efficiency(gpu, dtype: str) -> tuple[float, str]:
    """Default ``η_gemm`` (fraction of ``gpu``'s dense ``dtype`` peak) and where it comes from.

    ``GEMM_FRACTION_OF_MAMF × mamf / peak`` when the catalog gives the GPU's measured
    maximum achievable matmul rate for ``dtype`` (FP16 uses the BF16 figure: same tensor
    rate), else :data:`DEFAULT_GEMM_EFFICIENCY`.
    """
    key = "bf16" if dtype == "fp16" and "fp16" not in gpu.mamf else dtype
    mamf, peak = gpu.mamf.get(key), gpu.peak.get(key)
    if mamf and peak:
        return (
            GEMM_FRACTION_OF_MAMF * mamf / peak,
            f"{GEMM_FRACTION_OF_MAMF} × {gpu.id}'s measured maximum achievable {key} matmul rate "
            f"({mamf / 1e12:.1f} of {peak / 1e12:.1f} TFLOP/s)",
        )
    return DEFAULT_GEMM_EFFICIENCY, f"no measured {key} matmul rate for {gpu.id}: the A100-based default {DEFAULT_GEMM_EFFICIENCY}"

#: Fused attention kernels ``[parallelism] attention_kernel`` names (``flash_attention =
#: true``): FlashAttention-2 (the default; also PyTorch SDPA's flash backend and transformers'
#: ``flash_attention_2``), FlashAttention-1, xformers' memory-efficient attention, and
#: OpenAI Triton's fused attention (``triton.ops.flash_attention``). Their measured
#: speed per GPU is in ``llmplan/data/attention.toml``.
ATTENTION_KERNELS = ("flash2", "flash1", "xformers", "triton")


@attrs.frozen
class AttentionRate:
    """A fused attention kernel's default speed on one GPU: ``rate(s) = η_attn·F_peak·s/(s + s_attn)``.

    Attributes:
        eta: ``η_attn``, the long-sequence rate as a fraction of the GPU's dense BF16 peak
            (on the FLOPs the kernel executes: a causal kernel skips the masked half).
        s_attn: sequence length (tokens) at which the kernel reaches half that rate; 0 for
            a flat rate.
        source: where the numbers come from.
        max_error: the fit's largest relative deviation from the benchmark it was fitted to
            (0 for the flat fallback).
    """

    eta: float
    s_attn: float
    source: str
    max_error: float = 0.0


def golden_min(f, lo: float, hi: float, *, tol: float = 0.0, iterations: int = 200) -> float:
    """The minimum of a unimodal ``f`` on ``[lo, hi]`` by golden-section search: the middle of
    the bracket once it is ``tol`` wide or after ``iterations`` steps (one evaluation each)."""
    import math

    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(iterations):
        if hi - lo <= tol:
            break
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return (lo + hi) / 2


def fit_saturating(seq: list[float], tflops: list[float]) -> tuple[float, float, float]:
    """Least squares on ``log(rate)`` of ``rate = R·s/(s + s0)``: ``(R, s0, max relative error)``.

    For a given ``s0`` the best ``R`` is the geometric mean of ``rate·(s + s0)/s``; ``s0``
    is found by a golden-section search on ``[0, 4·max(seq)]`` (the squared error is
    unimodal in ``s0`` for these monotone, saturating benchmarks).
    """
    import math

    logs = [math.log(t) for t in tflops]

    def best_r(s0: float) -> tuple[float, float]:
        shape = [math.log(s / (s + s0)) for s in seq]
        log_r = sum(lt - sh for lt, sh in zip(logs, shape)) / len(seq)
        return log_r, sum((log_r + sh - lt) ** 2 for lt, sh in zip(logs, shape))

    s0 = golden_min(lambda x: best_r(x)[1], 0.0, 4.0 * max(seq))
    r = math.exp(best_r(s0)[0])
    worst = max(abs(r * s / (s + s0) / t - 1) for s, t in zip(seq, tflops))
    return r, s0, worst


@lru_cache(maxsize=1)
def _attention_benchmarks() -> dict:
    """``llmplan/data/attention.toml``, read once."""
    from importlib import resources

    from .serialize import tomllib

    return tomllib.loads(resources.files("llmplan").joinpath("data", "attention.toml").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _benchmark_fit(index: int, kernel: str, head_dim: int) -> tuple[float, float, float]:
    """:func:`fit_saturating` of one benchmark row (computed once per row)."""
    data = _attention_benchmarks()
    return fit_saturating(data["seq_len"], data["benchmarks"][index][kernel][f"hd{head_dim}"])


def default_attention_efficiency(gpu, kernel: str = "flash2", head_dim: int = 128, gemm16: float | None = None) -> AttentionRate:
    """Default speed of the fused attention kernel ``kernel`` on ``gpu`` for ``head_dim``.

    Where ``llmplan/data/attention.toml`` has a measured forward + backward benchmark of
    the kernel on the GPU (FlashAttention-2 paper's A100 and H100 figures), the curve
    ``R·s/(s + s_attn)`` fitted to it (:func:`fit_saturating`; largest deviation from the
    bars 0.6–11.6 %, in ``max_error``), linearly interpolated in the head dimension between
    its 64 and 128 rows and clamped outside; ``η_attn = R / F_peak(BF16)``. Otherwise a flat
    ``η_attn = gemm16 / 2`` (half the GEMM efficiency of the core's dtype, ``s_attn = 0``):
    an assumption, about FlashAttention-2's level on an H100. The benchmarks are FP16/BF16
    kernels; a plan computing in TF32/FP32 gets the same fraction of its own peak.
    """
    data = _attention_benchmarks()
    peak = gpu.peak.get("bf16") or gpu.peak.get("fp16")
    for i, bench in enumerate(data["benchmarks"]):
        if gpu.id in bench["applies_to"] and kernel in bench and peak:
            fits = {hd: _benchmark_fit(i, kernel, hd) for hd in (64, 128)}
            t = min(1.0, max(0.0, (head_dim - 64) / 64))
            r = (1 - t) * fits[64][0] + t * fits[128][0]
            s0 = (1 - t) * fits[64][1] + t * fits[128][1]
            worst = max(fits[64][2], fits[128][2])
            return AttentionRate(r * 1e12 / peak, s0, f"{kernel} on {bench['gpu']}: {bench['source']}", worst)
    if gemm16 is None:
        gemm16 = default_gemm_efficiency(gpu, "bf16")[0]
    return AttentionRate(gemm16 / 2, 0.0, f"no measured {kernel} benchmark for {gpu.id}: half the BF16 GEMM efficiency")


#: Device-memory passes over each stored activation byte per training step by the
#: kernels between the GEMMs (norms, activations, softmax, dropout, residual adds):
#: written and read once in the forward pass, read and its gradient written in the
#: backward pass — 4. A counting argument, not a fit.
DEFAULT_ELEMENTWISE_PASSES = 4

#: Default framework overhead per GPU (CUDA context ≈ 0.5 GiB, NCCL buffers and
#: allocator fragmentation ≈ 1.5 GiB) — an assumption, overridable.
DEFAULT_MEMORY_OVERHEAD = 2 * 2**30

METHOD_KINDS = ("pretrain", "continued-pretrain", "full-finetune", "lora", "qlora", "inference", "rl")
TRAINING_KINDS = METHOD_KINDS[:5]
#: Kinds that may train multi-token-prediction modules (``[method] mtp``): every weight trains.
MTP_KINDS = ("pretrain", "continued-pretrain", "full-finetune")

#: RL post-training (``kind = "rl"``, :class:`RL`, :mod:`llmplan.rl`).
RL_ALGORITHMS = ("grpo", "ppo")
RL_PLACEMENTS = ("colocated", "separate")

#: Whose activation accounting ``[parallelism] framework`` selects: Megatron-LM's fused
#: kernels (Korthikanti et al. 2022) or the Hugging Face transformers modules
#: (:func:`llmplan.formulas.memory.activations_per_layer` with ``hf=True``).
FRAMEWORKS = ("megatron", "hf")

#: How ``[parallelism] sharding`` keeps the parameters between uses: ``"zero"`` (DeepSpeed
#: ZeRO, Megatron-LM's distributed optimizer) replicates them under ZeRO-1/2 and all-gathers
#: the updated ones once per step; ``"fsdp"`` (PyTorch FSDP) shards them at rest and
#: all-gathers them before every micro-batch's forward (``SHARD_GRAD_OP`` = ZeRO-2,
#: ``FULL_SHARD`` = ZeRO-3; FSDP has no ZeRO-1).
SHARDINGS = ("zero", "fsdp")

#: Pipeline schedules (``[parallelism] pp_schedule``): Megatron-LM's 1F1B and interleaved
#: 1F1B (Narayanan et al. 2021 §2.2), GPipe (Huang et al. 2019), DeepSeek-V3's DualPipe
#: (arXiv 2412.19437 §3.2.1).
PP_SCHEDULES = ("1f1b", "interleaved", "gpipe", "dualpipe")

#: Modules ``[parallelism] recompute_modules`` may name under ``recompute = "selective"``:
#: Megatron-Core's ``recompute_modules`` names (``TransformerConfig``), each with what
#: llmplan drops from the stored activations and charges again
#: (:func:`llmplan.formulas.memory.activations_per_layer`,
#: :func:`llmplan.formulas.flops.selective_recompute_per_token`):
#:
#: * ``core_attn``: the attention core (its ``s²`` scores and softmax; Korthikanti et al.
#:   2022 §5), its FLOPs again;
#: * ``layernorm``: the outputs of every RMSNorm/LayerNorm of a layer (the two block norms
#:   and MLA's latent norms), recomputed from their stored inputs (DeepSeek-V3 report §3.2.3);
#: * ``mla_up_proj``: MLA's up-projection outputs Q, K, V (RoPE applied), recomputed from the
#:   latents (§3.2.3), the up-projection GEMMs again;
#: * ``moe_act``: the routed experts' activation-function output (the SwiGLU product, the
#:   down-projection's input), recomputed from its cached inputs (§3.3.3);
#: * ``mlp``: the dense MLP's inner tensors, its GEMMs again;
#: * ``shared_experts``: the shared experts' inner tensors, their GEMMs again.
#:
#: Megatron-Core's ``"moe"`` (the whole MoE layer, all-to-all included) is not modelled.
RECOMPUTE_MODULES = ("core_attn", "layernorm", "mla_up_proj", "moe_act", "mlp", "shared_experts")

#: ``recompute = "selective"`` without ``recompute_modules``: the attention core only
#: (Korthikanti et al. 2022's selective recomputation, Megatron-Core's default).
DEFAULT_RECOMPUTE_MODULES = ("core_attn",)

#: SMs per GPU DeepSeek-V3 dedicates to communication under DualPipe: 20 of the H800's 132
#: (report §3.2.2) — the default of ``[parallelism] comm_sms``.
DUALPIPE_COMM_SMS = 20

#: Bytes per element of each storage dtype. nf4/int4 are 4 bits; the
#: quantisation constants of block-wise formats are priced separately.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4,
    "tf32": 4,
    "bf16": 2,
    "fp16": 2,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
    "nf4": 0.5,
    "mxfp4": 0.5,  # OCP Microscaling FP4 (E2M1); one E8M0 scale per 32, priced with the constants
}

#: What ``[method] quant_scope`` may name: every linear layer, or the routed experts only.
QUANT_SCOPES = ("linear", "experts")

#: Optimizer state bytes per trainable parameter, *excluding* the fp32 master
#: copy: AdamW keeps two moments (Kingma & Ba 2015), 8-bit Adam two 1-byte
#: moments (Dettmers et al. 2022, block-wise constants neglected), SGD with
#: momentum one, Lion one (only the momentum: Chen et al. 2023, "Symbolic Discovery
#: of Optimization Algorithms", Algorithm 2), Adafactor factored second moments
#: (≈ 0 per parameter; the row/column statistics are neglected) and no first moment
#: by default.
OPTIMIZERS: dict[str, int] = {
    "adamw": 2,
    "adam": 2,
    "adamw-8bit": 2,
    "lion": 1,
    "sgd": 1,
    "sgd-nomomentum": 0,
    "adafactor": 0,
}

#: The presets: (weights, grads, master, optimizer_states, activations, compute).
PRECISION_PRESETS: dict[str, dict[str, str | None]] = {
    "fp32": dict(weights="fp32", grads="fp32", master=None, optimizer_states="fp32", activations="fp32", compute="tf32"),
    "fp16-mixed": dict(weights="fp16", grads="fp16", master="fp32", optimizer_states="fp32", activations="fp16", compute="fp16"),
    "bf16-mixed": dict(weights="bf16", grads="bf16", master="fp32", optimizer_states="fp32", activations="bf16", compute="bf16"),
    "bf16-pure": dict(weights="bf16", grads="bf16", master=None, optimizer_states="bf16", activations="bf16", compute="bf16"),
    "fp8-mixed": dict(weights="bf16", grads="bf16", master="fp32", optimizer_states="fp32", activations="bf16", compute="fp8"),
}


@attrs.frozen(kw_only=True)
class LoRA(_Checked):
    """Low-rank adapters, TOML ``[method.lora]`` (Hu et al. 2021; QLoRA: Dettmers et al. 2023).

    Attributes:
        rank: adapter rank *r*.
        alpha: scaling numerator (does not change cost).
        targets: module names (``q_proj``, ``v_proj`` …) or ``"all-linear"``.
        base_bits: bits per frozen base weight (16, 8 or 4 = NF4 for QLoRA).
        double_quant: quantise the block-wise absmax constants too (QLoRA §3).
        block_size: NF4 block size (64).
        quantize_experts: whether an MoE model's routed-expert weights are stored at
            ``base_bits`` too. Default (``None``) = ``False``: transformers 5 keeps each
            MoE layer's experts as fused 3-D parameters (DBRX's always were), and
            bitsandbytes' 4/8-bit loading replaces only ``nn.Linear`` modules, so the
            experts stay 16-bit (bitsandbytes issue #1849; measured with bitsandbytes
            0.50 on transformers 5.25 by ``tests/oracle/test_oracle_qlora.py``). ``True``
            for stacks that quantise them (transformers 4's per-expert ``nn.Linear``,
            Unsloth). No effect on dense models or 16-bit bases.
    """

    rank: int = 16
    alpha: float = 32
    targets: tuple[str, ...] | str = ("q_proj", "k_proj", "v_proj", "o_proj")
    base_bits: int | None = None
    double_quant: bool = True
    block_size: int = 64
    quantize_experts: bool | None = None

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        _pos_int(self, "rank", p)
        _pos_int(self, "block_size", p)
        if self.base_bits is not None:
            _choice(self, "base_bits", (4, 8, 16), p)
        return p


@attrs.frozen(kw_only=True)
class RL(_Checked):
    """RL post-training, TOML ``[method.rl]`` (``kind = "rl"``; :mod:`llmplan.rl`, ``docs/rl.md``).

    One step generates ``group_size`` responses to each of ``prompts_per_step`` prompts
    with the rollout engine, scores them (the policy's old log-probabilities, the
    reference's for the KL term, the reward model, PPO's critic values) and updates
    the policy (and the critic) on them.

    Model fields name a catalog model id, ``"policy"`` (the policy's shape, i.e.
    ``[model]``) or ``"none"``.

    Attributes:
        algorithm: ``"grpo"`` (group-relative advantages, no critic; Shao et al. 2024)
            or ``"ppo"`` (a trained critic; Schulman et al. 2017, Ouyang et al. 2022).
        group_size: responses sampled per prompt; default 8 for ``grpo``, 1 for ``ppo``.
        prompts_per_step: prompts per RL step.
        prompt_tokens: tokens per prompt.
        response_tokens: generated tokens per response (every response this long).
        reference: frozen reference for the KL penalty; default ``"policy"``.
        reward: reward model; default ``"none"`` (rule-based rewards, e.g. checked math answers).
        critic: value model, ``ppo`` only; default ``"policy"`` for ``ppo``, ``"none"`` for ``grpo``.
        epochs: update passes over each step's samples (PPO epochs).
        steps: RL steps in the run (for total time and cost); optional.
        placement: ``"colocated"`` (rollout engine and every model share all GPUs, as the
            verl and OpenRLHF hybrid engines do) or ``"separate"`` (a rollout pool of
            ``rollout_gpus`` GPUs, the rest train and score).
        rollout_gpus: GPUs of the rollout pool (``separate`` only).
        rollout_tp: tensor-parallel size of one rollout replica; default ``parallelism.tp``.
        rollout_pp: pipeline stages of one rollout replica; default ``parallelism.pp``.
        rollout_batch: most sequences a rollout replica runs at once (vLLM's
            ``max_num_seqs``); default: all of its sequences, capped by its KV-cache room.
        offload_idle: move the trained models' states and the frozen weights to host memory
            while other phases run (verl's param/optimizer offload, OpenRLHF's DeepSpeed
            sleep); default false: they stay resident.
    """

    algorithm: str = "grpo"
    group_size: int | None = None
    prompts_per_step: int = 256
    prompt_tokens: int = 1024
    response_tokens: int = 4096
    reference: str | None = None
    reward: str | None = None
    critic: str | None = None
    epochs: int = 1
    steps: int | None = None
    placement: str = "colocated"
    rollout_gpus: int | None = None
    rollout_tp: int | None = None
    rollout_pp: int | None = None
    rollout_batch: int | None = None
    offload_idle: bool = False

    @property
    def samples_per_prompt(self) -> int:
        """``group_size`` in force (8 for grpo, 1 for ppo unless set)."""
        if self.group_size is not None:
            return self.group_size
        return 1 if self.algorithm == "ppo" else 8

    @property
    def models(self) -> dict[str, str]:
        """Role → ``"policy"``, ``"none"`` or a catalog id, defaults applied."""
        critic = self.critic if self.critic is not None else ("policy" if self.algorithm == "ppo" else "none")
        return {"reference": self.reference or "policy", "reward": self.reward or "none", "critic": critic}

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        _choice(self, "algorithm", RL_ALGORITHMS, p)
        _choice(self, "placement", RL_PLACEMENTS, p)
        for name in ("prompts_per_step", "prompt_tokens", "response_tokens", "epochs"):
            _pos_int(self, name, p)
        for name in ("group_size", "steps", "rollout_gpus", "rollout_tp", "rollout_pp", "rollout_batch"):
            if getattr(self, name) is not None:
                _pos_int(self, name, p)
        for name in ("reference", "reward", "critic"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                p.append(Problem(name, f"{value!r} is not a catalog model id, \"policy\" or \"none\""))
        if self.algorithm == "grpo":
            if isinstance(self.group_size, int) and self.group_size == 1:
                p.append(Problem("group_size", "1: grpo needs at least 2 responses per prompt (advantages are relative to the group)"))
            if self.critic not in (None, "none"):
                p.append(Problem("critic", f"{self.critic!r}: grpo has no critic (group-relative advantages); use algorithm = \"ppo\""))
        if self.algorithm == "ppo" and self.critic == "none":
            p.append(Problem("critic", "\"none\": ppo trains a critic (value model); use algorithm = \"grpo\" for a critic-free run"))
        if self.placement == "separate" and self.rollout_gpus is None:
            p.append(Problem("rollout_gpus", "required with placement = \"separate\" (GPUs of the rollout pool)"))
        if self.placement == "colocated" and self.rollout_gpus is not None:
            p.append(Problem("rollout_gpus", "only with placement = \"separate\" (colocated rollouts use every GPU)"))
        return p


def chinchilla_fraction(tokens: object) -> float | None:
    """``"chinchilla"`` → 1.0, ``"0.15 chinchilla"`` → 0.15; anything else → ``None``."""
    if not isinstance(tokens, str):
        return None
    parts = tokens.split()
    if parts == ["chinchilla"]:
        return 1.0
    if len(parts) == 2 and parts[1] == "chinchilla":
        try:
            value = float(parts[0].rstrip("%")) / (100 if parts[0].endswith("%") else 1)
        except ValueError:
            return None
        return value if value > 0 else None
    return None


@attrs.frozen(kw_only=True)
class Method(_Checked):
    """What the GPUs do, TOML ``[method]``.

    Attributes:
        kind: ``pretrain`` | ``continued-pretrain`` | ``full-finetune`` | ``lora`` |
            ``qlora`` | ``inference`` | ``rl``.
        tokens: training tokens (count), ``"chinchilla"`` (20 per parameter) or a
            fraction of it, ``"0.15 chinchilla"`` (continued pre-training at 15 % of
            from-scratch tokens).
        samples, tokens_per_sample, epochs: fine-tuning data instead of ``tokens``:
            tokens = samples × tokens_per_sample × epochs.
        seq_len: tokens per sequence (training) or prompt context (inference).
        global_batch: sequences per optimizer step.
        global_batch_tokens: alternatively, tokens per step; converted to whole
            sequences and rounded to a multiple of dp × micro_batch.
        lora: adapter settings for ``lora`` / ``qlora``.
        batch: concurrent sequences (inference).
        new_tokens: generated tokens per sequence (inference).
        requests_per_second: target load for ``serving.replicas`` (inference):
            requests of ``seq_len`` prompt and ``new_tokens`` generated tokens.
        quant_group_size: weights per quantisation group of int8/int4/nf4
            weights (inference); default 128 (GPTQ/AWQ) for int8/int4, 64 for nf4.
        quant_zero_point: int8/int4 groups store a zero point (asymmetric,
            GPTQ/AWQ) as well as the fp16 scale (inference).
        quant_scope: which linear layers ``precision.weights`` quantises (inference):
            ``"linear"`` (every linear layer of the blocks, GPTQ/AWQ) or ``"experts"``
            (the routed experts only, the rest 16-bit: gpt-oss's MXFP4 checkpoints keep
            attention and router in BF16). ``"experts"`` needs a MoE model.
        rl: RL post-training settings for ``rl`` (:class:`RL`; defaults without a table).
        mtp: train the model's multi-token-prediction modules (DeepSeek-V3 report §2.2;
            ``model.mtp_layers``): their FLOPs join ``flops.per_token``
            (:func:`llmplan.formulas.flops.mtp_forward_per_token`). Default (``None``):
            on for ``pretrain`` when the model has MTP modules (the report trains them in
            pre-training), off otherwise; ``true`` needs a full-training kind
            (``pretrain``, ``continued-pretrain``, ``full-finetune``).
    """

    kind: str = "pretrain"
    tokens: int | float | str | None = None
    samples: int | None = None
    tokens_per_sample: int | None = None
    epochs: float = 1
    seq_len: int = 4096
    global_batch: int | None = None
    global_batch_tokens: int | None = None
    lora: LoRA | None = None
    batch: int = 1
    new_tokens: int = 0
    requests_per_second: float | None = None
    quant_group_size: int | None = None
    quant_zero_point: bool = True
    quant_scope: str = "linear"
    rl: RL | None = None
    mtp: bool | None = None

    @property
    def training(self) -> bool:
        return self.kind != "inference"

    def trains_mtp(self, model) -> bool:
        """Whether the run trains ``model``'s multi-token-prediction modules (``mtp`` in force)."""
        if getattr(model, "mtp_layers", 0) == 0 or self.kind not in MTP_KINDS:
            return False
        return self.kind == "pretrain" if self.mtp is None else bool(self.mtp)

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        _choice(self, "kind", METHOD_KINDS, p)
        _pos_int(self, "seq_len", p)
        _pos_int(self, "batch", p)
        _pos_int(self, "new_tokens", p, allow_zero=True)
        if self.quant_group_size is not None:
            _pos_int(self, "quant_group_size", p)
        _choice(self, "quant_scope", QUANT_SCOPES, p)
        rps = self.requests_per_second
        if rps is not None and (isinstance(rps, bool) or not isinstance(rps, (int, float)) or not rps > 0):
            p.append(Problem("requests_per_second", f"{rps!r} is not a positive request rate"))
        for name in ("global_batch", "global_batch_tokens"):
            if getattr(self, name) is not None:
                _pos_int(self, name, p)
        if self.global_batch is not None and self.global_batch_tokens is not None:
            p.append(Problem("global_batch_tokens", "give global_batch or global_batch_tokens, not both"))
        if isinstance(self.tokens, str):
            if chinchilla_fraction(self.tokens) is None:
                p.append(Problem("tokens", f"{self.tokens!r} is not a token count, 'chinchilla' or '<fraction> chinchilla'"))
        elif self.tokens is not None and (isinstance(self.tokens, bool) or self.tokens <= 0):
            p.append(Problem("tokens", f"{self.tokens!r} is not a positive token count"))
        if (self.samples is None) != (self.tokens_per_sample is None):
            p.append(Problem("samples", "give samples and tokens_per_sample together (tokens = samples × tokens_per_sample × epochs)"))
        if self.samples is not None and self.tokens is not None:
            p.append(Problem("samples", "give tokens or samples × tokens_per_sample, not both"))
        for name in ("samples", "tokens_per_sample"):
            if getattr(self, name) is not None:
                _pos_int(self, name, p)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not self.epochs > 0:
            p.append(Problem("epochs", f"{self.epochs!r} is not a positive number"))
        if self.kind in ("lora", "qlora") and self.lora is None:
            pass  # defaults apply (LoRA())
        if self.rl is not None and self.kind != "rl":
            p.append(Problem("rl", f"a [method.rl] table needs kind = \"rl\" (kind is {self.kind!r})"))
        if self.mtp is not None and not isinstance(self.mtp, bool):
            p.append(Problem("mtp", f"{self.mtp!r} is not true or false"))
        elif self.mtp and self.kind not in MTP_KINDS:
            p.append(Problem("mtp", f"true with kind = {self.kind!r}: multi-token-prediction modules train only when every "
                             f"weight does (allowed kinds: {', '.join(MTP_KINDS)})"))
        return p

    @property
    def rl_settings(self) -> RL | None:
        """The RL settings in force for ``kind = "rl"`` (defaults without a table), else ``None``."""
        if self.kind != "rl":
            return None
        return self.rl if self.rl is not None else RL()

    @property
    def base_bits(self) -> int:
        """Bits per frozen base weight in force: 4 for ``qlora`` unless set, else 16."""
        adapter = self.adapter
        if adapter is None or adapter.base_bits is None:
            return 4 if self.kind == "qlora" else 16
        return adapter.base_bits

    @property
    def experts_quantized(self) -> bool:
        """Whether routed-expert base weights are stored at :attr:`base_bits` (see :class:`LoRA`)."""
        adapter = self.adapter
        return adapter is not None and bool(adapter.quantize_experts) and self.base_bits < 16

    @property
    def adapter(self) -> LoRA | None:
        """The adapter settings in force (defaults for lora/qlora without a table)."""
        if self.kind not in ("lora", "qlora"):
            return None
        return self.lora if self.lora is not None else LoRA()


@attrs.frozen(kw_only=True)
class Precision(_Checked):
    """Number formats, TOML ``[precision]``.

    ``preset`` sets every dtype; any of ``weights``, ``grads``, ``master``,
    ``optimizer_states``, ``activations``, ``kv_cache``, ``compute`` overrides it.
    ``bf16-mixed`` = bf16 weights and gradients, fp32 master, two fp32 Adam
    moments: 16 bytes/param (Rajbhandari et al. 2020 §3.1, K = 12).
    ``master = "none"`` drops the master copy.

    Two more dtypes set how some saved activations are cached for the backward pass
    (default: ``activations``):

    * ``linear_inputs``: the inputs of the Linear layers (their weight gradient's
      operand) — FP8 training caches them in FP8 (DeepSeek-V3 report §3.3.3;
      TransformerEngine's Linear saves its quantised, transposed input unless
      ``save_original_input``), so with ``compute = "fp8"`` (``fp8-mixed``) the default
      is ``fp8``. Not the attention output (the output projection's input),
      which the attention core's backward also reads and which stays at ``activations``
      (the report keeps it in E5M6), nor the router's input (gating stays in BF16, §3.3.1);
    * ``activation_func_inputs``: the inputs of the MLP's activation function (gate and up
      of SwiGLU) — Megatron-Core's ``activation_func_fp8_input_store``; DeepSeek-V3 stores
      the SwiGLU inputs in FP8 (§3.3.3).
    """

    preset: str = "bf16-mixed"
    optimizer: str = "adamw"
    weights: str | None = None
    grads: str | None = None
    master: str | None = None
    optimizer_states: str | None = None
    activations: str | None = None
    kv_cache: str | None = None
    compute: str | None = None
    linear_inputs: str | None = None
    activation_func_inputs: str | None = None

    def dtype(self, what: str) -> str | None:
        """The dtype in force for ``what`` (``None``: no master copy)."""
        value = getattr(self, what)
        if value is not None:
            return None if value == "none" else value
        if what == "linear_inputs" and self.dtype("compute") == "fp8":
            return "fp8"  # an FP8 GEMM's quantised input is what its weight gradient reads
        if what in ("kv_cache", "linear_inputs", "activation_func_inputs"):
            return self.dtype("activations")
        return PRECISION_PRESETS[self.preset][what]

    def bytes(self, what: str) -> float:
        """Bytes per element for ``what`` (0 for an absent master copy)."""
        dt = self.dtype(what)
        return 0 if dt is None else DTYPE_BYTES[dt]

    def optimizer_bytes(self) -> float:
        """Optimizer-state bytes per trainable parameter (moments only, no master)."""
        if self.optimizer == "adamw-8bit":
            return 2
        return OPTIMIZERS[self.optimizer] * self.bytes("optimizer_states")

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        _choice(self, "preset", tuple(PRECISION_PRESETS), p)
        _choice(self, "optimizer", tuple(OPTIMIZERS), p)
        for name in ("weights", "grads", "optimizer_states", "activations", "kv_cache", "linear_inputs", "activation_func_inputs"):
            if getattr(self, name) is not None:
                _choice(self, name, tuple(DTYPE_BYTES), p)
        if self.master is not None:
            _choice(self, "master", ("fp32", "bf16", "fp16", "none"), p)
        if self.compute is not None:
            _choice(self, "compute", ("fp32", "tf32", "bf16", "fp16", "fp8"), p)
        return p


@attrs.frozen(kw_only=True)
class Cluster(_Checked):
    """The hardware, TOML ``[cluster]``.

    Attributes:
        gpu: the accelerator (a catalog id in TOML, or an inline ``[cluster.gpu]`` table).
        gpus: GPUs in the run; ``None`` only for ``llmplan search``.
        gpus_per_node: default: the GPU's standard platform.
        intra_node: link between GPUs of a node; default: the GPU's.
        inter_node: the node's network fabric, per port; default: the GPU's.
        nics_per_node: network ports per node; default: one per GPU.
    """

    gpu: GPU
    gpus: int | None = None
    gpus_per_node: int | None = None
    intra_node: Link | None = None
    inter_node: Link | None = None
    nics_per_node: int | None = None

    @property
    def per_node(self) -> int:
        """GPUs per node in force."""
        return self.gpus_per_node if self.gpus_per_node is not None else self.gpu.gpus_per_node

    @property
    def intra_link(self) -> Link:
        """Intra-node link in force (``intra_node`` or the GPU's catalog default)."""
        if self.intra_node is not None:
            return self.intra_node
        from . import catalog

        return catalog.default().link(self.gpu.intra_node)

    @property
    def inter_link(self) -> Link:
        """Network link in force (``inter_node`` or the GPU's catalog default)."""
        if self.inter_node is not None:
            return self.inter_node
        from . import catalog

        return catalog.default().link(self.gpu.inter_node)

    @property
    def nvlink_domain(self) -> int:
        """GPUs that share the fast intra-node link (≤ ``per_node`` unless NVL72-like)."""
        return self.gpu.nvlink_domain

    @property
    def nics(self) -> int:
        """Network ports per node in force."""
        if self.nics_per_node is not None:
            return self.nics_per_node
        return self.gpu.nics_per_node if self.gpu.nics_per_node is not None else self.per_node

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        for name in ("gpus", "gpus_per_node", "nics_per_node"):
            if getattr(self, name) is not None:
                _pos_int(self, name, p)
        return p


def _module_tuple(value):
    """``recompute_modules`` given as a list (Python or TOML) is kept as a tuple (hashable, comparable)."""
    return tuple(value) if isinstance(value, list) else value


def _recompute_modules(value, problems: list[Problem]) -> None:
    """Record every problem of ``[parallelism] recompute_modules``: not a list of names, an
    unknown name (with the closest allowed one), a name given twice."""
    allowed = ", ".join(RECOMPUTE_MODULES)
    if value is None:
        return
    if not isinstance(value, tuple) or not all(isinstance(x, str) for x in value):
        problems.append(Problem("recompute_modules", f"{value!r} is not a list of module names (allowed: {allowed})"))
        return
    for name in value:
        if name in RECOMPUTE_MODULES:
            continue
        if name == "moe":
            problems.append(Problem(
                "recompute_modules",
                "'moe' (Megatron-Core's recomputation of the whole MoE layer, its expert all-to-all included) "
                f"is not modelled (allowed: {allowed})",
            ))
            continue
        problems.append(Problem("recompute_modules", f"{name!r} is not allowed{did_you_mean(name, RECOMPUTE_MODULES)} (allowed: {allowed})"))
    twice = sorted({x for x in value if value.count(x) > 1})
    if twice:
        problems.append(Problem("recompute_modules", f"{', '.join(map(repr, twice))} given more than once"))


@attrs.frozen(kw_only=True)
class Parallelism(_Checked):
    """The parallel layout, TOML ``[parallelism]``; every key optional.

    Attributes:
        tp: tensor-parallel size (Megatron-LM, Shoeybi et al. 2019).
        pp: pipeline stages; need not divide layers (stages get ⌈L/pp⌉ or ⌊L/pp⌋).
        cp: context-parallel size (ring attention over the sequence).
        ep: expert-parallel size, carved out of dp (ep divides dp).
        etp: tensor-parallel size inside an expert; default ``tp`` (Megatron-Core's
            ``expert_tensor_parallel_size`` default).
        dp: data-parallel size, ``"auto"`` = gpus ÷ (tp·pp·cp).
        zero: ZeRO stage 0–3 (Rajbhandari et al. 2020); FSDP ``SHARD_GRAD_OP`` = 2,
            ``FULL_SHARD`` = 3.
        sharding: ``"zero"`` (default: DeepSpeed ZeRO, Megatron-LM's distributed optimizer)
            or ``"fsdp"`` (PyTorch FSDP) (:data:`SHARDINGS`). They differ under ZeRO-2: FSDP's
            ``SHARD_GRAD_OP`` keeps the parameters sharded between steps and all-gathers them
            before every micro-batch's forward (``m`` all-gathers per step), ZeRO-2 keeps them
            replicated and all-gathers the updated shards once per step. ZeRO-1 has no FSDP
            form (an error). Measured against FSDP2 by ``tests/oracle/test_oracle_comm.py``.
        dp_shard: hybrid sharding: the ZeRO / FSDP states are sharded over groups of
            ``dp_shard`` consecutive data-parallel ranks and replicated over the
            ``dp ÷ dp_shard`` groups (PyTorch HSDP / ``HYBRID_SHARD``, torchtitan's
            ``data_parallel_shard_degree``, DeepSpeed MiCS' ``mics_shard_size``, Megatron's
            ``num_distributed_optimizer_instances`` = dp ÷ dp_shard). Gathers and
            reduce-scatters stay inside a group (one node when it is 8 GPUs); the gradient
            shards are all-reduced across the replicas — after every micro-batch under
            ``sharding = "fsdp"`` (FSDP2's default, measured), once per step otherwise.
            Default: the whole data-parallel group. Needs ``zero ≥ 1`` and a dense model;
            must divide dp.
        micro_batch: sequences per micro-batch.
        sequence_parallel: Korthikanti et al. 2022 §4.2.2; default true when tp > 1, except
            under ``framework = "hf"``: transformers' own tensor-parallel plans (``tp_plan``)
            have no sequence parallelism.
        recompute: ``none`` | ``selective`` (the modules of ``recompute_modules``) | ``full``.
        recompute_modules: what ``recompute = "selective"`` recomputes, Megatron-Core's
            ``recompute_modules`` names (:data:`RECOMPUTE_MODULES`): ``core_attn``,
            ``layernorm``, ``mla_up_proj``, ``moe_act``, ``mlp``, ``shared_experts``.
            Default (``None``): :data:`DEFAULT_RECOMPUTE_MODULES`, the attention core only;
            ``()`` recomputes nothing. Ignored (with a warning) unless ``recompute =
            "selective"``; each module's stored bytes and recomputed FLOPs are in
            ``docs/concepts.md#recompute-modules``.
        recompute_layers: with ``recompute = "full"``, recompute only this many layers of
            each pipeline stage's model chunk (each of the ``v`` chunks of an interleaved
            stage), the first ones, and let the others store all their activations:
            Megatron-LM's ``--recompute-method block --recompute-num-layers N``
            (Megatron-Bridge / NeMo ``recompute_method = "block"``, ``recompute_num_layers``).
            ``N`` at or above a chunk's layer count recomputes all of them. Default (``None``):
            every layer. The fraction of layers recomputed is
            :func:`llmplan.formulas.flops.recomputed_layer_fraction`; it scales the recomputed
            FLOPs, the recomputed collectives and the activations stored
            (``docs/concepts.md#partial-recompute``). Ignored (with a warning) unless
            ``recompute = "full"``.
        recompute_method: how ``recompute_layers`` applies (Megatron-LM
            ``--recompute-method``): ``"block"`` (default) recomputes the first N layers of each
            chunk, as above; ``"uniform"`` recomputes every layer, N at a time — each chunk is cut
            into groups of N layers and stores only each group's input, and the backward
            recomputes a whole group at once, holding its N layers' activations
            (``docs/concepts.md#partial-recompute``). ``uniform`` with N = 1 is ``recompute =
            "full"``. Ignored (with a warning) without ``recompute_layers``.
        flash_attention: no stored s² attention scores (Dao et al. 2022).
        attention_kernel: which fused attention kernel runs (:data:`ATTENTION_KERNELS`;
            ``flash_attention = true`` only): ``flash2`` (default; FlashAttention-2, also
            PyTorch SDPA's flash backend), ``flash1`` (FlashAttention-1; also the stand-in for
            flash-attn's Triton port, llm-foundry's ``attn_impl = "triton"``), ``xformers``,
            ``triton`` (OpenAI Triton's ``triton.ops.flash_attention``). Sets the
            default attention speed from the kernel's measured benchmark on the GPU
            (:func:`default_attention_efficiency`); ``[efficiency] attention`` overrides it.
        pp_schedule: ``1f1b`` | ``interleaved`` | ``gpipe`` | ``dualpipe`` (:data:`PP_SCHEDULES`).
            ``dualpipe``: DeepSeek-V3's bidirectional schedule (arXiv 2412.19437 §3.2.1,
            Table 2): bubble ``(pp/2 − 1)(F&B + B − 3W)``, two stages' parameters per GPU,
            ``pp + 1`` micro-batches of activations, and the expert-parallel all-to-all and
            pipeline sends of each chunk overlapped with the paired chunk's compute
            (``docs/concepts.md#dualpipe``); needs an even ``pp`` and an even number of
            micro-batches.
        virtual_stages: interleaved chunks per GPU (``interleaved`` only; default 2).
        offload: ``none`` | ``optimizer`` | ``optimizer+params`` (ZeRO-Offload).
        framework: whose activation accounting applies (:data:`FRAMEWORKS`).
            ``"megatron"`` (default): Korthikanti et al. 2022's count of Megatron-LM's
            fused kernels. ``"hf"``: Hugging Face transformers modules, which also save
            RMSNorm's fp32 input copy and ``rsqrt``, unfused SwiGLU's ``act(gate)``,
            the fused attention kernel's fp32 log-sum-exp (eager: ``repeat_kv`` copies
            and the fp32 softmax), MoE expert outputs (``activations_per_layer(...,
            hf=True)``, measured by ``tests/oracle/test_oracle_activations.py``).
            Changes ``memory.activations_per_layer`` and everything built on it
            (``memory.per_gpu.activations``, ``time.elementwise_seconds``); training
            plans only.
        first_stage_layers, last_stage_layers: layers on the first / last pipeline stage
            (Megatron-Core's ``decoder_first_pipeline_num_layers`` /
            ``decoder_last_pipeline_num_layers``); the other stages split the rest evenly
            (:meth:`stage_layers`). Default: an even split, the first ``L mod pp`` stages one
            layer more. The Llama 3 405B run took one layer off the first and last of its 16
            stages (7 + 14 × 8 + 7 = 126; Llama 3 paper §3.3.2) to balance the embedding and
            the LM head. With either key set, llmplan evaluates the first, second and last
            pipeline ranks and reports the most loaded one (``docs/concepts.md#the-reported-gpu``).
            Needs ``pp ≥ 2``; not with ``dualpipe``; the search splits evenly.
        account_for_embedding_in_pipeline_split, account_for_loss_in_pipeline_split:
            Megatron-Core's other way to say it: the embedding (the loss, with the LM head)
            counts as one layer of the first (last) stage when the layers are split evenly,
            so that stage holds one transformer layer fewer — 126 layers on 16 stages with
            both: 128 ÷ 16 = 8, then 7 + 14 × 8 + 7. Not together with the explicit counts.
        comm_sms: streaming multiprocessors per GPU that run the communication kernels
            overlapped with compute (``dualpipe`` only): the compute kernels get the other
            ``sms − comm_sms``, so GEMM and attention time is scaled by ``sms / (sms − comm_sms)``.
            Default :data:`DUALPIPE_COMM_SMS` (20 of the H800's 132 in DeepSeek-V3's run,
            report §3.2.2); no scaling when the GPU's ``sms`` is unknown.
        tp_comm_overlap: the tensor-parallel all-gathers and reduce-scatters of sequence
            parallelism run chunk by chunk under the GEMM they feed or drain
            (Transformer Engine's userbuffers: Megatron-LM ``--tp-comm-overlap``, NeMo /
            Megatron-Bridge ``tp_comm_overlap``): each collective is exposed only where it is
            longer than ``(t−1)/t`` of its GEMM
            (:func:`llmplan.formulas.comm.tp_overlap_exposed`). Default false: fully exposed.
            Needs sequence parallelism (tp > 1 with ``sequence_parallel`` off is an error);
            MoE layers' MLP-side collectives stay exposed.
        dp_overlap: the data-parallel gradient reduction runs bucket by bucket under the
            backward pass (PyTorch DDP, Megatron's ``overlap_grad_reduce`` and, for the
            distributed optimizer, ``overlap_param_gather``), so only what outlasts the
            backward is exposed (default true). ``false``: Megatron-LM's default without
            those flags — the gradients are reduced after the backward pass and the updated
            shards gathered after the step, all of it exposed; with ``zero = 3`` every
            parameter gather waits too (DeepSpeed ``overlap_comm = false``).
    """

    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    etp: int | None = None
    dp: int | str = "auto"
    zero: int = 0
    sharding: str = "zero"
    dp_shard: int | None = None
    micro_batch: int = 1
    sequence_parallel: bool | None = None
    recompute: str = "none"
    recompute_modules: tuple[str, ...] | None = attrs.field(default=None, converter=_module_tuple)
    recompute_layers: int | None = None
    recompute_method: str = "block"
    flash_attention: bool = True
    attention_kernel: str = "flash2"
    pp_schedule: str = "1f1b"
    virtual_stages: int | None = None
    offload: str = "none"
    framework: str = "megatron"
    comm_sms: int | None = None
    tp_comm_overlap: bool = False
    dp_overlap: bool = True
    first_stage_layers: int | None = None
    last_stage_layers: int | None = None
    account_for_embedding_in_pipeline_split: bool = False
    account_for_loss_in_pipeline_split: bool = False

    @property
    def uneven_stages(self) -> bool:
        """Whether the ends of the pipeline are set apart: ``first_stage_layers`` /
        ``last_stage_layers`` or Megatron-Core's ``account_for_*_in_pipeline_split``."""
        return any(self.fixed_ends)

    #: Keys that belong to one ``pp`` / one ``dp`` and are not searched: a sweep or search
    #: layout sets them back to these (an even split over the whole data-parallel group).
    UNSEARCHED = {
        "first_stage_layers": None,
        "last_stage_layers": None,
        "account_for_embedding_in_pipeline_split": False,
        "account_for_loss_in_pipeline_split": False,
        "dp_shard": None,
    }

    @property
    def counted_ends(self) -> tuple[int, int]:
        """(1 if the embedding, 1 if the loss) counts as a layer in the even split
        (Megatron-Core's ``account_for_*_in_pipeline_split``)."""
        return (int(self.account_for_embedding_in_pipeline_split is True), int(self.account_for_loss_in_pipeline_split is True))

    @property
    def fixed_ends(self) -> tuple[bool, bool]:
        """Whether the first and the last stage's layer counts are set apart from the even split."""
        e, l = self.counted_ends
        return (self.first_stage_layers is not None or bool(e), self.last_stage_layers is not None or bool(l))

    def stage_layers(self, layers: int) -> tuple[int, ...]:
        """Layers on each of the ``pp`` pipeline stages, first to last (Megatron-Core's split).

        ``first_stage_layers`` / ``last_stage_layers`` where set; the remaining layers over
        the remaining stages, evenly, the earlier stages taking one more where they do not
        divide (Megatron-Core asks for an even split; llmplan warns). A stage may come out
        with no layers only for an invalid plan (:func:`llmplan.checks.plan_problems`).
        """
        pp = self.pp
        if pp == 1:
            return (layers,)
        e, l = self.counted_ends
        if e or l:  # the embedding / loss counted as a layer of the first / last stage
            total = layers + e + l
            split = [total // pp + (1 if i < total % pp else 0) for i in range(pp)]
            split[0] -= e
            split[-1] -= l
            return tuple(split)
        first, last = self.first_stage_layers, self.last_stage_layers
        fixed = [x for x in (first, last) if x is not None]
        rest, free = layers - sum(fixed), pp - len(fixed)
        even = [rest // free + (1 if i < rest % free else 0) for i in range(free)] if free else []
        if first is not None:
            even.insert(0, first)
        if last is not None:
            even.append(last)
        return tuple(even)

    @property
    def selective_modules(self) -> tuple[str, ...]:
        """Modules recomputed under ``recompute = "selective"`` (``()`` for ``none`` and ``full``)."""
        if self.recompute != "selective":
            return ()
        return DEFAULT_RECOMPUTE_MODULES if self.recompute_modules is None else tuple(self.recompute_modules)

    @property
    def partial_recompute(self) -> bool:
        """Whether full recomputation covers only ``recompute_layers`` layers per model chunk
        (``recompute_method = "block"``)."""
        return self.recompute == "full" and self.recompute_layers is not None and self.recompute_method == "block"

    @property
    def grouped_recompute(self) -> bool:
        """Whether full recomputation checkpoints groups of ``recompute_layers`` layers
        (``recompute_method = "uniform"``)."""
        return self.recompute == "full" and self.recompute_layers is not None and self.recompute_method == "uniform"

    @property
    def communication_sms(self) -> int:
        """SMs dedicated to communication in force: ``comm_sms``, the DualPipe default, or 0."""
        if self.pp_schedule != "dualpipe":
            return 0
        return DUALPIPE_COMM_SMS if self.comm_sms is None else self.comm_sms

    @property
    def sp_with_tp(self) -> bool:
        """Sequence parallelism a tp > 1 layout of these settings would run: ``sequence_parallel``,
        by default on — except under ``framework = "hf"`` (transformers' ``tp_plan`` has no SP)."""
        return self.framework != "hf" if self.sequence_parallel is None else self.sequence_parallel

    @property
    def sp(self) -> bool:
        """Sequence parallelism in force."""
        if self.sequence_parallel is not None:
            return self.sequence_parallel
        return self.tp > 1 and self.sp_with_tp

    @property
    def expert_tp(self) -> int:
        """Expert tensor-parallel size in force (``etp`` or ``tp``)."""
        return self.tp if self.etp is None else self.etp

    @property
    def v(self) -> int:
        """Virtual pipeline chunks per GPU in force (1 unless interleaved)."""
        if self.pp_schedule != "interleaved":
            return 1
        return self.virtual_stages if self.virtual_stages is not None else 2

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        for name in ("tp", "pp", "cp", "ep", "micro_batch"):
            _pos_int(self, name, p)
        if self.etp is not None:
            _pos_int(self, "etp", p)
        if self.dp != "auto":
            _pos_int(self, "dp", p)
        _choice(self, "zero", (0, 1, 2, 3), p)
        _choice(self, "sharding", SHARDINGS, p)
        if self.dp_shard is not None and _pos_int(self, "dp_shard", p) and self.zero == 0:
            p.append(Problem("dp_shard", f"{self.dp_shard} with zero = 0: there are no sharded states to group "
                             "(allowed with zero = 1, 2 or 3)"))
        if self.sharding == "fsdp" and self.zero == 1:
            p.append(Problem("zero", "1 with sharding = \"fsdp\": FSDP shards gradients with the optimizer "
                             "states (allowed: 0 = NO_SHARD, 2 = SHARD_GRAD_OP, 3 = FULL_SHARD)"))
        _choice(self, "recompute", ("none", "selective", "full"), p)
        _recompute_modules(self.recompute_modules, p)
        if self.recompute_layers is not None:
            _pos_int(self, "recompute_layers", p)
        _choice(self, "recompute_method", ("block", "uniform"), p)
        _choice(self, "pp_schedule", PP_SCHEDULES, p)
        _choice(self, "offload", ("none", "optimizer", "optimizer+params"), p)
        _choice(self, "framework", FRAMEWORKS, p)
        if _choice(self, "attention_kernel", ATTENTION_KERNELS, p) and self.attention_kernel != "flash2" and not self.flash_attention:
            p.append(Problem("attention_kernel", f"{self.attention_kernel!r} with flash_attention = false: there is no "
                             "fused kernel (allowed with flash_attention = true)"))
        if self.virtual_stages is not None:
            _pos_int(self, "virtual_stages", p)
        if self.comm_sms is not None:
            _pos_int(self, "comm_sms", p, allow_zero=True)
        if not isinstance(self.dp_overlap, bool):
            p.append(Problem("dp_overlap", f"{self.dp_overlap!r} is not true or false"))
        if not isinstance(self.tp_comm_overlap, bool):
            p.append(Problem("tp_comm_overlap", f"{self.tp_comm_overlap!r} is not true or false"))
        elif self.tp_comm_overlap and not self.sp_with_tp:
            why = ("framework = \"hf\" has no sequence parallelism" if self.sequence_parallel is None
                   else "sequence_parallel = false")
            p.append(Problem("tp_comm_overlap", f"true with {why}: the overlapped collectives are sequence "
                             "parallelism's all-gathers and reduce-scatters (allowed with sequence_parallel = true)"))
        flags = ("account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split")
        for name in flags:
            if not isinstance(getattr(self, name), bool):
                p.append(Problem(name, f"{getattr(self, name)!r} is not true or false"))
        explicit = [k for k in ("first_stage_layers", "last_stage_layers") if getattr(self, k) is not None]
        for name in flags:
            if getattr(self, name) is True and explicit:
                p.append(Problem(name, f"true together with {' and '.join(explicit)}: give the layer counts, or let "
                                 "the embedding and the loss count as layers, not both"))
        for name in ("first_stage_layers", "last_stage_layers") + flags:
            value = getattr(self, name)
            if value is None or value is False or (name in flags and value is not True):
                continue
            if name not in flags and not _pos_int(self, name, p):
                continue
            if self.pp == 1:
                what = "true" if name in flags else "set"
                p.append(Problem(name, f"{what} with pp = 1: it places layers on a pipeline stage (allowed with pp ≥ 2)"))
            elif self.pp_schedule == "dualpipe":
                p.append(Problem(name, "set with pp_schedule = \"dualpipe\": DualPipe pairs stage i with stage pp − 1 − i "
                                 "and splits the layers evenly (allowed with 1f1b, interleaved, gpipe)"))
        return p


@attrs.frozen(kw_only=True)
class Efficiency(_Checked):
    """Efficiency overrides, TOML ``[efficiency]``.

    Attributes:
        mfu: assume this model-FLOPs utilisation outright:
            time = flops.total ÷ (peak × mfu × gpus).
        gemm: achievable fraction of dense peak in the step's matrix multiplies
            (``η_gemm``); default :func:`default_gemm_efficiency` — 0.75 × the GPU's
            measured maximum achievable matmul rate ÷ its peak (A100 0.652, H100 SXM
            BF16 0.602, FP8 0.532), :data:`DEFAULT_GEMM_EFFICIENCY` where the catalog
            has no such measurement. The value applies to every dtype of the plan.
        attention: achieved fraction of dense peak in the fused (FlashAttention) attention
            kernel, on the FLOPs it executes — a causal kernel skips the masked half, the
            convention of the FlashAttention papers (forward + backward = 3.5 × the causal
            forward) and of ``llmplan calibrate`` (``η_attn``), at every sequence length.
            Default: the ``[parallelism] attention_kernel``'s measured benchmark on the GPU
            (:func:`default_attention_efficiency`: FlashAttention-2 on an H100 0.27 of the
            peak at 2k tokens, 0.33 at 16k), where there is none half the GEMM efficiency of
            the kernel's dtype (BF16 under FP8 compute). FlashAttention-3 reaches 0.6–0.75
            on an H100: set it here.
        attention_half_length: with ``attention``, the sequence length per kernel call
            (tokens, ``s_attn``) at which the kernel reaches half of ``attention``, which
            then is its long-sequence rate: ``rate(s) = attention · s_k/(s_k + s_attn)``.
            Default 0: a flat rate at every length. ``llmplan calibrate`` fits both.
        goodput: fraction of wall-clock time spent on productive steps; the run's
            wall-clock time (and GPU-hours, energy, cost) is the uninterrupted
            time ÷ goodput, MFU stays the steady-state figure. Default 1 (no losses);
            e.g. Llama 3's 405B run reported > 90 % effective training time.
        elementwise_passes: device-memory passes over each stored activation
            byte per step by the kernels between GEMMs (``κ``); default
            :data:`DEFAULT_ELEMENTWISE_PASSES`; 0 turns the term off.
        memory_overhead: bytes per GPU for the CUDA context, allocator
            fragmentation and communication buffers; default
            :data:`DEFAULT_MEMORY_OVERHEAD`.
        memory_bandwidth: achieved fraction of the GPU's datasheet memory bandwidth
            in serving (``η_mem``, "MBU": every weight and KV-cache read of prefill and
            decode, also an RL plan's rollouts); default
            :data:`llmplan.formulas.serving.DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY`.
    """

    mfu: float | None = None
    gemm: float | None = None
    attention: float | None = None
    attention_half_length: float | None = None
    elementwise_passes: float | None = None
    goodput: float | None = None
    memory_overhead: int | float | None = None
    memory_bandwidth: float | None = None

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        for name in ("mfu", "gemm", "attention", "goodput", "memory_bandwidth"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value <= 1):
                p.append(Problem(name, f"{value!r} is not in (0, 1]"))
        if self.memory_overhead is not None and not self.memory_overhead >= 0:
            p.append(Problem("memory_overhead", f"{self.memory_overhead!r} is negative"))
        if self.attention_half_length is not None:
            if self.attention is None:
                p.append(Problem("attention_half_length", "set without attention: it shapes the curve of "
                                 "[efficiency] attention (set attention too)"))
            _pos_number(self, "attention_half_length", p, allow_zero=True)
        return p


@attrs.frozen(kw_only=True)
class OnPrem(_Checked):
    """Owning the GPUs, TOML ``[cost.on_prem]``.

    Attributes:
        gpu_price: purchase price per GPU (amount, currency).
        years: amortisation period.
        power_price: price per kWh (amount, currency).
        pue: power usage effectiveness (facility ÷ IT power).
        hours_per_month: hours the GPUs run each month (utilisation).
    """

    gpu_price: tuple[float, str]
    years: float = 3
    power_price: tuple[float, str] | None = None
    pue: float = 1.0
    hours_per_month: float = 730

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        if not self.years > 0:
            p.append(Problem("years", f"{self.years!r} is not positive"))
        if not self.pue >= 1:
            p.append(Problem("pue", f"{self.pue!r} is below 1 (PUE = facility power ÷ IT power)"))
        return p


@attrs.frozen(kw_only=True)
class Cost(_Checked):
    """Prices, TOML ``[cost]``.

    Attributes:
        gpu_hour: cloud price per GPU-hour (amount, currency).
        currency: report currency (default: the price's).
        rates: units of each currency per 1 USD (``{JPY = 150}``), as given in the plan.
        on_prem: owning instead of renting.
    """

    gpu_hour: tuple[float, str] | None = None
    currency: str | None = None
    rates: dict[str, float] = attrs.field(factory=dict)
    on_prem: OnPrem | None = None

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        if self.gpu_hour is None and self.on_prem is None:
            p.append(Problem("gpu_hour", "give gpu_hour (cloud) and/or an [cost.on_prem] table"))
        return p


#: The ``[method]`` keys a phase may override (besides ``steps``, ``name`` and ``parallelism``).
PHASE_METHOD_KEYS = ("kind", "tokens", "seq_len", "global_batch", "global_batch_tokens", "lora")


@attrs.frozen(kw_only=True)
class Phase(_Checked):
    """One phase of a multi-phase training run, TOML ``[[phase]]`` (``docs/phases.md``).

    Every key left out (``None``) is taken from the plan's ``[method]`` and
    ``[parallelism]``; the phase is evaluated as that whole plan
    (:func:`llmplan.phases.phase_plan`).

    Attributes:
        name: display name (``"context extension 32K"``).
        kind: a training ``[method]`` kind (not ``inference``).
        tokens: training tokens of this phase, or ``"chinchilla"``.
        steps: alternatively optimizer steps: tokens = steps × global batch
            (sequences) × seq_len. Not together with ``tokens``.
        seq_len: tokens per sequence.
        global_batch: sequences per optimizer step.
        global_batch_tokens: alternatively tokens per step; either one replaces
            both batch keys of ``[method]``.
        lora: adapter settings, replacing ``[method.lora]`` as a whole.
        parallelism: ``[parallelism]`` keys to override (``{"cp": 4}``).
    """

    name: str = ""
    kind: str | None = None
    tokens: int | float | str | None = None
    steps: int | None = None
    seq_len: int | None = None
    global_batch: int | None = None
    global_batch_tokens: int | None = None
    lora: LoRA | None = None
    parallelism: dict[str, object] = attrs.field(factory=dict)

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        if self.kind is not None:
            _choice(self, "kind", TRAINING_KINDS, p)
        if self.steps is not None:
            _pos_int(self, "steps", p)
            if self.tokens is not None:
                p.append(Problem("steps", "give tokens or steps, not both"))
        given = {k: getattr(self, k) for k in PHASE_METHOD_KEYS if k != "kind" and getattr(self, k) is not None}
        try:
            Method(**given)
        except PlanError as exc:
            p += exc.problems
        fields = [f.name for f in attrs.fields(Parallelism)]
        unknown = [k for k in self.parallelism if k not in fields]
        for key in unknown:
            p.append(Problem(f"parallelism.{key}", f"unknown key{did_you_mean(key, fields)} (allowed: {', '.join(fields)})"))
        if not unknown:
            try:
                Parallelism(**self.parallelism)
            except PlanError as exc:
                p += [q.prefixed("parallelism") for q in exc.problems]
        return p


@attrs.frozen(kw_only=True)
class Plan(_Checked):
    """A whole plan: model, method, precision, cluster, parallelism, efficiency, cost.

    Build it in Python (``Plan(model=…, cluster=…)``) or load it from TOML
    (:func:`llmplan.load`); the two are the same objects.

    ``ranges`` (TOML ``[ranges]``) maps dotted plan keys to ``(low, high)``
    intervals (``"method.tokens" = ["10T", "13T"]``): the report then carries
    output ranges (:func:`llmplan.analysis.ranges`).

    ``phases`` (TOML ``[[phase]]``) splits a training run into phases, each
    overriding some ``[method]`` and ``[parallelism]`` keys; the report then
    carries ``phases`` and ``phases_total`` (:mod:`llmplan.phases`).
    """

    model: Dense | MoE
    cluster: Cluster
    method: Method = attrs.field(factory=Method)
    precision: Precision = attrs.field(factory=Precision)
    parallelism: Parallelism = attrs.field(factory=Parallelism)
    efficiency: Efficiency = attrs.field(factory=Efficiency)
    cost: Cost | None = None
    name: str = ""
    ranges: dict[str, tuple[float, float]] = attrs.field(factory=dict)
    phases: tuple[Phase, ...] = attrs.field(default=(), converter=tuple)

    def _problems(self) -> list[Problem]:
        from .checks import plan_problems

        problems = plan_problems(self)
        if self.phases:  # multi-phase runs (llmplan.phases, docs/phases.md)
            from .phases import phase_problems

            problems += phase_problems(self, problems)
        if self.method.kind == "rl":  # RL post-training (llmplan.rl, docs/rl.md)
            from .rl import rl_problems

            problems += rl_problems(self, problems)
        return problems
