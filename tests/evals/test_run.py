"""evaluate() end to end on the tiny random Qwen3: the text is garbage, so check shapes, keys, counts."""

import json

from thinkmid.engines.hf import HFEngine
from thinkmid.evals.reasoning.common import Problem
from thinkmid.evals.reasoning.run import evaluate

KEYS = {
    "mean_at_k",
    "pass_at_k",
    "correct",
    "samples",
    "any_pass",
    "problems",
    "mean_at_k_lo",
    "mean_at_k_hi",
    "pass_at_k_lo",
    "pass_at_k_hi",
    "avg_completion_tokens",
    "k",
    "mean_at_k_math_verify",
    "pass_at_k_math_verify",
    "correct_math_verify",
    "any_pass_math_verify",
}
ROW_KEYS = {
    "benchmark",
    "problem_id",
    "sample_idx",
    "completion",
    "extracted",
    "gold",
    "correct",
    "completion_tokens",
    "extracted_math_verify",
    "correct_math_verify",
}


def _benchmarks():
    return {
        "gsm8k": [Problem("gsm8k", "g0", "What is 2 + 3?", "5"), Problem("gsm8k", "g1", "What is 4 * 4?", "16")],
        "gpqa_diamond": [
            Problem("gpqa_diamond", "q0", "Which is a noble gas?", "B", ("Oxygen", "Neon", "Iron", "Sodium")),
            Problem("gpqa_diamond", "q1", "Which is a prime?", "A", ("7", "8", "9", "10")),
        ],
    }


def test_evaluate_end_to_end(tiny_model, qwen_tok):
    engine = HFEngine(tiny_model, qwen_tok, batch_size=8)
    args = dict(k=2, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0, progress=False)
    summary, samples = evaluate(engine, qwen_tok, _benchmarks(), **args)
    assert set(summary) == {"gsm8k", "gpqa_diamond", "macro"}
    for name in ("gsm8k", "gpqa_diamond"):
        s = summary[name]
        assert KEYS <= set(s) and s["k"] == 2 and s["samples"] == 4 and s["problems"] == 2
        assert s["mean_at_k_lo"] <= s["mean_at_k"] <= s["mean_at_k_hi"]
        assert s["pass_at_k_lo"] <= s["pass_at_k"] <= s["pass_at_k_hi"]
        assert 0 < s["avg_completion_tokens"] <= 8
        rows = samples[name]
        assert len(rows) == 4 and all(ROW_KEYS <= set(r) for r in rows)
        ids = [p.id for p in _benchmarks()[name]]
        assert [(r["problem_id"], r["sample_idx"]) for r in rows] == [(p, j) for p in ids for j in (0, 1)]
        assert sum(r["correct"] for r in rows) == s["correct"]
        assert all(0 < r["completion_tokens"] <= 8 for r in rows)
    m = summary["macro"]
    assert m["benchmarks"] == 2
    assert m["mean_at_k"] == (summary["gsm8k"]["mean_at_k"] + summary["gpqa_diamond"]["mean_at_k"]) / 2
    json.dumps(summary, allow_nan=False)  # metrics files reject NaN
    json.dumps(samples)
    again, _ = evaluate(engine, qwen_tok, _benchmarks(), **args)
    assert again == summary  # seeded sampling: same numbers on a rerun
    opened, rows = evaluate(engine, qwen_tok, _benchmarks(), **args, opened=True)
    assert set(opened) == set(summary) and len(rows["gsm8k"]) == 4


def test_summarize_rows_counts():
    from thinkmid.evals.reasoning.run import summarize_rows

    rows = [
        {"problem_id": p, "correct": c, "correct_math_verify": v, "completion_tokens": t}
        for p, c, v, t in [("a", 1, 1, 10), ("a", 0, 1, 20), ("b", 0, 0, 30), ("b", 0, 1, 40)]
    ]
    s = summarize_rows(rows, 2)
    assert (s["correct"], s["samples"], s["any_pass"], s["problems"]) == (1, 4, 1, 2)
    assert (s["correct_math_verify"], s["any_pass_math_verify"]) == (3, 2)
    assert s["mean_at_k"] == 0.25 and s["pass_at_k_math_verify"] == 1.0 and s["avg_completion_tokens"] == 25
