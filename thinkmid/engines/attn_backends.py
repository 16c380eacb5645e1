"""The static decoder's attention backends besides the Triton kernel (thinkmid.engines.decode_attn): plain
math in fp32 and torch's efficient SDPA kernel with its log-sum-exp, and the checks that a backend runs
on this device and agrees with the math."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)
NEG = float("-inf")


def attn_math(q, k, v, bias, scale):
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale + bias
    lse = torch.logsumexp(s, -1)
    o = torch.matmul(torch.exp(s - lse[..., None]), v.float())
    return o, lse


def attn_eff(q, k, v, bias, scale):
    n, h, l, _ = q.shape
    b = bias.to(q.dtype).expand(n, h, l, k.shape[2])
    o, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, b, True, 0.0, False, scale=scale)[:2]
    return o.float(), lse[..., :l].float()


def triton_ok(dev, dtype, hd: int, scale: float) -> bool:
    """The Triton decode kernel runs here and agrees with `attn_math` on a small masked case."""
    from thinkmid.engines import decode_attn

    if not decode_attn.available() or hd & (hd - 1):
        return False
    try:
        g = torch.Generator(device=dev).manual_seed(0)
        q, k, v = (torch.randn(2, 2, n, hd, device=dev, generator=g, dtype=dtype) for n in (3, 80, 80))
        bias = torch.zeros(2, 80, device=dev)
        bias[0, :50] = NEG
        n = torch.tensor([70], device=dev)
        o1, l1 = decode_attn.decode_attention(q, k, v, scale, bias=bias, length=n)
        o2, l2 = attn_math(q, k[:, :, :70], v[:, :, :70], bias[:, None, None, :70], scale)
        ok = (o1 - o2).abs().max().item() < 3e-2 and (l1 - l2).abs().max().item() < 1e-2
    except Exception as e:  # noqa: BLE001  # pragma: no cover - toolchain dependent
        log.warning("Triton decode attention unavailable (%s)", e)
        return False
    if not ok:  # pragma: no cover
        log.warning("Triton decode attention disagrees with math attention; not used")
    return ok


def eff_ok(dev, dtype, hd: int, scale: float) -> bool:
    """The efficient SDPA kernel runs here and agrees with `attn_math` on a small masked case."""
    try:
        g = torch.Generator(device=dev).manual_seed(0)
        q, k, v = (torch.randn(2, 2, n, hd, device=dev, generator=g, dtype=dtype) for n in (32, 48, 48))
        bias = torch.zeros(2, 1, 1, 48, device=dev)
        bias[0, ..., 40:] = NEG
        o1, l1 = attn_eff(q, k, v, bias, scale)
        o2, l2 = attn_math(q, k, v, bias, scale)
        ok = (o1 - o2).abs().max().item() < 3e-2 and (l1 - l2).abs().max().item() < 1e-2
    except Exception as e:  # pragma: no cover
        log.warning("efficient attention unavailable (%s); math attention", e)
        return False
    if not ok:  # pragma: no cover
        log.warning("efficient attention disagrees with math attention; using math attention")
    return ok
