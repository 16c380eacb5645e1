"""MATH-500 (HuggingFaceH4/MATH-500, split `test`, 500 problems, the seed's source): from the Hub.

Prompt: a boxed-answer instruction, then `Problem:` and `Solution:` (the seed's format,
eval_reasoning_sglang.py:20-21, 114; our own words). The record's score: seed_score (the last
box anywhere, else the last number, normalised string equality with `answer`). Second score: the
last box of the visible answer compared with math-verify. Offline and not cached, `load` raises
one InputError saying how to switch it off.
"""

from __future__ import annotations

from thinkmid.config import BenchmarkParams
from thinkmid.evals.reasoning import seed_score
from thinkmid.evals.reasoning.common import Problem, first_rows, load_hub, render, score_latex, subsample

NAME = "math500"
DATASET, CONFIG, SPLIT = "HuggingFaceH4/MATH-500", None, "test"


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    ds = load_hub(DATASET, CONFIG, SPLIT, NAME, getattr(params, "revision", "main"))
    rows = []
    for i in first_rows(len(ds), params):
        row = ds[i]
        pid = str(row.get("unique_id") or f"math500-{i}")
        rows.append(Problem(NAME, pid, row["problem"], seed_score.gold(NAME, str(row["answer"]))))
    return [rows[i] for i in subsample(len(rows), params.limit, seed, NAME)]


def prompt(problem: Problem) -> str:
    return render("math.txt", question=problem.question.strip())


def verify(problem: Problem, completion: str, opened: bool = False) -> tuple[bool, str | None]:
    return score_latex(problem.gold, completion, opened)
