"""Training FLOPs per step: llmplan against ``torch.utils.flop_counter.FlopCounterMode``.

Each architecture's published ``config.json`` (``configs/``) is shrunk (``SMALL`` below:
2–3 layers, width 128, a 1,000-token vocabulary, 4–8 experts — every structural option
of the original kept: GQA, explicit head width, q/k norms, MLA with both latents,
shared experts, leading dense layers, biases, learned positions, partial RoPE), built
by transformers on the CPU and trained one step (forward + ``loss.backward()``) on
``b = 2`` sequences of ``s = 128`` tokens under ``FlopCounterMode``. The count must
equal llmplan's ``flops.per_token`` (from ``llmplan.estimate.definitions`` of a
pre-training plan, bound with ``model_values`` and ``s``) × ``b·s``.

What the counter counts: matrix products only — ``mm``, ``addmm`` (GPT-2's
``Conv1D``), ``bmm``, ``baddbmm`` and the fused attention kernels
(``_scaled_dot_product_{flash,efficient,cudnn}_attention`` and their backwards), at
2 FLOPs per multiply-add, forward and backward (input- and weight-gradient GEMMs).
It does not count elementwise work (norms, activations, softmax, RoPE, residual adds),
embedding lookups or gathers, nor the cross-entropy — llmplan leaves those out of model
FLOPs too (``docs/concepts.md#flops``), so the two must agree **exactly**. Conventions
both sides share: the attention ``QKᵀ`` and ``PV`` products are counted in full,
non-causal (eager attention multiplies the whole ``s × s`` matrix and masks afterwards;
torch's SDPA rule ignores ``is_causal``); the LM head counts (tied or not).

What the test has to add to the counter, with torch's own rules:

* the CPU fused SDPA kernel (``_scaled_dot_product_flash_attention_for_cpu`` and its
  backward) is not in torch's registry; it is given torch's ``sdpa_flop_count`` /
  ``sdpa_backward_flop_count`` (the ones the CUDA kernels use);
* transformers 5 runs MoE experts through ``torch._grouped_mm`` by default, which the
  counter ignores; the main MoE tests use ``experts_implementation="eager"`` (one
  ``F.linear`` per expert: plain ``mm``), and one test counts the default with a
  ``_grouped_mm`` rule (2 FLOPs per multiply-add over the rows the offsets cover) —
  both give the same count.

What the counter sees beyond llmplan's model FLOPs: torch's fused-SDPA backward rule is
2.5 × the forward (FlashAttention recomputes ``QKᵀ`` in the backward pass, Dao 2023
§3.1), so with a fused kernel the counter reports ``2·s·a·d_qk`` per token per layer
more than the 3 × forward of model FLOPs. That is recomputation, which model FLOPs
exclude by convention; the test asserts the difference is exactly that term. (llmplan's
*hardware* FLOPs do not add it either: a few per cent of a long-context step.)
Eager attention, and SDPA's math fallback (GPT-2 with attention dropout, DeepSeek's
``d_v ≠ d_qk`` on the CPU) have no such recomputation.

MoE: each token visits exactly ``top_k`` routed experts, so the routed-expert FLOPs of a
step are ``k·6·h·f_e`` per token however unbalanced the routing is (experts with no
tokens do no work; the others do exactly their tokens' work). The router's ``h × E``
product counts (DeepSeek's is an fp32 ``F.linear``, counted the same).

Full-size published configs of the dense models are also run on the *meta* device
(no memory, no arithmetic: the counter reads shapes), at their real ``s``; SDPA there
takes the math path, so only the exact model-FLOPs identity is checked.
"""

from __future__ import annotations

import attrs
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import oracle_util as O  # noqa: E402
import torch.utils.flop_counter as FC  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

import llmplan  # noqa: E402
from llmplan import catalog  # noqa: E402
from llmplan import symbols as S  # noqa: E402
from llmplan.bindings import evaluate, model_values  # noqa: E402
from llmplan.estimate import definitions  # noqa: E402
from llmplan.formulas import flops as F  # noqa: E402
from llmplan.hf import from_hf_config  # noqa: E402

pytestmark = pytest.mark.oracle

B, SEQ, VOCAB = 2, 128, 1000

SMALL = O.SMALL  # the reduced shape of each architecture (structure kept)
# SDPA takes the fused CPU kernel (flash-for-CPU) for these; GPT-2 trains with attention
# dropout and DeepSeek-V3 has d_v != d_qk, so both fall back to SDPA's math path (bmm).
FUSED_SDPA = {"llama", "qwen3", "mixtral", "qwen3_moe", "gpt_neox", "phi3", "qwen2_moe", "starcoder2", "gemma", "olmoe",
              "gemma3_text"}

aten = torch.ops.aten


def _sdpa_cpu(q, k, v, *args, **kwargs) -> int:
    return FC.sdpa_flop_count(q, k, v)


def _sdpa_cpu_backward(grad_out, q, k, v, *args, **kwargs) -> int:
    return FC.sdpa_backward_flop_count(grad_out, q, k, v)


def _grouped_mm(a, b, offs=None, *args, out_val=None, **kwargs) -> int:
    """2 FLOPs per multiply-add of ``torch._grouped_mm`` over the rows ``offs`` covers."""
    rows = int(offs[-1]) if offs is not None else None
    if a.dim() == 2 and b.dim() == 3:  # (tokens, K) x (groups, K, N): each token row times its group's matrix
        return 2 * (rows if rows is not None else a.shape[0]) * a.shape[1] * b.shape[2]
    if a.dim() == 2 and b.dim() == 2:  # (K, tokens) x (tokens, N) -> (groups, K, N): the weight gradient
        return 2 * a.shape[0] * (rows if rows is not None else a.shape[1]) * b.shape[1]
    if a.dim() == 3 and b.dim() == 3:
        return 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    raise AssertionError(f"unexpected _grouped_mm operands {tuple(a.shape)} x {tuple(b.shape)}")


_grouped_mm._get_raw = True  # type: ignore[attr-defined]  # needs the offsets' values, not only shapes

CUSTOM = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward,
    aten._grouped_mm: _grouped_mm,
}


_one_thread = pytest.fixture(autouse=True, scope="module")(O.one_thread)


def small(name: str) -> dict:
    return O.small_config(name, VOCAB, SMALL)


def plan_per_token(model, seq: int) -> int:
    """``flops.per_token`` of a pre-training plan for ``model`` (3 × forward), bound to numbers.

    ``mtp = False``: the transformers classes do not run DeepSeek's multi-token-prediction
    modules (``num_nextn_predict_layers`` builds nothing), so the plan leaves them out too.
    """
    plan = llmplan.Plan(
        model=model,
        method=llmplan.Method(kind="pretrain", tokens=10**9, seq_len=seq, global_batch=8, mtp=False),
        cluster=llmplan.Cluster(gpu=catalog.gpu("h100-sxm"), gpus=8),
        parallelism=llmplan.Parallelism(),
    )
    expr = definitions(plan).full("flops.per_token")
    value = evaluate(expr, model_values(model) | {S.s: seq})
    assert value == evaluate(3 * F.forward_per_token(model), model_values(model) | {S.s: seq})
    return value


def count(hf, ids) -> tuple[int, dict[str, int]]:
    """FLOPs of one training step (forward, loss, backward) and the count per aten op."""
    with FlopCounterMode(display=False, custom_mapping=CUSTOM) as counter:
        hf(input_ids=ids, labels=ids).loss.backward()
    per_op = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    return counter.get_total_flops(), per_op


def build(cfg: dict, model, attn: str, experts: str = "eager"):
    kwargs = {"experts_implementation": experts} if model.is_moe else {}
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(O.hf_config(cfg), attn_implementation=attn, **kwargs)
    return hf.train()


def flash_recompute(model, seq: int) -> int:
    """FLOPs the fused-SDPA backward spends recomputing ``QKᵀ``: ``2·s·a·d_qk`` per token per layer."""
    d_qk = model.mla.qk_head_dim if model.mla is not None else model.d_head
    return model.layers * 2 * seq * model.heads * d_qk


#: transformers' MptForCausalLM, Gemma2ForCausalLM (soft-capped scores) and GptOssForCausalLM (sinks) have eager attention only
#: on the CPU (they refuse attn_implementation="sdpa")
EAGER_ONLY = {"mpt", "gemma2", "gpt_oss"}


@pytest.mark.parametrize(("name", "attn"), [(n, a) for n in SMALL for a in ("eager", "sdpa")
                                            if not (a == "sdpa" and n in EAGER_ONLY)])
def test_training_step_flops_equal_the_counter(name, attn):
    cfg = small(name)
    model, _ = from_hf_config(cfg)
    hf = build(cfg, model, attn)
    ids = torch.randint(0, VOCAB, (B, SEQ))
    measured, per_op = count(hf, ids)
    predicted = plan_per_token(model, SEQ) * B * SEQ
    fused = "aten._scaled_dot_product_flash_attention_for_cpu_backward" in per_op
    assert fused == (attn == "sdpa" and name in FUSED_SDPA), per_op
    recompute = flash_recompute(model, SEQ) * B * SEQ if fused else 0
    # the counter = llmplan's model FLOPs (+ FlashAttention's QKᵀ recomputation in the fused backward)
    assert measured == predicted + recompute, (per_op, predicted, recompute)
    assert abs(measured - recompute - predicted) <= 0.01 * predicted  # the 1 % bar, met exactly
    if fused:  # llmplan's hardware FLOPs include FlashAttention's QKᵀ recomputation
        per_layer = evaluate(F.flash_backward_recompute_per_token(model), model_values(model) | {S.s: SEQ})
        assert per_layer * model.layers * B * SEQ == recompute


@pytest.mark.parametrize("name", ["mixtral", "qwen3_moe"])
def test_moe_default_grouped_mm_experts_count_the_same(name):
    """transformers' default experts (``_grouped_mm`` over the routed rows) do the same FLOPs."""
    cfg = small(name)
    model, _ = from_hf_config(cfg)
    hf = build(cfg, model, "eager", experts="grouped_mm")
    ids = torch.randint(0, VOCAB, (B, SEQ))
    measured, per_op = count(hf, ids)
    assert per_op.get("aten._grouped_mm", 0) > 0
    assert measured == plan_per_token(model, SEQ) * B * SEQ


def test_moe_expert_flops_do_not_depend_on_routing_balance():
    """Every token routed to experts 0 and 1 (the worst imbalance) still costs k·6·h·f_e per token."""
    cfg = small("mixtral")
    model, _ = from_hf_config(cfg)
    hf = build(cfg, model, "eager")
    hits = []

    def all_to_first_experts(router, args, out):
        logits, scores, index = out
        hits.append(torch.bincount(index.flatten(), minlength=router.num_experts))
        return logits, scores, torch.arange(index.shape[1]).expand_as(index)

    for layer in hf.model.layers:
        layer.mlp.gate.register_forward_hook(all_to_first_experts)
    ids = torch.randint(0, VOCAB, (B, SEQ))
    measured, _ = count(hf, ids)
    assert all((h > 0).all() for h in hits)  # the router itself spread tokens over every expert
    assert measured == plan_per_token(model, SEQ) * B * SEQ


@pytest.mark.parametrize(("fixture", "seq"), [("llama-3.1-8b", 8192), ("gpt2", 1024), ("mpt-7b-instruct", 2048)])
def test_full_size_dense_models_on_meta(fixture, seq):
    """The published shapes themselves, counted on the meta device (shapes only, no arithmetic)."""
    cfg = O.fixture(fixture)
    model, _ = from_hf_config(cfg)
    with torch.device("meta"):
        hf = AutoModelForCausalLM.from_config(O.hf_config(cfg), attn_implementation="eager").train()
        ids = torch.zeros((1, seq), dtype=torch.long)
    measured, _ = count(hf, ids)
    assert measured == plan_per_token(model, seq) * seq


@pytest.mark.parametrize("n", [1, 3, None])
def test_checkpointed_layers_repeat_their_forward(n):
    """Gradient checkpointing on the first ``n`` of 4 decoder layers (all with ``None``), torch's
    reentrant checkpoint (which reruns the whole layer, as Megatron-LM's does): the counter sees
    their forward twice. llmplan's hardware FLOPs for ``recompute = "full"``, ``recompute_layers
    = n`` (per_token + recompute_per_token) equal it exactly."""
    import warnings

    cfg = {**small("llama"), "num_hidden_layers": 4}
    model, _ = from_hf_config(cfg)
    hf = build(cfg, model, "eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    base = hf.model.layers
    for layer in base[n:] if n is not None else ():
        layer.gradient_checkpointing = False
    ids = torch.randint(0, VOCAB, (B, SEQ))
    measured, _ = count(hf, ids)
    plan = llmplan.Plan(
        model=model,
        method=llmplan.Method(kind="pretrain", tokens=10**9, seq_len=SEQ, global_batch=8),
        cluster=llmplan.Cluster(gpu=catalog.gpu("h100-sxm"), gpus=8),
        parallelism=llmplan.Parallelism(recompute="full", recompute_layers=n, flash_attention=False),
    )
    q = definitions(plan)
    values = model_values(model) | {S.s: SEQ, S.p: 1, S.v: 1, S.n_rc: n or 0}
    hardware = evaluate(q.full("flops.per_token") + q.full("flops.recompute_per_token"), values)
    assert measured == hardware * B * SEQ
    # the same as 3 forwards plus n (or 4) layers' forward again, in terms of forward_per_token
    # (which test_training_step_flops_equal_the_counter checks against the counter)
    layer = (evaluate(F.forward_per_token(model), values) - 2 * model.hidden * VOCAB) // 4
    assert measured == (3 * evaluate(F.forward_per_token(model), values) + (n or 4) * layer) * B * SEQ


#: the HF configs that train with dropout (GPT-2: resid_pdrop 0.1); from_hf_config assumes none
WITH_DROPOUT = {"gpt2"}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_nonreentrant_checkpoint_skips_the_last_projection(name):
    """transformers' default checkpoint (``use_reentrant = False``) stops recomputing after the
    last saved tensor: a layer's trailing projection is not rerun unless something after it
    saves (a post-norm, a dropout mask, the MoE combine). ``framework = "hf"`` with full
    recomputation prices exactly that (``flops.early_stop_skipped_per_token``)."""
    import warnings

    cfg = small(name)
    model, _ = from_hf_config(cfg)
    if name in WITH_DROPOUT:
        model = attrs.evolve(model, dropout=True)
    ids = torch.randint(0, VOCAB, (B, SEQ))
    counted = {}
    for reentrant in (False, True):
        hf = build(cfg, model, "eager")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        counted[reentrant] = count(hf, ids)[0]
    measured = counted[False]
    plan = llmplan.Plan(
        model=model,
        method=llmplan.Method(kind="pretrain", tokens=10**9, seq_len=SEQ, global_batch=8, mtp=False),
        cluster=llmplan.Cluster(gpu=catalog.gpu("h100-sxm"), gpus=8),
        parallelism=llmplan.Parallelism(recompute="full", flash_attention=False, framework="hf"),
    )
    q = definitions(plan)
    values = model_values(model) | {S.s: SEQ}
    hardware = evaluate(q.full("flops.per_token") + q.full("flops.recompute_per_token"), values)
    assert measured == hardware * B * SEQ
    # the skipped projections, measured: what the reentrant checkpoint (every layer rerun)
    # counts beyond the non-reentrant one
    skipped = evaluate(F.early_stop_skipped_per_token(model), values)
    assert counted[True] - counted[False] == skipped * B * SEQ
    if model.sandwich_norm or name in WITH_DROPOUT or not (model.n_dense_layers or model.moe.shared_experts):
        assert skipped == 0  # a post-norm, a dropout mask or the MoE combine saves after the last projection
    else:
        assert skipped > 0
