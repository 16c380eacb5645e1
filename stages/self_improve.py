"""Phase 3, self-improving continued pretraining: Online DPO on judged best vs worst continuations.

Per step and prefix: K policy rollouts + the original suffix form a pool, judged full-pairwise; DPO
(beta) on the best vs the worst rollout against the frozen base. Resumable from checkpoints/.
Output: models/phase3.

    python -m stages.self_improve
"""

from __future__ import annotations

import contextlib
import math
import time

from tqdm.auto import tqdm

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.factory import pick_device
from thinkmid.io import read_jsonl, write_json
from thinkmid.judges.base import check_invalid_rate
from thinkmid.models.load import load_model, save_model
from thinkmid.track import StageRun
from thinkmid.engines.wiring import Part, build, policy as policy_part
from thinkmid.train.checkpoint import clear_checkpoints, load_latest_checkpoint, save_checkpoint, saved_run_id
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.self_improve import self_improve_step, step_rows

OUT, CKPT = "models/phase3", "checkpoints/self_improve"
METRICS, STEPS = "reports/self_improve/metrics.json", "reports/self_improve/steps.json"
ROW_KEYS = ("id", "prefix", "suffix", "prefix_ids", "suffix_ids")


def _mean(history: list[dict], key: str) -> float:
    vals = [h[key] for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    return sum(vals) / len(vals) if vals else 0.0


def wiring(params: Params, arm: str | None = None) -> list[Part]:
    """The pairwise judge (its server first), then the policy engine on models/base, synced with the
    trained policy every engine.reload_every steps (a no-op for the in-process engine)."""
    return [Part("judge"), policy_part("models/base", trains=True)]


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    p = params.self_improve
    rows = read_jsonl("data/chunks/phase3_train.jsonl", ROW_KEYS)
    device = pick_device()
    policy, tok = load_model("models/base", dtype=params.base.dtype)
    ref, _ = load_model("models/base", dtype=params.base.dtype)
    policy.to(device), ref.to(device).eval().requires_grad_(False)
    optimizer = make_optimizer(policy, p.lr, p.weight_decay, decay_norms=p.decay_norms)
    scheduler = make_scheduler(optimizer, p.warmup_steps, p.steps, p.min_lr_ratio, kind=p.lr_schedule)
    resumed = load_latest_checkpoint(CKPT, policy, optimizer, scheduler)
    start, history = (resumed[0], resumed[1].get("history", [])) if resumed else (0, [])
    judge_part, policy_at = wiring(params)
    with contextlib.ExitStack() as stack:
        judge = stack.enter_context(build(judge_part, params, ref, tok))  # `lm` judges with the frozen base
        engine = stack.enter_context(build(policy_at, params, policy, tok, progress=False))
        if start:
            engine.sync(policy, tok)  # resumed: the server was started from models/base
        tr = stack.enter_context(StageRun("self_improve", params, run_id=saved_run_id(CKPT)))
        logged = tr.logged_steps("dpo_loss") | tr.logged_steps("rollout_mean_score")
        bar = tqdm(range(start, p.steps), initial=start, total=p.steps, desc="self_improve", unit="step")
        for step in bar:
            m = self_improve_step(step, step_rows(rows, step, p.prefixes_per_step), policy, ref, tok, engine, judge,
                                  optimizer, scheduler, p, params.seed, params.chunks.suffix_tokens)  # fmt: skip
            check_invalid_rate(judge.stats, params.judge.max_invalid_rate, "self_improve pairwise judge")
            if (step + 1) % params.engine.reload_every == 0 and step + 1 < p.steps:
                engine.sync(policy, tok)  # keep sampling on-policy (server engines load the new weights)
            m["step"] = step
            history.append(m)
            if step not in logged:
                tr.log_metrics(m, step=step)
            bar.set_postfix(loss=f"{m['dpo_loss']:.4f}", rollout_score=f"{m['rollout_mean_score']:.3f}")
            if (step + 1) % p.checkpoint_every == 0 and step + 1 < p.steps:
                save_checkpoint(CKPT, step + 1, policy, optimizer, scheduler, extra={"history": _jsonable(history)})
                write_json(STEPS, _jsonable(history))
        save_model(policy, tok, OUT)
        write_json(STEPS, _jsonable(history))
        summary = {
            "steps": len(history),
            "dpo_loss": _mean(history[-max(1, len(history) // 4):], "dpo_loss"),
            **{k: _mean(history, k) for k in ("reward_margin", "reward_accuracy", "chosen_is_rollout_rate",
                                             "rejected_is_pivot_rate",
                                             "original_suffix_mean_score", "rollout_mean_score")},
            "skipped_prefixes": int(sum(h["skipped_prefixes"] for h in history)),
            "invalid_judgments": int(sum(h["invalid_judgments"] for h in history)),
            "judge_invalid_rate": judge.stats.invalid_rate,
            "wall_time_s": round(time.time() - t0, 2),
        }  # fmt: skip
        tr.write_metrics(METRICS, summary)
        tr.log_artifact(STEPS)
    clear_checkpoints(CKPT)


def _jsonable(history: list[dict]) -> list[dict]:
    """NaN (a step with no pair to train on) becomes null so the file is strict JSON."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in h.items()} for h in history]


if __name__ == "__main__":
    stage_main("self_improve", run)
