import json
import random

import numpy as np
import pytest
import torch
import transformers  # noqa: F401  # imported before any seeding: see test_resume_is_bitwise_identical

from tests.conftest import make_tiny_qwen3
from thinkmid.errors import InputError
from thinkmid.train.checkpoint import clear_checkpoints, latest_step, load_latest_checkpoint, save_checkpoint
from thinkmid.train.loop import clip_and_step
from thinkmid.train.losses import causal_lm_loss
from thinkmid.train.optim import make_optimizer, make_scheduler

VOCAB = 512
TOTAL = 4


def _tiny(seed=0):
    """The conftest's tiny Qwen3 with a small vocab: building the 151k-row one costs seconds."""
    return make_tiny_qwen3(seed, vocab_size=VOCAB, pad_token_id=0, eos_token_id=1)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _fresh(device="cpu"):
    model = _tiny().to(device).train()
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.01)
    sched = make_scheduler(opt, warmup_steps=1, total_steps=TOTAL, min_lr_ratio=0.1)
    return model, opt, sched


def _train(model, opt, sched, start, stop, history):
    device = next(model.parameters()).device
    for step in range(start, stop):
        # Every RNG the stages use feeds the step, so a wrong restore changes the result.
        ids = torch.randint(0, VOCAB, (2, 12))
        ids[:, random.randrange(12)] = int(np.random.randint(VOCAB))
        ids = ids.to(device)
        logits = model(input_ids=ids).logits
        noise = torch.randn((), device=device)  # on CUDA this draws from the CUDA generator
        loss = causal_lm_loss(logits, ids) + 1e-3 * noise * logits.mean()
        loss.backward()
        clip_and_step(model, opt, sched, max_grad_norm=1.0, loss=loss, step=step)
        history.append(loss.item())


def _seed():
    torch.manual_seed(123)  # seeds CUDA generators too
    random.seed(123)
    np.random.seed(123)


@pytest.mark.parametrize("device", DEVICES)
def test_resume_is_bitwise_identical(tmp_path, device):
    # The straight and the resumed run both start at _seed(). The first `import transformers` in a
    # process draws from Python's global `random` (rich.style, imported by transformers, calls
    # getrandbits at import): imported lazily after _seed(), it shifted the first run's data only,
    # so this test failed whenever it was the first in its process to build a model (run alone, or
    # first on a worker), whatever the load. The module-level import above keeps it out of the runs.
    _seed()
    model, opt, sched = _fresh(device)
    straight: list[float] = []
    _train(model, opt, sched, 0, TOTAL, straight)
    want = {k: v.clone() for k, v in model.state_dict().items()}

    _seed()
    model, opt, sched = _fresh(device)
    hist: list[float] = []
    _train(model, opt, sched, 0, 2, hist)
    save_checkpoint(tmp_path / "ckpt", 2, model, opt, sched, extra={"history": hist, "cursor": 2})
    torch.manual_seed(999)  # disturb every RNG (CUDA's too) and start from fresh objects
    random.seed(999)
    np.random.seed(999)
    model, opt, sched = _fresh(device)
    step, extra = load_latest_checkpoint(tmp_path / "ckpt", model, opt, sched)
    assert step == 2 and extra["cursor"] == 2
    hist = extra["history"]
    _train(model, opt, sched, step, TOTAL, hist)

    assert hist == straight
    for k, v in model.state_dict().items():
        assert torch.equal(v, want[k]), k
    assert sched.last_epoch == TOTAL


def test_keeps_last_two_and_clear(tmp_path):
    model, opt, sched = _fresh()
    d = tmp_path / "ckpt"
    assert load_latest_checkpoint(d, model, opt, sched) is None
    for s in (1, 2, 3):
        save_checkpoint(d, s, model, opt, sched, extra={})
    assert sorted(p.name for p in d.iterdir()) == ["step-00000002", "step-00000003"]
    assert latest_step(d) == 3
    state = json.loads((d / "step-00000003" / "state.json").read_text())
    assert state["step"] == 3 and not list(d.glob("step-*/*.pt"))  # nothing pickled
    clear_checkpoints(d)
    assert not d.exists()


def test_falls_back_to_older_when_newest_is_damaged(tmp_path):
    model, opt, sched = _fresh()
    d = tmp_path / "ckpt"
    save_checkpoint(d, 1, model, opt, sched, extra={"k": 1})
    save_checkpoint(d, 2, model, opt, sched, extra={"k": 2})
    (d / "step-00000002" / "model.safetensors").write_bytes(b"garbage")
    assert load_latest_checkpoint(d, model, opt, sched) == (1, {"k": 1})
    (d / "step-00000001" / "state.json").write_text("{")
    with pytest.raises(InputError):
        load_latest_checkpoint(d, model, opt, sched)


def test_non_json_extra_writes_nothing(tmp_path):
    model, opt, sched = _fresh()
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "ckpt", 1, model, opt, sched, extra={"bad": object()})
    assert latest_step(tmp_path / "ckpt") is None
