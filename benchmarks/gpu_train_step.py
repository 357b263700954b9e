"""Measure real training steps of Llama-style models and put llmplan's prediction beside them.

Issue #5, Deliver 4. For each case (model shape × sequence length × checkpointing) this
script builds the Hugging Face ``LlamaForCausalLM`` from a config (random weights, nothing
downloaded), trains a few steps in pure bf16 with ``torch.optim.AdamW`` (states in the
parameters' dtype: llmplan's ``bf16-pure`` preset), and records

* ``torch.cuda.max_memory_allocated`` over the measured steps (CUDA only),
* the median step time after warm-up,
* achieved TFLOP/s = llmplan's model FLOPs of the step ÷ the measured time,

next to llmplan's ``memory.per_gpu.total`` and ``time.step_seconds`` for the plan of the same
model (read from the same config with :func:`llmplan.hf.from_hf_config`), one GPU,
``framework = "hf"``, ``recompute = "full"`` when gradient checkpointing is on. The parameter
count of the real module is checked against llmplan's before anything is timed.

Run it on the GPU (writes ``benchmarks/results/gpu-train-steps.json`` and ``.md``, or under
``--out``; both files are rewritten after every case, so a run cut short keeps what it
measured)::

    python benchmarks/gpu_train_step.py                           # default matrix, GPU from the device name
    python benchmarks/gpu_train_step.py --cases 1b:2048:0 --steps 3 --budget-s 300

A case that runs out of GPU memory is recorded as ``oom`` beside llmplan's fit verdict
and the run goes on. ``--budget-s`` starts no new case once that many seconds have
passed. On the project's lent device machine (no network, its own torch) use
``benchmarks/gpu_session.sh``, which also runs ``llmplan calibrate``.

On a machine without a GPU ``--device cpu --tiny`` runs the same code on a two-layer model
(timing only; the test suite does this in ``tests/oracle/test_oracle_gpu_step.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: Llama-style shapes (HF LlamaConfig keys). 1b/3b: Llama 3.2 1B/3B; 8b: Llama 3 8B (their config.json values).
SHAPES: dict[str, dict[str, Any]] = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, head_dim=64),
    "3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, head_dim=128),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, head_dim=128),
    "tiny": dict(hidden_size=128, intermediate_size=352, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=False, head_dim=32),
}

#: (shape, sequence length, gradient checkpointing) measured by default; micro-batch 1.
DEFAULT_CASES = ("1b:2048:0", "1b:8192:0", "1b:8192:1", "3b:4096:0", "3b:4096:1", "8b:2048:1", "8b:8192:1")


def hf_config(shape: str, seq: int) -> dict[str, Any]:
    """The ``config.json`` mapping of a shape (rope and norm as Llama 3)."""
    return {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_act": "silu",
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": max(seq, 8192),
        "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0, "torch_dtype": "bfloat16",
        **SHAPES[shape],
    }


def llama_config(config: dict[str, Any]):
    """The ``transformers.LlamaConfig`` of a :func:`hf_config` mapping (no KV cache: training)."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(**{k: v for k, v in config.items() if k not in ("model_type", "architectures", "torch_dtype")})
    cfg._attn_implementation = "sdpa"
    cfg.use_cache = False
    return cfg


def prediction(config: dict[str, Any], seq: int, batch: int, ckpt: bool, gpu: str) -> dict[str, Any]:
    """llmplan's estimate of one step of this case on one ``gpu``."""
    import llmplan
    from llmplan import catalog
    from llmplan.hf import from_hf_config

    model, _ = from_hf_config(config, name=f"llama-style {config['hidden_size']}")
    plan = llmplan.Plan(
        model=model,
        method=llmplan.Method(kind="pretrain", tokens=seq * batch * 1000, seq_len=seq, global_batch=batch),
        precision=llmplan.Precision(preset="bf16-pure"),
        cluster=llmplan.Cluster(gpu=catalog.gpu(gpu), gpus=1),
        parallelism=llmplan.Parallelism(micro_batch=batch, recompute="full" if ckpt else "none", framework="hf"),
    )
    est = llmplan.estimate(plan)
    return {
        "params": int(est.value("params.total")),
        "memory_bytes": float(est.value("memory.per_gpu.total")),
        # the part of the total outside the caching allocator's count (CUDA context,
        # framework reserve): compare max_memory_allocated with memory_bytes − other
        "other_bytes": float(est.value("memory.per_gpu.other")),
        "step_seconds": float(est.value("time.step_seconds")),
        "model_flops_per_step": float(est.value("flops.per_step")),
        "tflops_per_gpu": float(est.value("time.tflops_per_gpu")),
        "fits": bool(est.fits),
    }


def measure(config: dict[str, Any], seq: int, batch: int, ckpt: bool, *, device: str, steps: int, warmup: int) -> dict[str, Any]:
    """Train ``warmup + steps`` real steps; median time of the last ``steps`` and peak memory."""
    import torch
    from transformers import LlamaForCausalLM

    from llmplan.calibrate import time_training_steps

    cfg = llama_config(config)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device=device)
    out = {"params": params, **time_training_steps(model, ids, checkpointing=ckpt, device=device, steps=steps, warmup=warmup)}
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def run_case(case: str, *, gpu: str, device: str, steps: int, warmup: int, batch: int = 1) -> dict[str, Any]:
    shape, seq, ckpt = case.split(":")
    seq, ckpt = int(seq), bool(int(ckpt))
    config = hf_config(shape, seq)
    pred = prediction(config, seq, batch, ckpt, gpu)
    row = {"case": case, "shape": shape, "seq_len": seq, "micro_batch": batch, "checkpointing": ckpt, "predicted": pred}
    try:
        meas = measure(config, seq, batch, ckpt, device=device, steps=steps, warmup=warmup)
    except Exception as exc:  # torch.cuda.OutOfMemoryError: a measured "does not fit"
        if type(exc).__name__ != "OutOfMemoryError":
            raise
        import gc

        import torch

        gc.collect()
        cuda = device.startswith("cuda") and torch.cuda.is_available()
        if cuda:
            torch.cuda.empty_cache()
        row["oom"] = True
        row["measured"] = {"device": torch.cuda.get_device_name() if cuda else device, "torch": torch.__version__,
                           "error": (str(exc).splitlines() or [type(exc).__name__])[0]}
        return row
    if meas["params"] != pred["params"]:
        raise SystemExit(f"{case}: torch has {meas['params']:,} parameters, llmplan {pred['params']:,}")
    row["measured"] = meas
    row["measured_tflops_per_gpu"] = pred["model_flops_per_step"] / meas["step_seconds"] / 1e12
    row["step_time_error"] = pred["step_seconds"] / meas["step_seconds"] - 1
    if meas["peak_memory_bytes"]:
        row["memory_error"] = (pred["memory_bytes"] - pred["other_bytes"]) / meas["peak_memory_bytes"] - 1
    return row


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = ["# Real training steps vs llmplan (issue #5, Deliver 4)", "", f"Command: `{command}`", "",
             f"Device: {rows[0]['measured']['device']}, torch {rows[0]['measured']['torch']}. Pure bf16, "
             "AdamW, sdpa attention, micro-batch 1; measured = median step after warm-up, "
             "`torch.cuda.max_memory_allocated`.", "",
             "| case | params | ckpt | measured step s | predicted step s | error | measured TFLOP/s | "
             "measured peak GiB | predicted GiB (excl. other) | error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, p = r["measured"], r["predicted"]
        if r.get("oom"):
            lines.append(f"| {r['shape']} s={r['seq_len']} | {p['params']:,} | {'yes' if r['checkpointing'] else 'no'} | "
                         f"out of memory | {p['step_seconds']:.4f} | – | – | out of memory | "
                         f"{(p['memory_bytes'] - p['other_bytes']) / 2**30:.2f} ({'fits' if p['fits'] else 'does not fit'}) | – |")
            continue
        mem = f"{m['peak_memory_bytes'] / 2**30:.2f}" if m["peak_memory_bytes"] else "–"
        merr = f"{r['memory_error']:+.1%}" if "memory_error" in r else "–"
        lines.append(f"| {r['shape']} s={r['seq_len']} | {p['params']:,} | {'yes' if r['checkpointing'] else 'no'} | "
                     f"{m['step_seconds']:.4f} | {p['step_seconds']:.4f} | {r['step_time_error']:+.1%} | "
                     f"{r['measured_tflops_per_gpu']:.1f} | {mem} | {(p['memory_bytes'] - p['other_bytes']) / 2**30:.2f} | {merr} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", default=list(DEFAULT_CASES), help="shape:seq:ckpt, e.g. 8b:2048:1")
    ap.add_argument("--gpu", default="auto", help="catalog GPU id for llmplan's prediction (auto: from the device name)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the two-layer shape at s=128 (CPU self-test)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--budget-s", type=float, default=None, help="start no new case after this many seconds")
    args = ap.parse_args(argv)
    cases = ["tiny:128:0", "tiny:128:1"] if args.tiny else args.cases
    gpu = args.gpu if args.gpu != "auto" else device_gpu(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu-train-steps" + ("-tiny" if args.tiny else "")
    command = "python benchmarks/gpu_train_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for case in cases:
        if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
            print(json.dumps({"case": case, "skipped": f"budget of {args.budget_s:g} s spent"}), flush=True)
            continue
        rows.append(run_case(case, gpu=gpu, device=args.device, steps=args.steps, warmup=args.warmup))
        print(json.dumps({k: rows[-1].get(k) for k in ("case", "oom", "step_time_error", "memory_error", "measured_tflops_per_gpu")}), flush=True)
        # rewritten after every case: a run cut short keeps what it measured
        (args.out / f"{stem}.json").write_text(json.dumps({"command": command, "gpu": gpu, "rows": rows}, indent=2), encoding="utf-8")
        (args.out / f"{stem}.md").write_text(markdown(rows, command), encoding="utf-8")
    return 0


def device_gpu(device: str) -> str:
    """The catalog GPU id of the CUDA device (``llmplan calibrate``'s guess from its name); ``h100-sxm`` on the CPU."""
    if not device.startswith("cuda"):
        return "h100-sxm"  # the CPU self-test only exercises the code path
    import torch

    from llmplan.calibrate import guess_gpu

    name = torch.cuda.get_device_name()
    gid = guess_gpu(name)
    if gid is None:
        raise SystemExit(f"no catalog GPU for device {name!r}: give --gpu ID (llmplan catalog gpus)")
    return gid


if __name__ == "__main__":
    raise SystemExit(main())
