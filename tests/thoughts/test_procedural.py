"""The generated tasks: their steps reach their answers, splits are disjoint, the tokenizer is per character."""

import random

import pytest

from thinkmid.config import ThoughtTaskParams
from thinkmid.thoughts import procedural as pr
from thinkmid.thoughts.tasks import is_correct


def test_modsum_steps_are_running_sums():
    p = pr.modsum_problem(random.Random(1), terms=6, modulus=10)
    xs = [int(x) for x in p.question]
    run = [sum(xs[: i + 2]) % 10 for i in range(5)]
    assert p.steps == "".join(map(str, run)) and p.answer == str(run[-1])
    wide = pr.modsum_problem(random.Random(1), terms=4, modulus=100)
    assert len(wide.question.split("+")) == 4 and len(wide.steps.split()) == 3


def test_mult_answer_and_partial_products():
    p = pr.mult_problem(random.Random(2), digits=3)
    a, b = (int(x) for x in p.question.split("*"))
    assert p.answer == str(a * b)
    assert p.steps.endswith(f"={a * b}")


def test_hops_follows_the_table():
    p = pr.hops_problem(random.Random(3), hops=3, letters=6)
    table, start = p.question.split(";")
    link = dict(pair.split(">") for pair in table.split(","))
    cur, seen = start, []
    for _ in range(3):
        cur = link[cur]
        seen.append(cur)
    assert p.answer == cur and p.steps.split() == seen[:-1]


@pytest.mark.parametrize("kind,size,steps", [("modsum", 12, 11), ("mult", 3, 4), ("mult", 1, 1), ("hops", 3, 2)])
def test_chain_length_counts_the_worked_steps(kind, size, steps):
    task = ThoughtTaskParams(kind=kind, terms=max(2, size), digits=min(6, size), modulus=6, train=3, eval=1)
    p = pr.generate(task, 0)[0][0]
    parts = {"modsum": list(p.steps), "mult": p.steps.split(","), "hops": p.steps.split()}[kind]
    assert pr.chain_length(task) == steps == max(1, len(parts))
    with pytest.raises(ValueError, match="no fixed chain length"):
        pr.chain_length(ThoughtTaskParams(kind="gsm8k"))


@pytest.mark.parametrize("kind", ["modsum", "mult", "hops"])
def test_splits_disjoint_and_deterministic(kind):
    task = ThoughtTaskParams(kind=kind, terms=8, modulus=2 if kind == "modsum" else 6, digits=2, train=40, eval=10)
    train, held = pr.generate(task, seed=0)
    assert len(train) == 40 and len(held) == 10
    assert not {p.question for p in train} & {p.question for p in held}
    assert pr.generate(task, seed=0) == (train, held)
    assert pr.generate(task, seed=1) != (train, held)


def test_too_small_a_task_is_an_error():
    with pytest.raises(ValueError, match="distinct problems"):
        pr.generate(ThoughtTaskParams(kind="modsum", terms=2, modulus=2, train=10, eval=10), seed=0)


def test_char_tokenizer_roundtrip_and_markers():
    tok = pr.char_tokenizer()
    text = "Q: 1+0+1\n<think>1 0</think>A: 0"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.convert_tokens_to_ids("<think>") in ids and len(tok.encode("12", add_special_tokens=False)) == 2
    assert is_correct("0", tok.decode(ids)) and not is_correct("1", tok.decode(ids))


def test_init_model_matches_tokenizer():
    tok = pr.char_tokenizer()
    m = pr.init_model(tok, hidden_size=16, layers=1, heads=2, seed=0)
    assert m.config.vocab_size == len(tok) and m.config.eos_token_id == tok.eos_token_id
