"""Paired 95% intervals for the reasoning comparisons, from the per-sample JSONL the reasoning eval writes.

The record's deltas are differences of pooled rates; the k samples of one problem are not independent,
so each delta gets a cluster bootstrap over the problems both arms answered, the same draw for both
arms (thinkmid/evals/stats.py: paired_delta_interval). Pass@k is the same on one-element clusters
`[any(correct)]`. The Macro row (a mean over benchmarks, the record's) gets a stratified paired
bootstrap: problems resampled within each benchmark, the benchmarks kept equally weighted
(stats.stratified_paired_delta_interval; our addition, the record gives no interval).
"""

from __future__ import annotations

from pathlib import Path

from thinkmid.errors import InputError
from thinkmid.evals.stats import Interval, paired_delta_interval, stratified_paired_delta_interval
from thinkmid.io import read_jsonl

SAMPLES_DIR = "reasoning_eval"  # reports/reasoning_eval/<arm>/<benchmark>.jsonl (the plain condition)


def load_reasoning_samples(reports: str | Path, arms, benchmarks) -> dict[str, dict[str, dict[str, list[bool]]]]:
    """arm -> benchmark -> problem id -> the `correct` of its samples; files absent are left out."""
    out: dict[str, dict[str, dict[str, list[bool]]]] = {}
    for arm in arms:
        for bench in benchmarks:
            path = Path(reports) / SAMPLES_DIR / arm / f"{bench}.jsonl"
            if not path.exists():
                continue
            per_problem: dict[str, list[bool]] = {}
            for r in read_jsonl(path, ("problem_id", "correct")):
                per_problem.setdefault(str(r["problem_id"]), []).append(bool(r["correct"]))
            if not per_problem:
                raise InputError(f"{path}: no samples (the reasoning eval writes one row per sample)")
            out.setdefault(arm, {})[bench] = per_problem
    return out


def reasoning_delta_intervals(
    samples: dict, comparisons, summaries: dict | None = None
) -> dict[tuple[str, str, str], tuple[Interval, Interval]]:
    """(right, left, benchmark) -> (Mean@k delta interval, Pass@k delta interval), right minus left.
    (right, left, "macro") too when `summaries` (arm -> its reasoning summary) shows that both arms'
    sample files cover every benchmark of their Macro average."""
    out = {}
    for right, left in comparisons:
        rs, ls = samples.get(right, {}), samples.get(left, {})
        for bench in sorted(set(rs) & set(ls)):
            r, l = rs[bench], ls[bench]
            mean = paired_delta_interval(l, r)
            passed = paired_delta_interval({p: [any(v)] for p, v in l.items()}, {p: [any(v)] for p, v in r.items()})
            out[(right, left, bench)] = (mean, passed)
        shared = sorted(set(rs) & set(ls))
        macro_of = lambda a: set((summaries or {}).get(a, {}).get("benchmarks", {}))  # noqa: E731
        if shared and macro_of(right) == macro_of(left) == set(shared):  # the same benchmarks as the Macro row
            anyk = lambda d: {p: [any(v)] for p, v in d.items()}  # noqa: E731
            out[(right, left, "macro")] = (
                stratified_paired_delta_interval({b: (ls[b], rs[b]) for b in shared}),
                stratified_paired_delta_interval({b: (anyk(ls[b]), anyk(rs[b])) for b in shared}),
            )
    return out
