"""Jaccard overlap of knowledge-neuron sets, its chance level, the per-pair report."""

from __future__ import annotations

import pytest
import torch

from thinkmid.gates.overlap import chance_jaccard, jaccard, overlap_report


def test_jaccard():
    a = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    b = torch.tensor([0, 1, 1, 0], dtype=torch.bool)
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a, a) == 1.0
    assert jaccard(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)) is None


def test_chance_matches_random_sets():
    gen = torch.Generator().manual_seed(0)
    n, total = 300, 1000
    vals = []
    for _ in range(200):
        a = torch.zeros(total, dtype=torch.bool)
        b = torch.zeros(total, dtype=torch.bool)
        a[torch.randperm(total, generator=gen)[:n]] = True
        b[torch.randperm(total, generator=gen)[:n]] = True
        vals.append(jaccard(a, b))
    assert sum(vals) / len(vals) == pytest.approx(chance_jaccard(n, n, total), abs=0.01)
    assert chance_jaccard(0, 0, 10) is None


def test_report_pairs_and_layers():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(4, 50, generator=g) < 0.5
    masks = {"base": base, "think_base": base.clone(), "think_base_rlmt": ~base}
    rep = overlap_report(masks)
    assert list(rep["pairs"]) == ["base__think_base", "base__think_base_rlmt", "think_base__think_base_rlmt"]
    same, opposite = rep["pairs"]["base__think_base"], rep["pairs"]["base__think_base_rlmt"]
    assert same["jaccard"] == 1.0 and same["per_layer"] == [1.0] * 4
    assert opposite["jaccard"] == 0.0 and len(opposite["per_layer_chance"]) == 4
    assert rep["sizes"]["base"] == int(base.sum()) and sum(rep["per_layer_sizes"]["base"]) == int(base.sum())
