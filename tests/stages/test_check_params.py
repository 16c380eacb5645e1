"""check_params: the first DVC stage validates the whole params.yaml, so a key no stage reads still fails
`dvc repro` with one line naming it; a valid edit leaves its output, and so every other stage, alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.check_params import OUT, TEXT, main

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def _sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    exe = [sys.executable, "-m", "dvc", *cmd[1:]] if cmd[0] == "dvc" else cmd
    res = subprocess.run(exe, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    if check:
        assert res.returncode == 0, (cmd, res.stdout[-2000:], res.stderr[-3000:])
    return res


def _init(repo: Path) -> None:
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        [*git, "add", "-A"],
        [*git, "commit", "-qm", "lab"],
    ):
        _sh(cmd, repo)


def test_valid_params_write_the_fixed_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    main([])
    assert (tmp_path / OUT).read_text() == TEXT


def test_unknown_top_level_key_is_one_error_naming_key_and_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text + "lrr: 1e-07\n")
    line = len(text.splitlines()) + 1
    with pytest.raises(SystemExit) as e:
        main([])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: params.yaml:{line}: lrr: unknown key"), err
    assert not (tmp_path / OUT).exists()


def test_every_stage_descends_from_check_params():
    """Whatever `dvc repro <target>` is asked for, check_params is upstream of it and runs first."""
    from dvc.repo import Repo

    def upstream(graph, stage) -> set:
        seen, todo = set(), [stage]
        while todo:
            for dep in graph.successors(todo.pop()):  # edges point from a stage to the stages it depends on
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    with Repo(str(ROOT)) as repo:
        graph = repo.index.graph
        stages = {s.addressing: s for s in graph.nodes}
        check = stages.pop("check_params")
        orphans = sorted(name for name, s in stages.items() if check not in upstream(graph, s))
    assert len(stages) >= 10
    assert not orphans, f"stages that do not depend on check_params: {orphans}"


@pytest.mark.slow
def test_dvc_repro_stops_at_an_unknown_top_level_key(tmp_path):
    repo = tmp_path / "lab"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("stages", "thinkmid"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    _init(repo)
    with open(repo / "params.yaml", "a") as f:
        f.write("lrr: 1e-07\n")
    res = _sh(["dvc", "repro"], repo, check=False)
    assert res.returncode != 0
    errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.match(r"error: params\.yaml:\d+: lrr: unknown key", errors[0]), errors
    assert "failed to reproduce 'check_params'" in res.stderr + res.stdout
    assert not (repo / "models").exists()  # nothing downstream ran


STAGES = """\
stages:
  check_params:
    cmd: python -m stages.check_params
    deps: [params.yaml]
    outs: [reports/check_params/valid.txt]
  downstream:
    cmd: python -c "open('down.txt', 'a').write('ran\\\\n')"
    deps: [reports/check_params/valid.txt]
    params: [sft.lr]
    outs: [{down.txt: {persist: true}}]
"""


@pytest.mark.slow
def test_a_valid_edit_reruns_only_the_stages_that_read_it(tmp_path):
    repo = tmp_path / "lab"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(STAGES)
    (repo / "params.yaml").write_text("profile: micro\nsft: {lr: 0.001}\nrlmt: {k: 4}\n")
    _init(repo)
    _sh(["dvc", "repro"], repo)
    assert (repo / "down.txt").read_text() == "ran\n"
    (repo / "params.yaml").write_text("profile: micro\nsft: {lr: 0.001}\nrlmt: {k: 8}\n")  # a section it never reads
    out = _sh(["dvc", "repro"], repo).stdout
    assert "Running stage 'check_params'" in out and "Running stage 'downstream'" not in out
    assert (repo / "down.txt").read_text() == "ran\n"
    (repo / "params.yaml").write_text("profile: micro\nsft: {lr: 0.002}\nrlmt: {k: 8}\n")  # one it does read
    assert "Running stage 'downstream'" in _sh(["dvc", "repro"], repo).stdout
