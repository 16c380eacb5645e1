import pytest

from thinkmid.evals.stats import mean_at_k, pass_at_k, wilson_interval


def test_wilson_known_values():
    # Hand-computed Wilson 95% intervals.
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.236590, abs=1e-6) and hi == pytest.approx(0.763410, abs=1e-6)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(3.8416 / 13.8416, abs=1e-9)  # z^2 / (n + z^2)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(10 / 13.8416, abs=1e-9)
    lo, hi = wilson_interval(1113, 10552)  # the reference think_base GSM8K Mean@8
    assert lo == pytest.approx(0.099760, abs=1e-6) and hi == pytest.approx(0.111483, abs=1e-6)


def test_wilson_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    z = stats.norm.ppf(0.975)
    for s, n in [(1, 7), (133, 198), (0, 3), (671, 1319)]:
        ci = stats.binomtest(s, n).proportion_ci(method="wilson")
        assert wilson_interval(s, n, z=z) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    lo, hi = wilson_interval(5, 10, z=1.0)
    assert 0.236 < lo < 0.5 < hi < 0.764  # narrower than at z=1.96


def test_mean_and_pass_at_k():
    correct = [[True, False], [False, False], [True, True], [False, True]]
    m, p = mean_at_k(correct), pass_at_k(correct)
    assert (m.value, m.successes, m.n) == (0.5, 4, 8)
    assert (p.value, p.successes, p.n) == (0.75, 3, 4)
    assert p.interval() == wilson_interval(3, 4)
    assert mean_at_k([]).value == 0.0 and pass_at_k([]).n == 0


# ---- cluster bootstrap ------------------------------------------------------------------------------

import random  # noqa: E402

from thinkmid.evals.stats import (  # noqa: E402
    Interval,
    cluster_mean_interval,
    mean_at_k_interval,
    paired_delta_interval,
    stratified_paired_delta_interval,
)


def _problems(n: int, k: int, seed: int, spread: float = 1.0) -> list[list[bool]]:
    """n problems of k samples; each problem's own success probability varies (difficulty)."""
    rng = random.Random(seed)
    probs = [min(1.0, max(0.0, 0.5 + spread * (rng.random() - 0.5))) for _ in range(n)]
    return [[rng.random() < p for _ in range(k)] for p in probs]


def test_all_or_nothing_problems_get_the_width_of_their_problem_count():
    # 10 problems always right, 10 always wrong, k=8: 160 samples but only 20 independent problems.
    correct = [[True] * 8] * 10 + [[False] * 8] * 10
    iv = mean_at_k_interval(correct)
    w_lo, w_hi = mean_at_k(correct).interval()
    p_lo, p_hi = wilson_interval(10, 20)  # the problems as the trials
    assert iv.value == 0.5 and iv.clusters == 20
    assert (iv.high - iv.low) > 2 * (w_hi - w_lo)  # far wider than the samples-as-independent Wilson
    assert (iv.high - iv.low) == pytest.approx(p_hi - p_lo, rel=0.35)  # close to 20 trials' width


def test_one_sample_per_problem_is_close_to_wilson():
    rng = random.Random(1)
    correct = [[rng.random() < 0.3] for _ in range(400)]
    iv = cluster_mean_interval(correct)
    lo, hi = mean_at_k(correct).interval()
    assert iv.low == pytest.approx(lo, abs=0.01) and iv.high == pytest.approx(hi, abs=0.01)


def test_matches_a_hand_written_cluster_bootstrap():
    """scipy's percentile interval equals resampling whole problems by hand (up to Monte Carlo error)."""
    np = pytest.importorskip("numpy")
    correct = _problems(60, 4, seed=2)
    iv = cluster_mean_interval(correct, method="percentile", n_resamples=4000)
    hits = np.array([sum(r) for r in correct], float)
    n = np.array([len(r) for r in correct], float)
    rng = np.random.default_rng(123)
    idx = rng.integers(0, len(correct), size=(4000, len(correct)))
    stat = hits[idx].sum(1) / n[idx].sum(1)
    lo, hi = np.percentile(stat, [2.5, 97.5])
    assert iv.low == pytest.approx(lo, abs=0.012) and iv.high == pytest.approx(hi, abs=0.012)


def test_coverage_on_clustered_data():
    """Simulated evals with hard and easy problems: the cluster interval covers the true Mean@k about
    95% of the time; the samples-as-independent Wilson interval does not."""
    rng = random.Random(3)
    truth, cover_boot, cover_wilson, trials = 0.5, 0, 0, 120
    for t in range(trials):
        correct = [[rng.random() < p for _ in range(8)] for p in (rng.choice((0.1, 0.9)) for _ in range(30))]
        iv = cluster_mean_interval(correct, n_resamples=999, seed=t)
        lo, hi = mean_at_k(correct).interval()
        cover_boot += iv.low <= truth <= iv.high
        cover_wilson += lo <= truth <= hi
    assert cover_boot / trials >= 0.88, cover_boot
    assert cover_wilson / trials <= 0.80, cover_wilson


def test_paired_delta_sees_a_small_consistent_gain_that_unpaired_intervals_miss():
    rng = random.Random(4)
    left = {f"p{i}": row for i, row in enumerate(_problems(200, 4, seed=5))}
    right = {p: [c or rng.random() < 0.08 for c in row] for p, row in left.items()}  # a few more right
    d = paired_delta_interval(left, right)
    a, b = cluster_mean_interval(list(left.values())), cluster_mean_interval(list(right.values()))
    assert d.value == pytest.approx(b.value - a.value) and d.clusters == 200
    assert d.low > 0  # paired: the gain is resolved ...
    assert a.high > b.low  # ... although the two arms' own intervals overlap


def test_paired_delta_uses_shared_clusters_and_valid_samples_only():
    from thinkmid.evals.reward_gate import compare

    left = {"a": [1, 0, None], "b": [0, 0], "c": [1, 1], "only_left": [1, 1], "none": [None]}
    right = {"a": [1, 1, 1], "b": [1, None], "c": [0, 1], "only_right": [0], "none": [1]}
    d = paired_delta_interval(left, right)
    assert d.clusters == 3
    assert d.value == pytest.approx(
        compare(
            {k: [x for x in v if x is not None] for k, v in left.items()},
            {k: [x for x in v if x is not None] for k, v in right.items()},
        )["mean_reward_delta"]
    )
    assert -1 <= d.low <= d.value <= d.high <= 1


def test_seeded_and_deterministic():
    correct = _problems(50, 4, seed=6)
    assert mean_at_k_interval(correct) == mean_at_k_interval(correct)
    assert isinstance(mean_at_k_interval(correct), Interval)
    assert mean_at_k_interval(correct, seed=1) != mean_at_k_interval(correct, seed=2)


def test_edges():
    assert cluster_mean_interval([]) == Interval(0.0, 0.0, 1.0, 0)
    assert cluster_mean_interval([[None, None]]) == Interval(0.0, 0.0, 1.0, 0)
    assert cluster_mean_interval([[1, 0]]) == Interval(0.5, 0.0, 1.0, 1)  # one problem: nothing to resample
    assert paired_delta_interval({}, {"a": [1]}) == Interval(0.0, -1.0, 1.0, 0)
    # all wrong on every problem: no spread to resample; Wilson with the problems as trials
    zero = cluster_mean_interval([[False] * 4] * 10)
    assert (zero.value, zero.low) == (0.0, 0.0) and zero.high == pytest.approx(wilson_interval(0, 10)[1], abs=1e-4)
    same = {f"p{i}": [i % 2, 1] for i in range(10)}
    tie = paired_delta_interval(same, same)  # identical arms: 0 +- the reach of 0 flips in 10 problems
    assert tie.value == 0 and tie.high == pytest.approx(wilson_interval(0, 10)[1], abs=1e-4) and tie.low == -tie.high
    wide = cluster_mean_interval([[2.0, 4.0], [3.0, 3.0], [10.0]], bounds=(0.0, 10.0))
    assert wide.value == pytest.approx(22 / 5) and wide.low <= wide.value <= wide.high


def test_stratified_macro_delta_is_the_mean_of_benchmark_deltas_with_a_paired_interval():
    rng = random.Random(7)
    big = {f"p{i}": row for i, row in enumerate(_problems(300, 4, seed=8))}
    small = {f"q{i}": row for i, row in enumerate(_problems(40, 4, seed=9))}
    gain = lambda d, p: {k: [c or rng.random() < p for c in v] for k, v in d.items()}  # noqa: E731
    strata = {"big": (big, gain(big, 0.0)), "small": (small, gain(small, 0.3))}
    m = stratified_paired_delta_interval(strata)
    per = [paired_delta_interval(left, right) for left, right in strata.values()]
    assert m.value == pytest.approx(sum(d.value for d in per) / 2) and m.clusters == 340
    assert 0 < m.low < m.value < m.high  # the small benchmark's gain, weighed as half the Macro
    one = stratified_paired_delta_interval({"small": strata["small"]})
    assert one.low == pytest.approx(per[1].low, abs=0.03) and one.high == pytest.approx(per[1].high, abs=0.03)
    assert stratified_paired_delta_interval(strata) == m  # seeded
    tie = stratified_paired_delta_interval({"big": (big, big)})
    assert tie.value == 0 and tie.low == -tie.high == pytest.approx(-wilson_interval(0, 300)[1], abs=1e-4)
    assert stratified_paired_delta_interval({"x": ({}, {"a": [1]})}) == Interval(0.0, -1.0, 1.0, 0)
