"""Continuous-thought arm (QThink / CODI): K latent steps through a projection head, distilled from
the model's own verbal reasoning.

The student starts from models/verbal_<arm> (the verbal arm's model, whose rollouts are the
teacher) plus a Linear-GELU-Linear-LayerNorm head at the scale of its input embeddings, warm-started
for `head_fit_steps` (head only: hidden state -> the next thought token's embedding). K is the
generated task's chain length with `chain_steps`. Teacher states: `rollouts` verbal rollouts per
training problem, hidden states at K evenly spaced thought positions, averaged uniformly or over the
correct rollouts only. Loss: answer CE + distill_weight x (L1 or smooth-L1, per step or final step),
at `continuous.lr` (else the task's); `mixed_steps` also trains the eval's other step counts. Scored on the held-out problems after each number of latent steps in `latent_steps` (0 is the
ablation). Resumable (checkpoints/continuous_thought_<arm>). Outputs models/continuous_<arm> (+
head.safetensors) and reports/thoughts/continuous_<arm>*.json.

    python -m stages.continuous_thought --arm modsum
"""

from __future__ import annotations

import math
import time

import torch
from safetensors.torch import save_file

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.factory import engine_for, pick_device
from thinkmid.io import atomic_path
from thinkmid.models.load import load_model
from thinkmid.thoughts import arm_spec, arms_in_params, task_problems, write_outputs
from thinkmid.thoughts import continuous as ct
from thinkmid.thoughts import evaluate as ev
from thinkmid.thoughts.train import run_phase
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun
from thinkmid.train.checkpoint import clear_checkpoints


def latent_k(cp, task) -> int:
    """K: the generated task's chain length with `chain_steps` (one latent step per worked step), else latent_steps."""
    from thinkmid.thoughts.procedural import chain_length

    return chain_length(task) if cp.chain_steps and task.kind != "gsm8k" else cp.latent_steps


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    spec, task = arm_spec(params, arm)
    cp = params.thoughts.continuous
    train, held = task_problems(spec.task)
    ckpt = f"checkpoints/continuous_thought_{arm}"
    lm, tok = load_model(f"models/verbal_{arm}", dtype=params.base.dtype)
    dev = pick_device()
    lm.to(dev)
    torch.manual_seed(params.seed)
    module = ct.LatentLM(lm, ct.ProjectionHead.for_model(lm).to(dev, lm.dtype))
    k = latent_k(cp, task)
    steps_list = sorted(set(task.latent_steps) | {k})
    with (
        StageRun("continuous_thought", params, arm=arm) as tr,
        engine_for(params.engine, lm, tok, None, progress=False) as eng,
    ):
        metrics: dict = {
            "arm": arm,
            "task": spec.task,
            "split": "eval",
            "train_problems": len(train),
            "latent_steps": k,
            "mixed_steps": cp.mixed_steps,
        }
        rolls = ct.rollouts(
            eng,
            tok,
            train,
            cp.rollouts,
            max(task.verbal_budgets),
            task.max_answer_tokens,
            cp.rollout_temperature,
            params.seed,
        )
        trained = [s for s in steps_list if s > 0] if cp.mixed_steps else [k]
        targets, weights, stats = ct.teacher_states(lm, tok, train, rolls, trained, cp.weighting, cp.teacher_batch)
        metrics.update(stats)
        if cp.head_fit_steps:
            fit = ct.fit_head(module.head, lm, tok, train, rolls, cp.head_fit_steps, seed=params.seed)
            metrics["head_fit_loss"] = None if math.isnan(fit) else fit  # NaN: no correct rollout to fit on
        pick = ct.step_schedule(k, steps_list, cp.mixed_steps)

        def loss_fn(m, idx, device):
            kk = pick(idx)
            t = targets[kk][idx] if kk > 0 else None
            return ct.latent_forward(m, tok, [train[i] for i in idx], kk, t, weights[idx], cp)

        dtask = task.model_copy(update={"lr": cp.lr}) if cp.lr else task
        s = run_phase(
            "distill",
            module,
            list(range(len(train))),
            dtask,
            params.seed,
            ckpt,
            tr,
            0,
            tok.pad_token_id,
            loss_fn=loss_fn,
        )
        metrics["final_loss"], metrics["steps"] = s["final_loss"], s["steps"]
        rows, samples = ev.continuous(eng, tok, held, module.head, steps_list, task.max_answer_tokens)
        with atomic_path(f"models/continuous_{arm}") as tmp:
            lm.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            save_file({k: v.contiguous() for k, v in module.head.state_dict().items()}, str(tmp / "head.safetensors"))
        metrics.update(ev.headline(rows, "continuous"))
        metrics["accuracy_zero_latent_steps"] = (
            next(r["accuracy"] for r in rows if r["budget"] == 0) if 0 in steps_list else None
        )
        write_outputs(tr, "continuous", arm, rows, samples, metrics)
        write_timing(tr, timing_path("continuous_thought", arm), {"wall_time_s": round(time.time() - t0, 2)})
    clear_checkpoints(ckpt)


if __name__ == "__main__":
    stage_main("continuous_thought", run, arms=arms_in_params())
