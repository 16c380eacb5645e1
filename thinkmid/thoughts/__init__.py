"""Thought interfaces beyond words (issue 17): verbal, abstract-token and continuous-latent thought
arms trained from the same start models and scored by one eval on the same held-out problems."""

from __future__ import annotations

from pathlib import Path

TASK_DATA = Path("data/thought_tasks")
INIT_MODELS = Path("models/thought_init")
REPORTS = Path("reports/thoughts")


def arms_in_params(argv=None) -> list[str]:
    """The arm names of thoughts.arms in the params file the stage will read (for `--arm` checks).
    An unreadable params file gives a placeholder: the stage then reports the params error itself."""
    import argparse

    from thinkmid.config import PARAMS_FILE, load_params
    from thinkmid.errors import InputError

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--params", default=PARAMS_FILE)
    ns, _ = ap.parse_known_args(argv)
    try:
        return sorted(load_params(ns.params).thoughts.arms) or ["<none in thoughts.arms>"]
    except InputError:
        return ["<params invalid>"]


def arm_spec(params, arm: str):
    """(arm params, task params) of `--arm`; InputError when the arm is not in thoughts.arms."""
    from thinkmid.errors import InputError

    spec = params.thoughts.arms.get(arm)
    if spec is None:
        raise InputError(f"--arm: unknown arm {arm!r}; expected one of {sorted(params.thoughts.arms)}")
    return spec, params.thoughts.tasks[spec.task]


def task_problems(task_name: str):
    """(train, eval) problems written by prepare_thought_tasks."""
    from thinkmid.thoughts.tasks import load

    return load(TASK_DATA / task_name / "train.jsonl"), load(TASK_DATA / task_name / "eval.jsonl")


def write_outputs(tracker, stage: str, arm: str, rows: list[dict], samples: list[dict], metrics: dict) -> None:
    """reports/thoughts/<stage>_<arm>.json (DVC metrics, MLflow), <stage>_<arm>_rows.json (the
    accuracy-vs-thought-tokens points, a DVC plot) and <stage>_<arm>_samples.jsonl."""
    from thinkmid.io import write_json, write_jsonl

    base = REPORTS / f"{stage}_{arm}"
    write_json(f"{base}_rows.json", rows)
    write_jsonl(f"{base}_samples.jsonl", samples)
    for r in rows:  # the curve, one MLflow metric per interface with the budget as its step
        tracker.log_metrics({f"accuracy_{r['interface']}": r["accuracy"]}, step=r["budget"])
    tracker.write_metrics(f"{base}.json", metrics)
    tracker.log_artifact(f"{base}_rows.json")
    tracker.log_artifact(f"{base}_samples.jsonl")
