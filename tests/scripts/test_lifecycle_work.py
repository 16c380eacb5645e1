"""scripts/lifecycle_work.py: the work column follows from the params; rates give projections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import load_script
from thinkmid.config import load_params
from thinkmid.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]


lw = load_script("lifecycle_work")


def rows(profile):
    return {r["stage"]: r for r in lw.work(load_profile(profile))}


def test_paper_counts_follow_the_record_setup():
    w = rows("paper")
    assert w["rlmt"]["steps"] == 400 and w["rlmt"]["samples"] == 2 * 200 * 2 * 16  # 2 arms, 200 steps, P=2, K=16
    assert w["rlmt"]["gen_tokens"] == 12_800 * (48 + 128)
    assert (
        w["self_improve"]["judge_calls"] == 2000 * 16 * 17 * 16 // 2
    )  # the seed: 2,000 steps x 16 prefixes, every pair of K + 1 once
    assert w["reward_gate"]["samples"] == w["reward_gate"]["judge_calls"] == 4 * 64 * 16
    assert w["reasoning_eval"]["samples"] == 4 * (1319 + 500 + 198 + 220) * 8
    assert w["sft"]["steps"] == 3 * 512


def test_limits_and_disabled_benchmarks_count(tmp_path):
    w = rows("embedded")
    p = load_params(ROOT / "profiles" / "embedded.yaml").reasoning_eval
    want = sum(
        min(lw.BENCH_SIZES[b], getattr(p, b).limit or lw.BENCH_SIZES[b])
        for b in lw.BENCH_SIZES
        if getattr(p, b).enabled
    )
    assert w["reasoning_eval"]["samples"] == 4 * want * p.k


def test_rates_project_and_write_is_stable(tmp_path):
    doc = tmp_path / "L.md"
    doc.write_text(f"# t\n{lw.MARK_START}\nold\n{lw.MARK_END}\ntail\n")
    rates = tmp_path / "r.json"
    rates.write_text(json.dumps({s: 1.0 for s in rows("paper")}))
    assert lw.main([str(ROOT / "profiles" / "paper.yaml"), "--rates", str(rates), "--write", str(doc)]) == 0
    text = doc.read_text()
    w = rows("paper")
    total = sum(r["units"] * r["runs"] for r in w.values())
    assert f"{total:,.0f} s" in text and "old" not in text and text.endswith("tail\n")
    assert "| rlmt | 2 | 400 |" in text and "1 s / step" in text
    again = doc.read_text()
    lw.main([str(ROOT / "profiles" / "paper.yaml"), "--rates", str(rates), "--write", str(doc)])
    assert doc.read_text() == again
    rates.write_text(json.dumps({"rlmtt": 1.0}))
    with pytest.raises(SystemExit, match="unknown stages"):
        lw.main([str(ROOT / "profiles" / "paper.yaml"), "--rates", str(rates)])


def test_lifecycle_md_work_columns_are_the_scripts_output():
    """Regenerate with `python scripts/lifecycle_work.py profiles/paper.yaml --write benchmarks/LIFECYCLE.md`."""
    doc = (ROOT / "benchmarks" / "LIFECYCLE.md").read_text()
    table = doc.split(lw.MARK_START, 1)[1].split(lw.MARK_END, 1)[0].strip("\n").splitlines()
    fresh = lw.table(lw.work(load_profile("paper")), {}).strip("\n").splitlines()
    assert len(table) == len(fresh)
    for got, want in zip(table, fresh):  # the measured columns may be filled in; the work columns may not drift
        assert got.split("|")[:8] == want.split("|")[:8]


def test_measured_run_projects_only_what_finished(tmp_path):
    """A stand-in run's wall times become rates per unit of its own work; failed or cut-off stages (null)
    and arms that never ran are left out, and per-step times give fixed cost + mean step x paper steps."""
    import yaml

    from thinkmid.profile import merged

    stand = merged("paper")
    stand["sft"]["raw_steps"], stand["self_improve"]["steps"] = None, 4
    stand["chunks"].update(sft_train=64, sft_val=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(stand))
    (tmp_path / "stage_times.json").write_text(
        json.dumps(
            {
                "sft@raw_base": 40.0,
                "sft@think_base": None,
                "self_improve": 45.0,
                "rlmt@think_base": None,
                "reward_gate": 96.0,
            }
        )
    )
    steps = tmp_path / "reports" / "self_improve"
    steps.mkdir(parents=True)
    (steps / "steps.json").write_text(
        json.dumps([{"step": i, "step_time_s": 20.0 if i == 0 else 5.0} for i in range(4)])
    )
    paper = lw.work(load_profile("paper"))
    rates, proj = lw.projections(paper, tmp_path, load_params)
    assert set(rates) == {"sft", "self_improve", "reward_gate"}  # rlmt failed: no rate from it
    # the gate is one DVC run over its four arms: 96 s for 4 x 64 prefixes x K=16, the paper's own work
    assert rates["reward_gate"] == pytest.approx(96.0 / 4096) and proj["reward_gate"] == pytest.approx(96.0)
    assert rates["sft"] == 40.0 / 4  # one arm of 4 steps (64 rows / 16) finished
    assert proj["sft"] == 10.0 * 512 * 3
    # the first step (compilation, warm-up) is fixed cost: steady 5 s a step, fixed 45 - 4 x 5
    assert rates["self_improve"] == 5.0 and proj["self_improve"] == (45.0 - 20.0) + 5.0 * 2000
    # each arm's first step is its own warm-up (RLMT on the H200: 21.6, 3.7, 1.3 s and 8.0, 1.4, 0.9 s)
    rl = tmp_path / "reports" / "rlmt"
    rl.mkdir()
    for arm, ts in (("think_base", [21.0, 3.0, 1.0]), ("think_phase3", [8.0, 2.0, 2.0])):
        (rl / f"{arm}_timing.json").write_text(json.dumps({"steps": [{"step_time_s": t} for t in ts]}))
    assert lw.step_times(tmp_path / "reports", "rlmt") == [3.0, 1.0, 2.0, 2.0]


def test_extra_stages_count_their_arms_and_project_from_mlflow_step_gaps(tmp_path):
    """Gates and thought arms: work per arm from the params; a stand-in's step time is the median gap
    between its MLflow step metrics; a paper arm the stand-in left out is costed as a same-task arm."""
    import sqlite3

    import yaml

    from thinkmid.profile import merged

    lx = load_script("lifecycle_extra")

    paper = load_profile("paper")
    w = rows("paper")
    kg = paper.knowledge_gates
    assert w["knowledge_gates"]["runs"] == 6 and w["knowledge_gates"]["units"] == 3 * -(-1000 // 16)
    assert w["knowledge_gates"]["samples"] == 6 * 6 * 1319 and kg.eval_max_new_tokens == 512
    assert w["verbal_thought (gsm8k)"]["runs"] == 2 and w["verbal_thought (gsm8k)"]["units"] == 2 * 3 * -(-7473 // 128)
    stand = merged("paper")
    stand["thoughts"]["arms"] = {"base": {"model": "models/base", "task": "gsm8k"}}
    stand["thoughts"]["tasks"]["gsm8k"].update(train=256, epochs=1)  # 2 steps a phase
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(stand))
    db = tmp_path / "mlflow.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE runs (run_uuid TEXT, name TEXT)")
    con.execute("CREATE TABLE metrics (run_uuid TEXT, key TEXT, timestamp INTEGER)")
    con.execute("INSERT INTO runs VALUES ('r1', 'verbal_thought/base')")
    for t in (0, 2000, 4000, 60000):  # steps 2 s apart, one gap around an evaluation
        con.execute("INSERT INTO metrics VALUES ('r1', 'train_loss', ?)", (t,))
    con.commit()
    con.close()
    assert lx.step_time(db, "verbal_thought", "base") == 2.0
    con = sqlite3.connect(db)
    con.execute("INSERT INTO runs VALUES ('r2', 'verbal_thought/phase3')")
    for t in (0, 16000):  # one step in each of two phases: the gap holds an evaluation, not a step
        con.execute("INSERT INTO metrics VALUES ('r2', 'train_loss', ?)", (t,))
    con.commit()
    con.close()
    assert lx.step_time(db, "verbal_thought", "phase3") is None
    times = {"verbal_thought@base": 70.0}
    rates, proj = lx.projections(paper, load_params(tmp_path / "params.yaml"), times, db)
    assert set(rates) == {"verbal_thought (gsm8k)"} and rates["verbal_thought (gsm8k)"] == 2.0
    sw = lx.arm_work(load_params(tmp_path / "params.yaml"))["verbal_thought"]["base"]
    pw = lx.arm_work(paper)["verbal_thought"]["base"]
    one = (70.0 - 2.0 * sw["steps"]) + 2.0 * pw["steps"] + (pw["gen_tokens"] - sw["gen_tokens"]) / lx.GEN_TOK_S
    assert proj["verbal_thought (gsm8k)"] == pytest.approx(2 * one)  # base, and phase3 costed as base
