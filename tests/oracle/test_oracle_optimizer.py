"""Optimizer state and LoRA adapter sizes against torch.optim and PEFT.

Optimizer state: a reduced Llama (``test_oracle_flops.py``'s shape) takes one real step of
``torch.optim.AdamW`` and of ``torch.optim.SGD(momentum=0.9)``; the bytes of the tensors in
``optimizer.state`` must equal ``Precision(...).optimizer_bytes()`` × parameters. torch's
AdamW also keeps a ``step`` counter per parameter *tensor* — a 0-d fp32 tensor (4 bytes,
on the CPU unless ``capturable``/``fused``) — which llmplan does not count (it is per
tensor, not per parameter: 4 bytes × 23 tensors here, ~0 for a real model); the test
accounts for it explicitly. The moments take the parameters' dtype: fp32 parameters give
llmplan's ``optimizer_states = "fp32"`` (8 bytes per parameter), bf16 parameters its
``"bf16"`` (``bf16-pure``: 4 bytes). The fp32 master copy of mixed precision
(``q_m``) is not optimizer state in torch — it belongs to the mixed-precision wrapper
(Megatron, DeepSpeed) — so it is not checked here.

LoRA: ``peft.get_peft_model(model, LoraConfig(r=8, target_modules=...))``'s trainable
parameters against ``llmplan.formulas.adapters.lora_params(model, targets)`` bound with
``r``: exact for named targets and for ``"all-linear"`` on dense models (Llama, Qwen3;
GPT-2, GPT-NeoX and DBRX under their own module names, below). For MoE models PEFT 0.21 on transformers 5.23 (fused expert tensors)
differs from llmplan's per-matrix count, in ways asserted below so that a PEFT change
shows up:

* the router ``Linear(h, E)`` is adapted (``r·(h + E)`` per MoE layer) — llmplan counts
  it too (it is a linear layer of the block; this oracle found it missing);
* the fused ``gate_up_proj`` gets rank ``2r`` (PEFT keeps v4's per-matrix ``alpha/r``):
  ``2r·(h + 2f_e)`` per expert instead of ``r·(h + f_e)`` for gate and for up — ``2r·f_e``
  more per expert; ``down_proj`` is ``r·(f_e + h)`` as in llmplan;
* dense MLP layers (Qwen3-MoE's ``mlp_only_layers``, DeepSeek-V3's first layers) and
  DeepSeek's shared experts are *not* adapted: PEFT's v4→v5 mapping turns the names
  ``gate_proj``/``up_proj``/``down_proj`` into expert-parameter targets only.

GPT-2, GPT-NeoX and DBRX fuse Q, K and V into one linear layer (``c_attn``,
``query_key_value``, ``Wqkv``): llmplan uses those classes' own module names and shapes,
and matches PEFT exactly for ``"all-linear"`` and for each named module (DBRX: attention
and router only; its experts are parameters, which no LoRA target reaches).

llmplan keeps the per-matrix count (what the LoRA paper and PEFT on transformers 4 give);
the differences are reported, not copied.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import oracle_util as O  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from llmplan import symbols as S  # noqa: E402
from llmplan.bindings import evaluate, model_values  # noqa: E402
from llmplan.errors import PlanError  # noqa: E402
from llmplan.formulas import params as P  # noqa: E402
from llmplan.formulas.adapters import lora_params  # noqa: E402
from llmplan.hf import from_hf_config  # noqa: E402
from llmplan.plan import Precision  # noqa: E402

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # transformers 5's deprecated checkpointing aliases
    pytest.mark.filterwarnings("ignore:The following (rank|alpha)_pattern keys:RuntimeWarning"),  # PEFT noise
    pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning"),  # GPT-2's Conv1D
]

VOCAB, RANK = 1000, 8
# DBRX keeps its attention and MoE settings in nested dicts (its published config.json, reduced)
_DBRX = O.fixture("dbrx")
SMALL = {
    **O.SMALL,
    "dbrx": ("dbrx", dict(d_model=128, n_heads=4, n_layers=2,
                          attn_config={**_DBRX["attn_config"], "kv_n_heads": 2},
                          ffn_config={**_DBRX["ffn_config"], "ffn_hidden_size": 192, "moe_num_experts": 4, "moe_top_k": 2})),
}


def small(name: str) -> dict:
    return O.small_config(name, VOCAB, SMALL)


def one_step(hf, optimizer) -> None:
    ids = torch.randint(0, VOCAB, (2, 16))
    hf(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()


def state_bytes(optimizer) -> tuple[int, int]:
    """(bytes of per-element state tensors, bytes of AdamW's 0-d ``step`` counters)."""
    elements = steps = 0
    for state in optimizer.state.values():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            if key == "step":
                assert value.dim() == 0
                steps += value.untyped_storage().nbytes()
            else:
                elements += value.untyped_storage().nbytes()
    return elements, steps


@pytest.mark.parametrize(("dtype", "states"), [(torch.float32, "fp32"), (torch.bfloat16, "bf16")])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_optimizer_state_bytes_per_parameter(optimizer, dtype, states):
    cfg = small("llama")
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(O.hf_config(cfg), dtype=dtype).train()
    params = [p for p in hf.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    model, _ = from_hf_config(cfg)
    assert n == evaluate(P.total(model), model_values(model))
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=1e-3, foreach=False)
    else:
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=False)
    one_step(hf, opt)
    elements, steps = state_bytes(opt)
    per_param = Precision(optimizer=optimizer, optimizer_states=states).optimizer_bytes()
    assert elements == per_param * n
    # AdamW's step counters: one fp32 scalar per parameter tensor, not per parameter (SGD has none)
    assert steps == (4 * len(params) if optimizer == "adamw" else 0)
    assert steps < 1e-4 * elements


def lora_trainable(name: str, targets) -> tuple[int, dict[str, int]]:
    """PEFT's trainable parameters (total, and per adapted module kind) on the meta device."""
    from peft import LoraConfig, get_peft_model

    with torch.device("meta"):
        hf = AutoModelForCausalLM.from_config(O.hf_config(small(name)))
        peft_model = get_peft_model(hf, LoraConfig(r=RANK, target_modules=targets))
    per_kind: dict[str, int] = {}
    for pname, p in peft_model.named_parameters():
        if p.requires_grad:
            parts = pname.split(".")
            cut = parts.index(next(x for x in parts if x.startswith("lora_")))
            kind = parts[cut - 1] if parts[cut - 1] != "base_layer" else parts[cut - 2] + ".gate_up_proj"
            per_kind[kind] = per_kind.get(kind, 0) + p.numel()
    return sum(per_kind.values()), per_kind


def llmplan_lora(name: str, targets) -> int:
    model, _ = from_hf_config(small(name))
    return evaluate(lora_params(model, targets), model_values(model) | {S.r: RANK})


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"], "all-linear"])
@pytest.mark.parametrize("name", ["llama", "qwen3", "starcoder2", "gemma3_text"])
def test_lora_dense_models_exact(name, targets):
    got, _ = lora_trainable(name, targets)
    assert got == llmplan_lora(name, targets)


@pytest.mark.parametrize("name", ["mixtral", "qwen3_moe", "qwen2_moe", "olmoe", "deepseek_v2", "deepseek_v3"])
def test_lora_attention_targets_on_moe_models_exact(name):
    # DeepSeek-V3 has a query latent (q_a_proj); the reduced V2-Lite projects queries directly (q_proj)
    targets = {"deepseek_v3": ["q_a_proj", "kv_b_proj"], "deepseek_v2": ["q_proj", "kv_b_proj"]}.get(name, ["q_proj", "v_proj"])
    got, _ = lora_trainable(name, targets)
    assert got == llmplan_lora(name, targets)


@pytest.mark.parametrize("name", ["mixtral", "qwen3_moe", "qwen2_moe", "deepseek_v2", "deepseek_v3"])
def test_lora_all_linear_on_moe_models_differs_as_documented(name):
    """transformers 5: PEFT adapts the fused gate_up at rank 2r; PEFT 0.21 also skips the dense
    MLPs and shared experts of Qwen3-MoE / DeepSeek-V3, which PEFT 0.22 adapts, and has no
    transformers-5 conversion for Qwen2-MoE at all (its router and experts stay unadapted)."""
    import peft
    model, _ = from_hf_config(small(name))
    v = model_values(model) | {S.r: RANK}
    h, E, f_e, L_moe = model.hidden, v[S.E], v[S.f_e], model.n_moe_layers
    got, per_kind = lora_trainable(name, "all-linear")
    peft_before_022 = tuple(int(x) for x in peft.__version__.split(".")[:2]) < (0, 22)
    if name == "qwen2_moe" and peft_before_022:
        # measured with PEFT 0.21.2: "all-linear" finds only nn.Linear modules, and Qwen2-MoE's
        # router (a bare Parameter) and routed experts (3-D Parameters) are not nn.Linear
        assert not {"gate", "experts", "experts.gate_up_proj"} & set(per_kind)
        router = L_moe * RANK * (h + E)
        routed_experts = L_moe * E * 3 * RANK * (h + f_e)  # gate, up, down: r·(h + f_e) each
        assert got == llmplan_lora(name, "all-linear") - router - routed_experts
        return
    # what PEFT adapts in the MoE block, module by module
    assert per_kind["gate"] == L_moe * RANK * (h + E)  # the router: llmplan counts it as well
    assert per_kind["experts.gate_up_proj"] == L_moe * E * 2 * RANK * (h + 2 * f_e)
    assert per_kind["experts"] == L_moe * E * RANK * (f_e + h)  # down_proj
    # llmplan's per-matrix count, adjusted by exactly those differences
    dense_mlp = model.n_dense_layers * 3 * RANK * (h + model.ffn)  # not adapted by PEFT 0.21
    shared = L_moe * v[S.E_s] * 3 * RANK * (h + v[S.f_s]) if model.moe.shared_experts else 0
    fused_rank = L_moe * E * 2 * RANK * f_e  # rank 2r on the fused gate_up
    skipped = dense_mlp + shared if peft_before_022 else 0
    assert got == llmplan_lora(name, "all-linear") + fused_rank - skipped


FUSED_TARGETS = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "dbrx": ["Wqkv", "out_proj", "layer"],
    "mpt": ["Wqkv", "out_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}


@pytest.mark.parametrize("name", list(FUSED_TARGETS))
def test_lora_fused_qkv_models_exact(name):
    """One adapter on the fused QKV layer (r·(h + 3h) for MHA), under the class's module names."""
    got, per_kind = lora_trainable(name, "all-linear")
    assert got == llmplan_lora(name, "all-linear")
    # the fused layer by hand: r·(in + out) on Linear(h, (a + 2·a_kv)·d) in each block
    model, _ = from_hf_config(small(name))
    qkv = FUSED_TARGETS[name][0]
    width = (model.heads + 2 * (model.kv_heads or model.heads)) * (model.head_dim or model.hidden // model.heads)
    assert per_kind[qkv] == model.layers * RANK * (model.hidden + width)
    for target in FUSED_TARGETS[name]:
        got, _ = lora_trainable(name, [target])
        assert got == llmplan_lora(name, [target]), target


def test_lora_gpt_oss_adapts_the_attention_only():
    """gpt-oss's experts are 3-D parameters and its router is no nn.Linear: PEFT's "all-linear"
    adapts q/k/v/o, as llmplan counts (named expert targets are refused)."""
    got, per_kind = lora_trainable("gpt_oss", "all-linear")
    assert set(per_kind) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert got == llmplan_lora("gpt_oss", "all-linear")
    model, _ = from_hf_config(small("gpt_oss"))
    with pytest.raises(PlanError, match="not a linear layer"):
        lora_params(model, ["gate_up_proj"])


def test_lora_dbrx_llama_names_are_not_its_modules():
    """DBRX has no q_proj / gate_proj: the error names its real linear layers."""
    model, _ = from_hf_config(small("dbrx"))
    with pytest.raises(PlanError, match="Wqkv") as err:
        lora_params(model, ["q_proj"])
    assert "method.lora.targets" in str(err.value)


def test_lora_starcoder2_mlp_names():
    """StarCoder2's plain MLP is ``c_fc`` / ``c_proj``: each target alone matches PEFT."""
    for target in (["c_fc"], ["c_proj"], ["q_proj", "c_fc"]):
        got, _ = lora_trainable("starcoder2", target)
        assert got == llmplan_lora("starcoder2", target), target
    model, _ = from_hf_config(small("starcoder2"))
    with pytest.raises(PlanError, match="c_fc"):
        lora_params(model, ["up_proj"])


def test_lora_qwen2_moe_shared_expert_gate():
    """Qwen2-MoE's shared-expert gate is a Linear(h, 1) per MoE layer: r·(h + 1) each."""
    model, _ = from_hf_config(small("qwen2_moe"))
    got, per_kind = lora_trainable("qwen2_moe", ["shared_expert_gate"])
    assert got == llmplan_lora("qwen2_moe", ["shared_expert_gate"]) == model.n_moe_layers * RANK * (model.hidden + 1)
