"""Verbal-thought and no-thought arms of the thought-interface comparison, from one start model.

Two SFT runs from the arm's start model on the task's training problems: [prompt; <think> worked
steps </think>; answer] (verbal, saved as models/verbal_<arm>: the continuous arm's teacher) and
[prompt; <think></think>; answer] (no thought). Both are scored on the held-out problems: verbal at
each thought-token cap of `verbal_budgets` (</think> forced at the cap), no thought once.
Resumable (checkpoints/verbal_thought_<arm>). Outputs reports/thoughts/verbal_<arm>*.json.

    python -m stages.verbal_thought --arm modsum
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.factory import engine_for, pick_device
from thinkmid.models.load import load_model, save_model
from thinkmid.thoughts import arm_spec, arms_in_params, task_problems, write_outputs
from thinkmid.thoughts import evaluate as ev
from thinkmid.thoughts.tasks import verbal_example
from thinkmid.thoughts.train import run_phase
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun
from thinkmid.train.checkpoint import clear_checkpoints


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    spec, task = arm_spec(params, arm)
    train, held = task_problems(spec.task)
    ckpt = f"checkpoints/verbal_thought_{arm}"
    dev = pick_device()
    with StageRun("verbal_thought", params, arm=arm) as tr:
        metrics: dict = {"arm": arm, "task": spec.task, "split": "eval", "train_problems": len(train)}
        rows, samples, step0 = [], [], 0
        for phase, with_steps in (("no_thought", False), ("verbal", True)):
            model, tok = load_model(spec.model, dtype=params.base.dtype)
            model.to(dev)
            examples = [verbal_example(tok, p, with_steps, task.seq_len) for p in train]
            s = run_phase(phase, model, examples, task, params.seed, ckpt, tr, step0, tok.pad_token_id)
            step0 += s["steps"]
            metrics[f"{phase}_final_loss"] = s["final_loss"]
            with engine_for(params.engine, model, tok, None, progress=False) as eng:
                if with_steps:
                    r, smp = ev.verbal(eng, tok, held, task.verbal_budgets, task.max_answer_tokens)
                    rows += r
                    samples += smp
                    save_model(model, tok, f"models/verbal_{arm}")
                else:
                    rows += ev.no_thought(eng, tok, held, task.max_answer_tokens)
            del model
        metrics.update(ev.headline(rows, "verbal"))
        metrics["accuracy_no_thought"] = next(r["accuracy"] for r in rows if r["interface"] == "no_thought")
        metrics["steps"] = step0
        write_outputs(tr, "verbal", arm, rows, samples, metrics)
        write_timing(tr, timing_path("verbal_thought", arm), {"wall_time_s": round(time.time() - t0, 2)})
    clear_checkpoints(ckpt)


if __name__ == "__main__":
    stage_main("verbal_thought", run, arms=arms_in_params())
