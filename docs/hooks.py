"""MkDocs hooks for the llmplan site (registered under ``hooks:`` in ``mkdocs.yml``).

* ``formulas.md``: the marker ``<!-- llmplan:formulas -->`` is replaced, at build time,
  by the symbol table (``llmplan.symbols.TABLE``), every registered formula
  (``llmplan.formulas.REGISTRY``) rendered with ``sympy.latex`` for representative
  models, and the definition of every reported quantity
  (``llmplan.estimate.definitions(plan).items``) for representative plans.
  Nothing on that page is typed by hand, so it cannot drift from the code.
* ``plan-file.md``: ``<!-- llmplan:precision-tables -->`` becomes the precision
  presets, bytes per dtype and optimizer-state tables from ``llmplan.plan``; the
  page is then checked to mention every field of every plan class (a warning, so a
  ``--strict`` build fails when a new key is undocumented).
* ``catalog.md``: ``<!-- llmplan:catalog-tables -->`` becomes the bundled catalog
  (``llmplan.catalog.default()``): GPUs, links, models with exact parameter counts, prices.
* ``changelog.md``: ``<!-- llmplan:changelog -->`` becomes ``CHANGELOG.md``.
* Every page: Sphinx roles left in docstrings (``:func:`x```) are shown as plain code.

Each build imports llmplan afresh (``mkdocs serve`` rebuilds when ``llmplan/`` changes).

Any failure to import llmplan or to render raises :class:`mkdocs.exceptions.PluginError`:
the build stops rather than publishing an empty page.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any, Callable

from mkdocs.exceptions import PluginError
from mkdocs.plugins import get_plugin_logger

log = get_plugin_logger("llmplan-docs")

FORMULAS_MARKER = "<!-- llmplan:formulas -->"
PRECISION_MARKER = "<!-- llmplan:precision-tables -->"
CHANGELOG_MARKER = "<!-- llmplan:changelog -->"
CATALOG_MARKER = "<!-- llmplan:catalog-tables -->"

_ROOT: Path | None = None


# ---------------------------------------------------------------------------------------
# MkDocs events
# ---------------------------------------------------------------------------------------


def on_config(config):
    """Make the repository importable (``mkdocs serve`` without an installed package)."""
    global _ROOT
    _ROOT = Path(config.config_file_path).resolve().parent
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    return config


def on_pre_build(config) -> None:
    """Forget llmplan modules imported by a previous build, so a rebuild sees new code."""
    for name in [m for m in sys.modules if m == "llmplan" or m.startswith("llmplan.")]:
        del sys.modules[name]


def on_page_markdown(markdown: str, page, config, files) -> str:
    src = page.file.src_uri
    if src == "formulas.md":
        return _replace(markdown, FORMULAS_MARKER, render_formulas, src)
    if src == "plan-file.md":
        markdown = _replace(markdown, PRECISION_MARKER, render_precision_tables, src)
        check_plan_file_keys(markdown)
        return markdown
    if src == "catalog.md":
        return _replace(markdown, CATALOG_MARKER, render_catalog_tables, src)
    if src == "changelog.md":
        return _replace(markdown, CHANGELOG_MARKER, render_changelog, src)
    return markdown


_SPHINX_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):<code>(~?)([^<]*)</code>")


def on_page_content(html: str, page, config, files) -> str:
    """Docstrings use Sphinx roles (``:func:`estimate```); show them as plain code."""

    def code(match: re.Match) -> str:
        tilde, target = match.groups()
        return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"

    return _SPHINX_ROLE.sub(code, html)


def _replace(markdown: str, marker: str, render: Callable[[], str], src: str) -> str:
    if marker not in markdown:
        raise PluginError(f"docs/hooks.py: {src} lacks the marker {marker}")
    try:
        generated = render()
    except PluginError:
        raise
    except Exception as exc:  # an import or rendering failure must stop the build
        raise PluginError(f"docs/hooks.py: cannot generate {src}: {type(exc).__name__}: {exc}") from exc
    if not generated.strip():
        raise PluginError(f"docs/hooks.py: generated content for {src} is empty")
    return markdown.replace(marker, generated)


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PluginError(
            f"docs/hooks.py: cannot import {name} ({exc}); build from the repository root "
            "with the package importable (PYTHONPATH=. or pip install -e .)"
        ) from exc


# ---------------------------------------------------------------------------------------
# LaTeX names: one readable spelling per symbol name
# ---------------------------------------------------------------------------------------

_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "lambda", "mu",
    "rho", "sigma", "tau", "phi", "omega",
}


def _tex_part(part: str) -> str:
    if part in _GREEK:
        return "\\" + part
    if len(part) == 1:
        return part
    return "\\mathrm{" + part.replace("_", "\\_") + "}"


def tex_name(name: str) -> str:
    """``a_kv`` → ``a_{\\mathrm{kv}}``, ``eta_gemm`` → ``\\eta_{\\mathrm{gemm}}``, ``MFU`` → ``\\mathrm{MFU}``.

    sympy's own name parsing reads modifier suffixes (``W_hbm`` would print as a bold
    *h*), so every symbol gets an explicit spelling: base before the first ``_``,
    the rest as an upright subscript.
    """
    base, _, sub = name.partition("_")
    sub = sub.strip("_")
    tex = _tex_part(base)
    if sub:
        sub_tex = ",".join(_tex_part(p) if p in _GREEK else p for p in sub.split("_"))
        tex += "_{" + (sub_tex if len(sub) == 1 else "\\mathrm{" + sub_tex + "}") + "}"
    if name.endswith("_"):
        tex += "'"  # a quantity symbol that shadows an input symbol (M_cap_ vs M_cap)
    return tex


def _latex(expr, names: dict) -> str:
    import sympy

    free = getattr(expr, "free_symbols", set())
    symbol_names = {s: names.get(s.name) or tex_name(s.name) for s in free}
    return sympy.latex(expr, symbol_names=symbol_names)


def _text(text: Any) -> str:
    """Plain text from the code made safe for Markdown: ``<``, ``>`` escaped outside code spans."""
    parts = re.split(r"(`+[^`]*`+)", str(text))
    return "".join(
        part if part.startswith("`") else part.replace("<", "&lt;").replace(">", "&gt;")
        for part in parts
    )


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return _text(text).replace("|", "\\|").replace("\n", " ").strip() or "—"


def _sentence(text: str) -> str:
    """``"model FLOPs"`` → ``"Model FLOPs."`` (table-cell safe)."""
    text = _cell(text)
    if text == "—":
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    para = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return _text(" ".join(line.strip() for line in para.splitlines()))


def _math_block(tex: str) -> str:
    return f"$$\n{tex}\n$$"


# ---------------------------------------------------------------------------------------
# Representative objects
# ---------------------------------------------------------------------------------------


def representative_models():
    """(label, model) pairs the registered model formulas are rendered for."""
    model = _import("llmplan.model")
    dense = model.Dense(
        name="Llama-3-8B-like dense model",
        layers=32, hidden=4096, heads=32, kv_heads=8, ffn=14336, vocab=128256,
    )
    moe = model.MoE(
        name="DeepSeek-V3-like MoE with MLA",
        layers=61, hidden=7168, heads=128, ffn=18432, vocab=129280, mtp_layers=1,
        moe=model.Experts(experts=256, top_k=8, shared_experts=1, expert_ffn=2048, dense_layers=3),
        mla=model.MLA(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128),
    )
    windowed = model.Dense(
        name="Gemma-3-1B-like model with sliding-window layers",
        layers=26, hidden=1152, heads=4, kv_heads=1, head_dim=256, ffn=6912, vocab=262144, mlp="geglu",
        qk_norm="head", sandwich_norm=True, tied_embeddings=True, sliding_window=512, sliding_layers=22,
    )
    return [
        ("Dense, GQA, SwiGLU (`Dense(layers=32, hidden=4096, heads=32, kv_heads=8, ffn=14336, vocab=128256)`)", dense),
        ("MoE with MLA and shared experts (DeepSeek-V3 shape: 256 routed experts, top-8, 1 shared, 3 dense layers, 1 MTP module)", moe),
        ("Dense with sliding-window layers and sandwich norms (Gemma 3 1B shape: a window of 512 on 22 of 26 layers)", windowed),
    ]


def _hardware():
    """H100 SXM, NVLink 4, InfiniBand NDR: from the catalog when it exists, else inline.

    Definitions depend only on a plan's *structure*, so the numbers here do not
    change any formula; they only make the plans valid.
    """
    try:
        catalog = importlib.import_module("llmplan.catalog")
    except ModuleNotFoundError as exc:
        if exc.name != "llmplan.catalog":
            raise
        catalog = None
    if catalog is not None:
        return catalog.gpu("h100-sxm"), catalog.link("nvlink4"), catalog.link("ib-ndr")
    hw = _import("llmplan.hardware")
    gpu = hw.GPU(
        id="h100-sxm", name="NVIDIA H100 SXM5 80GB", memory=80 * 2**30, memory_bandwidth=3.35e12,
        peak={"bf16": 989.4e12, "fp16": 989.4e12, "fp8": 1978.9e12}, nvlink_domain=8,
        gpus_per_node=8, intra_node="nvlink4", inter_node="ib-ndr", tdp=700, arch="Hopper",
    )
    nvlink = hw.Link(id="nvlink4", name="NVLink 4", bandwidth=450e9, latency=0.6e-6, kind="nvlink", efficiency=0.824)
    ib = hw.Link(id="ib-ndr", name="InfiniBand NDR", bandwidth=50e9, latency=2.7e-6, kind="network", efficiency=0.94)
    return gpu, nvlink, ib


def representative_plans():
    """(anchor prefix, title, plan) for the quantity definitions."""
    llmplan = _import("llmplan")
    (_, dense), (_, moe), _ = representative_models()
    gpu, nvlink, ib = _hardware()
    cost = llmplan.Cost(
        gpu_hour=(2.0, "USD"),
        on_prem=llmplan.OnPrem(gpu_price=(25000.0, "USD"), years=3, power_price=(0.12, "USD"), pue=1.3),
    )
    dense_plan = llmplan.Plan(
        name="representative dense pre-training",
        model=dense,
        method=llmplan.Method(kind="pretrain", tokens=15 * 10**12, seq_len=8192, global_batch=512),
        cluster=llmplan.Cluster(gpu=gpu, gpus=256, intra_node=nvlink, inter_node=ib),
        parallelism=llmplan.Parallelism(tp=8, pp=4, zero=1, recompute="selective"),
        cost=cost,
    )
    moe_plan = llmplan.Plan(
        name="representative MoE pre-training",
        model=moe,
        method=llmplan.Method(kind="pretrain", tokens=15 * 10**12, seq_len=4096, global_batch=1024),
        cluster=llmplan.Cluster(gpu=gpu, gpus=2048, intra_node=nvlink, inter_node=ib),
        parallelism=llmplan.Parallelism(tp=8, pp=4, ep=8, zero=1, recompute="selective"),
        cost=cost,
    )
    serve_plan = llmplan.Plan(
        name="representative serving",
        model=dense,
        method=llmplan.Method(kind="inference", seq_len=4096, batch=8, new_tokens=512),
        cluster=llmplan.Cluster(gpu=gpu, gpus=8, intra_node=nvlink, inter_node=ib),
        parallelism=llmplan.Parallelism(tp=8),
    )
    single = llmplan.Cluster(gpu=gpu, gpus=1, intra_node=nvlink, inter_node=ib)
    finetune_plan = llmplan.Plan(
        name="representative full fine-tune",
        model=dense,
        method=llmplan.Method(kind="full-finetune", tokens=10**8, seq_len=4096, global_batch=16),
        cluster=single,
        parallelism=llmplan.Parallelism(recompute="full"),
    )
    qlora_plan = llmplan.Plan(
        name="representative QLoRA fine-tune",
        model=dense,
        method=llmplan.Method(
            kind="qlora", tokens=10**8, seq_len=4096, global_batch=16,
            lora=llmplan.LoRA(rank=64, targets="all-linear", base_bits=4),
        ),
        cluster=single,
        parallelism=llmplan.Parallelism(recompute="full"),
    )
    return {
        "dense": dense_plan,
        "moe": moe_plan,
        "serve": serve_plan,
        "finetune": finetune_plan,
        "qlora": qlora_plan,
    }


# ---------------------------------------------------------------------------------------
# Calling registered formulas
# ---------------------------------------------------------------------------------------

#: Symbols for the non-model positional arguments of generic formulas (comm.*).
PARAM_SYMBOLS: dict[str, tuple[str, str, str]] = {
    # parameter name: (symbol name, LaTeX, meaning with unit)
    "n": ("n", "n", "GPUs in the collective's group"),
    "size": ("M", "M", "buffer size, bytes"),
    "alpha": ("alpha", "\\alpha", "latency per message step, s"),
    "bw": ("beta", "\\beta", "bandwidth per GPU per direction, B/s"),
    "rows": ("M_g", "M", "output rows of a GEMM (tokens)"),
    "cols": ("N_g", "N", "output columns of a GEMM (features)"),
    "inner": ("K_g", "K", "reduction length of a GEMM"),
    "count": ("n_g", "n_g", "GEMMs of this shape launched together"),
    "T_dp": ("T_dp", "T_{dp}", "data-parallel traffic per step, s"),
    "T_cp": ("T_cp", "T_{cp}", "context-parallel traffic per step, s"),
    "T_rep": ("T_rep", "T_{rep}", "hybrid sharding's replica all-reduce, part of T_dp, s"),
    "T_comp": ("T_comp", "T_{comp}", "compute time per step, s"),
    "T_dpx": ("T_dpx", "T_{dpx}", "exposed data-parallel traffic per step, s"),
    "T_cpx": ("T_cpx", "T_{cpx}", "exposed context-parallel traffic per step, s"),
    "T_fwd": ("T_fwd", "T_{fwd}", "data-parallel traffic run in every forward pass, per step, s"),
    "T_bwd": ("T_bwd", "T_{bwd}", "data-parallel traffic run in every backward pass, per step, s"),
    "T_grad": ("T_grad", "T_{grad}", "accumulated gradients reduced once per step, s"),
    "T_gather": ("T_gather", "T_{gather}", "updated parameters gathered once per step, s"),
    "T_pass": ("T_pass", "T_{pass}", "the step's critical path: compute and exposed TP, CP, EP and PP traffic, s"),
    "m": ("m", "m", "micro-batches per step"),
    "f_fwd": ("f_fwd", "f_{fwd}", "the forward pass's share of the step's FLOPs"),
    "T_c": ("T_c", "T_{c}", "one all-gather or reduce-scatter, s"),
    "T_g": ("T_g", "T_{g}", "the GEMM it feeds or drains, s"),
    "layers": ("L_st", "L_{st}", "layers on the pipeline stage"),
}

#: Arguments that select a *case* (positional or keyword): the baseline value, and the
#: variants shown one at a time. A variant may carry a predicate on the model
#: (``moe_layer=True`` needs a MoE model). Values may be callables (evaluated lazily).
CASE_BASELINE: dict[str, Any] = {
    "tp_sp": True,
    "flash": True,
    "recompute": "none",
    "moe_layer": False,
    "targets": lambda: _import("llmplan.plan").LoRA().targets,
}
CASE_VARIANTS: dict[str, list[tuple[Any, Callable[[Any], bool] | None]]] = {
    "flash": [(False, None)],
    "recompute": [("selective", None), ("full", None)],
    "tp_sp": [(False, None)],
    "moe_layer": [(True, lambda m: m.is_moe)],
    "targets": [("all-linear", None)],
}
CASE_MEANING = {
    "tp_sp": "no sequence parallelism: norm and dropout tensors are not divided by t",
    "flash": "no FlashAttention: the s² attention scores are stored",
    "recompute": "activation recomputation",
    "moe_layer": "a MoE layer instead of a dense-MLP layer",
    "targets": "adapters on every linear layer of the blocks",
}


def _case_value(value: Any) -> Any:
    return value() if callable(value) else value


def _same(a, b) -> bool:
    """Whether two sympy expressions are the same formula."""
    import sympy

    if a == b:
        return True
    try:
        return sympy.expand(a - b) == 0
    except TypeError:  # e.g. Piecewise against a plain expression
        return False


def _fmt_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _render_formula(info, models, names: dict, skipped: list[str]) -> str:
    import sympy

    func = info.func
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    takes_model = bool(params) and params[0].name == "model"
    if takes_model:
        params = params[1:]

    args: list[Any] = []  # positional symbols
    arg_tex: list[str] = []
    where: list[str] = []
    case_names: list[str] = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in CASE_BASELINE:
            case_names.append(p.name)
        elif p.name in PARAM_SYMBOLS and p.kind != p.KEYWORD_ONLY:
            sym_name, tex, meaning = PARAM_SYMBOLS[p.name]
            names.setdefault(sym_name, tex)
            args.append(sympy.Symbol(sym_name, positive=True))
            arg_tex.append(tex)
            where.append(f"${tex}$ = {meaning} (argument `{p.name}`)")
        elif p.default is not p.empty:
            continue  # its default is a representative value
        else:
            skipped.append(f"`{info.name}{sig}`: no representative value for argument `{p.name}`")
            return ""
    baseline = {k: _case_value(CASE_BASELINE[k]) for k in case_names}

    head = [f"#### `{info.name}` {{ #formula-{info.name} }}", ""]
    summary = _first_paragraph(func.__doc__)
    if summary:
        head += [summary, ""]
    head += [f"*Source:* {_text(info.source)}  ", f"*Code:* `{func.__module__}.{func.__qualname__}{sig}`", ""]
    if where:
        head += ["where " + "; ".join(where) + ".", ""]

    lhs = "\\operatorname{" + info.name.split(".", 1)[-1].replace("_", "\\_") + "}"
    if arg_tex:
        lhs += "(" + ", ".join(arg_tex) + ")"

    errors = _import("llmplan.errors")

    def call(model, cases):
        positional = ([model] if takes_model else []) + args
        try:
            return func(*positional, **cases), None
        except NotImplementedError as exc:
            return None, f"not modelled: {exc}"
        except errors.PlanError as exc:  # the case does not apply to this model
            first = str(exc.problems[0]) if exc.problems else str(exc)
            more = len(exc.problems) - 1
            return None, first + (f"; and {more} more" if more > 0 else "")

    body: list[str] = []
    targets = models if takes_model else [(None, None)]
    if takes_model and len(models) > 1 and not case_names:
        first = [call(m, baseline)[0] for _, m in models]
        if all(first[0] is not None and f is not None and _same(f, first[0]) for f in first[1:]):
            targets = [("Both representative models", models[0][1])]
    for label, model in targets:
        if label:
            body += [f"**{label}**", ""]
        base_expr, why = call(model, baseline)
        if base_expr is None:
            body += [f"Baseline `{_fmt_kwargs(baseline)}`: does not apply ({why})." if case_names
                     else f"Does not apply: {why}.", ""]
            continue
        if case_names:
            body += [f"Baseline `{_fmt_kwargs(baseline)}`:", ""]
        body += [_math_block(f"{lhs} = {_latex(base_expr, names)}"), ""]
        seen = [(base_expr, "the baseline")]
        for name in case_names:
            for value, applies in CASE_VARIANTS.get(name, []):
                if applies is not None and not applies(model):
                    continue
                cases = {**baseline, name: _case_value(value)}
                expr, why = call(model, cases)
                meaning = CASE_MEANING.get(name)
                intro = f"With `{name}={cases[name]!r}`" + (f" ({meaning})" if meaning else "")
                if expr is None:
                    body += [f"{intro}: does not apply ({why}).", ""]
                    continue
                same = next((lbl for e, lbl in seen if _same(expr, e)), None)
                if same is not None:
                    body += [f"{intro}: identical to {same}.", ""]
                    continue
                body += [f"{intro}:", "", _math_block(f"{lhs} = {_latex(expr, names)}"), ""]
                seen.append((expr, f"`{name}={cases[name]!r}`"))
    return "\n".join(head + body)


# ---------------------------------------------------------------------------------------
# The formulas page
# ---------------------------------------------------------------------------------------

CONCERN_ORDER = ["params", "adapters", "flops", "memory", "comm", "time", "money", "serving", "scaling"]
CONCERN_TITLES = {
    "params": "Parameters (`llmplan.formulas.params`)",
    "adapters": "LoRA and QLoRA adapters (`llmplan.formulas.adapters`)",
    "flops": "FLOPs (`llmplan.formulas.flops`)",
    "memory": "Memory (`llmplan.formulas.memory`)",
    "comm": "Communication (`llmplan.formulas.comm`)",
    "time": "Time (`llmplan.formulas.time`)",
    "money": "Money and energy (`llmplan.formulas.money`)",
    "serving": "Serving (`llmplan.formulas.serving`)",
    "scaling": "Scaling laws (`llmplan.formulas.scaling`)",
}
KEY_GROUP_TITLES = {
    "flops": "FLOPs",
    "memory": "Memory",
    "communication": "Communication",
    "time": "Time",
    "energy": "Energy",
    "cost": "Cost",
    "throughput": "Throughput",
}


def _import_all_formulas():
    formulas = _import("llmplan.formulas")
    for mod in pkgutil.iter_modules(formulas.__path__):
        _import(f"llmplan.formulas.{mod.name}")
    return formulas


def render_symbol_table(names: dict) -> str:
    symbols = _import("llmplan.symbols")
    if not symbols.TABLE:
        raise PluginError("llmplan.symbols.TABLE is empty")
    rows = ["| Symbol | Name in code | Meaning | Unit |", "|---|---|---|---|"]
    for name, q in symbols.TABLE.items():
        tex = tex_name(name)
        names[name] = tex
        rows.append(f"| ${tex}$ | `{name}` | {_cell(q.description)} | {_cell(q.unit)} |")
    return "\n".join(rows)


def render_registry(names: dict) -> str:
    formulas = _import_all_formulas()
    registry = formulas.REGISTRY
    if not registry:
        raise PluginError("llmplan.formulas.REGISTRY is empty")
    models = representative_models()
    concerns = sorted({i.concern for i in registry.values()},
                      key=lambda c: (CONCERN_ORDER.index(c) if c in CONCERN_ORDER else len(CONCERN_ORDER), c))
    out: list[str] = []
    out += ["The model formulas are rendered for two representative models:", ""]
    out += [f"- {label}" for label, _ in models]
    out += [""]
    skipped: list[str] = []
    rendered = 0
    for concern in concerns:
        infos = [i for i in registry.values() if i.concern == concern]
        out += [f"### {CONCERN_TITLES.get(concern, f'`{concern}`')} {{ #formulas-{concern} }}", ""]
        for info in infos:
            text = _render_formula(info, models, names, skipped)
            if text:
                out += [text, ""]
                rendered += 1
    if rendered == 0:
        raise PluginError("no registered formula could be rendered")
    if skipped:
        out += ["### Not rendered here { #not-rendered }", "",
                "These registered formulas need arguments this page has no representative value for:", ""]
        out += [f"- {s}" for s in skipped]
        out += [""]
    return "\n".join(out)


def _definition_blocks(defs, names: dict, anchor_prefix: str, only: set[str] | None = None) -> list[str]:
    out: list[str] = []
    groups: dict[str, list] = {}
    for key, q in defs.items.items():
        if only is None or key in only:
            groups.setdefault(key.split(".", 1)[0], []).append((key, q))
    for top, items in groups.items():
        out += [f"### {KEY_GROUP_TITLES.get(top, top)} {{ #{anchor_prefix}{top} }}", ""]
        out += _definition_items(items, names, anchor_prefix)
    return out


def _definition_items(items, names: dict, anchor_prefix: str) -> list[str]:
    out: list[str] = []
    for key, q in items:
        names.setdefault(q.symbol.name, tex_name(q.symbol.name))
        out += [
            f"#### `{key}` {{ #{anchor_prefix}{key} }}",
            "",
            f"{_sentence(q.description)} *Unit:* {q.unit}. *Symbol:* ${names[q.symbol.name]}$.  ",
            f"*Source:* {_text(q.source) if q.source and q.source != '-' else 'definition'}",
            "",
            _math_block(f"{names[q.symbol.name]} = {_latex(q.expr, names)}"),
            "",
        ]
    return out


def _plan_summary(plan) -> str:
    par, meth = plan.parallelism, plan.method
    gpus = plan.cluster.gpus
    layout = f"tp = {par.tp}, pp = {par.pp}" + (f", ep = {par.ep}" if par.ep > 1 else "")
    layout += f", zero = {par.zero}, recompute = \"{par.recompute}\""
    if meth.training:
        return (f"{plan.model.name}; `kind = \"{meth.kind}\"`, seq_len = {meth.seq_len}, "
                f"global_batch = {meth.global_batch}; {gpus} × {plan.cluster.gpu.id}; {layout}")
    return (f"{plan.model.name}; `kind = \"inference\"`, seq_len = {meth.seq_len}, batch = {meth.batch}, "
            f"new_tokens = {meth.new_tokens}; {gpus} × {plan.cluster.gpu.id}; tp = {par.tp}")


def _changed(defs, base) -> set[str]:
    return {
        key for key, q in defs.items.items()
        if key not in base.items or not _same(q.expr, base.items[key].expr)
    }


def render_definitions(names: dict) -> str:
    estimate = _import("llmplan.estimate")
    plans = representative_plans()
    dense_defs = estimate.definitions(plans["dense"])
    if not dense_defs.items:
        raise PluginError("llmplan.estimate.definitions returned no quantities")
    out = ["## Quantity definitions: training { #definitions }", ""]
    out += [
        "Every quantity `llmplan estimate` computes, grouped by key prefix and in definition "
        f"order within a group, as defined for this plan: {_plan_summary(plans['dense'])}; "
        "cloud and on-prem prices. A formula may name the symbols of quantities defined "
        "before it. Which terms appear depends on the plan's structure (ZeRO stage, "
        "recompute mode, schedule …); `llmplan explain PLAN KEY` prints the definition for "
        "your plan, with the numbers substituted.",
        "",
    ]
    out += _definition_blocks(dense_defs, names, "")

    moe_defs = estimate.definitions(plans["moe"])
    changed = _changed(moe_defs, dense_defs)
    out += ["## Quantity definitions: what changes for MoE with MLA { #moe }", ""]
    out += [
        f"The same keys for {_plan_summary(plans['moe'])}. Only the definitions whose formula "
        "differs from the dense plan above are repeated.",
        "",
    ]
    out += _definition_blocks(moe_defs, names, "moe-", only=changed) if changed else ["(none)", ""]

    if "qlora" in plans:
        base = estimate.definitions(plans["finetune"])
        qlora_defs = estimate.definitions(plans["qlora"])
        changed = _changed(qlora_defs, base)
        out += ["## Quantity definitions: what changes for LoRA and QLoRA { #lora }", ""]
        out += [
            f"For {_plan_summary(plans['qlora'])}, rank 64 on all linear layers, 4-bit NF4 base. "
            f"Only the definitions whose formula differs from full fine-tuning with the same "
            f"layout ({_plan_summary(plans['finetune'])}) are shown.",
            "",
        ]
        out += _definition_blocks(qlora_defs, names, "lora-", only=changed) if changed else ["(none)", ""]

    serve_defs = estimate.definitions(plans["serve"])
    out += ["## Quantity definitions: serving { #inference }", ""]
    out += [f"The quantities defined for a serving plan: {_plan_summary(plans['serve'])}.", ""]
    out += _definition_blocks(serve_defs, names, "inference-")
    return "\n".join(out)


def render_formulas() -> str:
    llmplan = _import("llmplan")
    names: dict[str, str] = {}
    parts = [
        f"*Generated from llmplan {llmplan.__version__} when this site was built.*",
        "",
        "## Symbols { #symbols }",
        "",
        "Every input symbol, from `llmplan.symbols.TABLE`. Unit `1` means dimensionless; "
        "`B` means bytes.",
        "",
        render_symbol_table(names),
        "",
        "## Formula functions { #registry }",
        "",
        "Every function registered with `@formula` in `llmplan.formulas.REGISTRY`, "
        "as the sympy expression it returns.",
        "",
        render_registry(names),
        "",
        render_definitions(names),
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# Plan-file reference: generated precision tables and a completeness check
# ---------------------------------------------------------------------------------------


def render_precision_tables() -> str:
    plan = _import("llmplan.plan")
    presets = plan.PRECISION_PRESETS
    fields = ["weights", "grads", "master", "optimizer_states", "activations", "compute"]
    out = ["| preset | " + " | ".join(f"`{f}`" for f in fields) + " | model state with `adamw`, bytes/param |",
           "|---|" + "---|" * len(fields) + "---|"]
    for name in presets:
        p = plan.Precision(preset=name, optimizer="adamw")
        state = p.bytes("weights") + p.bytes("grads") + p.bytes("master") + p.optimizer_bytes()
        cells = [p.dtype(f) or "none" for f in fields]
        out.append(f"| `{name}` | " + " | ".join(cells) + f" | {state:g} |")
    out += ["", "Bytes per element of each storage dtype (`llmplan.plan.DTYPE_BYTES`):", "",
            "| dtype | " + " | ".join(f"`{d}`" for d in plan.DTYPE_BYTES) + " |",
            "|---|" + "---|" * len(plan.DTYPE_BYTES),
            "| bytes | " + " | ".join(f"{b:g}" for b in plan.DTYPE_BYTES.values()) + " |",
            "", "Optimizer states per trainable parameter, *excluding* the master copy "
            "(`llmplan.plan.OPTIMIZERS`; bytes = count × bytes of `optimizer_states`, "
            "except `adamw-8bit`: 2 bytes):", "",
            "| `optimizer` | states per parameter |", "|---|---|"]
    out += [f"| `{k}` | {v} |" for k, v in plan.OPTIMIZERS.items()]
    return "\n".join(out)


def check_plan_file_keys(markdown: str) -> None:
    """Warn (fails a strict build) for any plan-class field the page does not mention."""
    import attrs

    plan = _import("llmplan.plan")
    model = _import("llmplan.model")
    hardware = _import("llmplan.hardware")
    classes = [
        model.Model, model.Experts, model.MLA, plan.Method, plan.LoRA, plan.Precision,
        plan.Cluster, hardware.GPU, hardware.Link, plan.Parallelism, plan.Efficiency,
        plan.Cost, plan.OnPrem, plan.Phase, plan.RL,
    ]
    missing = [
        f"{cls.__name__}.{f.name}"
        for cls in classes
        for f in attrs.fields(cls)
        if f"`{f.name}`" not in markdown
    ]
    if missing:
        log.warning("plan-file.md does not document: %s", ", ".join(missing))


# ---------------------------------------------------------------------------------------
# Catalog tables
# ---------------------------------------------------------------------------------------


def _num(value: Any, scale: float = 1.0, fmt: str = ",.4g") -> str:
    if value is None:
        return "—"
    return format(value / scale, fmt)


def render_catalog_tables() -> str:
    catalog = _import("llmplan.catalog")
    estimate = _import("llmplan.estimate")
    cat = catalog.default()
    if not cat.gpus or not cat.links:
        raise PluginError("the bundled catalog has no GPUs or no links")
    out = [
        "### GPUs { #gpus }",
        "",
        "Memory in GiB (2³⁰ bytes); dense peaks in TFLOP/s (10¹² FLOP/s); memory bandwidth "
        "in GB/s (10⁹ bytes/s); TDP in watts.",
        "",
        "| id | name | memory (GiB) | bf16 (TFLOP/s) | fp8 (TFLOP/s) | bandwidth (GB/s) "
        "| NVLink domain | GPUs/node | default links | TDP (W) | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for gid, g in cat.gpus.items():
        out.append(
            f"| `{gid}` | {_cell(g.name)} | {_num(g.memory, 2**30, ',.4g')} "
            f"| {_num(g.peak.get('bf16'), 1e12)} | {_num(g.peak.get('fp8'), 1e12)} "
            f"| {_num(g.memory_bandwidth, 1e9)} | {g.nvlink_domain} | {g.gpus_per_node} "
            f"| `{g.intra_node}`, `{g.inter_node}` | {_num(g.tdp, 1, ',.0f')} | {_cell(g.status)} |"
        )
    out += [
        "",
        "### Links { #links }",
        "",
        "Bandwidth in GB/s (10⁹ bytes/s) **per direction**, per GPU or per network port; "
        "latency in µs.",
        "",
        "| id | name | kind | bandwidth (GB/s) | efficiency | latency (µs) | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for lid, link in cat.links.items():
        out.append(
            f"| `{lid}` | {_cell(link.name)} | {link.kind} | {_num(link.bandwidth, 1e9)} "
            f"| {link.efficiency:g} | {_num(link.latency, 1e-6)} | {_cell(link.status)} |"
        )
    if cat.models:
        out += [
            "",
            "### Models { #models }",
            "",
            "Exact parameter counts (`llmplan.param_counts`), in parameters.",
            "",
            "| id | name | kind | layers | hidden | params.total | params.active |",
            "|---|---|---|---|---|---|---|",
        ]
        for mid, m in cat.models.items():
            pc = estimate.param_counts(m)
            out.append(
                f"| `{mid}` | {_cell(m.name)} | {m.kind} | {m.layers} | {m.hidden} "
                f"| {pc.total:,} | {pc.active:,} |"
            )
    prices = getattr(cat, "prices", {})
    if prices:
        out += [
            "",
            "### Prices { #prices }",
            "",
            "| id | GPU | kind | amount | per | date | condition |",
            "|---|---|---|---|---|---|---|",
        ]
        for pid, p in prices.items():
            out.append(
                f"| `{pid}` | `{p.gpu}` | {p.kind} | {p.amount:,.6g} {p.currency} | {p.per} "
                f"| {p.date} | {p.condition or '—'} |"
            )
    out += ["", "Each entry's `source` and `notes` are in `llmplan catalog … --json`."]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Changelog
# ---------------------------------------------------------------------------------------


def render_changelog() -> str:
    root = _ROOT or Path.cwd()
    path = root / "CHANGELOG.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PluginError(f"docs/hooks.py: cannot read {path}: {exc}") from exc
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]  # the page has its own title
    return "\n".join(lines).strip() + "\n"
