"""Two gloo DDP processes on CPU take the same SFT steps as one process on the same global batch:
equal losses, token counts, gradient norms and gradients (uneven row split and an empty shard)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env.update(
        PYTHONPATH=str(ROOT),
        THINKMID_THREADS="1",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        **extra,
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single(out: Path, worker: Path = WORKER, **env) -> None:
    res = subprocess.run(
        [sys.executable, str(worker), str(out)], env=_env(**env), capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]


def _ddp(out: Path, world: int = 2, worker: Path = WORKER, **env) -> None:
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE=str(world),
                LOCAL_WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
                **env,
            ),
        )
        for r in range(world)
    ]
    errs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        errs.append((p.returncode, err))
    for rc, err in errs:
        assert rc == 0, err[-3000:]


@pytest.mark.parametrize("path", ["plain", "fused"])
def test_two_process_ddp_step_matches_one_process(tmp_path, path):
    """plain: HF forward + full-logit loss; fused: the fused layers + chunked CE that CUDA takes (forced on
    the CPU here), under DDP through the FusedLoss wrapper."""
    env = {"THINKMID_FAST_TRAIN": "force" if path == "fused" else "0"}
    _single(tmp_path / "one", **env)
    _ddp(tmp_path / "two", **env)
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["trains"] == ("FusedLoss" if path == "fused" else "Qwen3ForCausalLM")
    assert one["tokens"] == two["tokens"] and sum(one["tokens"]) == 51 and len(one["tokens"]) == 2
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    assert two["grad_norms"] == pytest.approx(one["grad_norms"], rel=1e-4)
    g1, g2 = load_file(str(tmp_path / "one.safetensors")), load_file(str(tmp_path / "two.safetensors"))
    assert g1.keys() == g2.keys() and any(k.startswith("1.") for k in g1)
    for k in g1:
        torch.testing.assert_close(g2[k], g1[k], rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
