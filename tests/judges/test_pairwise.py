import random

import pytest

from thinkmid.judges.base import JudgeStats, Verdict
from thinkmid.judges.pairwise import score_pool, score_pools, select_pair


class LongerWins:
    """Deterministic judge: the longer continuation wins; equal length -> invalid."""

    def __init__(self):
        self.stats = JudgeStats()
        self.calls = []

    def judge_pairs(self, items):
        self.calls.append(len(items))
        out = []
        for _, a, b in items:
            out.append(Verdict(None, "", "tie") if len(a) == len(b) else Verdict("A" if len(a) > len(b) else "B"))
        return out


class AlwaysA(LongerWins):
    def judge_pairs(self, items):
        self.calls.append(items)
        return [Verdict("A") for _ in items]


def test_score_pool_counts_wins_over_all_pairs():
    judge = LongerWins()
    scores, invalid = score_pool("p", ["a", "bbb", "cc", "dddd"], judge, random.Random(0))
    assert scores == [0.0, 2 / 3, 1 / 3, 1.0] and invalid == 0
    assert judge.calls == [6]  # C(4,2) pairs, one call


def test_invalid_pairs_give_no_win():
    scores, invalid = score_pool("p", ["aa", "bb", "c"], LongerWins(), random.Random(0))
    assert invalid == 1 and scores == [0.5, 0.5, 0.0]


def test_order_is_randomized_so_a_positional_judge_is_not_decisive():
    judge = AlwaysA()
    pool = [f"c{i}" for i in range(6)]
    scores, _ = score_pool("p", pool, judge, random.Random(1))
    shown_first = [it[1] for it in judge.calls[0]]
    assert len(set(shown_first)) > 1
    assert sum(scores) * 5 == pytest.approx(15)  # every pair gives exactly one win
    assert len(set(scores)) > 1
    scores2, _ = score_pool("p", pool, AlwaysA(), random.Random(1))
    assert scores2 == scores  # seeded: reproducible


def test_score_pools_is_one_call_and_matches_per_prefix():
    judge = LongerWins()
    pools = [["a", "bb", "ccc"], ["dddd", "e"], ["x", "yy", "zzz", "wwww"]]
    res = score_pools(["p1", "p2", "p3"], pools, judge, random.Random(0))
    assert judge.calls == [3 + 1 + 6]
    assert res[0] == ([0.0, 0.5, 1.0], 0) and res[1] == ([1.0, 0.0], 0)
    assert res[2][0] == [0.0, 1 / 3, 2 / 3, 1.0]
    with pytest.raises(ValueError):
        score_pools(["p"], pools, judge, random.Random(0))


def test_select_pair_argmax_argmin():
    assert select_pair([0.2, 0.9, 0.0, 0.5], step=0, is_rollout=[True] * 4) == (1, 2)


def test_select_pair_ties_rotate_with_step():
    scores = [1.0, 0.0, 1.0, 0.0, 1.0]
    picks = {select_pair(scores, step=s, is_rollout=[True] * 5) for s in range(6)}
    assert picks == {(0, 1), (2, 3), (4, 1), (0, 3), (2, 1), (4, 3)}
    assert select_pair(scores, 0, [True] * 5) == (0, 1)
    assert select_pair(scores, 1, [True] * 5) == (2, 3)
    assert select_pair(scores, 2, [True] * 5) == (4, 1)


def test_select_pair_all_equal_is_skipped():
    assert select_pair([0.5, 0.5, 0.5], 3, [True] * 3) is None
    assert select_pair([0.0], 0, [True]) is None


def test_select_pair_never_rejects_a_non_rollout():
    # index 0 is the true suffix (not a rollout) and scores lowest: the lowest rollout is rejected
    assert select_pair([0.0, 1.0, 0.5, 0.25], 0, [False, True, True, True]) == (1, 3)
    # it can be chosen
    assert select_pair([1.0, 0.0, 0.5], 0, [False, True, True]) == (0, 1)
    # only non-rollouts below the top: nothing to reject
    assert select_pair([0.0, 1.0], 0, [False, True]) is None
    with pytest.raises(ValueError):
        select_pair([0.0, 1.0], 0, [True])
