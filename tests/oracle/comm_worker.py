"""Record the collectives PyTorch FSDP2, DDP and tensor parallelism issue in one training step (run by test_oracle_comm.py).

``python comm_worker.py SPEC.json OUT.json`` starts ``world`` CPU processes on the
gloo backend. Each builds the same small ``LlamaForCausalLM`` from ``SPEC["config"]``,
wraps every decoder layer and then the whole model with ``fully_shard`` — the usual FSDP2
recipe (torchtitan, accelerate) — with ``reshard_after_forward`` true for ZeRO-3
(``FULL_SHARD``) and false for ZeRO-2 (``SHARD_GRAD_OP``) and the case's
``MixedPrecisionPolicy``, and trains two steps of ``m`` micro-batches (gradient
accumulation without ``set_requires_gradient_sync(False)``) with AdamW. Every call of a
``torch.distributed`` function whose name holds ``all_gather``, ``reduce_scatter`` or
``all_reduce`` is recorded, with the byte size of each tensor argument, during the second
step; rank 0 writes the records per case. ``zero = 0`` cases use ``DistributedDataParallel``
instead (gradient accumulation under ``no_sync()``), its buckets all-reduced through
``dist.all_reduce`` by PyTorch's default comm hook. ``tp`` cases shard the decoder layers over
all ranks with transformers' Llama ``tp_plan`` (PyTorch's ``ColwiseParallel`` /
``RowwiseParallel``, no sequence parallelism; with ``sp``, torchtitan's sequence-parallel
plan) and record DTensor's functional collectives. ``shard`` cases run HSDP: a 2-D device
mesh (replicate × shard), states sharded over ``shard`` ranks; each record notes the
size of the process group it ran on.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _record(log: list) -> None:
    for name in dir(dist):
        fn = getattr(dist, name)
        if name.startswith("_") or not callable(fn) or not any(k in name for k in ("all_gather", "reduce_scatter", "all_reduce")):
            continue

        def wrapped(*args, _fn=fn, _name=name, **kwargs):
            tensors = [x for x in list(args) + list(kwargs.values()) if torch.is_tensor(x)]
            group = kwargs.get("group")
            log.append({"op": _name, "bytes": [x.numel() * x.element_size() for x in tensors],
                        "group": dist.get_world_size(group) if group is not None else dist.get_world_size()})
            return _fn(*args, **kwargs)

        setattr(dist, name, wrapped)


def _local_bytes(t) -> int:
    t = t.to_local() if hasattr(t, "to_local") else t  # a DTensor's shard on this rank
    return t.numel() * t.element_size()


def _held_bytes(model, opt) -> dict:
    """Bytes this rank holds for the model between steps: parameters (FSDP: its shards, in
    the dtype they are stored in), gradients after the step, optimizer states (AdamW's
    ``exp_avg``/``exp_avg_sq``; the 0-dim ``step`` counters apart)."""
    params = [q for q in model.parameters()]
    state = [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
    return {
        "params": sum(_local_bytes(q) for q in params),
        "grads": sum(_local_bytes(q.grad) for q in params if q.grad is not None),
        "optimizer": sum(_local_bytes(v) for v in state if v.dim() > 0),
        "step_counters": sum(1 for v in state if v.dim() == 0),
    }


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def _ddp(model):
    """DistributedDataParallel (ZeRO-0) with PyTorch's default all-reduce as a Python comm
    hook: DDP's C++ reducer would call the process group out of reach of the wrapped
    functions; the hook sends each gradient bucket through ``dist.all_reduce``, recorded."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(model)
    ddp.register_comm_hook(None, default_hooks.allreduce_hook)
    return ddp


def _record_functional(log: list) -> None:
    """DTensor (tensor parallelism) reduces through the functional collectives."""
    import torch.distributed._functional_collectives as funcol

    for name in ("all_reduce", "all_gather_tensor", "reduce_scatter_tensor", "all_gather_tensor_autograd",
                 "reduce_scatter_tensor_autograd", "all_gather_single", "reduce_scatter_single"):
        fn = getattr(funcol, name, None)
        if fn is None:
            continue

        def wrapped(tensor, *args, _fn=fn, _name=name, **kwargs):
            log.append({"op": "tp_" + _name, "bytes": [tensor.numel() * tensor.element_size()]})
            return _fn(tensor, *args, **kwargs)

        setattr(funcol, name, wrapped)


def _tensor_parallel(model, world: int, sp: bool = False):
    """transformers' Llama ``tp_plan`` applied with PyTorch's parallel styles: q, k, v, gate and up
    column-parallel, o and down row-parallel, no sequence parallelism.

    ``sp``: torchtitan's Llama plan instead — the norms ``SequenceParallel`` (the residual
    stream sharded over the sequence), the attention and MLP inputs gathered once each by
    ``PrepareModuleInput``, o and down reduce-scattering back to sequence shards. The
    embedding output is cut to this rank's sequence shard by a hook (HF's embedding takes
    no sequence-sharded output), and the step passes the full ``position_ids``.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    mesh = init_device_mesh("cpu", (world,))
    plan = {f"self_attn.{n}": ColwiseParallel() for n in ("q_proj", "k_proj", "v_proj")}
    plan |= {"self_attn.o_proj": RowwiseParallel(), "mlp.gate_proj": ColwiseParallel(), "mlp.up_proj": ColwiseParallel(),
             "mlp.down_proj": RowwiseParallel()}
    if sp:
        from torch.distributed.tensor import Replicate, Shard
        from torch.distributed.tensor.parallel import PrepareModuleInput, SequenceParallel

        plan |= {
            "input_layernorm": SequenceParallel(),
            "post_attention_layernorm": SequenceParallel(),
            "self_attn": PrepareModuleInput(input_kwarg_layouts={"hidden_states": Shard(1)},
                                            desired_input_kwarg_layouts={"hidden_states": Replicate()}),
            "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
            "self_attn.o_proj": RowwiseParallel(output_layouts=Shard(1)),
            "mlp.down_proj": RowwiseParallel(output_layouts=Shard(1)),
        }
        rank = dist.get_rank()

        def shard_sequence(_module, _args, output):
            chunk = output.shape[1] // world
            return output[:, rank * chunk:(rank + 1) * chunk].contiguous()

        model.model.embed_tokens.register_forward_hook(shard_sequence)
    for layer in model.model.layers:
        parallelize_module(layer, mesh, plan)
    return model


def _sp_loss(model, ids, world: int):
    """One micro-batch through the sequence-parallel model: this rank's shard of the final
    hidden states, the LM head and the cross-entropy on its own tokens."""
    rank, seq = dist.get_rank(), ids.shape[1]
    chunk = seq // world
    hidden = model.model(input_ids=ids, position_ids=torch.arange(seq).unsqueeze(0)).last_hidden_state
    logits = model.lm_head(hidden)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ids[:, rank * chunk:(rank + 1) * chunk].flatten())


def _worker(rank: int, spec: dict, out: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(spec["port"])
    dist.init_process_group("gloo", rank=rank, world_size=spec["world"])
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers import LlamaConfig, LlamaForCausalLM

    log: list = []
    _record(log)
    _record_functional(log)
    results = []
    for case in spec["cases"]:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**spec["config"]))
        if case.get("lora"):  # PEFT LoRA adapters; the base is frozen
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=case["lora"], target_modules=["q_proj", "v_proj"])).base_model.model
        if case.get("ckpt"):  # transformers' default: torch's non-reentrant checkpoint per layer
            model.train()
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if case.get("tp"):
            model = _tensor_parallel(model, spec["world"], sp=case.get("sp", False))
        elif case["zero"] == 0:
            model = _ddp(model)
        else:
            policy = MixedPrecisionPolicy(param_dtype=DTYPES[case["param_dtype"]], reduce_dtype=DTYPES[case["reduce_dtype"]])
            reshard = case["zero"] == 3
            mesh = None
            if case.get("shard"):  # HSDP: shard inside groups of `shard` ranks, replicate across them
                from torch.distributed.device_mesh import init_device_mesh

                mesh = init_device_mesh("cpu", (spec["world"] // case["shard"], case["shard"]),
                                        mesh_dim_names=("replicate", "shard"))
            for layer in model.model.layers:
                fully_shard(layer, mesh=mesh, reshard_after_forward=reshard, mp_policy=policy)
            fully_shard(model, mesh=mesh, reshard_after_forward=reshard, mp_policy=policy)
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-3)
        vocab = spec["config"]["vocab_size"]
        for _step in range(2):
            log.clear()
            for i in range(case["m"]):
                ids = torch.randint(0, vocab, (spec["micro_batch"], spec["seq_len"]))
                # DDP: gradient accumulation under no_sync(), one all-reduce at the last micro-batch
                ctx = model.no_sync() if case["zero"] == 0 and not case.get("tp") and i < case["m"] - 1 else _nothing()
                with ctx:
                    if case.get("sp"):
                        _sp_loss(model, ids, spec["world"]).backward()
                    else:
                        model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            held = _held_bytes(model, opt)  # what this rank keeps between steps, gradients included
            opt.zero_grad()
        results.append({"case": case, "params": sum(p.numel() for p in model.parameters()), "calls": list(log), "held": held})
    if rank == 0:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(results, fh)
    dist.destroy_process_group()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    mp.spawn(_worker, args=(spec, sys.argv[2]), nprocs=spec["world"])
