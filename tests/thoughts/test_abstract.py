"""Abstract thought: the reserved vocabulary, the training layouts, constrained sampling, the eval's ablations."""

import copy

import torch

from tests.conftest import make_tiny_qwen3
from thinkmid.engines.hf import HFEngine
from thinkmid.thoughts import abstract as ab
from thinkmid.thoughts import evaluate as ev
from thinkmid.thoughts.tasks import LATENT, REASON, Problem

PROBLEMS = [Problem("2+3", "2+3=5", "5"), Problem("4+4", "4+4=8", "8"), Problem("1+6", "1+6=7", "7")]


def _extended(qwen_tok, n=8):
    tok = copy.deepcopy(qwen_tok)
    model = make_tiny_qwen3()
    ab.extend_vocab(model, tok, n, seed=0)
    return model, tok


def test_extend_vocab_adds_trainable_distinct_rows(qwen_tok):
    model, tok = _extended(qwen_tok, 64)
    abs_ids, a_open, a_close = ab.ids(tok, 64)
    assert len(set(abs_ids + [a_open, a_close])) == 66 and min(abs_ids) >= 151669
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] >= len(tok) and emb.requires_grad
    assert not torch.allclose(emb[abs_ids[0]], emb[abs_ids[1]])
    before = len(tok)
    ab.extend_vocab(model, tok, 64)  # idempotent
    assert len(tok) == before
    assert len(tok.encode("<abs_07><abstract>", add_special_tokens=False)) == 2


def test_layouts(qwen_tok):
    _, tok = _extended(qwen_tok)
    abs_ids, a_open, a_close = ab.ids(tok, 8)
    z = abs_ids[:3]
    a = ab.phase_a_example(tok, PROBLEMS[0], z, 8, z_loss=False, seq_len=None)
    text = tok.decode(a["ids"])
    assert "<think>2+3=5</think><abstract><abs_00><abs_01><abs_02></abstract>A: 5" in text
    lat = [i for i, s in enumerate(a["seg"]) if s == LATENT]
    assert [a["ids"][i] for i in lat] == [a_open] + z + [a_close]
    assert all(a["labels"][i] == -100 for i in lat)  # round 1: random z carries no loss
    assert any(s == REASON for s in a["seg"])
    b = ab.phase_b_example(tok, PROBLEMS[0], z, 8, seq_len=None)
    assert REASON not in b["seg"] and all(b["labels"][i] != -100 for i, s in enumerate(b["seg"]) if s == LATENT)


def test_sampling_is_constrained_to_the_abstract_vocabulary(qwen_tok):
    model, tok = _extended(qwen_tok)
    abs_ids, _, _ = ab.ids(tok, 8)
    for fast in (False, True):
        zs = ab.sample_sequences(HFEngine(model, tok, fast=fast), tok, PROBLEMS, 8, max_tokens=5, temperature=1.0, seed=0)
        assert all(len(z) <= 5 and set(z) <= set(abs_ids) for z in zs) and any(zs)


def test_eval_rows_and_ablations(qwen_tok):
    model, tok = _extended(qwen_tok)
    rows, samples = ev.abstract(HFEngine(model, tok), tok, PROBLEMS, 8, [2, 4], max_answer=3, seed=0)
    names = [(r["interface"], r["budget"]) for r in rows]
    assert names == [("abstract", 2), ("abstract", 4), ("abstract_random", 4), ("abstract_none", 0)]
    assert all(r["n"] == 3 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert rows[2]["thought_tokens"] == rows[1]["thought_tokens"]  # random tokens of the same lengths
    assert rows[3]["thought_tokens"] == 0 and rows[1]["thought_tokens"] <= 4
    assert len(samples) == 3 and all("<abs_" in s["abstract"] or s["abstract"] == "" for s in samples)
