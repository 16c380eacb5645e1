"""Two processes logging to one MLflow sqlite database at once (a StageRun each, different arms, ~50
per-step metrics each) lose no runs and no metrics, on a fresh database and on an existing one."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest
from reliability_lab import stage_env

STEPS = 50
CHILD = textwrap.dedent(f"""
    import sys
    from thinkmid.config import parse_params
    from thinkmid.track import StageRun

    arm, go = sys.argv[1], sys.argv[2]
    params = parse_params("profile: micro\\ntracking: {{experiment: concurrency}}\\n")
    import mlflow  # import first, then wait for the other process: both hit the db together
    print("ready", flush=True)
    sys.stdin.readline()
    with StageRun("sft", params, arm=arm) as tr:
        for step in range({STEPS}):
            tr.log_metrics({{"train_loss": 1.0 / (step + 1), "lr": 1e-3, "grad_norm": step * 0.1}}, step=step)
        tr.write_metrics(f"reports/sft/{{arm}}.json", {{"val_loss": 0.5, "steps": {STEPS}}})
""")


def _race(tmp_path, db, arms=("raw_base", "think_base")):
    env = stage_env(f"sqlite:///{db}")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, arm, "go"],
            cwd=tmp_path,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for arm in arms
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:  # release both at once
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]


def _check(db, names):
    """Every run FINISHED, one per name given, each with every step of every metric exactly once."""
    con = sqlite3.connect(db)
    runs = con.execute("select name, run_uuid, status from runs").fetchall()
    assert sorted(n for n, _, _ in runs) == sorted(names) and {s for _, _, s in runs} == {"FINISHED"}, runs
    for _, run, _ in runs:
        for key in ("train_loss", "lr", "grad_norm"):
            steps = [
                s
                for (s,) in con.execute(
                    "select step from metrics where run_uuid = ? and key = ? order by step", (run, key)
                )
            ]
            assert steps == list(range(STEPS)), (run, key, steps)
        latest = dict(con.execute("select key, value from latest_metrics where run_uuid = ?", (run,)))
        assert latest["val_loss"] == 0.5 and latest["train_loss"] == pytest.approx(1 / STEPS)
    con.close()


def test_two_writers_on_a_fresh_then_an_existing_database(tmp_path):
    db = tmp_path / "mlflow.db"
    _race(tmp_path, db)  # both processes create the schema and the experiment at the same moment
    _check(db, ["sft/raw_base", "sft/think_base"])
    _race(tmp_path, db, arms=("think_phase3", "raw_base"))  # the db exists; sft/raw_base runs again
    _check(db, ["sft/raw_base", "sft/think_base", "sft/think_phase3", "sft/raw_base"])
