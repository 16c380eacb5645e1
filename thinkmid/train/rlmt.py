"""RLMT (Phase 4B): GRPO / Dr.GRPO on the two-stage thought -> suffix interface, one step at a time.

One step: P prefixes (deterministic by step) x K samples from the policy (thought, then </think>
inserted by us, then the suffix), reference-judge rewards in {0, 1} (an invalid verdict, None, is
dropped: the sample takes no part in the advantages, the loss or the step's statistics, as in the
seed), group advantages over each prefix's valid samples (population std), old log-probs from a
no-grad teacher-forced pass of the current policy, reference log-probs from the frozen SFT model, the
PPO-clipped loss with a k3 KL over thought + suffix tokens (the inserted </think> masked out), one
guarded optimizer step. rlmt.loss_form "sequence" takes ratio and k3 on each sequence's mean
log-prob (the seed), "token" per token. With one update per rollout batch the old policy IS the
policy being updated, so the ratio is exactly 1 and the clip never acts, in the seed as here: the
step's gradient is -A * grad(mean log-prob) plus the KL term. `RlmtTrainer` owns the optimizer, scheduler, history and checkpoints, so a
run resumed from a checkpoint is step-for-step the run that was never stopped. The update itself is in
thinkmid/train/rlmt_update.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from thinkmid.errors import InputError
from thinkmid.judges.base import JudgeStats, check_invalid_rate
from thinkmid.models.tokenizer import think_ids
from thinkmid.rollouts import Sample, group_stats, judge_groups, sample_groups
from thinkmid.train.checkpoint import save_checkpoint
from thinkmid.train.dist import Dist
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.recipe import make_fingerprint, resume
from thinkmid.train.rlmt_update import policy_update

STEP_KEYS = (
    "reward_mean",
    "mixed_groups",
    "near_zero_groups",
    "all_zero_groups",
    "all_one_groups",
    "invalid_judge_rate",
    "avg_total_new_tokens",
    "length_drift",
    "artifact_rate",
    "markup_artifact_rate",
    "avg_total_new_tokens_sampled",
    "valid_samples",
    "loss",
    "pg_loss",
    "kl",
    "clip_frac",
    "grad_norm",
    "lr",
    "logprob_mismatch",
    "step_time_s",
    "gen_time_s",
    "judge_time_s",
    "update_time_s",
)


def step_rows(rows: list[dict], step: int, per_step: int) -> list[dict]:
    """The prefixes of `step`: rows[(step * P + i) % n], cycling deterministically."""
    if not rows:
        raise ValueError("no RL rows")
    return [rows[(step * per_step + i) % len(rows)] for i in range(per_step)]


def step_seed(seed: int, step: int) -> int:
    """Sampling seed of a step; sample_groups also uses seed + 1, so steps are 2 apart."""
    return int(seed) * 1_000_000 + 2 * int(step)


def sample_and_judge(
    engine,
    tokenizer,
    judge,
    rows: list[dict],
    rp,
    seed: int,
    max_invalid_rate: float,
    step: int,
    dist: Dist | None = None,
) -> tuple[list[list[Sample]], dict[str, float]]:
    """Sample K two-stage completions per row and judge them; stops on too many invalid verdicts.

    Under several processes each rank passes its own rows (whole groups) and gets its own groups
    back; the statistics and the invalid-verdict check are over every rank's groups, so all ranks
    report, and stop, alike.
    """
    t0 = time.perf_counter()
    groups = sample_groups(
        engine,
        tokenizer,
        rows,
        rp.k,
        rp.thought_max_tokens,
        rp.suffix_max_tokens,
        rp.temperature,
        seed,
        top_p=getattr(rp, "top_p", 1.0),
    )
    t1 = time.perf_counter()
    judge_groups(judge, rows, groups)
    t2 = time.perf_counter()
    every, jstats = groups, judge.stats
    if dist is not None and dist.enabled:
        every = dist.gather_objects(groups)
        counts = dist.gather_objects([(jstats.calls, jstats.invalid, jstats.retries)])
        jstats = JudgeStats(*(sum(c) for c in zip(*counts)))
    check_invalid_rate(jstats, max_invalid_rate, what=f"rlmt reference judge (step {step})")
    stats = group_stats(every)
    metrics = {
        k: stats[k]
        for k in (
            "reward_mean",
            "mixed_groups",
            "near_zero_groups",
            "all_zero_groups",
            "all_one_groups",
            "avg_total_new_tokens",
            "artifact_rate",
            "markup_artifact_rate",
            "avg_total_new_tokens_sampled",
        )
    }
    metrics.update(invalid_judge_rate=stats["invalid_rate"], gen_time_s=t1 - t0, judge_time_s=t2 - t1)
    return groups, metrics


class RlmtTrainer:
    """The policy, its frozen reference, the optimizer/scheduler and the per-step history.

    `after_update(step)` runs after each optimizer step (e.g. pushing weights to a server engine).
    `fingerprint` (more params sections, JSON) joins lr, seed and the rlmt params, and `inputs` (name
    -> path: start model, rows) their identities, in each checkpoint; a checkpoint written under other
    settings is refused (thinkmid/train/recipe.py: resume), a changed lr or schedule is taken from now.
    """

    def __init__(
        self,
        policy,
        ref_model,
        tokenizer,
        engine,
        judge,
        rows: list[dict],
        rp,
        lr: float,
        seed: int,
        max_invalid_rate: float = 1.0,
        micro_batch: int = 16,
        after_update: Callable[[int], None] | None = None,
        fingerprint: dict | None = None,
        dist: Dist | None = None,
        old_logprobs: str = "policy",
        inputs: dict[str, str] | None = None,
    ):
        if old_logprobs not in ("policy", "engine"):
            raise ValueError(f"old_logprobs must be 'policy' or 'engine', not {old_logprobs!r}")
        self.old_logprobs = old_logprobs  # "engine": samples may be stale, the engine's log-probs are the old policy
        self.policy, self.ref, self.tok, self.engine, self.judge = policy, ref_model, tokenizer, engine, judge
        self.dist = dist if dist is not None else Dist()
        if self.dist.is_fsdp:
            raise InputError("rlmt runs under DDP or in one process; FSDP is for sft (configs/accelerate/ddp.yaml)")
        if self.dist.world_size > rp.prefixes_per_step:
            raise InputError(
                f"rlmt.prefixes_per_step: {rp.prefixes_per_step} groups cannot be split over "
                f"{self.dist.world_size} processes; use at least one per process"
            )
        self.rows, self.rp, self.seed = rows, rp, seed
        self.max_invalid_rate, self.micro_batch, self.after_update = max_invalid_rate, micro_batch, after_update
        self.close_id = think_ids(tokenizer)[1]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        for p in ref_model.parameters():
            p.requires_grad_(False)
        ref_model.eval()
        self.optimizer = make_optimizer(policy, lr=lr)
        self.scheduler = make_scheduler(
            self.optimizer, rp.warmup_steps, rp.steps, rp.min_lr_ratio, kind=getattr(rp, "lr_schedule", "thinkmid")
        )
        # The engine samples from `policy` itself; the update goes through the (DDP-)wrapped `model`.
        self.model, self.optimizer = self.dist.prepare(policy, self.optimizer)
        self.history: list[dict] = []
        self.wall_time_s = 0.0  # summed over the processes of a resumed run
        # Refused on change: seed and every rlmt key but the schedule's (thinkmid/train/recipe.py).
        self.fingerprint = make_fingerprint(
            {"lr": lr, "seed": seed, "rlmt": rp.model_dump(), **(fingerprint or {})}, inputs
        )

    @property
    def next_step(self) -> int:
        return self.history[-1]["step"] + 1 if self.history else 0

    def step(self, step: int) -> dict:
        """Run RLMT step `step` (must be next_step); returns its metrics and appends them to history."""
        if step != self.next_step:
            raise ValueError(f"step {step} out of order; next is {self.next_step}")
        t0 = time.perf_counter()
        rows = self.dist.split(step_rows(self.rows, step, self.rp.prefixes_per_step))  # whole groups per rank
        groups, m = sample_and_judge(
            self.engine,
            self.tok,
            self.judge,
            rows,
            self.rp,
            self.dist.rank_seed(step_seed(self.seed, step)),
            self.max_invalid_rate,
            step,
            self.dist,
        )
        t1 = time.perf_counter()
        if self.old_logprobs == "engine" and not getattr(self.engine, "has_logprobs", True):
            raise InputError(
                "engine.reload_every > 1 samples from weights up to reload_every - 1 updates old, so the "
                "old policy must be the server's own log-probs, and this server returns none; "
                "set engine.reload_every: 1 or serve with SGLang"
            )
        m.update(
            policy_update(
                self.model,
                self.ref,
                self.optimizer,
                self.scheduler,
                groups,
                self.close_id,
                self.pad_id,
                self.rp,
                step,
                self.micro_batch,
                self.dist,
                self.old_logprobs,
            )
        )
        if self.after_update is not None:
            self.after_update(step)
        t2 = time.perf_counter()
        base = self.history[0]["avg_total_new_tokens"] if self.history else m["avg_total_new_tokens"]
        m["length_drift"] = m["avg_total_new_tokens"] / base - 1.0 if base else 0.0
        m.update(update_time_s=t2 - t1, step_time_s=t2 - t0)
        self.wall_time_s += t2 - t0
        row = {"step": step, **{k: _json_float(m[k]) for k in STEP_KEYS}}
        self.history.append(row)
        return row

    def save(self, directory: str | Path) -> Path:
        """A checkpoint after next_step completed steps (thinkmid/train/recipe.py: its step is the count)."""
        extra = {"history": self.history, "wall_time_s": self.wall_time_s, "fingerprint": self.fingerprint}
        return save_checkpoint(directory, self.next_step, self.policy, self.optimizer, self.scheduler, extra)

    def restore(self, directory: str | Path) -> int:
        """Load the newest checkpoint if any (refused if written under other settings; the current lr
        and schedule are used); returns the step to run next (0 when starting fresh)."""
        got = resume(directory, self.fingerprint, self.policy, self.optimizer, self.scheduler)
        if got is None:
            return 0
        step, extra = got
        self.history = [h for h in extra.get("history", []) if h["step"] < step]
        self.wall_time_s = float(extra.get("wall_time_s", 0.0))
        if self.next_step != step:
            raise ValueError(f"{directory}: checkpoint after {step} steps holds history up to {self.next_step - 1}")
        return step


def _json_float(v) -> float | None:
    """History goes into JSON (checkpoint extra, DVC plots): non-finite numbers become null."""
    v = float(v)
    return v if math.isfinite(v) else None


def _mean(history: list[dict], key: str) -> float | None:
    vals = [h[key] for h in history if h.get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def summarize(arm: str, history: list[dict], stopped_reason: str | None) -> dict:
    """The RLMT row of the results table (reports/rlmt/<arm>.json); its wall time is in <arm>_timing.json."""
    return {
        "arm": arm,
        "completed_steps": len(history),
        "stopped_reason": stopped_reason,
        "avg_reward": _mean(history, "reward_mean"),
        "final_reward": history[-1]["reward_mean"] if history else None,
        "avg_mixed_groups": _mean(history, "mixed_groups"),
        "avg_near_zero_groups": _mean(history, "near_zero_groups"),
        "avg_all_zero_groups": _mean(history, "all_zero_groups"),
        "avg_all_one_groups": _mean(history, "all_one_groups"),
        "invalid_judge_rate": _mean(history, "invalid_judge_rate"),  # every step judges P x K samples
        "avg_length_drift": _mean(history, "length_drift"),
        "avg_artifact_rate": _mean(history, "artifact_rate"),
        "avg_markup_artifact_rate": _mean(history, "markup_artifact_rate"),
    }
