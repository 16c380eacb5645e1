"""A full set of report inputs, numbers taken from the results record, written under tmp_path/reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SFT = {
    "raw_base": (2.694593, 2.694593, 0.020321, 4036608, 2729.53, 94.94),
    "think_base": (2.792869, 2.707164, 0.019397, 4035285, 3284.51, 69.78),
    "think_phase3": (2.788120, 2.708099, 0.019397, 4035285, 3298.08, 68.65),
}
RLMT = {
    "think_base": (0.092188, 0.031250, 0.5700, 0.4300, -0.000511, 0.132031, 5488.32),
    "think_phase3": (0.090313, 0.093750, 0.5625, 0.4375, -0.000545, 0.139844, 5448.25),
}
GATE = {  # reward_mean, reward_std, mixed, near_zero, tokens, suffix words
    "think_base": (0.087891, 0.283136, 0.546875, 0.453125, 175.8164, 87.2734),
    "think_phase3": (0.090820, 0.287353, 0.593750, 0.406250, 175.8818, 86.7861),
    "think_base_rlmt": (0.093750, 0.291481, 0.640625, 0.359375, 175.8936, 86.3281),
    "think_phase3_rlmt": (0.097656, 0.296849, 0.609375, 0.390625, 175.9229, 88.7979),
}
GATE_CMP = {
    "think_base_rlmt_minus_think_base": (0.005859, 0.281250, 0.281250, 0.437500),
    "think_phase3_minus_think_base": (0.002930, 0.296875, 0.250000, 0.453125),
    "think_phase3_rlmt_minus_think_base": (0.009766, 0.296875, 0.296875, 0.406250),
    "think_phase3_minus_think_base_rlmt": (-0.002930, 0.281250, 0.312500, 0.406250),
    "think_phase3_rlmt_minus_think_base_rlmt": (0.003906, 0.250000, 0.265625, 0.484375),
    "think_phase3_rlmt_minus_think_phase3": (0.006836, 0.312500, 0.312500, 0.375000),
}
# arm -> benchmark -> (correct, samples, any_pass, problems, avg tokens); k = 8
REASONING = {
    "think_base": {"gsm8k": (1113, 10552, 671, 1319, 322.2), "math500": (1093, 4000, 287, 500, 371.5),
                   "gpqa_diamond": (352, 1584, 133, 198, 320.3), "olympiadbench": (125, 1760, 49, 220, 441.9)},
    "think_base_rlmt": {"gsm8k": (997, 10552, 629, 1319, 324.9), "math500": (1151, 4000, 281, 500, 376.2),
                        "gpqa_diamond": (355, 1584, 146, 198, 323.3), "olympiadbench": (145, 1760, 49, 220, 447.4)},
    "think_phase3": {"gsm8k": (1091, 10552, 676, 1319, 321.8), "math500": (1129, 4000, 284, 500, 362.1),
                     "gpqa_diamond": (372, 1584, 141, 198, 323.8), "olympiadbench": (138, 1760, 56, 220, 441.0)},
    "think_phase3_rlmt": {"gsm8k": (1087, 10552, 668, 1319, 322.0), "math500": (1095, 4000, 287, 500, 366.2),
                          "gpqa_diamond": (353, 1584, 146, 198, 316.6), "olympiadbench": (115, 1760, 51, 220, 435.9)},
}  # fmt: skip


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def _reasoning(arm: str) -> dict:
    benches = {}
    for b, (c, s, a, p, tok) in REASONING[arm].items():
        benches[b] = {
            "mean_at_k": c / s, "pass_at_k": a / p, "correct": c, "samples": s, "any_pass": a, "problems": p,
            "mean_at_k_lo": c / s - 0.01, "mean_at_k_hi": c / s + 0.01, "pass_at_k_lo": a / p - 0.03,
            "pass_at_k_hi": a / p + 0.03, "avg_completion_tokens": tok, "k": 8,
        }  # fmt: skip
    macro = {key: sum(b[key] for b in benches.values()) / len(benches)
             for key in ("mean_at_k", "pass_at_k", "avg_completion_tokens")}  # fmt: skip
    return {"arm": arm, "benchmarks": benches, "macro": macro}


def write_inputs(root: Path) -> Path:
    """Write every report input under root/reports; returns that directory."""
    r = root / "reports"
    _write(r / "prepare_chunks/metrics.json", {
        "splits": {"sft_train": {"rows": 4096, "tokens": 524288}, "phase3_train": {"rows": 1024, "tokens": 131072},
                   "gate": {"rows": 64, "tokens": 8192}},
        "dropped": {"too_short": 17, "duplicate": 3},
    })  # fmt: skip
    _write(r / "self_improve/metrics.json", {
        "steps": 200, "dpo_loss": 0.612345, "reward_margin": 0.25, "reward_accuracy": 0.71, "chosen_is_rollout_rate": 0.4,
        "original_suffix_mean_score": 0.55, "rollout_mean_score": 0.48, "skipped_prefixes": 12,
        "invalid_judgments": 0, "wall_time_s": 12345.678,
    })  # fmt: skip
    _write(r / "eval_continuations/metrics.json", {
        "wins": 81, "losses": 40, "ties": 7, "invalid": 0, "comparisons": 128, "win_rate": 81 / 128,
        "win_rate_lo": 0.546, "win_rate_hi": 0.7115, "prefixes": 128,
    })  # fmt: skip
    _write(r / "teacher_thoughts/metrics.json", {
        "rows_in": 4200, "rows_kept": 4096, "rows_dropped": 104, "drop_reasons": {"no_boundary": 100, "too_long": 4},
        "thoughts_per_row_mean": 4.25, "median_thought_words": 11.0, "thought_token_share": 0.1834,
    })  # fmt: skip
    for arm, (vl, raw, rep, toks, tps, mem) in SFT.items():
        _write(r / f"sft/{arm}.json", {
            "arm": arm, "val_loss": vl, "raw_val_loss": raw, "selected_metric": vl, "repetition_4gram_rate": rep,
            "tokens_seen": toks, "throughput_tok_s": tps, "min_available_mem_gib": mem,
            "thought_token_nll_before": 4.5, "thought_token_nll_after": 2.25, "steps": 493, "wall_time_s": 1478.9,
        })  # fmt: skip
    for arm, (avg, final, mixed, zero, drift, art, wall) in RLMT.items():
        _write(r / f"rlmt/{arm}.json", {
            "arm": arm, "completed_steps": 200, "stopped_reason": None, "avg_reward": avg, "final_reward": final,
            "avg_mixed_groups": mixed, "avg_near_zero_groups": zero, "avg_all_zero_groups": zero,
            "avg_all_one_groups": 0.0, "invalid_judge_rate": 0.0, "avg_length_drift": drift,
            "avg_artifact_rate": art, "wall_time_s": wall,
        })  # fmt: skip
        _write(r / f"rlmt/{arm}_steps.json", [
            {"step": s, "reward_mean": avg + 0.01 * ((s % 5) - 2), "mixed_groups": 1, "loss": 0.1, "kl": 0.001}
            for s in range(1, 21)
        ])  # fmt: skip
    _write(r / "reward_gate/summary.json", {
        "arms": {arm: {"reward_mean": m, "reward_std": sd, "invalid_rate": 0.0, "mixed_groups": mx,
                       "near_zero_groups": nz, "any_success_groups": mx, "all_success_groups": 0.0,
                       "avg_total_new_tokens": tok, "avg_predicted_suffix_words": w, "closed_think_rate": 1.0}
                 for arm, (m, sd, mx, nz, tok, w) in GATE.items()},
        "comparisons": {n: {"mean_reward_delta": d, "right_better_prefix_rate": rb, "left_better_prefix_rate": lb,
                            "tie_prefix_rate": tie, "shared_prefixes": 64} for n, (d, rb, lb, tie) in GATE_CMP.items()},
        "go_no_go": {"reward_validity_ok": True, "variance_ok": True, "phase3_more_reward_separable": True,
                     "phase3_higher_mean_reward": True},
    })  # fmt: skip
    probe = {}
    for i, arm in enumerate(GATE):
        conds = {"sampled": 0.09 + 0.001 * i, "swapped": 0.08, "blank": 0.07, "generic": 0.085, "teacher": 0.1}
        probe[arm] = {"conditions": {c: {"reward_mean": v, "n": 128} for c, v in conds.items()},
                      "deltas_vs_sampled": {c: v - conds["sampled"] for c, v in conds.items() if c != "sampled"}}
    _write(r / "thought_probe/summary.json", {"arms": probe})
    for arm in REASONING:
        _write(r / f"reasoning_eval/{arm}.json", _reasoning(arm))
    return r


@pytest.fixture()
def reports(tmp_path) -> Path:
    return write_inputs(tmp_path)
