"""SFT training throughput and MFU (6N FLOPs per token) at seq 2048 on a random Qwen3-0.6B shape.

baseline: HF forward with labels (full logits + HF loss), backward, fused AdamW.
ours: `thinkmid.train.fast.causal_lm_loss_fast` (chunked fused linear + CE), optionally with every
decoder layer torch.compile'd.
Run: PYTHONPATH=. python benchmarks/bench_train.py [--batch 8] [--no-compile]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import H100_BF16_DENSE, emit, qwen3_06b, timed
from thinkmid.train.fast import causal_lm_loss_fast
from thinkmid.train.optim import make_optimizer

SEQ = 2048


def bench(name, model, batch, loss_fn, steps=5):
    opt = make_optimizer(model, lr=1e-5)
    ids = torch.randint(1000, 150000, (batch, SEQ), device="cuda")

    def step():
        loss = loss_fn(model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    t = timed(step, repeat=steps, warmup=1)
    n = sum(p.numel() for p in model.parameters())
    tps = batch * SEQ / t
    mfu = 6 * n * tps / H100_BF16_DENSE
    emit(figure="train_sft", variant=name, seq=SEQ, batch=batch, tok_s=round(tps), mfu_6n=round(mfu, 4),
         step_s=round(t, 3), first_step_s=round(first, 1), peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 1),
         mfu_peak_flops=H100_BF16_DENSE)  # fmt: skip
    del opt
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return mfu


def hf_loss(model, ids):
    return model(input_ids=ids, labels=ids).loss


def fast_loss(model, ids):
    return causal_lm_loss_fast(model, ids, ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    model = qwen3_06b().train()
    model.config.use_cache = False
    base = bench("baseline_hf_loss", model, a.batch, hf_loss)
    ours = bench("fused_linear_ce", model, a.batch, fast_loss)
    emit(figure="train_sft_ratio", variant="fused_linear_ce", ratio_to_baseline=round(ours / base, 2))
    if not a.no_compile:
        for layer in model.model.layers:
            layer.compile(dynamic=False)
        ours_c = bench("fused_linear_ce+compiled_layers", model, a.batch, fast_loss)
        emit(figure="train_sft_ratio", variant="fused_linear_ce+compiled_layers", ratio_to_baseline=round(ours_c / base, 2))


if __name__ == "__main__":
    main()
