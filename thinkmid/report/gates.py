"""The knowledge-gate probe's results: accuracy at each off-fraction per arm, knowledge-neuron counts
and their overlap (Jaccard) between arms, overall and per layer; as markdown tables, one PNG and a
summary dict. `knowledge_gates_report` writes them; the main report appends `gates_section`."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from thinkmid.io import atomic_path  # noqa: E402
from thinkmid.report.fmt import f2, f4, md_table, pct  # noqa: E402

SUMMARY = "knowledge_gates_report/summary.json"  # relative to reports/
PLOT = "knowledge_gates_report/curves.png"
CURVE_KEYS = (
    "off_fraction",
    "closed_fraction",
    "entity_acc",
    "entity_token_acc",
    "entity_nll",
    "reasoning_acc",
    "reasoning_acc_lo",
    "reasoning_acc_hi",
    "gsm8k_solution_nll",
)
_STYLE = {"figure.dpi": 100, "savefig.dpi": 100, "font.size": 8, "svg.hashsalt": "thinkmid"}


def build_gates_summary(metrics: dict[str, dict], overlap: dict, all_arms: tuple[str, ...]) -> dict:
    """Headline numbers from each arm's reports/knowledge_gates/<arm>.json and the overlap report."""
    arms = [a for a in all_arms if a in metrics]
    curves = {a: [{k: p.get(k) for k in CURVE_KEYS} for p in metrics[a]["points"]] for a in arms}
    neurons = {
        a: {
            k: metrics[a].get(k)
            for k in (
                "knowledge_neurons",
                "total_gates",
                "knowledge_fraction",
                "sigmoid_mean",
                "sigmoid_std",
                "steps",
                "entity_ce_first",
                "entity_ce_last",
                "final_retain_kl",
            )
        }
        for a in arms
    }
    return {
        "arms": arms,
        "not_run": [a for a in all_arms if a not in metrics],
        "curves": curves,
        "knowledge_neurons": neurons,
        "overlap": overlap,
    }


def _fractions(summary: dict) -> list[float]:
    seen = sorted({p["off_fraction"] for c in summary["curves"].values() for p in c})
    return seen


def _at(curve: list[dict], frac: float, key: str):
    return next((p.get(key) for p in curve if p["off_fraction"] == frac), None)


def curve_table(summary: dict, key: str, fmt=pct) -> str:
    arms = summary["arms"]
    rows = [[f"{100 * f:g}%"] + [fmt(_at(summary["curves"][a], f, key)) for a in arms] for f in _fractions(summary)]
    return md_table(["gates off"] + arms, rows)


def neurons_table(summary: dict) -> str:
    rows = []
    for a in summary["arms"]:
        n = summary["knowledge_neurons"][a]
        rows.append(
            [
                a,
                f"{n['knowledge_neurons']:,}",
                f"{n['total_gates']:,}",
                pct(n["knowledge_fraction"]),
                f4(n["sigmoid_mean"]),
                f4(n["sigmoid_std"]),
                f2(n["entity_ce_first"]),
                f2(n["entity_ce_last"]),
            ]
        )
    return md_table(
        ["arm", "knowledge neurons", "gates", "share", "gate mean", "gate std", "entity CE start", "entity CE end"],
        rows,
    )


def jaccard_table(summary: dict) -> str:
    """Arms x arms; each cell `jaccard (chance)`."""
    arms, pairs = summary["arms"], summary["overlap"]["pairs"]

    def cell(x, y):
        if x == y:
            return "1"
        p = pairs.get(f"{x}__{y}") or pairs.get(f"{y}__{x}")
        return "n/a" if p is None else f"{f4(p['jaccard'])} ({f4(p['chance'])})"

    return md_table(["arm"] + arms, [[x] + [cell(x, y) for y in arms] for x in arms])


def reference_pairs(summary: dict) -> tuple[str | None, list[dict]]:
    """The pairs of the first arm (base, when it ran) with every other arm."""
    arms, pairs = summary["arms"], summary["overlap"]["pairs"]
    if not arms:
        return None, []
    ref = arms[0]
    return ref, [pairs[f"{ref}__{b}"] for b in arms[1:] if f"{ref}__{b}" in pairs]


def layer_table(summary: dict) -> str:
    ref, pairs = reference_pairs(summary)
    if not pairs:
        return "Only one arm ran: no overlap to show."
    layers = len(pairs[0]["per_layer"])
    rows = []
    for i in range(layers):
        chance = [p["per_layer_chance"][i] for p in pairs if p["per_layer_chance"][i] is not None]
        rows.append(
            [str(i)] + [f4(p["per_layer"][i]) for p in pairs] + [f4(sum(chance) / len(chance)) if chance else "n/a"]
        )
    return md_table(["layer"] + [f"{ref} / {p['right']}" for p in pairs] + ["chance (mean)"], rows)


def render_gates(summary: dict, plot: str = PLOT) -> str:
    """The section's markdown body (no heading); `plot` is the PNG's path relative to the page."""
    if not summary["arms"]:
        return "Not run."
    note = f"\n\nNot run: {', '.join(summary['not_run'])}." if summary["not_run"] else ""
    parts = [
        "Gates on every MLP neuron of each arm's frozen model, trained to forget entity facts while a KL term "
        "keeps reasoning text unchanged (reference/lambda-gates-card.txt), then closed lowest first. "
        "0% is the ungated model." + note,
        "### Entity-knowledge accuracy (held-out facts, every entity token top-1)",
        curve_table(summary, "entity_acc"),
        "### Entity-token accuracy (share of entity tokens predicted top-1)",
        curve_table(summary, "entity_token_acc"),
        "### Reasoning accuracy (the reasoning eval's GSM8K subset, Mean@k)",
        curve_table(summary, "reasoning_acc"),
        "### Reference-solution NLL on those GSM8K problems",
        curve_table(summary, "gsm8k_solution_nll", f4),
        f"### Knowledge neurons (gate < 0.5)\n\n{neurons_table(summary)}",
        "### Overlap of knowledge-neuron sets (Jaccard; chance for random sets of the same sizes in brackets)",
        jaccard_table(summary),
        "### Overlap per layer",
        layer_table(summary),
        f"![Knowledge gates]({plot})",
    ]
    return "\n\n".join(parts)


def gates_section(reports: str | Path) -> str:
    """`## Knowledge gates` for RESULTS.md, from reports/knowledge_gates_report/summary.json if present."""
    path = Path(reports) / SUMMARY
    body = render_gates(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else "Not run."
    return f"\n## Knowledge gates\n\n{body}\n"


def gates_plot(summary: dict, path: str | Path) -> Path:
    """Entity and reasoning accuracy against the off-fraction per arm, and per-layer overlap with the
    first arm; fixed size, no metadata, so unchanged inputs give the same bytes."""
    path = Path(path)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        for ax, key, title in ((axes[0], "entity_acc", "entity accuracy"), (axes[1], "reasoning_acc", "GSM8K Mean@k")):
            for a in summary["arms"]:
                pts = [(p["off_fraction"], p[key]) for p in summary["curves"][a] if p.get(key) is not None]
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, label=a)
            ax.set_xlabel("fraction of gates closed")
            ax.set_title(title)
            ax.set_ylim(-0.02, 1.02)
        ref, pairs = reference_pairs(summary)
        for p in pairs:
            ys = [float("nan") if v is None else v for v in p["per_layer"]]
            axes[2].plot(range(len(ys)), ys, label=p["right"])
        if pairs:
            chance = [v for v in pairs[0]["per_layer_chance"]]
            axes[2].plot(
                range(len(chance)), [float("nan") if v is None else v for v in chance], "k--", lw=0.8, label="chance"
            )
        axes[2].set_xlabel("layer")
        axes[2].set_title(f"Jaccard with {ref}" if ref else "Jaccard")
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
        plt.close(fig)
    return path
