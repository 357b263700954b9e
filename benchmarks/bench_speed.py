"""Speed benchmarks (issue: a warm estimate < 5 ms; 100,000 layouts < 1 s; a cold CLI < 1.5 s;
the full layout space of Llama-3.1-405B on 16,384 H100 searched in < 2 s).

Run: ``python benchmarks/bench_speed.py`` (writes benchmarks/results/speed.md), or
``python benchmarks/bench_speed.py sweep search deepseek`` to measure only those rows and
replace them in the existing file (parts: estimate, uneven, sweep, cold, search, deepseek).
Timings are wall-clock medians on the machine it runs on; the file records which.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import llmplan  # noqa: E402
from llmplan import catalog  # noqa: E402
from llmplan.search import search  # noqa: E402
from llmplan.sweep import sweep  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


PARTS = ("estimate", "uneven", "sweep", "cold", "search", "deepseek")


def rows(parts: set[str]) -> dict[str, list[str]]:
    """The result rows of the parts asked for, by part."""
    out: dict[str, list[str]] = {}
    plan = llmplan.load(ROOT / "examples/llama2-70b-pretrain.toml")
    llmplan.estimate(plan)  # warm the caches
    if "estimate" in parts:
        warm = median_time(lambda: llmplan.estimate(plan), 200)
        out["estimate"] = [f"| warm single estimate (Llama 2 70B example) | {warm * 1e3:.2f} ms | < 5 ms |"]
    if "uneven" in parts:  # first/last_stage_layers: three pipeline ranks evaluated
        l3 = llmplan.load(ROOT / "examples/llama3-405b-pretrain.toml")
        llmplan.estimate(l3)
        warm = median_time(lambda: llmplan.estimate(l3), 200)
        out["uneven"] = [f"| warm estimate with uneven stages, three ranks (Llama 3 405B example) | {warm * 1e3:.2f} ms | < 15 ms |"]

    if "sweep" in parts:
        axes = dict(
            tp=[1, 2, 4, 8, 16],
            pp=[1, 2, 4, 5, 8, 10, 16, 20, 40, 80],
            cp=[1, 2],
            micro_batch=[1, 2, 4, 8],
            gpus=[256 * k for k in range(1, 26)],
            virtual_stages=[2],
            zero=[0, 1, 2, 3],
            recompute=["none", "selective", "full"],
        )
        n_layouts = len(sweep(plan, **axes))
        sweep_time = median_time(lambda: sweep(plan, **axes), 5)
        out["sweep"] = [f"| sweep of {n_layouts:,} layouts of one plan (warm) | {sweep_time:.3f} s ({n_layouts / sweep_time:,.0f} layouts/s) | 100,000 in < 1 s |"]

    if "cold" in parts:
        cold = median_time(
            lambda: subprocess.run(
                [sys.executable, "-m", "llmplan", "estimate", "examples/llama2-70b-pretrain.toml"],
                cwd=ROOT,
                check=False,
                capture_output=True,
            ),
            5,
        )
        out["cold"] = [f"| cold `llmplan estimate` process | {cold:.2f} s | < 1.5 s |"]

    if "search" in parts:
        big = llmplan.Plan(
            model=catalog.model("llama-3.1-405b"),
            method=llmplan.Method(tokens=15 * 10**12, seq_len=8192, global_batch=2048),
            cluster=llmplan.Cluster(gpu=catalog.gpu("h100-sxm"), gpus=16384),
            parallelism=llmplan.Parallelism(tp=8, pp=16),
        )
        t0 = time.perf_counter()
        first = search(big, gpus=16384, top=5)
        search_cold = time.perf_counter() - t0
        search_warm = median_time(lambda: search(big, gpus=16384, top=5), 3)
        out["search"] = [
            f"| search: Llama-3.1-405B on 16,384 H100, {first['evaluated']:,} layouts, cold process caches | {search_cold:.2f} s | < 2 s |",
            f"| the same search, warm | {search_warm:.2f} s ({first['evaluated'] / search_warm:,.0f} layouts/s) | |",
        ]

    if "deepseek" in parts:
        # the whole command, as a user runs it: GPU counts 1 … 2,048, DualPipe included
        def run():
            done = subprocess.run(
                [sys.executable, "-m", "llmplan", "search", "examples/deepseek-v3-pretrain.toml", "--json"],
                cwd=ROOT, check=True, capture_output=True, text=True,
            )
            return json.loads(done.stdout)["evaluated"]

        evaluated = run()
        wall = median_time(run, 3)
        out["deepseek"] = [
            f"| `llmplan search examples/deepseek-v3-pretrain.toml` (cold process, GPU counts 1 … 2,048), {evaluated:,} layouts | {wall:.2f} s | |"
        ]
    return out


def main(argv: list[str]) -> None:
    parts = set(argv) or set(PARTS)
    unknown = parts - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(sorted(unknown))} (parts: {', '.join(PARTS)})")
    new = rows(parts)
    out = ROOT / "benchmarks/results/speed.md"
    if parts == set(PARTS) or not out.exists():
        lines = [
            "# Speed benchmarks",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
            "Command: `python benchmarks/bench_speed.py`.",
            "",
            "| what | result | target |",
            "|---|---|---|",
            *(row for part in PARTS for row in new[part]),
            "",
            "Cold times include building the sympy definitions of each plan structure and compiling them with",
            "`lambdify`; warm times reuse both caches.",
        ]
    else:  # replace the rows of the parts measured, keep the others
        lines = out.read_text().splitlines()
        for part, fresh in new.items():
            at = [i for i, line in enumerate(lines) if _part_of(line) == part]
            if at:
                lines[at[0] : at[-1] + 1] = fresh
            else:  # a part not in the file yet goes after the last table row
                last = max(i for i, line in enumerate(lines) if line.startswith("| "))
                lines[last + 1 : last + 1] = fresh
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(row for part in PARTS if part in new for row in new[part]))


def _part_of(line: str) -> str | None:
    """Which part a result row of speed.md belongs to."""
    starts = {
        "| warm single estimate": "estimate",
        "| warm estimate with uneven stages": "uneven",
        "| sweep of": "sweep",
        "| cold `llmplan estimate`": "cold",
        "| search: Llama-3.1-405B": "search",
        "| the same search, warm": "search",
        "| `llmplan search examples/deepseek-v3": "deepseek",
    }
    return next((part for start, part in starts.items() if line.startswith(start)), None)


if __name__ == "__main__":
    main(sys.argv[1:])
