"""The knowledge-gate probe across arms: accuracy at each off-fraction per arm (table and plot) and the
Jaccard overlap of the arms' knowledge-neuron sets, overall and per layer.

Reads reports/knowledge_gates/<arm>.json and models/gates/<arm>/knowledge_neurons.safetensors for
the arms of `knowledge_gates.arms` that ran; writes reports/knowledge_gates_report/{summary.json,GATES.md,curves.png}. The
main report appends GATES.md's tables to RESULTS.md.

    python -m stages.knowledge_gates_report
"""

from __future__ import annotations

from pathlib import Path

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.errors import InputError
from thinkmid.gates import ARMS
from thinkmid.gates.gating import load_knowledge_mask
from thinkmid.gates.overlap import overlap_report
from thinkmid.io import read_json, write_json, write_text
from thinkmid.report.gates import build_gates_summary, gates_plot, render_gates
from thinkmid.track import StageRun

OUT = Path("reports/knowledge_gates_report")


def run(params: Params, arm: str | None) -> None:
    arms = tuple(a for a in ARMS if a in params.knowledge_gates.arms)
    metrics = {
        a: read_json(f"reports/knowledge_gates/{a}.json")
        for a in arms
        if Path(f"reports/knowledge_gates/{a}.json").exists()
    }
    if not metrics:
        raise InputError("reports/knowledge_gates: no arm has run; run `dvc repro knowledge_gates` first")
    masks = {a: load_knowledge_mask(f"models/gates/{a}") for a in metrics}
    summary = build_gates_summary(metrics, overlap_report(masks), arms)
    with StageRun("knowledge_gates_report", params) as tr:
        write_json(OUT / "summary.json", summary)
        write_text(OUT / "GATES.md", "# Knowledge gates\n\n" + render_gates(summary, "curves.png") + "\n")
        gates_plot(summary, OUT / "curves.png")
        flat = {f"jaccard.{p['left']}.{p['right']}": p["jaccard"] for p in summary["overlap"]["pairs"].values()}
        flat.update({f"knowledge_neurons.{a}": n["knowledge_neurons"] for a, n in summary["knowledge_neurons"].items()})
        tr.log_metrics(flat)
        for name in ("summary.json", "GATES.md", "curves.png"):
            tr.log_artifact(OUT / name)


if __name__ == "__main__":
    stage_main("knowledge_gates_report", run)
