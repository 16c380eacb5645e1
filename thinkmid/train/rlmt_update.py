"""One RLMT policy update (thinkmid/train/rlmt.py samples and judges the step): group advantages over the
valid verdicts, old log-probs (a no-grad teacher-forced pass of the policy, or the engine's sampling
log-probs for stale samples) and reference log-probs, the clipped loss with a k3 KL accumulated over
micro-batches (weighted so DDP's average is the one-process gradient), one guarded optimizer step."""

from __future__ import annotations

import contextlib
import logging
import math

import torch

from thinkmid.rollouts import Sample
from thinkmid.train.dist import Dist
from thinkmid.train.logprobs import sequence_logprobs
from thinkmid.train.loop import clip_and_step
from thinkmid.train.losses import ragged_advantages, rlmt_loss

log = logging.getLogger(__name__)

LOGPROB_TOLERANCE = 1e-2  # engine vs teacher-forced log-prob gap above which we warn (fp32 CPU: ~1e-5)


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
    lr = float(scheduler.get_last_lr()[0]) if scheduler is not None else float(optimizer.param_groups[0]["lr"])
    if n == 0:
        # Every verdict of the step was invalid. The judges' max_invalid_rate stop raises on that first
        # (the seed stops too); only a run that allows 100% invalid verdicts (stand-in judges) gets here:
        # nothing to learn from, so no update, and the schedule moves on so step s keeps its lr.
        log.warning("step %d: no valid judge verdict; update skipped", step)
        if scheduler is not None:
            scheduler.step()
        zero = {"loss": 0.0, "pg_loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0}
        return {**zero, "lr": lr, "logprob_mismatch": mismatch, "valid_samples": 0.0}
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
