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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from thinkmid.models.rope import apply_rotary

BLOCK = 128  # FlexAttention block size (query and key)
BUCKET = 16384  # past `pad_to`, the attention length is padded to a multiple of this


@dataclass
class Packed:
    ids: torch.Tensor  # [T] token ids
    pos: torch.Tensor  # [T] RoPE positions (along each token's root-to-node path)
    node: torch.Tensor  # [T] node index of each token
    depth: torch.Tensor  # [T] depth of that node (roots: 0)
    anc: torch.Tensor  # [D, T] anc[d, t] = the depth-d ancestor of t's node (-1 below its depth)
    spans: list[tuple[int, int]]  # per node: [start, end) in the packed sequence
    paths: list[list[int]]  # per node: its ancestors from the root, itself last
    rows: torch.Tensor  # [n_out] packed rows whose logits are wanted
    ends: torch.Tensor | None = None  # [T] end of the token's node's subtree (None: not in preorder)

    @property
    def tokens(self) -> int:
        return int(self.ids.numel())


def pack(nodes: list[tuple[int, list[int]]], out_nodes: list[int]) -> Packed:
    """nodes: (parent index or -1, token ids), parents before children; out_nodes: nodes whose LAST
    token's logits are wanted, in the order wanted."""
    ids, pos, node, depth, spans, paths, ends = [], [], [], [], [], [], []
    cur = 0
    for i, (parent, toks) in enumerate(nodes):
        if not toks:
            raise ValueError(f"node {i} has no tokens")
        if parent >= i:
            raise ValueError(f"node {i}: parent {parent} does not come before it")
        p0 = ends[parent] if parent >= 0 else 0
        paths.append((paths[parent] if parent >= 0 else []) + [i])
        spans.append((cur, cur + len(toks)))
        ends.append(p0 + len(toks))
        ids.extend(toks)
        pos.extend(range(p0, p0 + len(toks)))
        node.extend([i] * len(toks))
        depth.extend([len(paths[-1]) - 1] * len(toks))
        cur += len(toks)
    D = max(len(p) for p in paths)
    anc = np.full((D, cur), -1, dtype=np.int64)
    for i, (s, e) in enumerate(spans):
        anc[: len(paths[i]), s:e] = np.asarray(paths[i])[:, None]
    as_t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.int64))  # noqa: E731
    rows = as_t([spans[n][1] - 1 for n in out_nodes])
    ends = _subtree_ends(spans, paths)
    ends = None if ends is None else as_t(np.repeat(ends, [e - s for s, e in spans]))
    return Packed(as_t(ids), as_t(pos), as_t(node), as_t(depth), torch.from_numpy(anc), spans, paths, rows, ends)


def _subtree_ends(spans, paths) -> list[int] | None:
    """Per node, the end of its subtree's tokens when every subtree is one contiguous range that starts
    at the node itself (depth-first preorder), else None."""
    end, size = [e for _, e in spans], [e - s for s, e in spans]
    for i in range(len(spans) - 1, -1, -1):  # children come after parents: fold each into its ancestors
        for a in paths[i][:-1]:
            end[a] = max(end[a], spans[i][1])
            size[a] += spans[i][1] - spans[i][0]
    if any(end[i] - s != size[i] for i, (s, _) in enumerate(spans)):
        return None
    return end


def visible(q, k, node, depth, anc):
    """Token k is visible from token q: k is not after q and k's node is on q's root-to-node path."""
    return (k <= q) & (anc[depth[k], q] == node[k])


def visible_interval(q, k, ends):
    """`visible` for a preorder packing: k's node's subtree, [start, ends[k]), holds q, and k <= q."""
    return (k <= q) & (q < ends[k])


def dense_mask(p: Packed) -> torch.Tensor:
    t = torch.arange(p.tokens)
    return visible(t[:, None], t[None, :], p.node, p.depth, p.anc)


def _pad_nodes(p: Packed, length: int, block: int) -> list[tuple[int, int]]:
    """Spans of the padding up to `length`: one root node per block, so a padding query block only
    ever reads its own block (padding costs no attention beyond the diagonal)."""
    return [
        (max(p.tokens, b * block), (b + 1) * block)
        for b in range(p.tokens // block, length // block)
        if (b + 1) * block > p.tokens
    ]


def kv_blocks(p: Packed, length: int, block: int = BLOCK):
    """For each query block of the sequence padded to `length` (a multiple of `block`): the key
    blocks that hold any token visible from it, split into partial blocks (the mask is applied
    inside) and full blocks (every key visible from every query: a strict ancestor of every node in
    the query block, or an earlier block of the one node the query block lies in), which skip the mask.
    Returns (counts [nq], indices [nq, nq]) for partial, then for full blocks."""
    nq = length // block
    pads = _pad_nodes(p, length, block)
    spans = p.spans + pads
    paths = p.paths + [[len(p.spans) + i] for i in range(len(pads))]
    starts = np.array([s for s, _ in spans])
    idx, fidx = np.zeros((nq, nq), dtype=np.int32), np.zeros((nq, nq), dtype=np.int32)
    cnt, fcnt = np.zeros(nq, dtype=np.int32), np.zeros(nq, dtype=np.int32)

    def nodes_in(b0):  # node indices overlapping block b0
        first = int(np.searchsorted(starts, b0 * block, "right")) - 1
        last = int(np.searchsorted(starts, (b0 + 1) * block - 1, "right")) - 1
        return range(first, last + 1)

    for qb in range(nq):
        qn = nodes_in(qb)
        seen = set()
        common = None  # strict ancestors shared by every node of this query block
        for n in qn:
            anc = set(paths[n][:-1])
            common = anc if common is None else common & anc
            for a in paths[n][:-1]:
                s, e = spans[a]
                seen.update(range(s // block, (e - 1) // block + 1))
            s, e = spans[n]
            seen.update(range(s // block, (min(e, (qb + 1) * block) - 1) // block + 1))
        part, full = [], []
        for kb in sorted(seen):
            kn = nodes_in(kb)
            if all(n in common for n in kn) or (len(qn) == 1 and list(kn) == list(qn) and kb < qb):
                full.append(kb)
            else:
                part.append(kb)
        cnt[qb], fcnt[qb] = len(part), len(full)
        idx[qb, : len(part)], fidx[qb, : len(full)] = part, full
    t = torch.from_numpy
    return t(cnt), t(idx), t(fcnt), t(fidx)


def padded(p: Packed, length: int, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """node/depth/anc over `length` tokens, the padding as the root nodes of _pad_nodes."""
    node = torch.cat([p.node, torch.empty(length - p.tokens, dtype=torch.long)])
    depth = torch.cat([p.depth, torch.zeros(length - p.tokens, dtype=torch.long)])
    anc = torch.cat([p.anc, torch.full((p.anc.shape[0], length - p.tokens), -1)], 1)
    for i, (s, e) in enumerate(_pad_nodes(p, length, block)):
        node[s:e] = len(p.spans) + i
        anc[0, s:e] = len(p.spans) + i
    return node, depth, anc


def padded_ends(p: Packed, length: int, block: int = BLOCK) -> torch.Tensor:
    """ends over `length` tokens: a padding token's subtree is its own padding node."""
    ends = torch.cat([p.ends, torch.empty(length - p.tokens, dtype=torch.long)])
    for s, e in _pad_nodes(p, length, block):
        ends[s:e] = e
    return ends


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


def _rms(x, w, eps):
    """Qwen3RMSNorm: in fp32, back to x's dtype, then the weight."""
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _lin(h, w, s):
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


def _qkv(x, ln, wq, wk, wv, qn, kn, cos, sin, eps: float, hd: int, sq=None, sk=None, sv=None):
    """Norm, q/k/v projections, q/k norms, RoPE: [1, heads, T, hd] each."""
    t = x.shape[1]
    h = _rms(x, ln, eps)
    q = _rms(_lin(h, wq, sq).view(1, t, -1, hd), qn, eps).transpose(1, 2)
    k = _rms(_lin(h, wk, sk).view(1, t, -1, hd), kn, eps).transpose(1, 2)
    v = _lin(h, wv, sv).view(1, t, -1, hd).transpose(1, 2)
    return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v


def _out(x, o, wo, so=None):
    """x + o_proj(attention output [1, heads, T, hd])."""
    return x + _lin(o.transpose(1, 2).reshape(1, o.shape[2], -1), wo, so)


def _mlp(x, ln, wg, wu, wd, eps: float, sg=None, su=None, sd=None):
    """x + SwiGLU MLP of its norm."""
    h = _rms(x, ln, eps)
    return x + _lin(F.silu(_lin(h, wg, sg)) * _lin(h, wu, su), wd, sd)


def fp8_weights(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(w in float8 e4m3, fp32 scale per output row) with w ~= w8 * scale."""
    s = (w.abs().amax(1).float() / 448.0).clamp(min=1e-12)
    return (w.float() / s[:, None]).to(torch.float8_e4m3fn), s


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
        self._qkv_fn, self._mlp_fn, self._out_fn = _qkv, _mlp, _out
        self.w8 = None  # per layer: {name: (fp8 weight, row scales)}: fp8 linear layers (CUDA, sm89+)
        if fp8:
            if not self.functional:
                raise ValueError("fp8 needs the functional (Qwen3) layer path")
            names = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
            self.w8 = [
                {n: fp8_weights(getattr(L.self_attn if n[0] in "qkvo" else L.mlp, n).weight.detach()) for n in names}
                for L in self.layers
            ]
        if self.dev.type == "cuda":
            dc = torch._dynamo.config  # several judges / shapes in one process: room for their graphs
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(dc, name):
                    setattr(dc, name, max(getattr(dc, name), 64))
        if self.functional and self.dev.type == "cuda" and compile:
            if not _COMPILED:  # one compiled graph of each piece for the process (dynamic in T)
                for k, f in (("qkv", _qkv), ("mlp", _mlp), ("out", _out)):
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
