"""benchmarks/repro_budget.py on a tiny DVC project of shell stages, and the stack sampler + summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import repro_budget  # noqa: E402
from tests.conftest import load_script  # noqa: E402

stack_summary = load_script("stack_summary")

# a -> b -> c, a -> slow, a -> bad -> after_bad, and an independent x -> y
STAGES = {
    "a": ("true", [], ["a.txt"]),
    "b": ("true", ["a.txt"], ["b.txt"]),
    "c": ("true", ["b.txt"], ["c.txt"]),
    "slow": ("true", ["a.txt"], ["slow.txt"]),
    "bad": ("exit 3", ["a.txt"], ["bad.txt"]),
    "after_bad": ("true", ["bad.txt"], ["after_bad.txt"]),
    "x": ("true", [], ["x.txt"]),
    "y": ("true", ["x.txt"], ["y.txt"]),
}


@pytest.fixture()
def project(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    stages = {}
    for name, (cmd, deps, outs) in STAGES.items():
        run = cmd if cmd.startswith("exit") else f"{cmd} && echo {name} > {outs[0]}"
        stages[name] = {"cmd": run, "outs": outs, **({"deps": deps} if deps else {})}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [sys.executable, "-m", "dvc", "config", "core.analytics", "false"],
    ):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ran(log: Path) -> list[str]:
    return [line.split("'")[1] for line in log.read_text().splitlines() if "Running stage '" in line]


def test_order_budget_and_failures(project):
    (project / "est.json").write_text(json.dumps({"slow": 10_000, "a": 1, "b": 1, "c": 1, "x": 1, "y": 1, "bad": 1}))
    log = project / "repro.log"
    rc = repro_budget.main(["--log", str(log), "--budget", "300", "--estimates", "est.json", "--first", "y", "bad"])
    assert rc == 1  # `bad` failed
    order = ran(log)
    assert order[:4] == ["x", "y", "a", "bad"]  # --first (and its upstream) early, in the order named
    assert order.index("a") < order.index("b") < order.index("c")  # topological
    assert "slow" not in order and "after_bad" not in order  # over the budget; downstream of a failure
    text = log.read_text()
    assert "=== skip slow: not started: estimate 10000 s" in text
    assert "=== skip after_bad: upstream bad failed" in text
    assert all(line.split(" ", 1)[0].replace(".", "").isdigit() for line in text.splitlines())  # stamped

    # the next call runs only what is left: the budget stage; the failure only when asked to
    (project / "est.json").write_text(json.dumps({"slow": 1}))
    rc = repro_budget.main(["--log", str(log), "--estimates", "est.json"])
    assert rc == 1 and ran(log)[len(order) :] == ["slow"]
    assert "=== skip bad: failed in an earlier call" in log.read_text()
    rc = repro_budget.main(["--log", str(log), "--retry-failed"])
    assert rc == 1 and ran(log)[len(order) + 1 :] == ["bad"]


def test_unknown_first_stage_is_one_error(project):
    with pytest.raises(SystemExit, match=r"--first: no stage or foreach group \['nope'\]"):
        repro_budget.main(["--log", str(project / "repro.log"), "--first", "nope"])
    assert not (project / "repro.log").exists()  # nothing ran, nothing written


def test_stack_sampler_and_summary(tmp_path):
    """A `-m stages.<name>` process under the sampler leaves a collapsed-stack file the summary reads."""
    pkg = tmp_path / "stages"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "busy.py").write_text(
        "import time\ndef spin(s):\n    end = time.time() + s\n    while time.time() < end:\n        pass\nspin(0.6)\n"
    )
    stacks = tmp_path / "stacks"
    env = {
        **os.environ,
        "THINKMID_STACKS": str(stacks),
        "THINKMID_STACKS_INTERVAL": "0.02",
        "PYTHONPATH": f"{ROOT / 'benchmarks' / 'stack_sampler'}{os.pathsep}{tmp_path}",
    }
    subprocess.run([sys.executable, "-m", "stages.busy", "--arm", "one"], cwd=tmp_path, env=env, check=True)
    subprocess.run([sys.executable, "-c", "pass"], cwd=tmp_path, env=env, check=True)  # not a stage: no file
    files = list(stacks.glob("*.txt"))
    assert [f.name.rsplit("-", 1)[0] for f in files] == ["busy@one"]
    summary = stack_summary.summarize(stacks)
    secs = summary["busy@one"]["seconds"]
    assert summary["busy@one"]["wall_s"] >= 0.6
    assert secs.get("spin (busy.py)", 0) >= 0.3, secs
    assert "| busy@one |" in stack_summary.markdown(summary)


def test_classify_takes_the_first_category():
    stack = "<module> (/w/stages/x.py:1);run (/w/thinkmid/a.py:2);_find_and_load (<frozen>:1);compile_fx (torch/_inductor/x.py:3)"
    assert stack_summary.classify(stack) == "imports"
    assert (
        stack_summary.classify("<module> (/w/stages/x.py:1);step (/w/thinkmid/train/b.py:9);mm (torch/x.py:1)")
        == "step (b.py)"
    )
