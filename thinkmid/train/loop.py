"""Pieces of the training loops shared by self_improve, sft and rlmt: a guarded optimizer step,
deterministic resumable SFT batches, and the throughput / memory columns of the SFT metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from thinkmid.train.losses import IGNORE_INDEX


class NonFiniteLossError(RuntimeError):
    """Loss or gradient norm became NaN/inf; raised before the optimizer steps, so the weights and
    the last checkpoint are still good."""

    def __init__(self, step: int | None, what: str, value: float):
        self.step, self.what, self.value = step, what, value
        super().__init__(f"non-finite {what} ({value}) at step {step}; the optimizer did not step")


def clip_and_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    max_grad_norm: float = 1.0,
    loss: torch.Tensor | float | None = None,
    step: int | None = None,
    accelerator=None,
) -> float:
    """Check loss and gradients, clip to `max_grad_norm`, step optimizer and scheduler, zero grads.

    Returns the gradient norm before clipping. Raises NonFiniteLossError (grads zeroed, no step)
    if the loss or the norm is not finite.
    """
    if loss is not None:
        value = float(loss.detach().item() if isinstance(loss, torch.Tensor) else loss)
        if not math.isfinite(value):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(step, "loss", value)
    params = [p for p in model.parameters() if p.grad is not None]
    if accelerator is not None:  # under DDP the norm must be taken on the synchronised grads
        norm = accelerator.clip_grad_norm_(params, max_grad_norm)
    else:
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    norm = float(norm)
    if not math.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLossError(step, "grad norm", norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def num_sft_batches(n_rows: int, batch_size: int) -> int:
    return math.ceil(n_rows / batch_size)


def sft_batches(
    token_rows: list[list[int]],
    seq_len: int,
    batch_size: int,
    seed: int,
    epoch: int,
    pad_id: int = 0,
    start_batch: int = 0,
    loss_masks: list[list[int]] | None = None,
    shuffle: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled, right-padded batches of one epoch: {input_ids, attention_mask, labels} [b, L].

    The order depends only on (seed, epoch), so resuming at `start_batch` yields exactly the batches
    a straight run would have yielded next. Rows are truncated to `seq_len`; L is the longest row of
    the batch. Labels are -100 on padding and where `loss_masks` (same shape as rows) is 0.
    Rows are padded, not packed: packing would let one document attend to another.
    """
    if loss_masks is not None and (
        len(loss_masks) != len(token_rows) or any(len(m) != len(r) for m, r in zip(loss_masks, token_rows))
    ):
        raise ValueError("loss_masks must have the same shape as token_rows")
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    order = torch.randperm(len(token_rows), generator=gen).tolist() if shuffle else list(range(len(token_rows)))
    for b in range(start_batch, num_sft_batches(len(token_rows), batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        rows = [token_rows[i][:seq_len] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for r, (i, row) in enumerate(zip(idx, rows)):
            t = torch.tensor(row, dtype=torch.long)
            ids[r, : len(row)] = t
            attn[r, : len(row)] = 1
            lab = t.clone()
            if loss_masks is not None:
                m = torch.tensor(loss_masks[i][:seq_len], dtype=torch.bool)
                lab[~m] = IGNORE_INDEX
            labels[r, : len(row)] = lab
        yield {"input_ids": ids, "attention_mask": attn, "labels": labels}


class ThroughputMeter:
    """Tokens per second of this process's training time; `tokens_seen` may start from a resume."""

    def __init__(self, tokens_seen: int = 0):
        self.tokens_seen = int(tokens_seen)
        self._counted = 0
        self._start = time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens_seen += int(tokens)
        self._counted += int(tokens)

    @property
    def tokens_per_s(self) -> float:
        elapsed = time.perf_counter() - self._start
        return self._counted / elapsed if elapsed > 0 else 0.0


def throughput_meter(tokens_seen: int = 0) -> ThroughputMeter:
    return ThroughputMeter(tokens_seen)


def available_mem_gib() -> float:
    import psutil

    return psutil.virtual_memory().available / 2**30


_min_seen: float | None = None


def min_available_mem_gib(reset: bool = False) -> float:
    """Sample available system memory now and return the lowest value seen by this process (GiB).

    Call it once per step; `reset=True` starts a new minimum (e.g. at the start of a stage).
    """
    global _min_seen
    now = available_mem_gib()
    _min_seen = now if reset or _min_seen is None else min(_min_seen, now)
    return _min_seen
