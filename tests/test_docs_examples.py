"""The documentation's example outputs are real: every ``$ llmplan …`` line of a ``console``
block in ``docs/`` whose output is shown, and whose plan files (if any) are bundled, is run here and
its output must equal the block (a block that starts with ``…`` shows an excerpt: it must
appear in the output as it is).

A change to the model that moves a number shown in the docs fails here until the docs
are re-run — keeping them current in the same commit.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from llmplan.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _examples() -> list[tuple[str, str, str]]:
    out = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for block in re.findall(r"```console\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            lines = block.split("\n")
            i = 0
            while i < len(lines):
                if not lines[i].startswith("$ "):
                    i += 1
                    continue
                cmd, j = lines[i][2:], i + 1
                while cmd.rstrip().endswith("\\") and j < len(lines):
                    cmd, j = cmd.rstrip()[:-1] + " " + lines[j].strip(), j + 1
                shown = []
                while j < len(lines) and not lines[j].startswith("$ "):
                    shown.append(lines[j])
                    j += 1
                i = j
                cmd = cmd.split("  #")[0].strip()
                expected = "\n".join(shown).strip("\n")
                args = shlex.split(cmd)
                files = [a for a in args if a.endswith(".toml")]
                if args[0] == "llmplan" and expected and "--plot" not in args and all((ROOT / f).exists() for f in files):
                    out.append((doc.name, cmd, expected))
    return out


EXAMPLES = _examples()


def test_the_docs_have_runnable_examples():
    assert {d for d, _, _ in EXAMPLES} >= {"inverse.md", "phases.md", "scaling.md"}


@pytest.mark.parametrize(("doc", "cmd", "expected"), EXAMPLES, ids=[f"{d}:{c[8:60]}" for d, c, _ in EXAMPLES])
def test_doc_example_output_is_current(doc, cmd, expected, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    main(shlex.split(cmd)[1:])
    got = capsys.readouterr().out.rstrip("\n")
    if expected.startswith("…"):
        assert expected[1:].strip("\n") in got, f"{doc}: re-run `{cmd}` and update the block"
    else:
        assert got == expected, f"{doc}: re-run `{cmd}` and update the block"


#: example plans whose header comment quotes llmplan's own prediction: file → the
#: ``llmplan.validation.METRICS`` key of the quoted number
QUOTED = {
    "llama3-405b-pretrain.toml": "tflops_per_gpu",
    "llama3-70b-fp8-h100-megatron-bridge.toml": "tokens_per_sec_per_gpu",
    "llama3-8b-fp8-h100-partial-recompute.toml": "tokens_per_sec_per_gpu",
}


@pytest.mark.parametrize("name", sorted(QUOTED))
def test_example_comments_quote_the_current_prediction(name):
    """A header comment's "llmplan … predicts about N" is the current estimate, within the
    rounding of "about" (2 %); the examples are plans users copy, with claims they read."""
    import llmplan
    from llmplan.validation import METRICS

    path = ROOT / "examples" / name
    quoted = re.search(r"predicts about ([\d,]+)", path.read_text(encoding="utf-8"))
    assert quoted, f"{name}: no 'predicts about N' in its comments"
    value = float(quoted.group(1).replace(",", ""))
    plan = llmplan.load(path)
    predicted = METRICS[QUOTED[name]].predict(llmplan.estimate(plan), plan)
    assert value == pytest.approx(predicted, rel=0.02)


def test_the_errors_page_lists_the_current_parallelism_keys():
    """docs/errors.md shows the unknown-key message for ``[parallelism] tensor_paralel``; its
    list of allowed keys must be the one llmplan prints (it went stale twice as keys were added)."""
    import llmplan

    shown = re.search(r"^(parallelism\.tensor_paralel: unknown key .*)$", (ROOT / "docs/errors.md").read_text(encoding="utf-8"), re.M)
    assert shown
    text = (ROOT / "examples/llama2-70b-pretrain.toml").read_text(encoding="utf-8")
    with pytest.raises(llmplan.LlmplanError) as err:
        llmplan.loads(text.replace("[parallelism]\n", "[parallelism]\ntensor_paralel = 8\n", 1))
    assert shown.group(1) in str(err.value)
