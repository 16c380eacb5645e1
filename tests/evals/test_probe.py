"""Thought-use probe: condition construction (swap rotation, blank, generic, teacher skipping) and a
run on the tiny random Qwen3, whose text is garbage: check shapes, pairing and summaries."""

import json

import pytest

from thinkmid.engines.hf import HFEngine
from thinkmid.evals import probe
from thinkmid.judges.lexical import LexicalReferenceJudge
from thinkmid.rollouts import Sample

ROWS = [
    {"id": "r0", "prefix": "The river rises in the north.", "suffix": " It flows south.",
     "teacher_thought": "Next: course."},
    {"id": "r1", "prefix": "Rice is the main crop.", "suffix": " Wheat is second.", "teacher_thought": ""},
    {"id": "r2", "prefix": "The capital is on the coast.", "suffix": " It is a port.", "teacher_thought": "  "},
    {"id": "r3", "prefix": "Winters are cold and dry.", "suffix": " Summers are hot.",
     "teacher_thought": "Summer next."},
]  # fmt: skip


def test_swap_rotation_gives_each_row_another_rows_thought():
    t = [[1], [2, 2], [3]]
    assert probe.swap_rotation(t) == [[2, 2], [3], [1]]
    assert all(a != b for a, b in zip(t, probe.swap_rotation(t)))


def test_build_conditions(qwen_tok):
    sampled = [[10, 11], [20], [30, 31, 32], [40]]
    conds = probe.build_conditions(ROWS, sampled, qwen_tok, "Let me think about what comes next.")
    assert list(conds) == list(probe.CONDITIONS)
    assert conds["sampled"] == ([0, 1, 2, 3], sampled)
    assert conds["swapped"] == ([0, 1, 2, 3], [[20], [30, 31, 32], [40], [10, 11]])
    assert conds["blank"] == ([0, 1, 2, 3], [[], [], [], []])
    generic = qwen_tok.encode("Let me think about what comes next.", add_special_tokens=False)
    assert conds["generic"][1] == [generic] * 4
    assert qwen_tok.decode(generic) == "Let me think about what comes next."
    idx, thoughts = conds["teacher"]
    assert idx == [0, 3]  # empty and whitespace-only teacher thoughts are skipped
    assert [qwen_tok.decode(t) for t in thoughts] == ["Next: course.", "Summer next."]
    think = set(qwen_tok.convert_tokens_to_ids(["<think>", "</think>"]))
    assert not any(think & set(t) for _, ts in conds.values() for t in ts)


def test_build_conditions_drops_uncoverable_conditions(qwen_tok):
    one = probe.build_conditions(ROWS[1:2], [[5]], qwen_tok, "Think.")
    assert set(one) == {"sampled", "blank", "generic"}  # no swap partner, no teacher thought
    with pytest.raises(ValueError):
        probe.build_conditions(ROWS, [[1]], qwen_tok, "x")


def _s(r):
    return Sample([1], [], [2], [], [0.0], False, "x", "", reward=r)


def test_summarize_arm_pairs_deltas_on_covered_prefixes():
    results = {
        "sampled": ([0, 1, 2], [[_s(1), _s(1)], [_s(0), _s(0)], [_s(0), _s(1)]]),
        "blank": ([0, 1, 2], [[_s(0), _s(0)], [_s(0), _s(0)], [_s(0), _s(0)]]),
        "teacher": ([1], [[_s(1), _s(None)]]),
    }
    out = probe.summarize_arm(results)
    c = out["conditions"]
    assert c["sampled"] == {"reward_mean": 0.5, "n": 6, "prefixes": 3, "invalid_rate": 0.0}
    assert c["teacher"]["n"] == 1 and c["teacher"]["invalid_rate"] == 0.5
    assert out["deltas_vs_sampled"]["blank"] == pytest.approx(-0.5)
    assert out["deltas_vs_sampled"]["teacher"] == pytest.approx(1.0 - 0.0)  # vs sampled on row 1 only
    assert "sampled" not in out["deltas_vs_sampled"]
    m = probe.arm_metrics(out)
    assert m["reward_sampled"] == 0.5 and m["delta_blank"] == pytest.approx(-0.5) and m["n_teacher"] == 1


def test_run_probe_on_tiny_model(tiny_model, qwen_tok):
    engine = HFEngine(tiny_model, qwen_tok, batch_size=8)
    rows = probe.with_prefix_ids(ROWS, qwen_tok)
    assert rows[0]["prefix_ids"] == qwen_tok.encode(ROWS[0]["prefix"], add_special_tokens=False)
    judge = LexicalReferenceJudge(threshold=0.0)  # every suffix scores >= 0: all rewards 1
    args = dict(k=2, thought_max=2, suffix_max=2, temperature=1.0, seed=0, generic_thought="Think of it.")
    thoughts, results = probe.run_probe(engine, qwen_tok, rows, judge, **args)
    assert len(thoughts) == 4 and all(len(t.thought_ids) <= 2 for t in thoughts)
    assert list(results) == list(probe.CONDITIONS)
    assert results["teacher"][0] == [0, 3]
    for cond, (idx, groups) in results.items():
        assert len(groups) == len(idx) and all(len(g) == 2 for g in groups)
        assert all(s.reward == 1 and len(s.suffix_ids) <= 2 for g in groups for s in g)
    for i, g in zip(*results["sampled"]):
        assert all(s.thought_ids == thoughts[i].thought_ids for s in g)  # the sampled thought is held fixed
    for i, g in zip(*results["swapped"]):
        assert all(s.thought_ids == thoughts[(i + 1) % 4].thought_ids for s in g)
    assert all(s.thought_ids == [] for g in results["blank"][1] for s in g)
    assert judge.stats.calls == 2 * (4 * 4 + 2)
    summary = probe.summarize_arm(results)
    assert summary["conditions"]["sampled"]["n"] == 8 and summary["conditions"]["teacher"]["n"] == 4
    rows_out = probe.sample_rows("think_base", rows, thoughts, results)
    assert len(rows_out) == 2 * (4 * 4 + 2)
    assert {"arm", "prefix_id", "condition", "sample_idx", "thought", "predicted_suffix", "reward"} <= set(rows_out[0])
    json.dumps(summary, allow_nan=False)
