"""Atomic outputs: a process SIGKILLed in the middle of write_jsonl or save_model leaves the final path
with its previous complete content (or absent), never a partial file; the leftover temp dir is hidden
(.name.tmp-*) and a rerun writes the output normally."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from reliability_lab import ROOT, tree_hash

JSONL_CHILD = """
import sys, time
from thinkmid.io import write_jsonl

def rows():
    for i in range(1000):
        yield {"i": i, "text": "new row " * 50}
        if i == 200:
            print("mid-write", flush=True)
            time.sleep(600)

write_jsonl(sys.argv[1], rows())
"""

MODEL_CHILD = """
import sys, time
from thinkmid.models.load import load_model, save_model

model, tok = load_model(sys.argv[1])
for p in model.parameters():
    p.data.add_(1.0)  # new weights, so old and new content differ
real = tok.save_pretrained

def slow_save(path, *a, **kw):  # the weights are already in the temp dir; the tokenizer is next
    out = real(path, *a, **kw)
    print("mid-write", flush=True)
    time.sleep(600)
    return out

tok.save_pretrained = slow_save
save_model(model, tok, sys.argv[2])
"""


def _kill_mid_write(child: str, *args: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(child), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "mid-write", proc.stderr.read()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _leftovers(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name != name]


@pytest.mark.parametrize("previous", [True, False], ids=["over-previous", "fresh"])
def test_kill_during_write_jsonl(tmp_path, previous):
    from thinkmid.io import read_jsonl, write_jsonl

    out = tmp_path / "data" / "rows.jsonl"
    old = [{"i": i, "text": "old"} for i in range(3)]
    if previous:
        write_jsonl(out, old)
        before = out.read_bytes()
    _kill_mid_write(JSONL_CHILD, str(out))
    if previous:
        assert out.read_bytes() == before and read_jsonl(out) == old  # the old file, whole
    else:
        assert not out.exists()  # no half-written file under the final name
    left = _leftovers(out.parent, out.name)
    assert left and all(p.name.startswith(".rows.jsonl.tmp-") for p in left)  # hidden temp dir
    partial = next(left[0].iterdir())
    assert 0 < partial.stat().st_size  # the partial content existed, only in the temp dir

    assert write_jsonl(out, [{"i": 9}]) == 1  # a rerun is not confused by the leftover
    assert read_jsonl(out) == [{"i": 9}]
    assert json.loads(out.read_text()) == {"i": 9}


def test_kill_during_save_model(tmp_path, micro_model_dir):
    from safetensors.torch import load_file

    from thinkmid.models.load import load_model, save_model

    out = tmp_path / "models" / "sft_think_base"
    model, tok = load_model(micro_model_dir)
    save_model(model, tok, out)
    before = tree_hash(out)
    _kill_mid_write(MODEL_CHILD, str(micro_model_dir), str(out))
    assert tree_hash(out) == before  # the previous model dir, every byte
    left = _leftovers(out.parent, out.name)
    assert left and all(p.name.startswith(".sft_think_base.tmp-") for p in left)
    assert any(left[0].rglob("model.safetensors"))  # the new weights got only as far as the temp dir

    reloaded, tok2 = load_model(out)  # the kept output still loads
    save_model(reloaded, tok2, out)  # and a rerun replaces it normally, leftovers notwithstanding
    new = load_file(str(out / "model.safetensors"))
    for name, t in load_file(str(micro_model_dir / "model.safetensors")).items():
        assert torch.equal(new[name], t)
    assert not any(p.name.startswith(".sft_think_base.old-") for p in out.parent.iterdir())


def test_checkpoint_temp_dirs_are_ignored_and_pruned(tmp_path, micro_model_dir):
    """A save_checkpoint killed mid-way leaves `.step-*.tmp-*`: never loaded, removed by the next save."""
    from thinkmid.models.load import load_model
    from thinkmid.train.checkpoint import latest_step, save_checkpoint

    model, _ = load_model(micro_model_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ckpt = tmp_path / "checkpoints" / "sft_x"
    save_checkpoint(ckpt, 1, model, opt)
    junk = ckpt / ".step-00000002.tmp-abc" / "step-00000002"
    junk.mkdir(parents=True)
    (junk / "model.safetensors").write_bytes(b"\x00" * 10)  # a cut-short write
    assert latest_step(ckpt) == 1
    save_checkpoint(ckpt, 2, model, opt)
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-00000001", "step-00000002"]
