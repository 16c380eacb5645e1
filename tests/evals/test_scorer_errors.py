"""Scorer exceptions are counted per benchmark, and a benchmark whose every sample raised fails."""

import pytest

from thinkmid.engines.hf import HFEngine
from thinkmid.evals.reasoning import scorer_errors, seed_score
from thinkmid.evals.reasoning.common import Problem, math_equal
from thinkmid.evals.reasoning.run import evaluate

ARGS = dict(k=2, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0, progress=False)


def _gsm8k():
    return {"gsm8k": [Problem("gsm8k", "g0", "What is 2 + 3?", "5"), Problem("gsm8k", "g1", "What is 4 * 4?", "16")]}


def test_guarded_counts_raises_inside_and_out():
    def boom(*_):
        raise ValueError("scorer bug")

    assert scorer_errors.guarded(boom, 1) == ((False, None), True)
    assert scorer_errors.guarded(lambda: (True, "5")) == ((True, "5"), False)
    # an exception a scorer swallows itself (math_equal's broad except) still counts
    real = math_equal.__globals__["mv_parse"]
    try:
        math_equal.__globals__["mv_parse"] = boom
        assert scorer_errors.guarded(math_equal, "5", "5") == (False, True)
    finally:
        math_equal.__globals__["mv_parse"] = real
    assert scorer_errors.guarded(math_equal, "5", "5") == (True, False)


def test_check():
    scorer_errors.check("gsm8k", 0, 4)
    scorer_errors.check("gsm8k", 3, 4)  # some: a warning, the stage goes on
    scorer_errors.check("gsm8k", 0, 0)
    scorer_errors.note(KeyError("gold"))
    with pytest.raises(RuntimeError, match=r"gsm8k: the scorer raised on every one of its 4 samples \(first: KeyError"):
        scorer_errors.check("gsm8k", 4, 4)


def test_evaluate_fails_when_every_sample_raised(tiny_model, qwen_tok, monkeypatch):
    engine = HFEngine(tiny_model, qwen_tok, batch_size=8)
    summary, _ = evaluate(engine, qwen_tok, _gsm8k(), **ARGS)
    assert summary["gsm8k"]["scorer_errors"] == 0

    calls = {"n": 0}
    real = seed_score.score

    def half_broken(benchmark, gold, completion):
        calls["n"] += 1
        if calls["n"] % 2:
            raise ValueError("scorer bug")
        return real(benchmark, gold, completion)

    monkeypatch.setattr(seed_score, "score", half_broken)
    summary, samples = evaluate(engine, qwen_tok, _gsm8k(), **ARGS)
    assert summary["gsm8k"]["scorer_errors"] == 2 and len(samples["gsm8k"]) == 4

    def broken(benchmark, gold, completion):
        raise ValueError("scorer bug")

    monkeypatch.setattr(seed_score, "score", broken)
    with pytest.raises(RuntimeError, match="gsm8k: the scorer raised on every one of its 4 samples"):
        evaluate(engine, qwen_tok, _gsm8k(), **ARGS)
