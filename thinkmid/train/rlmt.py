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
run resumed from a checkpoint is step-for-step the run that was never stopped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from thinkmid.errors import InputError
from thinkmid.judges.base import JudgeStats, check_invalid_rate
from thinkmid.models.tokenizer import think_ids
from thinkmid.rollouts import Sample, group_stats, judge_groups, sample_groups
from thinkmid.train.checkpoint import save_checkpoint
from thinkmid.train.dist import Dist
from thinkmid.train.logprobs import sequence_logprobs
from thinkmid.train.loop import clip_and_step
from thinkmid.train.losses import ragged_advantages, rlmt_loss
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.recipe import make_fingerprint, resume

log = logging.getLogger(__name__)

LOGPROB_TOLERANCE = 1e-2  # engine vs teacher-forced log-prob gap above which we warn (fp32 CPU: ~1e-5)
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


def token_budget(rp) -> int:
    """Dr.GRPO's constant divisor: every token a sample can have (thought + </think> + suffix)."""
    return rp.thought_max_tokens + 1 + rp.suffix_max_tokens


def build_completion(thought_ids: list[int], suffix_ids: list[int], close_id: int) -> tuple[list[int], list[int]]:
    """(completion ids, loss mask): thought + [</think>] + suffix, with 0 at the inserted </think>."""
    ids = list(thought_ids) + [close_id] + list(suffix_ids)
    mask = [1] * len(thought_ids) + [0] + [1] * len(suffix_ids)
    return ids, mask


def engine_logprobs(sample: Sample) -> list[float] | None:
    """The engine's log-probs aligned with build_completion (0.0 at </think>); None if incomplete."""
    if len(sample.thought_logps) != len(sample.thought_ids) or len(sample.suffix_logps) != len(sample.suffix_ids):
        return None
    return list(sample.thought_logps) + [0.0] + list(sample.suffix_logps)


def valid_groups(groups: list[list[Sample]]) -> list[list[Sample]]:
    """Each group's samples with a valid verdict (the seed trains on `valid_records` only)."""
    return [[s for s in g if s.reward is not None] for g in groups]


def advantages(groups: list[list[Sample]], mode: str = "grpo") -> list[float]:
    """One advantage per valid sample, flat in group order; each group normalised over its own valid
    rewards (population std; 0 for a group whose rewards are all equal)."""
    return [a for g in ragged_advantages([[float(s.reward) for s in g] for g in valid_groups(groups)], mode) for a in g]


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(s, min(n, s + size)) for s in range(0, n, max(1, size))]


@torch.no_grad()
def _frozen_logprobs(model, prompts, comps, masks, pad_id, parts) -> list[torch.Tensor]:
    was = model.training
    model.eval()
    out = [
        sequence_logprobs(model, prompts[p], comps[p], pad_id, masks[p], micro_batch=p.stop - p.start)[0] for p in parts
    ]
    model.train(was)
    return out


def policy_update(
    policy,
    ref_model,
    optimizer,
    scheduler,
    groups: list[list[Sample]],
    close_id: int,
    pad_id: int,
    rp,
    step: int,
    micro_batch: int = 16,
    dist: Dist | None = None,
    old_from: str = "policy",
) -> dict[str, float]:
    """Advantages, old/ref log-probs, the clipped loss (accumulated over micro-batches), one step.

    Under DDP (`dist` of several processes, `policy` wrapped) each rank passes its own whole groups;
    the loss is weighted so the averaged gradient is the one-process gradient of all ranks' samples,
    and the returned metrics are over all of them.
    """
    dist = dist if dist is not None else Dist()
    world = dist.world_size
    frozen = dist.unwrap(policy)
    samples = [s for g in valid_groups(groups) for s in g]
    adv = torch.tensor(advantages(groups, rp.advantage), dtype=torch.float32)
    prompts = [s.prompt_ids for s in samples]
    built = [build_completion(s.thought_ids, s.suffix_ids, close_id) for s in samples]
    comps, masks = [c for c, _ in built], [m for _, m in built]
    parts = _chunks(len(samples), micro_batch)
    old = _frozen_logprobs(frozen, prompts, comps, masks, pad_id, parts)
    ref = _frozen_logprobs(ref_model, prompts, comps, masks, pad_id, parts) if rp.kl_coef > 0 else None

    # How far the engine's sampling log-probs are from the teacher-forced ones on trained tokens.
    mismatch = 0.0
    for p, lp in zip(parts, old):
        for r, s in enumerate(samples[p]):
            e = engine_logprobs(s)
            if e is None:
                mismatch = math.nan
                continue
            m = torch.tensor(masks[p.start + r], dtype=torch.bool)
            diff = (lp[r, : len(e)].cpu() - torch.tensor(e))[m].abs()
            if diff.numel():
                mismatch = max(mismatch, float(diff.max()))
    if mismatch > LOGPROB_TOLERANCE and old_from == "policy":
        log.warning("step %d: engine log-probs differ from the policy's by up to %.3g", step, mismatch)
    if old_from == "engine":  # samples may be stale (a server synced every few updates): PPO's ratio is
        old = [_engine_old(samples[p], lp) for p, lp in zip(parts, old)]  # against the policy that sampled

    policy.train()
    n = int(dist.sum(torch.tensor([float(len(samples))]))[0]) if world > 1 else len(samples)
    if n == 0:  # every verdict of the step was invalid: nothing to learn from (the seed stops here)
        raise RuntimeError(f"step {step}: no valid judge verdict in the step")
    lr = float(scheduler.get_last_lr()[0]) if scheduler is not None else float(optimizer.param_groups[0]["lr"])
    total, acc, n_tok, clipped = 0.0, {"pg_loss": 0.0, "kl": 0.0}, 0.0, 0.0
    for i, p in enumerate(parts):
        # Under DDP only the last micro-batch all-reduces, so ranks with different counts stay in step.
        last = i == len(parts) - 1
        sync = dist.accelerator.no_sync(policy) if world > 1 and not last else contextlib.nullcontext()
        with sync:
            new, mask = sequence_logprobs(policy, prompts[p], comps[p], pad_id, masks[p], micro_batch=p.stop - p.start)
            loss, met = rlmt_loss(
                new,
                old[i],
                ref[i] if ref is not None else None,
                mask,
                adv[p].to(new.device),
                clip_eps=rp.clip_eps,
                kl_coef=rp.kl_coef,
                mode=rp.advantage,
                token_budget=token_budget(rp),
                form=getattr(rp, "loss_form", "token"),
            )
            w = (p.stop - p.start) / n  # the loss is a mean over all sequences: micro-batches add up to it
            (loss * (w * world)).backward()  # DDP averages over ranks: x world makes it a sum
        total += float(loss.detach()) * w
        acc["pg_loss"] += met["pg_loss"] * w
        acc["kl"] += met["kl"] * w
        tok = float(mask.sum())
        n_tok += tok
        clipped += met["clip_frac"] * tok
    if world > 1:
        sums = dist.sum(torch.tensor([total, acc["pg_loss"], acc["kl"], clipped, n_tok], dtype=torch.float64))
        total, acc["pg_loss"], acc["kl"], clipped, n_tok = (float(x) for x in sums)
        seen = [x for x in dist.gather_objects([mismatch])]
        mismatch = math.nan if any(math.isnan(x) for x in seen) else max(seen)
    grad_norm = clip_and_step(
        policy, optimizer, scheduler, rp.max_grad_norm, loss=total, step=step, accelerator=dist.accelerator
    )
    return {
        "loss": total,
        **acc,
        "clip_frac": clipped / max(n_tok, 1.0),
        "grad_norm": grad_norm,
        "lr": lr,
        "logprob_mismatch": mismatch,
        "valid_samples": float(n),
    }


def _engine_old(samples: list[Sample], like: torch.Tensor) -> torch.Tensor:
    """The engine's sampling log-probs in the layout of the teacher-forced ones (padding left as is)."""
    out = like.clone()
    for r, s in enumerate(samples):
        e = engine_logprobs(s)
        if e is None:
            raise RuntimeError("the engine returned incomplete log-probs; stale samples need them as the old policy")
        out[r, : len(e)] = torch.tensor(e, dtype=out.dtype, device=out.device)
    return out


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
