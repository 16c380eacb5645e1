"""RLMT, reward-gate and probe prefixes cut at a teacher thought (the seed's two-stage rows).

One builder for the three stages. A thought-interleaved SFT row (`text <think>T</think> text`) is
cut at its FIRST teacher thought that has at least `min_before` tokens of text before it and at
least `min_after` tokens after it once the later thoughts are removed:

- prompt  = the text before that thought, right-stripped (earlier teacher thoughts stay in it),
            then " <think>" (rollouts.thought_prompt adds it to `prefix_ids`);
- reference (`suffix`) = the first `reference_tokens` tokens of the thought-stripped remainder;
- teacher_thought = the body of the thought at the cut (the probe's "teacher" condition).

A row with no such thought is skipped; so is a row whose prompt or reference ends up shorter than the
minimums (the seed checks both). Seed: build_eval_rows in scripts/eval_reward_gate.py @ f5a982a, called
with raw_prefix_tokens 256 and suffix_tokens 128, i.e. min_before = 256 // 2, min_after = 128 // 2,
reference_tokens = 128. RL rows come from the SFT train rows (shuffled, from `offset` on), gate and
probe rows from the SFT val rows (shuffled, the first N usable).
"""

from __future__ import annotations

import random
import re

from thinkmid import THINK_CLOSE, THINK_OPEN

_SPAN = re.compile(re.escape(THINK_OPEN) + "(.*?)" + re.escape(THINK_CLOSE), re.DOTALL)
JUDGE_CHARS = 2000  # the seed shows the judge the first 2,000 characters of prefix, reference, candidate


def strip_spans(text: str) -> str:
    """Remove every `<think>...</think>` span, tags included; the text around it is left as it is."""
    return _SPAN.sub("", text)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def cut_at_thought(row: dict, tokenizer, min_before: int, min_after: int, reference_tokens: int) -> dict | None:
    """The prefix row of one interleaved row (`row["text"]`), or None when no thought qualifies."""
    text = row["text"]
    for m in _SPAN.finditer(text):
        before, after = text[: m.start()], text[m.end() :]
        after_ids = _encode(tokenizer, strip_spans(after))
        if len(_encode(tokenizer, before)) >= min_before and len(after_ids) >= min_after:
            break
    else:
        return None
    prefix = before.rstrip()
    prefix_ids = _encode(tokenizer, prefix)
    ref_ids = after_ids[:reference_tokens]
    judge_prefix = prefix + " " + THINK_OPEN  # what the seed's judge saw: the decoded prompt
    if len(_encode(tokenizer, judge_prefix)) < min_before or len(ref_ids) < min_after:
        return None
    return {
        "id": row["id"],
        "source_id": row.get("source_id"),
        "prefix": prefix,
        "prefix_ids": prefix_ids,
        "suffix": tokenizer.decode(ref_ids, skip_special_tokens=True),
        "suffix_ids": ref_ids,
        "judge_prefix": judge_prefix,
        "teacher_thought": m.group(1).strip(),
        "earlier_thoughts": len(_SPAN.findall(before)),
    }


def prefix_rows(rows: list[dict], tokenizer, cut, seed: int, offset: int = 0, limit: int | None = None) -> list[dict]:
    """Shuffle `rows` with Random(seed), drop the first `offset`, cut each; the first `limit` usable.

    `cut` carries min_before, min_after and reference_tokens (params.prefixes).
    """
    order = list(rows)
    random.Random(seed).shuffle(order)
    out = []
    for r in order[offset:]:
        if limit is not None and len(out) >= limit:
            break
        got = cut_at_thought(r, tokenizer, cut.min_before, cut.min_after, cut.reference_tokens)
        if got is not None:
            out.append(got)
    return out
