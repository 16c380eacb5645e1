"""Thought-use probe: condition construction (derangement, blank, rotated generic thoughts, teacher
skipping), the seed's per-condition summaries and normal_minus_<cond> deltas on hand-made rewards,
and a run on the tiny random Qwen3 (garbage text: shapes, pairing and summaries)."""

import json

import pytest

from thinkmid.engines.hf import HFEngine
from thinkmid.evals import probe
from thinkmid.judges.lexical import LexicalReferenceJudge
from thinkmid.rollouts import Sample

ROWS = [
    {
        "id": "r0",
        "prefix": "The river rises in the north.",
        "suffix": " It flows south.",
        "teacher_thought": "Next: course.",
    },
    {"id": "r1", "prefix": "Rice is the main crop.", "suffix": " Wheat is second.", "teacher_thought": ""},
    {"id": "r2", "prefix": "The capital is on the coast.", "suffix": " It is a port.", "teacher_thought": "  "},
    {
        "id": "r3",
        "prefix": "Winters are cold and dry.",
        "suffix": " Summers are hot.",
        "teacher_thought": "Summer next.",
    },
]
GENERIC = ["First generic.", "Second generic.", "Third generic.", "Fourth generic."]


@pytest.mark.parametrize("n", [2, 3, 5, 32])
def test_derangement_has_no_fixed_point_and_is_seeded(n):
    d = probe.derangement(n, 7)
    assert sorted(d) == list(range(n)) and all(i != s for i, s in enumerate(d))
    assert d == probe.derangement(n, 7)
    with pytest.raises(ValueError):
        probe.derangement(1, 0)


def test_build_conditions(qwen_tok):
    normal = [[[10], [11]], [[20], [21]], [[30], [31]], [[40], [41]]]  # K=2 sampled thoughts per row
    conds = probe.build_conditions(ROWS, normal, qwen_tok, GENERIC, seed=5)
    assert list(conds) == ["blank", "generic", "swapped", "teacher"]
    assert conds["blank"] == ([0, 1, 2, 3], [[[], []]] * 4)
    gen = [qwen_tok.encode(t, add_special_tokens=False) for t in GENERIC]
    # sample j of prefix i gets generic thought (i + j) mod 4
    assert conds["generic"][1] == [[gen[(i + j) % 4] for j in range(2)] for i in range(4)]
    src = probe.derangement(4, 5 + 3)  # the seed's condition index of "swapped" is 3
    assert conds["swapped"][1] == [normal[s] for s in src]  # sample j takes thought j of its source prefix
    idx, thoughts = conds["teacher"]
    assert idx == [0, 3]  # empty and whitespace-only teacher thoughts are skipped
    assert [qwen_tok.decode(t[0]) for t in thoughts] == ["Next: course.", "Summer next."] and len(thoughts[0]) == 2


def test_build_conditions_drops_uncoverable_conditions(qwen_tok):
    one = probe.build_conditions(ROWS[1:2], [[[5]]], qwen_tok, GENERIC, 0)
    assert set(one) == {"blank", "generic"}  # no swap partner, no teacher thought
    with pytest.raises(ValueError):
        probe.build_conditions(ROWS, [[[1]]], qwen_tok, GENERIC, 0)


def _s(r, thought="a b", suffix="x y z"):
    return Sample([1], [], [2], [], [0.0], False, suffix, thought, reward=r)


def test_summaries_and_deltas_follow_the_seed():
    results = {
        "normal": ([0, 1, 2, 3], [[_s(1), _s(1)], [_s(0), _s(0)], [_s(0), _s(1)], [_s(None), _s(None)]]),
        "blank": ([0, 1, 2, 3], [[_s(0), _s(0)], [_s(0), _s(1)], [_s(0), _s(1)], [_s(1), _s(1)]]),
        "teacher": ([1], [[_s(1), _s(None)]]),
    }
    out = probe.summarize_arm(results)
    n = out["conditions"]["normal"]
    assert (n["reward_mean"], n["n"], n["records"], n["invalid_rate"]) == (0.5, 6, 8, 0.25)
    assert n["prefix_mean_reward"] == pytest.approx((1 + 0 + 0.5) / 3)  # prefix r3 has no valid verdict
    assert n["any_success_prefix_rate"] == pytest.approx(2 / 3) and n["all_success_prefix_rate"] == pytest.approx(1 / 3)
    assert n["reward_std"] == 0.5 and n["avg_thought_words"] == 2 and n["avg_predicted_suffix_words"] == 3
    d = out["causal_deltas"]
    assert list(d) == ["normal_minus_blank", "normal_minus_teacher"]
    # shared prefixes r0, r1, r2 (r3: no valid normal verdict): deltas +1, -0.5, 0
    b = d["normal_minus_blank"]
    assert b["shared_prefixes"] == 3 and b["mean_delta"] == pytest.approx(0.5 / 3)
    assert (b["normal_better_prefix_rate"], b["condition_better_prefix_rate"], b["tie_prefix_rate"]) == pytest.approx(
        (1 / 3, 1 / 3, 1 / 3)
    )
    assert d["normal_minus_teacher"]["mean_delta"] == -1.0  # only r1: 0 - 1
    assert b["mean_delta_ci95_low"] < b["mean_delta"] < b["mean_delta_ci95_high"]  # paired over the 3 prefixes
    assert (d["normal_minus_teacher"]["mean_delta_ci95_low"], d["normal_minus_teacher"]["mean_delta_ci95_high"]) == (
        -1.0,
        1.0,
    )  # one shared prefix: nothing to resample, the widest interval
    m = probe.arm_metrics(out)
    assert m["reward_normal"] == 0.5 and m["normal_minus_blank/mean_delta"] == pytest.approx(0.5 / 3)


def test_run_probe_on_tiny_model(tiny_model, qwen_tok):
    engine = HFEngine(tiny_model, qwen_tok, batch_size=8)
    rows = probe.with_prefix_ids(ROWS, qwen_tok)
    assert rows[0]["prefix_ids"] == qwen_tok.encode(ROWS[0]["prefix"], add_special_tokens=False)
    judge = LexicalReferenceJudge(threshold=0.0)  # every suffix scores >= 0: all rewards 1
    args = dict(k=2, thought_max=2, suffix_max=2, temperature=1.0, seed=0, generic_thoughts=GENERIC)
    results = probe.run_probe(engine, qwen_tok, rows, judge, **args)
    assert list(results) == ["normal", "blank", "generic", "swapped", "teacher"]
    assert results["teacher"][0] == [0, 3]
    for cond, (idx, groups) in results.items():
        assert len(groups) == len(idx) and all(len(g) == 2 for g in groups)
        assert all(s.reward == 1 and len(s.suffix_ids) <= 2 for g in groups for s in g)
    normal = results["normal"][1]
    src = probe.derangement(4, 3)
    for i, g in enumerate(results["swapped"][1]):
        assert [s.thought_ids for s in g] == [normal[src[i]][j].thought_ids for j in range(2)]
    assert all(s.thought_ids == [] for g in results["blank"][1] for s in g)
    assert judge.stats.calls == 2 * (4 * 4 + 2)
    summary = probe.summarize_arm(results)
    assert summary["conditions"]["normal"]["n"] == 8 and summary["conditions"]["teacher"]["n"] == 4
    assert summary["causal_deltas"]["normal_minus_swapped"]["tie_prefix_rate"] == 1.0
    rows_out = probe.sample_rows("think_base", rows, results)
    assert len(rows_out) == 2 * (4 * 4 + 2)
    assert {"arm", "prefix_id", "condition", "sample_idx", "thought", "predicted_suffix", "reward"} <= set(rows_out[0])
    json.dumps(summary, allow_nan=False)
