"""SFT arms: next-token loss on all tokens of raw or thought-interleaved chunks, and its evaluations."""

from __future__ import annotations

import torch

from thinkmid.data.thoughts import thought_token_mask
from thinkmid.engines.base import SamplingParams
from thinkmid.models.tokenizer import think_ids
from thinkmid.train.loop import sft_batches
from thinkmid.train.losses import causal_lm_nll_sum

ARM_SOURCES = {  # arm -> (starting model, training text field)
    "raw_base": ("models/base", "original"),
    "think_base": ("models/base", "text"),
    "think_phase3": ("models/phase3", "text"),
}


def encode_rows(tokenizer, texts: list[str], seq_len: int) -> list[list[int]]:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return [(tokenizer.encode(t, add_special_tokens=False) + eos)[:seq_len] for t in texts]


@torch.no_grad()
def mean_nll(model, tokenizer, rows: list[list[int]], batch_size: int, seq_len: int, thoughts_only: bool = False,
             dist=None) -> float:  # fmt: skip
    """Token-mean NLL over rows; with thoughts_only, over the tokens inside <think>...</think> only.

    With a several-process `dist` (thinkmid.train.dist.Dist) under DDP, each rank scores its share of
    the rows (pass the unwrapped model) and the sums are added over ranks; under FSDP every rank
    scores all rows through the wrapped model, so the ranks' forward passes stay in step.
    """
    sharded = dist is not None and dist.enabled and not dist.is_fsdp
    if sharded:
        rows = dist.split(rows)
    was = model.training
    model.eval()
    total, count = 0.0, 0
    pad = tokenizer.pad_token_id
    open_id, close_id = think_ids(tokenizer)
    dev = next(model.parameters()).device
    for b in sft_batches(rows, seq_len, batch_size, seed=0, epoch=0, pad_id=pad, shuffle=False):
        ids = b["input_ids"].to(dev)
        logits = model(input_ids=ids, attention_mask=b["attention_mask"].to(dev)).logits
        mask = thought_token_mask(ids, open_id, close_id) if thoughts_only else None
        s, c = causal_lm_nll_sum(logits, b["labels"].to(dev), mask)
        total, count = total + float(s), count + c
    if was:
        model.train()
    if sharded:
        total, count = (float(x) for x in dist.sum(torch.tensor([total, float(count)], dtype=torch.float64)))
    return total / count if count else float("nan")


def repetition_4gram_rate(engine, tokenizer, rows: list[list[int]], prompt_tokens: int, new_tokens: int, seed: int) -> float:
    """Share of repeated 4-grams in sampled continuations of val prompts (degeneration check)."""
    prompts = [r[:prompt_tokens] for r in rows if len(r) > prompt_tokens]
    if not prompts:
        return 0.0
    outs = engine.generate(prompts, SamplingParams(max_new_tokens=new_tokens, temperature=1.0, seed=seed))
    total = repeated = 0
    for o in outs:
        ids = o[0].token_ids
        grams = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
        total += len(grams)
        repeated += len(grams) - len(set(grams))
    return repeated / total if total else 0.0
