"""One resumable SFT phase over prebuilt examples, shared by the verbal, abstract and continuous arms.

A stage runs several phases in a row (no-thought and verbal SFT; abstract rounds of Phase A and
Phase B; continuous distillation). Each phase checkpoints every `checkpoint_every` steps into
`<ckpt>/<phase>/` (thinkmid/train/checkpoint.py) and, when it completes, leaves its final weights in
`<ckpt>/<phase>.done/`, so a killed stage resumes inside the phase it was in and skips the ones it
finished. MLflow steps run on across phases (`phase_step0`), so a resumed run logs no step twice.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from thinkmid.io import atomic_path, read_json, write_json
from thinkmid.thoughts.tasks import ANSWER_SEG, REASON
from thinkmid.train.checkpoint import load_latest_checkpoint, save_checkpoint
from thinkmid.train.loop import ThroughputMeter, clip_and_step
from thinkmid.train.losses import causal_lm_loss
from thinkmid.train.optim import make_optimizer, make_scheduler


def collate(examples: list[dict], pad_id: int, bottleneck: bool = False, dtype=torch.float32) -> dict:
    """Right-padded batch. With `bottleneck`, a 4D additive mask that also hides the reasoning
    segment from the answer tokens, so everything the answer learns from the reasoning must pass
    through the tokens in between (Abstract-CoT Phase A)."""
    width = max(len(e["ids"]) for e in examples)
    b = len(examples)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    labels = torch.full((b, width), -100, dtype=torch.long)
    seg = torch.full((b, width), -1, dtype=torch.long)
    for r, e in enumerate(examples):
        n = len(e["ids"])
        ids[r, :n] = torch.tensor(e["ids"])
        labels[r, :n] = torch.tensor(e["labels"])
        seg[r, :n] = torch.tensor(e["seg"])
    valid = seg >= 0
    out = {"input_ids": ids, "labels": labels, "seg": seg}
    if not bottleneck:
        out["attention_mask"] = valid.long()
        return out
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allow = causal[None] & valid[:, None, :]
    allow &= ~((seg[:, :, None] == ANSWER_SEG) & (seg[:, None, :] == REASON))
    allow |= torch.eye(width, dtype=torch.bool)[None]  # padding rows attend to themselves (no NaN)
    out["attention_mask"] = torch.where(allow, 0.0, torch.finfo(dtype).min).to(dtype)[:, None]
    return out


def lm_loss(model, batch: dict, device) -> tuple[torch.Tensor, int]:
    logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
    labels = batch["labels"].to(device)
    return causal_lm_loss(logits, labels), int((labels[:, 1:] != -100).sum())


def accumulate(model, examples, idx, task, device, pad_id: int, bottleneck: bool, loss_fn=None):
    """Backward of one step's batch in micro-batches of task.micro_batch_size rows; the gradient is the
    whole batch's (LM loss: the token mean over the batch; loss_fn: the mean of the micro-batch losses
    weighted by rows). Returns (the batch loss, detached; target tokens)."""
    mb = getattr(task, "micro_batch_size", None) or len(idx)
    parts = [idx[s : s + mb] for s in range(0, len(idx), mb)]
    if loss_fn is not None:
        total, ntok = 0.0, 0
        for part in parts:
            loss, n = loss_fn(model, part, device)
            (loss * (len(part) / len(idx))).backward()
            total, ntok = total + loss.detach() * (len(part) / len(idx)), ntok + n
        return total, ntok
    dtype = next(model.parameters()).dtype
    # target tokens as lm_loss counts them (labels shifted by one), to weigh each micro-batch's mean
    want = sum(sum(1 for x in examples[i]["labels"][1:] if x != -100) for i in idx) or 1
    total, ntok = 0.0, 0
    for part in parts:
        loss, n = lm_loss(model, collate([examples[i] for i in part], pad_id, bottleneck, dtype), device)
        (loss * (n / want)).backward()
        total, ntok = total + loss.detach() * (n / want), ntok + n
    return total, ntok


def batches(n: int, batch_size: int, seed: int, epoch: int, start: int = 0):
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    order = torch.randperm(n, generator=gen).tolist()
    for b in range(start, math.ceil(n / batch_size)):
        yield order[b * batch_size : (b + 1) * batch_size]


def run_phase(
    name: str,
    model: torch.nn.Module,
    examples: list[dict],
    task,
    seed: int,
    ckpt: str | Path,
    tracker,
    phase_step0: int,
    pad_id: int,
    bottleneck: bool = False,
    loss_fn=None,
) -> dict:
    """Train `model` in place for task.epochs over `examples`; returns {steps, final_loss, tokens_seen}.

    loss_fn(model, index_list, device) -> (loss, target tokens) replaces the LM loss on collated rows.
    """
    ckpt = Path(ckpt)
    done = ckpt / f"{name}.done"
    device = next(model.parameters()).device
    if (done / "model.safetensors").exists():
        st_load_model(model, str(done / "model.safetensors"), strict=True, device=str(device))
        return read_json(done / "summary.json")
    per_epoch = math.ceil(len(examples) / task.batch_size)
    total = per_epoch * task.epochs
    optimizer = make_optimizer(model, task.lr)
    scheduler = make_scheduler(optimizer, task.warmup_steps, total, task.min_lr_ratio)
    resumed = load_latest_checkpoint(ckpt / name, model, optimizer, scheduler)
    step, extra = resumed if resumed else (0, {})
    meter = ThroughputMeter(extra.get("tokens_seen", 0))
    logged = tracker.logged_steps("train_loss") if tracker is not None else set()
    last = extra.get("final_loss", float("nan"))
    model.train()
    while step < total:
        epoch, start = divmod(step, per_epoch)
        for idx in batches(len(examples), task.batch_size, seed, epoch, start):
            loss, ntok = accumulate(model, examples, idx, task, device, pad_id, bottleneck, loss_fn)
            lr = scheduler.get_last_lr()[0]
            gnorm = clip_and_step(model, optimizer, scheduler, task.max_grad_norm, loss=loss.detach(), step=step)
            meter.add(ntok)
            last = float(loss.detach())
            gstep = phase_step0 + step
            if tracker is not None and gstep not in logged:
                tracker.log_metrics(
                    {"train_loss": last, "grad_norm": gnorm, "lr": lr, "tokens_seen": meter.tokens_seen}, step=gstep
                )
            step += 1
            if step % task.checkpoint_every == 0 and step < total:
                save_checkpoint(
                    ckpt / name,
                    step,
                    model,
                    optimizer,
                    scheduler,
                    extra={"tokens_seen": meter.tokens_seen, "final_loss": last},
                )
    model.eval()
    summary = {"steps": total, "final_loss": last, "tokens_seen": meter.tokens_seen}
    with atomic_path(done) as tmp:
        tmp.mkdir(parents=True)
        st_save_model(model, str(tmp / "model.safetensors"))
        write_json(tmp / "summary.json", summary)
    return summary
