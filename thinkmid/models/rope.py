"""Rotary position embedding arithmetic shared by the fast decoder and the fused training forward."""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(-x2, x1) for x = (x1, x2) split on the last dim, as Llama/Qwen's rotary embedding uses it."""
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [b, heads, s, d] with cos/sin [b, s, d] from the model's rotary_emb."""
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * c + rotate_half(x) * s
