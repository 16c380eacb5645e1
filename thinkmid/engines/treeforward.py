"""One forward over a forest of token blocks: prompts that share prefixes, each shared block computed once.

A batch is a list of nodes (blocks of token ids), each with a parent that comes before it. Nodes are
packed one after the other into one sequence; a token sees its ancestors' tokens and the tokens of
its own node up to itself, nothing else (a tree attention mask). RoPE positions continue along
each root-to-node path, so the last token of a node gets the hidden state that a plain causal
forward of its whole path would give. Only the requested rows go through the final norm and the
LM head (no logits anywhere else).

Attention: on CUDA, FlexAttention (compiled) with a block-sparse mask built from the node spans, so
a key block that no query of a query block can see is never read; elsewhere (the CPU tests) SDPA
with the dense token mask. Both use the same mask rule (`visible`). Inside the key blocks that are
only partly visible, flex evaluates the rule per (query, key): when the nodes are packed in
depth-first preorder (the judge's batches are), each node's subtree is one contiguous token range,
so the rule is `k <= q < end[k]` (`visible_interval`, one load per key column) instead of a lookup
in the [depth, token] ancestor table per element (`mask='ancestors'`, any parent-first order).
The linear layers see exactly the packed tokens (no padding); attention pads to a fixed length (padding blocks only see
themselves), so one compiled kernel serves every batch of a judge.
The packing and the mask rule live in thinkmid.engines.treepack; the Qwen3 layer functions in
thinkmid.engines.layerfn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thinkmid.engines import layerfn
from thinkmid.engines.treepack import BLOCK, Packed, dense_mask, kv_blocks, padded, padded_ends
from thinkmid.models.rope import apply_rotary

BUCKET = 16384  # past `pad_to`, the attention length is padded to a multiple of this

_MASKS: dict = {}


def _mask_buffers(dev: str, length: int, depth: int):
    """Persistent node/depth/ancestor buffers and the one mask_mod reading them, per (device, length,
    depth): batches refill the buffers, so the compiled attention kernel is traced once per shape.
    depth 0: the one subtree-end buffer of `visible_interval`."""
    key = (dev, length, depth)
    if key not in _MASKS and depth == 0:
        eb = torch.empty(length, dtype=torch.long, device=dev)

        def interval_mod(b, h, q, k):  # `visible_interval`: one load per key
            return (k <= q) & (q < eb[k])

        _MASKS[key] = ((eb,), interval_mod)
    if key not in _MASKS:
        nb = torch.empty(length, dtype=torch.long, device=dev)
        db = torch.empty(length, dtype=torch.long, device=dev)
        ab = torch.empty(depth * length, dtype=torch.long, device=dev)

        def mask_mod(b, h, q, k):  # `visible`, with the ancestor table flattened
            return (k <= q) & (ab[db[k] * length + q] == nb[k])

        _MASKS[key] = ((nb, db, ab), mask_mod)
    return _MASKS[key]


_FLEX: dict = {}
_COMPILED: dict = {}


def _flex_attention(cuda: bool):
    if cuda not in _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX[cuda] = torch.compile(flex_attention, dynamic=False) if cuda else flex_attention
    return _FLEX[cuda]


def _merge(cnt, idx, fcnt, fidx):
    """Partial + full block lists as partial lists only (the mask is applied everywhere)."""
    n = idx.shape[-1]
    both = torch.cat([idx, fidx], -1)
    ar = torch.arange(n, device=idx.device)
    take = torch.cat([ar < cnt[..., None], ar < fcnt[..., None]], -1)
    key = torch.where(take, both, n + 1)
    merged = key.sort(-1).values[..., :n]
    return cnt + fcnt, torch.where(merged > n, 0, merged).to(idx.dtype), None, None


class TreeForward:
    """Runs a Qwen/Llama-style decoder (see fastgen.supported) over a Packed forest."""

    def __init__(
        self,
        model,
        attn: str | None = None,
        mlp_chunk: int = 65536,
        compile: bool = True,
        full_blocks: bool = True,
        fp8: bool = False,
        mask: str = "interval",
    ):
        """attn: 'flex' (CUDA default) or 'dense' (SDPA with the full token mask; the CPU default).
        mask (flex): 'interval' (`visible_interval` where the packing is in preorder, else the
        ancestor table) or 'ancestors' (always the table; the path before the interval rule)."""
        if mask not in ("interval", "ancestors"):
            raise ValueError(f"mask must be interval or ancestors, got {mask!r}")
        self.mask = mask
        self.model, self.inner = model, model.model
        self.layers = list(self.inner.layers)
        cfg = model.config
        a = self.layers[0].self_attn
        self.hd = getattr(a, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.h, self.kvh = cfg.num_attention_heads, cfg.num_key_value_heads
        self.scale = getattr(a, "scaling", self.hd**-0.5)
        self.dev = next(model.parameters()).device
        self.attn = attn or ("flex" if self.dev.type == "cuda" else "dense")
        self.mlp_chunk, self.full_blocks = mlp_chunk, full_blocks
        # Qwen3 layers (no projection biases, q/k norms, SiLU) run as functions of their weights, so
        # one compiled graph (dynamic in T) serves all layers on CUDA; other models use their modules.
        self.functional = all(
            hasattr(L.self_attn, "q_norm")
            and getattr(L.self_attn.q_proj, "bias", None) is None
            and getattr(L.mlp, "act_fn", None).__class__.__name__ == "SiLUActivation"
            for L in self.layers
        )
        self.eps = getattr(cfg, "rms_norm_eps", 1e-6)
        self._qkv_fn, self._mlp_fn, self._out_fn = layerfn.qkv, layerfn.mlp, layerfn.out
        self.w8 = None  # per layer: {name: (fp8 weight, row scales)}: fp8 linear layers (CUDA, sm89+)
        if fp8:
            if not self.functional:
                raise ValueError("fp8 needs the functional (Qwen3) layer path")
            names = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
            self.w8 = [
                {
                    n: layerfn.fp8_weights(getattr(L.self_attn if n[0] in "qkvo" else L.mlp, n).weight.detach())
                    for n in names
                }
                for L in self.layers
            ]
        if self.dev.type == "cuda":
            dc = torch._dynamo.config  # several judges / shapes in one process: room for their graphs
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(dc, name):
                    setattr(dc, name, max(getattr(dc, name), 64))
        if self.functional and self.dev.type == "cuda" and compile:
            if not _COMPILED:  # one compiled graph of each piece for the process (dynamic in T)
                for k, f in (("qkv", layerfn.qkv), ("mlp", layerfn.mlp), ("out", layerfn.out)):
                    _COMPILED[k] = torch.compile(f, dynamic=True)
            self._qkv_fn, self._mlp_fn, self._out_fn = _COMPILED["qkv"], _COMPILED["mlp"], _COMPILED["out"]

    def prepare(self, p: Packed, pad_to: int | None = None) -> dict:
        """The host-side work of a batch (masks, block lists), before any device work. Flex pads to
        `pad_to` (or, past it, to the next multiple of BUCKET): one compiled kernel for a judge's batches."""
        if self.attn == "dense":
            return {"p": p, "length": p.tokens, "mask": dense_mask(p)}
        up = lambda n, m: -(-n // m) * m  # noqa: E731
        length = up(pad_to, BLOCK) if pad_to and p.tokens <= pad_to else up(p.tokens, BUCKET if pad_to else BLOCK)
        blocks = kv_blocks(p, length)
        if self.mask == "interval" and p.ends is not None:
            return {"p": p, "length": length, "ends": padded_ends(p, length), "blocks": blocks}
        node, depth, anc = padded(p, length)
        return {"p": p, "length": length, "node": node, "depth": depth, "anc": anc, "blocks": blocks}

    def _mask(self, prep: dict):
        """(dense mask or block mask) on the device."""
        dev, length = self.dev, prep["length"]
        if self.attn == "dense":
            return prep["mask"].to(dev)[None, None]
        from torch.nn.attention.flex_attention import BlockMask

        if "ends" in prep:
            (eb,), mask_mod = _mask_buffers(str(dev), length, 0)
            eb.copy_(prep["ends"])  # stream-ordered: after the previous batch's kernels
        else:
            (nb, db, ab), mask_mod = _mask_buffers(str(dev), length, prep["anc"].shape[0])
            nb.copy_(prep["node"])  # stream-ordered: after the previous batch's kernels
            db.copy_(prep["depth"])
            ab.copy_(prep["anc"].reshape(-1))
        cnt, idx, fcnt, fidx = (x[None, None].to(dev) for x in prep["blocks"])
        if not self.full_blocks:  # every block through the mask (for A/B runs)
            cnt, idx, fcnt, fidx = _merge(cnt, idx, fcnt, fidx)
        return BlockMask.from_kv_blocks(
            cnt, idx, fcnt, fidx, BLOCK_SIZE=BLOCK, mask_mod=mask_mod, seq_lengths=(length, length)
        )

    def _attend(self, q, k, v, mask, length):
        t = q.shape[2]
        if self.attn == "dense":
            rep = self.h // self.kvh
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        pad = (0, 0, 0, length - t)
        q, k, v = F.pad(q, pad), F.pad(k, pad), F.pad(v, pad)
        flex = _flex_attention(self.dev.type == "cuda")
        o = flex(q, k, v, block_mask=mask, scale=self.scale, enable_gqa=self.h != self.kvh)
        return o[:, :, :t]

    def _mlp(self, layer, x, layer_i: int = 0):
        """x + MLP(norm(x)), over token chunks: the intermediate activations stay bounded."""
        out = torch.empty_like(x)
        m, ln = layer.mlp, layer.post_attention_layernorm
        for s in range(0, x.shape[1], self.mlp_chunk):
            xs = x[:, s : s + self.mlp_chunk]
            if self.w8 is not None:
                w = self.w8[layer_i]
                (g, sg), (u, su), (d, sd) = w["gate_proj"], w["up_proj"], w["down_proj"]
                ys = self._mlp_fn(xs, ln.weight, g, u, d, self.eps, sg, su, sd)
            elif self.functional:
                ys = self._mlp_fn(xs, ln.weight, m.gate_proj.weight, m.up_proj.weight, m.down_proj.weight, self.eps)
            else:
                ys = xs + m(ln(xs))
            out[:, s : s + self.mlp_chunk] = ys
        return out

    def _project(self, layer, x, cos, sin, layer_i: int = 0):
        a = layer.self_attn
        if self.w8 is not None:
            w = self.w8[layer_i]
            (q, sq), (k, sk), (v, sv) = w["q_proj"], w["k_proj"], w["v_proj"]
            return self._qkv_fn(
                x,
                layer.input_layernorm.weight,
                q,
                k,
                v,
                a.q_norm.weight,
                a.k_norm.weight,
                cos,
                sin,
                self.eps,
                self.hd,
                sq,
                sk,
                sv,
            )
        if self.functional:
            return self._qkv_fn(
                x,
                layer.input_layernorm.weight,
                a.q_proj.weight,
                a.k_proj.weight,
                a.v_proj.weight,
                a.q_norm.weight,
                a.k_norm.weight,
                cos,
                sin,
                self.eps,
                self.hd,
            )
        t, hd = x.shape[1], self.hd
        hn = layer.input_layernorm(x)
        q = a.q_proj(hn).view(1, t, -1, hd)
        k = a.k_proj(hn).view(1, t, -1, hd)
        if hasattr(a, "q_norm"):
            q, k = a.q_norm(q), a.k_norm(k)
        v = a.v_proj(hn).view(1, t, -1, hd).transpose(1, 2)
        return apply_rotary(q.transpose(1, 2), cos, sin), apply_rotary(k.transpose(1, 2), cos, sin), v

    def __call__(self, p: Packed, pad_to: int | None = None) -> torch.Tensor:
        """Float32 logits [len(p.rows), vocab] at the requested rows."""
        return self.run(self.prepare(p, pad_to))

    @torch.no_grad()
    def run(self, prep: dict) -> torch.Tensor:
        dev, p, length = self.dev, prep["p"], prep["length"]
        mask = self._mask(prep)
        ids, pos = p.ids.to(dev)[None], p.pos.to(dev)[None]
        x = self.inner.embed_tokens(ids)
        cos, sin = self.inner.rotary_emb(x, pos)
        t = ids.shape[1]
        for i, layer in enumerate(self.layers):
            q, k, v = self._project(layer, x, cos, sin, i)
            o = self._attend(q, k, v, mask, length)
            if self.w8 is not None:
                x = self._out_fn(x, o, *self.w8[i]["o_proj"])
            elif self.functional:
                x = self._out_fn(x, o, layer.self_attn.o_proj.weight)
            else:
                x = x + layer.self_attn.o_proj(o.transpose(1, 2).reshape(1, t, -1))
            del q, k, v, o
            x = self._mlp(layer, x, i)
        h = self.inner.norm(x[0, p.rows.to(dev)])
        return self.model.lm_head(h).float()
