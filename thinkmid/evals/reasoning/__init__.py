"""Reasoning benchmarks, one module per task, each with `load(params, seed)`, `prompt(problem)` and
`score(problem, completion) -> (correct, extracted)`; `run.evaluate` samples and scores them all."""

from __future__ import annotations

from types import ModuleType

from thinkmid.evals.reasoning import gpqa, gsm8k, math500, olympiadbench
from thinkmid.evals.reasoning.common import Problem

# Keys are the `reasoning_eval.<name>` sections of params.yaml; the order is the report's row order.
TASKS: dict[str, ModuleType] = {
    "gsm8k": gsm8k,
    "math500": math500,
    "gpqa_diamond": gpqa,
    "olympiadbench": olympiadbench,
}


def load_benchmarks(cfg, seed: int) -> dict[str, list[Problem]]:
    """Load every enabled benchmark of a ReasoningEvalParams section, in TASKS order."""
    return {name: task.load(getattr(cfg, name), seed) for name, task in TASKS.items() if getattr(cfg, name).enabled}


__all__ = ["TASKS", "Problem", "load_benchmarks"]
