"""Shared fixtures: a tiny random Qwen3 (2 layers) with the real Qwen3 tokenizer."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def qwen_tok():
    from thinkmid.models.tokenizer import qwen3_tokenizer

    return qwen3_tokenizer()


def make_tiny_qwen3(
    seed: int = 0, vocab_size: int = 151669, pad_token_id: int = 151643, eos_token_id: int | None = None
):
    """The tiny random Qwen3 (2 layers, hidden 32); a small `vocab_size` with special ids inside it
    builds in milliseconds (tests/train). eos (and bos) default to the pad id."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=pad_token_id if eos_token_id is None else eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=pad_token_id if eos_token_id is None else eos_token_id,
    )
    return Qwen3ForCausalLM(cfg).eval()


@pytest.fixture()
def tiny_model():
    return make_tiny_qwen3()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, qwen_tok):
    """A saved tiny Qwen3 + tokenizer directory (safetensors), shared by the session."""
    from thinkmid.models.load import save_model

    path = tmp_path_factory.mktemp("models") / "tiny"
    save_model(make_tiny_qwen3(), qwen_tok, path)
    return path


def load_script(name: str):
    """scripts/<name>.py as a module. scripts/ is no package, and CI's venv holds a `scripts`
    distribution, so `from scripts import` would find that instead: load by path."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
