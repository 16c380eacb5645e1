"""Per-sample artifacts whose aggregates are the results record's rows (rlmt-results.txt), built with
the pipeline's own summarising code: reasoning-eval sample rows (correct / any-pass counts, token
counts) through run.summarize_rows, reward-gate Sample groups (per-prefix success counts) through
reward_gate.summarize, Phase 3 verdicts through continuations.headline."""

from __future__ import annotations

from functools import lru_cache

from thinkmid.evals import continuations as ec
from thinkmid.evals import reward_gate as rg
from thinkmid.evals.reasoning.run import macro, summarize_rows
from thinkmid.rollouts import Sample

K_REASONING = 8
# arm -> benchmark -> (correct, samples, any_pass, problems, avg completion tokens): the record's rows
REASONING = {
    "think_base": {
        "gsm8k": (1113, 10552, 671, 1319, 322.2),
        "math500": (1093, 4000, 287, 500, 371.5),
        "gpqa_diamond": (352, 1584, 133, 198, 320.3),
        "olympiadbench": (125, 1760, 49, 220, 441.9),
    },
    "think_base_rlmt": {
        "gsm8k": (997, 10552, 629, 1319, 324.9),
        "math500": (1151, 4000, 281, 500, 376.2),
        "gpqa_diamond": (355, 1584, 146, 198, 323.3),
        "olympiadbench": (145, 1760, 49, 220, 447.4),
    },
    "think_phase3": {
        "gsm8k": (1091, 10552, 676, 1319, 321.8),
        "math500": (1129, 4000, 284, 500, 362.1),
        "gpqa_diamond": (372, 1584, 141, 198, 323.8),
        "olympiadbench": (138, 1760, 56, 220, 441.0),
    },
    "think_phase3_rlmt": {
        "gsm8k": (1087, 10552, 668, 1319, 322.0),
        "math500": (1095, 4000, 287, 500, 366.2),
        "gpqa_diamond": (353, 1584, 146, 198, 316.6),
        "olympiadbench": (115, 1760, 51, 220, 435.9),
    },
}
TOKEN_OFFSETS = {
    "think_base": (-0.02, -0.01, -0.02, -0.02),
    "think_base_rlmt": (-0.01, 0.03, 0.04, 0.02),
    "think_phase3": (-0.04, 0.02, 0.04, 0.03),
    "think_phase3_rlmt": (-0.04, 0.03, 0.0, 0.02),
}

GATE_ARMS = ("think_base", "think_phase3", "think_base_rlmt", "think_phase3_rlmt")
# Successes out of 16 per gate prefix (64 prefixes), columns in GATE_ARMS order. Found by a small
# search so that the column sums (90, 93, 96, 100 of 1024), the non-zero counts (35, 38, 41, 39 mixed
# groups) and the six pairwise better / worse / tie counts are the record's.
GATE_SUCCESSES = [
    (3, 11, 3, 3),
    (1, 1, 1, 1),
    (6, 1, 5, 5),
    (0, 0, 0, 2),
    (0, 1, 1, 1),
    (5, 0, 3, 0),
    (0, 0, 4, 0),
    (1, 1, 5, 1),
    (0, 4, 4, 0),
    (4, 0, 1, 2),
    (1, 2, 3, 3),
    (2, 2, 3, 3),
    (2, 2, 2, 2),
    (1, 1, 1, 1),
    (0, 0, 0, 0),
    (2, 6, 2, 2),
    (0, 0, 1, 4),
    (1, 1, 0, 0),
    (0, 0, 0, 0),
    (7, 1, 1, 1),
    (0, 0, 0, 0),
    (3, 2, 2, 2),
    (0, 0, 0, 0),
    (3, 2, 7, 0),
    (1, 0, 3, 0),
    (0, 3, 0, 0),
    (0, 0, 0, 0),
    (2, 2, 2, 2),
    (5, 0, 1, 9),
    (0, 0, 4, 2),
    (1, 1, 1, 7),
    (3, 1, 3, 2),
    (3, 1, 1, 1),
    (3, 0, 0, 0),
    (3, 0, 1, 1),
    (0, 1, 2, 0),
    (0, 0, 0, 6),
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (0, 0, 0, 0),
    (0, 3, 0, 2),
    (4, 0, 0, 0),
    (0, 0, 0, 4),
    (0, 0, 3, 5),
    (1, 2, 1, 1),
    (4, 0, 5, 3),
    (0, 2, 0, 1),
    (2, 2, 0, 2),
    (2, 3, 1, 4),
    (2, 2, 2, 1),
    (4, 4, 1, 0),
    (2, 4, 0, 0),
    (0, 2, 1, 0),
    (0, 4, 0, 2),
    (2, 1, 1, 3),
    (1, 2, 1, 1),
    (0, 1, 8, 2),
    (0, 5, 0, 4),
    (1, 1, 0, 0),
    (0, 2, 1, 0),
    (0, 0, 0, 0),
    (0, 0, 2, 0),
    (2, 0, 1, 1),
    (0, 6, 1, 0),
]
K_GATE = 16
# arm -> (avg total new tokens, avg predicted suffix words): the record's gate columns
GATE_LENGTHS = {
    "think_base": (175.8164, 87.2734),
    "think_phase3": (175.8818, 86.7861),
    "think_base_rlmt": (175.8936, 86.3281),
    "think_phase3_rlmt": (175.9229, 88.7979),
}


def _spread(total: int, n: int) -> list[int]:
    """n integers summing to total, as even as possible."""
    base, extra = divmod(total, n)
    return [base + (i < extra) for i in range(n)]


def reasoning_rows(arm: str, bench: str) -> list[dict]:
    """One row per (problem, sample) with the record's counts: the first any_pass problems have a
    correct sample, the remaining correct samples fill those problems up to k each."""
    correct, samples, any_pass, problems, avg_tokens = REASONING[arm][bench]
    assert samples == problems * K_REASONING and any_pass <= correct <= any_pass * K_REASONING
    hits = [1 if i < any_pass else 0 for i in range(problems)]
    left = correct - any_pass
    while left:
        for i in range(any_pass):
            if left and hits[i] < K_REASONING:
                hits[i] += 1
                left -= 1
    # The record prints averages to 0.1 but its macro averages and token deltas come from the unrounded
    # ones (GPQA 323.3 - 320.3 prints +3.1 there): an offset under 0.05 per row, found by a small search,
    # keeps each row's printed value and gives every macro and delta the record's rounding.
    avg = avg_tokens + TOKEN_OFFSETS[arm][list(REASONING[arm]).index(bench)]
    tokens = iter(_spread(round(avg * samples), samples))
    rows = []
    for i in range(problems):
        for j in range(K_REASONING):
            ok = j < hits[i]
            rows.append(
                {
                    "benchmark": bench,
                    "problem_id": f"{bench}-{i}",
                    "sample_idx": j,
                    "correct": ok,
                    "correct_math_verify": ok or (j == K_REASONING - 1 and i % 5 == 0),
                    "completion_tokens": next(tokens),
                }
            )
    return rows


def reasoning_summary(per_bench_rows: dict[str, list[dict]], arm: str) -> dict:
    """What stages/reasoning_eval.py writes, from per-sample rows."""
    benches = {b: summarize_rows(rows, K_REASONING) for b, rows in per_bench_rows.items()}
    return {"arm": arm, "benchmarks": benches, "macro": macro(benches)}


@lru_cache(maxsize=None)
def reasoning_summaries() -> dict[str, dict]:
    return {arm: reasoning_summary({b: reasoning_rows(arm, b) for b in REASONING[arm]}, arm) for arm in REASONING}


SUFFIX_LEN = 126


def _sample(reward: int, thought_len: int, words: int) -> Sample:
    # Every suffix has the same length, so padding suffixes to the longest of a generate batch (the
    # seed's count) changes nothing, and the re-encoded thought counts one more token than the sampled
    # one, standing in for the inserted </think> that our own count adds: both counts agree.
    return Sample(
        prompt_ids=[1],
        thought_ids=[5] * thought_len,
        suffix_ids=[7] * SUFFIX_LEN,
        thought_logps=[0.0] * thought_len,
        suffix_logps=[0.0] * SUFFIX_LEN,
        closed_by_model=True,
        suffix_text=" ".join(["w"] * words),
        thought_text="a b c",
        reward=reward,
        extra={"seed_thought_tokens": thought_len + 1},
    )


def gate_groups() -> tuple[list[dict], dict[str, list[list[Sample]]]]:
    """(gate rows, arm -> 64 groups of 16 judged Samples) with the record's per-arm figures."""
    rows = [{"id": f"gate-{i}"} for i in range(len(GATE_SUCCESSES))]
    n = len(GATE_SUCCESSES) * K_GATE
    out = {}
    for a, arm in enumerate(GATE_ARMS):
        tok, words = GATE_LENGTHS[arm]
        new_tokens = iter(_spread(round(tok * n), n))
        suffix_words = iter(_spread(round(words * n), n))
        groups = []
        for succ in GATE_SUCCESSES:
            g = []
            for j in range(K_GATE):
                g.append(_sample(int(j < succ[a]), next(new_tokens) - 1 - SUFFIX_LEN, next(suffix_words)))
            groups.append(g)
        out[arm] = groups
    return rows, out


def gate_summary() -> dict:
    rows, groups = gate_groups()
    return rg.summarize(rows, groups, 0.05, 0.5)


def continuation_metrics() -> dict:
    """81 wins and 47 losses in the coin's order (the record's 81/128), suffix NLL 2.56 -> 2.60."""
    swaps = ec.order_swaps(128, 0)
    verdicts = [("A" if s else "B") if i < 81 else ("B" if s else "A") for i, s in enumerate(swaps)]
    both = ["win"] * 60 + ["loss"] * 30 + ["tie"] * 38
    m = ec.headline(ec.single_order(verdicts, swaps), both)
    m.update({"base_suffix_nll": 2.5612, "phase3_suffix_nll": 2.6047, "phase3_minus_base_suffix_nll": 0.0435})
    return m
