"""Causal thought-use probe: suffix reward when the model's own thought is replaced, per gate arm.

For each gate arm (think_base, think_phase3, think_base_rlmt, think_phase3_rlmt; one loaded at a
time) and the first thought_probe.prefixes gate prefixes (the SFT val rows cut at a teacher thought,
stages/reward_gate.py: gate_rows; prefixes tokenised with the arm's tokenizer): sample one thought per prefix (rlmt.thought_max_tokens, rlmt.temperature),
then thought_probe.k suffixes (rlmt.suffix_max_tokens) after each of five thoughts: sampled (its
own), swapped (another prefix's sampled thought, rotation by one), blank (<think></think>), generic
(thought_probe.generic_thought) and teacher (the teacher's thought at the cut, as the seed took it).
Suffixes are judged by the shared reference judge; same seed for every arm and condition.

Outputs
- reports/thought_probe/summary.json: {"arms": {arm: {"conditions": {cond: {reward_mean, n,
  prefixes, invalid_rate}}, "deltas_vs_sampled": {cond: reward(cond) - reward(sampled), paired on
  the prefixes cond covers}}}}.
- reports/thought_probe/samples.jsonl: every judged suffix (arm, prefix_id, condition, thought, ...).

MLflow: one run per arm `thought_probe/<arm>` (reward_<cond>, n_<cond>, delta_<cond>), then one run
`thought_probe` with summary.json and samples.jsonl as artifacts. An arm whose invalid verdict rate
exceeds reference_judge.max_invalid_rate stops the stage (judges/base.py: check_invalid_rate).

    python -m stages.thought_probe
"""

from __future__ import annotations

import logging
import time

from thinkmid import ARMS_GATE
from thinkmid.cli import stage_main
from thinkmid.judges.factory import reference_judge_for
from thinkmid.config import Params
from thinkmid.engines.factory import engine_for
from thinkmid.evals import probe
from thinkmid.evals import reward_gate as rg
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
    """(rows with this arm's prefix_ids, sampled thoughts, {cond: (row idx, judged groups)});
    the arm's model is dropped when this returns."""
    model, tok, path = rg.load_arm(params, arm)
    rl, tp = params.rlmt, params.thought_probe
    arm_rows = probe.with_prefix_ids(rows, tok)
    with engine_for(params.engine, model, tok, path) as eng:
        thoughts, results = probe.run_probe(
            eng, tok, arm_rows, judge, k=tp.k, thought_max=rl.thought_max_tokens,
            suffix_max=rl.suffix_max_tokens, temperature=rl.temperature, seed=params.seed,
            generic_thought=tp.generic_thought,
        )  # fmt: skip
    return arm_rows, thoughts, results


def run(params: Params, arm: str | None) -> None:
    rows = probe_rows(params)
    judge = reference_judge_for(params)
    arms, samples = {}, []
    for a in ARMS_GATE:
        t0 = time.time()
        with StageRun("thought_probe", params, arm=a) as tr:
            arm_rows, thoughts, results = probe_arm(params, a, rows, judge)
            rg.free_memory()
            all_groups = [g for _, groups in results.values() for g in groups]
            check_invalid_rate(rg.verdict_stats(all_groups), params.reference_judge.max_invalid_rate,
                               f"thought_probe {a}")  # fmt: skip
            arms[a] = probe.summarize_arm(results)
            samples += probe.sample_rows(a, arm_rows, thoughts, results)
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
