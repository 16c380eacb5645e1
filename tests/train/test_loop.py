import pytest
import torch

from thinkmid.train.loop import (
    NonFiniteLossError,
    clip_and_step,
    min_available_mem_gib,
    num_sft_batches,
    sft_batches,
    throughput_meter,
)
from thinkmid.train.optim import make_optimizer, make_scheduler


def _setup():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = make_optimizer(model, lr=0.1)
    return model, opt, make_scheduler(opt, 0, 10, 0.1)


def test_clip_and_step_clips_and_steps():
    model, opt, sched = _setup()
    before = model.weight.detach().clone()
    (model(torch.ones(2, 4)).sum() * 100).backward()
    norm = clip_and_step(model, opt, sched, max_grad_norm=0.5)
    assert norm > 0.5
    assert not torch.equal(model.weight, before)
    assert model.weight.grad is None and sched.last_epoch == 1


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_non_finite_raises_before_stepping(where):
    model, opt, sched = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(torch.ones(2, 4)).sum()
    loss = out * float("nan") if where == "grad" else out
    loss.backward()
    with pytest.raises(NonFiniteLossError) as e:
        clip_and_step(model, opt, sched, 1.0, loss=float("inf") if where == "loss" else None, step=7)
    assert e.value.step == 7 and "step 7" in str(e.value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert sched.last_epoch == 0 and not opt.state


def _order(batches):
    return [tuple(r[m.bool()].tolist()) for b in batches for r, m in zip(b["input_ids"], b["attention_mask"])]


def test_sft_batches_deterministic_and_resumable():
    rows = [list(range(1, n + 1)) for n in (3, 5, 2, 7, 4)]
    a = list(sft_batches(rows, seq_len=6, batch_size=2, seed=1, epoch=0, pad_id=99))
    b = list(sft_batches(rows, seq_len=6, batch_size=2, seed=1, epoch=0, pad_id=99))
    assert len(a) == num_sft_batches(5, 2) == 3
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    resumed = list(sft_batches(rows, seq_len=6, batch_size=2, seed=1, epoch=0, pad_id=99, start_batch=2))
    assert len(resumed) == 1 and torch.equal(resumed[0]["input_ids"], a[2]["input_ids"])
    other = list(sft_batches(rows, seq_len=6, batch_size=2, seed=1, epoch=1, pad_id=99))
    assert _order(a) != _order(other)  # a new epoch reshuffles
    assert sorted(_order(a)) == sorted(tuple(r[:6]) for r in rows)  # every row once, truncated
    for batch in a:
        pad = batch["attention_mask"] == 0
        assert torch.all(batch["labels"][pad] == -100) and torch.all(batch["input_ids"][pad] == 99)
        assert torch.equal(batch["labels"][~pad], batch["input_ids"][~pad])


def test_sft_batches_loss_masks():
    rows, masks = [[5, 6, 7]], [[0, 1, 1]]
    (batch,) = sft_batches(rows, 8, 4, 0, 0, loss_masks=masks)
    assert batch["labels"].tolist() == [[-100, 6, 7]]
    with pytest.raises(ValueError):
        next(sft_batches(rows, 8, 4, 0, 0, loss_masks=[[1]]))


def test_meters():
    m = throughput_meter(tokens_seen=100)
    m.add(50)
    assert m.tokens_seen == 150 and m.tokens_per_s > 0
    low = min_available_mem_gib(reset=True)
    assert 0 < low and min_available_mem_gib() <= low
