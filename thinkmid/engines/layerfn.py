"""A Qwen3 decoder layer's pieces as functions of its weights (RMSNorm, q/k/v with q/k norms and RoPE,
o_proj, SwiGLU MLP), optionally with fp8 linear layers: thinkmid.engines.treeforward compiles them once
for every layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thinkmid.models.rope import apply_rotary


def rms(x, w, eps):
    """Qwen3RMSNorm: in fp32, back to x's dtype, then the weight."""
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def lin(h, w, s):
    """h @ w.T; with `s` (w in fp8 e4m3, one scale per output row), h is quantized per token to fp8
    on the fly and multiplied by torch._scaled_mm (row-wise scales), output in bf16."""
    if s is None:
        return h @ w.T
    shape = h.shape
    h2 = h.reshape(-1, shape[-1])
    hs = (h2.abs().amax(-1, keepdim=True).float() / 448.0).clamp(min=1e-12)
    h8 = (h2.float() / hs).to(torch.float8_e4m3fn)
    out = torch._scaled_mm(h8, w.t(), scale_a=hs, scale_b=s[None], out_dtype=torch.bfloat16)
    return out.view(*shape[:-1], -1).to(h.dtype)


def qkv(x, ln, wq, wk, wv, qn, kn, cos, sin, eps: float, hd: int, sq=None, sk=None, sv=None):
    """Norm, q/k/v projections, q/k norms, RoPE: [1, heads, T, hd] each."""
    t = x.shape[1]
    h = rms(x, ln, eps)
    q = rms(lin(h, wq, sq).view(1, t, -1, hd), qn, eps).transpose(1, 2)
    k = rms(lin(h, wk, sk).view(1, t, -1, hd), kn, eps).transpose(1, 2)
    v = lin(h, wv, sv).view(1, t, -1, hd).transpose(1, 2)
    return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v


def out(x, o, wo, so=None):
    """x + o_proj(attention output [1, heads, T, hd])."""
    return x + lin(o.transpose(1, 2).reshape(1, o.shape[2], -1), wo, so)


def mlp(x, ln, wg, wu, wd, eps: float, sg=None, su=None, sd=None):
    """x + SwiGLU MLP of its norm."""
    h = rms(x, ln, eps)
    return x + lin(F.silu(lin(h, wg, sg)) * lin(h, wu, su), wd, sd)


def fp8_weights(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(w in float8 e4m3, fp32 scale per output row) with w ~= w8 * scale."""
    s = (w.abs().amax(1).float() / 448.0).clamp(min=1e-12)
    return (w.float() / s[:, None]).to(torch.float8_e4m3fn), s
