"""Sample-level Mean@k, problem-level Pass@k (any of k correct) and Wilson score intervals.

`correct[i][j]` is whether sample j of problem i was right; each rate comes back with its counts so
tables can print "1113 / 10552" next to the value, as the reference results do.
"""

from __future__ import annotations

import math
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
