"""Overlap of knowledge-neuron sets (boolean masks [layers, width]) between arms: Jaccard overall and
per layer, next to the overlap two independent random sets of the same sizes would have by chance
(each arm's gates start from their own seeded init, so excess over chance comes from training)."""

from __future__ import annotations

from itertools import combinations

import torch


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """|a & b| / |a | b|; None when both sets are empty."""
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else None


def chance_jaccard(n_a: int, n_b: int, total: int) -> float | None:
    """Expected Jaccard of independent uniform random sets of sizes n_a and n_b out of `total`
    (first-order: expected intersection over expected union)."""
    if total <= 0 or n_a + n_b == 0:
        return None
    inter = n_a * n_b / total
    return inter / (n_a + n_b - inter)


def overlap_report(masks: dict[str, torch.Tensor]) -> dict:
    """Every pair of arms (in the given order): overall and per-layer Jaccard, with chance levels."""
    pairs = {}
    for x, y in combinations(masks, 2):
        a, b = masks[x].bool(), masks[y].bool()
        if a.shape != b.shape:
            continue  # arms of different architectures have no common neuron index
        per_layer = [jaccard(a[i], b[i]) for i in range(a.shape[0])]
        chance_layer = [chance_jaccard(int(a[i].sum()), int(b[i].sum()), a.shape[1]) for i in range(a.shape[0])]
        pairs[f"{x}__{y}"] = {
            "left": x,
            "right": y,
            "jaccard": jaccard(a, b),
            "chance": chance_jaccard(int(a.sum()), int(b.sum()), a.numel()),
            "per_layer": per_layer,
            "per_layer_chance": chance_layer,
        }
    sizes = {arm: int(m.sum()) for arm, m in masks.items()}
    per_layer_sizes = {arm: m.sum(dim=1).tolist() for arm, m in masks.items()}
    return {"sizes": sizes, "per_layer_sizes": per_layer_sizes, "pairs": pairs}
