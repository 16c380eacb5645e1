"""Helpers for the reliability tests: a micro lab directory (tiny Qwen3 as models/base, a few
real sentences with <think> thoughts), stage subprocess environments, tree hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SENTENCES = [
    (
        "The river runs through the old town and past the mill before it reaches the sea.",
        "The river runs through the old town <think>a river crossing a town</think> and past the mill "
        "before it reaches the sea.",
    ),
    (
        "Most of the country is covered by forest, and the rest is farmland or mountains.",
        "Most of the country is covered by forest, <think>what else covers it?</think> and the rest is "
        "farmland or mountains.",
    ),
    (
        "The capital has a population of about two million people in its metro area.",
        "The capital has a population of about <think>a number comes next</think> two million people in "
        "its metro area.",
    ),
    (
        "The climate is temperate, with cool winters and warm, dry summers along the coast.",
        "The climate is temperate, <think>describe the seasons</think> with cool winters and warm, dry "
        "summers along the coast.",
    ),
    (
        "Fishing and tourism are the main industries of the islands in the south.",
        "Fishing and tourism are the main industries <think>which places?</think> of the islands in the south.",
    ),
    (
        "The border with the neighbouring state follows the watershed of the high mountains.",
        "The border with the neighbouring state follows <think>a natural line</think> the watershed of the "
        "high mountains.",
    ),
]

PARAMS = """\
profile: micro
seed: 0
lr: 1.0e-3
base: {{source: local, local_dir: models/base, dtype: float32, max_context: 512}}
chunks: {{prefix_tokens: 8, suffix_tokens: 8, min_source_tokens: 16}}
engine: {{backend: hf, batch_size: 8}}
reference_judge: {{backend: lexical, lexical_threshold: 0.05, max_invalid_rate: 0.5}}
sft:
  epochs: {epochs}
  batch_size: 1
  seq_len: 32
  lr: 1.0e-3
  warmup_steps: 0
  checkpoint_every: 1
rlmt:
  steps: {rlmt_steps}
  prefixes_per_step: 2
  k: 2
  thought_max_tokens: 3
  suffix_max_tokens: 4
  warmup_steps: 0
  checkpoint_every: 1
prefixes: {{min_before: 3, min_after: 3, reference_tokens: 8}}  # RLMT cuts data/thoughts/train.jsonl rows
tracking: {{experiment: reliability}}
"""


def thought_rows(n: int) -> list[dict]:
    return [
        {"id": f"t-{i}", "original": SENTENCES[i % len(SENTENCES)][0], "text": SENTENCES[i % len(SENTENCES)][1]}
        for i in range(n)
    ]


def make_lab(
    path: Path, model_dir: Path, qwen_tok=None, epochs: int = 2, rlmt_steps: int = 3, train_rows: int = 6
) -> Path:
    """A lab directory with params.yaml, models/base, data/thoughts and (with qwen_tok) data/chunks/rl.jsonl."""
    from thinkmid.io import write_jsonl

    path.mkdir(parents=True, exist_ok=True)
    (path / "params.yaml").write_text(PARAMS.format(epochs=epochs, rlmt_steps=rlmt_steps))
    shutil.copytree(model_dir, path / "models" / "base")
    write_jsonl(path / "data/thoughts/train.jsonl", thought_rows(train_rows))
    write_jsonl(path / "data/thoughts/val.jsonl", thought_rows(2))
    if qwen_tok is not None:
        rows = []
        for i, (orig, _) in enumerate(SENTENCES[:4]):
            words = orig.split()
            prefix, suffix = " ".join(words[:7]), " " + " ".join(words[7:])
            rows.append(
                {
                    "id": f"rl-{i}",
                    "prefix": prefix,
                    "suffix": suffix,
                    "prefix_ids": qwen_tok.encode(prefix),
                    "suffix_ids": qwen_tok.encode(suffix),
                }
            )
        write_jsonl(path / "data/chunks/rl.jsonl", rows)
    return path


def stage_env(mlflow_uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "THINKMID_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        THINKMID_LOG="WARNING",
        THINKMID_THREADS="1",
        MLFLOW_TRACKING_URI=mlflow_uri,
        **extra,
    )
    return env


def stage_cmd(stage: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"stages.{stage}", *args]


def tree_hash(path: Path) -> str:
    """A hash of every file's relative path and bytes under `path` (or of one file)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path.parent)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
