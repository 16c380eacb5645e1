"""Teacher-forced log-probs of completion tokens given their prompts, in batched forward passes.

Rows are `prompt + completion`, right-padded with an attention mask, so each real token sees exactly
what it would see alone (causal attention, positions 0..n-1): the batched result matches the
per-sample one. Only the logits from the first completion position on are materialised.
"""

from __future__ import annotations

import inspect

import torch


def _supports_logits_to_keep(model) -> bool:
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module  # DDP's forward is (*args, **kwargs): ask the wrapped model
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _forward_chunk(model, prompts, comps, pad_id, device, keep_ok: bool) -> torch.Tensor:
    """Log-probs [b, t_max] (0 at padding) for one micro-batch."""
    lens = [len(p) + len(c) for p, c in zip(prompts, comps)]
    width = max(lens)
    t_max = max(len(c) for c in comps)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, (p, c) in enumerate(zip(prompts, comps)):
        row = list(p) + list(c)
        ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        attn[r, : len(row)] = 1
    ids, attn = ids.to(device), attn.to(device)
    out = torch.zeros((len(prompts), t_max), dtype=torch.float32, device=device)
    if t_max == 0:
        return out
    # Logits needed only from the earliest position that predicts a completion token.
    first = min(len(p) for p in prompts) - 1
    kwargs = {"input_ids": ids, "attention_mask": attn, "use_cache": False}
    if keep_ok:
        kwargs["logits_to_keep"] = width - first
        logits = model(**kwargs).logits  # [b, width - first, V]
        offset = first
    else:
        logits = model(**kwargs).logits
        offset = 0
    # Position of the logit that predicts completion token j of row r: len(p_r) - 1 + j - offset.
    j = torch.arange(t_max, device=device)
    starts = torch.tensor([len(p) - 1 - offset for p in prompts], device=device)
    clens = torch.tensor([len(c) for c in comps], device=device)
    valid = j[None, :] < clens[:, None]
    pos = (starts[:, None] + j[None, :]).clamp(max=logits.shape[1] - 1)
    targets = torch.zeros((len(prompts), t_max), dtype=torch.long)
    for r, c in enumerate(comps):
        if c:
            targets[r, : len(c)] = torch.tensor(c, dtype=torch.long)
    targets = targets.to(device)  # built on the host: one copy, not one per row
    # logit[target] - logsumexp, indexed in place: no [b, t, V] copy or full log_softmax is kept.
    lse = torch.logsumexp(logits.float(), dim=-1)  # [b, W]
    rows = torch.arange(len(prompts), device=device)[:, None]
    tok = logits[rows, pos, targets].float() - lse[rows, pos]
    return torch.where(valid, tok, out)


def sequence_logprobs(
    model,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    pad_id: int,
    loss_mask: list[list[int]] | None = None,
    micro_batch: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log p(completion_t | prompt, completion_<t) for each row.

    Returns (token_logps [B, T] float32, 0 at padding; mask [B, T] float32), T = longest completion.
    `mask` is 1 on real completion tokens, times `loss_mask` (same shape as completion_ids) if given.
    Differentiable: wrap in `torch.no_grad()` for old/reference log-probs.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token (the first completion token needs context)")
    if loss_mask is not None:
        if len(loss_mask) != len(completion_ids) or any(len(m) != len(c) for m, c in zip(loss_mask, completion_ids)):
            raise ValueError("loss_mask must have the same shape as completion_ids")
    device = _model_device(model)
    n = len(completion_ids)
    t_max = max((len(c) for c in completion_ids), default=0)
    mask = torch.zeros((n, t_max), dtype=torch.float32)
    for r, c in enumerate(completion_ids):
        if c:
            m = loss_mask[r] if loss_mask is not None else [1] * len(c)
            mask[r, : len(c)] = torch.tensor(m, dtype=torch.float32)
    mask = mask.to(device)
    if n == 0 or t_max == 0:
        return torch.zeros((n, t_max), dtype=torch.float32, device=device), mask
    keep_ok = _supports_logits_to_keep(model)
    step = max(1, micro_batch)
    parts = []
    for s in range(0, n, step):
        chunk = _forward_chunk(model, prompt_ids[s : s + step], completion_ids[s : s + step], pad_id, device, keep_ok)
        if chunk.shape[1] < t_max:  # each chunk is as wide as its own longest completion
            chunk = torch.nn.functional.pad(chunk, (0, t_max - chunk.shape[1]))
        parts.append(chunk)
    return torch.cat(parts, dim=0), mask
