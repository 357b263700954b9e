"""Validation against published runs (llmplan/validation.py): the run definitions build
valid plans that evaluate, nothing is tuned per run, and every copied published number
still equals its source in shared/reference/published.toml.

The accuracy targets themselves (median |error| <= 10 %, every row within 25 %) are
reported by ``python benchmarks/validate_runs.py``, not asserted here.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import attrs
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from llmplan import validation
from llmplan.plan import Efficiency

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT.parent / "shared" / "reference" / "published.toml"
#: published numbers not in the shared file (Llama 3 paper Table 4, llm-foundry's MPT
#: benchmark tables), with their sources
EXTRA = ROOT / "benchmarks" / "published_extra.toml"

RUNS = validation.runs()
IDS = [r.id for r in RUNS]


@pytest.fixture(scope="module")
def published() -> dict:
    if not PUBLISHED.exists():
        pytest.skip(f"{PUBLISHED} not present (shared reference data lives next to the repository)")
    with PUBLISHED.open("rb") as fh:
        return tomllib.load(fh)


def _lookup(data: dict, dotted: str):
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def test_run_ids_are_unique_and_groups_known():
    assert len(IDS) == len(set(IDS))
    assert {r.group for r in RUNS} == {"megatron-table1", "megatron-table2", "production", "llama3-405b-table4",
                                       "olmo-core-h100-bf16", "olmo-core-h100-fp8", "korthikanti-2022",
                                       "flash-attn-a100", "megatron-bridge-h100-fp8"} | set(LLM_FOUNDRY_ROWS)
    assert len([r for r in RUNS if r.group == "megatron-table1"]) == 10


def test_the_brief_s_runs_are_all_there():
    expected = {
        "llama2-7b", "llama2-13b", "llama2-70b", "llama1-65b", "llama3-8b", "llama3-70b",
        "deepseek-v3", "bloom-176b", "opt-175b", "mpt-7b",
        "llama3-405b-8k-8192", "llama3-405b-8k-16384", "llama3-405b-128k-16384",
        "megatron-t2-ptdp-175b-384", "megatron-t2-ptdp-175b-1536", "megatron-t2-ptdp-530b-2240",
    }
    assert expected <= set(IDS)


#: Megatron-LM's Table 2 (Narayanan et al. 2021), every row: (scheme, params, GPUs) ->
#: (micro-batch, TFLOP/s per GPU, days for 300B tokens), typed from the paper's table
TABLE2 = {
    ("ptdp", "175b", 384): (1, 153, 84), ("ptdp", "175b", 768): (1, 149, 43), ("ptdp", "175b", 1536): (1, 141, 23),
    ("ptdp", "530b", 560): (1, 171, 156), ("ptdp", "530b", 1120): (1, 167, 80), ("ptdp", "530b", 2240): (1, 159, 42),
    ("zero3", "175b", 384): (4, 144, 90), ("zero3", "175b", 768): (2, 88, 74), ("zero3", "175b", 1536): (1, 44, 74),
    ("zero3", "530b", 640): (4, 138, 169), ("zero3", "530b", 1120): (2, 98, 137), ("zero3", "530b", 2240): (1, 48, 140),
}


def test_megatron_table2_every_row_is_a_run():
    runs = {r.id: r for r in RUNS if r.group == "megatron-table2"}
    assert len(runs) == len(TABLE2)
    for (scheme, size, gpus), (mb, tflops, days) in TABLE2.items():
        run = runs[f"megatron-t2-{scheme}-{size}-{gpus}"]
        got = {r.key: r.value for r in run.refs}
        assert (got["gpus"], got["micro_batch"], got["tflops_per_gpu"], got["days"]) == (gpus, mb, tflops, days)


def test_megatron_table2_extra_rows_are_the_shared_file_s_notes(published):
    """The seven Table 2 rows published.toml names only in its entries' source notes."""
    import re

    checked = 0
    for key, entry in _extra()["benchmarks"].items():
        if not key.startswith("megatron_table2_"):
            continue
        # "... (via published.toml benchmarks.<entry>.source)": that entry's note names the row
        host = re.search(r"published\.toml benchmarks\.(\w+)\.source", entry["source"]).group(1)
        note = published["benchmarks"][host]["source"]
        gpus, tflops, days = entry["gpu_count"], entry["tflops_per_gpu"], entry["days_for_300b_tokens"]
        # "<gpus> GPUs[ batch …][ mb…]: <tflops> TFLOP/s[,] <days> d", items separated by ";"
        item = next((i for i in re.split(r"[;(]", note) if re.search(rf"\b{gpus} GPUs", i)), None)
        assert item is not None, (key, note)
        assert re.search(rf"\b{tflops:g} TFLOP/s,? {days:g} d(ays)?\b", item), (key, item)
        assert f"mb{entry['micro_batch']}" in item or entry["micro_batch"] == 1, (key, item)
        checked += 1
    assert checked == 7


#: llm-foundry's benchmarking README: rows per table (every row is a run; none left out)
LLM_FOUNDRY_ROWS = {
    "llm-foundry-h100-bf16-large": 18,
    "llm-foundry-h100-bf16": 52,
    "llm-foundry-h100-fp8": 7,
    "llm-foundry-a100-80gb": 61,
    "llm-foundry-a100-40gb": 78,
}
MPT_RUNS = [r for r in RUNS if r.group.startswith("llm-foundry-")]


@functools.lru_cache(maxsize=1)
def _extra() -> dict:
    """benchmarks/published_extra.toml, parsed once (read-only)."""
    with EXTRA.open("rb") as fh:
        return tomllib.load(fh)


def test_llm_foundry_every_row_is_a_run():
    rows = {k for k in _extra()["runs"] if k.startswith("mpt_")}
    keys = [r.id.replace("-", "_") for r in MPT_RUNS]
    assert sorted(keys) == sorted(rows)  # one run per README row, no row left out, no key twice
    for group, n in LLM_FOUNDRY_ROWS.items():
        assert len([r for r in MPT_RUNS if r.group == group]) == n, group


def test_olmo_core_every_row_is_a_run():
    rows = {k for k in _extra()["runs"] if k.startswith("olmo_core_")}
    runs = [r for r in RUNS if r.group.startswith("olmo-core")]
    assert sorted(r.id.replace("-", "_") for r in runs) == sorted(rows) and len(rows) == 8
    for r in runs:  # FP8 rows run torchao float8: llmplan's fp8-mixed; FSDP mixed precision reduces in fp32
        fp8 = _extra()["runs"][r.id.replace("-", "_")]["precision"] == "BF16/FP8"
        assert r.plan.precision.dtype("compute") == ("fp8" if fp8 else "bf16")
        assert r.plan.precision.dtype("grads") == "fp32"


FLASH_ATTN_RUNS = [r for r in RUNS if r.group == "flash-attn-a100"]


def test_flash_attn_gpt3_every_row_is_a_run_with_its_settings():
    rows = {k: v for k, v in _extra()["runs"].items() if k.startswith("flash_attn_gpt3_")}
    assert sorted(r.id.replace("-", "_").replace(".", "p") for r in FLASH_ATTN_RUNS) == sorted(rows) and len(rows) == 5
    for r in FLASH_ATTN_RUNS:
        row = rows[r.id.replace("-", "_").replace(".", "p")]
        # the README's throughput is the node's; the compared number is per GPU
        assert row["tokens_per_sec_per_gpu"] * row["gpus"] == row["tokens_per_sec"]
        assert r.plan.parallelism.zero == (0 if row["data_parallel"] == "ddp" else 1)
        assert r.plan.parallelism.recompute == ("full" if row["activation_checkpointing"] else "none")
        assert r.plan.parallelism.attention_kernel == "flash1"  # the CUDA kernel of November 2022
        assert r.plan.cluster.gpu.id == "a100-80gb-sxm" and r.plan.precision.dtype("compute") == "bf16"


@pytest.mark.parametrize("run", FLASH_ATTN_RUNS, ids=[r.id for r in FLASH_ATTN_RUNS])
def test_flash_attn_gpt3_parameter_count_by_hand(run):
    """GPT-2 blocks with a tied head: V·h + 2048·h (learned positions) + L·(12h² + 13h) + 2h
    (per block: QKV 3h² + 3h, output h² + h, MLP 8h² + 5h, two LayerNorms 4h; the final LayerNorm)."""
    m = _extra()["flash_attn_models"][run.id.replace("flash-attn-", "").replace("-", "_").replace(".", "p")]
    v, h, layers = m["vocab_size"], m["d_model"], m["n_layers"]
    assert v == 50264  # GPT-2's 50257 padded to a multiple of 8
    expected = v * h + 2048 * h + layers * (12 * h * h + 13 * h) + 2 * h
    from llmplan.estimate import param_counts

    assert param_counts(run.plan.model).total == expected


def _ensure_multiple_of(x: int, of: int) -> int:
    return of * math.ceil(x / of)


@pytest.mark.parametrize(
    "key,d_model,multiplier,multiple_of",
    [("olmo2_1b", 2048, None, 256), ("olmo2_7b", 4096, None, 256), ("olmo2_13b", 5120, None, 256), ("llama3_8b", 4096, 1.3, 1024)],
)
def test_olmo_core_ffn_and_vocab_follow_its_code(key, d_model, multiplier, multiple_of):
    """OLMo-core's llama_like: hidden = int(8·d/3), times the multiplier (int), rounded up to a
    multiple; the dolma2 tokenizer's 100,278 tokens padded to a multiple of 128."""
    hidden = int(8 * d_model / 3)
    if multiplier is not None:
        hidden = int(multiplier * hidden)
    model = _extra()["olmo_core_models"][key]
    assert model["ffn_hidden_size"] == _ensure_multiple_of(hidden, multiple_of)
    assert model["vocab_size"] == _ensure_multiple_of(100278, 128)


@pytest.mark.parametrize("run", MPT_RUNS, ids=[r.id for r in MPT_RUNS])
def test_llm_foundry_row_matches_its_plan(run):
    # the row's non-numeric columns, and the README's MFU as a transcription check
    row = _extra()["runs"][run.id.replace("-", "_")]
    plan, model = run.plan, run.plan.model
    assert plan.parallelism.zero == {"FULL_SHARD": 3, "SHARD_GRAD_OP": 2}[row["sharding"]]
    assert plan.parallelism.recompute == ("full" if row["activation_checkpointing"] else "none")
    assert (plan.precision.preset == "fp8-mixed") == (row["precision"] == "amp_fp8")
    assert plan.parallelism.tp == plan.parallelism.pp == 1 and plan.parallelism.flash_attention
    gpu = "h100-sxm" if "-h100-" in run.group else run.group.replace("llm-foundry-", "") + "-sxm"
    assert plan.cluster.gpu.id == gpu
    # A100 tables: "1600 Gbps node-node interconnect (RoCE)" per 8-GPU node; H100: no fabric given (catalog default)
    assert plan.cluster.inter_link.id == ("ib-ndr" if "-h100-" in run.group else "roce-200")
    assert plan.cluster.inter_link.bandwidth * plan.cluster.nics == (400e9 if "-h100-" in run.group else 200e9) / 8 * 8
    assert row["tokens_per_sec"] / row["gpus"] == pytest.approx(row["tokens_per_sec_per_gpu"], abs=1)
    # MFU (README): tokens/s per GPU x (6 NumParams + 12 L d s) / peak (FP8 rows: the FP8 peak)
    peak = plan.cluster.gpu.peak[plan.precision.dtype("compute")]
    flops_per_token = 6 * row["num_params"] + 12 * model.layers * model.hidden * row["seq_len"]
    mfu = row["tokens_per_sec"] / row["gpus"] * flops_per_token / peak
    assert mfu == pytest.approx(row["mfu"], rel=2e-3)
    assert row["hfu"] == pytest.approx(row["mfu"] * (4 / 3 if row["activation_checkpointing"] else 1), rel=2e-3)


def test_runs_filter_and_unknown_id():
    assert [r.id for r in validation.runs(["bloom-176b", "llama2-7b"])] == ["llama2-7b", "bloom-176b"]
    with pytest.raises(KeyError, match="bloom"):
        validation.runs(["bloom-175b"])


@pytest.mark.parametrize("run", RUNS, ids=IDS)
def test_no_per_run_tuning(run):
    # llmplan's default efficiency model: no [efficiency] keys, no mfu override, no gemm override —
    # the one exception is a goodput the run's own paper publishes (wall-clock losses, not the
    # steady-state efficiency model), and then the run says where it comes from
    eff = run.plan.efficiency
    assert attrs.evolve(eff, goodput=None) == Efficiency()
    assert eff.mfu is None and eff.gemm is None
    if eff.goodput is not None:
        notes = [a for a in run.assumptions if a.startswith(f"goodput {eff.goodput}")]
        assert notes and "arXiv" in notes[0], run.assumptions


@pytest.mark.parametrize("run", RUNS, ids=IDS)
def test_every_run_builds_and_evaluates(run):
    assert run.results, "a run without a published result to compare"
    assert any(r.primary for r in run.results)
    assert run.layout in ("published", "partly assumed", "assumed")
    assert run.source and run.assumptions
    res = validation.evaluate_run(run, spread=False)
    assert len(res.comparisons) == len(run.results)
    for c in res.comparisons:
        assert math.isfinite(c.predicted) and c.predicted > 0, c
        assert math.isfinite(c.error)
        assert c.error == pytest.approx((c.predicted - c.published) / c.published)
    assert 0 < res.mfu < 1
    assert res.breakdown["step"] > 0
    assert res.breakdown["compute"] > 0


@pytest.mark.parametrize("run", RUNS, ids=IDS)
def test_plan_matches_the_published_inputs(run):
    for ref in run.inputs:
        got = validation.plan_input(run.plan, ref.key)
        assert got == pytest.approx(ref.value, rel=ref.tol, abs=0), f"{run.id}: {ref.key} = {got}, published {ref.value}"


def _check_refs(run, refs, source, name):
    for ref in refs:
        path = ref.ref.removeprefix("extra:")
        try:
            value = _lookup(source, path)
        except KeyError:
            pytest.fail(f"{run.id}: {ref.ref} is not in {name}")
        assert isinstance(value, (int, float)) and not isinstance(value, bool), ref.ref
        assert float(value) == pytest.approx(float(ref.value), rel=1e-12, abs=0), (
            f"{run.id}: {ref.ref} = {value} in {name}, {ref.value} in llmplan/validation.py"
        )


@pytest.mark.parametrize("run", [r for r in RUNS if any(not x.ref.startswith("extra:") for x in r.refs)], ids=lambda r: r.id)
def test_published_numbers_equal_published_toml(run, published):
    _check_refs(run, [r for r in run.refs if not r.ref.startswith("extra:")], published, "published.toml")


@pytest.mark.parametrize("run", [r for r in RUNS if any(x.ref.startswith("extra:") for x in r.refs)], ids=lambda r: r.id)
def test_published_numbers_equal_published_extra_toml(run):
    # the repository's own file: checked everywhere, also where shared/ is absent (CI)
    _check_refs(run, [r for r in run.refs if r.ref.startswith("extra:")], _extra(), "benchmarks/published_extra.toml")


def test_every_published_run_is_validated_or_says_why_not(published):
    """Each ``runs.*`` entry of published.toml is in the table or in NOT_VALIDATED, never both."""
    used = {r.ref.split(".")[1] for run in RUNS for r in run.refs if r.ref.startswith("runs.")}
    skipped = set(validation.NOT_VALIDATED)
    assert used | skipped == set(published["runs"]), sorted(set(published["runs"]) - used - skipped)
    assert not used & skipped
    assert all(len(why) > 40 for why in validation.NOT_VALIDATED.values())
    # what a time prediction needs is indeed missing from each skipped entry (or its hardware is a TPU)
    timed = {"gpu_hours", "wall_clock_days", "wall_clock_hours", "tflops_per_gpu", "tokens_per_sec_per_gpu"}
    for key in skipped:
        entry = published["runs"][key]
        tpu = str(entry.get("gpu_type", "")).upper().startswith("TPU") or "TPU" in entry.get("source", "")
        assert tpu or not timed & set(entry) or key == "mpt_30b", key


def test_pre_sequence_parallel_runs_are_described_without_it():
    """Megatron-LM 2021, BLOOM and OPT predate sequence parallelism (Korthikanti et al. 2022)."""
    old = [r for r in RUNS if r.group in ("megatron-table1", "megatron-table2") or r.id in ("bloom-176b", "opt-175b")]
    assert all(not r.plan.parallelism.sp for r in old if r.plan.parallelism.tp > 1)
    bloom = next(r for r in RUNS if r.id == "bloom-176b").plan.parallelism
    # tr11-176B-ml.slurm: 70 layers + 2 embeddings counted as layers = 72 units, 6 per stage on 12 stages
    assert bloom.stage_layers(70) == (5,) + (6,) * 10 + (5,)


def test_korthikanti_pair_differs_only_in_recomputation_and_sequence_parallelism():
    full, sel = (next(r for r in RUNS if r.id == f"korthikanti-530b-{k}") for k in ("full-recompute", "selective-sp"))
    assert attrs.evolve(full.plan.parallelism, sequence_parallel=True, recompute="selective") == sel.plan.parallelism
    assert full.plan.model == sel.plan.model and full.plan.cluster == sel.plan.cluster


def test_docs_list_every_run_left_out_with_its_reason():
    doc = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    for key, why in validation.NOT_VALIDATED.items():
        assert f"| `{key}` | {why} |" in doc, key


def test_every_ref_key_is_a_metric_or_a_plan_input():
    for run in RUNS:
        for ref in run.inputs:
            validation.plan_input(run.plan, ref.key)  # KeyError for an unknown input name
        for ref in run.results:
            assert ref.key in validation.METRICS


def _comp(run, metric, error, primary=True):
    return validation.Comparison(
        run=run, label=run, group="g", metric=metric, predicted=1 + error, published=1.0, error=error,
        primary=primary, ref="x", note="", implied_gemm=None,
    )


def test_stats():
    comps = [_comp("a", "gpu_hours", 0.05), _comp("b", "gpu_hours", -0.30), _comp("c", "gpu_hours", 0.10)]
    s = validation._stats(comps)
    assert s.n == 3
    assert s.median_abs == pytest.approx(0.10)
    assert s.worst_abs == pytest.approx(0.30) and s.worst_run.startswith("b")
    assert s.mean_signed == pytest.approx(-0.05)
    assert s.within_25 == 2
    assert not s.meets_targets
    assert validation._stats(comps[:1]).meets_targets
    assert validation._stats([]).n == 0


def test_implied_gemm_reproduces_a_perfect_prediction():
    b = {"step": 10.0, "compute": 8.0, "bubble": 1.0, "exposed": 0.5, "optimizer": 0.5}
    tput = validation.METRICS["tflops_per_gpu"]
    hours = validation.METRICS["gpu_hours"]
    assert validation._implied_gemm(tput, 100.0, 100.0, b, 0.6) == pytest.approx(0.6)
    assert validation._implied_gemm(tput, 100.0, 100.0, b, 0.554) == pytest.approx(0.554)  # the plan's own η
    # published throughput half the prediction: the step took twice as long
    assert validation._implied_gemm(tput, 100.0, 50.0, b, 0.6) == pytest.approx(0.6 * 9 / 19)
    assert validation._implied_gemm(hours, 100.0, 200.0, b, 0.6) == pytest.approx(0.6 * 9 / 19)


def test_report_outputs(tmp_path):
    report = validation.validate(["megatron-t1-1t", "bloom-176b", "llama2-7b"], spread=True)
    assert [r.run.id for r in report.results] == ["megatron-t1-1t", "llama2-7b", "bloom-176b"]
    assert report.overall.n == sum(c.primary for c in report.comparisons)
    assert report.overall_all.n == len(report.comparisons)
    spread = report.results[1].spread
    assert spread is not None and spread["min"] <= spread["max"]
    text = validation.text_table(report)
    assert "BLOOM-176B" in text and "targets" in text
    md, js = validation.write_results(report, tmp_path)
    content = md.read_text(encoding="utf-8")
    assert "| run | layout | metric | predicted | published | error |" in content
    data = json.loads(js.read_text(encoding="utf-8"))
    assert {r["id"] for r in data["runs"]} == {"megatron-t1-1t", "bloom-176b", "llama2-7b"}
    assert data["efficiency_model"]["per_run_overrides"] is False
    assert data["summary"]["overall_primary"]["n"] == report.overall.n


def test_sources_partition_the_primary_comparisons():
    report = validation.validate(["megatron-t1-1t", "llama3-405b-8k-8192", "mpt-a100-40gb-125m-2048-64"], spread=False)
    primary = [c for c in report.comparisons if c.primary]
    shared, extra = report.by_source[validation.SOURCE_SHARED], report.by_source[validation.SOURCE_EXTRA]
    # Megatron's row is in shared/published.toml; Llama 3 Table 4 and the MPT row are "extra:" refs
    assert shared.n == sum(1 for c in primary if c.run == "megatron-t1-1t") == 1
    assert extra.n == 2
    assert shared.n + extra.n == report.overall.n == len(primary)


def test_docs_block_folds_the_long_measured_tables(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("validate_runs", ROOT / "benchmarks" / "validate_runs.py")
    vr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vr)
    doc = tmp_path / "validation.md"
    doc.write_text(f"# V\n\n{vr.BEGIN}\nold\n{vr.END}\n\ntail\n", encoding="utf-8")
    report = validation.validate(["megatron-t1-1t", "mpt-a100-40gb-125m-2048-64"], spread=False)
    assert vr.refresh_docs(report, doc)
    text = doc.read_text(encoding="utf-8")
    assert "old" not in text and text.endswith("tail\n")
    # the Megatron row in the open table, the MPT row only inside a collapsible block, indented
    opened, folded = text.split('??? note "llm-foundry-a100-40gb: 1 rows"', 1)
    assert "Megatron GPT 1T (T1)" in opened and "MPT-125M" not in opened.split("### Where")[0]
    assert "\n    | MPT-125M 2048 tok" in folded


def test_llm_foundry_mixed_precision_follows_each_row():
    """FSDP mixed_precision DEFAULT reduces gradients in fp32, PURE in bf16 (the row's mp_mode)."""
    rows = _extra()["runs"]
    for run in MPT_RUNS:
        mode = rows[run.id.replace("-", "_")]["mp_mode"]
        assert run.plan.precision.dtype("grads") == ("fp32" if mode == "DEFAULT" else "bf16"), run.id
        assert run.plan.parallelism.sharding == "fsdp"


# --- the one fitted constant -----------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _table1_fit() -> float:
    return validation.fit_gemm_fraction()


def test_the_fitted_constant_is_megatron_table1s_fit():
    from llmplan.plan import GEMM_FRACTION_OF_MAMF

    assert validation.CALIBRATION_GROUPS == ("megatron-table1",)
    # the constant in llmplan.plan is the fit, to two decimals: refitting must give it back
    assert round(_table1_fit(), 2) == GEMM_FRACTION_OF_MAMF


def test_the_fit_is_a_minimum_of_the_absolute_log_error():
    table1 = [r for r in RUNS if r.group == "megatron-table1"]
    assert len(table1) == 10  # Narayanan et al. 2021, Table 1: ten GPT shapes
    f = _table1_fit()
    best = validation.fraction_loss(f, table1)
    assert best < validation.fraction_loss(f - 0.01, table1)
    assert best < validation.fraction_loss(f + 0.01, table1)
    # the minimum of a mean absolute (log) error is a median: as many rows above as below
    with validation.gemm_fraction(f):
        errors = [c.error for r in table1 for c in validation.evaluate_run(r, spread=False).comparisons if c.primary]
    assert len(errors) == 10
    assert abs(sum(e > 0 for e in errors) - sum(e < 0 for e in errors)) <= 2


def test_gemm_fraction_scales_the_prediction_and_is_restored():
    from llmplan import plan as plan_module

    run = validation.runs(["megatron-t1-1t"])[0]
    before = plan_module.GEMM_FRACTION_OF_MAMF
    base = validation.evaluate_run(run, spread=False).tflops_per_gpu
    with validation.gemm_fraction(before * 1.1):
        faster = validation.evaluate_run(run, spread=False).tflops_per_gpu
    assert plan_module.GEMM_FRACTION_OF_MAMF == before
    # faster GEMMs, the same communication and bubble share: between 1 and 1.1 × the TFLOP/s
    assert base < faster <= 1.1 * base * (1 + 1e-9)


def test_held_out_statistics_leave_the_calibration_runs_out():
    report = validation.validate(["megatron-t1-1t", "megatron-t1-1.7b", "llama2-7b", "bloom-176b"], spread=False)
    primary = [c for c in report.comparisons if c.primary]
    held = [c for c in primary if not c.run.startswith("megatron-t1-")]
    assert report.held_out.n == len(held) == report.overall.n - 2
    assert report.held_out.median_abs == pytest.approx(validation._stats(held).median_abs)
    assert "held out" in validation.text_table(report)
    assert validation.to_json(report)["summary"]["held_out_primary"]["n"] == len(held)


def test_cross_validation_picks_each_group_s_fraction_from_the_others():
    grid = [0.71, 0.75, 0.79]
    cv = validation.cross_validate(grid)
    groups = list(dict.fromkeys(r.group for r in RUNS))
    assert list(cv.fractions) == groups and set(cv.fractions.values()) <= set(grid)
    assert cv.overall.n == validation.validate(spread=False).overall.n  # every primary comparison, once
    # Megatron Table 1's fraction is the best of the grid for all the other runs
    others = [r for r in RUNS if r.group != "megatron-table1"]
    losses = {f: validation.fraction_loss(f, others) for f in grid}
    assert cv.fractions["megatron-table1"] == min(grid, key=losses.get)
    # and its rows are predicted with that fraction
    with validation.gemm_fraction(cv.fractions["megatron-table1"]):
        direct = validation.evaluate_run(validation.runs(["megatron-t1-1t"])[0], spread=False).comparisons[0]
    held = next(c for c in cv.comparisons if c.run == "megatron-t1-1t" and c.primary)
    assert held.predicted == pytest.approx(direct.predicted, rel=1e-12)
    rows = validation.cross_validation_rows(cv)
    assert len(rows) == len(groups) + 1
    data = validation.cross_validation_json(cv)
    assert data["fraction_without_group"] == cv.fractions and len(data["comparisons"]) == cv.overall.n
    # per GPU family: the grid value best for that family's runs alone
    assert set(cv.by_gpu) == {"A100", "H100/H800"} and set(cv.by_gpu.values()) <= set(grid)
    a100 = [r for r in RUNS if r.plan.cluster.gpu.id.startswith("a100")]
    assert cv.by_gpu["A100"] == min(grid, key=lambda f: validation.fraction_loss(f, a100))
    assert "A100" in validation.cross_validation_gpu_text(cv)
    # the held-out statistics at each grid fraction are validate()'s held-out row at that value
    with validation.gemm_fraction(0.71):
        direct = validation.validate(spread=False).held_out
    assert cv.held_out_by_fraction[0.71] == direct
    rows = validation.sensitivity_rows(cv)
    assert [r[0] for r in rows] == ["0.71", "0.75 (default)", "0.79"]


def test_gpu_family():
    assert validation.gpu_family("a100-80gb-sxm") == validation.gpu_family("a100-40gb-sxm") == "A100"
    assert validation.gpu_family("h100-sxm") == validation.gpu_family("h800-sxm") == "H100/H800"


def test_cli_validate_runs_json(capsys):
    from llmplan.cli import main

    assert main(["validate-runs", "--json", "--no-spread"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["held_out_primary"]["n"] == data["summary"]["overall_primary"]["n"] - 10
    assert data["efficiency_model"]["calibration_groups"] == ["megatron-table1"]


MBRIDGE_RUNS = [r for r in RUNS if r.group == "megatron-bridge-h100-fp8"]


def test_megatron_bridge_every_row_is_a_run_with_its_settings():
    rows = {k: v for k, v in _extra()["runs"].items() if k.startswith("mbridge_")}
    assert sorted(r.id.replace("-", "_") for r in MBRIDGE_RUNS) == sorted(rows) and len(rows) == 7
    for r in MBRIDGE_RUNS:
        row, par, meth = rows[r.id.replace("-", "_")], r.plan.parallelism, r.plan.method
        task = row.get("task", "pretrain")
        if row.get("fsdp", 0):  # Megatron-FSDP: parameters, gradients and optimizer states sharded
            assert par.zero == 3 and par.sharding == "fsdp"
        else:  # the distributed optimizer
            assert par.zero == 1 and par.sharding == "zero"
        assert (par.tp, par.pp, par.cp, par.v) == (row["tp"], row["pp"], row["cp"], row.get("vp", 1))
        assert par.pp_schedule == ("interleaved" if "vp" in row else "1f1b")
        # recompute_num_layers: full recomputation, block method, of that many layers per chunk
        assert (par.recompute, par.recompute_layers) == (("full", row["recompute_num_layers"]) if "recompute_num_layers" in row
                                                        else ("none", None))
        assert par.sp == (par.tp > 1) and par.tp_comm_overlap
        assert r.plan.precision.dtype("compute") == "fp8" and r.plan.precision.dtype("grads") == "bf16"
        assert r.plan.cluster.gpu.id == "h100-sxm" and meth.seq_len == row["seq_len"]
        assert row["seq_len"] == (8192 if task == "pretrain" else 4096)
        # pre-training overlaps the gradient reduce-scatter and parameter gather; the fine-tuning
        # recipes set overlap_grad_reduce = overlap_param_gather = false
        assert par.dp_overlap is (task == "pretrain")
        assert meth.kind == {"pretrain": "pretrain", "sft": "full-finetune", "lora": "lora"}[task]
        if task == "lora":  # dim 16, alpha 32 on the fused QKV projection (q, k and v here)
            assert (meth.lora.rank, meth.lora.alpha) == (16, 32)
            assert set(meth.lora.targets) == {"q_proj", "k_proj", "v_proj"}


def test_megatron_bridge_vocab_padding_and_405b_stages_by_hand():
    """Megatron-Core pads 128,256 to a multiple of 128 × tp: 128,512 at tp 4 (251 × 512),
    129,024 at tp 8 (126 × 1,024). The 405B's embedding and loss count as layers:
    (126 + 2) / 8 stages = 16, so the first and last stage hold 15 transformer layers."""
    for r in MBRIDGE_RUNS:  # and 128,256 itself at tp 1 and 2 (501 × 256)
        tp = r.plan.parallelism.tp
        assert r.plan.model.vocab == {1: 128256, 2: 128256, 4: 128512, 8: 129024}[tp]
        if r.plan.model.layers == 126:
            assert r.plan.parallelism.stage_layers(126) == (15,) + (16,) * 6 + (15,)
