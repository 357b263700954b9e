"""Measure the causal attention kernel at the FlashAttention-2 benchmark's shapes, beside llmplan's curve.

Issue #5, Deliver 3/4: llmplan's default attention speed (``time.attention_efficiency``)
is a curve fitted to the FlashAttention-2 paper's forward + backward benchmarks
(``llmplan/data/attention.toml``). On a lent GPU this script times PyTorch's
``scaled_dot_product_attention`` (causal, forward + backward; its flash backend is
FlashAttention-2 on recent torch) at the same shapes — batch × sequence = 16k tokens,
hidden 2048, head dimension 64 and 128, sequences 512–16k — and writes each measured
TFLOP/s next to the curve's prediction for the GPU:

    python benchmarks/attention_sweep.py --out benchmarks/results    # GPU from the device name

FLOPs are counted as the FlashAttention papers count them (causal forward = half of
``4·s²·d`` per head, forward + backward = 3.5 × that: ``llmplan.calibrate.causal_attention_flops``),
the convention of llmplan's ``η_attn``. ``--device cpu --tiny`` runs two small shapes, for the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEQ = (512, 1024, 2048, 4096, 8192, 16384)
HEAD_DIMS = (64, 128)
TOKENS, HIDDEN = 16384, 2048  # the benchmark's shape


def shapes(tiny: bool) -> list[tuple[int, int, int, int]]:
    """(batch, heads, sequence, head dim) of every case."""
    if tiny:
        return [(2, 2, 64, 16), (1, 2, 128, 16)]
    return [(TOKENS // s, HIDDEN // d, s, d) for d in HEAD_DIMS for s in SEQ]


def predicted_tflops(gpu, kernel: str, s: int, d: int) -> float | None:
    """llmplan's default curve for ``kernel`` on ``gpu`` at sequence ``s``, head dim ``d`` (TFLOP/s):
    ``time.attention_efficiency`` (:func:`llmplan.formulas.time.attention_efficiency`) times
    the BF16 peak, one kernel call of ``s`` tokens."""
    from llmplan import symbols as S
    from llmplan.bindings import evaluate
    from llmplan.formulas.time import attention_efficiency
    from llmplan.plan import default_attention_efficiency

    if gpu is None:
        return None
    a = default_attention_efficiency(gpu, kernel, d)
    fraction = evaluate(attention_efficiency(), {S.eta_attn: a.eta, S.s_attn: a.s_attn, S.s: s, S.c: 1})
    return float(fraction) * (gpu.peak.get("bf16") or 0) / 1e12


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--gpu", help="catalog GPU id (default: guessed from the device name)")
    ap.add_argument("--kernel", default="flash2", help="llmplan kernel the SDPA backend stands for (default flash2)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--tiny", action="store_true", help="two small shapes (CPU tests)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)

    import torch

    from llmplan import catalog
    from llmplan.calibrate import guess_gpu, measure_attention

    on_cuda = args.device.startswith("cuda")
    name = torch.cuda.get_device_name() if on_cuda else "cpu"
    gid = args.gpu or (guess_gpu(name) if on_cuda else None)
    gpu = catalog.gpu(gid) if gid else None
    rows = []
    for b, heads, s, d in shapes(args.tiny):
        m = measure_attention((b, heads, s, d), device=args.device, dtype="bf16" if on_cuda else "fp32", repeat=args.repeat)
        pred = predicted_tflops(gpu, args.kernel, s, d)
        measured = m["flops_per_second"] / 1e12
        rows.append({"batch": b, "heads": heads, "seq_len": s, "head_dim": d, "measured_tflops": measured,
                     "predicted_tflops": pred, "error": None if pred is None else pred / measured - 1})
        err = "" if pred is None else f"  llmplan {pred:7.1f}  ({100 * (pred / measured - 1):+.1f} %)"
        print(f"b={b:3d} heads={heads:3d} s={s:6d} d={d:4d}: {measured:8.1f} TFLOP/s{err}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"device": name, "gpu": gid, "kernel": args.kernel, "torch": torch.__version__,
              "command": "python benchmarks/attention_sweep.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "rows": rows}
    (out / ("attention-sweep-tiny.json" if args.tiny else "attention-sweep.json")).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
