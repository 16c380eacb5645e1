"""Reward-gate maths on hand-made Sample groups: arm rows, pairwise comparisons, go/no-go."""

import json

import pytest

from thinkmid.evals import reward_gate as rg
from thinkmid.judges.base import JudgeStats
from thinkmid.rollouts import Sample, group_stats

RECORD_ORDER = [
    "think_base_rlmt_minus_think_base",
    "think_phase3_minus_think_base",
    "think_phase3_rlmt_minus_think_base",
    "think_phase3_minus_think_base_rlmt",
    "think_phase3_rlmt_minus_think_base_rlmt",
    "think_phase3_rlmt_minus_think_phase3",
]


def s(reward, thought="a b", suffix="x y z"):
    return Sample(
        prompt_ids=[1],
        thought_ids=[5, 6],
        suffix_ids=[7, 8, 9],
        thought_logps=[0.0, 0.0],
        suffix_logps=[0.0] * 3,
        closed_by_model=True,
        suffix_text=suffix,
        thought_text=thought,
        reward=reward,
    )


def groups(*rewards):
    return [[s(r) for r in g] for g in rewards]


ROWS = [{"id": "p0"}, {"id": "p1"}, {"id": "p2"}, {"id": "p3"}]


def test_pairs_follow_the_record_order_and_naming():
    assert [rg.pair_name(l, r) for l, r in rg.PAIRS] == RECORD_ORDER


def test_arm_summary_has_record_columns_and_counts():
    g = groups([1, 0], [0, 0], [1, 1], [None, 1])
    a = rg.arm_summary(g)
    assert set(rg.ARM_KEYS) <= set(a) and set(rg.SEED_ARM_KEYS) <= set(a)
    assert a["n"] == 8 and a["valid_samples"] == 7 and a["prefixes"] == 4
    assert a["reward_mean"] == pytest.approx(4 / 7)
    assert a["invalid_rate"] == pytest.approx(1 / 8)
    assert a["mixed_groups"] == pytest.approx(0.25)  # only p0 has two different rewards
    # the seed's near-zero: >= 2 valid rewards with std 0, so p1 and p2 but not p3 (one valid verdict)
    assert a["near_zero_groups"] == pytest.approx(0.5)
    assert a["any_success_groups"] == pytest.approx(0.75)
    assert a["all_success_groups"] == pytest.approx(0.5)
    assert a["mean_group_std"] == pytest.approx(0.5 / 4) and a["mean_group_range"] == pytest.approx(0.25)
    assert a["mean_group_reward"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert (a["reward_min"], a["reward_max"], a["num_groups"], a["samples_per_prefix"]) == (0.0, 1.0, 4, 2)
    assert a["autonomous_closed_think_rate"] == 1.0 and a["avg_thought_words_when_closed"] == 2
    # token counts are rollouts.group_stats' (its definition, tested with it)
    assert a["avg_total_new_tokens"] == group_stats(g)["avg_total_new_tokens"]
    assert a["avg_predicted_suffix_words"] == 3


def test_groups_without_a_valid_verdict_leave_the_rates():
    a = rg.arm_summary(groups([None, None], [1, 0]))
    assert a["num_groups"] == 1 and a["mixed_groups"] == 1.0 and a["near_zero_groups"] == 0.0


def test_compare_rates_and_delta():
    left = rg.by_prefix(ROWS, groups([0, 0], [1, 0], [1, 1], [0, 1]))
    right = rg.by_prefix(ROWS, groups([1, 0], [1, 0], [0, 0], [1, 1]))
    c = rg.compare(left, right)
    assert c["shared_prefixes"] == 4
    assert c["right_better_prefix_rate"] == 0.5  # p0, p3
    assert c["left_better_prefix_rate"] == 0.25  # p2
    assert c["tie_prefix_rate"] == 0.25  # p1
    assert c["mean_reward_delta"] == pytest.approx(4 / 8 - 4 / 8)
    flipped = rg.compare(right, left)
    assert flipped["right_better_prefix_rate"] == c["left_better_prefix_rate"]
    assert flipped["mean_reward_delta"] == pytest.approx(-c["mean_reward_delta"])


def test_compare_uses_only_shared_valid_prefixes():
    left = {"p0": [1, 1], "p1": [], "p2": [0, 0]}
    right = {"p0": [0, 1], "p1": [1, 1], "p3": [1, 1]}
    c = rg.compare(left, right)
    assert c["shared_prefixes"] == 1  # p1 has no valid verdict on the left; p2, p3 not in both
    assert c["left_better_prefix_rate"] == 1.0
    assert c["mean_reward_delta"] == pytest.approx(0.5 - 1.0)
    empty = rg.compare({"p0": []}, {"p0": [1]})
    assert empty["shared_prefixes"] == 0 and empty["mean_reward_delta"] == 0.0


def test_mean_reward_delta_equals_arm_mean_difference_when_all_shared():
    g = {a: groups(*[[(i + j + len(a)) % 2 for j in range(3)] for i in range(4)]) for a in rg.ARMS_GATE}
    summary = rg.summarize(ROWS, g, 0.5)
    assert list(summary["comparisons"]) == RECORD_ORDER
    for l, r in rg.PAIRS:
        d = summary["arms"][r]["reward_mean"] - summary["arms"][l]["reward_mean"]
        assert summary["comparisons"][rg.pair_name(l, r)]["mean_reward_delta"] == pytest.approx(d)
    json.dumps(summary, allow_nan=False)
    flat = rg.flat_metrics(summary)
    assert "think_base/reward_mean" in flat and "go_no_go/variance_ok" in flat
    assert f"{RECORD_ORDER[0]}/shared_prefixes" in flat


def _arm(mean, mixed, near_zero=0.4, std=0.3, invalid=0.0):
    return {
        "reward_mean": mean,
        "mixed_groups": mixed,
        "near_zero_groups": near_zero,
        "mean_group_std": std,
        "invalid_rate": invalid,
        "valid_samples": 10,
    }


def test_variance_ok_flips_at_half_the_groups_near_zero():
    # 64 prefixes of 16 samples; the arms differ only in how many groups are all zero.
    def arm(near_zero):
        return [[s(0)] * 16 for _ in range(near_zero)] + [[s(1)] + [s(0)] * 15 for _ in range(64 - near_zero)]

    rows = [{"id": f"p{i}"} for i in range(64)]
    at_half = {a: arm(32) for a in rg.ARMS_GATE}
    summary = rg.summarize(rows, at_half, 0.05)
    assert summary["arms"]["think_base"]["near_zero_groups"] == 0.5
    assert summary["go_no_go"]["variance_ok"] is True  # 0.50 passes (<=)
    over = dict(at_half, think_phase3_rlmt=arm(33))
    assert rg.summarize(rows, over, 0.05)["go_no_go"]["variance_ok"] is False  # 33/64 does not
    # the threshold is a param
    assert rg.summarize(rows, over, 0.05, max_near_zero_group_rate=0.6)["go_no_go"]["variance_ok"] is True


def test_go_no_go_on_the_record_numbers_is_all_true():
    arms = {
        "think_base": _arm(0.087891, 0.546875, 0.453125),
        "think_phase3": _arm(0.090820, 0.593750, 0.40625),
        "think_base_rlmt": _arm(0.093750, 0.640625, 0.359375),
        "think_phase3_rlmt": _arm(0.097656, 0.609375, 0.390625),
    }
    legacy = {"mean_phase3_minus_base_reward": 0.002930}
    assert rg.go_no_go(arms, 0.0, 0.5, legacy) == dict.fromkeys(rg.GO_NO_GO_KEYS, True)
    assert set(rg.GO_NO_GO_DOC) == set(rg.GO_NO_GO_KEYS)


def test_go_no_go_each_field_can_fail():
    good = {
        "think_base": _arm(0.1, 0.5),
        "think_phase3": _arm(0.1, 0.6),
        "think_base_rlmt": _arm(0.1, 0.5),
        "think_phase3_rlmt": _arm(0.2, 0.5),
    }
    up, down = {"mean_phase3_minus_base_reward": 0.01}, {"mean_phase3_minus_base_reward": 0.0}
    assert all(rg.go_no_go(good, 0.1, 0.5, up).values())
    bad_valid = {**good, "think_phase3": _arm(0.1, 0.6, invalid=0.2)}
    assert rg.go_no_go(bad_valid, 0.1, 0.5, up)["reward_validity_ok"] is False
    no_valid = {**good, "think_base": {**_arm(0.0, 0.0), "valid_samples": 0}}
    assert rg.go_no_go(no_valid, 1.0, 0.5, up)["reward_validity_ok"] is False
    degenerate = {**good, "think_base_rlmt": _arm(0.1, 0.0, near_zero=1.0)}
    g = rg.go_no_go(degenerate, 0.1, 0.5, up)
    assert g["variance_ok"] is False and g["phase3_more_reward_separable"] is True
    # separable: phase3 std higher OR phase3 mixed higher (SFT arms only; the RLMT arms do not count)
    same = {**good, "think_phase3": _arm(0.1, 0.5)}
    assert rg.go_no_go(same, 0.1, 0.5, up)["phase3_more_reward_separable"] is False  # strict on both
    by_std = {**good, "think_phase3": _arm(0.1, 0.5, std=0.31)}
    assert rg.go_no_go(by_std, 0.1, 0.5, up)["phase3_more_reward_separable"] is True
    rlmt_only = {**same, "think_phase3_rlmt": _arm(0.1, 0.9, std=0.5)}
    assert rg.go_no_go(rlmt_only, 0.1, 0.5, up)["phase3_more_reward_separable"] is False
    assert rg.go_no_go(good, 0.1, 0.5, down)["phase3_higher_mean_reward"] is False  # strict > 0
    partial = {k: v for k, v in good.items() if k != "think_base"}
    g = rg.go_no_go(partial, 0.1, 0.5, None)
    assert g["phase3_more_reward_separable"] is None and g["phase3_higher_mean_reward"] is None


def test_phase3_higher_mean_reward_uses_per_prefix_deltas():
    # phase3 beats base on the prefix means although RLMT arms say nothing about it
    rows = ROWS[:2]
    g = {
        "think_base": groups([0, 0], [1, 0]),
        "think_phase3": groups([1, 0], [1, 0]),
        "think_base_rlmt": groups([1, 1], [1, 1]),
        "think_phase3_rlmt": groups([0, 0], [0, 0]),
    }
    summary = rg.summarize(rows, g, 0.05)
    assert summary["phase3_vs_base"]["mean_phase3_minus_base_reward"] == pytest.approx(0.25)
    assert summary["phase3_vs_base"]["phase3_better_prefix_rate"] == 0.5
    assert summary["go_no_go"]["phase3_higher_mean_reward"] is True


def test_sample_rows_and_verdict_stats():
    g = groups([1, None], [0])
    rows = rg.sample_rows(ROWS[:2], g)
    got = [(r["prefix_id"], r["sample_idx"], r["reward"]) for r in rows]
    assert got == [("p0", 0, 1), ("p0", 1, None), ("p1", 0, 0)]
    assert {"thought", "predicted_suffix", "new_tokens"} <= set(rows[0]) and rows[0]["new_tokens"] == 6
    st = rg.verdict_stats(g)
    assert isinstance(st, JudgeStats) and (st.calls, st.invalid) == (3, 1)
    with pytest.raises(ValueError):
        rg.by_prefix(ROWS, g)


def test_comparison_intervals_are_paired_over_shared_prefixes():
    """The interval's own point is compare()'s mean_reward_delta (a mean of per-prefix deltas), and a
    pair whose arms move together on every prefix gets a narrower interval than the unpaired spread."""
    ids = [f"p{i}" for i in range(12)]
    base = {p: [1, 0, 0, 0] if i % 2 else [1, 1, 1, 0] for i, p in enumerate(ids)}  # prefixes differ a lot
    better = {p: v[:3] + [1] for p, v in base.items()}  # +1/4 on every prefix
    better["p0"] = [1, 1, 1, 0]  # one prefix unchanged, so the deltas are not all alike
    c = rg.compare(base, better)
    iv = rg.delta_interval(base, better)
    assert iv.value == pytest.approx(c["mean_reward_delta"]) and iv.clusters == 12
    assert 0 < iv.low < c["mean_reward_delta"] < iv.high  # paired: the prefix-to-prefix spread cancels
    missing = dict(better, p3=[None])  # no valid verdict: left out of the pair, as compare() leaves it
    assert rg.delta_interval(base, {k: [x for x in v if x is not None] for k, v in missing.items()}).clusters == 11


def test_every_go_no_go_field_is_printed_with_its_interval():
    rows = [{"id": f"p{i}"} for i in range(8)]
    gb = {
        "think_base": groups(*([[1, 0, 0, 0]] * 4 + [[0, 0, 0, 0]] * 4)),
        "think_phase3": groups(*([[1, 1, 0, 0]] * 4 + [[0, 0, 0, 0]] * 4)),
        "think_base_rlmt": groups(*([[1, 0, None, 0]] * 8)),
        "think_phase3_rlmt": groups(*([[1, 1, 1, 1]] * 8)),
    }
    summary = rg.summarize(rows, gb, 0.5, 0.5)
    ivs = summary["go_no_go_intervals"]
    assert set(ivs) == set(rg.GO_NO_GO_KEYS)
    assert ivs["reward_validity_ok"][0]["what"].startswith("think_base_rlmt invalid_rate")  # the highest arm
    assert ivs["reward_validity_ok"][0]["value"] == pytest.approx(0.25)
    assert ivs["variance_ok"][0]["what"].startswith("think_phase3_rlmt near_zero_groups")  # all-one groups
    higher = ivs["phase3_higher_mean_reward"][0]
    assert higher["value"] == pytest.approx(
        summary["comparisons"]["think_phase3_minus_think_base"]["mean_reward_delta"]
    )
    assert higher["low"] <= higher["value"] <= higher["high"]
    lines = rg.go_no_go_lines(summary)
    assert [ln.split(":")[0] for ln in lines] == list(rg.GO_NO_GO_KEYS)
    assert all("(95% CI " in ln for ln in lines)
    assert (
        lines[3].startswith("phase3_higher_mean_reward: true; think_phase3 - think_base mean reward")
        and "+0.1250" in lines[3]
    )
    flat = rg.flat_metrics(summary)
    assert flat["go_no_go/phase3_more_reward_separable/evidence1_value"] == pytest.approx(0.0)  # mixed: 4 vs 4
    assert "think_phase3_minus_think_base/mean_reward_delta_ci95_low" in flat
    json.dumps(summary)  # summary.json stays plain JSON
