"""Abstract thought: the reserved vocabulary, the training layouts, constrained sampling, the eval's ablations."""

import copy

import pytest
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


def test_extend_vocab_uses_the_rows_of_a_padded_embedding(qwen_tok):
    """Qwen3 checkpoints pad the embedding past the tokenizer (151,936 rows): the new tokens take rows
    inside it, the matrix keeps its size, and the rows are set (on the H200 this raised)."""
    tok = copy.deepcopy(qwen_tok)
    model = make_tiny_qwen3(vocab_size=151936)
    emb = model.get_input_embeddings().weight
    filler = emb[151800].detach().clone()
    ab.extend_vocab(model, tok, 64, seed=0)
    abs_ids, a_open, a_close = ab.ids(tok, 64)
    assert model.get_input_embeddings().weight.shape[0] == 151936 and max(abs_ids + [a_open, a_close]) < 151936
    mean = emb[: len(qwen_tok)].mean(0)
    for i in (abs_ids[0], a_close):
        assert (emb[i] - mean).norm() < (emb[151800] - mean).norm()  # near the mean, not the filler row
    assert torch.equal(emb[151800], filler)  # untouched padding


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
        zs = ab.sample_sequences(
            HFEngine(model, tok, fast=fast), tok, PROBLEMS, 8, max_tokens=5, temperature=1.0, seed=0
        )
        assert all(len(z) <= 5 and set(z) <= set(abs_ids) for z in zs) and any(zs)


def test_min_tokens_keeps_the_end_marker_out_until_m(qwen_tok):
    model, tok = _extended(qwen_tok)
    abs_ids, _, a_close = ab.ids(tok, 8)

    def end_wins(module, args, out):  # an end marker that wins every position, as after an untrained round
        out[..., a_close] += 1e4
        return out

    model.lm_head.register_forward_hook(end_wins)
    eng = HFEngine(model, tok)
    assert all(z == [] for z in ab.sample_sequences(eng, tok, PROBLEMS, 8, 5, 1.0, 0))
    zs = ab.sample_sequences(eng, tok, PROBLEMS, 8, 5, 1.0, 0, min_tokens=3)
    assert all(len(z) == 3 and set(z) <= set(abs_ids) for z in zs)  # m tokens, then the end
    fixed = ab.sample_sequences(eng, tok, PROBLEMS, 8, 4, 1.0, 0, with_reasoning=True, min_tokens=4)
    assert all(len(z) == 4 for z in fixed)


def test_eval_rows_and_ablations(qwen_tok):
    model, tok = _extended(qwen_tok)
    rows, samples = ev.abstract(HFEngine(model, tok), tok, PROBLEMS, 8, [2, 4], max_answer=3, seed=0)
    names = [(r["interface"], r["budget"]) for r in rows]
    assert names == [("abstract", 2), ("abstract", 4), ("abstract_random", 4), ("abstract_none", 0)]
    assert all(r["n"] == 3 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert rows[2]["thought_tokens"] == rows[1]["thought_tokens"]  # random tokens of the same lengths
    assert rows[3]["thought_tokens"] == 0 and rows[1]["thought_tokens"] <= 4
    assert len(samples) == 3 and all("<abs_" in s["abstract"] or s["abstract"] == "" for s in samples)


def test_eval_min_tokens(qwen_tok):
    model, tok = _extended(qwen_tok)
    rows, _ = ev.abstract(HFEngine(model, tok), tok, PROBLEMS, 8, [2, 4], max_answer=3, seed=0, min_tokens=3)
    assert [r["thought_tokens"] for r in rows[:2]] == [2, pytest.approx(rows[1]["thought_tokens"])]
    assert rows[1]["thought_tokens"] >= 3 and rows[2]["thought_tokens"] == rows[1]["thought_tokens"]


def test_bottleneck_probe_reads_accuracies(qwen_tok):
    model, tok = _extended(qwen_tok)
    probe = ab.bottleneck_probe(HFEngine(model, tok), model, tok, PROBLEMS, 8, 2, 2, seed=0)
    assert set(probe) == {"phase_a_answer_accuracy", "phase_a_random_z_answer_accuracy", "teacher_z_answer_accuracy"}
    assert all(0 <= v <= 1 for v in probe.values())
    ex = [ab.phase_b_example(tok, p, [], 8, None) for p in PROBLEMS]
    assert ab.answer_accuracy(model, ex, tok.pad_token_id, False) == 0.0  # a random tiny model gets no answer right


def test_eval_random_ablation_draws_from_the_emitted_tokens(qwen_tok):
    model, tok = _extended(qwen_tok)
    _, samples = ev.abstract(HFEngine(model, tok), tok, PROBLEMS, 8, [3], max_answer=3, seed=0, min_tokens=3)
    emitted = {t for s in samples for t in tok.encode(s["abstract"], add_special_tokens=False)}
    rand = ab.random_sequences(1, 3, sorted(emitted), 0)[0]
    assert set(rand) <= emitted  # the pool the eval draws its random tokens from


def _parity(terms, train, held):
    from types import SimpleNamespace

    from thinkmid.thoughts import procedural as pr

    task = SimpleNamespace(kind="modsum", terms=terms, modulus=2, digits=2, train=train, eval=held)
    return pr.generate(task, 0), pr.char_tokenizer()


def test_anchored_sequences_name_the_reasoning_at_spaced_positions():
    from thinkmid.thoughts import procedural as pr

    (train, _), tok = _parity(8, 64, 0)
    model = pr.init_model(tok, 16, 1, 2, 0)
    ab.extend_vocab(model, tok, 4, 0)
    abs_ids, _, _ = ab.ids(tok, 4)
    zs = ab.anchored_sequences(tok, train, 4, 7)  # m = the chain length: one token per running sum
    code = {}
    for p, z in zip(train, zs):
        assert len(z) == 7 and set(z) <= set(abs_ids)
        for ch, t in zip(p.steps, z):
            assert code.setdefault(ch, t) == t  # one running-sum value, one abstract token
    assert len(set(code.values())) == 2
    short = ab.anchored_sequences(tok, train, 4, 2)  # the last anchor is the reasoning's last token (the answer)
    assert all(z[-1] == code[p.answer] for p, z in zip(train, short))
    assert ab.anchored_sequences(tok, train, 4, 2) == short  # deterministic


def test_trained_on_anchored_tokens_beats_random_tokens():
    """A 2-token toy (parity-8, abstract vocabulary of 2, m = 2 anchored tokens, the last one naming
    the answer): after Phase B on the anchored sequences, the held-out answers read the tokens, so
    the same model with random tokens of the same lengths falls to chance."""
    import tempfile
    from types import SimpleNamespace

    from thinkmid.thoughts import procedural as pr
    from thinkmid.thoughts.train import run_phase

    torch.manual_seed(0)
    (train, held), tok = _parity(8, 200, 56)
    model = pr.init_model(tok, 64, 2, 2, 0)
    ab.extend_vocab(model, tok, 2, 0)
    abs_ids, _, _ = ab.ids(tok, 2)
    zs = ab.anchored_sequences(tok, train + held, 2, 2)
    task = SimpleNamespace(
        epochs=16, batch_size=16, lr=3e-3, warmup_steps=0, min_lr_ratio=0.1, max_grad_norm=1.0, checkpoint_every=10**9
    )
    ex = [ab.phase_b_example(tok, p, z, 2, None) for p, z in zip(train, zs)]
    run_phase("b", model, ex, task, 0, tempfile.mkdtemp(), None, 0, tok.pad_token_id)

    def acc(seqs):
        return ab.answer_accuracy(
            model, [ab.phase_b_example(tok, p, z, 2, None) for p, z in zip(held, seqs)], tok.pad_token_id, False
        )

    rand = [ab.random_sequences(1, 2, abs_ids, i)[0] for i in range(len(held))]
    trained, random_ = acc(zs[len(train) :]), acc(rand)
    assert trained >= 0.9 and random_ <= 0.7, (trained, random_)
