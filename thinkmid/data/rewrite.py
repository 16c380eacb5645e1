"""Thought data the seed's way: the teacher rewrites a whole chunk and places 3-6 thoughts itself.

The teacher copies the chunk and inserts short spans in six tags (global context, world model,
recalled knowledge, simulation, reusable lesson, verification); every such tag is normalised to
<think>/</think>. A rewrite is kept when it has min..max thoughts, balanced and unnested tags, keeps
>= min_coverage of the chunk's words (3+ letters, the seed's check, thought words included) and has
>= 32 tokens, both as written and once cut to max_augmented_tokens; otherwise the chunk is asked again
up to `retries` times and then dropped (counted). Seed: scripts/build_thinking_data.py @ f5a982a
(PROMPT, ACTION_TAGS, normalize_think_tags, prune_think_spans, validate_augmented, build_one).
"""

from __future__ import annotations

import re
from importlib import resources

from thinkmid import THINK_CLOSE, THINK_OPEN
from thinkmid.data.thoughts import _scan

# The seed's tag list: the six kinds its prompt asks for, and others its teacher was seen to use.
ACTION_TAGS = (
    "global_context",
    "think",
    "world_model",
    "recall_knowledge",
    "simulate",
    "simulation",
    "reusable_lessons",
    "verification",
    "task",
    "set_goal",
    "tool_use",
    "python",
    "web_search",
)
_SPAN = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\u2019-]{2,}")
_FENCE = re.compile(r"^```(?:json)?|```$", re.IGNORECASE | re.MULTILINE)
MIN_TOKENS = 32


def rewrite_prompt(chunk: str, min_n: int, max_n: int) -> str:
    tmpl = resources.files("thinkmid.data").joinpath("prompts/teacher_rewrite.txt").read_text(encoding="utf-8")
    return tmpl.replace("{min_thoughts}", str(min_n)).replace("{max_thoughts}", str(max_n)).replace("{chunk}", chunk)


def normalize(text: str, max_n: int) -> str:
    """Fences dropped, every action tag -> <think>/</think>, 3+ newlines -> 2, spans after the
    max_n-th removed (the seed's prune_think_spans)."""
    out = _FENCE.sub("", (text or "").strip()).strip()
    for tag in ACTION_TAGS:
        out = re.sub(rf"<\s*{tag}\s*>", THINK_OPEN, out, flags=re.IGNORECASE)
        out = re.sub(rf"<\s*/\s*{tag}\s*>", THINK_CLOSE, out, flags=re.IGNORECASE)
    out = re.sub(r"\n{3,}", "\n\n", out).strip()
    seen = 0

    def keep(m):
        nonlocal seen
        seen += 1
        return m.group(0) if seen <= max_n else ""

    return _SPAN.sub(keep, out)


def word_coverage(raw: str, augmented: str) -> float:
    """Share of the chunk's distinct 3+-letter words found in the rewrite with its tags removed."""
    raw_words = {w.lower() for w in _WORD.findall(raw)}
    kept = {w.lower() for w in _WORD.findall(re.sub(r"</?think>", "", augmented))}
    return len(raw_words & kept) / max(1, len(raw_words))


def check(raw: str, augmented: str, min_n: int, max_n: int, min_coverage: float) -> list[str]:
    """The seed's validate_augmented, plus our unnested-tags check; [] when the rewrite is usable."""
    opens = len(re.findall(r"<think>", augmented, flags=re.IGNORECASE))
    closes = len(re.findall(r"</think>", augmented, flags=re.IGNORECASE))
    errors = []
    if opens < min_n:
        errors.append("too_few_thoughts")
    if opens > max_n:
        errors.append("too_many_thoughts")
    if opens != closes:
        errors.append("unbalanced_tags")
    elif _scan(augmented)[0] is not None:
        errors.append("nested_or_stray_tag")
    if word_coverage(raw, augmented) < min_coverage:
        errors.append("low_word_coverage")
    return errors


def finish(tokenizer, raw: str, answer: str, tp) -> tuple[str | None, list[str]]:
    """(the kept interleaved text, errors): checked as written and after the cut to max_augmented_tokens."""
    aug = normalize(answer, tp.max_thoughts)
    errors = check(raw, aug, tp.min_thoughts, tp.max_thoughts, tp.min_coverage)
    ids = tokenizer.encode(aug, add_special_tokens=False)[: tp.max_augmented_tokens]
    cut = tokenizer.decode(ids, skip_special_tokens=False)
    errors += [f"cut_{e}" for e in check(raw, cut, tp.min_thoughts, tp.max_thoughts, tp.min_coverage)]
    if len(ids) < MIN_TOKENS:
        errors.append("too_short")
    return (None, errors) if errors else (cut, [])


def chunk_text(tokenizer, row: dict, chunk_tokens: int | None) -> str:
    """The chunk the teacher rewrites: the row's prefix + suffix ids, cut to chunk_tokens."""
    ids = list(row["prefix_ids"]) + list(row["suffix_ids"])
    return tokenizer.decode(ids[:chunk_tokens] if chunk_tokens else ids, skip_special_tokens=True)


def rewrite_rows(rows: list[dict], teacher, tokenizer, tp) -> tuple[list[dict], list[dict]]:
    """(rows with "original", "interleaved", "n_thoughts"; audits) with `retries` more asks for failures.
    `teacher.rewrite(prompts, attempt)` returns one answer per prompt."""
    raws = [chunk_text(tokenizer, r, tp.chunk_tokens) for r in rows]
    kept: dict[int, str] = {}
    last: dict[int, list[str]] = {}
    todo = list(range(len(rows)))
    for attempt in range(tp.retries + 1):
        if not todo:
            break
        answers = teacher.rewrite([rewrite_prompt(raws[i], tp.min_thoughts, tp.max_thoughts) for i in todo], attempt)
        again = []
        for i, ans in zip(todo, answers):
            text, errors = finish(tokenizer, raws[i], ans, tp)
            if text is None:
                last[i] = errors
                again.append(i)
            else:
                kept[i] = text
        todo = again
    out, audits = [], []
    for i, r in enumerate(rows):
        text = kept.get(i)
        bodies = [m.group(0)[len(THINK_OPEN) : -len(THINK_CLOSE)] for m in _SPAN.finditer(text or "")]
        audits.append(
            {
                "ok": text is not None,
                "reason": None if text is not None else last[i][0],
                "n_thoughts": len(bodies),
                "thought_words": [len(b.split()) for b in bodies],
                "word_coverage": word_coverage(raws[i], text) if text else 0.0,
            }
        )
        out.append({**r, "original": raws[i], "interleaved": text or raws[i], "n_thoughts": len(bodies)})
    return out, audits
