"""Random plans over the catalog, checked against what must hold for any plan.

    python benchmarks/fuzz_plans.py --plans 500 --seed 0          # training kinds
    python benchmarks/fuzz_plans.py --plans 300 --serve            # inference

Each plan draws a catalog model and GPU and a layout from the whole option space (tp, pp,
cp, ep, ZeRO stage and sharding, schedules, recomputation, precisions, frameworks,
overlaps, offload, LoRA/QLoRA). Plans llmplan rejects with a user error are counted and
skipped. For every valid plan:

* no exception other than llmplan's user errors, and every quantity finite and ≥ 0
  (``memory.headroom`` may be negative);
* a GPU twice as fast (peaks, measured matmul rates and memory bandwidth) or links twice as
  fast never lengthen a training step, a prefill or a decode step;
* twice the global batch never costs more per token; twice the serving batch never
  lowers decode throughput;
* the sweep's row for the plan's own layout equals the scalar estimate.

The unit tests check the same invariants on small generated plans (``tests/test_invariants.py``);
this script reaches the catalog's real shapes and every option at once, too slowly for CI
(about 1 s per plan). It found the DP-overlap monotonicity error and the pp = 1 interleaved
sweep crash (CHANGELOG, Unreleased). Exit status 1 when something is found.
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import sys
import traceback

import attrs

from llmplan import catalog
from llmplan.errors import LlmplanError
from llmplan.estimate import estimate
from llmplan.plan import LoRA, Cluster, Method, Parallelism, Plan, Precision
from llmplan.sweep import sweep

TRAIN_GPUS = ("a100-80gb-sxm", "a100-40gb-sxm", "h100-sxm", "h100-pcie", "h200-sxm", "b200", "mi300x")
SERVE_GPUS = ("a100-80gb-sxm", "h100-sxm", "h200-sxm", "b200", "l40s", "rtx-4090", "mi300x")
TRAIN_KINDS = ("pretrain", "continued-pretrain", "full-finetune", "lora", "qlora")
SWEEP_KEYS = ("time.step_seconds", "memory.per_gpu.total", "flops.per_step", "communication.dp_seconds",
              "communication.tp_seconds", "communication.ep_seconds")


def faster_gpu(plan: Plan, k: float = 2.0) -> Plan:
    g = plan.cluster.gpu
    gpu = attrs.evolve(g, peak={d: v * k for d, v in g.peak.items()}, mamf={d: v * k for d, v in g.mamf.items()},
                       memory_bandwidth=g.memory_bandwidth * k)
    return attrs.evolve(plan, cluster=attrs.evolve(plan.cluster, gpu=gpu))


def faster_links(plan: Plan, k: float = 2.0) -> Plan:
    cl, g = plan.cluster, plan.cluster.gpu
    intra = cl.intra_node or catalog.link(g.intra_node)
    inter = cl.inter_node or catalog.link(g.inter_node)
    return attrs.evolve(plan, cluster=attrs.evolve(
        cl, intra_node=attrs.evolve(intra, bandwidth=intra.bandwidth * k),
        inter_node=attrs.evolve(inter, bandwidth=inter.bandwidth * k)))


def training_plan(rng: random.Random) -> Plan:
    pick = rng.choice
    model = catalog.model(pick(tuple(catalog.default().models)))
    moe = hasattr(model, "moe")
    tp, pp, cp, dp = pick((1, 2, 4, 8)), pick((1, 1, 2, 4, 8)), pick((1, 1, 2)), pick((1, 2, 4, 16, 64))
    recompute = pick(("none", "selective", "full"))
    par = dict(tp=tp, pp=pp, cp=cp, ep=pick((1, 2, 4, 8)) if moe else 1, zero=pick((0, 1, 2, 3)),
               sharding=pick(("zero", "zero", "fsdp")), micro_batch=pick((1, 2, 4)), recompute=recompute,
               framework=pick(("megatron", "hf")), sequence_parallel=pick((None, True, False)),
               pp_schedule=pick(("1f1b", "gpipe", "interleaved", "dualpipe")), tp_comm_overlap=pick((False, True)),
               dp_overlap=pick((True, False)), attention_kernel=pick(("flash2", "flash1", "xformers", "triton")),
               offload=pick(("none", "none", "optimizer", "optimizer+params")))
    if recompute == "full" and rng.random() < 0.5:
        par.update(recompute_layers=pick((1, 2, 3, 5)), recompute_method=pick(("block", "uniform")))
    if pp > 1 and rng.random() < 0.3:
        par["virtual_stages"] = pick((2, 3, 4))
    kind = pick(TRAIN_KINDS)
    lora = None
    if kind in ("lora", "qlora"):
        lora = LoRA(rank=pick((8, 16, 64)), targets=pick(("all-linear", ("q_proj", "v_proj"))),
                    base_bits=4 if kind == "qlora" else None)
    method = Method(kind=kind, tokens=1e12 if kind == "pretrain" else 1e9, seq_len=pick((1024, 2048, 4096, 8192, 32768)),
                    lora=lora, global_batch=dp * par["micro_batch"] * pick((1, 4, 16)))
    return Plan(model=model, method=method, precision=Precision(preset=pick(("bf16-mixed", "fp16-mixed", "fp8-mixed", "bf16-pure"))),
                cluster=Cluster(gpu=catalog.gpu(pick(TRAIN_GPUS)), gpus=tp * pp * cp * dp), parallelism=Parallelism(**par))


def serving_plan(rng: random.Random) -> Plan:
    pick = rng.choice
    model = catalog.model(pick(tuple(catalog.default().models)))
    tp, pp = pick((1, 2, 4, 8)), pick((1, 1, 2))
    ep = pick((1, 2, 4, 8)) if hasattr(model, "moe") else 1
    precision = pick(({}, {"weights": "int4"}, {"weights": "int8"}, {"kv_cache": "fp8"}, {"preset": "fp8-mixed"}))
    method = Method(kind="inference", seq_len=pick((512, 2048, 8192, 32768)), batch=pick((1, 4, 32, 128)),
                    new_tokens=pick((1, 128, 1024)))
    return Plan(model=model, method=method, precision=Precision(**precision),
                cluster=Cluster(gpu=catalog.gpu(pick(SERVE_GPUS)), gpus=max(tp, ep) * pp),
                parallelism=Parallelism(tp=tp, pp=pp, ep=ep))


def check(plan: Plan, serve: bool) -> list[str]:
    """What is wrong with ``plan``'s estimates (empty when nothing is)."""
    est = estimate(plan)
    found = []
    for key in est.keys():
        try:
            v = float(est.results[key])
        except (TypeError, ValueError):
            continue
        if not math.isfinite(v) or (v < 0 and key != "memory.headroom"):
            found.append(f"{key} = {v}")
    keys = ("time.prefill_seconds", "time.decode_step_seconds") if serve else ("time.step_seconds",)
    for label, other in (("a faster GPU", faster_gpu(plan)), ("faster links", faster_links(plan))):
        e2 = estimate(other)
        found += [f"{label} lengthens {k}: {est.value(k):.6g} → {e2.value(k):.6g} s"
                  for k in keys if e2.value(k) > est.value(k) * (1 + 1e-12)]
    if serve:
        big = attrs.evolve(plan, method=attrs.evolve(plan.method, batch=plan.method.batch * 2))
        if estimate(big).value("time.decode_step_seconds") > 2 * est.value("time.decode_step_seconds") * (1 + 1e-12):
            found.append("twice the batch lowers decode throughput")
        return found
    big = attrs.evolve(plan, method=attrs.evolve(plan.method, global_batch=plan.method.global_batch * 2))
    if estimate(big).value("time.step_seconds") > 2 * est.value("time.step_seconds") * (1 + 1e-12):
        found.append("twice the global batch costs more per token")
    row = sweep(plan, tp=[plan.parallelism.tp]).rows([0])[0]
    for key in SWEEP_KEYS:
        a, b = float(est.value(key)), float(row[key])
        if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9):
            found.append(f"sweep row {key} = {b:.6g}, estimate {a:.6g}")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plans", type=int, default=200, help="plans to draw (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve", action="store_true", help="inference plans instead of training")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    make = serving_plan if args.serve else training_plan
    valid = rejected = 0
    findings: dict[str, list[str]] = collections.defaultdict(list)
    for _ in range(args.plans):
        try:
            plan = make(rng)
            problems = check(plan, args.serve)
        except LlmplanError:
            rejected += 1
            continue
        except Exception as exc:  # a crash is a finding, with the plan that caused it
            findings[f"{type(exc).__name__}: {str(exc)[:120]}"].append(traceback.format_exc(limit=4))
            continue
        valid += 1
        for p in problems:
            findings[p.split(":")[0]].append(f"{p}\n{plan.parallelism}\n{plan.model.name} on {plan.cluster.gpu.id}")
    print(f"{valid} plans checked, {rejected} rejected by llmplan's own checks, {len(findings)} kinds of finding")
    for kind, cases in findings.items():
        print(f"\n{kind} ({len(cases)}×); first case:\n{cases[0]}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
