"""The artifacts the report is built from: where each lives, whether it is required, which keys it must have.

Required inputs missing -> InputError naming the path. Optional inputs missing -> None, and the
section that needs them says "not run". A file that exists but lacks a key is always an InputError:
silently rendering n/a would hide a schema drift between stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkmid.config.arms import ARMS_GATE, ARMS_RLMT, ARMS_SFT, DEFAULT_ARMS, ArmsParams
from thinkmid.errors import InputError
from thinkmid.evals.reward_gate import ARM_KEYS as GATE_ARM_KEYS  # what the gate writes is what is read
from thinkmid.evals.reward_gate import CMP_KEYS as GATE_CMP_KEYS
from thinkmid.evals.reward_gate import GO_NO_GO_KEYS
from thinkmid.io import read_json
from thinkmid.timing import timing_path

# The default arms in their display order; which arms the report reads comes from params (Inputs.arms).
SFT_ARMS, RLMT_ARMS, GATE_ARMS = ARMS_SFT, ARMS_RLMT, ARMS_GATE
BENCHMARKS = ("gsm8k", "math500", "gpqa_diamond", "olympiadbench")
PROBE_CONDITIONS = ("normal", "blank", "generic", "swapped", "teacher")

SELF_IMPROVE_KEYS = (
    "steps",
    "dpo_loss",
    "reward_margin",
    "reward_accuracy",
    "chosen_is_rollout_rate",
    "original_suffix_mean_score",
    "rollout_mean_score",
    "skipped_prefixes",
    "invalid_judgments",
)
CONTINUATION_KEYS = (
    "wins",
    "losses",
    "invalid",
    "comparisons",
    "win_rate",
    "win_rate_lo",
    "win_rate_hi",
    "prefixes",
    "base_suffix_nll",
    "phase3_suffix_nll",
    "both_orders_wins",
    "both_orders_losses",
    "both_orders_ties",
    "both_orders_win_rate",
)
TEACHER_KEYS = (
    "rows_in",
    "rows_kept",
    "rows_dropped",
    "drop_reasons",
    "thoughts_per_row_mean",
    "median_thought_words",
    "thought_token_share",
)
SFT_KEYS = (
    "arm",
    "val_loss",
    "raw_val_loss",
    "selected_metric",
    "repetition_4gram_rate",
    "tokens_seen",
    "thought_token_nll_before",
    "thought_token_nll_after",
    "steps",
)
RLMT_KEYS = (
    "arm",
    "completed_steps",
    "stopped_reason",
    "avg_reward",
    "final_reward",
    "avg_mixed_groups",
    "avg_near_zero_groups",
    "avg_all_zero_groups",
    "avg_all_one_groups",
    "invalid_judge_rate",
    "avg_length_drift",
    "avg_artifact_rate",
)
# The tables' timing columns, read from each stage's <arm or metrics>_timing.json (thinkmid/timing.py):
# they change on every run, so they are kept out of the result metrics. Absent file: n/a.
TIMING_KEYS = {
    "self_improve": ("wall_time_s",),
    "sft": ("throughput_tok_s", "min_available_mem_gib", "wall_time_s"),
    "rlmt": ("wall_time_s",),
}
BENCH_KEYS = (
    "mean_at_k",
    "pass_at_k",
    "correct",
    "samples",
    "any_pass",
    "problems",
    "mean_at_k_lo",
    "mean_at_k_hi",
    "pass_at_k_lo",
    "pass_at_k_hi",
    "avg_completion_tokens",
    "k",
    "mean_at_k_math_verify",
    "correct_math_verify",
    "pass_at_k_math_verify",
    "any_pass_math_verify",
)
MACRO_KEYS = ("mean_at_k", "pass_at_k", "avg_completion_tokens")
PROBE_DELTA_KEYS = (
    "mean_delta",
    "normal_better_prefix_rate",
    "condition_better_prefix_rate",
    "tie_prefix_rate",
    "shared_prefixes",
)


@dataclass
class Inputs:
    """Everything the report reads; None marks an optional input that is absent (section "not run")."""

    prepare_chunks: dict | None = None
    self_improve: dict | None = None
    eval_continuations: dict | None = None
    teacher_thoughts: dict | None = None
    sft: dict[str, dict] = field(default_factory=dict)
    rlmt: dict[str, dict] = field(default_factory=dict)
    rlmt_steps: dict[str, list[dict]] = field(default_factory=dict)
    reward_gate: dict | None = None
    thought_probe: dict | None = None
    reasoning: dict[str, dict] = field(default_factory=dict)
    # arm -> benchmark -> problem id -> `correct` per sample (report/intervals.py), for paired intervals
    reasoning_samples: dict[str, dict] = field(default_factory=dict)
    arms: ArmsParams = DEFAULT_ARMS  # params.yaml's arms: which sft/rlmt/gate arms the report reads


def input_paths(reports: Path, arms: ArmsParams = DEFAULT_ARMS) -> dict[str, Path]:
    """Every input by a stable name (also the DVC deps of the report stage), for params.yaml's arms."""
    paths = {
        "prepare_chunks": reports / "prepare_chunks" / "metrics.json",
        "self_improve": reports / "self_improve" / "metrics.json",
        "eval_continuations": reports / "eval_continuations" / "metrics.json",
        "teacher_thoughts": reports / "teacher_thoughts" / "metrics.json",
        "self_improve_timing": Path(timing_path("self_improve", reports=reports)),
        "reward_gate": reports / "reward_gate" / "summary.json",
        "thought_probe": reports / "thought_probe" / "summary.json",
    }
    for arm in arms.sft:
        paths[f"sft/{arm}"] = reports / "sft" / f"{arm}.json"
        paths[f"sft_timing/{arm}"] = Path(timing_path("sft", arm, reports))
    for arm in arms.rlmt:
        paths[f"rlmt/{arm}"] = reports / "rlmt" / f"{arm}.json"
        paths[f"rlmt_steps/{arm}"] = reports / "rlmt" / f"{arm}_steps.json"
        paths[f"rlmt_timing/{arm}"] = Path(timing_path("rlmt", arm, reports))
    for arm in arms.gate:
        paths[f"reasoning/{arm}"] = reports / "reasoning_eval" / f"{arm}.json"
    return paths


def required(arms: ArmsParams = DEFAULT_ARMS) -> frozenset[str]:
    """The trained results are the point of the report; audits and downstream evals may be skipped in a partial run."""
    return frozenset(
        ["eval_continuations", "reward_gate"] + [f"sft/{a}" for a in arms.sft] + [f"rlmt/{a}" for a in arms.rlmt]
    )


REQUIRED = required()  # of the default arms


def _need(path: Path, obj: Any, keys: tuple[str, ...], where: str = "") -> dict:
    if not isinstance(obj, dict):
        raise InputError(f"{path}: {where or 'top level'}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise InputError(f"{path}: {where + ': ' if where else ''}missing key(s) {missing}")
    return obj


def _check_gate(path: Path, obj: Any) -> dict:
    _need(path, obj, ("arms", "comparisons", "go_no_go"))
    for arm, row in sorted(obj["arms"].items()):
        _need(path, row, GATE_ARM_KEYS, f"arms.{arm}")
    for name, row in sorted(obj["comparisons"].items()):
        _need(path, row, GATE_CMP_KEYS, f"comparisons.{name}")
    _need(path, obj["go_no_go"], GO_NO_GO_KEYS, "go_no_go")
    return obj


def _check_probe(path: Path, obj: Any) -> dict:
    _need(path, obj, ("arms",))
    for arm, row in sorted(obj["arms"].items()):
        _need(path, row, ("conditions", "causal_deltas"), f"arms.{arm}")
        for cond, c in sorted(row["conditions"].items()):
            _need(path, c, ("reward_mean", "n"), f"arms.{arm}.conditions.{cond}")
        for name, d in sorted(row["causal_deltas"].items()):
            _need(path, d, PROBE_DELTA_KEYS, f"arms.{arm}.causal_deltas.{name}")
    return obj


def _check_reasoning(path: Path, obj: Any) -> dict:
    _need(path, obj, ("arm", "benchmarks", "macro"))
    for bench, row in sorted(obj["benchmarks"].items()):
        _need(path, row, BENCH_KEYS, f"benchmarks.{bench}")
    _need(path, obj["macro"], MACRO_KEYS, "macro")
    for cond, c in sorted((obj.get("conditions") or {}).items()):  # e.g. think_opener
        _need(path, c, ("benchmarks", "macro"), f"conditions.{cond}")
        for bench, row in sorted(c["benchmarks"].items()):
            _need(path, row, BENCH_KEYS, f"conditions.{cond}.benchmarks.{bench}")
    return obj


def _check_steps(path: Path, obj: Any) -> list[dict]:
    if not isinstance(obj, list):
        raise InputError(f"{path}: expected a JSON list of per-step objects, got {type(obj).__name__}")
    for i, row in enumerate(obj):
        _need(path, row, ("step", "reward_mean"), f"[{i}]")
    return obj


def _check_chunks(path: Path, obj: Any) -> dict:
    _need(path, obj, ("splits", "dropped"))
    for split, row in sorted(obj["splits"].items()):
        _need(path, row, ("rows", "tokens"), f"splits.{split}")
    return obj


def load_inputs(reports: str | Path = "reports", arms: ArmsParams = DEFAULT_ARMS) -> Inputs:
    """Read and check every input under `reports` for params.yaml's `arms`; see required() for which
    may be absent."""
    reports = Path(reports)
    paths = input_paths(reports, arms)
    missing = sorted(str(paths[n]) for n in required(arms) if not paths[n].exists())
    if missing:
        # Name every missing required file at once, so one rerun of the pipeline fixes them all.
        raise InputError(
            f"{missing[0]}: required report input not found"
            + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + "; run `dvc repro` first"
        )

    def load(name: str, check):
        path = paths[name]
        return check(path, read_json(path)) if path.exists() else None

    def keys(k):
        return lambda p, o: _need(p, o, k)

    def timed(section: str, need: tuple[str, ...], arm: str | None = None) -> dict | None:
        """The section's record (of `arm`) with its timing columns from its timing file (None where the
        record is absent; a column absent from an absent timing file keeps the record's value, or None)."""
        at = f"/{arm}" if arm else ""
        rec = load(section + at, keys(need))
        if rec is None:
            return None
        timing = load(f"{section}_timing{at}", keys(TIMING_KEYS[section])) or {}
        return {**rec, **{k: timing.get(k, rec.get(k)) for k in TIMING_KEYS[section]}}

    inp = Inputs(
        prepare_chunks=load("prepare_chunks", _check_chunks),
        self_improve=timed("self_improve", SELF_IMPROVE_KEYS),
        eval_continuations=load("eval_continuations", keys(CONTINUATION_KEYS)),
        teacher_thoughts=load("teacher_thoughts", keys(TEACHER_KEYS)),
        reward_gate=load("reward_gate", _check_gate),
        thought_probe=load("thought_probe", _check_probe),
    )
    inp.arms = arms
    for arm in arms.sft:
        if (d := timed("sft", SFT_KEYS, arm)) is not None:
            inp.sft[arm] = d
    for arm in arms.rlmt:
        if (d := timed("rlmt", RLMT_KEYS, arm)) is not None:
            inp.rlmt[arm] = d
        if (s := load(f"rlmt_steps/{arm}", _check_steps)) is not None:
            inp.rlmt_steps[arm] = s
    for arm in arms.gate:
        if (d := load(f"reasoning/{arm}", _check_reasoning)) is not None:
            inp.reasoning[arm] = d
    from thinkmid.report.intervals import load_reasoning_samples

    inp.reasoning_samples = load_reasoning_samples(reports, list(inp.reasoning), BENCHMARKS)
    return inp
