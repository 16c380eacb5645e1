"""The post-RLMT reward gate: the RLMT reward object on held-out prefixes, per arm, compared pairwise.

Each gate arm gets K two-stage samples (prefix -> thought -> inserted </think> -> suffix) per gate
prefix, judged against the true suffix by the reference judge (rollouts.py). This module holds the
maths that turns those Sample groups into the results record's tables:

- arm_summary: group_stats (rollouts.group_stats) plus `n` (samples), `valid_samples`, `prefixes`.
- compare(left, right): `<right>_minus_<left>` over the prefixes both arms have a valid verdict for
  ("shared"): mean_reward_delta = pooled mean reward of right minus that of left on the shared
  prefixes (the difference of the two arms' reward_means when every prefix is shared); per shared
  prefix the mean rewards are compared, giving right_better / left_better / tie prefix rates.
- go_no_go: four booleans, defined in GO_NO_GO_DOC and in go_no_go() below.

It also holds what both probe stages share: the reference judge they build once (the same judge
for every arm) and loading one arm's model on the device.
"""

from __future__ import annotations

from thinkmid import ARMS_GATE
from thinkmid.judges.base import JudgeStats
from thinkmid.rollouts import NEAR_ZERO, Sample, arm_model_dir, group_stats

# The per-arm columns of the record's reward-gate table, in its order.
ARM_KEYS = (
    "reward_mean", "reward_std", "invalid_rate", "mixed_groups", "near_zero_groups", "any_success_groups",
    "all_success_groups", "avg_total_new_tokens", "avg_predicted_suffix_words", "closed_think_rate",
)  # fmt: skip
CMP_KEYS = ("mean_reward_delta", "right_better_prefix_rate", "left_better_prefix_rate", "tie_prefix_rate",
            "shared_prefixes")  # fmt: skip
# (left, right) in the record's order; each comparison is named "<right>_minus_<left>".
PAIRS = (
    ("think_base", "think_base_rlmt"),
    ("think_base", "think_phase3"),
    ("think_base", "think_phase3_rlmt"),
    ("think_base_rlmt", "think_phase3"),
    ("think_base_rlmt", "think_phase3_rlmt"),
    ("think_phase3", "think_phase3_rlmt"),
)
BASE_LINEAGE = ("think_base", "think_base_rlmt")
PHASE3_LINEAGE = ("think_phase3", "think_phase3_rlmt")
GO_NO_GO_KEYS = ("reward_validity_ok", "variance_ok", "phase3_more_reward_separable", "phase3_higher_mean_reward")
GO_NO_GO_DOC = {
    "reward_validity_ok": "every gate arm has at least one valid verdict and invalid_rate <= "
    "reference_judge.max_invalid_rate",
    "variance_ok": "every gate arm has mixed_groups > 0: some prefix's K samples got both rewards, so the "
    "reward is not degenerate and a group-relative advantage has signal",
    "phase3_more_reward_separable": "mean mixed_groups over the phase3 lineage (think_phase3, "
    "think_phase3_rlmt) >= the same mean over the base lineage (think_base, think_base_rlmt), and > 0",
    "phase3_higher_mean_reward": "think_phase3_rlmt reward_mean > think_base_rlmt reward_mean (strict)",
}
TIE_EPS = 1e-12


def pair_name(left: str, right: str) -> str:
    return f"{right}_minus_{left}"


def valid_rewards(group: list[Sample]) -> list[int]:
    return [s.reward for s in group if s.reward is not None]


def arm_summary(groups: list[list[Sample]]) -> dict:
    """group_stats over the arm's groups, plus n (all samples), valid_samples and prefixes."""
    stats = group_stats(groups)
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
    if not shared:
        return {"mean_reward_delta": 0.0, "right_better_prefix_rate": 0.0, "left_better_prefix_rate": 0.0,
                "tie_prefix_rate": 0.0, "shared_prefixes": 0}  # fmt: skip
    right_better = left_better = ties = 0
    for p in shared:
        lm, rm = sum(left[p]) / len(left[p]), sum(right[p]) / len(right[p])
        if rm - lm > TIE_EPS:
            right_better += 1
        elif lm - rm > TIE_EPS:
            left_better += 1
        else:
            ties += 1
    pooled_l = [x for p in shared for x in left[p]]
    pooled_r = [x for p in shared for x in right[p]]
    n = len(shared)
    return {
        "mean_reward_delta": sum(pooled_r) / len(pooled_r) - sum(pooled_l) / len(pooled_l),
        "right_better_prefix_rate": right_better / n,
        "left_better_prefix_rate": left_better / n,
        "tie_prefix_rate": ties / n,
        "shared_prefixes": n,
    }


def comparisons(per_prefix: dict[str, dict[str, list[int]]]) -> dict[str, dict]:
    """Every pair of PAIRS whose two arms were both run."""
    return {pair_name(l, r): compare(per_prefix[l], per_prefix[r])
            for l, r in PAIRS if l in per_prefix and r in per_prefix}  # fmt: skip


def go_no_go(arms: dict[str, dict], max_invalid_rate: float) -> dict[str, bool]:
    """The gate's four go/no-go fields (see GO_NO_GO_DOC); a field needing a missing arm is False."""
    have = all(a in arms for a in ARMS_GATE)
    # reward_validity_ok: the verdicts the numbers stand on are mostly valid, for every arm.
    validity = have and all(
        arms[a]["invalid_rate"] <= max_invalid_rate and arms[a].get("valid_samples", 1) > 0 for a in ARMS_GATE
    )
    # variance_ok: every arm has at least one mixed group (reward separates samples of one prefix).
    variance = have and all(arms[a]["mixed_groups"] > NEAR_ZERO for a in ARMS_GATE)

    def lineage_mean(lineage, key):
        return sum(arms[a][key] for a in lineage) / len(lineage)

    # phase3_more_reward_separable: phase3 lineage at least as reward-separable as the base lineage.
    # (and separable at all: two lineages with no mixed group are not "more separable").
    p3 = lineage_mean(PHASE3_LINEAGE, "mixed_groups") if have else 0.0
    base = lineage_mean(BASE_LINEAGE, "mixed_groups") if have else 0.0
    separable = have and p3 >= base and p3 > NEAR_ZERO
    # phase3_higher_mean_reward: after RLMT, the phase3 arm earns strictly more reward than the base arm.
    higher = have and arms["think_phase3_rlmt"]["reward_mean"] > arms["think_base_rlmt"]["reward_mean"]
    return {
        "reward_validity_ok": bool(validity),
        "variance_ok": bool(variance),
        "phase3_more_reward_separable": bool(separable),
        "phase3_higher_mean_reward": bool(higher),
    }


def summarize(rows: list[dict], groups_by_arm: dict[str, list[list[Sample]]], max_invalid_rate: float) -> dict:
    """The gate's summary.json: {"arms": {...}, "comparisons": {...}, "go_no_go": {...}}."""
    arms = {a: arm_summary(g) for a, g in groups_by_arm.items()}
    per_prefix = {a: by_prefix(rows, g) for a, g in groups_by_arm.items()}
    return {"arms": arms, "comparisons": comparisons(per_prefix), "go_no_go": go_no_go(arms, max_invalid_rate)}


def flat_metrics(summary: dict) -> dict[str, float]:
    """The summary as flat MLflow metric names: <arm>/<key>, <comparison>/<key>, go_no_go/<field>."""
    out: dict[str, float] = {}
    for section in ("arms", "comparisons"):
        for name, row in summary[section].items():
            out.update({f"{name}/{k}": float(v) for k, v in row.items() if isinstance(v, (int, float))})
    out.update({f"go_no_go/{k}": float(v) for k, v in summary["go_no_go"].items()})
    return out


def sample_rows(rows: list[dict], groups: list[list[Sample]]) -> list[dict]:
    """One JSONL row per sample: what was generated and what it earned."""
    return [
        {"prefix_id": r["id"], "sample_idx": j, "thought": s.thought_text, "predicted_suffix": s.suffix_text,
         "reward": s.reward, "new_tokens": s.new_tokens, "closed_by_model": s.closed_by_model}
        for r, g in zip(rows, groups) for j, s in enumerate(g)
    ]  # fmt: skip


def verdict_stats(groups: list[list[Sample]]) -> JudgeStats:
    """Judge counts for one arm's samples (the shared judge's own stats span every arm)."""
    samples = [s for g in groups for s in g]
    return JudgeStats(calls=len(samples), invalid=sum(s.reward is None for s in samples))


# --- what the gate and probe stages share ----------------------------------------------------------


def missing_arm_dirs(arms) -> list[str]:
    from pathlib import Path

    return [arm_model_dir(a) for a in arms if not (Path(arm_model_dir(a)) / "config.json").exists()]


def require_arm_dirs(arms) -> None:
    """One InputError naming every missing arm model dir, before any work."""
    from thinkmid.errors import InputError

    missing = missing_arm_dirs(arms)
    if missing:
        also = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise InputError(f"{missing[0]}: model dir not found{also}; run the sft and rlmt stages first")


def load_arm(params, arm: str):
    """(model on the device, tokenizer, model dir) for one arm."""
    from thinkmid.engines.factory import pick_device
    from thinkmid.models.load import load_model

    path = arm_model_dir(arm)
    model, tok = load_model(path, dtype=params.base.dtype, trust_remote_code=params.base.trust_remote_code)
    model.to(pick_device())
    return model, tok, path


def free_memory() -> None:
    """Call after the function holding an arm's model has returned. On CPU refcounting has already
    freed the weights (the models hold no reference cycles); on a GPU also collect and empty the cache."""
    import torch

    if torch.cuda.is_available():
        import gc

        gc.collect()
        torch.cuda.empty_cache()
