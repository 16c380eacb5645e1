"""Training-speed helpers: a chunked fused linear + cross-entropy that never holds [tokens, vocab].

With a 152k vocabulary the logits of a 2048-token row are 1.2 GB in fp32; the plain loss makes
them, upcasts them and keeps them for backward. `linear_cross_entropy` computes the loss and both
gradients chunk by chunk inside the forward (the Liger-kernel scheme, in plain torch), so peak
memory is one chunk of logits and the larger batch that frees up keeps the matrix units busy.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def _ce_chunk(logits: torch.Tensor, tc: torch.Tensor, vc: torch.Tensor, n: torch.Tensor):
    """(summed CE of the valid rows, d loss / d logits in logits' dtype) for one chunk of logits."""
    x = logits.float()
    lse = torch.logsumexp(x, -1)
    t = torch.where(vc, tc, 0)
    tgt = x.gather(-1, t[:, None]).squeeze(-1)
    loss = ((lse - tgt) * vc).sum()
    onehot = torch.arange(x.shape[-1], device=x.device)[None, :] == t[:, None]
    p = (torch.exp(x - lse[:, None]) - onehot.float()) * (vc.float() / n)[:, None]
    return loss, p.to(logits.dtype)


_FUSED = {}


def _fused_chunk():
    """`_ce_chunk` through torch.compile (one read of the logits, one write of the gradient instead
    of ~10 fp32 passes); None where compiling is unavailable or disabled (THINKMID_FUSED_CE=0)."""
    import os

    if os.environ.get("THINKMID_FUSED_CE", "1") == "0":
        return None
    if "fn" not in _FUSED:
        try:
            _FUSED["fn"] = torch.compile(_ce_chunk, dynamic=False)
        except Exception:  # noqa: BLE001  # pragma: no cover - toolchain dependent
            _FUSED["fn"] = None
    return _FUSED["fn"]


class _LinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, w, targets, chunk):
        valid = targets != IGNORE_INDEX
        n = valid.sum().clamp(min=1).float()
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if w.requires_grad else None
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        fused = _fused_chunk() if h.is_cuda else None
        for s in range(0, h.shape[0], chunk):
            hc, tc, vc = h[s : s + chunk], targets[s : s + chunk], valid[s : s + chunk]
            if fused is not None:  # CUDA: one compiled pass over the bf16 logits (same arithmetic)
                ls, p = fused(hc @ w.t(), tc, vc, n)
                loss += ls
            else:
                logits = (hc @ w.t()).float()
                lse = torch.logsumexp(logits, -1)
                t = torch.where(vc, tc, 0)
                tgt = logits.gather(-1, t[:, None]).squeeze(-1)
                loss += ((lse - tgt) * vc).sum()
                p = torch.softmax(logits, -1)  # d loss / d logits = (softmax - onehot) / n on valid rows
                p.scatter_add_(-1, t[:, None], -torch.ones_like(p[:, :1]))
                p *= (vc.float() / n)[:, None]
                p = p.to(h.dtype)
            grad_h[s : s + chunk] = p @ w
            if grad_w is not None:
                grad_w.add_(p.t() @ hc)
        ctx.save_for_backward(grad_h, grad_w if grad_w is not None else torch.empty(0))
        ctx.has_w = grad_w is not None
        return loss / n

    @staticmethod
    def backward(ctx, g):
        grad_h, grad_w = ctx.saved_tensors
        gw = (grad_w * g).to(grad_h.dtype) if ctx.has_w else None
        return grad_h * g.to(grad_h.dtype), gw, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int = 4096):
    """Mean CE of softmax(hidden @ weight.T) against targets (-100 = ignored); hidden [N, D], targets [N]."""
    return _LinearCE.apply(hidden, weight, targets, chunk)


def causal_lm_loss_fast(model, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask=None, chunk: int = 4096):
    """Causal-LM loss (HF label convention: shift inside) without materialising the full logits."""
    out = model.model(input_ids=input_ids, attention_mask=attention_mask)
    h = out.last_hidden_state[:, :-1].reshape(-1, out.last_hidden_state.shape[-1])
    t = labels[:, 1:].reshape(-1)
    return linear_cross_entropy(h, model.lm_head.weight, t, chunk)
