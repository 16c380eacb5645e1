"""Reasoning-eval time of one arm: 4 benchmarks (GSM8K 1319, MATH-500 500, GPQA-Diamond 198,
OlympiadBench 674 questions) x 8 samples x up to 512 new tokens, top_p 0.95, temperature 0.6.
Random weights never stop early, so every row runs 512 tokens (the worst case). A subset of
questions is timed and the full count extrapolated by batches.
Run: PYTHONPATH=. python benchmarks/bench_eval.py [--questions 128] [--batch 512]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time

import torch

from benchmarks.common import FakeTok, emit, qwen3_06b, sync
from thinkmid.engines.base import SamplingParams
from thinkmid.engines.hf import HFEngine

COUNTS = {"gsm8k": 1319, "math500": 500, "gpqa_diamond": 198, "olympiadbench": 674}
K, NEW = 8, 512


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=128)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--windows", default="128", help="generated-token attention window granularities to time")
    ap.add_argument("--attn", default="triton", help="decode attention kernel: triton or eff")
    a = ap.parse_args()
    os.environ["THINKMID_DECODE_ATTN"] = a.attn
    m = qwen3_06b()
    eng = HFEngine(m, FakeTok(), batch_size=a.batch)
    r = random.Random(0)
    # Realistic prompt lengths: chat template + question (+ options), 80..400 tokens.
    ps = [[r.randrange(1000, 150000) for _ in range(r.randint(80, 400))] for _ in range(a.questions)]
    sp = SamplingParams(max_new_tokens=NEW, n=K, temperature=0.6, top_p=0.95, stop_token_ids=(151643,))
    if torch.cuda.is_available():
        sampler_micro(a.batch)
    for w in [int(x) for x in a.windows.split(",")]:
        dec = eng._fast_decoder()
        if dec is not None:
            dec.window = w
            dec.reset()
        run_one(eng, ps, sp, a, w)


def sampler_micro(b):
    """Time of the compiled top-p sampler alone on [b, vocab] logits (ms per decode step)."""
    from benchmarks.common import timed
    from thinkmid.engines.sampling import nucleus_sample

    f = torch.compile(nucleus_sample, dynamic=False, fullgraph=True)
    x = torch.randn(b, 151936, device="cuda", dtype=torch.bfloat16) * 3
    temp, top = torch.full((b,), 0.6, device="cuda"), torch.full((b,), 0.95, device="cuda")
    t = timed(lambda: f(x, temp, top), repeat=20, warmup=3)
    emit(figure="sampler_micro", batch=b, ms=round(t * 1e3, 2))


def run_one(eng, ps, sp, a, window):
    eng.generate(ps[: a.batch // K], sp)  # warm-up
    sync()
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    t0 = time.perf_counter()
    outs = eng.generate(ps, sp)
    sync()
    t = time.perf_counter() - t0
    toks = sum(len(c.token_ids) for g in outs for c in g)
    total_q = sum(COUNTS.values())
    est = t / math.ceil(a.questions * K / a.batch) * math.ceil(total_q * K / a.batch)
    per_bench = t / math.ceil(a.questions * K / a.batch) * sum(math.ceil(c * K / a.batch) for c in COUNTS.values())
    emit(
        figure="reasoning_eval_s",
        decode_attention=a.attn,
        questions_timed=a.questions,
        batch=a.batch,
        window=window,
        timed_s=round(t, 2),
        tok_s=round(toks / t),
        questions_full=total_q,
        samples=K,
        max_new_tokens=NEW,
        est_full_eval_s=round(est, 1),
        est_per_benchmark_calls_s=round(per_bench, 1),
        target_s=300,
        peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None,
    )


if __name__ == "__main__":
    main()
