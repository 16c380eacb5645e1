"""Sync-free sampling for the static decoder: top-p by a many-way search on the tempered logits (several
thresholds per pass, no sort), then a Gumbel-max draw; log-probs are of the raw model."""

from __future__ import annotations

import torch

NEG = float("-inf")


def nucleus_sample(logits: torch.Tensor, temp: torch.Tensor, top_p: torch.Tensor, passes: int = 6, ways: int = 8):
    """(tokens, raw log-probs) for logits [B, V]; temp/top_p [B] (temp <= 0: greedy).

    The top-p threshold is found by a `ways`-ary search over tempered logits relative to the row max
    (range [-40, 0], resolution 40 / ways**passes): kept = {z >= lo}, a superset of the exact nucleus
    by at most the tokens in one bin. No sort, no host sync, fixed shapes.
    """
    x = logits.float()
    m = x.amax(-1, keepdim=True)
    lse = m.squeeze(-1) + (x - m).exp().sum(-1).log()
    inv_t = 1.0 / temp.clamp(min=1e-5)
    z = (x - m) * inv_t[:, None]
    ez = z.exp()
    tot = ez.sum(-1)
    need = top_p * tot
    lo = torch.full_like(tot, -40.0)
    hi = torch.zeros_like(tot)
    # On CPU a host check is free: skip the search when no row samples from a nucleus.
    searching = x.device.type != "cpu" or bool(((top_p < 1.0) & (temp > 0)).any())
    for _ in range(passes if searching else 0):
        width = (hi - lo) / ways
        new_lo = lo
        for j in range(1, ways):
            t = lo + width * j
            mass = torch.where(z >= t[:, None], ez, 0.0).sum(-1)
            new_lo = torch.where(mass >= need, t, new_lo)
        lo, hi = new_lo, torch.minimum(new_lo + width, hi)
    lo = torch.where(top_p >= 1.0, NEG, lo)
    gumbel = -torch.log(-torch.log(torch.rand_like(z).clamp(min=1e-20)))
    score = torch.where(z >= lo[:, None], z + gumbel, NEG)
    tok = torch.where(temp <= 0, x.argmax(-1), score.argmax(-1))
    lp = x.gather(-1, tok[:, None]).squeeze(-1) - lse
    return tok, lp
