"""thinkmid.provenance: commit and dirty flag, device, versions, profile, switches; RESULTS.md opens with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from thinkmid.provenance import git_state, markdown, provenance, provenance_markdown, switches


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True, capture_output=True
    )


def test_git_state_commit_and_dirty_flag(tmp_path):
    assert git_state(tmp_path) == ("unknown", "unknown")  # not a git checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "c")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == (head, "false")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")  # DVC's bookkeeping: still clean
    (tmp_path / "scratch.txt").write_text("untracked\n")  # untracked files do not make it dirty
    assert git_state(tmp_path) == (head, "false")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (head, "true")


def test_switches_in_force_without_secrets(monkeypatch):
    monkeypatch.setenv("THINKMID_DECODE_ATTN", "eff")
    monkeypatch.setenv("THINKMID_FAST_TRAIN", "0")
    monkeypatch.setenv("THINKMID_API_KEY", "sk-secret-value-0001")
    monkeypatch.setenv("OTHER_SWITCH", "1")
    sw = switches()
    assert sw["THINKMID_DECODE_ATTN"] == "eff" and sw["THINKMID_FAST_TRAIN"] == "0"
    assert "THINKMID_API_KEY" not in sw and "OTHER_SWITCH" not in sw
    assert list(sw) == sorted(sw)
    prov = provenance("paper")
    assert "THINKMID_DECODE_ATTN=eff" in prov["switches"] and "sk-secret" not in prov["switches"]


def test_fields_and_markdown(monkeypatch):
    import torch
    import transformers

    for k in [k for k in __import__("os").environ if k.startswith("THINKMID_")]:
        monkeypatch.delenv(k)
    prov = provenance("embedded")
    assert set(prov) == {
        "git_commit",
        "git_dirty",
        "device",
        "cuda",
        "torch",
        "transformers",
        "python",
        "profile",
        "switches",
    }
    assert prov["torch"] == torch.__version__ and prov["transformers"] == transformers.__version__
    assert prov["cuda"] == (torch.version.cuda or "none") and prov["profile"] == "embedded"
    assert prov["device"].startswith("cuda: " if torch.cuda.is_available() else "cpu: ")
    assert prov["switches"] == "none"
    md = markdown(prov)
    assert md.startswith("Produced by:\n\n- Commit: `") and "- Switches: none set" in md
    assert f"torch {torch.__version__}" in md and "- Profile: `embedded`" in md
    dirty = markdown({**prov, "git_commit": "abc", "git_dirty": "true"})
    assert "- Commit: `abc` (uncommitted changes)" in dirty
    assert provenance_markdown("embedded") == md  # same checkout, same machine: same bytes
