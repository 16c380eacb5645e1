"""Two SFT steps of a tiny Qwen3 through thinkmid.train.dist, run as one process (plain `python`) or
as one rank of several (RANK/WORLD_SIZE/MASTER_* set, gloo on CPU); rank 0 writes the gradients of
each step and the losses to argv[1]. tests/train/test_ddp.py compares the two."""

from __future__ import annotations

import json
import sys

import torch
from safetensors.torch import save_file

from thinkmid.train.dist import Dist
from thinkmid.train.loop import clip_and_step, sft_batches
from thinkmid.train.optim import make_optimizer, make_scheduler

VOCAB, PAD = 512, 0


def make_tiny_qwen3(seed: int = 0):
    """tests/conftest.py's tiny Qwen3 with a 512-token vocab (special ids moved inside it)."""
    from tests.conftest import make_tiny_qwen3 as tiny

    return tiny(seed, vocab_size=VOCAB, pad_token_id=PAD)


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist = Dist(cpu=True)
    model = make_tiny_qwen3(seed=0).train()
    gen = torch.Generator().manual_seed(1)
    lengths = [7, 12, 3, 9, 15, 5]  # 6 rows, batch 5: a 5-row batch (split 2/3) then a 1-row batch
    rows = [torch.randint(1, VOCAB, (n,), generator=gen).tolist() for n in lengths]
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.1)
    sched = make_scheduler(opt, 0, 2, 0.1)
    model, opt = dist.prepare(model, opt, lm_loss=True)
    inner = dist.accelerator.unwrap_model(model) if dist.enabled else model
    result: dict = {
        "world_size": dist.world_size,
        "losses": [],
        "tokens": [],
        "grad_norms": [],
        "trains": type(inner).__name__,
    }
    grads = {}
    for step, batch in enumerate(sft_batches(rows, 16, 5, seed=0, epoch=0, pad_id=PAD)):
        loss, value, tokens = dist.lm_loss(model, batch)
        loss.backward()
        for name, p in dist.unwrap(model).named_parameters():
            grads[f"{step}.{name}"] = p.grad.detach().clone().contiguous()
        norm = clip_and_step(model, opt, sched, 1.0, loss=value, step=step, accelerator=dist.accelerator)
        result["losses"].append(value)
        result["tokens"].append(tokens)
        result["grad_norms"].append(norm)
    if dist.is_main:
        save_file(grads, out + ".safetensors")
        with open(out + ".json", "w") as f:
            json.dump(result, f)
    dist.barrier()
    dist.end()


if __name__ == "__main__":
    main(sys.argv[1])
