"""The tree is ruff-formatted and lint-clean (pyproject.toml [tool.ruff]), so `python -m pytest` fails on drift.

Fix with `ruff format . && ruff check --fix .` from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_ruff(args):
    pytest.importorskip("ruff", reason="ruff comes with the dev extra (scripts/install.sh installs it)")
    res = subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, f"ruff {' '.join(args)} found problems:\n{res.stdout[-4000:]}{res.stderr[-2000:]}"
