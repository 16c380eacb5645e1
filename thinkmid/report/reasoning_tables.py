"""The reasoning results tables (Mean@k, Pass@k, math-verify, macro, the record's direct comparisons).

Row order comes from the fixed arm and benchmark tuples, then sorted extras (see tables.py).
"""

from __future__ import annotations

from thinkmid.report.fmt import ci, d1, d6, delta_ci, f1, f6, md_table, plain, spec_table
from thinkmid.report.inputs import BENCHMARKS
from thinkmid.report.tables import LINEAGE_ARMS, ordered

BENCH_NAMES = {
    "gsm8k": "GSM8K",
    "math500": "MATH-500",
    "gpqa_diamond": "GPQA-Diamond",
    "olympiadbench": "OlympiadBench",
}
# (right, left): each delta is right minus left, the four comparisons the results record draws.
REASONING_COMPARISONS = (
    ("think_base_rlmt", "think_base"),
    ("think_phase3_rlmt", "think_phase3"),
    ("think_phase3_rlmt", "think_base_rlmt"),
    ("think_phase3", "think_base"),
)
# How the record names the arms in its direct reasoning comparisons.
ARM_LABELS = {
    "think_base": "Base+Think",
    "think_base_rlmt": "Base+Think+RLMT",
    "think_phase3": "Phase3+Think",
    "think_phase3_rlmt": "Phase3+Think+RLMT",
}


def reasoning_k(reasoning: dict[str, dict]) -> int | None:
    """The one k shared by every benchmark row, or None when the rows disagree (headers then say k)."""
    ks = {int(b["k"]) for r in reasoning.values() for b in r["benchmarks"].values()}
    return ks.pop() if len(ks) == 1 else None


def _at(k: int | None) -> str:
    return str(k) if k is not None else "k"


def _bench_rows(reasoning: dict[str, dict], cells, macro=None) -> list[list[str]]:
    """[arm, benchmark, *cells(row)] per arm and benchmark in their fixed orders; `macro(arm's macro)`,
    when given, adds the arm's macro row (or None for none) after its benchmarks."""
    rows = []
    for arm in ordered(reasoning, LINEAGE_ARMS):
        benches = reasoning[arm]["benchmarks"]
        rows += [[arm, BENCH_NAMES.get(b, b), *cells(benches[b])] for b in ordered(benches, BENCHMARKS)]
        if macro is not None and (m := macro(reasoning[arm]["macro"])) is not None:
            rows.append([arm, "Macro", *m])
    return rows


def reasoning_table(reasoning: dict[str, dict]) -> str:
    k = _at(reasoning_k(reasoning))
    rows = _bench_rows(
        reasoning,
        lambda r: [
            f6(r["mean_at_k"]),
            f"{plain(r['correct'])} / {plain(r['samples'])}",
            f6(r["pass_at_k"]),
            f"{plain(r['any_pass'])} / {plain(r['problems'])}",
            f1(r["avg_completion_tokens"]),
            ci(r["mean_at_k_lo"], r["mean_at_k_hi"]),
            ci(r["pass_at_k_lo"], r["pass_at_k_hi"]),
        ],
    )
    headers = [
        "Arm",
        "Benchmark",
        f"Mean@{k}",
        "Correct / Samples",
        f"Pass@{k} Any",
        "Any Pass / Problems",
        "Avg Completion Tokens",
        f"Mean@{k} 95% CI",
        f"Pass@{k} 95% CI",
    ]
    return md_table(headers, rows, ["l", "l"] + ["r"] * 7)


def math_verify_table(reasoning: dict[str, dict]) -> str:
    """The second score: math-verify on the visible answer (GPQA: our stricter letter reader)."""
    k = _at(reasoning_k(reasoning))
    rows = _bench_rows(
        reasoning,
        lambda r: [
            f6(r["mean_at_k_math_verify"]),
            f"{plain(r['correct_math_verify'])} / {plain(r['samples'])}",
            f6(r["pass_at_k_math_verify"]),
            f"{plain(r['any_pass_math_verify'])} / {plain(r['problems'])}",
        ],
        macro=lambda m: (
            [f6(m["mean_at_k_math_verify"]), "", f6(m["pass_at_k_math_verify"]), ""]
            if "mean_at_k_math_verify" in m
            else None
        ),
    )
    headers = [
        "Arm",
        "Benchmark",
        f"Mean@{k} (math-verify)",
        "Correct / Samples",
        f"Pass@{k} Any (math-verify)",
        "Any Pass / Problems",
    ]
    return md_table(headers, rows, ["l", "l"] + ["r"] * 4)


def condition_view(reasoning: dict[str, dict], cond: str) -> dict[str, dict]:
    """The arms' results under an extra condition (e.g. think_opener), shaped like the main results."""
    return {a: dict(r["conditions"][cond], arm=a) for a, r in reasoning.items() if cond in (r.get("conditions") or {})}


def macro_table(reasoning: dict[str, dict]) -> str:
    k = _at(reasoning_k(reasoning))
    arms = ordered(reasoning, LINEAGE_ARMS)
    cols = [
        (f"Macro Mean@{k}", "mean_at_k", f6),
        (f"Macro Pass@{k} Any", "pass_at_k", f6),
        ("Macro Avg Completion Tokens", "avg_completion_tokens", f1),
    ]
    return spec_table(cols, [reasoning[a]["macro"] for a in arms], ("Arm", arms))


def reasoning_deltas(reasoning: dict[str, dict]) -> list[dict]:
    """Right minus left per shared benchmark, then Macro, for each comparison whose two arms both ran."""
    out = []
    for right, left in REASONING_COMPARISONS:
        if right not in reasoning or left not in reasoning:
            continue
        rb, lb = reasoning[right]["benchmarks"], reasoning[left]["benchmarks"]
        pairs = [(b, rb[b], lb[b]) for b in ordered(set(rb) & set(lb), BENCHMARKS)]
        pairs.append(("macro", reasoning[right]["macro"], reasoning[left]["macro"]))
        for bench, r, l in pairs:
            out.append(
                {
                    "right": right,
                    "left": left,
                    "benchmark": bench,
                    "mean_at_k_delta": r["mean_at_k"] - l["mean_at_k"],
                    "pass_at_k_delta": r["pass_at_k"] - l["pass_at_k"],
                    "avg_completion_tokens_delta": r["avg_completion_tokens"] - l["avg_completion_tokens"],
                }
            )
    return out


def comparisons_table(reasoning: dict[str, dict], intervals: dict | None = None) -> str:
    """The record's deltas; `intervals` ((right, left, benchmark) -> (Mean@k, Pass@k) paired intervals,
    report/intervals.py) adds two columns, n/a where the per-sample files were absent (Macro: unless they cover
    every benchmark of both arms, then a stratified paired interval)."""
    k = _at(reasoning_k(reasoning))
    deltas = reasoning_deltas(reasoning)
    names = dict(BENCH_NAMES, macro="Macro")
    intervals = intervals or {}

    def cis(d):
        iv = intervals.get((d["right"], d["left"], d["benchmark"]))
        return ["n/a", "n/a"] if iv is None else [delta_ci(i.low, i.high) for i in iv]

    rows = [
        [
            f"{ARM_LABELS.get(d['right'], d['right'])} vs {ARM_LABELS.get(d['left'], d['left'])}",
            names.get(d["benchmark"], d["benchmark"]),
            d6(d["mean_at_k_delta"]),
            d6(d["pass_at_k_delta"]),
            d1(d["avg_completion_tokens_delta"]),
        ]
        + cis(d)
        for d in deltas
    ]
    skipped = [f"{r} vs {l}" for r, l in REASONING_COMPARISONS if r not in reasoning or l not in reasoning]
    headers = [
        "Comparison",
        "Benchmark",
        f"Mean@{k} Delta",
        f"Pass@{k} Any Delta",
        "Avg Token Delta",
        f"Mean@{k} Delta 95% CI (paired, over problems)",
        f"Pass@{k} Any Delta 95% CI (paired)",
    ]
    table = md_table(headers, rows, ["l", "l"] + ["r"] * 5) if rows else "No comparison has both of its arms."
    if skipped:
        table += "\n\nNot run (an arm is missing): " + ", ".join(skipped) + "."
    return table
