"""The post-RLMT reward gate: the RLMT reward object on held-out prefixes, per arm, compared pairwise.

Each gate arm gets K two-stage samples (prefix -> thought -> inserted </think> -> suffix) per gate
prefix, judged against the true suffix by the reference judge (rollouts.py). This module holds the
maths that turns those Sample groups into the results record's tables, with the seed's definitions
(scripts/eval_reward_gate.py @ f5a982a: summarize_arm 199-252, compare_arms 255-288, go/no-go 537-557):

- arm_summary: rollouts.group_stats plus the seed's group fields over the groups with >= 1 valid
  verdict: mixed_groups = groups whose valid rewards differ (range > 0); near_zero_groups = groups
  with >= 2 valid rewards and population std < 1e-5; any/all-success = group mean > 0 / >= 1;
  mean_group_reward / mean_group_std / mean_group_range, reward_min / reward_max,
  autonomous_closed_think_rate (the model closed its thought itself), avg_thought_words_when_closed.
- compare(left, right): `<right>_minus_<left>` over the prefixes both arms have a valid verdict for:
  mean_reward_delta = mean over those prefixes of (right's prefix mean - left's prefix mean); right /
  left better = that delta > 0 / < 0; tie = |delta| < 1e-9.
- go_no_go: four fields, defined in GO_NO_GO_DOC and in go_no_go() below.
- Intervals (extra, not the seed's): each comparison's mean_reward_delta gets a 95% paired cluster
  bootstrap interval over the shared prefixes (`mean_reward_delta_ci95_low/high`, evals/stats.py), and
  `go_no_go_intervals` gives each go/no-go field the interval of the quantity it decides on: the paired
  think_phase3 - think_base deltas for the two phase3 fields, the deciding (highest) arm's rate over
  prefixes for the two threshold fields. go_no_go_lines() prints them.

What both probe stages share (finding and loading one arm's model) is in evals/arms.py.
"""

from __future__ import annotations

import re
import statistics

from thinkmid.config.arms import ARMS_GATE as ARMS_GATE  # re-exported: callers and tests read rg.ARMS_GATE
from thinkmid.evals.stats import Interval, cluster_mean_interval, paired_delta_interval
from thinkmid.judges.base import JudgeStats
from thinkmid.rollouts import Sample, group_stats

# The per-arm columns of the record's reward-gate table, in its order.
ARM_KEYS = (
    "reward_mean",
    "reward_std",
    "invalid_rate",
    "mixed_groups",
    "near_zero_groups",
    "any_success_groups",
    "all_success_groups",
    "avg_total_new_tokens",
    "avg_predicted_suffix_words",
    "closed_think_rate",
)
# The seed's other per-arm gate fields (not in the record's table).
SEED_ARM_KEYS = (
    "mean_group_reward",
    "mean_group_std",
    "mean_group_range",
    "reward_min",
    "reward_max",
    "autonomous_closed_think_rate",
    "avg_thought_words_when_closed",
    "num_groups",
    "samples_per_prefix",
)
CMP_KEYS = (
    "mean_reward_delta",
    "right_better_prefix_rate",
    "left_better_prefix_rate",
    "tie_prefix_rate",
    "shared_prefixes",
)
# (left, right) in the record's order; each comparison is named "<right>_minus_<left>".
PAIRS = (
    ("think_base", "think_base_rlmt"),
    ("think_base", "think_phase3"),
    ("think_base", "think_phase3_rlmt"),
    ("think_base_rlmt", "think_phase3"),
    ("think_base_rlmt", "think_phase3_rlmt"),
    ("think_phase3", "think_phase3_rlmt"),
)
GO_NO_GO_KEYS = ("reward_validity_ok", "variance_ok", "phase3_more_reward_separable", "phase3_higher_mean_reward")
GO_NO_GO_DOC = {
    "reward_validity_ok": "every gate arm has at least one valid verdict and invalid_rate <= "
    "reference_judge.max_invalid_rate (the seed: <= 0.05)",
    "variance_ok": "every gate arm has near_zero_groups <= reward_gate.max_near_zero_group_rate (the seed: "
    "0.50): reward-degenerate groups do not dominate, so a group-relative advantage has signal",
    "phase3_more_reward_separable": "think_phase3 mean_group_std > think_base mean_group_std, OR think_phase3 "
    "mixed_groups > think_base mixed_groups (the SFT arms; null when either is missing)",
    "phase3_higher_mean_reward": "mean over shared prefixes of (think_phase3 - think_base) prefix mean reward "
    "> 0 (the SFT arms; null when either is missing)",
}
DELTA_TIE = 1e-9  # the seed's tie: |delta| < 1e-9
STD_NEAR_ZERO = 1e-5  # the seed's near-zero group: >= 2 valid rewards with population std below this


def pair_name(left: str, right: str) -> str:
    return f"{right}_minus_{left}"


def valid_rewards(group: list[Sample]) -> list[int]:
    return [s.reward for s in group if s.reward is not None]


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))


def seed_group_fields(groups: list[list[Sample]]) -> dict:
    """The seed's per-arm group statistics; groups with no valid verdict are left out of every rate."""
    stats = []
    for g in groups:
        r = [float(x) for x in valid_rewards(g)]
        if r:
            stats.append((_mean(r), statistics.pstdev(r) if len(r) >= 2 else 0.0, max(r) - min(r), len(r)))
    n = max(len(stats), 1)
    valid = [float(x) for g in groups for x in valid_rewards(g)]
    samples = [s for g in groups for s in g]
    return {
        "mixed_groups": sum(rng > 0 for _, _, rng, _ in stats) / n,
        "near_zero_groups": sum(k >= 2 and sd < STD_NEAR_ZERO for _, sd, _, k in stats) / n,
        "any_success_groups": _mean(float(m > 0.0) for m, _, _, _ in stats),
        "all_success_groups": _mean(float(m >= 1.0) for m, _, _, _ in stats),
        "mean_group_reward": _mean(m for m, _, _, _ in stats),
        "mean_group_std": _mean(sd for _, sd, _, _ in stats),
        "mean_group_range": _mean(rng for _, _, rng, _ in stats),
        "reward_min": min(valid) if valid else None,
        "reward_max": max(valid) if valid else None,
        "autonomous_closed_think_rate": _mean(float(s.closed_by_model) for s in samples),
        # two-stage sampling closes every thought (the boundary is inserted), so "when closed" is all
        "avg_thought_words_when_closed": _mean(word_count(s.thought_text.strip()) for s in samples),
        "num_groups": len(stats),
        "samples_per_prefix": max((len(g) for g in groups), default=0),
    }


def arm_summary(groups: list[list[Sample]]) -> dict:
    """group_stats over the arm's groups, overridden by the seed's group fields, plus n (all samples),
    valid_samples and prefixes."""
    stats = group_stats(groups)
    stats.update(seed_group_fields(groups))
    stats["n"] = sum(len(g) for g in groups)
    stats["valid_samples"] = sum(len(valid_rewards(g)) for g in groups)
    stats["prefixes"] = len(groups)
    return stats


def by_prefix(rows: list[dict], groups: list[list[Sample]]) -> dict[str, list[int]]:
    """Prefix id -> the valid rewards of its group."""
    if len(rows) != len(groups):
        raise ValueError(f"{len(rows)} rows but {len(groups)} groups")
    return {str(r["id"]): valid_rewards(g) for r, g in zip(rows, groups)}


def compare(left: dict[str, list[int]], right: dict[str, list[int]]) -> dict:
    """`right` minus `left`, over the prefixes where both have at least one valid reward."""
    shared = [p for p in left if left[p] and right.get(p)]
    deltas = [_mean(right[p]) - _mean(left[p]) for p in shared]
    return {
        "mean_reward_delta": _mean(deltas),
        "right_better_prefix_rate": _mean(float(d > 0) for d in deltas),
        "left_better_prefix_rate": _mean(float(d < 0) for d in deltas),
        "tie_prefix_rate": _mean(float(abs(d) < DELTA_TIE) for d in deltas),
        "shared_prefixes": len(shared),
    }


# Per-prefix statistics as one-element clusters: a pooled mean over them is the mean over prefixes,
# as compare() and seed_group_fields() average, and the bootstrap resamples whole prefixes.
def _prefix_mean(r: list[int]) -> list[float]:
    return [_mean(r)] if r else []


def _prefix_std(r: list[int]) -> list[float]:
    return [statistics.pstdev(r) if len(r) >= 2 else 0.0] if r else []


def _prefix_mixed(r: list[int]) -> list[float]:
    return [float(max(r) - min(r) > 0)] if r else []


def _prefix_near_zero(r: list[int]) -> list[float]:
    return [float(len(r) >= 2 and statistics.pstdev(r) < STD_NEAR_ZERO)] if r else []


def delta_interval(left: dict[str, list[int]], right: dict[str, list[int]], stat=_prefix_mean) -> Interval:
    """`right` minus `left` of a per-prefix statistic over the prefixes both have valid rewards for, with
    its 95% paired cluster bootstrap interval (with _prefix_mean: compare()'s mean_reward_delta)."""
    return paired_delta_interval({p: stat(v) for p, v in left.items()}, {p: stat(v) for p, v in right.items()})


def comparisons(per_prefix: dict[str, dict[str, list[int]]]) -> dict[str, dict]:
    """Every pair of PAIRS whose two arms were both run, with the delta's paired 95% interval."""
    out = {}
    for l, r in PAIRS:
        if l in per_prefix and r in per_prefix:
            iv = delta_interval(per_prefix[l], per_prefix[r])
            out[pair_name(l, r)] = {
                **compare(per_prefix[l], per_prefix[r]),
                "mean_reward_delta_ci95_low": iv.low,
                "mean_reward_delta_ci95_high": iv.high,
            }
    return out


def _evidence(what: str, iv: Interval, delta: bool = True) -> dict:
    return {"what": what, "value": iv.value, "low": iv.low, "high": iv.high, "prefixes": iv.clusters, "delta": delta}


def go_no_go_intervals(
    groups_by_arm: dict[str, list[list[Sample]]],
    per_prefix: dict[str, dict[str, list[int]]],
    max_invalid_rate: float,
    max_near_zero_group_rate: float,
) -> dict[str, list[dict]]:
    """For each go/no-go field, the quantities it decides on with their 95% cluster bootstrap intervals."""
    out: dict[str, list[dict]] = {}
    invalid = {
        a: cluster_mean_interval([[float(s.reward is None) for s in g] for g in gs]) for a, gs in groups_by_arm.items()
    }
    near = {a: cluster_mean_interval([_prefix_near_zero(r) for r in pp.values()]) for a, pp in per_prefix.items()}
    if invalid:
        a = max(invalid, key=lambda x: invalid[x].value)
        out["reward_validity_ok"] = [
            _evidence(f"{a} invalid_rate (the highest arm; must be <= {max_invalid_rate:g})", invalid[a], delta=False)
        ]
        a = max(near, key=lambda x: near[x].value)
        out["variance_ok"] = [
            _evidence(
                f"{a} near_zero_groups (the highest arm; must be <= {max_near_zero_group_rate:g})", near[a], delta=False
            )
        ]
    if "think_base" in per_prefix and "think_phase3" in per_prefix:
        b, p = per_prefix["think_base"], per_prefix["think_phase3"]
        out["phase3_more_reward_separable"] = [
            _evidence("think_phase3 - think_base mean_group_std", delta_interval(b, p, _prefix_std)),
            _evidence("think_phase3 - think_base mixed_groups", delta_interval(b, p, _prefix_mixed)),
        ]
        out["phase3_higher_mean_reward"] = [
            _evidence("think_phase3 - think_base mean reward over shared prefixes", delta_interval(b, p))
        ]
    return out


def evidence_text(e: dict) -> str:
    """`<what> +0.0029 (95% CI -0.0342 to +0.0420, 64 prefixes)`; rates unsigned."""
    f = "{:+.4f}" if e.get("delta", True) else "{:.4f}"
    v, lo, hi = (f.format(e[x]) for x in ("value", "low", "high"))
    return f"{e['what']} {v} (95% CI {lo} to {hi}, {e['prefixes']} prefixes)"


def go_no_go_lines(summary: dict) -> list[str]:
    """One line per go/no-go field: its boolean, then each quantity it decides on with its interval."""
    ivs = summary.get("go_no_go_intervals") or {}
    lines = []
    for k in GO_NO_GO_KEYS:
        v = summary["go_no_go"].get(k)
        shown = "null" if v is None else str(bool(v)).lower()
        lines.append(f"{k}: {shown}" + "".join(f"; {evidence_text(e)}" for e in ivs.get(k, [])))
    return lines


def phase3_vs_base(per_prefix: dict[str, dict[str, list[int]]]) -> dict | None:
    """The seed's legacy think_phase3 vs think_base fields (its `arm_comparison`), or None."""
    if "think_base" not in per_prefix or "think_phase3" not in per_prefix:
        return None
    c = compare(per_prefix["think_base"], per_prefix["think_phase3"])
    return {
        "shared_prefixes": c["shared_prefixes"],
        "mean_phase3_minus_base_reward": c["mean_reward_delta"],
        "phase3_better_prefix_rate": c["right_better_prefix_rate"],
        "base_better_prefix_rate": c["left_better_prefix_rate"],
        "tie_prefix_rate": c["tie_prefix_rate"],
    }


def go_no_go(
    arms: dict[str, dict], max_invalid_rate: float, max_near_zero_group_rate: float = 0.5, legacy: dict | None = None
) -> dict[str, bool | None]:
    """The gate's four go/no-go fields (see GO_NO_GO_DOC). `legacy` is phase3_vs_base()."""
    # reward_validity_ok / variance_ok: over every arm that was run (the seed's `all(...)`).
    validity = bool(arms) and all(
        a["invalid_rate"] <= max_invalid_rate and a.get("valid_samples", 1) > 0 for a in arms.values()
    )
    variance = all(a["near_zero_groups"] <= max_near_zero_group_rate for a in arms.values())
    separable = higher = None
    if "think_base" in arms and "think_phase3" in arms:
        b, p = arms["think_base"], arms["think_phase3"]
        separable = p["mean_group_std"] > b["mean_group_std"] or p["mixed_groups"] > b["mixed_groups"]
        higher = legacy is not None and legacy["mean_phase3_minus_base_reward"] > 0
    return {
        "reward_validity_ok": bool(validity),
        "variance_ok": bool(variance),
        "phase3_more_reward_separable": None if separable is None else bool(separable),
        "phase3_higher_mean_reward": None if higher is None else bool(higher),
    }


def summarize(
    rows: list[dict],
    groups_by_arm: dict[str, list[list[Sample]]],
    max_invalid_rate: float,
    max_near_zero_group_rate: float = 0.5,
) -> dict:
    """The gate's summary.json: {"arms", "comparisons", "phase3_vs_base", "go_no_go", "go_no_go_intervals"}."""
    arms = {a: arm_summary(g) for a, g in groups_by_arm.items()}
    per_prefix = {a: by_prefix(rows, g) for a, g in groups_by_arm.items()}
    legacy = phase3_vs_base(per_prefix)
    return {
        "arms": arms,
        "comparisons": comparisons(per_prefix),
        "phase3_vs_base": legacy,
        "go_no_go": go_no_go(arms, max_invalid_rate, max_near_zero_group_rate, legacy),
        "go_no_go_intervals": go_no_go_intervals(groups_by_arm, per_prefix, max_invalid_rate, max_near_zero_group_rate),
    }


def flat_metrics(summary: dict) -> dict[str, float]:
    """The summary as flat MLflow metric names: <arm>/<key>, <comparison>/<key>, go_no_go/<field>, and
    go_no_go/<field>/evidence<i>_{value,low,high} for the intervals."""
    out: dict[str, float] = {}
    for section in ("arms", "comparisons"):
        for name, row in summary[section].items():
            out.update(
                {
                    f"{name}/{k}": float(v)
                    for k, v in row.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
    for k, v in (summary.get("phase3_vs_base") or {}).items():
        out[f"phase3_vs_base/{k}"] = float(v)
    out.update({f"go_no_go/{k}": float(v) for k, v in summary["go_no_go"].items() if v is not None})
    for k, evidence in (summary.get("go_no_go_intervals") or {}).items():  # i: the order go_no_go_lines prints
        for i, e in enumerate(evidence):
            out.update({f"go_no_go/{k}/evidence{i}_{x}": float(e[x]) for x in ("value", "low", "high")})
    return out


def sample_rows(rows: list[dict], groups: list[list[Sample]]) -> list[dict]:
    """One JSONL row per sample: what was generated and what it earned."""
    return [
        {
            "prefix_id": r["id"],
            "sample_idx": j,
            "thought": s.thought_text,
            "predicted_suffix": s.suffix_text,
            "reward": s.reward,
            "new_tokens": s.new_tokens,
            "closed_by_model": s.closed_by_model,
        }
        for r, g in zip(rows, groups)
        for j, s in enumerate(g)
    ]


def verdict_stats(groups: list[list[Sample]]) -> JudgeStats:
    """Judge counts for one arm's samples (the shared judge's own stats span every arm)."""
    samples = [s for g in groups for s in g]
    return JudgeStats(calls=len(samples), invalid=sum(s.reward is None for s in samples))
