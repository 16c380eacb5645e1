"""One step of self-improving continued pretraining (Phase 3).

For each prefix: K continuations from the policy (full suffix length), a pool of those plus the
original suffix, every pair judged once in random A/B order, pointwise score = wins / (pool - 1),
chosen = best, rejected = worst rollout, or worst of the whole pool with self_improve.rejected_from
"pool" (the seed: the original suffix can be rejected; rejected_is_pivot_rate counts how often), ties
rotate with the step; all-equal prefixes are skipped; then DPO on summed suffix log-probs against the
frozen base. self_improve.suppress_eos makes every rollout exactly suffix_tokens long.
"""

from __future__ import annotations

import random
import time

import torch

from thinkmid.engines.base import SamplingParams
from thinkmid.judges.pairwise import score_pools, select_pair
from thinkmid.train.logprobs import sequence_logprobs
from thinkmid.train.loop import clip_and_step
from thinkmid.train.losses import dpo_loss


def step_rows(rows: list[dict], step: int, per_step: int) -> list[dict]:
    """The prefixes of a step: a deterministic walk through the split, wrapping around."""
    return [rows[(step * per_step + i) % len(rows)] for i in range(per_step)]


def build_pools(tokenizer, rows: list[dict], rollouts) -> tuple[list[list[list[int]]], list[list[str]]]:
    """Per prefix: candidate token ids and texts; the original suffix is the last candidate."""
    ids, texts = [], []
    for r, comps in zip(rows, rollouts):
        cand = [c.token_ids for c in comps] + [list(r["suffix_ids"])]
        ids.append(cand)
        texts.append([tokenizer.decode(c, skip_special_tokens=True) for c in cand])
    return ids, texts


def self_improve_step(
    step: int,
    rows: list[dict],
    policy,
    ref,
    tokenizer,
    engine,
    judge,
    optimizer,
    scheduler,
    p,
    seed: int,
    suffix_tokens: int,
) -> dict:
    """Run one Phase 3 step; returns its metrics. `p` is params.self_improve."""
    t0 = time.time()
    prompts = [list(r["prefix_ids"]) for r in rows]
    eos = tuple(i for i in {tokenizer.eos_token_id} if i is not None) if getattr(p, "suppress_eos", False) else ()
    rollouts = engine.generate(
        prompts,
        SamplingParams(
            max_new_tokens=suffix_tokens,
            n=p.k,
            temperature=p.temperature,
            seed=seed * 7919 + step,
            suppress_token_ids=eos,
        ),
    )
    t_gen = time.time()
    pool_ids, pool_texts = build_pools(tokenizer, rows, rollouts)
    scored = score_pools([r["prefix"] for r in rows], pool_texts, judge, random.Random(f"{seed}:{step}"))
    t_judge = time.time()
    pairs, chosen_is_rollout, rejected_is_pivot, orig_scores, roll_scores, tops, bottoms = [], [], [], [], [], [], []
    whole_pool = getattr(p, "rejected_from", "rollouts") == "pool"
    invalid = skipped = 0
    for i, (scores, n_invalid) in enumerate(scored):
        invalid += n_invalid
        is_rollout = [True] * p.k + [False]
        rejectable = [True] * (p.k + 1) if whole_pool else is_rollout
        orig_scores.append(scores[-1])
        roll_scores.extend(scores[:-1])
        tops.append(max(scores))
        bottoms.append(min(scores))
        pick = select_pair(scores, step, rejectable)
        if pick is None:
            skipped += 1
            continue
        c, r = pick
        pairs.append((prompts[i], pool_ids[i][c], pool_ids[i][r]))
        chosen_is_rollout.append(is_rollout[c])
        rejected_is_pivot.append(not is_rollout[r])
    metrics = {
        "original_suffix_mean_score": sum(orig_scores) / len(orig_scores),
        "rollout_mean_score": sum(roll_scores) / max(len(roll_scores), 1),
        "pool_top_score_mean": sum(tops) / len(tops),
        "pool_bottom_score_mean": sum(bottoms) / len(bottoms),
        "skipped_prefixes": skipped,
        "invalid_judgments": invalid,
        "judged_pairs": sum(len(t) * (len(t) - 1) // 2 for t in pool_texts),
        "chosen_is_rollout_rate": sum(chosen_is_rollout) / len(chosen_is_rollout) if pairs else 0.0,
        "rejected_is_pivot_rate": sum(rejected_is_pivot) / len(rejected_is_pivot) if pairs else 0.0,
        "gen_time_s": t_gen - t0,
        "judge_time_s": t_judge - t_gen,
    }
    if not pairs:  # nothing to prefer this step: no update, but the step still counts
        metrics.update(dpo_loss=float("nan"), reward_margin=0.0, reward_accuracy=0.0, grad_norm=0.0, pairs=0)
        scheduler.step()
        metrics["lr"] = scheduler.get_last_lr()[0]
        metrics["step_time_s"] = time.time() - t0
        return metrics
    pad = tokenizer.pad_token_id
    prompt_b = [q for q, _, _ in pairs] * 2
    comp_b = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
    policy.train()
    logps, mask = sequence_logprobs(policy, prompt_b, comp_b, pad)
    with torch.no_grad():
        ref_logps, _ = sequence_logprobs(ref, prompt_b, comp_b, pad)
    summed, ref_summed = (logps * mask).sum(-1), (ref_logps * mask).sum(-1)
    n = len(pairs)
    loss, dm = dpo_loss(summed[:n], summed[n:], ref_summed[:n], ref_summed[n:], p.beta)
    loss.backward()
    metrics["lr"] = scheduler.get_last_lr()[0]
    gnorm = clip_and_step(policy, optimizer, scheduler, p.max_grad_norm, loss=loss, step=step)
    policy.eval()
    metrics.update({k: float(v) for k, v in dm.items()})
    metrics.update(dpo_loss=float(loss.detach()), grad_norm=float(gnorm), pairs=n, step_time_s=time.time() - t0)
    return metrics
