"""Packing a forest of token blocks into one sequence, and its tree attention mask.

A batch is a list of nodes (blocks of token ids), each with a parent that comes before it. Nodes are
packed one after the other into one sequence; a token sees its ancestors' tokens and the tokens of
its own node up to itself, nothing else (a tree attention mask). RoPE positions continue along
each root-to-node path, so the last token of a node gets the hidden state that a plain causal
forward of its whole path would give. When the nodes are packed in depth-first preorder, each
node's subtree is one contiguous token range and the mask rule is `visible_interval`; `kv_blocks`
turns the node spans into FlexAttention's block-sparse lists (thinkmid.engines.treeforward runs them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BLOCK = 128  # FlexAttention block size (query and key)


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
