"""Training the gates: forget loss on entity tokens, retain KL on reasoning text, resumable.

Each step takes a batch of `forget_batch_size` knowledge rows and `retain_per_forget` times as many
reasoning rows (the card's 1:2 mix). With g the gated model and u the same model with the gates off:

  forget  = mean over knowledge rows of softplus(beta - CE_g(entity tokens of the row))
  retain  = T^2 * KL(u || g) at temperature T, mean over the reasoning rows' tokens
  nke     = the same KL over the knowledge rows' non-entity tokens (card: unmasked_retain_weight)
  loss    = lambda_f * forget + lambda_r * retain + unmasked_retain_weight * nke

Only the gate logits train (the model is frozen); AdamW with a cosine schedule (thinkmid/train/optim).
Batches depend only on (seed, step), so a run resumed from a checkpoint takes the same batches a
straight run would have; checkpoints are thinkmid/train/checkpoint.py's, with a fingerprint of the
params so a changed configuration never resumes an old run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from thinkmid.errors import InputError
from thinkmid.train.checkpoint import load_latest_checkpoint, save_checkpoint
from thinkmid.train.loop import clip_and_step
from thinkmid.train.optim import make_optimizer, make_scheduler


def pad(rows: list[list[int]], pad_id: int, masks: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask and (optional) row masks [b, L]."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, : len(r)] = 1
        if masks is not None:
            mask[i, : len(r)] = torch.tensor(masks[i], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": attn, "mask": mask}


def steps_per_epoch(n_forget: int, forget_batch: int) -> int:
    return math.ceil(n_forget / forget_batch)


def step_indices(
    step: int, n_forget: int, n_retain: int, forget_batch: int, retain_per_forget: int, seed: int
) -> tuple[list[int], list[int]]:
    """(knowledge row indices, reasoning row indices) of optimizer step `step`.

    Knowledge rows: a fresh seeded order each epoch. Reasoning rows: a stream that cycles through
    seeded orders of the reasoning set, `retain_per_forget` rows per knowledge row."""
    per_epoch = steps_per_epoch(n_forget, forget_batch)
    epoch, b = divmod(step, per_epoch)
    order = torch.randperm(n_forget, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    forget = order[b * forget_batch : (b + 1) * forget_batch]
    start = step * forget_batch * retain_per_forget  # every full step before this one took this many
    retain, perms = [], {}
    for j in range(start, start + len(forget) * retain_per_forget):
        cycle, pos = divmod(j, n_retain)
        if cycle not in perms:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (cycle + 1))
            perms[cycle] = torch.randperm(n_retain, generator=gen).tolist()
        retain.append(perms[cycle][pos])
    return forget, retain


def entity_ce(logits: torch.Tensor, ids: torch.Tensor, entity_mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean cross-entropy over the entity tokens [b] (rows without one give 0)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    m = entity_mask[:, 1:].to(nll.dtype)
    return (nll * m).sum(1) / m.sum(1).clamp_min(1)


def forget_loss(ce: torch.Tensor, beta: float) -> torch.Tensor:
    """softplus(beta - CE): pushes the entity CE up until it passes beta, then lets go."""
    return F.softplus(beta - ce).mean()


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) of the tempered distributions, mean over positions where mask is 1."""
    t = torch.log_softmax(teacher.float() / temperature, dim=-1)
    s = torch.log_softmax(student.float() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(-1)
    m = mask.to(kl.dtype)
    return (kl * m).sum() / m.sum().clamp_min(1) * temperature**2


def _rows(batch: dict, size: int) -> list[dict]:
    n = batch["input_ids"].shape[0]
    return [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, n, size)]


def gate_loss_backward(model, gates, fb: dict, rb: dict, cfg) -> dict:
    """Backward of the step's loss on a knowledge batch `fb` (mask = entity tokens) and a reasoning
    batch `rb`, `cfg.micro_batch_size` rows per forward (None: each batch at once); returns the metrics.

    Every term is a sum over rows or positions divided by a count over the whole batch, so each
    micro-batch's share is exact and its full-vocab logits are freed before the next (the paper's 48
    rows x 512 tokens x 152k vocab held ~110 GiB at once on an H200)."""
    dev = gates.logits.device
    fb = {k: v.to(dev) for k, v in fb.items()}
    rb = {k: v.to(dev) for k, v in rb.items()}
    nke_on = cfg.unmasked_retain_weight > 0
    n_forget = fb["input_ids"].shape[0]
    retain_n = rb["attention_mask"][:, 1:].sum().clamp_min(1)
    nke_n = (fb["attention_mask"][:, 1:] * (1 - fb["mask"][:, 1:])).sum().clamp_min(1)
    sums = dict.fromkeys(("forget_loss", "retain_kl", "nke_kl", "entity_ce"), 0.0)

    def logits(b: dict) -> torch.Tensor:
        return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits

    for part in _rows(fb, cfg.micro_batch_size or n_forget):
        logits_f = logits(part)
        ce = entity_ce(logits_f, part["input_ids"], part["mask"])
        forget = forget_loss(ce, cfg.beta) * len(ce) / n_forget  # this share of the mean over the batch
        loss = cfg.lambda_f * forget
        if nke_on:
            with torch.no_grad(), gates.ungated():
                teacher_f = logits(part)[:, :-1]
            other = part["attention_mask"][:, 1:] * (1 - part["mask"][:, 1:])
            nke = distill_kl(logits_f[:, :-1], teacher_f, other, cfg.distill_temperature)
            nke = nke * other.sum().clamp_min(1) / nke_n  # this share of the mean over the batch's positions
            loss = loss + cfg.unmasked_retain_weight * nke
            sums["nke_kl"] += float(nke.detach())
        loss.backward()
        sums["forget_loss"] += float(forget.detach())
        sums["entity_ce"] += float(ce.detach().sum()) / n_forget
    for part in _rows(rb, cfg.micro_batch_size or rb["input_ids"].shape[0]):
        with torch.no_grad(), gates.ungated():
            teacher_r = logits(part)[:, :-1]
        mask = part["attention_mask"][:, 1:]
        retain = distill_kl(logits(part)[:, :-1], teacher_r, mask, cfg.distill_temperature)
        retain = retain * mask.sum().clamp_min(1) / retain_n
        (cfg.lambda_r * retain).backward()
        sums["retain_kl"] += float(retain.detach())
    values = gates.values()
    loss = cfg.lambda_f * sums["forget_loss"] + cfg.lambda_r * sums["retain_kl"]
    loss += cfg.unmasked_retain_weight * sums["nke_kl"]  # 0 when the term is off
    return {
        "loss": loss,
        **sums,
        "gate_mean": float(values.mean()),
        "gate_std": float(values.std(unbiased=False)),
    }


def fingerprint(cfg, seed: int, arm: str | None) -> dict:
    return json.loads(json.dumps({"knowledge_gates": cfg.model_dump(), "seed": seed, "arm": arm}))


def train_gates(
    model,
    gates,
    facts: list[dict],
    retain: list[list[int]],
    cfg,
    seed: int,
    pad_id: int,
    ckpt_dir: str,
    arm: str | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train `gates` (attached to the frozen `model`) for cfg.epochs over `facts` (encoded, with
    entity masks); returns the per-step history. Checkpoints every cfg.checkpoint_every steps."""
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    total = steps_per_epoch(len(facts), cfg.forget_batch_size) * cfg.epochs
    opt = make_optimizer(gates, cfg.lr)
    sched = make_scheduler(opt, cfg.warmup_steps, total, cfg.min_lr_ratio)
    want = fingerprint(cfg, seed, arm)
    resumed = load_latest_checkpoint(ckpt_dir, gates, opt, sched)
    step, extra = resumed if resumed else (0, {})
    if resumed and extra.get("fingerprint") != want:
        raise InputError(
            f"{ckpt_dir}: checkpoint written with other params ({extra.get('fingerprint')} vs now "
            f"{want}); delete the directory to start over"
        )
    history = extra.get("history", [])
    while step < total:
        fi, ri = step_indices(step, len(facts), len(retain), cfg.forget_batch_size, cfg.retain_per_forget, seed)
        fb = pad([facts[i]["ids"] for i in fi], pad_id, [facts[i]["entity_mask"] for i in fi])
        rb = pad([retain[i] for i in ri], pad_id)
        lr = sched.get_last_lr()[0]
        m = gate_loss_backward(model, gates, fb, rb, cfg)
        m["grad_norm"] = clip_and_step(gates, opt, sched, cfg.max_grad_norm, loss=m["loss"], step=step)
        m.update(step=step, lr=lr)
        history.append(m)
        if on_step is not None:
            on_step(m)
        step += 1
        if step % cfg.checkpoint_every == 0 and step < total:
            save_checkpoint(ckpt_dir, step, gates, opt, sched, extra={"history": history, "fingerprint": want})
    return history
