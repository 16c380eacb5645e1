"""The report regenerates the results record's tables: per-sample artifacts with the record's counts
(record_data.py) go through the pipeline's summarising code and the report, and every number of every
record table (tests/report/record_tables.txt, a verbatim copy) must come back as the record prints it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from record_data import GATE_ARMS, REASONING, gate_groups, reasoning_rows, reasoning_summaries, reasoning_summary

from thinkmid.evals import reward_gate as rg
from thinkmid.evals.reasoning.run import summarize_rows
from thinkmid.io import read_jsonl, write_jsonl
from thinkmid.report import load_inputs, render_results

RECORD = Path(__file__).with_name("record_tables.txt")
VALUE = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|null|true|false")
# record table -> the markdown section (text after this heading, up to the next heading) holding it
SECTIONS = {
    "sft": "## Interleaved-thinking SFT",
    "rlmt": "## RLMT",
    "gate": "## Reward gate",
    "gate_comparisons": "### Pairwise comparisons",
    "go_no_go": "### Go/no-go",
    "reasoning": "## Reasoning eval",
    "macro": "### Macro averages",
    "comparisons": "### Direct comparisons",
}


def record_tables() -> dict[str, list[tuple[str, list[str]]]]:
    """table -> [(row label, the row's values as printed)]."""
    tables, name, n = {}, None, 0
    for line in RECORD.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            name, n = line[3:].split()[0], int(line.split()[2])
            tables[name] = []
        elif name and line.strip() and not line.startswith("#"):
            words = line.split()
            label = " ".join(words[:n]).rstrip(":")
            tables[name].append((label, [w for w in words[n:] if VALUE.fullmatch(w)]))
    return tables


def section(md: str, heading: str) -> str:
    body = md.split(f"\n{heading}\n", 1)[1]
    return re.split(r"\n#{2,3} ", body, maxsplit=1)[0]


def md_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]


def values(cells: list[str]) -> list[str]:
    out = []
    for c in cells:
        for part in c.split(" / "):
            if VALUE.fullmatch(part):
                out.append(part)
    return out


def test_every_number_of_every_record_table(reports):
    md = render_results(load_inputs(reports))
    assert "**81/128 = 63.28%**" in md  # the Phase 3 headline line of the record
    assert "**2.56 -> 2.60**" in md  # the raw suffix NLL, base -> phase3
    checked = 0
    for table, rows in record_tables().items():
        ours = md_rows(section(md, SECTIONS[table]))
        for label, want in rows:
            width = 2 if table in ("comparisons", "reasoning") else 1  # label cells in our markdown row
            match = [r for r in ours if " ".join(r[:width]) == label]
            assert len(match) == 1, (table, label, ours[:3])
            got = values(match[0][width:])[: len(want)]
            assert got == want, (table, label)
            checked += len(want)
    assert checked == 3 * 7 + 2 * 12 + 4 * 10 + 6 * 5 + 4 + 16 * 7 + 4 * 3 + 20 * 3


def test_reasoning_counts_come_back_from_the_sample_jsonl(tmp_path):
    summaries = reasoning_summaries()
    for arm in REASONING:
        per_bench = {}
        for bench in REASONING[arm]:
            path = tmp_path / arm / f"{bench}.jsonl"
            write_jsonl(path, reasoning_rows(arm, bench))
            per_bench[bench] = read_jsonl(path)
        assert reasoning_summary(per_bench, arm) == summaries[arm]
    gsm = summaries["think_base"]["benchmarks"]["gsm8k"]
    assert (gsm["correct"], gsm["samples"], gsm["any_pass"], gsm["problems"]) == (1113, 10552, 671, 1319)
    assert summarize_rows(reasoning_rows("think_base", "gsm8k"), 8)["mean_at_k"] == pytest.approx(0.105478, abs=5e-7)


def test_gate_fixture_is_per_prefix_rewards_with_the_record_rates():
    rows, groups = gate_groups()
    summary = rg.summarize(rows, groups, 0.05, 0.5)
    assert len(rows) == 64 and all(len(g) == 16 for a in GATE_ARMS for g in groups[a])
    assert [round(summary["arms"][a]["reward_mean"] * 1024) for a in GATE_ARMS] == [90, 93, 96, 100]
    assert [round(summary["arms"][a]["mixed_groups"] * 64) for a in GATE_ARMS] == [35, 38, 41, 39]
    assert summary["go_no_go"] == dict.fromkeys(rg.GO_NO_GO_KEYS, True)  # the record's four trues
    assert summary["phase3_vs_base"]["mean_phase3_minus_base_reward"] == pytest.approx(3 / 1024)
    # written and read back as the stage's per-sample JSONL, every reward is still there
    out = [r for a in GATE_ARMS for r in rg.sample_rows(rows, groups[a])]
    assert len(out) == 4 * 64 * 16 and sum(r["reward"] for r in out) == 90 + 93 + 96 + 100
