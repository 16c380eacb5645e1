"""SFT arms: next-token loss on all tokens of raw or thought-interleaved chunks, and its evaluations."""

from __future__ import annotations

import re
from collections import Counter

import torch
import torch.nn.functional as F

from thinkmid.config.arms import is_raw
from thinkmid.data.thoughts import thought_token_mask
from thinkmid.engines.base import SamplingParams
from thinkmid.models.tokenizer import think_ids
from thinkmid.train.loop import sft_batches
from thinkmid.train.losses import causal_lm_nll_sum


def arm_source(arms: dict[str, str], arm: str) -> tuple[str, str]:
    """(starting model, training text field) of an SFT arm of params.yaml's arms.sft: raw_* arms train
    on the raw chunks (`original`), the others on the thought-interleaved ones (`text`)."""
    return arms[arm], "original" if is_raw(arm) else "text"


def encode_rows(tokenizer, texts: list[str], seq_len: int, append_eos: bool = True) -> list[list[int]]:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None and append_eos else []
    return [(tokenizer.encode(t, add_special_tokens=False) + eos)[:seq_len] for t in texts]


@torch.no_grad()
def mean_nll(
    model, tokenizer, rows: list[list[int]], batch_size: int, seq_len: int, thoughts_only: bool = False, dist=None
) -> float:
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


def repetition_4gram_rate_data(token_rows: list[list[int]]) -> float:
    """The seed's repetition_4gram_rate (scripts/train.py @ f5a982a), computed on DATA, not on model
    output: over rows of >= 4 tokens, (4-gram occurrences beyond each 4-gram's first, counted within
    its row) / (4-grams in all those rows). The seed feeds it the first 256 val rows of the arm's
    training field (token ids), which is why both think arms show the same 0.019397."""
    total = repeated = 0
    for ids in token_rows:
        if len(ids) < 4:
            continue
        grams = Counter(tuple(ids[i : i + 4]) for i in range(len(ids) - 3))
        total += len(ids) - 3
        repeated += sum(c - 1 for c in grams.values() if c > 1)
    return repeated / max(1, total)


_SEGMENT = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)


def thought_segments(text: str) -> list[tuple[bool, str]]:
    """(is_thought, text) in order; a thought segment is `<think>...</think>` with its tags (the
    seed's eval_thinking.py: parse_think_segments)."""
    parts, pos = [], 0
    for m in _SEGMENT.finditer(text):
        if m.start() > pos:
            parts.append((False, text[pos : m.start()]))
        parts.append((True, m.group(0)))
        pos = m.end()
    if pos < len(text):
        parts.append((False, text[pos:]))
    return [(k, v) for k, v in parts if v]


def seed_thought_rows(tokenizer, texts: list[str], max_len: int = 1024) -> list[tuple[list[int], list[bool]]]:
    """(ids, thought mask) per row: each segment encoded on its own, tags included in the mask, cut
    to max_len tokens (the seed's evaluate_token_type_nll)."""
    out = []
    for text in texts:
        ids: list[int] = []
        mask: list[bool] = []
        for is_thought, seg in thought_segments(text):
            seg_ids = tokenizer.encode(seg, add_special_tokens=False)
            ids += seg_ids
            mask += [is_thought] * len(seg_ids)
        out.append((ids[:max_len], mask[:max_len]))
    return out


@torch.no_grad()
def thought_token_nll_seed(model, tokenizer, texts: list[str], max_len: int = 1024, batch_size: int = 8) -> float:
    """The seed's thought-token NLL ("4.24 -> 3.16 / 3.14"): per row, the mean NLL of the tokens of
    its thought segments, `<think>` and `</think>` included, as predicted from everything before them
    (the row's first token is never a target); then the plain mean over rows that have such tokens."""
    rows = [(i, m) for i, m in seed_thought_rows(tokenizer, texts, max_len) if len(i) >= 2 and any(m[1:])]
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    per_row: list[float] = []
    for b in range(0, len(rows), batch_size):
        chunk = rows[b : b + batch_size]
        width = max(len(i) for i, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        keep = torch.zeros((len(chunk), width), dtype=torch.bool)
        for r, (i, m) in enumerate(chunk):
            ids[r, : len(i)] = torch.tensor(i)
            attn[r, : len(i)] = 1
            keep[r, : len(m)] = torch.tensor(m)
        ids, attn, keep = ids.to(dev), attn.to(dev), keep.to(dev)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
        nll = nll.view(len(chunk), -1)
        k = keep[:, 1:]
        per_row += ((nll * k).sum(-1) / k.sum(-1)).tolist()
    if was:
        model.train()
    return sum(per_row) / len(per_row) if per_row else float("nan")


def repetition_4gram_rate(
    engine, tokenizer, rows: list[list[int]], prompt_tokens: int, new_tokens: int, seed: int
) -> float:
    """Share of repeated 4-grams in sampled continuations of val prompts (degeneration check on
    model output; ours, reported as repetition_4gram_rate_samples beside the seed's on data)."""
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
