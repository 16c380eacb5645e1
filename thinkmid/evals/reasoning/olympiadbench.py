"""OlympiadBench, open-ended text-only English competition maths: Hub dataset
`Hothan/OlympiadBench`, config `OE_TO_maths_en_COMP`, split `train` (about 675 problems, the whole
benchmark subset; the reference run scored 220 of them, so set `limit` to match its size).
Paper profile only.

Gold is `final_answer` (a list of LaTeX strings, usually `$...$`); several answers are joined with
commas so math-verify compares them as a tuple. Offline, `load` raises one InputError. The columns
used (`question`, `final_answer` as a list, `id`) match public loaders of this config; not yet run here.
"""

from __future__ import annotations

from thinkmid.config import BenchmarkParams
from thinkmid.evals.reasoning.common import Problem, load_hub, render, score_latex, strip_dollars, subsample

NAME = "olympiadbench"
DATASET, CONFIG, SPLIT = "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"


def gold_from_row(final_answer) -> str:
    answers = [final_answer] if isinstance(final_answer, str) else list(final_answer)
    return ", ".join(strip_dollars(str(a)) for a in answers)


def load(params: BenchmarkParams, seed: int) -> list[Problem]:
    ds = load_hub(DATASET, CONFIG, SPLIT, NAME)
    out = []
    for i in subsample(len(ds), params.limit, seed, NAME):
        row = ds[i]
        question = row["question"]
        if row.get("context"):  # some problems carry shared context before the question
            question = f"{row['context'].strip()}\n\n{question}"
        pid = str(row.get("id", f"olympiadbench-{i}"))
        out.append(Problem(NAME, pid, question, gold_from_row(row["final_answer"])))
    return out


def prompt(problem: Problem) -> str:
    return render("math.txt", question=problem.question.strip())


def score(problem: Problem, completion: str) -> tuple[bool, str | None]:
    return score_latex(problem.gold, completion)
