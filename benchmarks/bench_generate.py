"""Generation throughput of the `hf` engine vs transformers generate, and GPU correctness figures.

Workload (the RLMT rollout): prefix 256 tokens, K=16 samples per prefix, thought 48 + </think> +
suffix 128 new tokens, temperature 1, top_p 0.95, random bf16 Qwen3-0.6B-shaped weights.
Run: PYTHONPATH=. python benchmarks/bench_generate.py [--batches 32 256 1024] [--baseline-batches 32 256]
"""

from __future__ import annotations

import argparse
import os
import random

import torch

from benchmarks.common import FakeTok, copy_bandwidth, emit, qwen3_06b, sync, timed
from thinkmid.engines.base import SamplingParams
from thinkmid.engines.hf import HFEngine

PREFIX, THOUGHT, SUFFIX, K, CLOSE = 256, 48, 128, 16, 151668


def prompts_for(n, seed=0):
    r = random.Random(seed)
    return [[r.randrange(1000, 150000) for _ in range(PREFIX)] for _ in range(n)]


def kv_bytes_per_token(m):
    c = m.config
    return c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * 2


def roofline(m, b, bw, shared: bool):
    """tok/s bound of decode: per step read all weights once + the KV cache (mean length)."""
    w = sum(p.numel() for p in m.parameters()) * 2
    new = THOUGHT + 1 + SUFFIX
    kv_rows = b * new / 2 + (b // K if shared else b) * PREFIX
    return b / ((w + kv_rows * kv_bytes_per_token(m)) / bw)


def ours(m, b):
    eng = HFEngine(m, FakeTok(), batch_size=b)
    ps = prompts_for(b // K)
    th = SamplingParams(max_new_tokens=THOUGHT, n=K, temperature=1.0, top_p=0.95, stop_token_ids=(CLOSE,))
    su = SamplingParams(max_new_tokens=SUFFIX, temperature=1.0, top_p=0.95, stop_token_ids=(151643,))
    holder = {}
    holder["out"] = None

    def run():
        holder["out"] = eng.two_stage(ps, th, su, [CLOSE])

    t = timed(run, repeat=3, warmup=1)
    toks = sum(len(c.thought.token_ids) + len(c.suffix.token_ids) + 1 for g in holder["out"] for c in g)
    return toks / t, t, eng


def profile_decode(eng, b):
    """Kernel time of one decode step at batch b (eager launches of the same compiled pieces)."""
    from benchmarks.common import profile_top

    dec = eng._fast_decoder()
    dec.win = max(dec.windows)

    def steps():
        dec.step.fill_(100)  # mid-sequence, inside the record buffers
        for _ in range(5):
            dec._decode_step()

    profile_top(f"decode-{os.environ.get('THINKMID_DECODE_ATTN', 'default')}-b{b}", steps, steps=2)


def baseline(m, b, new_tokens):
    ids = torch.tensor(prompts_for(b // K), device="cuda").repeat_interleave(K, 0)

    def run():
        m.generate(
            ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=True,
            top_p=0.95,
            top_k=0,
            temperature=1.0,
            pad_token_id=151643,
        )

    t = timed(run, repeat=1, warmup=1)
    return b * new_tokens / t


def correctness(m, eng, label="bf16"):
    """On GPU: greedy agreement with transformers and engine vs teacher-forced log-probs."""
    ps = prompts_for(16, seed=1)
    ps = [p[: 64 + 12 * i] for i, p in enumerate(ps)]  # varied lengths, left padding inside a batch
    outs = eng.generate(ps, SamplingParams(max_new_tokens=64, temperature=0))
    same, prefix = 0, 0
    for p, c in zip(ps, outs):
        ref = m.generate(
            torch.tensor([p], device="cuda"), max_new_tokens=64, do_sample=False, pad_token_id=151643, eos_token_id=None
        )[0, len(p) :].tolist()
        got = c[0].token_ids
        same += sum(a == b for a, b in zip(ref, got))
        k = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), len(ref))
        prefix += k
    sampled = eng.generate(ps[:4], SamplingParams(max_new_tokens=64, n=4, temperature=1.0, top_p=0.95, seed=2))
    diffs = []
    with torch.no_grad():
        for p, comps in zip(ps, sampled):
            for c in comps:
                full = torch.tensor([p + c.token_ids], device="cuda")
                lp = torch.log_softmax(m(full).logits[0].float(), -1)[len(p) - 1 : -1]
                ref = lp.gather(-1, torch.tensor(c.token_ids, device="cuda")[:, None]).squeeze(-1)
                diffs.append((ref - torch.tensor(c.logprobs, device="cuda")).abs())
    d = torch.cat(diffs)
    n = 64 * len(ps)
    emit(
        figure=f"gpu_correctness_{label}",
        decode_attention=os.environ.get("THINKMID_DECODE_ATTN"),
        greedy_token_match_rate=same / n,
        greedy_prefix_match_rate=prefix / n,
        logprob_abs_diff_mean=d.mean().item(),
        logprob_abs_diff_max=d.max().item(),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 256, 1024])
    ap.add_argument("--baseline-batches", type=int, nargs="*", default=[32, 256])
    ap.add_argument("--baseline-new-tokens", type=int, default=48)
    ap.add_argument("--attn", default="triton", help="decode attention kernels to time (triton,eff)")
    ap.add_argument("--profile", type=int, nargs="*", default=[], help="batches to profile a decode step at")
    ap.add_argument("--no-correctness", action="store_true")
    a = ap.parse_args()
    m = qwen3_06b()
    bw = copy_bandwidth()
    eng = None
    for attn, b in [(x, b) for x in a.attn.split(",") for b in a.batches]:
        os.environ["THINKMID_DECODE_ATTN"] = attn
        tps, t, eng = ours(m, b)
        if b in a.profile:
            profile_decode(eng, b)
        base = baseline(m, b, a.baseline_new_tokens) if b in a.baseline_batches else None
        emit(
            figure="generate_tok_s",
            batch=b,
            decode_attention=attn,
            workload=f"prefix{PREFIX}+{THOUGHT}+1+{SUFFIX},K={K},top_p=0.95",
            ours_tok_s=round(tps),
            seconds=round(t, 3),
            baseline="transformers generate, dynamic cache" if base else None,
            baseline_tok_s=round(base) if base else None,
            ratio_to_baseline=round(tps / base, 2) if base else None,
            roofline_tok_s_no_sharing=round(roofline(m, b, bw, False)),
            roofline_tok_s_shared_prefix=round(roofline(m, b, bw, True)),
            ratio_to_roofline_no_sharing=round(tps / roofline(m, b, bw, False), 3),
            copy_bw_tb_s=round(bw / 1e12, 2),
        )
        del eng
        sync()
        torch.cuda.empty_cache()
    if not a.no_correctness:
        correctness(m, HFEngine(m, FakeTok(), batch_size=64))
        m32 = m.float()  # fp32: no rounding ties, so any disagreement would be a bug
        correctness(m32, HFEngine(m32, FakeTok(), batch_size=64), label="fp32")


if __name__ == "__main__":
    main()
