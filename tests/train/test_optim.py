import math

import pytest
import torch

from thinkmid.train.optim import lr_factor, make_optimizer, make_scheduler


def test_lr_curve_warmup_then_cosine():
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(model, lr=2.0)
    sched = make_scheduler(opt, warmup_steps=2, total_steps=7, min_lr_ratio=0.1)
    seen = []
    for _ in range(7):
        seen.append(opt.param_groups[0]["lr"])  # the lr this optimizer step uses
        opt.step()
        sched.step()
    cos = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]
    expected = [2.0 * f for f in [1 / 3, 2 / 3] + cos]
    assert seen == pytest.approx(expected)
    assert seen[2] == pytest.approx(2.0) and seen[-1] == pytest.approx(0.2)


def test_lr_factor_edges():
    assert lr_factor(0, 0, 1, 0.1) == 1.0  # one step, no warmup: the peak
    assert lr_factor(0, 0, 3, 0.0) == 1.0 and lr_factor(2, 0, 3, 0.0) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        make_scheduler(make_optimizer(torch.nn.Linear(1, 1), 1.0), 0, 0, 0.1)


def test_weight_decay_groups_and_foreach():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 0.1]
    assert sum(len(g["params"]) for g in opt.param_groups) == 4
    assert opt.defaults["foreach"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_on_cuda():
    opt = make_optimizer(torch.nn.Linear(3, 2).cuda(), lr=1e-3)
    assert opt.defaults["fused"] is True
