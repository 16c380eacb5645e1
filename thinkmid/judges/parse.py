"""Strict verdict parsing: exactly one JSON object, optionally in one ```json fence; nothing guessed.

Pairwise: {"winner": "A"} or {"winner": "B"}. Reference: {"match": true|false} or {"score": 1|0}.
An optional string "reason" key is tolerated; any other key, a duplicate key, a wrong type or value,
prose around the object, two objects, or an empty answer raises VerdictError (an invalid verdict).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

PROMPTS = Path(__file__).parent / "prompts"
_FENCE = re.compile(r"\A```(?:json|JSON)?[ \t]*\n?(.*?)\n?[ \t]*```\Z", re.S)
_OPTIONAL = {"reason"}


class VerdictError(ValueError):
    """The judge's answer is not a valid verdict."""


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise VerdictError(f"duplicate key in {keys}")
    return dict(pairs)


def parse_object(text: str | None) -> dict:
    if text is None or not text.strip():
        raise VerdictError("empty answer")
    body = text.strip()
    m = _FENCE.match(body)
    if m:
        body = m.group(1).strip()
    if not body.startswith("{"):
        raise VerdictError(f"not a JSON object: {text[:80]!r}")
    try:
        obj = json.loads(body, object_pairs_hook=_no_duplicates)  # trailing text/2nd object fails
    except json.JSONDecodeError as e:
        raise VerdictError(f"bad JSON ({e.msg}): {text[:80]!r}") from None
    if not isinstance(obj, dict):
        raise VerdictError("not a JSON object")
    if "reason" in obj and not isinstance(obj["reason"], str):
        raise VerdictError("`reason` must be a string")
    return obj


def _keys(obj: dict, allowed: set[str]) -> str:
    main = set(obj) - _OPTIONAL
    if len(main) != 1 or not main <= allowed:
        raise VerdictError(f"expected exactly one of {sorted(allowed)}, got keys {sorted(obj)}")
    return main.pop()


def parse_winner(text: str | None) -> str:
    """'A' or 'B' from {"winner": "A"|"B"}."""
    obj = parse_object(text)
    _keys(obj, {"winner"})
    w = obj["winner"]
    if w not in ("A", "B"):
        raise VerdictError(f'winner must be "A" or "B", got {w!r}')
    return w


def parse_match(text: str | None) -> int:
    """1/0 from {"match": true|false} or {"score": 1|0}."""
    obj = parse_object(text)
    key = _keys(obj, {"match", "score"})
    v = obj[key]
    if key == "match":
        if not isinstance(v, bool):
            raise VerdictError(f"match must be true or false, got {v!r}")
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v not in (0, 1):
        raise VerdictError(f"score must be 1 or 0, got {v!r}")
    return v


# The seed's lenient readings, kept only to show the figure the seed's numbers were built on:
# scripts/self_improving.py (parse_winner, a cascade that ends in "B") and scripts/eval_thinking.py
# (judge_pointwise: the first `"score": 0|1` anywhere in the answer, else no verdict).
_SEED_WINNER = (
    re.compile(r'"winner"\s*:\s*"([AB])"', re.IGNORECASE),
    re.compile(r"\b(?:Option|option|winner|Winner)[\s:]*([AB])\b"),
)
_SEED_WINNER_NUM = re.compile(r"\b(?:Option|option|winner|Winner)[\s:]*(1|2)\b")
_SEED_WINNER_ANY = re.compile(r"\b([AB])\b")
_SEED_SCORE = re.compile(r'"score"\s*:\s*([01])')


def parse_winner_lenient(text: str | None) -> str:
    """The seed's pairwise reading: JSON winner, then "Option/winner X", then "Option 1/2", then the
    first bare A or B; anything else (a failed call included) is "B". Never invalid."""
    text = text or ""
    for rx in _SEED_WINNER:
        m = rx.search(text)
        if m:
            return m.group(1).upper()
    m = _SEED_WINNER_NUM.search(text)
    if m:
        return "A" if m.group(1) == "1" else "B"
    m = _SEED_WINNER_ANY.search(text)
    return m.group(1).upper() if m else "B"


def parse_score_lenient(text: str | None) -> int | None:
    """The seed's reference-judge reading: the first `"score": 0|1` anywhere, else None."""
    m = _SEED_SCORE.search(text or "")
    return int(m.group(1)) if m else None


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    path = PROMPTS / f"{name}.txt"
    if not path.exists():
        raise FileNotFoundError(f"no judge prompt {path}")
    return path.read_text()


_SLOT = re.compile(r"\{(prefix|a|b|predicted|reference)\}")


def render(template: str, **values: str) -> str:
    """Fill {prefix} {a} {b} {predicted} {reference} in one pass: braces in the values (or JSON in
    the template) are left alone, and a value that contains "{b}" is never substituted again."""

    def sub(m):
        if m.group(1) not in values:
            raise KeyError(f"prompt needs {{{m.group(1)}}}")
        return values[m.group(1)]

    return _SLOT.sub(sub, template)
