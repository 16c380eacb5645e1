"""Causal thought-use probe: suffix reward when the model's own thought is replaced, per gate arm.

For each gate arm (think_base, think_phase3, think_base_rlmt, think_phase3_rlmt; one loaded at a
time) and the first thought_probe.prefixes gate prefixes (the SFT val rows cut at a teacher thought,
stages/reward_gate.py: gate_rows; prefixes tokenised with the arm's tokenizer), as the seed's probe ran:
thought_probe.k thoughts sampled independently per prefix (rlmt.thought_max_tokens, rlmt.temperature),
one suffix (rlmt.suffix_max_tokens) after each (`normal`); then one suffix after each replaced thought:
blank (<think></think>), generic (thought_probe.generic_thoughts, rotated by prefix + sample), swapped
(a seeded random derangement of the prefixes; sample j takes thought j of its source) and teacher (the
teacher's thought at the cut; rows without one skipped). Suffixes are judged by the shared reference
judge; same seed for every arm.

Outputs
- reports/thought_probe/summary.json: {"arms": {arm: {"conditions": {cond: {reward_mean, reward_std,
  n, records, prefixes, invalid_rate, prefix_mean_reward, any/all_success_prefix_rate, ...}},
  "causal_deltas": {"normal_minus_<cond>": {shared_prefixes, mean_delta, normal_better_prefix_rate,
  condition_better_prefix_rate, tie_prefix_rate}}}}}; positive mean_delta: the own thought helps.
- reports/thought_probe/samples.jsonl: every judged suffix (arm, prefix_id, condition, thought, ...).

MLflow: one run per arm `thought_probe/<arm>` (reward_<cond>, n_<cond>, normal_minus_<cond>/<key>),
then one run `thought_probe` with summary.json and samples.jsonl as artifacts. An arm whose invalid
verdict rate exceeds reference_judge.max_invalid_rate stops the stage (judges/base.py: check_invalid_rate).

    python -m stages.thought_probe
"""

from __future__ import annotations

import logging
import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.wiring import Part, build, policy
from thinkmid.evals import probe
from thinkmid.evals import reward_gate as rg
from thinkmid.evals.arms import free_memory, load_arm, require_arm_dirs
from thinkmid.io import write_json, write_jsonl
from thinkmid.judges.base import check_invalid_rate
from thinkmid.track import StageRun

log = logging.getLogger("thinkmid.thought_probe")
OUT = "reports/thought_probe"
SUMMARY = f"{OUT}/summary.json"
SAMPLES = f"{OUT}/samples.jsonl"


def probe_rows(params: Params) -> list[dict]:
    """The first thought_probe.prefixes gate prefixes (the seed's probe reuses the gate's rows)."""
    from stages.reward_gate import gate_rows

    return gate_rows(params, limit=params.thought_probe.prefixes)


def probe_arm(params: Params, arm: str, rows: list[dict], judge):
    """(rows with this arm's prefix_ids, {cond: (row idx, judged groups)}); the arm's model is
    dropped when this returns."""
    model, tok, path = load_arm(params, arm)
    rl, tp = params.rlmt, params.thought_probe
    arm_rows = probe.with_prefix_ids(rows, tok)
    with build(policy(path, label=arm), params, model, tok) as eng:
        results = probe.run_probe(
            eng,
            tok,
            arm_rows,
            judge,
            k=tp.k,
            thought_max=rl.thought_max_tokens,
            suffix_max=rl.suffix_max_tokens,
            temperature=rl.temperature,
            seed=params.seed,
            generic_thoughts=list(tp.generic_thoughts),
            top_p=rl.top_p,
        )
    return arm_rows, results


def wiring(params: Params, arm: str | None = None) -> list[Part]:
    """The shared reference judge (its server first, before any arm is sampled), then each gate arm's
    engine in turn (a server engine serves each arm's own model)."""
    return [Part("reference_judge")] + [policy(m, label=a) for a, m in params.arms.gate.items()]


def run(params: Params, arm: str | None) -> None:
    rows = probe_rows(params)
    require_arm_dirs(params.arms.gate)
    with build(wiring(params)[0], params) as judge:
        _probe(params, rows, judge)


def _probe(params: Params, rows: list[dict], judge) -> None:
    arms, samples = {}, []
    for a in params.arms.gate:
        t0 = time.time()
        with StageRun("thought_probe", params, arm=a) as tr:
            arm_rows, results = probe_arm(params, a, rows, judge)
            free_memory()
            all_groups = [g for _, groups in results.values() for g in groups]
            check_invalid_rate(
                rg.verdict_stats(all_groups), params.reference_judge.max_invalid_rate, f"thought_probe {a}"
            )
            arms[a] = probe.summarize_arm(results)
            samples += probe.sample_rows(a, arm_rows, results)
            tr.log_metrics({**probe.arm_metrics(arms[a]), "wall_time_s": round(time.time() - t0, 2)})
        log.info("thought_probe %s: %s", a, {c: round(v["reward_mean"], 4) for c, v in arms[a]["conditions"].items()})
    with StageRun("thought_probe", params) as tr:
        write_jsonl(SAMPLES, samples)
        write_json(SUMMARY, {"arms": arms})
        tr.log_metrics({f"{a}/{k}": v for a, s in arms.items() for k, v in probe.arm_metrics(s).items()})
        tr.log_artifact(SUMMARY)
        tr.log_artifact(SAMPLES)


if __name__ == "__main__":
    stage_main("thought_probe", run)
