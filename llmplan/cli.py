"""The ``llmplan`` command.

``estimate PLAN [--json]``, ``validate PLAN``, ``explain PLAN [QUANTITY]``,
``catalog gpus|models|links|prices [--json]``, ``show model ID``, ``--version``.

Exit status: 0 ok; 2 invalid plan or usage (errors printed as ``path: message``,
never a traceback); 3 a valid plan that does not fit in memory.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_NOFIT = 0, 2, 3


def _human_bytes(n: Any) -> str:
    if n is None:
        return "—"
    return f"{n / 2**30:,.1f} GiB"


def _num(n: Any, fmt: str = ",.4g") -> str:
    if n is None:
        return "—"
    return format(n, fmt)


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _render(report: dict[str, Any]) -> str:
    p, f, mem, t, c = report["params"], report["flops"], report["memory"], report["time"], report["cost"]
    out = []
    if report.get("name"):
        out.append(report["name"])
        out.append("=" * len(report["name"]))
    out.append("Parameters")
    out.append(_table([("total", f"{p['total']:,}"), ("active per token", f"{p['active']:,}"), ("trainable", f"{p['trainable']:,}")]))
    compute = [
        ("model FLOPs (run)", f["total"], ".3e"),
        ("hardware FLOPs (run)", f["hardware_total"], ".3e"),
        ("FLOPs per token", f["per_token"], ".3e"),
        ("6·N·D", f.get("six_nd"), ".3e"),
    ]
    out.append("Compute")
    out.append(_table([(k, _num(v, fmt)) for k, v, fmt in compute if v is not None]))
    ranks = mem.get("pipeline_ranks")
    reported = next((r for r in ranks if r["reported"]), None) if ranks else None
    out.append("Memory on the most loaded GPU" + (f" (pipeline rank {reported['rank']}, {reported['layers']} layers)" if reported else ""))
    rows = [(k, _human_bytes(v)) for k, v in mem["per_gpu"].items()]
    rows.append(("capacity", _human_bytes(mem["capacity"])))
    rows.append(("fits", "yes" if mem["fits"] else "NO"))
    if ranks:  # uneven stages: the ranks compared
        rows.append(("ranks compared", " · ".join(f"{r['rank']}: {r['layers']} layers {_human_bytes(r['total'])}" for r in ranks)))
    out.append(_table(rows))
    if report.get("rl"):  # RL post-training (llmplan.rl): its own time rows
        from .rl import render_rl

        out.append(render_rl(report["rl"]))
    elif t.get("step_seconds") is not None:
        out.append("Time")
        out.append(
            _table(
                [
                    ("step", f"{_num(t['step_seconds'], ',.3f')} s"),
                    ("steps", _num(t["steps"], ",.0f")),
                    ("total", f"{_num(t['days'], ',.1f')} days"),
                    ("GPU-hours", _num(t["gpu_hours"], ",.0f")),
                    ("MFU", _num(t["mfu"], ".1%")),
                    ("TFLOP/s per GPU", _num(t["tflops_per_gpu"], ",.1f")),
                    ("exposed comm / step", f"{_num(report['communication']['exposed_seconds_per_step'], ',.3f')} s"),
                ]
            )
        )
    if report.get("throughput"):
        th, sv = report["throughput"], report.get("serving", {})
        rows = [
            ("prefill", f"{_num(t.get('prefill_seconds'), ',.3f')} s"),
            ("time to first token", f"{_num(t.get('ttft_seconds'), ',.3f')} s"),
            ("time per output token", f"{_num(t.get('tpot_seconds'), ',.4f')} s"),
            ("decode tokens/s", _num(th.get("decode_tokens_per_second"), ",.0f")),
            ("requests/s per replica", _num(th.get("requests_per_second_per_replica"), ",.2f")),
            ("max batch at this context", _num(mem.get("max_batch"), ",.0f")),
        ]
        if sv.get("replicas") is not None:
            rows.append(("replicas for the target", f"{sv['replicas']} ({sv['gpus']} GPUs)"))
        if c.get("per_million_tokens") is not None:
            rows.append(("cost per million tokens", f"{_num(c['per_million_tokens'], ',.3f')} {c['currency']}"))
        out.append("Serving")
        out.append(_table(rows))
    if report["energy"].get("kwh") is not None:
        out.append("Energy and cost")
        rows = [("energy", f"{_num(report['energy']['kwh'], ',.0f')} kWh")]
        if c.get("total") is not None:
            rows.append(("cost", f"{_num(c['total'], ',.0f')} {c['currency']}"))
        out.append(_table(rows))
    if report.get("phases"):
        from .phases import render_phases

        out.append(f"Phases ({len(report['phases'])}; the sections above describe [method] alone)")
        out.append(render_phases(report))
    if report.get("ranges"):
        rng = report["ranges"]
        out.append(f"Ranges ({rng['evaluated']} evaluations of the [ranges] box)")
        rows = []
        for key, r in rng["outputs"].items():
            if r["low"] == r["high"]:
                continue
            exact = "exact" if r["exact"] else "sampled"
            driver = rng["most_sensitive"].get(key, "")
            rows.append((key, f"{r['low']:,.4g} … {r['high']:,.4g}  ({exact}; most sensitive to {driver})"))
        if rows:
            out.append(_table(rows))
    if report["warnings"]:
        out.append("Warnings")
        out.extend(f"  - {w}" for w in report["warnings"])
    return "\n".join(out)


def _load(path: str):
    from . import load

    return load(path)


def cmd_estimate(args) -> int:
    from . import estimate

    plan = _load(args.plan)
    est = estimate(plan)
    report = est.report()
    if getattr(args, "plot", None):
        from .plots import memory_breakdown

        memory_breakdown(est, args.plot, title=report.get("name") or None)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_render(report))
    fits = report["phases_total"]["fits"] if report.get("phases") else report["memory"]["fits"]
    return EXIT_OK if fits else EXIT_NOFIT


def cmd_validate(args) -> int:
    from .checks import plan_warnings

    plan = _load(args.plan)
    print(f"{args.plan}: valid")
    for w in plan_warnings(plan):
        print(f"  warning: {w}")
    return EXIT_OK


def cmd_explain(args) -> int:
    from . import estimate

    est = estimate(_load(args.plan))
    if args.sensitivity:
        from .analysis import sensitivity

        keys = [args.quantity] if args.quantity else [k for k in ("time.days", "cost.total", "memory.per_gpu.total") if k in est.results]
        for key in keys:
            print(f"{key} = {est.value(key):,.6g} {est[key].unit}: elasticity d log y / d log x (+1 % input → % output)")
            for name, value, meaning in sensitivity(est, key, top=args.top):
                print(f"  {value:+8.3f}  {name:<10} {meaning}")
        return EXIT_OK
    if args.quantity:
        print(est[args.quantity].explain())
    else:
        for key in est.keys():
            print(f"{key:<45} {est[key].value!s:>24}  {est[key].unit}")
    return EXIT_OK


def cmd_catalog(args) -> int:
    from . import catalog
    from .serialize import unstructure

    cat = catalog.default()
    entries = {"gpus": cat.gpus, "models": cat.models, "links": cat.links, "prices": cat.prices}[args.what]
    if args.json:
        print(json.dumps({k: unstructure(v) if hasattr(v, "__attrs_attrs__") else v for k, v in entries.items()}, indent=2, default=str))
        return EXIT_OK
    for key, value in entries.items():
        print(f"{key:<24} {_describe(args.what, value)}")
    return EXIT_OK


def _describe(what: str, v: Any) -> str:
    if what == "gpus":
        bf16 = v.peak.get("bf16")
        return f"{v.name:<40} {v.memory / 2**30:6.0f} GiB  {(bf16 or 0) / 1e12:7.1f} TFLOP/s bf16  NVLink domain {v.nvlink_domain}"
    if what == "links":
        return f"{v.name:<40} {v.bandwidth / 1e9:8.2f} GB/s per direction  ({v.kind})"
    if what == "models":
        from .estimate import param_counts

        pc = param_counts(v)
        return f"{v.name:<32} {pc.total / 1e9:9.2f} B total  {pc.active / 1e9:9.2f} B active"
    return f"{v.gpu:<16} {v.kind:<9} {v.amount:>12,.2f} {v.currency} per {v.per}  ({v.date})"


def cmd_show(args) -> int:
    from . import catalog
    from .estimate import param_counts
    from .serialize import unstructure

    model = catalog.model(args.id)
    d = unstructure(model)
    for k, v in d.items():
        print(f"{k:<18} {v}")
    pc = param_counts(model)
    print("parameters")
    for k in ("total", "active", "embedding", "lm_head", "attention", "mlp", "experts", "shared_experts", "router", "norms", "mtp"):
        print(f"  {k:<16} {getattr(pc, k):>20,}")
    return EXIT_OK


def cmd_search(args) -> int:
    from . import units
    from .search import search

    plan = _load(args.plan)
    deadline = units.parse(args.deadline, "seconds", what="--deadline") if args.deadline else None
    budget = None
    if args.budget:
        amount, _currency = units.parse_money(args.budget, what="--budget")
        budget = amount
    result = search(
        plan,
        objective=args.objective,
        top=args.top,
        gpus=args.gpus,
        max_gpus=args.max_gpus,
        gpu_ids=args.gpu.split(",") if args.gpu else None,
        deadline_seconds=deadline,
        budget=budget,
        unsupported=args.unsupported,
    )
    if getattr(args, "plot", None) and result["layouts"]:
        from .plots import pareto

        pareto(result, args.plot)
    if args.json:
        print(json.dumps({k: result[k] for k in ("layouts", "evaluated", "feasible", "unsupported", "seconds", "notes")} | {"pareto": result["pareto"]}, indent=2, default=str))
        return EXIT_OK if result["layouts"] else EXIT_NOFIT
    flagged, policy = result["unsupported"]["feasible"], result["unsupported"]["policy"]
    aside = {"last": "ranked last", "drop": "left out", "rank": "ranked with the others"}[policy]
    print(f"evaluated {result['evaluated']:,} layouts in {result['seconds']:.2f} s; {result['feasible']:,} feasible"
          + (f", {flagged:,} of them unsupported by the usual frameworks ({aside}; --unsupported last|drop|rank)" if flagged else ""))
    for note in result["notes"]:
        print(f"note: {note}")
    if not result["layouts"]:
        print("no layout fits the constraints")
        return EXIT_NOFIT
    print(_search_table(result["layouts"]))
    print(f"Pareto front (time vs cost vs GPUs): {len(result['pareto'])} layouts")
    return EXIT_OK


def _search_table(layouts: list[dict[str, Any]]) -> str:
    """The ranked layouts (``!``: unsupported by the usual frameworks), then each warning
    once with the numbers of the layouts that carry it."""
    from .search import recompute_label

    n = max(2, len(str(len(layouts))))
    out = [
        f"{'#':>{n + 1}} {'gpu':<14}{'gpus':>6}{'tp':>4}{'pp':>4}{'v':>3}{'cp':>4}{'ep':>4}{'dp':>6}{'zero':>5}{'mb':>4}  "
        f"{'recompute':<10}{'schedule':<12}{'days':>9}{'MFU':>7}{'mem GiB':>9}{'cost':>14}"
    ]
    for i, r in enumerate(layouts, 1):
        p = r["parallelism"]
        cost = r["cost"]["total"]
        out.append(
            f"{i:>{n}}{'!' if r['unsupported'] else ' '} {r['cluster']['gpu']:<14}{r['cluster']['gpus']:>6}{p['tp']:>4}{p['pp']:>4}{(p['virtual_stages'] or 1):>3}{p['cp']:>4}{p['ep']:>4}{p['dp']:>6}{p['zero']:>5}{p['micro_batch']:>4}  "
            f"{recompute_label(p):<10}{p['pp_schedule']:<12}{r['time']['days']:>9.2f}{r['time']['mfu']:>7.1%}{r['memory']['per_gpu']['total'] / 2**30:>9.1f}"
            f"{(f'{cost:,.0f} ' + r['cost']['currency']) if cost is not None else '—':>14}"
        )
    carriers: dict[str, list[int]] = {}
    for i, r in enumerate(layouts, 1):
        for w in r["warnings"]:
            carriers.setdefault(w, []).append(i)
    if carriers:
        out.append("warnings (! = the layout is unsupported by the usual frameworks):" if any(r["unsupported"] for r in layouts) else "warnings:")
        bad = {w for r in layouts for w in r["unsupported"]}
        for w, nums in carriers.items():
            who = "all" if len(nums) == len(layouts) and len(layouts) > 1 else ", ".join(map(str, nums))
            out.append(f"  {who:<10}{'!' if w in bad else ' '} {w}")
    return "\n".join(out)


def cmd_validate_runs(args) -> int:
    from . import validation

    result = validation.validate(spread=not args.no_spread)
    if args.json:
        print(json.dumps(validation.to_json(result), indent=2, ensure_ascii=False))
    else:
        print(validation.text_table(result))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="llmplan", description="Plan LLM training and serving: memory, time, cost.")
    parser.add_argument("--version", action="version", version=f"llmplan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("estimate", help="evaluate a plan")
    p.add_argument("plan")
    p.add_argument("--json", action="store_true", help="print the JSON report (plan-format contract)")
    p.add_argument("--plot", metavar="PATH", help="also draw the memory breakdown to PATH (.png/.svg/.pdf; needs llmplan[plot])")
    p.set_defaults(func=cmd_estimate)
    p = sub.add_parser("validate", help="check a plan and list every problem")
    p.add_argument("plan")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("explain", help="show a quantity's formula, values and result")
    p.add_argument("plan")
    p.add_argument("quantity", nargs="?")
    p.add_argument("--sensitivity", action="store_true", help="rank every input by its elasticity")
    p.add_argument("--top", type=int, default=12, help="with --sensitivity: how many inputs")
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser("search", help="search every valid layout and rank them")
    p.add_argument("plan")
    p.add_argument("--json", action="store_true")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--objective", choices=["time", "cost", "gpus"], default="time")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--gpus", type=int, help="search layouts of exactly N GPUs")
    g.add_argument("--max-gpus", type=int, help="also choose the GPU count, up to N")
    p.add_argument("--gpu", help="comma-separated catalog GPU ids to compare")
    p.add_argument("--deadline", help='e.g. "30 days"')
    p.add_argument("--budget", help='e.g. "2M USD"')
    p.add_argument("--unsupported", choices=["last", "drop", "rank"], default="last",
                   help="layouts the usual frameworks do not run (ZeRO-2/3 with pp, DualPipe with < 2·pp micro-batches, "
                        "selective recompute under framework hf): rank them last (default), drop them, or rank them with the others")
    p.add_argument("--plot", metavar="PATH", help="also draw days vs cost of the layouts found to PATH (needs llmplan[plot])")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("validate-runs", help="predicted vs published for the bundled published training runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-spread", action="store_true", help="skip the spread over alternative layouts")
    p.set_defaults(func=cmd_validate_runs)
    p = sub.add_parser("catalog", help="list bundled GPUs, models, links or prices")
    p.add_argument("what", choices=["gpus", "models", "links", "prices"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_catalog)
    p = sub.add_parser("show", help="show a catalog entry")
    p.add_argument("kind", choices=["model"])
    p.add_argument("id")
    p.set_defaults(func=cmd_show)
    from .calibrate import add_cli as _add_calibrate
    from .capabilities import add_cli as _add_capabilities

    _add_capabilities(sub)
    _add_calibrate(sub)
    from .inverse import add_cli as _add_inverse

    _add_inverse(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import LlmplanError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LlmplanError as exc:
        print(f"error: {exc}" if "\n" not in str(exc) else f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:  # pragma: no cover
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
