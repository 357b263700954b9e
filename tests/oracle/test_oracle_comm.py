"""Data- and tensor-parallel traffic: llmplan's ``communication.dp_bytes`` / ``tp_bytes`` against
the collectives FSDP2, DDP and PyTorch's tensor parallelism issue.

Method. ``comm_worker.py`` trains a small Hugging Face ``LlamaForCausalLM`` on four
CPU processes (gloo) under PyTorch FSDP2 (``fully_shard`` on every decoder layer, then on
the model) or DDP, and records every all-gather and reduce-scatter (DDP: every bucket
all-reduce) of one step, with its buffer sizes. A ring collective over ``n`` ranks makes each rank send ``(n − 1)/n`` of the full
buffer (the all-gather's output, the reduce-scatter's input), which is how llmplan counts
``communication.dp_bytes``; the test sums that over the recorded calls and compares it with
llmplan's number for the same config, layout (``n_dp`` = 4, ``m`` micro-batches) and
dtypes — exactly: the shapes are chosen so that FSDP pads nothing.

Findings (PyTorch 2.13, CPU):

* ``DistributedDataParallel`` (ZeRO-0) accumulating under ``no_sync()``: one all-reduce of
  the gradients per step, ``2·(n−1)/n·q_g·P``, whatever ``m``;
* ``FULL_SHARD`` (ZeRO-3, ``reshard_after_forward=True``): per micro-batch every unit
  (each decoder layer, and the root with embedding, final norm and LM head) is gathered
  twice (forward, backward) and its gradients reduce-scattered once: ``m·(n−1)/n·(2·q_w +
  q_g)·P`` — 1.5 all-reduces' worth when gradients and weights share a dtype;
* ``SHARD_GRAD_OP`` (ZeRO-2, ``reshard_after_forward=False``): one gather and one
  reduce-scatter per unit **per micro-batch**, ``m·(n−1)/n·(q_w + q_g)·P`` — not the once-
  per-step gather of DeepSpeed's ZeRO-2, hence ``[parallelism] sharding = "fsdp"``;
* tensor parallelism with transformers' Llama ``tp_plan`` (no sequence parallelism): 2
  all-reduces of the activations per layer forward, 5 backward — each of q, k, v, gate and
  up all-reduces its own input gradient, where Megatron-LM's fused QKV and FC1 need one
  each (``[parallelism] framework = "hf"`` without SP prices the 7);
* with torchtitan's sequence-parallel plan on the same layers (norms ``SequenceParallel``,
  ``PrepareModuleInput`` gathering the attention and MLP inputs): 2 all-gathers and 2
  reduce-scatters per layer forward and the same backward — Megatron-LM's 4 all-reduces'
  worth, as ``sequence_parallel = true`` prices it under either framework;
* HSDP (FSDP2 on a 2 × 2 mesh, ``[parallelism] dp_shard = 2``): gathers and reduce-scatters
  inside the shard group of 2, and after every micro-batch an all-reduce of each unit's
  gradient shard across the 2 replicas; each rank holds its states ÷ 2;
* with PEFT LoRA adapters under ``FULL_SHARD`` the gathers carry every parameter, the
  frozen base included, and only the units with adapters reduce-scatter, their adapters'
  gradients;
* between steps each rank holds its parameter shards in their stored dtype (fp32; the
  bf16 compute copy is gathered), its gradient shards in that dtype whatever
  ``reduce_dtype`` is, and AdamW's states: 16 bytes per parameter ÷ n for every dtype mix
  (``sharding = "fsdp"`` prices it so);
* the gathers move the parameters in ``param_dtype`` (``q_w``) and the reduce-scatters the
  gradients in ``reduce_dtype`` (``q_g``): with bf16 parameters and fp32 reduction the
  step moves ``(2·2 + 4)/(3·4)`` = 2/3 of what an all-fp32 count would say.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.oracle
pytest.importorskip("torch")
pytest.importorskip("transformers")
torch_distributed = pytest.importorskip("torch.distributed")
if not torch_distributed.is_available() or not torch_distributed.is_gloo_available():  # pragma: no cover
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import attrs  # noqa: E402
import llmplan  # noqa: E402
from llmplan import catalog  # noqa: E402
from llmplan.hf import from_hf_config  # noqa: E402

WORKER = Path(__file__).with_name("comm_worker.py")
WORLD = 4
MICRO_BATCH, SEQ = 2, 16
#: every dimension a multiple of WORLD, so FSDP's dim-0 sharding pads nothing
CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=256, tie_word_embeddings=False, max_position_embeddings=64)
#: (zero, m, FSDP param_dtype, FSDP reduce_dtype) -> llmplan precision
CASES = [
    (0, 1, "fp32", "fp32"), (0, 3, "fp32", "fp32"),
    (3, 1, "fp32", "fp32"), (3, 2, "fp32", "fp32"), (3, 2, "bf16", "fp32"), (3, 3, "bf16", "bf16"),
    (2, 1, "fp32", "fp32"), (2, 2, "fp32", "fp32"), (2, 3, "bf16", "fp32"),
]
#: FULL_SHARD with PEFT LoRA (rank 4 on q_proj and v_proj, the base frozen), m = 2
LORA_CASES = [(3, 2, "fp32", "fp32"), (3, 2, "bf16", "fp32")]
LORA_RANK = 4
#: HSDP (shard groups of 2 of the 4 ranks, 2 replicas): (zero, m, param_dtype, reduce_dtype)
HSDP_SHARD = 2
HSDP_CASES = [(3, 1, "fp32", "fp32"), (3, 2, "bf16", "fp32"), (2, 2, "fp32", "fp32")]
PRECISION = {
    ("fp32", "fp32"): dict(preset="fp32"),
    ("bf16", "fp32"): dict(preset="bf16-mixed", grads="fp32"),  # FSDP's usual "bf16 compute, fp32 reduction"
    ("bf16", "bf16"): dict(preset="bf16-mixed"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_worker(d: Path, world: int, cases: list[dict]) -> list[dict]:
    """Run comm_worker.py on ``world`` CPU ranks for ``cases``; its records per case."""
    spec = {"world": world, "port": _free_port(), "config": CONFIG, "micro_batch": MICRO_BATCH, "seq_len": SEQ, "cases": cases}
    (d / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(WORKER), str(d / "spec.json"), str(d / "out.json")],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        pytest.fail(f"worker failed:\n{proc.stderr[-3000:]}")
    return json.loads((d / "out.json").read_text())


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> list[dict]:
    cases = [{"zero": z, "m": m, "param_dtype": pd, "reduce_dtype": rd} for z, m, pd, rd in CASES]
    cases += [{"zero": z, "m": m, "param_dtype": pd, "reduce_dtype": rd, "lora": LORA_RANK} for z, m, pd, rd in LORA_CASES]
    cases += [{"zero": z, "m": m, "param_dtype": pd, "reduce_dtype": rd, "shard": HSDP_SHARD} for z, m, pd, rd in HSDP_CASES]
    return _run_worker(tmp_path_factory.mktemp("fsdp"), WORLD, cases)


def measured_ring_bytes(calls: list[dict]) -> float:
    """Bytes one rank sends over one step: (n−1)/n of each collective's full buffer, n the
    size of the group it ran on."""
    total = 0.0
    for call in calls:
        op, sizes, n = call["op"], call["bytes"], call["group"]
        assert op in ("all_gather_single", "reduce_scatter_single", "all_reduce"), op  # FSDP2's two, DDP's one
        share = 2 if op == "all_reduce" else 1  # a ring all-reduce is a reduce-scatter and an all-gather
        total += share * (n - 1) / n * max(sizes)  # gather: output; reduce-scatter: input
    return total


def llmplan_plan(zero: int, m: int, param_dtype: str, reduce_dtype: str, dp_shard: int | None = None) -> llmplan.Plan:
    model, _ = from_hf_config({"model_type": "llama", "architectures": ["LlamaForCausalLM"], **CONFIG}, name="tiny llama")
    return llmplan.Plan(
        model=model,
        method=llmplan.Method(kind="pretrain", tokens=10**6, seq_len=SEQ, global_batch=WORLD * MICRO_BATCH * m),
        precision=llmplan.Precision(**PRECISION[(param_dtype, reduce_dtype)]),
        cluster=llmplan.Cluster(gpu=catalog.gpu("h100-sxm"), gpus=WORLD),
        parallelism=llmplan.Parallelism(zero=zero, sharding="fsdp", micro_batch=MICRO_BATCH, framework="hf", dp_shard=dp_shard),
    )


TP_WORLD = 2
TP_M = (1, 2)


@pytest.fixture(scope="module")
def recorded_tp(tmp_path_factory) -> list[dict]:
    cases = [{"tp": True, "zero": 0, "m": m, "param_dtype": "fp32", "reduce_dtype": "fp32"} for m in TP_M]
    cases += [{"tp": True, "sp": True, "zero": 0, "m": m, "param_dtype": "fp32", "reduce_dtype": "fp32"} for m in TP_M]
    cases += [{"tp": True, "sp": sp, "ckpt": True, "zero": 0, "m": 1, "param_dtype": "fp32", "reduce_dtype": "fp32"}
              for sp in (False, True)]
    return _run_worker(tmp_path_factory.mktemp("tp"), TP_WORLD, cases)


def tp_plan(m: int, sp: bool, recompute: str = "none") -> llmplan.Plan:
    model, _ = from_hf_config({"model_type": "llama", "architectures": ["LlamaForCausalLM"], **CONFIG}, name="tiny llama")
    return llmplan.Plan(
        model=model,
        method=llmplan.Method(kind="pretrain", tokens=10**6, seq_len=SEQ, global_batch=MICRO_BATCH * m),
        precision=llmplan.Precision(preset="fp32"),
        cluster=llmplan.Cluster(gpu=catalog.gpu("h100-sxm"), gpus=TP_WORLD),
        parallelism=llmplan.Parallelism(tp=TP_WORLD, sequence_parallel=sp, micro_batch=MICRO_BATCH, framework="hf",
                                        recompute=recompute),
    )


@pytest.mark.parametrize("index", range(len(TP_M)), ids=[f"m{m}" for m in TP_M])
def test_tp_bytes_equal_pytorch_tensor_parallel(recorded_tp, index):
    """transformers' Llama tp_plan without sequence parallelism: per layer and micro-batch 2
    all-reduces of the (b, s, h) activations forward (after o_proj and down_proj) and 5
    backward (the input gradients of q, k, v, gate and up, each all-reduced on its own) —
    7, where Megatron-LM's fused QKV and FC1 need 4."""
    m = TP_M[index]
    calls = recorded_tp[index]["calls"]
    ops = [c["op"] for c in calls]
    act = MICRO_BATCH * SEQ * CONFIG["hidden_size"] * 4  # fp32 activations
    assert ops == ["tp_all_reduce"] * (7 * CONFIG["num_hidden_layers"] * m)
    assert all(c["bytes"] == [act] for c in calls)
    measured = sum(2 * (TP_WORLD - 1) / TP_WORLD * c["bytes"][0] for c in calls)
    assert llmplan.estimate(tp_plan(m, sp=False)).value("communication.tp_bytes") == pytest.approx(measured, rel=1e-12)


@pytest.mark.parametrize("index", range(len(TP_M)), ids=[f"m{m}" for m in TP_M])
def test_tp_bytes_with_sequence_parallelism(recorded_tp, index):
    """torchtitan's sequence-parallel plan on HF Llama layers: per layer and micro-batch an
    all-gather of the (b, s/t, h) shard before the attention and before the MLP and a
    reduce-scatter of the (b, s, h) output after o and down, forward — and the same four
    backward, the gradient of each gather reduce-scattered once (the q, k, v and gate, up
    gradients add up before it): Megatron-LM's count, 4 all-reduces' worth, not the 7 of
    the plan without SP. Besides, the norms' weight gradients (partial sums over the
    sequence shards) are all-reduced a fixed number of times per step whatever ``m`` —
    ``h`` elements each, as Megatron-LM's ``finalize_model_grads`` does for SP norms; llmplan
    leaves them out (here 18 × 256 B against 48 × 8 KiB of activations at m = 1)."""
    m = TP_M[index]
    result = recorded_tp[len(TP_M) + index]
    assert result["case"]["sp"] and result["case"]["m"] == m
    norm_grads = [c for c in result["calls"] if c["op"] == "tp_all_reduce"]
    assert all(c["bytes"] == [CONFIG["hidden_size"] * 4] for c in norm_grads)
    assert len(norm_grads) == len([c for c in recorded_tp[len(TP_M)]["calls"] if c["op"] == "tp_all_reduce"])  # as at m = 1
    calls = [c for c in result["calls"] if c["op"] != "tp_all_reduce"]
    act = MICRO_BATCH * SEQ * CONFIG["hidden_size"] * 4  # fp32 (b, s, h)
    assert [c["op"] for c in calls] == ["tp_all_gather_single", "tp_reduce_scatter_single"] * (4 * CONFIG["num_hidden_layers"] * m)
    # recorded: each collective's input — the gather's is this rank's shard, the reduce-scatter's the full tensor
    assert all(c["bytes"] == [act // TP_WORLD if c["op"] == "tp_all_gather_single" else act] for c in calls)
    measured = len(calls) * (TP_WORLD - 1) / TP_WORLD * act  # ring: (n − 1)/n of the full buffer each
    assert llmplan.estimate(tp_plan(m, sp=True)).value("communication.tp_bytes") == pytest.approx(measured, rel=1e-12)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"zero{z}-m{m}-{pd}-{rd}" for z, m, pd, rd in CASES])
def test_dp_bytes_equal_fsdp2(recorded, index):
    result = recorded[index]
    zero, m, pd, rd = CASES[index]
    assert result["case"] == {"zero": zero, "m": m, "param_dtype": pd, "reduce_dtype": rd}
    est = llmplan.estimate(llmplan_plan(zero, m, pd, rd))
    assert int(est.value("params.total")) == result["params"]
    assert est.value("communication.dp_bytes") == pytest.approx(measured_ring_bytes(result["calls"]), rel=1e-12)


@pytest.mark.parametrize("index", range(len(LORA_CASES)), ids=[f"zero{z}-m{m}-{pd}-{rd}" for z, m, pd, rd in LORA_CASES])
def test_lora_zero3_gathers_the_frozen_base(recorded, index):
    """FSDP2 with PEFT LoRA adapters: every unit's parameters, the frozen base included, are
    gathered twice per micro-batch; only the adapters' gradients are reduce-scattered —
    what ``[method] kind = "lora"`` under ZeRO-3 prices (``memory.per_gpu.weights``' bytes)."""
    result = recorded[len(CASES) + index]
    zero, m, pd, rd = LORA_CASES[index]
    assert result["case"]["lora"] == LORA_RANK
    base = llmplan_plan(zero, m, pd, rd)
    method = llmplan.Method(kind="lora", tokens=10**6, seq_len=SEQ, global_batch=WORLD * MICRO_BATCH * m,
                            lora=llmplan.LoRA(rank=LORA_RANK, targets=["q_proj", "v_proj"]))
    est = llmplan.estimate(attrs.evolve(base, method=method))
    assert int(est.value("params.total") + est.value("params.trainable")) == result["params"]
    gathers = [c for c in result["calls"] if c["op"] == "all_gather_single"]
    reductions = [c for c in result["calls"] if c["op"] == "reduce_scatter_single"]
    assert len(gathers) == 2 * (CONFIG["num_hidden_layers"] + 1) * m
    assert len(reductions) == CONFIG["num_hidden_layers"] * m  # the root unit has no adapters
    assert est.value("communication.dp_bytes") == pytest.approx(measured_ring_bytes(result["calls"]), rel=1e-12)


@pytest.mark.parametrize("index", [i for i, c in enumerate(CASES) if c[0] in (2, 3)],
                         ids=[f"zero{z}-m{m}-{pd}-{rd}" for z, m, pd, rd in CASES if z in (2, 3)])
def test_fsdp_shards_held_between_steps(recorded, index):
    """What a rank keeps between steps under FSDP2: its parameter shards in their stored
    dtype (fp32: MixedPrecisionPolicy casts a gathered copy for compute), its gradient shards
    in that dtype whatever reduce_dtype is, and AdamW's two states — 4 + 4 + 8 bytes per
    parameter ÷ n for every dtype mix. ZeRO-3: llmplan's weights, gradients and optimizer
    bytes equal them; ZeRO-2 (SHARD_GRAD_OP): the shards equal llmplan's gradients and
    optimizer (the fp32 master is the parameter shard; llmplan's weights there are the
    unsharded compute copy FSDP holds from forward to backward)."""
    zero, m, pd, rd = CASES[index]
    held = recorded[index]["held"]
    est = llmplan.estimate(llmplan_plan(zero, m, pd, rd))
    weights, grads, opt = (est.value(f"memory.per_gpu.{k}") for k in ("weights", "gradients", "optimizer"))
    params = recorded[index]["params"]
    assert grads == held["grads"] and grads == pytest.approx(4 * params / WORLD)
    if zero == 3:
        assert (weights, opt) == (held["params"], held["optimizer"])
    else:
        assert opt == held["params"] + held["optimizer"]
        assert weights == pytest.approx({"fp32": 4, "bf16": 2}[pd] * params)


HSDP_FIRST = len(CASES) + len(LORA_CASES)


@pytest.mark.parametrize("index", range(len(HSDP_CASES)), ids=[f"zero{z}-m{m}-{pd}-{rd}" for z, m, pd, rd in HSDP_CASES])
def test_hsdp_bytes_and_shards(recorded, index):
    """FSDP2 on a 2 × 2 mesh (HSDP): the gathers and reduce-scatters run inside shard groups
    of 2, and every micro-batch's gradient shards are all-reduced across the 2 replicas
    (FSDP2's default with gradient accumulation) — ``communication.dp_bytes`` with
    ``dp_shard = 2`` equals the recorded bytes; the states each rank keeps are sharded over
    its group of 2, as llmplan's memory says."""
    zero, m, pd, rd = HSDP_CASES[index]
    result = recorded[HSDP_FIRST + index]
    assert result["case"]["shard"] == HSDP_SHARD and result["case"]["m"] == m
    calls = result["calls"]
    units = CONFIG["num_hidden_layers"] + 1
    reduces = [c for c in calls if c["op"] == "all_reduce"]
    assert {c["group"] for c in calls if c["op"] != "all_reduce"} == {HSDP_SHARD}
    assert {c["group"] for c in reduces} == {WORLD // HSDP_SHARD} and len(reduces) == units * m
    est = llmplan.estimate(llmplan_plan(zero, m, pd, rd, dp_shard=HSDP_SHARD))
    assert est.value("communication.dp_bytes") == pytest.approx(measured_ring_bytes(calls), rel=1e-12)
    held, params = result["held"], result["params"]
    grads = est.value("memory.per_gpu.gradients")
    assert grads == held["grads"] and grads == pytest.approx(4 * params / HSDP_SHARD)
    if zero == 3:
        assert (est.value("memory.per_gpu.weights"), est.value("memory.per_gpu.optimizer")) == (held["params"], held["optimizer"])


def test_collective_counts(recorded):
    """Hand count for 3 decoder layers + the root unit (embedding, final norm, LM head) = 4 units."""
    units = CONFIG["num_hidden_layers"] + 1
    for (zero, m, _, _), result in zip(CASES, recorded[: len(CASES)]):
        ops = [c["op"] for c in result["calls"]]
        if zero == 0:  # DDP under no_sync(): one bucket (< 25 MB), all-reduced once per step
            assert ops == ["all_reduce"]
            continue
        gathers = 2 if zero == 3 else 1
        assert ops.count("all_gather_single") == gathers * units * m
        assert ops.count("reduce_scatter_single") == units * m


def test_deepspeed_zero2_is_not_fsdp():
    """The same ZeRO-2 layout under sharding = "zero" gathers the updated parameters once per step:
    (n−1)/n·P·(m·q_g + q_w) instead of FSDP's (n−1)/n·P·m·(q_g + q_w) — hand derivation, fp32, m = 3."""
    import attrs

    fsdp = llmplan_plan(2, 3, "fp32", "fp32")
    zero = attrs.evolve(fsdp, parallelism=attrs.evolve(fsdp.parallelism, sharding="zero"))
    params = llmplan.estimate(fsdp).value("params.total")
    ring = (WORLD - 1) / WORLD * 4 * params
    assert llmplan.estimate(fsdp).value("communication.dp_bytes") == pytest.approx(3 * 2 * ring)
    assert llmplan.estimate(zero).value("communication.dp_bytes") == pytest.approx((3 + 1) * ring)


@pytest.mark.parametrize("sp", [False, True], ids=["no-sp", "sp"])
def test_tp_collectives_of_the_nonreentrant_recomputation(recorded_tp, sp):
    """Gradient checkpointing as transformers does it (torch's non-reentrant checkpoint): the
    recomputed forward reruns each layer up to the last tensor its backward needs, so the
    collective after o_proj runs again and the one after down_proj does not. Without SP: 2
    forward + 1 recomputed + 5 backward all-reduces per layer (8, not 9). With SP: the two
    all-gathers and o_proj's reduce-scatter run again, down_proj's not — 3 of the 4."""
    result = recorded_tp[2 * len(TP_M) + (1 if sp else 0)]
    assert result["case"]["ckpt"] and result["case"]["sp"] == sp and result["case"]["m"] == 1
    layers = CONFIG["num_hidden_layers"]
    act = MICRO_BATCH * SEQ * CONFIG["hidden_size"] * 4
    ops = [c["op"] for c in result["calls"]]
    if sp:
        assert ops.count("tp_all_gather_single") == (2 + 2 + 2) * layers
        assert ops.count("tp_reduce_scatter_single") == (2 + 1 + 2) * layers
        calls = [c for c in result["calls"] if c["op"] != "tp_all_reduce"]  # the norms' h-sized gradients aside
        measured = len(calls) * (TP_WORLD - 1) / TP_WORLD * act
    else:
        assert ops == ["tp_all_reduce"] * ((2 + 1 + 5) * layers)
        measured = sum(2 * (TP_WORLD - 1) / TP_WORLD * c["bytes"][0] for c in result["calls"])
    assert llmplan.estimate(tp_plan(1, sp=sp, recompute="full")).value("communication.tp_bytes") == pytest.approx(measured, rel=1e-12)
