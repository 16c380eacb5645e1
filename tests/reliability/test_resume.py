"""Resume after SIGKILL: a training stage killed after its first checkpoint, rerun to completion, ends
exactly like an uninterrupted run: same steps and per-step history, equal weights, one FINISHED MLflow
run whose per-step metric history has every step once, and no checkpoints left behind."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch
from reliability_lab import make_lab, stage_cmd, stage_env
from safetensors.torch import load_file

# stage, arm, checkpoint dir, per-step history file, output model, per-step MLflow key
CASES = {
    "sft": (
        "think_base",
        "checkpoints/sft_think_base",
        "reports/sft/think_base_steps.json",
        "models/sft_think_base",
        "train_loss",
    ),
    "rlmt": (
        "think_base",
        "checkpoints/rlmt_think_base",
        "reports/rlmt/think_base_steps.json",
        "models/think_base_rlmt",
        "reward_mean",
    ),
}


def _lab(root: Path, stage: str, model_dir: Path, qwen_tok) -> Path:
    lab = make_lab(root, model_dir, qwen_tok)
    if stage == "rlmt":  # RLMT starts from the arm's SFT model
        import shutil

        shutil.copytree(model_dir, lab / "models" / "sft_think_base")
    return lab


def _start(lab: Path, stage: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        stage_cmd(stage, "--arm", CASES[stage][0]),
        cwd=lab,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def _kill_after_first_checkpoint(lab: Path, stage: str, env: dict) -> int:
    """Start the stage, SIGKILL it as soon as a checkpoint exists; returns the checkpointed step."""
    ckpt = lab / CASES[stage][1]
    proc = _start(lab, stage, env)
    try:
        deadline = time.monotonic() + 240
        while not (ckpt.is_dir() and any(p.name.startswith("step-") for p in ckpt.iterdir())):
            assert proc.poll() is None, f"stage ended before its first checkpoint:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    steps = sorted(int(p.name[5:]) for p in ckpt.iterdir() if p.name.startswith("step-"))
    assert steps, "the kill left no complete checkpoint"
    return steps[-1]


def _comparable(history: list[dict]) -> list[dict]:
    """Timings differ from run to run; every other per-step number must match."""
    return [{k: v for k, v in h.items() if not k.endswith("_time_s") and k != "throughput_tok_s"} for h in history]


def _assert_same_history(a: list[dict], b: list[dict]) -> None:
    a, b = _comparable(a), _comparable(b)
    assert [h["step"] for h in a] == [h["step"] for h in b] == list(range(len(a)))
    for x, y in zip(a, b):
        assert x.keys() == y.keys(), (x, y)
        for k in x:
            if isinstance(x[k], float):
                assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6), (x["step"], k, x[k], y[k])
            else:
                assert x[k] == y[k], (x["step"], k)


def _mlflow_check(db: Path, name: str, key: str, n_steps: int) -> None:
    con = sqlite3.connect(db)
    runs = con.execute("select run_uuid, status from runs where name = ?", (name,)).fetchall()
    assert [s for _, s in runs] == ["FINISHED"], runs  # the killed run was resumed, not duplicated
    steps = [
        s
        for (s,) in con.execute(
            "select step from metrics where run_uuid = ? and key = ? order by step", (runs[0][0], key)
        )
    ]
    assert steps == list(range(n_steps)), steps
    con.close()


@pytest.mark.parametrize("stage", ["sft", "rlmt"])
def test_sigkill_then_rerun_equals_uninterrupted(stage, tmp_path, micro_model_dir, qwen_tok):
    arm, ckpt_dir, steps_file, out_dir, key = CASES[stage]
    ref = _lab(tmp_path / "ref", stage, micro_model_dir, qwen_tok)
    cut = _lab(tmp_path / "cut", stage, micro_model_dir, qwen_tok)
    ref_env = stage_env(f"sqlite:///{tmp_path / 'ref.db'}")
    cut_env = stage_env(f"sqlite:///{tmp_path / 'cut.db'}")

    ref_proc = _start(ref, stage, ref_env)  # the uninterrupted run, alongside (1 thread each)
    try:
        killed_at = _kill_after_first_checkpoint(cut, stage, cut_env)
        assert not (cut / out_dir).exists()  # the killed run never got to its final output
        _finish(_start(cut, stage, cut_env))  # the rerun resumes from the checkpoint
    finally:
        _finish(ref_proc)

    ref_hist = json.loads((ref / steps_file).read_text())
    cut_hist = json.loads((cut / steps_file).read_text())
    assert 0 < killed_at < len(ref_hist)  # it really was interrupted mid-way (a checkpoint step counts done steps)
    _assert_same_history(ref_hist, cut_hist)

    a = load_file(str(ref / out_dir / "model.safetensors"))
    b = load_file(str(cut / out_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-6), name
    assert not (ref / ckpt_dir).exists() and not (cut / ckpt_dir).exists()  # cleared on completion
    for db in (tmp_path / "ref.db", tmp_path / "cut.db"):
        _mlflow_check(db, f"{stage}/{arm}", key, len(ref_hist))
