"""Phase 3, self-improving continued pretraining: Online DPO on judged best vs worst continuations.

Per step and prefix: K policy rollouts + the original suffix form a pool, judged full-pairwise; DPO
(beta) on the best vs the worst rollout against the frozen base. A `Recipe` (thinkmid/train/recipe.py:
setup -> train -> cleanup, resumable from checkpoints/self_improve, refused if the params or
models/base changed). Outputs: models/phase3, reports/self_improve/{metrics,steps}.json (results) and
metrics_timing.json (wall and per-step times).

    python -m stages.self_improve
"""

from __future__ import annotations

import math

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.factory import pick_device
from thinkmid.engines.wiring import Part, build
from thinkmid.engines.wiring import policy as policy_part
from thinkmid.io import read_jsonl, write_json
from thinkmid.judges.base import check_invalid_rate
from thinkmid.models.load import load_model, save_model
from thinkmid.timing import timing_path, write_timing
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.recipe import Recipe, make_fingerprint
from thinkmid.train.self_improve import self_improve_step, step_rows

OUT, BASE, ROWS = "models/phase3", "models/base", "data/chunks/phase3_train.jsonl"
METRICS, STEPS = "reports/self_improve/metrics.json", "reports/self_improve/steps.json"
ROW_KEYS = ("id", "prefix", "suffix", "prefix_ids", "suffix_ids")


def _mean(history: list[dict], key: str) -> float:
    vals = [h[key] for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    return sum(vals) / len(vals) if vals else 0.0


def wiring(params: Params, arm: str | None = None) -> list[Part]:
    """The pairwise judge (its server first), then the policy engine on models/base, synced with the
    trained policy every engine.reload_every steps (a no-op for the in-process engine)."""
    return [Part("judge"), policy_part(BASE, trains=True)]


class SelfImprove(Recipe):
    stage, step_key = "self_improve", "dpo_loss"

    @property
    def checkpoint_every(self) -> int:
        return self.params.self_improve.checkpoint_every

    def setup(self) -> None:
        params, p = self.params, self.params.self_improve
        self.rows = read_jsonl(ROWS, ROW_KEYS)
        device = pick_device()
        self.model, self.tok = load_model(BASE, dtype=params.base.dtype)
        self.ref, _ = load_model(BASE, dtype=params.base.dtype)
        self.model.to(device), self.ref.to(device).eval().requires_grad_(False)
        self.optimizer = make_optimizer(self.model, p.lr, p.weight_decay, decay_norms=p.decay_norms)
        self.scheduler = make_scheduler(self.optimizer, p.warmup_steps, p.steps, p.min_lr_ratio, kind=p.lr_schedule)
        self.total = p.steps
        self.fingerprint = make_fingerprint(
            {
                "seed": params.seed,
                "base.dtype": params.base.dtype,
                "chunks.suffix_tokens": params.chunks.suffix_tokens,
                "judge": params.judge.model_dump(exclude={"endpoint"}),
                "self_improve": p.model_dump(),
            },
            {"start model": BASE, "rows": ROWS},
        )
        self.resume()
        judge_part, policy_at = wiring(params)
        self.judge = self.stack.enter_context(build(judge_part, params, self.ref, self.tok))  # `lm`: the frozen base
        self.engine = self.stack.enter_context(build(policy_at, params, self.model, self.tok, progress=False))
        if self.step:
            self.engine.sync(self.model, self.tok)  # resumed: the server was started from models/base

    def train_step(self, step: int) -> dict:
        params, p = self.params, self.params.self_improve
        m = self_improve_step(
            step,
            step_rows(self.rows, step, p.prefixes_per_step),
            self.model,
            self.ref,
            self.tok,
            self.engine,
            self.judge,
            self.optimizer,
            self.scheduler,
            p,
            params.seed,
            params.chunks.suffix_tokens,
        )
        check_invalid_rate(self.judge.stats, params.judge.max_invalid_rate, "self_improve pairwise judge")
        if (step + 1) % params.engine.reload_every == 0 and step + 1 < p.steps:
            self.engine.sync(self.model, self.tok)  # keep sampling on-policy (server engines load the new weights)
        return _jsonable(m)

    def save(self) -> None:
        super().save()
        write_json(STEPS, self.steps_rows())

    def cleanup(self) -> None:
        save_model(self.model, self.tok, OUT)
        history = self.history
        write_json(STEPS, self.steps_rows())
        summary = {
            "steps": len(history),
            "dpo_loss": _mean(history[-max(1, len(history) // 4) :], "dpo_loss"),
            **{
                k: _mean(history, k)
                for k in (
                    "reward_margin",
                    "reward_accuracy",
                    "chosen_is_rollout_rate",
                    "rejected_is_pivot_rate",
                    "original_suffix_mean_score",
                    "rollout_mean_score",
                )
            },
            "skipped_prefixes": int(sum(h["skipped_prefixes"] for h in history)),
            "invalid_judgments": int(sum(h["invalid_judgments"] for h in history)),
            "judge_invalid_rate": self.judge.stats.invalid_rate,
        }
        self.tr.write_metrics(METRICS, summary)
        write_timing(self.tr, timing_path(self.stage), {"wall_time_s": self.wall_time_s(), "steps": self.step_timing()})
        self.tr.log_artifact(STEPS)


def _jsonable(m: dict) -> dict:
    """NaN (a step with no pair to train on) becomes null so the files are strict JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in m.items()}


def run(params: Params, arm: str | None) -> None:
    SelfImprove(params, arm).run()


if __name__ == "__main__":
    stage_main("self_improve", run)
