"""Training losses: sigmoid DPO (Phase 3), causal-LM cross entropy (SFT, val losses), GRPO/Dr.GRPO
advantages and the clipped RLMT surrogate with a k3 KL penalty to the reference policy."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
DEGENERATE_STD = 1e-6  # a group whose reward std is below this carries no learning signal


def dpo_loss(
    pi_chosen: torch.Tensor,
    pi_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sigmoid DPO on summed suffix log-probs, each [P] (one entry per preference pair).

    loss = mean(-logsigmoid(beta * ((pc - rc) - (pr - rr)))).
    """
    chosen = beta * (pi_chosen - ref_chosen)
    rejected = beta * (pi_rejected - ref_rejected)
    margin = chosen - rejected
    loss = -F.logsigmoid(margin).mean()
    with torch.no_grad():
        metrics = {
            "reward_margin": margin.mean().item(),
            "reward_accuracy": (margin > 0).float().mean().item(),
            "chosen_reward": chosen.mean().item(),
            "rejected_reward": rejected.mean().item(),
        }
    return loss, metrics


def _shifted(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None):
    """Align logits[:, t] with labels[:, t+1]; returns (flat logits, flat targets, flat weights)."""
    logits = logits[:, :-1, :]
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    if mask is not None:
        keep = keep & (mask[:, 1:] != 0)
    targets = torch.where(keep, targets, torch.zeros_like(targets))
    return logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), keep.reshape(-1)


def causal_lm_nll_sum(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, int]:
    """(summed NLL over target tokens, number of target tokens); for val losses and thought_token_nll.

    logits [B, L, V] from input_ids; labels [B, L] are the input ids with -100 where no loss (HF
    convention: the shift happens here). `mask` [B, L] (optional) further selects target tokens by
    their own position, e.g. only the thought tokens.
    """
    flat_logits, targets, keep = _shifted(logits, labels, mask)
    nll = F.cross_entropy(flat_logits.float(), targets, reduction="none")
    return (nll * keep).sum(), int(keep.sum().item())


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Token-mean cross entropy over target tokens (see causal_lm_nll_sum for the conventions)."""
    total, count = causal_lm_nll_sum(logits, labels, mask)
    return total / max(count, 1)


def group_advantages(
    rewards: torch.Tensor, mode: Literal["grpo", "drgrpo"] = "grpo", eps: float = 1e-6
) -> torch.Tensor:
    """Advantages [G, K] from rewards [G, K] (G prompts, K samples each).

    grpo: (r - mean) / (std + eps) with the population std (ddof 0), as the seed computes it
    (scripts/train_rlmt.py: group_advantages, sqrt of the mean squared deviation).
    drgrpo: r - mean (Dr. GRPO drops the std normalisation).
    A group whose rewards are all equal (std < 1e-6) gets exactly zero advantages in both modes.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [G, K], got shape {tuple(rewards.shape)}")
    if mode not in ("grpo", "drgrpo"):
        raise ValueError(f"unknown advantage mode {mode!r}; expected 'grpo' or 'drgrpo'")
    r = rewards.float()
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, keepdim=True, unbiased=False) if r.shape[1] > 1 else torch.zeros_like(mean)
    centered = r - mean
    adv = centered / (std + eps) if mode == "grpo" else centered
    return torch.where(std < DEGENERATE_STD, torch.zeros_like(adv), adv)


def ragged_advantages(
    groups: list[list[float]], mode: Literal["grpo", "drgrpo"] = "grpo", eps: float = 1e-6
) -> list[list[float]]:
    """group_advantages for groups of different sizes (the valid verdicts of each prefix)."""
    return [
        group_advantages(torch.tensor([g], dtype=torch.float32), mode, eps)[0].tolist() if g else [] for g in groups
    ]


def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, token_budget: int | None) -> torch.Tensor:
    """Sequence-level reduction then mean over sequences: grpo = per-sequence token mean,
    drgrpo = per-sequence sum / a constant token budget (no length bias)."""
    summed = (per_token * mask).sum(dim=-1)
    if mode == "grpo":
        per_seq = summed / mask.sum(dim=-1).clamp(min=1.0)
    else:
        per_seq = summed / float(token_budget)
    return per_seq.mean()


def rlmt_loss(
    new_logps: torch.Tensor,
    old_logps: torch.Tensor,
    ref_logps: torch.Tensor | None,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    kl_coef: float = 0.02,
    mode: Literal["grpo", "drgrpo"] = "grpo",
    token_budget: int | None = None,
    form: Literal["token", "sequence"] = "token",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clipped policy loss with a k3 KL penalty, on per-token log-probs [N, T].

    form="sequence" is the seed's (scripts/train_rlmt.py: sequence_logps and the update after it):
    each sequence's log-prob is the MEAN over its masked tokens; ratio = exp(clamp(new - old, +-20))
    per sequence; the loss is -min(ratio * A, clip(ratio) * A) averaged over sequences, plus kl_coef
    times the mean over sequences of k3(d) = exp(d) - d - 1 with d = clamp(ref - new, +-20) on
    those means. form="token" (below) applies ratio, clip and k3 to each token.

    advantages: [N] (or [G, K], flattened to N = G*K), one per sequence, broadcast over its tokens.
    mask [N, T]: 1 on tokens the policy sampled (the caller leaves out the inserted </think>).
    grpo averages each sequence over its tokens; drgrpo sums and divides by `token_budget`
    (a constant such as thought_max + suffix_max). `ref_logps` may be None when kl_coef == 0.
    """
    if mode not in ("grpo", "drgrpo"):
        raise ValueError(f"unknown mode {mode!r}; expected 'grpo' or 'drgrpo'")
    if mode == "drgrpo" and (token_budget is None or token_budget <= 0):
        raise ValueError("drgrpo needs a positive token_budget (e.g. thought_max_tokens + suffix_max_tokens)")
    if ref_logps is None and kl_coef != 0:
        raise ValueError("ref_logps is required when kl_coef != 0")
    if form not in ("token", "sequence"):
        raise ValueError(f"unknown loss form {form!r}; expected 'token' or 'sequence'")
    mask = mask.to(new_logps.dtype)
    adv = advantages.reshape(-1).to(new_logps.dtype)
    if adv.shape[0] != new_logps.shape[0]:
        raise ValueError(f"{adv.shape[0]} advantages for {new_logps.shape[0]} sequences")
    if form == "sequence":
        return _sequence_loss(new_logps, old_logps, ref_logps, mask, adv, clip_eps, kl_coef)
    old = old_logps.detach()
    log_ratio = (new_logps - old) * mask  # zeroed on padding so exp() stays finite there
    ratio = torch.exp(log_ratio)
    a = adv[:, None]
    surr = torch.minimum(ratio * a, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * a)
    pg = _aggregate(-surr, mask, mode, token_budget)
    if ref_logps is not None:
        delta = (ref_logps.detach() - new_logps) * mask
        kl = _aggregate(torch.exp(delta) - delta - 1.0, mask, mode, token_budget)
    else:
        kl = torch.zeros((), dtype=new_logps.dtype, device=new_logps.device)
    loss = pg + kl_coef * kl
    with torch.no_grad():
        n_tok = mask.sum().clamp(min=1.0)
        clipped = ((ratio - 1.0).abs() > clip_eps).to(mask.dtype) * mask
        metrics = {
            "pg_loss": pg.item(),
            "kl": kl.item(),
            "clip_frac": (clipped.sum() / n_tok).item(),
            "ratio_mean": ((ratio * mask).sum() / n_tok).item(),
        }
    return loss, metrics


def sequence_mean_logps(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each sequence's mean log-prob over its masked tokens, [N] (0 for a sequence with none)."""
    return (logps * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1.0)


def _sequence_loss(new_logps, old_logps, ref_logps, mask, adv, clip_eps, kl_coef):
    new = sequence_mean_logps(new_logps, mask)
    old = sequence_mean_logps(old_logps.detach(), mask)
    ratio = torch.exp((new - old).clamp(-20.0, 20.0))
    surr = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    pg = -surr.mean()
    if ref_logps is not None:
        d = (sequence_mean_logps(ref_logps.detach(), mask) - new).clamp(-20.0, 20.0)
        kl = (torch.exp(d) - d - 1.0).mean()
    else:
        kl = torch.zeros((), dtype=new_logps.dtype, device=new_logps.device)
    loss = pg + kl_coef * kl
    with torch.no_grad():
        metrics = {
            "pg_loss": pg.item(),
            "kl": kl.item(),
            "clip_frac": ((ratio - 1.0).abs() > clip_eps).to(mask.dtype).mean().item(),
            "ratio_mean": ratio.mean().item(),
        }
    return loss, metrics
