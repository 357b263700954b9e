"""The bundled catalog (GPUs, links, models, prices) and user catalog files."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmplan import catalog
from llmplan.bindings import evaluate, model_values
from llmplan.catalog import Catalog, Price
from llmplan.errors import CatalogError, LlmplanError, PlanError, TomlSyntaxError
from llmplan.formulas import params as P

GiB = 2**30
MiB = 2**20

REQUIRED_GPUS = [
    "rtx-a6000", "rtx-4090", "rtx-6000-ada", "l40s", "a100-40gb-sxm", "a100-80gb-sxm",
    "a100-80gb-pcie", "h100-sxm", "h100-pcie", "h800-sxm", "h200-sxm", "b200", "gb200", "mi300x",
]
REQUIRED_LINKS = [
    "pcie4", "pcie5", "nvlink-bridge", "nvlink3", "nvlink4", "nvlink5", "ib-hdr", "ib-ndr",
    "ib-xdr", "roce-400", "100gbe", "10gbe", "nvlink4-h800", "xgmi-mi300x",
]
MEGATRON = ["1.7b", "3.6b", "7.5b", "18.4b", "39.1b", "76.1b", "145.6b", "310.1b", "529.6b", "1t"]
REQUIRED_MODELS = [
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
    "mixtral-8x7b", "mixtral-8x22b", "dbrx", "deepseek-v3", "qwen3-8b", "qwen3-30b-a3b",
    "qwen3-235b-a22b", "gpt3-175b", "chinchilla-70b", "mpt-7b",
] + [f"megatron-gpt-{size}" for size in MEGATRON]


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return catalog.default()


def total(model) -> int:
    return evaluate(P.total(model), model_values(model))


def active(model) -> int:
    return evaluate(P.active(model), model_values(model))


# ---------------------------------------------------------------------------------------
# contents
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, required",
    [("gpus", REQUIRED_GPUS), ("links", REQUIRED_LINKS), ("models", REQUIRED_MODELS)],
)
def test_required_ids_present(cat, section, required):
    missing = sorted(set(required) - set(getattr(cat, section)))
    assert not missing


@pytest.mark.parametrize("section", catalog.SECTIONS)
def test_every_entry_names_its_source(cat, section):
    entries = getattr(cat, section)
    assert entries
    for id, obj in entries.items():
        assert isinstance(obj.source, str) and obj.source.strip(), f"{section}.{id} has no source"


@pytest.mark.parametrize("section", ["gpus", "links", "prices"])
def test_ids_are_the_table_keys(cat, section):
    for id, obj in getattr(cat, section).items():
        assert obj.id == id
        assert id == id.lower() and " " not in id


def test_models_have_names_and_hf_types(cat):
    for id, m in cat.models.items():
        assert m.name
        if id != "chinchilla-70b":  # no transformers class exists for Chinchilla
            assert m.hf_model_type, id
        assert m.max_positions, id


def test_catalog_is_cached_and_read_only(cat):
    assert catalog.default() is cat
    with pytest.raises(TypeError):
        cat.gpus["my-gpu"] = cat.gpu("h100-sxm")  # type: ignore[index]


# ---------------------------------------------------------------------------------------
# units: base units, per-direction bandwidths, usable memory
# ---------------------------------------------------------------------------------------


def test_contract_memory_is_binary(cat):
    # plan-format contract: an "80 GB" A100/H100 is 80 GiB (81,920 MiB), a 40 GB A100 40 GiB
    for id in ("a100-80gb-sxm", "a100-80gb-pcie", "h100-sxm", "h100-pcie", "h800-sxm"):
        assert cat.gpu(id).memory == 80 * GiB == 81_920 * MiB
    assert cat.gpu("a100-40gb-sxm").memory == 40 * GiB


def test_driver_reported_memory(cat):
    assert cat.gpu("h200-sxm").memory == 143_771 * MiB
    assert cat.gpu("b200").memory == 183_359 * MiB
    assert cat.gpu("gb200").memory == 189_471 * MiB
    assert cat.gpu("mi300x").memory == 192 * GiB == 206_158_430_208
    assert cat.gpu("l40s").memory == 46_068 * MiB  # 48 GiB GDDR6 with ECC on
    assert cat.gpu("rtx-a6000").memory == cat.gpu("rtx-6000-ada").memory == 49_140 * MiB
    assert cat.gpu("rtx-4090").memory == 24_564 * MiB


def test_peaks_are_dense_flops_per_second(cat):
    h100 = cat.gpu("h100-sxm")
    assert h100.peak["bf16"] == 989.4e12 == h100.peak_flops("bf16")
    assert h100.peak["fp8"] == 1978.9e12
    assert cat.gpu("a100-80gb-sxm").peak["bf16"] == 312e12
    assert cat.gpu("b200").peak["bf16"] == 2250e12
    assert cat.gpu("mi300x").peak["bf16"] == 1307.4e12
    # the article's "A6000 38 TFLOP/s" is FP32; the dense BF16 tensor rate is 154.8
    assert cat.gpu("rtx-a6000").peak["fp32"] == 38.7e12
    assert cat.gpu("rtx-a6000").peak["bf16"] == 154.8e12
    for id, g in cat.gpus.items():
        assert set(g.peak) >= {"bf16", "fp16", "tf32", "fp32"}, id
        assert 1e14 <= g.peak["bf16"] <= 1e16, id
        assert g.peak["bf16"] == g.peak["fp16"], id
        assert g.peak["fp32"] < g.peak["bf16"], id
        # dense TF32 = BF16 / 2 (B200: NVIDIA publishes 1.1 PF vs 2.25 PF, 2.2% under)
        assert math.isclose(g.peak["tf32"], g.peak["bf16"] / 2, rel_tol=0.03), id
        if "fp8" in g.peak:
            assert math.isclose(g.peak["fp8"], 2 * g.peak["bf16"], rel_tol=0.02), id


def test_fp8_only_from_ada_and_hopper_on(cat):
    for id, g in cat.gpus.items():
        assert ("fp8" in g.peak) == (not g.arch.startswith("Ampere")), id


def test_gpu_ranges(cat):
    for id, g in cat.gpus.items():
        assert 16 * GiB <= g.memory <= 256 * GiB, id
        assert 5e11 <= g.memory_bandwidth <= 1e13, id
        assert 250 <= g.tdp <= 1500, id
        assert 1 <= g.nvlink_domain <= g.gpus_per_node, id
        assert g.vendor and g.arch and g.status, id
    assert cat.gpu("h100-sxm").memory_bandwidth == 3350e9
    assert cat.gpu("h100-sxm").tdp == 700


def test_link_bandwidths_are_per_direction(cat):
    assert cat.link("nvlink4").bandwidth == 450e9  # "900 GB/s" is both directions added
    assert cat.link("nvlink3").bandwidth == 300e9
    assert cat.link("nvlink5").bandwidth == 900e9
    assert cat.link("nvlink4-h800").bandwidth == 200e9
    assert cat.link("nvlink-bridge").bandwidth == 56.25e9  # A6000: 112.5 GB/s both ways
    assert cat.link("pcie4").bandwidth == 32e9
    assert cat.link("pcie5").bandwidth == 64e9
    assert cat.link("ib-hdr").bandwidth == 200e9 / 8
    assert cat.link("ib-ndr").bandwidth == 400e9 / 8 == 50e9
    assert cat.link("ib-xdr").bandwidth == 100e9
    assert cat.link("roce-400").bandwidth == 50e9
    assert cat.link("100gbe").bandwidth == 12.5e9
    assert cat.link("10gbe").bandwidth == 1.25e9


def test_link_ranges(cat):
    kinds = {"nvlink": 0, "pcie": 0, "network": 0}
    for id, link in cat.links.items():
        kinds[link.kind] += 1
        assert 0 < link.efficiency <= 1, id
        assert 1e-7 <= link.latency <= 1e-4, id  # seconds: 0.1 us .. 100 us
        assert link.status, id
    assert all(kinds.values())
    # a faster fabric is faster
    bw = {id: link.bandwidth for id, link in cat.links.items()}
    assert bw["10gbe"] < bw["100gbe"] < bw["ib-hdr"] < bw["ib-ndr"] < bw["ib-xdr"]
    assert bw["pcie4"] < bw["pcie5"] < bw["nvlink3"] < bw["nvlink4"] < bw["nvlink5"]


# ---------------------------------------------------------------------------------------
# NVLink domains and default links (the article's errors corrected)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "id, domain",
    [
        ("rtx-6000-ada", 1),  # no NVLink at all: the article is wrong
        ("rtx-4090", 1),
        ("l40s", 1),
        ("rtx-a6000", 2),
        ("a100-80gb-pcie", 2),
        ("h100-pcie", 2),
        ("a100-40gb-sxm", 8),
        ("a100-80gb-sxm", 8),
        ("h100-sxm", 8),
        ("h800-sxm", 8),
        ("h200-sxm", 8),
        ("b200", 8),
        ("gb200", 72),
        ("mi300x", 8),
    ],
)
def test_nvlink_domains(cat, id, domain):
    assert cat.gpu(id).nvlink_domain == domain


def test_default_links(cat):
    assert cat.gpu("h800-sxm").intra_node == "nvlink4-h800"
    assert cat.gpu("mi300x").intra_node == "xgmi-mi300x"
    assert cat.gpu("rtx-a6000").intra_node == "nvlink-bridge"
    assert cat.gpu("h100-sxm").intra_node == "nvlink4"
    assert cat.gpu("gb200").gpus_per_node == 72
    for g in cat.gpus.values():
        assert cat.link(g.intra_node).kind in ("nvlink", "pcie")
        assert cat.link(g.inter_node).kind == "network"
        if g.nvlink_domain > 1:
            assert cat.link(g.intra_node).kind == "nvlink", g.id
    # every HGX-class GPU has a node fabric at least as fast as HDR
    for id in ("a100-80gb-sxm", "h100-sxm", "h800-sxm", "h200-sxm", "b200", "gb200"):
        assert cat.link(cat.gpu(id).inter_node).bandwidth >= 25e9


# ---------------------------------------------------------------------------------------
# prices: the articles' figures
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "id, gpu, kind, amount, currency",
    [
        ("a100-80gb-sxm-cloud-jp-2025", "a100-80gb-sxm", "cloud", 300, "JPY"),
        ("a100-80gb-sxm-used-jp-2025", "a100-80gb-sxm", "purchase", 1_800_000, "JPY"),
        ("a100-40gb-sxm-used-jp-2025", "a100-40gb-sxm", "purchase", 1_000_000, "JPY"),
        ("rtx-a6000-new-jp-2025", "rtx-a6000", "purchase", 700_000, "JPY"),
        ("h100-sxm-new-jp-2025", "h100-sxm", "purchase", 5_000_000, "JPY"),
        ("b200-new-jp-2025", "b200", "purchase", 7_000_000, "JPY"),
        ("h800-sxm-cloud-deepseek-v3", "h800-sxm", "cloud", 2, "USD"),
        ("a100-80gb-sxm-cloud-llama2-article", "a100-80gb-sxm", "cloud", 3, "USD"),
        ("a100-80gb-sxm-cloud-lora-article", "a100-80gb-sxm", "cloud", 2, "USD"),
    ],
)
def test_article_prices(cat, id, gpu, kind, amount, currency):
    p = cat.price(id)
    assert (p.gpu, p.kind, p.money) == (gpu, kind, (amount, currency))
    assert p.per == ("gpu-hour" if kind == "cloud" else "gpu")
    assert p.date and p.source


def test_used_prices_are_marked(cat):
    assert cat.price("a100-80gb-sxm-used-jp-2025").condition == "used"
    assert cat.price("a100-40gb-sxm-used-jp-2025").condition == "used"
    for p in cat.prices.values():
        assert p.gpu in cat.gpus
        assert (p.condition == "") if p.kind == "cloud" else (p.condition in ("new", "used"))


def test_deepseek_cost_reproduces(cat):
    # DeepSeek-V3 Table 1: 2,788K H800 GPU-hours at $2 = $5.576M
    amount, currency = cat.price("h800-sxm-cloud-deepseek-v3").money
    assert (2_788_000 * amount, currency) == (5_576_000, "USD")


def test_prices_for(cat):
    cloud = cat.prices_for("a100-80gb-sxm", "cloud")
    assert cloud and all(p.kind == "cloud" and p.gpu == "a100-80gb-sxm" for p in cloud)
    with pytest.raises(CatalogError):
        cat.prices_for("a100")


# ---------------------------------------------------------------------------------------
# unknown ids
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, word, suggestion",
    [
        ("gpu", "h100", "h100-sxm"),
        ("gpu", "a100", "a100-40gb-sxm"),
        ("gpu", "rtx6000-ada", "rtx-6000-ada"),
        ("link", "nvlink-4", "nvlink4"),
        ("link", "infiniband-ndr", "ib-ndr"),
        ("model", "llama2-7b", "llama-2-7b"),
        ("model", "mixtral-8x7", "mixtral-8x7b"),
        ("price", "h800-cloud-deepseek-v3", "h800-sxm-cloud-deepseek-v3"),
    ],
)
def test_unknown_id_suggests_closest(cat, method, word, suggestion):
    with pytest.raises(CatalogError) as info:
        getattr(cat, method)(word)
    message = str(info.value)
    label = {"gpu": "GPU"}.get(method, method)
    assert message.startswith(f"unknown {label} {word!r}; did you mean {suggestion!r}? (known: ")
    assert isinstance(info.value, KeyError) and isinstance(info.value, LlmplanError)


def test_unknown_id_without_suggestion_lists_known(cat):
    with pytest.raises(CatalogError, match=r"^unknown GPU 'tpu-v5p' \(known: a100-40gb-sxm, "):
        cat.gpu("tpu-v5p")


def test_module_shortcuts():
    assert catalog.gpu("h100-sxm") is catalog.default().gpu("h100-sxm")
    assert catalog.link("nvlink4").bandwidth == 450e9
    assert catalog.model("llama-2-7b").hidden == 4096
    assert catalog.price("h800-sxm-cloud-deepseek-v3").amount == 2
    with pytest.raises(CatalogError, match="did you mean 'h100-sxm'"):
        catalog.gpu("h100")


def test_lookup_ignores_case(cat):
    assert cat.gpu("H100-SXM") is cat.gpu("h100-sxm")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_lookup_never_crashes(word):
    cat = catalog.default()
    try:
        found = cat.gpu(word)
    except CatalogError as exc:
        assert "(known: " in str(exc)
    else:
        assert found.id == word.strip().lower() or found.id == word


# ---------------------------------------------------------------------------------------
# user catalog files
# ---------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "my-catalog.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


USER = """
    [gpus.my-gpu]
    name = "My accelerator"
    memory = "96 GiB"
    memory_bandwidth = "4 TB/s"
    peak = { bf16 = "800 TFLOP/s", fp8 = "1.6 PFLOP/s" }
    nvlink_domain = 4
    gpus_per_node = 4
    intra_node = "my-link"
    inter_node = "ib-ndr"
    tdp = "600 W"
    source = "test"

    [links.my-link]
    kind = "nvlink"
    bandwidth = "200 GB/s"
    latency = "1 us"
    efficiency = 0.8

    [prices.h800-sxm-cloud-deepseek-v3]
    gpu = "h800-sxm"
    kind = "cloud"
    amount = "1.5 USD"
    date = "2025-06"
    source = "our own quote"

    [prices.my-gpu-used]
    gpu = "my-gpu"
    kind = "purchase"
    amount = "1.2M"
    currency = "JPY"
    date = "2025"
    condition = "used"
    source = "test"

    [models.llama-2-7b-half]
    preset = "llama-2-7b"
    layers = 16
"""


def test_user_file_adds_gpu_and_overrides_price(tmp_path, cat):
    extended = cat.extend(write(tmp_path, USER))
    g = extended.gpu("my-gpu")
    assert (g.id, g.name, g.memory, g.memory_bandwidth) == ("my-gpu", "My accelerator", 96 * GiB, 4e12)
    assert g.peak == {"bf16": 800e12, "fp8": 1.6e15}
    assert extended.link(g.intra_node).bandwidth == 200e9
    assert extended.link("my-link").name == "my-link"  # name defaults to the id
    # the same id replaces the entry
    assert extended.price("h800-sxm-cloud-deepseek-v3").money == (1.5, "USD")
    assert extended.price("h800-sxm-cloud-deepseek-v3").source == "our own quote"
    assert extended.price("my-gpu-used").money == (1_200_000, "JPY")
    half = extended.model("llama-2-7b-half")
    assert (half.layers, half.hidden, half.name) == (16, 4096, "llama-2-7b-half")
    # the rest is the bundled catalog, which is unchanged
    assert extended.gpu("h100-sxm") == cat.gpu("h100-sxm")
    assert cat.price("h800-sxm-cloud-deepseek-v3").amount == 2
    assert "my-gpu" not in cat.gpus and "my-gpu" not in catalog.default().gpus


def test_later_file_wins_and_paths_accept_str(tmp_path, cat):
    first = write(tmp_path, USER, "a.toml")
    second = write(
        tmp_path,
        """
        [prices.my-gpu-used]
        gpu = "my-gpu"
        kind = "purchase"
        amount = 900_000
        currency = "JPY"
        date = "2026"
        condition = "used"
        source = "second file"
        """,
        "b.toml",
    )
    extended = cat.extend([str(first), second])
    assert extended.price("my-gpu-used").amount == 900_000
    assert catalog.load(first).gpu("my-gpu").tdp == 600


def test_plan_file_uses_catalogs(tmp_path):
    from llmplan import serialize

    write(tmp_path, USER)
    plan_path = write(
        tmp_path,
        """
        catalogs = ["my-catalog.toml"]
        [model]
        preset = "llama-2-7b-half"
        [method]
        kind = "pretrain"
        tokens = "1T"
        seq_len = 4096
        global_batch = 64
        [cluster]
        gpu = "my-gpu"
        gpus = 4
        """,
        "plan.toml",
    )
    plan = serialize.load(plan_path)
    assert plan.cluster.gpu.id == "my-gpu"
    assert plan.cluster.intra_node.id == "my-link"
    assert plan.model.layers == 16


def problems_of(info) -> dict[str, str]:
    return {p.path: p.message for p in info.value.problems}


def test_bad_user_entry_reports_its_path(tmp_path, cat):
    path = write(
        tmp_path,
        """
        [gpus.my-gpu]
        memory = "80 GX"
        memory_bandwidth = "2 TB/s"
        memroy_type = "HBM3"
        peak = { bf17 = "100 TFLOP/s" }
        """,
    )
    with pytest.raises(PlanError) as info:
        cat.extend(path)
    assert info.value.source == str(path)
    found = problems_of(info)
    assert "cannot read '80 GX'" in found["gpus.my-gpu.memory"]
    assert found["gpus.my-gpu.memroy_type"].startswith("unknown key")
    assert str(path) in str(info.value)


def test_every_problem_of_a_file_is_reported(tmp_path, cat):
    path = write(
        tmp_path,
        """
        [gpu.typo]
        name = "x"

        [links.slow]
        bandwidth = "1 GB/s"
        kind = "carrier-pigeon"
        efficiency = 1.5

        [links.negative]
        bandwidth = "-1 GB/s"

        [prices.bad]
        gpu = "h100-sxm"
        kind = "rent"
        amount = 0
        currency = "usd"
        date = "June 2025"
        source = ""

        [models.tiny]
        layers = 2
        hidden = 100
        heads = 3
        ffn = 400
        vocab = 1000

        [gpus.BigGPU]
        name = "uppercase id"

        [gpus.odd]
        memory = "8 GiB"
        memory_bandwidth = "1 TB/s"
        peak = { bf17 = "100 TFLOP/s" }
        """,
    )
    with pytest.raises(PlanError) as info:
        cat.extend(path)
    found = problems_of(info)
    assert "did you mean 'gpus'" in found["gpu"]
    assert "must not be negative" in found["links.negative.bandwidth"]
    assert "links.slow.kind" in found and "links.slow.efficiency" in found
    assert found["prices.bad.kind"] == "'rent' is not allowed (allowed: cloud, purchase)"
    for key in ("amount", "currency", "date", "source"):
        assert f"prices.bad.{key}" in found, key
    assert "models.tiny.heads" in found  # 3 heads do not divide hidden = 100
    assert "gpus.BigGPU" in found
    assert "did you mean 'bf16'" in found["gpus.odd.peak.bf17"]


def test_dangling_references_are_reported(tmp_path, cat):
    path = write(
        tmp_path,
        """
        [gpus.my-gpu]
        memory = "24 GiB"
        memory_bandwidth = "1 TB/s"
        intra_node = "nvlink-4"

        [prices.orphan]
        gpu = "h100"
        kind = "cloud"
        amount = 1
        currency = "USD"
        date = "2025"
        source = "test"
        """,
    )
    with pytest.raises(PlanError) as info:
        cat.extend(path)
    found = problems_of(info)
    assert "did you mean 'nvlink4'" in found["gpus.my-gpu.intra_node"]
    assert "did you mean 'h100-sxm'" in found["prices.orphan.gpu"]


def test_price_rules(tmp_path, cat):
    path = write(
        tmp_path,
        """
        [prices.a]
        gpu = "h100-sxm"
        kind = "cloud"
        amount = "2 USD"
        currency = "JPY"
        date = "2025"
        source = "test"

        [prices.b]
        gpu = "h100-sxm"
        kind = "cloud"
        per = "gpu"
        amount = 2
        currency = "USD"
        date = "2025"
        condition = "used"
        source = "test"

        [prices.c]
        gpu = "h100-sxm"
        kind = "purchase"
        amount = 1
        currency = "USD"
        date = "2025"
        condition = "refurbished"
        source = "test"
        """,
    )
    with pytest.raises(PlanError) as info:
        cat.extend(path)
    found = problems_of(info)
    assert set(found) == {"prices.a.currency", "prices.b.per", "prices.b.condition", "prices.c.condition"}


def test_price_default_per():
    cloud = Price(id="x", gpu="h100-sxm", kind="cloud", amount=2, currency="USD", date="2025", source="s")
    bought = Price(id="y", gpu="h100-sxm", kind="purchase", amount=2, currency="USD", date="2025", source="s")
    assert (cloud.per, bought.per) == ("gpu-hour", "gpu")


def test_id_key_must_match(tmp_path, cat):
    path = write(
        tmp_path,
        """
        [links.fast]
        id = "slow"
        bandwidth = "1 GB/s"
        """,
    )
    with pytest.raises(PlanError, match=r"links\.fast\.id"):
        cat.extend(path)


def test_toml_syntax_error_names_file_and_line(tmp_path, cat):
    path = write(tmp_path, "[gpus.x]\nmemory = \n")
    with pytest.raises(TomlSyntaxError, match=rf"^{path}:2:"):
        cat.extend(path)


def test_missing_file(tmp_path, cat):
    with pytest.raises(LlmplanError, match="cannot read catalog file"):
        cat.extend(tmp_path / "nope.toml")


# ---------------------------------------------------------------------------------------
# parameter totals, derived by hand (independent of llmplan.formulas)
# ---------------------------------------------------------------------------------------


def test_llama_2_7b_total(cat):
    V, h, L, f = 32000, 4096, 32, 11008
    per_layer = 4 * h * h + 3 * h * f + 2 * h  # q,k,v,o + gate,up,down + 2 RMSNorms
    assert 2 * V * h + L * per_layer + h == 6_738_415_616  # embed + head untied, final norm
    assert total(cat.model("llama-2-7b")) == 6_738_415_616


def test_llama_2_70b_total(cat):
    V, h, L, f, kv = 32000, 8192, 80, 28672, 8 * 128
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * f + 2 * h  # GQA: 8 KV heads of 128
    assert total(cat.model("llama-2-70b")) == 2 * V * h + L * per_layer + h == 68_976_648_192


def test_llama_3_1_8b_total(cat):
    V, h, L, f, kv = 128256, 4096, 32, 14336, 8 * 128
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * f + 2 * h
    assert total(cat.model("llama-3.1-8b")) == 2 * V * h + L * per_layer + h == 8_030_261_248


def test_mixtral_8x7b_total_and_active(cat):
    V, h, L, f, kv, E, k = 32000, 4096, 32, 14336, 8 * 128, 8, 2
    attention = 2 * h * h + 2 * h * kv
    expert = 3 * h * f
    per_layer = attention + E * expert + h * E + 2 * h  # experts + router + norms
    assert total(cat.model("mixtral-8x7b")) == 2 * V * h + L * per_layer + h == 46_702_792_704
    assert active(cat.model("mixtral-8x7b")) == 2 * V * h + L * (per_layer - (E - k) * expert) + h
    assert round(active(cat.model("mixtral-8x7b")) / 1e9, 1) == 12.9  # Mistral: 12.9B active


def test_deepseek_v3_total_and_active(cat):
    V, h, L, a = 129280, 7168, 61, 128
    r_q, r_kv, nope, rope, v = 1536, 512, 128, 64, 128
    q = h * r_q + r_q + r_q * a * (nope + rope)  # down-proj, its RMSNorm, up-proj
    kv = h * (r_kv + rope) + r_kv + r_kv * a * (nope + v)  # joint latent + shared rope key, norm, up
    o = a * v * h
    attention = q + kv + o
    dense_mlp = 3 * h * 18432
    expert = 3 * h * 2048
    moe = 256 * expert + 1 * expert + h * 256  # routed + shared + router
    blocks = L * (attention + 2 * h) + 3 * dense_mlp + 58 * moe
    expected = 2 * V * h + blocks + h
    assert total(cat.model("deepseek-v3")) == expected == 671_026_404_352  # "671B"
    assert 37e9 <= active(cat.model("deepseek-v3")) < 38e9  # "37B activated"
    assert active(cat.model("deepseek-v3")) == expected - 58 * (256 - 8) * expert


def test_qwen3_235b_a22b_total_and_active(cat):
    V, h, L, a, kv, d = 151936, 4096, 94, 64, 4, 128
    attention = h * a * d + 2 * h * kv * d + a * d * h + 2 * d  # + per-head q/k RMSNorm
    expert = 3 * h * 1536
    per_layer = attention + 128 * expert + h * 128 + 2 * h
    expected = 2 * V * h + L * per_layer + h
    m = cat.model("qwen3-235b-a22b")
    assert total(m) == expected
    assert round(total(m) / 1e9) == 235
    assert active(m) == expected - L * (128 - 8) * expert
    assert round(active(m) / 1e9) == 22


def test_gpt3_175b_is_narayanan_eq2(cat):
    # Narayanan et al. 2021 eq. (2): P = 12 l h^2 (1 + 13/(12 h) + (V + s)/(12 l h)),
    # i.e. 12 l h^2 + 13 l h + (V + s) h; GPT-2's final LayerNorm adds 2 h.
    l, h, V, s = 96, 12288, 50257, 2048
    assert total(cat.model("gpt3-175b")) == 12 * l * h * h + 13 * l * h + (V + s) * h + 2 * h
    assert round(total(cat.model("gpt3-175b")) / 1e9, 1) == 174.6


@pytest.mark.parametrize(
    "size, billions",
    [("1.7b", 1.7), ("3.6b", 3.6), ("7.5b", 7.5), ("18.4b", 18.4), ("39.1b", 39.1), ("76.1b", 76.1),
     ("145.6b", 145.6), ("310.1b", 310.1), ("529.6b", 529.6), ("1t", 1008.0)],
)
def test_megatron_table1_sizes(cat, size, billions):
    m = cat.model(f"megatron-gpt-{size}")
    l, h, V, s = m.layers, m.hidden, 51200, 2048
    assert (m.vocab, m.max_positions, m.ffn) == (V, s, 4 * h)
    assert total(m) == 12 * l * h * h + 13 * l * h + (V + s) * h + 2 * h
    assert round(total(m) / 1e9, 1) == billions


def test_published_sizes(cat):
    # totals the model cards publish, in billions (rounded as published)
    published = {
        "llama-2-13b": 13.0, "llama-3.1-70b": 70.6, "llama-3.1-405b": 405.9, "mixtral-8x22b": 140.6,
        "dbrx": 131.6, "qwen3-8b": 8.2, "qwen3-30b-a3b": 30.5,
    }
    for id, billions in published.items():
        assert round(total(cat.model(id)) / 1e9, 1) == billions, id
    assert 3.3e9 <= active(cat.model("qwen3-30b-a3b")) < 3.4e9  # "3.3B activated"
    assert round(active(cat.model("dbrx")) / 1e9) == 36
    assert round(active(cat.model("mixtral-8x22b")) / 1e9) == 39


def test_chinchilla_gap_is_the_relative_position_projection(cat):
    # Chinchilla's Transformer-XL relative-position projection (h x h per layer) is not
    # representable; with it the reconstructed shape gives the published 70B.
    m = cat.model("chinchilla-70b")
    assert round((total(m) + m.layers * m.hidden**2) / 1e9) == 70
