"""benchmarks/carry_wheels.py: which distributions a GPU box without an index gets as wheels."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import carry_wheels  # noqa: E402


def test_read_have_takes_pip_list_freeze_and_comma_lists():
    pip_list = "Package    Version\n---------- -------\nPyYAML     6.0.2\nhuggingface_hub 0.30\n"
    freeze = "Jinja2==3.1.6\nzc.lockfile @ file:///x\n"
    commas = "absl-py, accelerate, typing_extensions, zipp."
    got = carry_wheels.read_have(pip_list + freeze + commas)
    assert got == {
        "pyyaml",
        "huggingface-hub",
        "jinja2",
        "zc-lockfile",
        "absl-py",
        "accelerate",
        "typing-extensions",
        "zipp",
    }


def test_to_carry_leaves_out_what_the_box_has_and_its_cuda_stack():
    needed = {
        "dvc": "3.0",
        "torch": "2.13.0",
        "nvidia-nccl-cu13": "2.28",
        "triton": "3.6",
        "pandas": "2.2",
        "gguf": "0.1",
    }
    assert carry_wheels.to_carry(needed, {"pandas"}) == {"dvc": "3.0", "gguf": "0.1"}


def test_closure_walks_runtime_requirements_not_dev_ones():
    got = carry_wheels.closure("thinkmid", (), "3.12")
    # direct runtime deps, and one a level down (dvc -> dvc-data)
    assert {"dvc", "mlflow", "pydantic", "dvc-data", "transformers"} <= got.keys()
    assert "pytest" not in got and "ruff" not in got  # the dev extra only
    assert got["dvc"] == carry_wheels.md.version("dvc")  # the versions tested here
    assert {"pytest", "ruff"} <= carry_wheels.closure("thinkmid", ("dev",), "3.12").keys()


def test_a_missing_have_file_is_one_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        carry_wheels.main(["--have", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "w")])
    assert "--have" in capsys.readouterr().err and not (tmp_path / "w").exists()
