"""scripts/paper_standins.py: the stand-in overrides validate, change only what they name, mean the same
through `dvc exp run -S` as through the params overlay, and the stand-in models have the right shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import load_script
from thinkmid.config import flatten, load_params, parse_params
from thinkmid.profile import load_profile, profile_text

ROOT = Path(__file__).resolve().parents[2]


ps = load_script("paper_standins")


@pytest.mark.parametrize("servers", ["transformers", "sglang"])
def test_overrides_validate_and_change_only_what_they_name(servers):
    paper = flatten(load_profile("paper"))
    stand = flatten(parse_params(ps.standin_params_text(servers=servers), "params.yaml"))
    named = ps.overrides(servers=servers)
    changed = {k for k in paper if k not in stand or paper[k] != stand[k]}
    # every other value stays the paper's (a named mapping, such as the arms, replaces its keys)
    assert all(any(k == n or k.startswith(n + ".") for n in named) for k in changed), changed - set(named)
    assert stand["self_improve.steps"] == 3 and stand["rlmt.steps"] == 3
    assert stand["chunks.prefix_tokens"] == 384 and stand["chunks.suffix_tokens"] == 128  # the paper's lengths
    assert stand["rlmt.k"] == paper["rlmt.k"] == 16 and stand["self_improve.k"] == 16
    for role in ("judge", "reference_judge"):  # in process, as the paper's, from the stand-in dir
        assert stand[f"{role}.backend"] == paper[f"{role}.backend"] == "inprocess"
        assert stand[f"{role}.model"] == "path" and stand[f"{role}.model_path"] == "standins/qwen3-4b"
    assert stand["teacher_thoughts.endpoint.server.launch"] == servers
    assert stand["teacher_thoughts.endpoint.server.model"] == "standins/qwen3-4b"


def test_inprocess_and_rehearsal_layouts_validate():
    stand = flatten(parse_params(ps.standin_params_text(servers="inprocess"), "params.yaml"))
    assert stand["teacher_thoughts.backend"] == "lm" and stand["teacher_thoughts.model_path"] == "standins/qwen3-4b"
    tiny = flatten(parse_params(ps.standin_params_text(servers="inprocess", rehearsal=True), "params.yaml"))
    assert tiny["reasoning_eval.gsm8k.limit"] == 4 and tiny["chunks.prefix_tokens"] == 384


def test_dvc_set_params_mean_the_same_as_the_overlay(tmp_path):
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` runs on params.yaml

    path = tmp_path / "params.yaml"
    path.write_text(profile_text("paper"))  # params.yaml as `python -m thinkmid.profile paper` writes it
    args = ps.dvc_args()
    assert set(args[::2]) == {"-S"} and len(args) >= 2 * len(ps.overrides())
    apply_overrides(path, args[1::2])
    assert load_params(path) == parse_params(ps.standin_params_text())


def test_params_command_writes_a_valid_params_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ps.main(["params", "--servers", "sglang"]) == 0
    p = load_params(tmp_path / "params.yaml")
    assert p.profile == "paper_standins" and p.teacher_thoughts.endpoint.server.extra_args == [
        "--mem-fraction-static",
        "0.30",
    ]


@pytest.mark.parametrize("name,low,high", [("qwen3-0.6b-base", 0.58e9, 0.62e9), ("qwen3-4b", 3.9e9, 4.1e9)])
def test_shapes_have_the_real_parameter_counts(name, low, high):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    with torch.device("meta"):
        model = Qwen3ForCausalLM(Qwen3Config(vocab_size=ps.VOCAB, tie_word_embeddings=True, **ps.SHAPES[name]))
    n = sum(p.numel() for p in model.parameters())
    assert low < n < high, n


def test_written_standin_is_a_safetensors_qwen3_with_the_real_tokenizer(tmp_path):
    from thinkmid.models.load import load_model
    from thinkmid.models.tokenizer import think_ids

    tiny = dict(
        ps.SHAPES["qwen3-4b"],
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    path = ps.write_standin(tmp_path / "judge", tiny, seed=1, chat=True)
    files = {f.name for f in path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["model_type"] == "qwen3" and cfg["vocab_size"] == ps.VOCAB and cfg["num_key_value_heads"] == 2
    model, tok = load_model(path)
    assert think_ids(tok) == (151667, 151668) and len(tok) == 151669
    assert "<|im_start|>assistant" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    from safetensors import safe_open

    with safe_open(path / "model.safetensors", "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}  # saved as the paper's dtype
    assert yaml.safe_load(ps.standin_params_text())["base"]["local_dir"] == "standins/qwen3-0.6b-base"
