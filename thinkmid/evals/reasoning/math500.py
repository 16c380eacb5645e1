"""MATH-500 (HuggingFaceH4/MATH-500, split `test`, 500 problems): paper profile only, from the Hub.

Gold is the `answer` field (LaTeX without dollars); the completion's last \\boxed{} is compared with
math-verify. Offline and not cached, `load` raises one InputError saying how to switch it off.
"""

from __future__ import annotations

from thinkmid.config import BenchmarkParams
from thinkmid.evals.reasoning.common import Problem, load_hub, render, score_latex, subsample

NAME = "math500"
DATASET, CONFIG, SPLIT = "HuggingFaceH4/MATH-500", None, "test"


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    ds = load_hub(DATASET, CONFIG, SPLIT, NAME)
    out = []
    for i in subsample(len(ds), params.limit, seed, NAME):
        row = ds[i]
        pid = str(row.get("unique_id") or f"math500-{i}")
        out.append(Problem(NAME, pid, row["problem"], str(row["answer"])))
    return out


def prompt(problem: Problem) -> str:
    return render("math.txt", question=problem.question.strip())


def score(problem: Problem, completion: str) -> tuple[bool, str | None]:
    return score_latex(problem.gold, completion)
