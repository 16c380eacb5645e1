"""The results record's answer checking, re-implemented from its definitions (the record's score).

The seed (jbarnes850/synthetic-pretrain @ f5a982a, scripts/eval_reasoning_sglang.py:37-101) reads
the answer from the WHOLE completion, with no cut where a base model starts inventing the next
problem, and compares strings after a light normalisation:

- boxed:   the contents of the last `\\boxed{...}` whose braces nest at most one level deep
           (a deeper box is not seen at all), stripped; an empty box counts as no box.
- number:  commas removed; the boxed contents if there is a box, else the whole text; the last
           `[-+]?digits(.digits)?`; a trailing ".0" dropped (GSM8K, and MATH when unboxed).
- letter:  A-D as a whole word inside the last box, else the last A-D (after upper-casing the
           text) that follows whitespace or the start and precedes `).,`, whitespace or the end.
- gold:    GSM8K the number after `####` (commas removed); GPQA the letter read from the
           dataset's solution; otherwise the answer string, stripped.
- equal:   normalise both sides (drop \\boxed \\mathrm \\text \\left \\right, braces, `\\,` `\\!`,
           `$`, commas and all whitespace; lower-case) and compare the strings.

So a completion that answers, then writes a new problem with its own box, is scored on the last
box: the invented problem's answer. math-verify on the visible answer is the second score
(common.py), kept beside this one.
"""

from __future__ import annotations

import re

# `\boxed{` + (plain characters or one `{...}` group with no braces inside)* + `}`
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
# The seed also lists "answer is / final answer is / therefore / thus" before the letter, in lower
# case, but matches them against upper-cased text, so only the whitespace/start prefix ever applies.
_LETTER = re.compile(r"(?:^|\s)([ABCD])(?:[).,\s]|$)")
_GOLD_NUMBER = re.compile(r"####\s*([-+]?\d[\d,]*(?:\.\d+)?)")
_DROP_COMMANDS = re.compile(r"\\(?:boxed|mathrm|text|left|right)\s*")


def boxed(text: str) -> str | None:
    found = _BOXED.findall(text)
    return found[-1].strip() if found else None


def number(text: str) -> str | None:
    text = text.replace(",", "")
    box = boxed(text)
    if box:
        text = box
    found = _NUMBER.findall(text)
    if not found:
        return None
    last = found[-1]
    return last[:-2] if last.endswith(".0") else last


def letter(text: str) -> str | None:
    box = boxed(text)
    if box:
        m = re.search(r"\b([ABCD])\b", box.upper())
        if m:
            return m.group(1)
    found = _LETTER.findall(text.upper())
    return found[-1] if found else None


def prediction(benchmark: str, completion: str) -> str | None:
    if benchmark == "gpqa_diamond":
        return letter(completion)
    if benchmark == "gsm8k":
        return number(completion)
    return boxed(completion) or number(completion)


def gold(benchmark: str, answer: str) -> str:
    """The seed's gold string from a dataset answer field (GSM8K solution, GPQA solution, LaTeX)."""
    if benchmark == "gsm8k":
        m = _GOLD_NUMBER.search(answer)
        if m:
            return m.group(1).replace(",", "")
    if benchmark == "gpqa_diamond":
        found = letter(answer)
        if found:
            return found
    return str(answer).strip()


def normalize(text: str) -> str:
    text = _DROP_COMMANDS.sub("", text.strip())
    for s in ("{", "}", "\\,", "\\!", "$", ","):
        text = text.replace(s, "")
    return re.sub(r"\s+", "", text).lower()


def equal(pred: str | None, gold_answer: str) -> bool:
    return pred is not None and normalize(pred) == normalize(gold_answer)


def score(benchmark: str, gold_answer: str, completion: str) -> tuple[bool, str | None]:
    """(correct, extracted) the record's way, on the whole completion."""
    pred = prediction(benchmark, completion)
    return equal(pred, gold_answer), pred
