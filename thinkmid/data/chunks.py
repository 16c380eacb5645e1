"""Chunking source documents into prefix/suffix windows by tokens, and seeded disjoint splits.

A row is one window of prefix_tokens + suffix_tokens tokens: the model sees `prefix` and is judged
on how it continues it against the real `suffix`. `text == prefix + suffix` always holds exactly.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Iterable

from thinkmid import THINK_CLOSE, THINK_OPEN
from thinkmid.errors import InputError

log = logging.getLogger(__name__)

# Priority order: earlier splits are filled first, so a short corpus starves the least important ones.
SPLIT_ORDER = ("phase3_train", "continuation_eval", "sft_train", "sft_val", "rl", "gate")

MIN_LETTER_SHARE = 0.5  # below this a document is tables/code/boilerplate, not prose
_LETTER = re.compile(r"[^\W\d_]")


def split_sizes(chunk_params) -> dict[str, int]:
    """The requested rows per split, read from params.chunks, in priority order."""
    return {name: int(getattr(chunk_params, name)) for name in SPLIT_ORDER}


def _decode(tokenizer, ids) -> str:
    # No cleanup: tokenization-space cleanup would make prefix + suffix differ from the window text.
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _split_window(tokenizer, window: list[int], n_prefix: int) -> tuple[str, str] | None:
    """(prefix, suffix) with prefix + suffix == decode(window), or None if the cut or the window
    falls inside a multi-byte character (decoding would show U+FFFD there)."""
    text = _decode(tokenizer, window)
    prefix = _decode(tokenizer, window[:n_prefix])
    if "\ufffd" in text or "\ufffd" in prefix or not text.startswith(prefix):
        return None
    suffix = text[len(prefix) :]
    if suffix != _decode(tokenizer, window[n_prefix:]):
        return None
    return prefix, suffix


def _document_problem(text: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return "empty"
    if THINK_OPEN in text or THINK_CLOSE in text:
        # The markers are our format; a source that already holds them would break strip/audit.
        return "has_think_marker"
    if len(_LETTER.findall(stripped)) < MIN_LETTER_SHARE * len(re.sub(r"\s", "", stripped)):
        return "non_text"
    return None


def make_chunks(
    docs: Iterable[dict],
    tokenizer,
    prefix_tokens: int,
    suffix_tokens: int,
    min_source_tokens: int,
    first_only: bool = False,
) -> tuple[list[dict], dict[str, int]]:
    """Cut each document into non-overlapping windows of prefix_tokens + suffix_tokens tokens.

    first_only: one window per document, at its beginning (the seed: prefix = the document's first
    prefix_tokens tokens, suffix = the next suffix_tokens; prepare_pretraining_data.py @ f5a982a).

    Returns (rows, dropped) where each row is {"id", "source_id", "prefix", "suffix", "prefix_ids",
    "suffix_ids", "text"} and dropped counts documents by reason ("empty", "non_text",
    "has_think_marker", "too_short") plus windows skipped at a broken character ("split_char").
    """
    if prefix_tokens < 1 or suffix_tokens < 1:
        raise ValueError("prefix_tokens and suffix_tokens must be >= 1")
    size = prefix_tokens + suffix_tokens
    rows: list[dict] = []
    dropped: Counter = Counter()
    for doc in docs:
        source_id, text = str(doc["id"]), doc.get("text") or ""
        problem = _document_problem(text)
        if problem:
            dropped[problem] += 1
            continue
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) < max(min_source_tokens, size):
            dropped["too_short"] += 1
            continue
        start, k = 0, 0
        while start + size <= len(ids):
            window = ids[start : start + size]
            parts = _split_window(tokenizer, window, prefix_tokens)
            if parts is None:
                # Slide one token so the window edges land on whole characters; still no overlap.
                dropped["split_char"] += 1
                start += 1
                continue
            prefix, suffix = parts
            rows.append(
                {
                    "id": f"{source_id}#{k}",
                    "source_id": source_id,
                    "prefix": prefix,
                    "suffix": suffix,
                    "prefix_ids": window[:prefix_tokens],
                    "suffix_ids": window[prefix_tokens:],
                    "text": prefix + suffix,
                }
            )
            k += 1
            start += size
            if first_only:
                break
    return rows, dict(dropped)


def _short_error(name: str, need: int, have: int, rows: list[dict], sizes: dict[str, int]) -> InputError:
    n_docs = len({r["source_id"] for r in rows})
    return InputError(
        f"chunks.{name}: needs {need} rows but only {have} are left after the splits before it "
        f"({len(rows)} rows from {n_docs} source documents in all, {sum(sizes.values())} requested over "
        f"{', '.join(f'{k}={v}' for k, v in sizes.items())}). Lower chunks.{name} or the other split "
        "sizes, or get more rows: raise chunks.max_sources, lower chunks.min_source_tokens, "
        "chunks.prefix_tokens or chunks.suffix_tokens"
    )


def _check_sizes(sizes: dict[str, int]) -> dict[str, int]:
    unknown = [k for k in sizes if k not in SPLIT_ORDER]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected some of {SPLIT_ORDER}")
    bad = [k for k, v in sizes.items() if int(v) < 0]
    if bad:
        raise ValueError(f"split sizes must be >= 0: {bad}")
    return {k: int(sizes[k]) for k in SPLIT_ORDER if k in sizes}


def _by_document(groups: dict[str, list[dict]], order: list[str], sizes: dict[str, int], rng) -> dict | None:
    """Whole documents go to one split each; None if the documents cannot cover every split."""
    n_docs, total = len(order), sum(sizes.values())
    queue = list(order)
    out: dict[str, list[dict]] = {}
    for i, (name, need) in enumerate(sizes.items()):
        reserve = len(sizes) - i - 1  # leave at least one document for each later split
        # Spread a split over several documents (about its share of them) so it is not all one topic.
        want_docs = max(1, min(need, n_docs * need // max(total, 1)))
        taken: list[str] = []
        have = 0
        while queue and (have < need or (len(taken) < want_docs and len(queue) > reserve)):
            doc = queue.pop(0)
            taken.append(doc)
            have += len(groups[doc])
        if have < need:
            return None
        # Round-robin over the split's documents: first windows of each, then second windows, ...
        picked: list[dict] = []
        depth = 0
        while len(picked) < need:
            for doc in taken:
                if depth < len(groups[doc]) and len(picked) < need:
                    picked.append(groups[doc][depth])
            depth += 1
        rng.shuffle(picked)
        out[name] = picked
    return out


def _natural_key(row: dict) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(row["id"]))]


def assign_splits(rows: list[dict], sizes: dict[str, int], seed: int) -> dict[str, list[dict]]:
    """Deterministic disjoint splits in SPLIT_ORDER priority, by source document where possible.

    Every window of a source document goes to at most one split so neighbouring text never leaks
    across splits; when there are too few documents for that, falls back to a row-level shuffle
    (still disjoint) and logs a warning. Raises InputError naming the first split that is short.
    """
    sizes = _check_sizes(sizes)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("row ids must be unique")
    remaining = len(rows)
    for name, need in sizes.items():
        if need > remaining:
            raise _short_error(name, need, remaining, rows, sizes)
        remaining -= need
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["source_id"], []).append(r)
    for g in groups.values():
        g.sort(key=_natural_key)  # window order ("doc#2" before "doc#10") whatever the input order
    order = sorted(groups)
    rng = random.Random(seed)
    rng.shuffle(order)
    out = _by_document(groups, order, sizes, rng)
    if out is None:
        log.warning("too few source documents (%d) to keep splits apart by document; splitting by row", len(order))
        flat = [r for doc in order for r in groups[doc]]
        random.Random(seed).shuffle(flat)
        out, i = {}, 0
        for name, need in sizes.items():
            out[name] = flat[i : i + need]
            i += need
    return out


def split_stats(splits: dict[str, list[dict]]) -> dict[str, dict[str, int]]:
    """{split: {"rows": n, "tokens": prefix + suffix tokens}}."""
    return {
        name: {"rows": len(rs), "tokens": sum(len(r["prefix_ids"]) + len(r["suffix_ids"]) for r in rs)}
        for name, rs in splits.items()
    }
