"""OlympiadBench as the seed selected it (prepare_reasoning_benchmarks.py:33-38, 110-121, 131): Hub
dataset zwhe99/simplerl-OlympiadBench, split `test`; its first `first_rows` rows (paper: 300), minus
rows flagged `error`, rows with `is_multiple_answer`, and rows with no `final_answer`: 220 problems
in the record. Gold is `final_answer[0]`; the question is used as given. Paper profile only.

Same prompt and scores as MATH-500. Offline, `load` raises one InputError.
"""

from __future__ import annotations

from thinkmid.config import BenchmarkParams
from thinkmid.evals.reasoning import seed_score
from thinkmid.evals.reasoning.common import Problem, first_rows, load_hub, render, score_latex, subsample

NAME = "olympiadbench"
DATASET, CONFIG, SPLIT = "zwhe99/simplerl-OlympiadBench", None, "test"


def problem_from_row(i: int, row: dict) -> Problem | None:
    """The seed's filter and gold; None for a row it dropped."""
    answers = row.get("final_answer") or []
    if isinstance(answers, str):
        answers = [answers]
    if row.get("error") or row.get("is_multiple_answer") or not answers:
        return None
    pid = f"olympiadbench-{row.get('id', i)}"
    return Problem(NAME, pid, row["question"], seed_score.gold(NAME, str(answers[0])))


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    ds = load_hub(DATASET, CONFIG, SPLIT, NAME, getattr(params, "revision", "main"))
    rows = [p for i in first_rows(len(ds), params) if (p := problem_from_row(i, ds[i])) is not None]
    return [rows[i] for i in subsample(len(rows), params.limit, seed, NAME)]


def prompt(problem: Problem) -> str:
    return render("math.txt", question=problem.question.strip())


def verify(problem: Problem, completion: str, opened: bool = False) -> tuple[bool, str | None]:
    return score_latex(problem.gold, completion, opened)
