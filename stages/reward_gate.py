"""Post-RLMT reward gate: the RLMT reward on held-out gate prefixes for the four gate arms.

Arms think_base, think_phase3 (SFT) and think_base_rlmt, think_phase3_rlmt (RLMT), loaded one at a
time from their model dirs. Each gets reward_gate.k two-stage samples (thought up to
rlmt.thought_max_tokens, </think> inserted, suffix up to rlmt.suffix_max_tokens, temperature
rlmt.temperature, rlmt.top_p) on the first reward_gate.prefixes usable SFT val rows
(data/thoughts/val.jsonl shuffled with params.seed, each cut at its first teacher thought with
prefixes.min_before tokens before and prefixes.min_after after; thinkmid/data/prefixes.py, the seed's
build_eval_rows), with the SAME seed (params.seed) for every arm, judged by one reference judge
(reference_judge) shared by all arms.

Outputs
- reports/reward_gate/samples/<arm>.jsonl (the folder is the DVC out): every sample (prefix_id,
  sample_idx, thought, predicted_suffix, reward, new_tokens, closed_by_model).
- reports/reward_gate/summary.json (DVC metrics): {"arms": per-arm group statistics + n,
  "comparisons": the six "<right>_minus_<left>" pairs, "phase3_vs_base": the seed's legacy
  think_phase3 vs think_base fields, "go_no_go": four fields, "go_no_go_intervals": for each field
  the quantity it decides on with its 95% cluster bootstrap interval over prefixes (paired across
  arms for deltas); each comparison also carries mean_reward_delta_ci95_low/high}. Each go/no-go
  boolean is logged with those intervals.

Go/no-go fields, as the seed defined them (thinkmid/evals/reward_gate.py: go_no_go):
- reward_validity_ok: every arm has >= 1 valid verdict and invalid_rate <= reference_judge.max_invalid_rate.
- variance_ok: every arm's near_zero_groups <= reward_gate.max_near_zero_group_rate (0.50).
- phase3_more_reward_separable: think_phase3 mean_group_std > think_base's, or think_phase3
  mixed_groups > think_base's (the SFT arms).
- phase3_higher_mean_reward: mean over shared prefixes of (think_phase3 - think_base) > 0.

MLflow: one run per arm, `reward_gate/<arm>`, with identical metric keys (the arm's summary row plus
wall_time_s) and its samples JSONL; then one run `reward_gate` (no arm) holding summary.json and the
flattened summary (<arm>/<key>, <comparison>/<key>, go_no_go/<field>). When reward_validity_ok is
false the stage writes everything, then fails: numbers built on invalid verdicts must not flow on.

    python -m stages.reward_gate
"""

from __future__ import annotations

import logging
import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.data.prefixes import prefix_rows
from thinkmid.engines.wiring import Part, build, policy
from thinkmid.errors import InputError
from thinkmid.evals import reward_gate as rg
from thinkmid.evals.arms import free_memory, load_arm, require_arm_dirs
from thinkmid.io import read_jsonl, write_jsonl
from thinkmid.judges.base import check_invalid_rate
from thinkmid.models.tokenizer import load_tokenizer
from thinkmid.rollouts import judge_groups, sample_groups
from thinkmid.track import StageRun

log = logging.getLogger("thinkmid.reward_gate")
GATE = "data/thoughts/val.jsonl"  # the seed's gate rows are the SFT val rows
OUT = "reports/reward_gate"
SUMMARY = f"{OUT}/summary.json"
SAMPLES = f"{OUT}/samples"  # one <arm>.jsonl per arm


def gate_rows(params: Params, limit: int | None = None) -> list[dict]:
    """The first `limit` (reward_gate.prefixes) usable prefixes of the shuffled SFT val rows; the probe
    takes the first thought_probe.prefixes of the same list."""
    limit = params.reward_gate.prefixes if limit is None else limit
    val = read_jsonl(GATE, ("id", "text"))
    require_arm_dirs(params.arms.gate)
    tok = load_tokenizer(next(iter(params.arms.gate.values())))  # every arm shares the base tokenizer
    rows = prefix_rows(val, tok, params.prefixes, params.seed, limit=limit)
    if not rows:
        raise InputError(
            f"{GATE}: no row has a teacher thought with >= prefixes.min_before tokens before "
            "and >= prefixes.min_after after; run teacher_thoughts or lower those"
        )
    if len(rows) < limit:
        log.warning("%s has %d usable rows, fewer than %d", GATE, len(rows), limit)
    return rows


def sample_arm(params: Params, arm: str, rows: list[dict]):
    """K two-stage samples per gate prefix for one arm; its model is dropped when this returns."""
    model, tok, path = load_arm(params, arm)
    vocab = len(tok)
    bad = next((r["id"] for r in rows if any(not 0 <= t < vocab for t in r["prefix_ids"])), None)
    if bad is not None:
        raise InputError(f"{GATE}: row {bad!r} has prefix_ids outside the {arm} tokenizer's vocabulary")
    rl = params.rlmt
    with build(policy(path, label=arm), params, model, tok) as eng:
        # The SAME seed for every arm: arms differ only by their weights.
        return sample_groups(
            eng,
            tok,
            rows,
            params.reward_gate.k,
            rl.thought_max_tokens,
            rl.suffix_max_tokens,
            rl.temperature,
            params.seed,
            top_p=rl.top_p,
        )


def wiring(params: Params, arm: str | None = None) -> list[Part]:
    """The shared reference judge (its server first, before any arm is sampled), then each gate arm's
    engine in turn (a server engine serves each arm's own model)."""
    return [Part("reference_judge")] + [policy(m, label=a) for a, m in params.arms.gate.items()]


def run(params: Params, arm: str | None) -> None:
    rows = gate_rows(params)
    require_arm_dirs(params.arms.gate)
    with build(wiring(params)[0], params) as judge:
        _gate(params, rows, judge)


def _gate(params: Params, rows: list[dict], judge) -> None:
    groups_by_arm = {}
    for a in params.arms.gate:
        t0 = time.time()
        with StageRun("reward_gate", params, arm=a) as tr:
            groups = sample_arm(params, a, rows)
            free_memory()
            judge_groups(judge, rows, groups)
            stats = rg.arm_summary(groups)
            path = f"{SAMPLES}/{a}.jsonl"
            write_jsonl(path, rg.sample_rows(rows, groups))
            tr.log_metrics({**stats, "wall_time_s": round(time.time() - t0, 2)})
            tr.log_artifact(path)
        log.info(
            "reward_gate %s: reward_mean %.4f mixed %.3f invalid %.3f",
            a,
            stats["reward_mean"],
            stats["mixed_groups"],
            stats["invalid_rate"],
        )
        groups_by_arm[a] = groups
    max_invalid = params.reference_judge.max_invalid_rate
    summary = rg.summarize(rows, groups_by_arm, max_invalid, params.reward_gate.max_near_zero_group_rate)
    for line in rg.go_no_go_lines(summary):
        log.info("go/no-go %s", line)
    with StageRun("reward_gate", params) as tr:
        tr.write_metrics(SUMMARY, summary, log=False)
        tr.log_metrics(rg.flat_metrics(summary))
        tr.log_metrics({"judge_calls": judge.stats.calls, "judge_invalid": judge.stats.invalid})
    if not summary["go_no_go"]["reward_validity_ok"]:
        for a, groups in groups_by_arm.items():
            check_invalid_rate(rg.verdict_stats(groups), max_invalid, f"reward_gate {a}")
        raise RuntimeError("reward_gate: an arm has no valid judge verdicts; check the reference judge")


if __name__ == "__main__":
    stage_main("reward_gate", run)
