"""AdamW and the warmup + cosine learning-rate schedule every training stage uses."""

from __future__ import annotations

import math

import torch


def make_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float = 0.0, decay_norms: bool = False
) -> torch.optim.AdamW:
    """AdamW over trainable parameters; fused kernels on CUDA, foreach on CPU.

    With weight decay, 1-D tensors (norms, biases) are not decayed, the usual practice for LMs,
    unless decay_norms (the seed decays every parameter: `AdamW(model.parameters(), weight_decay=)`).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if weight_decay > 0 and not decay_norms:
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": params, "weight_decay": weight_decay}]
    on_cuda = all(p.is_cuda and p.is_floating_point() for p in params)
    kind = {"fused": True} if on_cuda else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, **kind)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based).

    Warmup ramps (step+1)/(warmup+1) so the first step is not wasted at lr 0; step `warmup_steps`
    is the peak; cosine then decays to `min_lr_ratio` at the last step (total_steps - 1).
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = total_steps - 1 - warmup_steps
    progress = min(1.0, (step - warmup_steps) / span) if span > 0 else 0.0  # no room to decay: peak
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def seed_lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """The seed's schedule: warmup step/warmup (step 0 trains at lr 0), then cosine over
    (step - warmup) / (total - warmup), floored at min_lr_ratio.

    With min_lr_ratio 0 this is transformers' get_cosine_schedule_with_warmup (the seed's RLMT,
    scripts/train_rlmt.py: `get_cosine_schedule_with_warmup(optimizer, 2, steps)`); with a floor it
    is `cosine_with_floor_schedule` (scripts/train.py @ f5a982a, SFT and Phase 3). The cosine never
    reaches the floor inside the run: at the last step (total - 1) it is one step short of it.
    """
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


SCHEDULES = {"thinkmid": lr_factor, "seed": seed_lr_factor}


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float, kind: str = "thinkmid"
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR of lr_factor (or seed_lr_factor, kind="seed"); call scheduler.step() once after each
    optimizer.step()."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if kind not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {kind!r}; expected one of {sorted(SCHEDULES)}")
    factor = SCHEDULES[kind]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s, warmup_steps, total_steps, min_lr_ratio))
