"""Layout of examples, answer parsing, and the GSM8K split (disjoint train/eval)."""

from thinkmid.config import ThoughtTaskParams
from thinkmid.thoughts.tasks import ANSWER_SEG, PROMPT, REASON, Problem, build, gsm8k_split, is_correct, verbal_example


def test_verbal_example_labels(qwen_tok):
    p = Problem("2+3", "2+3=5", "5")
    ex = verbal_example(qwen_tok, p)
    text = qwen_tok.decode(ex["ids"])
    assert text.startswith("Q: 2+3\n<think>2+3=5</think>A: 5")
    assert all(lab == -100 for lab, s in zip(ex["labels"], ex["seg"]) if s == PROMPT)
    assert all(lab == i for lab, i, s in zip(ex["labels"], ex["ids"], ex["seg"]) if s != PROMPT)
    empty = verbal_example(qwen_tok, p, with_steps=False)
    assert "<think></think>A: 5" in qwen_tok.decode(empty["ids"])


def test_build_cuts_reasoning_not_answer():
    ex = build(
        [(PROMPT, [1, 2], False), (REASON, [10, 11, 12, 13, 14, 19], True), (ANSWER_SEG, [7, 8], True)], seq_len=7
    )
    assert ex["ids"] == [1, 2, 10, 11, 19, 7, 8]  # the reasoning lost its tail, kept its closing marker
    assert len(ex["ids"]) == len(ex["labels"]) == len(ex["seg"])


def test_is_correct():
    assert is_correct("1200", "A: 1,200<|endoftext|>")
    assert is_correct("3.5", "A: 3.50")
    assert not is_correct("12", "A: 13") and not is_correct("12", "twelve")
    assert is_correct("c", "A: c")


def test_gsm8k_wheel_split_is_disjoint_and_seeded():
    task = ThoughtTaskParams(kind="gsm8k", source="wheel", train=30, eval=20)
    train, held = gsm8k_split(task, seed=0)
    assert len(train) == 30 and len(held) == 20
    assert not {p.question for p in train} & {p.question for p in held}
    assert all("<<" not in p.steps and p.answer for p in train)
    assert gsm8k_split(task, seed=0) == (train, held)
    bigger = gsm8k_split(ThoughtTaskParams(kind="gsm8k", source="wheel", train=50, eval=20), seed=0)
    assert bigger[1] == held  # the eval part does not move when the train part grows
