"""Training-speed helpers: a chunked fused linear + cross-entropy that never holds [tokens, vocab].

With a 152k vocabulary the logits of a 2048-token row are 1.2 GB in fp32; the plain loss makes
them, upcasts them and keeps them for backward. `linear_cross_entropy` computes the loss and both
gradients chunk by chunk inside the forward (the Liger-kernel scheme, in plain torch), so peak
memory is one chunk of logits and the larger batch that frees up keeps the matrix units busy.
"""

from __future__ import annotations

import os

import torch

from thinkmid.models.rope import apply_rotary

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


# ----------------------------------------------------------------------------- fused decoder forward
# The training forward of a Llama/Qwen-style decoder with the q/k/v projections as one matmul and
# gate/up as one (weights concatenated on the fly: ~30 MB a layer, against 1-3 GB of activations).
# Wider matmuls fill more of the GPU, above all the weight gradients, whose outputs are only
# 1024 x 1024 per projection at Qwen3-0.6B's size. Rows are right-padded (sft_batches), so plain
# causal attention gives real tokens exactly what the padding mask would, on the fastest SDPA kernel.


def fused_supported(model) -> bool:
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "rotary_emb") or not hasattr(model, "lm_head"):
        return False
    layer = inner.layers[0]
    a, mlp = layer.self_attn, layer.mlp
    names = ("q_proj", "k_proj", "v_proj", "o_proj")
    if not all(hasattr(a, n) and getattr(a, n).bias is None for n in names):
        return False
    cfg = model.config
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(a, "sliding_window", None):
        return False
    rope = getattr(cfg, "rope_scaling", None) or {}
    if getattr(cfg, "attention_dropout", 0.0) or rope.get("rope_type", "default") != "default":
        return False
    return all(hasattr(mlp, n) and getattr(mlp, n).bias is None for n in ("gate_proj", "up_proj", "down_proj"))


def fused_layer(layer, x, cos, sin):
    """One decoder layer (pre-norm attention + SwiGLU MLP) on x [b, s, d], causal, no cache."""
    import torch.nn.functional as F

    a, mlp = layer.self_attn, layer.mlp
    b, s, _ = x.shape
    hd = a.head_dim
    nq, nkv = a.q_proj.out_features, a.k_proj.out_features
    h = layer.input_layernorm(x)
    qkv = F.linear(h, torch.cat((a.q_proj.weight, a.k_proj.weight, a.v_proj.weight)))
    q, k, v = qkv.split((nq, nkv, nkv), dim=-1)
    q, k, v = q.view(b, s, -1, hd), k.view(b, s, -1, hd), v.view(b, s, -1, hd)
    if hasattr(a, "q_norm"):
        q, k = a.q_norm(q), a.k_norm(k)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=a.scaling, enable_gqa=q.shape[1] != k.shape[1])
    x = x + a.o_proj(o.transpose(1, 2).reshape(b, s, -1))
    h = layer.post_attention_layernorm(x)
    gate, up = F.linear(h, torch.cat((mlp.gate_proj.weight, mlp.up_proj.weight))).chunk(2, dim=-1)
    return x + mlp.down_proj(F.silu(gate) * up)


_LAYER_FN = {}


def _layer_fn(compiled: bool):
    """fused_layer, through torch.compile when asked (one graph per layer object: guards see each)."""
    if not compiled:
        return fused_layer
    if "fn" not in _LAYER_FN:
        cfg = torch._dynamo.config
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(cfg, name):
                setattr(cfg, name, max(getattr(cfg, name), 256))
        _LAYER_FN["fn"] = torch.compile(fused_layer, dynamic=False)
    return _LAYER_FN["fn"]


def fused_hidden(model, input_ids: torch.Tensor, compiled: bool = False) -> torch.Tensor:
    """Final-norm hidden states [b, s, d] of right-padded input_ids through the fused layers."""
    inner = model.model
    x = inner.embed_tokens(input_ids)
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand(input_ids.shape[0], -1)
    cos, sin = inner.rotary_emb(x, pos)
    fn = _layer_fn(compiled)
    for layer in inner.layers:
        x = fn(layer, x, cos, sin)
    return inner.norm(x)


def causal_lm_loss_fused(
    model, input_ids: torch.Tensor, labels: torch.Tensor, chunk: int = 4096, compiled: bool = False
) -> torch.Tensor:
    """causal_lm_loss_fast through the fused layers: right-padded rows only (labels -100 on padding)."""
    h = fused_hidden(model, input_ids, compiled)
    return linear_cross_entropy(
        h[:, :-1].reshape(-1, h.shape[-1]), model.lm_head.weight, labels[:, 1:].reshape(-1), chunk
    )


def use_fast_sft(model) -> bool:
    """The fused path applies: a CUDA model of the supported shape (THINKMID_FAST_TRAIN=0 turns it off)."""
    mode = os.environ.get("THINKMID_FAST_TRAIN", "1")
    if mode == "0":
        return False
    try:
        on_cuda = next(model.parameters()).is_cuda
    except StopIteration:
        return False
    return (on_cuda or mode == "force") and fused_supported(model)  # force: the CPU tests of this path


def sft_loss_fast(
    model, input_ids: torch.Tensor, labels: torch.Tensor, bucket: int = 256, compiled: bool | None = None
) -> torch.Tensor:
    """Token-mean SFT loss of a right-padded batch through the compiled fused layers.

    The width is padded up to a multiple of `bucket` (padding has no targets and, being after every
    real token, is never attended to), so a run compiles a handful of shapes, not one per batch.
    """
    import torch.nn.functional as F

    pad = -input_ids.shape[1] % bucket
    if pad:
        input_ids = F.pad(input_ids, (0, pad), value=0)
        labels = F.pad(labels, (0, pad), value=IGNORE_INDEX)
    return causal_lm_loss_fused(model, input_ids, labels, compiled=input_ids.is_cuda if compiled is None else compiled)
