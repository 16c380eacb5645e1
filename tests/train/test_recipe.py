"""The shared resume path of thinkmid/train/recipe.py: fingerprints, refusal messages, the current
schedule on resume (the stages' own resume tests: tests/stages/test_train_recipes.py)."""

import logging

import pytest
import torch

from thinkmid.errors import InputError
from thinkmid.train.checkpoint import save_checkpoint
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.recipe import check_fingerprint, make_fingerprint, path_identity, resume, set_schedule_position


def test_path_identity_sees_content_not_just_size(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"a": 1}')
    big = bytearray(9 << 20)  # hashed by samples
    (d / "model.safetensors").write_bytes(bytes(big))
    first = path_identity(d)
    big[len(big) // 2] = 7  # same size, one byte changed where a sample reads
    (d / "model.safetensors").write_bytes(bytes(big))
    assert path_identity(d) != first
    (d / "config.json").write_text('{"a": 2}')
    assert len({first, path_identity(d)}) == 2
    with pytest.raises(InputError, match="not found"):
        path_identity(tmp_path / "nope")


def test_fingerprint_splits_schedule_keys_and_names_changes(tmp_path, caplog):
    (tmp_path / "rows.jsonl").write_text("{}\n")
    sections = {"seed": 0, "sft": {"batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "seq_len": 64}}
    old = make_fingerprint(sections, {"rows": tmp_path / "rows.jsonl"})
    assert set(old["schedule"]) == {"sft.lr", "sft.warmup_steps"} and "sft.batch_size" in old["params"]
    check_fingerprint("ck", 3, old, old)

    caplog.set_level(logging.WARNING)
    lower = make_fingerprint({**sections, "sft": {**sections["sft"], "lr": 1e-4}}, {"rows": tmp_path / "rows.jsonl"})
    check_fingerprint("ck", 3, old, lower)  # a schedule key: allowed, and said
    assert "sft.lr: 0.001 -> 0.0001" in caplog.text

    (tmp_path / "rows.jsonl").write_text('{"x": 1}\n')
    other = make_fingerprint(
        {**sections, "sft": {**sections["sft"], "batch_size": 8}}, {"rows": tmp_path / "rows.jsonl"}
    )
    with pytest.raises(InputError) as e:
        check_fingerprint("ck", 3, old, other)
    assert "sft.batch_size: 4 -> 8" in str(e.value) and "rows changed" in str(e.value) and "delete ck" in str(e.value)
    with pytest.raises(InputError, match="no fingerprint"):
        check_fingerprint("ck", 3, None, old)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))


def test_schedule_position_equals_stepping():
    stepped = make_scheduler(make_optimizer(_model(), 1e-2), 2, 10, 0.1)
    for _ in range(5):
        stepped.optimizer.step()
        stepped.step()
    placed = make_scheduler(make_optimizer(_model(), 1e-2), 2, 10, 0.1)
    set_schedule_position(placed, 5)
    assert placed.get_last_lr() == stepped.get_last_lr()
    assert placed.optimizer.param_groups[0]["lr"] == stepped.optimizer.param_groups[0]["lr"]
    placed.optimizer.step()
    placed.step()
    stepped.step()
    assert placed.get_last_lr() == stepped.get_last_lr()


def test_resume_keeps_moments_but_takes_current_lr_and_decay(tmp_path):
    model = _model()
    opt = make_optimizer(model, 1e-2, weight_decay=0.1)
    sched = make_scheduler(opt, 0, 10, 0.1)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    sched.step()
    fp = make_fingerprint({"x": {"lr": 1e-2, "weight_decay": 0.1}})
    save_checkpoint(tmp_path / "ck", 1, model, opt, sched, extra={"fingerprint": fp}, run_id="")

    model2 = _model()
    opt2 = make_optimizer(model2, 1e-3, weight_decay=0.05)
    sched2 = make_scheduler(opt2, 0, 10, 0.1)
    step, _ = resume(tmp_path / "ck", make_fingerprint({"x": {"lr": 1e-3, "weight_decay": 0.05}}), model2, opt2, sched2)
    assert step == 1
    first = next(iter(opt.state.values()))["exp_avg"]
    assert torch.equal(next(iter(opt2.state.values()))["exp_avg"], first)  # moments from the checkpoint
    assert opt2.param_groups[0]["weight_decay"] == 0.05 and opt2.param_groups[0]["initial_lr"] == 1e-3
    assert sched2.get_last_lr()[0] == pytest.approx(1e-3 * sched.lr_lambdas[0](1))
