"""The report: every table from the record is rendered, hand-checked cells, byte-identical reruns, the stage."""

from __future__ import annotations

import json
import shutil

import pytest

from thinkmid.errors import InputError
from thinkmid.report import build_summary, load_inputs, render_results
from thinkmid.report.fmt import count, d1, d6, f6, md_table
from thinkmid.report.plots import reward_gate_plot, rlmt_reward_plot

HEADINGS = [
    "# thinkmid results",
    "## Phase 3: self-improving pretraining",
    "### Held-out continuation quality",
    "### Training summary",
    "## Data and teacher-thought audit",
    "### Chunks",
    "### Teacher thoughts",
    "## Interleaved-thinking SFT",
    "## RLMT",
    "## Reward gate",
    "### Pairwise comparisons",
    "### Go/no-go",
    "### Seed gate fields",
    "## Thought-use probe",
    "### Causal deltas",
    "## Reasoning eval",
    "### Macro averages",
    "### Direct comparisons",
    "### Second score: math-verify",
]


def _row(md: str, *cells: str) -> list[str]:
    """The cells of the first table row whose leading cells are `cells`."""
    for line in md.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and parts[: len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row starting with {cells}")


def test_formatters_are_fixed():
    assert f6(2.6945931) == "2.694593" and f6(-1e-9) == "0.000000" and f6(None) == "n/a"
    assert d6(0.0041914) == "+0.004191" and d6(-1e-9) == "+0.000000" and d6(-0.0109932) == "-0.010993"
    assert d1(3.975) == "+4.0" and count(4036608) == "4,036,608"
    assert md_table(["A", "B"], [["x", "1"]]) == "| A   |   B |\n| --- | --: |\n| x   |   1 |"


def test_every_table_is_rendered(reports):
    md = render_results(load_inputs(reports), "embedded")
    for h in HEADINGS:
        assert f"\n{h}\n" in f"\n{md}", h
    assert "Not run" not in md
    assert "**81/128 = 63.28%**" in md and "54.66% to 71.13%" in md and "**2.56 -> 2.60**" in md
    assert "60/128 = 46.88%" in md  # the stricter both-orders figure
    # SFT row, as in the record (our model dir as the Checkpoint), plus the thought-token NLL column.
    assert _row(md, "raw_base SFT")[1:11] == [
        "models/sft_raw_base",
        "val_loss",
        "2.694593",
        "2.694593",
        "2.694593",
        "0.020321",
        "4,036,608",
        "2729.53",
        "94.94",
        "4.500000 -> 2.250000",
    ]
    assert _row(md, "think_phase3 RLMT")[1:6] == ["200", "null", "0.090313", "0.093750", "0.5625"]
    assert _row(md, "think_phase3 RLMT")[-1] == "models/think_phase3_rlmt"
    assert _row(md, "think_phase3_rlmt")[1] == "0.097656"
    assert _row(md, "think_phase3_minus_think_base_rlmt")[1:6] == [
        "-0.002930",
        "0.281250",
        "0.312500",
        "0.406250",
        "64",
    ]
    lo, hi = (float(x) for x in _row(md, "think_phase3_minus_think_base_rlmt")[6].strip("[]").split(", "))
    assert -0.2 < lo < -0.002930 < hi < 0.2  # the paired interval (extra column) holds the record's delta
    pairs = md.split("### Pairwise comparisons")[1].split("###")[0]
    assert [line.split("|")[1].strip() for line in pairs.splitlines() if "_minus_" in line and line[0] == "|"] == [
        "think_base_rlmt_minus_think_base",
        "think_phase3_minus_think_base",
        "think_phase3_rlmt_minus_think_base",
        "think_phase3_minus_think_base_rlmt",
        "think_phase3_rlmt_minus_think_base_rlmt",
        "think_phase3_rlmt_minus_think_phase3",
    ]  # the record's order
    assert _row(md, "phase3_higher_mean_reward")[1] == "true"
    evidence = _row(md, "phase3_higher_mean_reward")[2]  # the delta it decides on, with its paired interval
    assert evidence.startswith("think_phase3 - think_base mean reward over shared prefixes +0.0029 (95% CI -")
    assert "64 prefixes" in evidence and "(95% CI" in _row(md, "variance_ok")[2]
    assert _row(md, "think_base", "blank")[2:] == ["0.062500", "0.242061", "0.062500", "0.250000", "0.000000", "32"]
    assert _row(md, "think_base", "normal_minus_blank")[2:7] == ["+0.062500", "0.250000", "0.000000", "0.750000", "8"]
    assert _row(md, "think_base", "normal_minus_blank")[7].startswith("[")  # the paired interval (extra)
    # k comes from the data.
    reasoning = md.split("## Reasoning eval")[1]
    assert _row(reasoning, "Arm", "Benchmark")[2:7] == [
        "Mean@8",
        "Correct / Samples",
        "Pass@8 Any",
        "Any Pass / Problems",
        "Avg Completion Tokens",
    ]
    assert _row(md, "think_base", "GSM8K")[2:7] == ["0.105478", "1113 / 10552", "0.508719", "671 / 1319", "322.2"]
    mv = md.split("### Second score: math-verify")[1]
    # record_data: the math-verify score also accepts sample 7 of every fifth problem: +264 samples,
    # and problems 675, 680, ..., 1315 (129 of them) gain their first correct sample
    assert _row(mv, "think_base", "GSM8K")[2:] == ["0.130497", "1377 / 10552", "0.606520", "800 / 1319"]
    macro = md.split("### Macro averages")[1]  # the gate table also has `think_base` rows, so search after
    assert _row(macro, "think_base")[1:] == ["0.167993", "0.494291", "364.0"]
    assert _row(macro, "think_phase3_rlmt")[1:] == ["0.166240", "0.512409", "360.2"]


def test_direct_comparison_deltas_match_the_record(reports):
    md = render_results(load_inputs(reports))
    comp = md.split("### Direct comparisons")[1]
    assert _row(comp, "Base+Think+RLMT vs Base+Think", "GSM8K")[2:] == ["-0.010993", "-0.031842", "+2.7", "n/a", "n/a"]
    assert _row(comp, "Base+Think+RLMT vs Base+Think", "Macro")[2:5] == ["+0.004191", "+0.005454", "+4.0"]
    assert _row(comp, "Phase3+Think+RLMT vs Base+Think+RLMT", "OlympiadBench")[2:5] == [
        "-0.017045",
        "+0.009091",
        "-11.5",
    ]
    assert _row(comp, "Phase3+Think vs Base+Think", "Macro")[2:5] == ["+0.006732", "+0.017503", "-1.8"]
    assert _row(comp, "Phase3+Think+RLMT vs Base+Think+RLMT", "GPQA-Diamond")[3] == "+0.000000"
    assert sum(1 for line in comp.splitlines() if " vs " in line) == 4 * 5


def test_direct_comparisons_get_paired_intervals_from_the_sample_files(reports):
    """With reports/reasoning_eval/<arm>/<bench>.jsonl present, each delta gets its paired interval."""
    from record_data import reasoning_rows

    from thinkmid.io import write_jsonl

    for arm in ("think_base", "think_base_rlmt"):
        write_jsonl(reports / "reasoning_eval" / arm / "gpqa_diamond.jsonl", reasoning_rows(arm, "gpqa_diamond"))
    comp = render_results(load_inputs(reports)).split("### Direct comparisons")[1]
    row = _row(comp, "Base+Think+RLMT vs Base+Think", "GPQA-Diamond")
    (mlo, mhi), (plo, phi) = ([float(x) for x in c.strip("[]").split(", ")] for c in row[5:7])
    assert mlo < float(row[2]) < mhi and plo < float(row[3]) < phi and mhi - mlo < 0.2
    assert _row(comp, "Base+Think+RLMT vs Base+Think", "GSM8K")[5:] == ["n/a", "n/a"]  # no sample file
    assert _row(comp, "Base+Think+RLMT vs Base+Think", "Macro")[5:] == ["n/a", "n/a"]  # GSM8K etc. have none


def test_macro_row_gets_a_stratified_interval_when_every_benchmark_has_samples(reports):
    from record_data import REASONING, reasoning_rows

    from thinkmid.io import write_jsonl

    for arm in ("think_base", "think_base_rlmt"):
        for bench in REASONING[arm]:
            write_jsonl(reports / "reasoning_eval" / arm / f"{bench}.jsonl", reasoning_rows(arm, bench))
    comp = render_results(load_inputs(reports)).split("### Direct comparisons")[1]
    row = _row(comp, "Base+Think+RLMT vs Base+Think", "Macro")
    (mlo, mhi), (plo, phi) = ([float(x) for x in c.strip("[]").split(", ")] for c in row[5:7])
    assert mlo <= float(row[2]) <= mhi and plo <= float(row[3]) <= phi and 0 < mhi - mlo < 0.1


def test_gate_summary_without_intervals_still_renders(reports):
    path = reports / "reward_gate/summary.json"
    obj = json.loads(path.read_text())
    obj.pop("go_no_go_intervals")
    for c in obj["comparisons"].values():
        del c["mean_reward_delta_ci95_low"], c["mean_reward_delta_ci95_high"]
    path.write_text(json.dumps(obj))
    md = render_results(load_inputs(reports))
    assert _row(md, "think_phase3_minus_think_base")[6] == "n/a" and _row(md, "variance_ok")[2] == "n/a"


def test_render_is_byte_identical_and_order_free(reports):
    first = render_results(load_inputs(reports), "embedded")
    # Rewrite one input with its keys in reverse order: the page must not change.
    path = reports / "reward_gate/summary.json"
    obj = json.loads(path.read_text())
    obj["arms"] = dict(reversed(list(obj["arms"].items())))
    obj["comparisons"] = dict(reversed(list(obj["comparisons"].items())))
    path.write_text(json.dumps(obj))
    assert render_results(load_inputs(reports), "embedded").encode() == first.encode()
    s1, s2 = build_summary(load_inputs(reports)), build_summary(load_inputs(reports))
    assert json.dumps(s1) == json.dumps(s2)


def test_summary_headline_numbers(reports):
    s = build_summary(load_inputs(reports))
    assert s["phase3"]["wins"] == 81 and s["phase3"]["win_rate"] == 81 / 128
    assert s["reasoning"]["k"] == 8
    gsm = s["reasoning"]["comparisons"]["think_base_rlmt_vs_think_base"]["gsm8k"]
    assert gsm["mean_at_k_delta"] == pytest.approx(-116 / 10552)
    assert s["reward_gate"]["go_no_go"]["variance_ok"] is True
    assert s["not_run"] == []


def test_missing_optional_inputs_say_not_run(reports):
    shutil.rmtree(reports / "thought_probe")
    (reports / "teacher_thoughts/metrics.json").unlink()
    (reports / "reasoning_eval/think_base_rlmt.json").unlink()
    inp = load_inputs(reports)
    md = render_results(inp)
    probe = md.split("## Thought-use probe")[1].split("\n## ")[0]
    assert "Not run: `reports/thought_probe/summary.json` not found." in probe
    assert "Not run: `reports/teacher_thoughts/metrics.json` not found." in md
    assert "Not run: `reports/reasoning_eval/think_base_rlmt.json` not found." in md
    comp = md.split("### Direct comparisons")[1]
    assert "Phase3+Think vs Base+Think" in comp and "Base+Think+RLMT vs Base+Think |" not in comp
    assert "Not run (an arm is missing): think_base_rlmt vs think_base, think_phase3_rlmt vs think_base_rlmt." in comp
    s = build_summary(inp)
    assert s["thought_probe"] is None
    assert s["not_run"] == ["teacher_thoughts", "thought_probe", "reasoning/think_base_rlmt"]
    shutil.rmtree(reports / "reasoning_eval")
    assert "## Reasoning eval\n\nNot run:" in render_results(load_inputs(reports))


@pytest.mark.parametrize(
    "rel",
    ["sft/think_phase3.json", "rlmt/think_base.json", "reward_gate/summary.json", "eval_continuations/metrics.json"],
)
def test_missing_required_input_raises(reports, rel):
    (reports / rel).unlink()
    with pytest.raises(InputError, match=str(reports / rel)):
        load_inputs(reports)


def test_missing_key_names_file_and_key(reports):
    path = reports / "sft/raw_base.json"
    obj = json.loads(path.read_text())
    del obj["val_loss"]
    path.write_text(json.dumps(obj))
    with pytest.raises(InputError, match=r"raw_base\.json: missing key\(s\) \['val_loss'\]"):
        load_inputs(reports)


def test_plots_are_deterministic_pngs(reports, tmp_path):
    inp = load_inputs(reports)
    a = rlmt_reward_plot(inp.rlmt_steps, tmp_path / "p/rlmt.png").read_bytes()
    b = rlmt_reward_plot(inp.rlmt_steps, tmp_path / "p/rlmt.png").read_bytes()
    g = reward_gate_plot(inp.reward_gate, tmp_path / "p/gate.png", 64 * 16).read_bytes()
    empty = rlmt_reward_plot({}, tmp_path / "p/empty.png").read_bytes()
    for png in (a, g, empty):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == b and a != empty


def test_stage_writes_and_logs(reports, tmp_path, monkeypatch):
    import mlflow

    from stages.report import run
    from thinkmid.cli import stage_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "params.yaml").write_text("profile: test\nreward_gate:\n  prefixes: 64\n  k: 16\n")
    stage_main("report", run, argv=["--params", str(tmp_path / "params.yaml")])
    out = tmp_path / "reports"
    first = {
        p: (out / p).read_bytes()
        for p in ("RESULTS.md", "summary.json", "plots/rlmt_reward.png", "plots/reward_gate.png")
    }
    assert b"Params profile: `test`." in first["RESULTS.md"]
    assert json.loads(first["summary.json"])["phase3"]["comparisons"] == 128
    stage_main("report", run, argv=["--params", str(tmp_path / "params.yaml")])
    assert {p: (out / p).read_bytes() for p in first} == first  # a rerun changes no byte

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["thinkmid"], output_format="list")
    assert len(runs) == 2 and runs[0].info.run_name == "report" and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["phase3.win_rate"] == pytest.approx(81 / 128)
    arts = {f.path for f in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id, "report")}
    assert arts == {"report/RESULTS.md", "report/summary.json", "report/rlmt_reward.png", "report/reward_gate.png"}

    (out / "rlmt/think_phase3.json").unlink()
    with pytest.raises(SystemExit) as e:
        stage_main("report", run, argv=["--params", str(tmp_path / "params.yaml")])
    assert e.value.code == 2
