"""Sample-level Mean@k, problem-level Pass@k (any of k correct), Wilson score intervals, and cluster
bootstrap intervals for numbers pooled over k samples per problem or prefix.

`correct[i][j]` is whether sample j of problem i was right; each rate comes back with its counts so
tables can print "1113 / 10552" next to the value, as the reference results do.

Why a cluster bootstrap: the k samples of one problem (or one gate prefix) share the problem, so
they are not k independent trials; a Wilson interval over all samples is too narrow when problems
differ in difficulty. cluster_mean_interval resamples whole problems (scipy.stats.bootstrap with each
problem's (sum, count) as one observation, the pooled mean sum/count as the statistic), and
paired_delta_interval resamples the problems both arms answered, with the same draw for both arms, so
a delta between arms on the same problems keeps their pairing. Both are seeded: the same inputs give
the same bytes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple


class Rate(NamedTuple):
    value: float  # successes / n (0.0 when n == 0, so metrics files never hold NaN)
    successes: int
    n: int

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n, z)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there is no data."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp float noise so p=0 gives exactly 0 and p=1 exactly 1.
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_at_k(correct: list[list[bool]]) -> Rate:
    """Fraction of all samples that are correct (pooled over problems, so every sample weighs the same)."""
    hits = sum(int(bool(c)) for row in correct for c in row)
    total = sum(len(row) for row in correct)
    return Rate(hits / total if total else 0.0, hits, total)


def pass_at_k(correct: list[list[bool]]) -> Rate:
    """Fraction of problems with at least one correct sample among their k."""
    hits = sum(1 for row in correct if any(row))
    return Rate(hits / len(correct) if correct else 0.0, hits, len(correct))


# ---- cluster bootstrap -------------------------------------------------------------------------------


class Interval(NamedTuple):
    value: float  # the point estimate on all the data
    low: float
    high: float
    clusters: int  # problems / prefixes it stands on


N_RESAMPLES = 9999
_MAX_BATCH_CELLS = 2_000_000  # resamples x clusters per scipy batch: bounds memory on 10k-problem sets


def _pooled(*arrays, axis=-1):
    """Statistic for scipy: arrays come as (sums, counts[, sums, counts]) per cluster."""
    sums, counts = arrays[0], arrays[1]
    value = sums.sum(axis=axis) / counts.sum(axis=axis)
    if len(arrays) == 4:
        value = arrays[2].sum(axis=axis) / arrays[3].sum(axis=axis) - value
    return value


def _bootstrap(
    data: tuple, value: float, confidence: float, n_resamples: int, seed: int, method: str
) -> tuple[float, float]:
    import numpy as np
    from scipy import stats

    n = len(data[0])
    batch = max(1, min(n_resamples, _MAX_BATCH_CELLS // max(1, n)))
    for m in dict.fromkeys((method, "percentile")):  # BCa is undefined on degenerate data: fall back
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning, divide-by-zero in BCa's jackknife
            res = stats.bootstrap(
                data,
                _pooled,
                paired=True,
                vectorized=True,
                n_resamples=n_resamples,
                confidence_level=confidence,
                method=m,
                batch=batch,
                rng=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high) and high > low:
            return min(low, value), max(high, value)
    return value, value  # every resample gave the same statistic


def _no_spread(
    value: float, sums: list[float], counts: list[int], bounds: tuple[float, float], confidence: float, delta: bool
) -> tuple[float, float]:
    """Every cluster alike (all wrong, or both arms equal on every problem): resampling shows no
    spread, which says nothing about the problems not drawn. For rates (bounds (0, 1)) fall back to
    Wilson: at 0 or 1 with the clusters as trials (0 or n events in n clusters), else with the
    samples as trials; a delta gets +- the upper end of 0 events in n clusters."""
    if tuple(bounds) != (0.0, 1.0):
        return value, value
    from statistics import NormalDist

    z, n = NormalDist().inv_cdf(0.5 + confidence / 2), len(counts)
    if delta:
        reach = wilson_interval(0, n, z)[1]
        return max(-1.0, value - reach), min(1.0, value + reach)
    if value in (0.0, 1.0):
        lo, hi = wilson_interval(int(value) * n, n, z)
        return (0.0, hi) if value == 0.0 else (lo, 1.0)
    if all(float(x).is_integer() for x in sums):
        return wilson_interval(int(sum(sums)), sum(counts), z)
    return value, value


def _sum_count(row) -> tuple[float, int]:
    vals = [float(v) for v in row if v is not None]
    return sum(vals), len(vals)


def _clusters(rows) -> tuple[list[float], list[int]]:
    sums, counts = [], []
    for row in rows:
        total, n = _sum_count(row)
        if n:  # a problem with no valid sample carries no information
            sums.append(total)
            counts.append(n)
    return sums, counts


def cluster_mean_interval(
    clusters: Sequence[Sequence[float | bool | None]],
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: str = "BCa",
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Interval:
    """The pooled mean over every sample (Mean@k: correct samples / samples) with a bootstrap
    interval that resamples whole clusters (problems, prefixes). `None` entries (an invalid verdict)
    are left out. With fewer than 2 clusters there is nothing to resample: the interval is `bounds`
    (like Wilson's (0, 1) with no data)."""
    sums, counts = _clusters(clusters)
    if not counts:
        return Interval(0.0, bounds[0], bounds[1], 0)
    value = sum(sums) / sum(counts)
    if len(counts) < 2:
        return Interval(value, bounds[0], bounds[1], len(counts))
    low, high = _bootstrap((sums, counts), value, confidence, n_resamples, seed, method)
    if low == high:
        low, high = _no_spread(value, sums, counts, bounds, confidence, delta=False)
    return Interval(value, low, high, len(counts))


def paired_delta_interval(
    left: Mapping[str, Sequence[float | bool | None]],
    right: Mapping[str, Sequence[float | bool | None]],
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: str = "BCa",
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Interval:
    """`right` minus `left` pooled means over the clusters (problem or prefix ids) both have a valid
    sample for, with a paired cluster bootstrap interval (one draw of clusters for both arms).

    On one-element lists of per-prefix mean rewards (reward_gate.delta_interval) this is compare()'s
    mean_reward_delta (on the raw rewards, a pooled delta that weighs prefixes by valid verdicts); on per-problem
    `correct` lists it is the Mean@k delta; on one-element lists `[any(correct)]` the Pass@k delta.
    With fewer than 2 shared clusters the interval is the widest delta `bounds` allow."""
    widest = (bounds[0] - bounds[1], bounds[1] - bounds[0])
    shared = [c for c in left if c in right]
    ls, lc, rs, rc = [], [], [], []
    for c in shared:
        (a_sum, a_n), (b_sum, b_n) = _sum_count(left[c]), _sum_count(right[c])
        if a_n and b_n:
            ls.append(a_sum), lc.append(a_n), rs.append(b_sum), rc.append(b_n)
    if not lc:
        return Interval(0.0, widest[0], widest[1], 0)
    value = sum(rs) / sum(rc) - sum(ls) / sum(lc)
    if len(lc) < 2:
        return Interval(value, widest[0], widest[1], len(lc))
    low, high = _bootstrap((ls, lc, rs, rc), value, confidence, n_resamples, seed, method)
    if low == high:
        low, high = _no_spread(value, ls, lc, bounds, confidence, delta=True)
    return Interval(value, low, high, len(lc))


def mean_at_k_interval(correct: list[list[bool]], **kw) -> Interval:
    """Mean@k with its problem-clustered bootstrap interval (use instead of mean_at_k(...).interval())."""
    return cluster_mean_interval(correct, **kw)


def stratified_paired_delta_interval(
    strata: Mapping[
        str, tuple[Mapping[str, Sequence[float | bool | None]], Mapping[str, Sequence[float | bool | None]]]
    ],
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The Macro delta: the mean over strata (benchmarks) of each stratum's paired pooled delta
    (`right` minus `left`, as paired_delta_interval), with a percentile interval from a bootstrap that
    resamples the shared clusters within each stratum independently (a stratified paired cluster
    bootstrap: the benchmarks keep their sizes, as the Macro average weighs them equally).
    `clusters` is the sum over strata; a stratum with no shared valid cluster is left out."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values, draws, total = [], np.zeros(n_resamples), 0
    for name in sorted(strata):
        left, right = strata[name]
        rows = [(_sum_count(left[c]), _sum_count(right[c])) for c in left if c in right]
        rows = [(a, b) for a, b in rows if a[1] and b[1]]
        if not rows:
            continue
        ls, lc, rs, rc = (
            np.array(x, dtype=float) for x in zip(*[(a[0], a[1], b[0], b[1]) for a, b in rows], strict=True)
        )
        values.append(rs.sum() / rc.sum() - ls.sum() / lc.sum())
        n, step = len(rows), max(1, _MAX_BATCH_CELLS // len(rows))
        for start in range(0, n_resamples, step):  # batched: [resamples, clusters] index draws
            idx = rng.integers(0, n, size=(min(step, n_resamples - start), n))
            draws[start : start + len(idx)] += rs[idx].sum(1) / rc[idx].sum(1) - ls[idx].sum(1) / lc[idx].sum(1)
        total += n
    if not values:
        return Interval(0.0, -1.0, 1.0, 0)
    value, draws = sum(values) / len(values), draws / len(values)
    if total < 2:
        return Interval(value, -1.0, 1.0, total)
    alpha = (1 - confidence) / 2
    low, high = (float(q) for q in np.quantile(draws, [alpha, 1 - alpha]))
    if low == high:  # no spread (identical arms): as paired_delta_interval, 0 +- the reach of 0 flips
        from statistics import NormalDist

        reach = wilson_interval(0, total, NormalDist().inv_cdf(0.5 + confidence / 2))[1]
        low, high = max(-1.0, value - reach), min(1.0, value + reach)
    return Interval(value, min(low, value), max(high, value), total)
