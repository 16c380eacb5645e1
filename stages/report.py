"""Regenerate the results page from the pipeline's JSON artifacts: reports/RESULTS.md, reports/summary.json
(every headline number) and reports/plots/{rlmt_reward,reward_gate}.png, all logged to MLflow.

Reads reports/{prepare_chunks,self_improve,eval_continuations,teacher_thoughts}/metrics.json,
reports/sft/<arm>.json, reports/rlmt/<arm>.json and <arm>_steps.json, reports/reward_gate/summary.json,
reports/thought_probe/summary.json and reports/reasoning_eval/<arm>.json. Optional inputs that are
absent make their section say "not run"; a missing required one exits with code 2 naming the path.

    python -m stages.report
"""

from __future__ import annotations

from pathlib import Path

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.io import write_json, write_text
from thinkmid.report import (
    build_summary,
    flat_metrics,
    interfaces,  # thought interfaces (issue 17): an appended section
    load_inputs,
    render_results,
)
from thinkmid.report.gates import gates_section
from thinkmid.report.plots import reward_gate_plot, rlmt_reward_plot
from thinkmid.report.results import PLOTS
from thinkmid.track import StageRun

REPORTS = Path("reports")
RESULTS = REPORTS / "RESULTS.md"
SUMMARY = REPORTS / "summary.json"


def run(params: Params, arm: str | None) -> None:
    inp = load_inputs(REPORTS, params.arms)  # before the MLflow run, so bad inputs leave no failed run behind
    with StageRun("report", params) as tr:
        rlmt_png = rlmt_reward_plot(inp.rlmt_steps, REPORTS / PLOTS["rlmt_reward"])
        # The gate scores prefixes x k samples per arm; that count turns reward_std into a standard error.
        gate_png = reward_gate_plot(
            inp.reward_gate, REPORTS / PLOTS["reward_gate"], params.reward_gate.prefixes * params.reward_gate.k
        )
        summary = build_summary(inp)
        summary["thought_interfaces"] = interfaces.summary(REPORTS)
        write_text(
            RESULTS, render_results(inp, params.profile) + gates_section(REPORTS) + "\n" + interfaces.section(REPORTS)
        )
        write_json(SUMMARY, summary)
        tr.log_metrics(flat_metrics(summary))
        for path in (RESULTS, SUMMARY, rlmt_png, gate_png):
            tr.log_artifact(path)


if __name__ == "__main__":
    stage_main("report", run)
