"""The thought format: `text <think>thought</think> text`.

A thought is inserted right after a sentence end, before the whitespace that follows it, as
" <think>" + thought + "</think>". Removing every such span gives back the original text exactly,
which is what `audit_row` checks for each teacher-annotated row.
"""

from __future__ import annotations

import re
import statistics

from thinkmid import THINK_CLOSE, THINK_OPEN
from thinkmid.errors import InputError

OPEN_SPAN = " " + THINK_OPEN
MAX_THOUGHT_WORDS = 40

# A sentence end: . ! ? (maybe repeated) then closing quotes/brackets, then whitespace.
_SENT_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)")
# Words whose trailing period is not a sentence end (lower-cased, without the period).
_ABBREV = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "sr",
    "jr",
    "prof",
    "gen",
    "gov",
    "sen",
    "rep",
    "lt",
    "col",
    "capt",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "approx",
    "est",
    "no",
    "fig",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "inc",
    "co",
    "corp",
    "ltd",
    "mt",
    "ft",
    "u.s",
    "u.k",
}
_WORD_BEFORE = re.compile(r"([\w.]+)$")
# Thought text through generation or a bad teacher; the tag set is matched loosely to drop fragments.
_MARKER = re.compile(r"</?\s*think\s*>?", re.IGNORECASE)
_TAG_OR_MARKER = re.compile(re.escape(THINK_OPEN) + "|" + re.escape(THINK_CLOSE))
_SPAN = re.compile(" ?" + re.escape(THINK_OPEN) + "(.*?)" + re.escape(THINK_CLOSE), re.DOTALL)
_LABEL = re.compile(r"^(thought|thinking|reasoning|note)\s*:\s*", re.IGNORECASE)


def sentence_boundaries(text: str) -> list[int]:
    """Char offsets just after each sentence end that is followed by whitespace and more text."""
    out = []
    for m in _SENT_END.finditer(text):
        end = m.end()
        if not text[end:].strip():
            continue
        before = _WORD_BEFORE.search(text[: m.start()])
        word = before.group(1).lower() if before else ""
        # Abbreviations and initials ("Dr.", "est.", "J.") break encyclopedic prose in the wrong places.
        if word in _ABBREV or (len(word.replace(".", "")) == 1 and word.isalpha()):
            continue
        nxt = text[end:].lstrip()[:1]
        # A lower-case next word means the sentence goes on ("U.S. forces", '"Yes!" she said').
        if nxt.islower() or ("." in word and not nxt.isupper()):
            continue
        out.append(end)
    return out


def choose_boundaries(text: str, min_n: int = 3, max_n: int = 6, rng=None) -> list[int]:
    """A sorted, evenly spread subset of sentence boundaries: n ~ U[min_n, max_n], one per equal bin.
    Returns fewer than min_n (maybe none) when the text has fewer boundaries."""
    import random

    rng = rng or random.Random(0)
    cands = sentence_boundaries(text)
    n = min(rng.randint(min_n, max_n), len(cands))
    if n <= 0:
        return []
    picked = []
    for b in range(n):
        lo, hi = b * len(cands) // n, (b + 1) * len(cands) // n
        picked.append(cands[rng.randrange(lo, hi)])
    return sorted(picked)


def clean_thought(s: str, max_words: int = MAX_THOUGHT_WORDS) -> str:
    """One line, one sentence, no markers, at most max_words words; "" when nothing usable is left."""
    s = _MARKER.sub(" ", s or "")
    line = next((ln for ln in s.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", " ".join(line.split()))
    ends = sentence_boundaries(line)
    if ends:
        line = line[: ends[0]]
    words = line.split()[:max_words]
    out = " ".join(words).strip()
    return out if re.search(r"\w", out) else ""


def interleave(text: str, positions: list[int], thoughts: list[str]) -> str:
    """Insert " <think>thought</think>" at each char position (right after a sentence end)."""
    if len(positions) != len(thoughts):
        raise ValueError(f"{len(positions)} positions but {len(thoughts)} thoughts")
    if _TAG_OR_MARKER.search(text):
        raise ValueError("text already contains a <think> or </think> marker")
    pos = list(positions)
    if pos != sorted(set(pos)) or (pos and (pos[0] <= 0 or pos[-1] > len(text))):
        raise ValueError(f"positions must be increasing and within (0, {len(text)}]: {pos}")
    parts, last = [], 0
    for p, t in zip(pos, thoughts):
        if not t or t != t.strip() or "\n" in t or _TAG_OR_MARKER.search(t):
            raise ValueError(f"thought must be a non-empty single line without markers (use clean_thought): {t!r}")
        parts += [text[last:p], OPEN_SPAN, t, THINK_CLOSE]
        last = p
    parts.append(text[last:])
    return "".join(parts)


def strip_thoughts(text: str) -> str:
    """Remove every " <think>...</think>" span (the space is optional); interleave's inverse."""
    return _SPAN.sub("", text)


def thought_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) char spans of each closed thought's body, between the tags."""
    return [m.span(1) for m in _SPAN.finditer(text)]


def _scan(text: str) -> tuple[str | None, int]:
    """First structural problem ("unclosed_think" | "nested_think" | "stray_close") and its char offset."""
    open_at = -1
    for m in _TAG_OR_MARKER.finditer(text):
        if m.group() == THINK_OPEN:
            if open_at >= 0:
                return "nested_think", m.start()
            open_at = m.start()
        else:
            if open_at < 0:
                return "stray_close", m.start()
            open_at = -1
    if open_at >= 0:
        return "unclosed_think", open_at
    return None, -1


def audit_row(original: str, interleaved: str) -> dict:
    """{"ok", "reason", "n_thoughts", "thought_words"}; reasons: unclosed_think, nested_think,
    stray_close, empty_thought, no_thoughts, text_changed (strip(interleaved) != original)."""
    problem, _ = _scan(interleaved)
    bodies = [interleaved[a:b] for a, b in thought_spans(interleaved)] if problem is None else []
    words = [len(b.split()) for b in bodies]
    reason = problem
    if reason is None and any(w == 0 for w in words):
        reason = "empty_thought"
    elif reason is None and not bodies:
        reason = "no_thoughts"
    elif reason is None and strip_thoughts(interleaved) != original:
        reason = "text_changed"
    return {"ok": reason is None, "reason": reason, "n_thoughts": len(bodies), "thought_words": words}


def validate_thought_text(text: str, where: str) -> None:
    """Raise InputError naming `where` (e.g. "data/thoughts/train.jsonl:17") on broken markers."""
    problem, at = _scan(text)
    if problem is None:
        return
    what = {
        "unclosed_think": f"unclosed {THINK_OPEN} at char {at} (no {THINK_CLOSE} after it)",
        "nested_think": f"nested {THINK_OPEN} at char {at} (the previous one is not closed)",
        "stray_close": f"stray {THINK_CLOSE} at char {at} (no {THINK_OPEN} before it)",
    }[problem]
    context = text[max(0, at - 30) : at + 40].replace("\n", " ")
    raise InputError(f"{where}: {what}: ...{context}...; expected `text <think>thought</think> text`")


def thought_token_mask(input_ids, open_id: int, close_id: int, include_close: bool = False):
    """Bool mask (same shape as input_ids, 1-D or 2-D) of tokens strictly inside <think>...</think>.

    include_close=False: the thought tokens only (for thought_token_nll and thought_token_share).
    include_close=True: also each closing </think>, which the model must learn to emit to end its
    thought (for SFT/RLMT losses over thoughts). The opening <think> is never included. A token is
    inside when the last marker before it is <think>, so an unclosed thought runs to the end and a
    stray </think> just ends nothing.
    """
    import torch

    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.numel() == 0:
        return torch.zeros(ids.shape, dtype=torch.bool)
    is_open, is_close = ids == open_id, ids == close_id
    idx = torch.arange(ids.shape[-1], device=ids.device).expand_as(ids)
    last = torch.where(is_open | is_close, idx, torch.full_like(idx, -1)).cummax(dim=-1).values
    last_is_open = is_open.gather(-1, last.clamp(min=0)) & (last >= 0)
    inside = last_is_open & ~is_open
    if include_close:
        prev = torch.cat([torch.full_like(last[..., :1], -1), last[..., :-1]], dim=-1)
        prev_is_open = is_open.gather(-1, prev.clamp(min=0)) & (prev >= 0)
        inside = inside | (is_close & prev_is_open)
    return inside


def audit_summary(audits: list[dict], tokenizer, rows: list) -> dict:
    """Aggregate audit_row results. rows: the interleaved texts (str, or dicts with "text"), same
    order as audits; thought_token_share = thought-body tokens / all tokens over the kept rows."""
    if len(audits) != len(rows):
        raise ValueError(f"{len(audits)} audits but {len(rows)} rows")
    kept = [(a, r if isinstance(r, str) else r["text"]) for a, r in zip(audits, rows) if a["ok"]]
    reasons: dict[str, int] = {}
    for a in audits:
        if not a["ok"]:
            reasons[a["reason"]] = reasons.get(a["reason"], 0) + 1
    words = [w for a, _ in kept for w in a["thought_words"]]
    thought_tokens = total_tokens = 0
    if kept:
        from thinkmid.models.tokenizer import think_ids

        open_id, close_id = think_ids(tokenizer)
        for _, text in kept:
            ids = tokenizer.encode(text, add_special_tokens=False)
            total_tokens += len(ids)
            thought_tokens += int(thought_token_mask(ids, open_id, close_id).sum()) if ids else 0
    return {
        "rows_in": len(audits),
        "rows_kept": len(kept),
        "rows_dropped": len(audits) - len(kept),
        "drop_reasons": reasons,
        "thoughts_per_row_mean": sum(a["n_thoughts"] for a, _ in kept) / len(kept) if kept else 0.0,
        "median_thought_words": float(statistics.median(words)) if words else 0.0,
        "thought_token_share": thought_tokens / total_tokens if total_tokens else 0.0,
    }


def check_drop_rate(audits: list[dict], max_rate: float, what: str = "teacher_thoughts") -> None:
    """Raise when the audit dropped more than `max_rate` of the chunks: the teacher is broken, and the
    SFT arms would train on whatever few rows survived. Names the reasons and one failed row."""
    bad = [a for a in audits if not a["ok"]]
    if audits and len(bad) / len(audits) > max_rate:
        reasons: dict[str, int] = {}
        for a in bad:
            reasons[a["reason"]] = reasons.get(a["reason"], 0) + 1
        raise RuntimeError(
            f"{what}: the audit dropped {len(bad)}/{len(audits)} chunks ({len(bad) / len(audits):.1%}) > "
            f"{what}.max_invalid_rate {max_rate:.1%}; reasons {reasons}; check the teacher model/server and "
            f"its prompt (first failed chunk: #{next(i for i, a in enumerate(audits) if not a['ok'])})"
        )
