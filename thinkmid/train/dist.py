"""Several processes (DDP / FSDP under `accelerate launch`) in one place; a no-op in one process.

A training stage builds one `Dist` and asks it everything that depends on the process count:
which device to use, which rows of a global batch are this rank's, the loss whose DDP-averaged
gradient equals the one-process gradient of the same global batch, sums and gathers over ranks,
and whether this process may write (metrics, MLflow, checkpoints, final model: main only).

    accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m stages.sft --arm think_base

Launched as plain `python -m ...` (WORLD_SIZE unset or 1) no Accelerator is built and every method
is the identity, so the one-process path, its numbers and its outputs stay exactly as they were.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from thinkmid.train.fast import sft_loss_fast, use_fast_sft
from thinkmid.train.losses import IGNORE_INDEX, causal_lm_loss, causal_lm_nll_sum


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class FusedLoss(torch.nn.Module):
    """A model with its fused training loss as one module: DDP must wrap the module whose forward
    computes the loss (calling the inner model past the wrapper would skip DDP's forward hooks).
    The inner model sits at `.module`, so checkpoint code that peels wrappers reaches it."""

    def __init__(self, model):
        super().__init__()
        self.module = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = (labels[:, 1:] != IGNORE_INDEX).sum()
        return sft_loss_fast(self.module, input_ids, labels) * count, count  # (summed NLL, target tokens)


class NullRun:
    """What non-main ranks get instead of a StageRun: logs and writes nothing."""

    run_id = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def logged_steps(self, key: str) -> set[int]:
        return set()

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass

    def log_artifact(self, path) -> None:
        pass

    def write_metrics(self, path, metrics: dict, log: bool = True) -> None:
        pass


class Dist:
    """Process-count-aware helpers; `Dist()` in one process, `Dist()` under accelerate launch alike."""

    def __init__(self, cpu: bool | None = None):
        self.accelerator = None
        self.world_size, self.rank, self.local_rank = 1, 0, 0
        if launched_world_size() > 1:
            from accelerate import Accelerator

            if cpu is None:
                cpu = os.environ.get("THINKMID_DEVICE") == "cpu" or not torch.cuda.is_available()
            self.accelerator = Accelerator(cpu=cpu)
            self.world_size = self.accelerator.num_processes
            self.rank = self.accelerator.process_index
            self.local_rank = self.accelerator.local_process_index
            if "THINKMID_THREADS" not in os.environ:  # share the host's cores, don't oversubscribe them
                local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
                from thinkmid.cli import DEFAULT_THREADS  # fixed, not the host's cores: same bits everywhere

                torch.set_num_threads(max(1, DEFAULT_THREADS // local))

    # -- who am I -----------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.accelerator is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_fsdp(self) -> bool:
        return self.enabled and "FSDP" in str(self.accelerator.distributed_type)

    def device(self) -> torch.device | str:
        if self.enabled:
            return self.accelerator.device
        from thinkmid.engines.factory import pick_device

        return pick_device()

    def rank_seed(self, seed: int) -> int:
        """A per-rank seed for sampling (rank 0 keeps `seed`, so one process is unchanged)."""
        return int(seed) + 1_000_003 * self.rank

    # -- wrapping -----------------------------------------------------------------------------
    def prepare(self, model, optimizer, lm_loss: bool = False):
        """Wrap for DDP/FSDP (the scheduler stays ours: accelerate's would step once per process).
        lm_loss: the model will train through `lm_loss`; under DDP it then takes the fused path too."""
        if not self.enabled:
            return model, optimizer
        if lm_loss and not self.is_fsdp and use_fast_sft(model):
            model = FusedLoss(model)
        return self.accelerator.prepare(model, optimizer)

    def unwrap(self, model):
        if not self.enabled:
            return model
        bare = self.accelerator.unwrap_model(model)
        return bare.module if isinstance(bare, FusedLoss) else bare

    def state_dict(self, model) -> dict | None:
        """Full state dict (gathered under FSDP) on every rank that needs it; call on all ranks."""
        if not self.enabled:
            return model.state_dict()
        if isinstance(self.accelerator.unwrap_model(model), FusedLoss):
            return self.unwrap(model).state_dict()
        return self.accelerator.get_state_dict(model)

    # -- batches and losses -------------------------------------------------------------------
    def shard(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This rank's rows of a global batch: contiguous, as even as can be (rank r gets rows
        [r*n/W, (r+1)*n/W)). A rank left with no rows gets row 0 with no loss targets, so it still
        runs forward and backward (DDP needs every rank in each all-reduce) and adds nothing."""
        if not self.enabled:
            return batch
        n = next(iter(batch.values())).shape[0]
        lo, hi = self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size
        if hi > lo:
            return {k: v[lo:hi] for k, v in batch.items()}
        out = {k: v[:1].clone() for k, v in batch.items()}
        out["labels"] = torch.full_like(out["labels"], IGNORE_INDEX)
        return out

    def lm_loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, float, int]:
        """(loss to backward, global token-mean loss, global tokens) for this rank's shard.

        Each rank's loss is sum(NLL) * W / (target tokens over all ranks): DDP averages gradients
        over W ranks, so the result is the gradient of the token mean over the whole global batch,
        the same as one process on that batch whatever the split of tokens between ranks.
        """
        dev = next(model.parameters()).device
        shard = self.shard(batch)
        if not self.enabled and use_fast_sft(model):  # one GPU: fused layers + chunked CE, no [b, L, V] logits
            loss = sft_loss_fast(model, shard["input_ids"].to(dev), shard["labels"].to(dev))
            return loss, float(loss.detach()), int(batch["attention_mask"].sum())
        if self.enabled and isinstance(self.accelerator.unwrap_model(model), FusedLoss):  # DDP, fused path
            total, count = model(shard["input_ids"].to(dev), shard["labels"].to(dev))
            count = int(count)
        else:
            logits = model(input_ids=shard["input_ids"].to(dev), attention_mask=shard["attention_mask"].to(dev)).logits
            if not self.enabled:
                loss = causal_lm_loss(logits, shard["labels"].to(dev))
                return loss, float(loss.detach()), int(batch["attention_mask"].sum())
            total, count = causal_lm_nll_sum(logits, shard["labels"].to(dev))
        sums = self.sum(torch.tensor([float(total.detach()), float(count)], dtype=torch.float64))
        global_count = max(int(sums[1].item()), 1)
        loss = total * (self.world_size / global_count)
        return loss, float(sums[0].item()) / global_count, int(batch["attention_mask"].sum())

    # -- collectives --------------------------------------------------------------------------
    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce sum (returns a CPU tensor of the input's dtype)."""
        if not self.enabled:
            return t
        x = t.to(self.accelerator.device)
        torch.distributed.all_reduce(x)
        return x.cpu()

    def gather_objects(self, items: list) -> list:
        """Concatenate every rank's list, in rank order, on every rank."""
        if not self.enabled:
            return list(items)
        out: list = [None] * self.world_size
        torch.distributed.all_gather_object(out, list(items))
        return [x for part in out for x in part]

    def split(self, items: list) -> list:
        """This rank's contiguous share of a list (for rollouts: each rank generates its part)."""
        if not self.enabled:
            return list(items)
        n = len(items)
        return items[self.rank * n // self.world_size : (self.rank + 1) * n // self.world_size]

    def barrier(self) -> None:
        if self.enabled:
            self.accelerator.wait_for_everyone()

    # -- main-process-only side effects ---------------------------------------------------------
    def tracker(self, stage: str, params, arm: str | None = None, run_id: str | None = None):
        """The MLflow StageRun (resuming `run_id` when given) on the main process, a NullRun elsewhere."""
        if self.is_main:
            from thinkmid.track import StageRun

            return StageRun(stage, params, arm=arm, run_id=run_id)
        return NullRun()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[bool]:
        """Run a block on the main process, the others wait at its end; yields is_main."""
        try:
            yield self.is_main
        finally:
            self.barrier()

    def end(self) -> None:
        if self.enabled:
            self.accelerator.end_training()
