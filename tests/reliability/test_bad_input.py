"""Bad input: each case exits with code 2 and ONE error line naming the key or file:line and what was
expected, before any work, leaving existing outputs byte-identical."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from reliability_lab import make_lab, stage_cmd, stage_env, tree_hash

from thinkmid.cli import stage_main
from thinkmid.config import ARMS_RLMT, ARMS_SFT
from thinkmid.io import write_jsonl

SENTINELS = ("models/sft_think_base", "reports/sft/think_base.json", "models/think_base_rlmt")


def _set(lab: Path, dotted: str, value) -> None:
    params = yaml.safe_load((lab / "params.yaml").read_text())
    *path, last = dotted.split(".")
    node = params
    for k in path:
        node = node.setdefault(k, {})
    node[last] = value
    (lab / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _raw(lab: Path, rel: str, data: bytes) -> None:
    (lab / rel).write_bytes(data)


def _good_line(i: int = 0) -> bytes:
    return (lab_rows[i] + "\n").encode()


lab_rows = [
    '{"id": "t-0", "original": "The sea is calm.", "text": "The sea <think>calm?</think> is calm."}',
    '{"id": "t-1", "original": "The hills are green.", "text": "The hills <think>colour</think> are green."}',
]

# id -> (stage, argv, how to break the lab, regex the single error line must match)
CASES = {
    "wrong-type": (
        "sft",
        [],
        lambda lab: _set(lab, "sft.lr", "fast"),
        r"params\.yaml:\d+: sft\.lr: .*valid number.*'fast'",
    ),
    "out-of-range": (
        "rlmt",
        [],
        lambda lab: _set(lab, "rlmt.clip_eps", -1),
        r"params\.yaml:\d+: rlmt\.clip_eps: .*greater than 0.*-1",
    ),
    "unknown-key": (
        "sft",
        [],
        lambda lab: _set(lab, "sft.learning_rate", 1e-4),
        r"params\.yaml:\d+: sft\.learning_rate: unknown key",
    ),
    "unknown-arm": (
        "sft",
        ["--arm", "nope"],
        lambda lab: None,
        r"--arm: unknown arm 'nope'; expected one of \['raw_base', 'think_base', 'think_phase3'\]",
    ),
    "k-below-2": (
        "rlmt",
        [],
        lambda lab: _set(lab, "rlmt.k", 1),
        r"params\.yaml:\d+: rlmt\.k: .*greater than or equal to 2.*1",
    ),
    "beyond-context": (
        "rlmt",
        [],
        lambda lab: (_set(lab, "chunks.prefix_tokens", 508), _set(lab, "chunks.min_source_tokens", 600)),
        r"params\.yaml:\d+: chunks\.prefix_tokens \+ rlmt\.thought_max_tokens \+ rlmt\.suffix_max_tokens "
        r"\+ 2 = 517 exceeds base\.max_context \(512\)",
    ),
    "missing-model-dir": (
        "sft",
        [],
        lambda lab: shutil.rmtree(lab / "models/base"),
        r"models/base: not a model directory \(no config\.json\)",
    ),
    "no-final-newline": (
        "sft",
        [],
        lambda lab: _raw(lab, "data/thoughts/train.jsonl", _good_line(0) + lab_rows[1].encode()),
        r"data/thoughts/train\.jsonl:2: truncated line \(no newline at end of file\)",
    ),
    "cut-mid-object": (
        "sft",
        [],
        lambda lab: _raw(lab, "data/thoughts/train.jsonl", _good_line(0) + lab_rows[1][:30].encode()),
        r"data/thoughts/train\.jsonl:2: truncated line",
    ),
    "non-utf8": (
        "sft",
        [],
        lambda lab: _raw(
            lab, "data/thoughts/val.jsonl", _good_line(0) + b'{"id": "x", "original": "caf\xe9", "text": "caf\xe9"}\n'
        ),
        r"data/thoughts/val\.jsonl:2: not UTF-8 at byte \d+",
    ),
    "unclosed-think": (
        "sft",
        [],
        lambda lab: write_jsonl(
            lab / "data/thoughts/train.jsonl",
            [{"id": "t", "original": "The sea is calm.", "text": "The sea <think>calm? is calm."}],
        ),
        r"data/thoughts/train\.jsonl:1: unclosed <think> at char 8 .*expected `text <think>thought</think> text`",
    ),
    "public-host": (
        "sft",
        [],
        lambda lab: _set(lab, "judge.endpoint.server.extra_args", ["--host", "0.0.0.0"]),
        r"params\.yaml:\d+: judge\.endpoint\.server\.extra_args: --host is not allowed: local servers "
        r"bind 127\.0\.0\.1 only",
    ),
}


@pytest.fixture()
def lab(tmp_path, micro_model_dir, qwen_tok, monkeypatch):
    lab = make_lab(tmp_path / "lab", micro_model_dir, qwen_tok)
    shutil.copytree(micro_model_dir, lab / "models/sft_think_base")  # outputs of an earlier run
    shutil.copytree(micro_model_dir, lab / "models/think_base_rlmt")
    (lab / "reports/sft").mkdir(parents=True)
    (lab / "reports/sft/think_base.json").write_text('{"val_loss": 1.0}\n')
    monkeypatch.chdir(lab)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never.db'}")
    return lab


def _hashes(lab: Path) -> dict[str, str]:
    return {p: tree_hash(lab / p) for p in SENTINELS}


def _stage(name: str):
    if name == "sft":
        from stages.sft import run

        return run, ARMS_SFT
    from stages.rlmt import run

    return run, ARMS_RLMT


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line(case, lab, tmp_path, capfd):
    stage, argv, breaks, expected = CASES[case]
    breaks(lab)
    before = _hashes(lab)
    run, arms = _stage(stage)
    capfd.readouterr()
    with pytest.raises(SystemExit) as e:
        stage_main(stage, run, arms=arms, argv=argv or ["--arm", "think_base"])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert e.value.code == 2
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and re.search(expected, lines[0]), lines[0]
    assert _hashes(lab) == before  # existing outputs untouched
    assert not (lab / "checkpoints").exists() and not (tmp_path / "never.db").exists()  # no work started


def test_bad_input_as_a_real_subprocess(lab, tmp_path):
    """The same contract end to end through `python -m stages.sft` (stderr is the process's own)."""
    _set(lab, "sft.lr", "fast")
    before = _hashes(lab)
    res = subprocess.run(
        stage_cmd("sft", "--arm", "think_base"),
        cwd=lab,
        capture_output=True,
        text=True,
        env=stage_env(f"sqlite:///{tmp_path / 'never.db'}"),
        timeout=120,
    )
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert re.fullmatch(r"error: params\.yaml:\d+: sft\.lr: .*'fast'\)", lines[0]), lines[0]
    assert _hashes(lab) == before
