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
