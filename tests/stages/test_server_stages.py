"""RLMT with its policy on a real `transformers serve` the stage starts: the server is synced with the
trained policy after every update but the last (engine.reload_every: 1) and stopped when the stage ends."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from thinkmid.cli import stage_main
from thinkmid.config import ARMS_RLMT
from thinkmid.engines.launcher import _port_in_use, free_port
from thinkmid.engines.openai import OpenAIEngine
from thinkmid.engines.servers import probe
from thinkmid.io import write_jsonl

PARAMS = """
profile: micro
seed: 0
lr: 1.0e-3
base: {{source: local, local_dir: models/sft_think_base, max_context: 256}}
chunks: {{prefix_tokens: 8, suffix_tokens: 8, min_source_tokens: 16}}
engine:
  backend: openai
  batch_size: 4
  reload_every: 1
  endpoint: {{max_retries: 1, timeout_s: 120, server: {{launch: transformers, port: {port}, startup_timeout_s: 180,
             extra_args: [--device, cpu]}}}}
reference_judge: {{backend: lexical, lexical_threshold: 0.05, max_invalid_rate: 0.5}}
rlmt: {{steps: 3, prefixes_per_step: 2, k: 2, thought_max_tokens: 3, suffix_max_tokens: 4, warmup_steps: 1,
        checkpoint_every: 5}}
prefixes: {{min_before: 4, min_after: 4, reference_tokens: 8}}
tracking: {{experiment: rlmt-server}}
"""
TEXTS = [
    ("The river runs through the old town and", " past the mill before it reaches the sea."),
    ("Most of the country is covered by forest,", " and the rest is farmland or mountains."),
]


def test_rlmt_keeps_its_own_server_on_policy(tmp_path, monkeypatch, tiny_model_dir, qwen_tok, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("THINKMID_THREADS", "1")
    port = free_port()
    Path("params.yaml").write_text(PARAMS.format(port=port))
    shutil.copytree(tiny_model_dir, "models/sft_think_base")
    # RL prefixes are SFT train rows cut at their teacher thought (thinkmid/data/prefixes.py).
    write_jsonl(
        "data/thoughts/train.jsonl",
        [
            {"id": f"rl-{i}", "original": p + s, "text": p + " <think>a note</think>" + s}
            for i, (p, s) in enumerate(TEXTS)
        ],
    )
    served = []
    real = OpenAIEngine.update_weights

    def spy(self, model_dir):
        real(self, model_dir)
        served.append((model_dir, probe(port).models))  # what the server holds right after the push

    monkeypatch.setattr(OpenAIEngine, "update_weights", spy)
    from stages.rlmt import run

    with caplog.at_level(logging.INFO, logger="thinkmid.servers"):
        stage_main("rlmt", run, arms=ARMS_RLMT, argv=["--arm", "think_base"])
    assert f"policy: started a transformers server of models/sft_think_base on 127.0.0.1:{port}" in caplog.text
    assert len(served) == 2  # one push per update but the last
    assert all(models == [d] for d, models in served)  # the server serves the pushed weights
    assert not _port_in_use(port) and not Path(served[0][0]).exists()  # stopped, scratch weights removed
    summary = json.loads(Path("reports/rlmt/think_base.json").read_text())
    assert summary["completed_steps"] == 3 and summary["stopped_reason"] is None
