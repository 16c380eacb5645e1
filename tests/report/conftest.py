"""A full set of report inputs, numbers taken from the results record, written under tmp_path/reports.
The reward gate, reasoning eval and Phase 3 inputs are aggregated from per-sample artifacts by the
pipeline's own code (record_data.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # record_data, also when another folder loads this file
from record_data import GATE_ARMS, continuation_metrics, gate_summary, reasoning_summaries  # noqa: E402

from thinkmid.evals import probe as probe_lib  # noqa: E402
from thinkmid.rollouts import Sample  # noqa: E402

SFT = {
    "raw_base": (2.694593, 2.694593, 0.020321, 4036608, 2729.53, 94.94),
    "think_base": (2.792869, 2.707164, 0.019397, 4035285, 3284.51, 69.78),
    "think_phase3": (2.788120, 2.708099, 0.019397, 4035285, 3298.08, 68.65),
}
RLMT = {
    "think_base": (0.092188, 0.031250, 0.5700, 0.4300, -0.000511, 0.132031, 5488.32),
    "think_phase3": (0.090313, 0.093750, 0.5625, 0.4375, -0.000545, 0.139844, 5448.25),
}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def _probe_arm(i: int) -> dict:
    """A probe summary from hand-made judged samples: 8 prefixes x 4 samples per condition."""

    def groups(successes):
        return [
            [Sample([1], [5], [7], [0.0], [0.0], False, "x y", "a", reward=int(j < c)) for j in range(4)]
            for c in successes
        ]

    results = {
        "normal": (list(range(8)), groups([1, 0, 2, 0, 1, 0, 0, i % 2])),
        "blank": (list(range(8)), groups([0, 0, 1, 0, 1, 0, 0, 0])),
        "generic": (list(range(8)), groups([1, 0, 1, 1, 0, 0, 0, 0])),
        "swapped": (list(range(8)), groups([0, 0, 2, 0, 0, 0, 1, 0])),
        "teacher": ([0, 3], groups([2, 1])),
    }
    return probe_lib.summarize_arm(results)


def write_inputs(root: Path) -> Path:
    """Write every report input under root/reports; returns that directory."""
    r = root / "reports"
    _write(
        r / "prepare_chunks/metrics.json",
        {
            "splits": {
                "sft_train": {"rows": 4096, "tokens": 524288},
                "phase3_train": {"rows": 1024, "tokens": 131072},
                "gate": {"rows": 64, "tokens": 8192},
            },
            "dropped": {"too_short": 17, "duplicate": 3},
        },
    )
    _write(
        r / "self_improve/metrics.json",
        {
            "steps": 200,
            "dpo_loss": 0.612345,
            "reward_margin": 0.25,
            "reward_accuracy": 0.71,
            "chosen_is_rollout_rate": 0.4,
            "original_suffix_mean_score": 0.55,
            "rollout_mean_score": 0.48,
            "skipped_prefixes": 12,
            "invalid_judgments": 0,
        },
    )
    _write(r / "self_improve/metrics_timing.json", {"wall_time_s": 12345.678})  # timing: files of their own
    _write(r / "eval_continuations/metrics.json", continuation_metrics())
    _write(
        r / "teacher_thoughts/metrics.json",
        {
            "rows_in": 4200,
            "rows_kept": 4096,
            "rows_dropped": 104,
            "drop_reasons": {"no_boundary": 100, "too_long": 4},
            "thoughts_per_row_mean": 4.25,
            "median_thought_words": 11.0,
            "thought_token_share": 0.1834,
        },
    )
    for arm, (vl, raw, rep, toks, tps, mem) in SFT.items():
        _write(
            r / f"sft/{arm}.json",
            {
                "arm": arm,
                "val_loss": vl,
                "raw_val_loss": raw,
                "selected_metric": vl,
                "repetition_4gram_rate": rep,
                "tokens_seen": toks,
                "thought_token_nll_before": 4.5,
                "thought_token_nll_after": 2.25,
                "steps": 493,
            },
        )
        _write(
            r / f"sft/{arm}_timing.json", {"throughput_tok_s": tps, "min_available_mem_gib": mem, "wall_time_s": 1478.9}
        )
    for arm, (avg, final, mixed, zero, drift, art, wall) in RLMT.items():
        _write(
            r / f"rlmt/{arm}.json",
            {
                "arm": arm,
                "completed_steps": 200,
                "stopped_reason": None,
                "avg_reward": avg,
                "final_reward": final,
                "avg_mixed_groups": mixed,
                "avg_near_zero_groups": zero,
                "avg_all_zero_groups": zero,
                "avg_all_one_groups": 0.0,
                "invalid_judge_rate": 0.0,
                "avg_length_drift": drift,
                "avg_artifact_rate": art,
            },
        )
        _write(r / f"rlmt/{arm}_timing.json", {"wall_time_s": wall})
        _write(
            r / f"rlmt/{arm}_steps.json",
            [
                {"step": s, "reward_mean": avg + 0.01 * ((s % 5) - 2), "mixed_groups": 1, "loss": 0.1, "kl": 0.001}
                for s in range(1, 21)
            ],
        )
    _write(r / "reward_gate/summary.json", gate_summary())
    _write(r / "thought_probe/summary.json", {"arms": {arm: _probe_arm(i) for i, arm in enumerate(GATE_ARMS)}})
    for arm, summary in reasoning_summaries().items():
        _write(r / f"reasoning_eval/{arm}.json", summary)
    return r


@pytest.fixture()
def reports(tmp_path) -> Path:
    return write_inputs(tmp_path)
