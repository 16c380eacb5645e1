"""The shared resume path of the training recipes (thinkmid/train/recipe.py), through the sft and
self_improve stages on the tiny model (rlmt: tests/stages/test_rlmt_stage.py and tests/train/test_rlmt.py).

Each stage is stopped after 2 of 3 steps (a step raises), then: a changed batch-shaping param is
refused naming the key; unchanged params resume to the same final weights as an uninterrupted run;
a lowered lr resumes with the new lr from the step it stopped at.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from thinkmid.cli import stage_main
from thinkmid.io import write_jsonl

PARAMS = """
profile: micro
seed: 0
base: {source: local, local_dir: models/base, max_context: 256}
chunks: {prefix_tokens: 8, suffix_tokens: 4, min_source_tokens: 16}
engine: {backend: hf, batch_size: 8}
judge: {backend: likelihood, max_invalid_rate: 1.0}
self_improve: {steps: 3, prefixes_per_step: 2, k: 2, lr: 1.0e-3, warmup_steps: 1, checkpoint_every: 1}
sft: {epochs: 1, batch_size: 2, seq_len: 32, lr: 1.0e-3, warmup_steps: 1, checkpoint_every: 1, rep_rows: 2}
tracking: {experiment: recipes}
"""
TEXTS = [
    ("The river runs through the old town and", " past the mill before it reaches the sea."),
    ("Most of the country is covered by forest,", " and the rest is farmland or mountains."),
    ("The capital has a population of about", " two million people in its metro area."),
    ("Winters are cold in the north", " while the south stays mild all year."),
    ("The main exports are timber and", " machinery, mostly to its neighbours."),
    ("Two rivers meet at the capital,", " which grew up around the old bridge."),
]


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _workspace(path: Path, tiny_model_dir, qwen_tok):
    path.mkdir(parents=True)
    (path / "params.yaml").write_text(PARAMS)
    shutil.copytree(tiny_model_dir, path / "models/base")
    rows = [
        {"id": f"r{i}", "original": p + s, "text": p + " <think>a note</think>" + s} for i, (p, s) in enumerate(TEXTS)
    ]
    write_jsonl(path / "data/thoughts/train.jsonl", rows)
    write_jsonl(path / "data/thoughts/val.jsonl", rows[:2])
    chunks = [
        {
            "id": f"c{i}",
            "prefix": p,
            "suffix": s,
            "prefix_ids": qwen_tok.encode(p)[:8],
            "suffix_ids": qwen_tok.encode(s)[:4],
        }
        for i, (p, s) in enumerate(TEXTS)
    ]
    write_jsonl(path / "data/chunks/phase3_train.jsonl", chunks)


STAGES = {  # stage -> (module, recipe class, --arm, output model, checkpoint dir, steps file, refused edit)
    "sft": (
        "stages.sft",
        "Sft",
        "think_base",
        "models/sft_think_base",
        "checkpoints/sft_think_base",
        "reports/sft/think_base_steps.json",
        ("sft", "batch_size", 3),
    ),
    "self_improve": (
        "stages.self_improve",
        "SelfImprove",
        None,
        "models/phase3",
        "checkpoints/self_improve",
        "reports/self_improve/steps.json",
        ("self_improve", "k", 3),
    ),
}


def _run(stage):
    import importlib

    mod = importlib.import_module(STAGES[stage][0])
    arm = STAGES[stage][2]
    stage_main(
        stage,
        mod.run,
        **({"arms": ("raw_base", "think_base", "think_phase3"), "argv": ["--arm", arm]} if arm else {"argv": []}),
    )


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def _edit(section, key, value):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params[section][key] = value
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_resume_refuses_changed_params_and_continues_exactly(
    stage, tmp_path, monkeypatch, tiny_model_dir, qwen_tok, mlflow_db, capsys
):
    import importlib

    _, cls_name, _, out, ckpt, steps_file, (section, key, value) = STAGES[stage]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_db)
    monkeypatch.setenv("THINKMID_THREADS", "1")
    _workspace(tmp_path / "straight", tiny_model_dir, qwen_tok)
    _workspace(tmp_path / "stopped", tiny_model_dir, qwen_tok)
    monkeypatch.chdir(tmp_path / "straight")
    _run(stage)
    want = _weights(out)
    start = _weights("models/base")
    assert not Path(ckpt).exists() and any(not torch.equal(want[k], start[k]) for k in want)  # it trained

    monkeypatch.chdir(tmp_path / "stopped")
    cls = getattr(importlib.import_module(STAGES[stage][0]), cls_name)
    real = cls.train_step

    def stop_at_2(self, step):
        if step == 2:
            raise RuntimeError("stopped for the test")
        return real(self, step)

    monkeypatch.setattr(cls, "train_step", stop_at_2)
    with pytest.raises(RuntimeError, match="stopped for the test"):
        _run(stage)
    monkeypatch.setattr(cls, "train_step", real)
    assert Path(ckpt, "step-00000002").is_dir() and not Path(out).exists()

    _edit(section, key, value)  # shapes the batches: resuming would skip or repeat rows
    with pytest.raises(SystemExit) as e:
        _run(stage)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{section}.{key}: 2 -> 3" in err and ckpt in err and "start over" in err
    _edit(section, key, 2)

    saved = Path(tmp_path / "saved_ckpt")
    shutil.copytree(ckpt, saved)
    _run(stage)  # same params: continues at step 2 to the uninterrupted run's weights
    got = _weights(out)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    steps = json.loads(Path(steps_file).read_text())
    assert [s["step"] for s in steps] == [0, 1, 2] and not any(k.endswith("_time_s") for k in steps[0])

    shutil.rmtree(out)
    shutil.copytree(saved, ckpt)
    _edit(section, "lr", 1.0e-4)  # the documented recovery: a lower lr, rerun; it must take effect
    _run(stage)
    lrs = [s["lr"] for s in json.loads(Path(steps_file).read_text())]
    assert lrs[2] == pytest.approx(1.0e-4 * _factor(2)) and lrs[1] == pytest.approx(1.0e-3 * _factor(1))


def _factor(step):
    from thinkmid.train.optim import lr_factor

    return lr_factor(step, 1, 3, 0.1)
