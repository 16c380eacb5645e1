"""Thought interfaces compared (issue 17): accuracy against thought tokens / latent steps per
interface (verbal, abstract, continuous, no thought) on the same held-out problems, with the
ablations (random abstract tokens, no abstract tokens, zero latent steps). Reads
reports/thoughts/<interface>_<arm>_rows.json (written by the verbal/abstract/continuous thought
stages); writes a markdown section and reports/plots/thought_interfaces.png.
"""

from __future__ import annotations

import json
from pathlib import Path

from thinkmid.report.fmt import md_table

PLOT = "plots/thought_interfaces.png"  # relative to reports/
ORDER = ("no_thought", "verbal", "abstract", "abstract_random", "abstract_none", "continuous_zero", "continuous")
LABEL = {
    "no_thought": "no thought",
    "verbal": "verbal",
    "abstract": "abstract",
    "abstract_random": "abstract: random tokens",
    "abstract_none": "abstract: no tokens",
    "continuous": "continuous",
    "continuous_zero": "continuous: 0 latent steps",
}
UNIT = {"continuous": "latent steps", "continuous_zero": "latent steps"}


def load_rows(reports: str | Path) -> dict[str, list[dict]]:
    """arm -> every row of its interfaces, in a fixed order."""
    out: dict[str, list[dict]] = {}
    for path in sorted(Path(reports, "thoughts").glob("*_rows.json")):
        stage, arm = path.name.removesuffix("_rows.json").split("_", 1)
        rows = json.loads(path.read_text(encoding="utf-8"))
        out.setdefault(arm, []).extend(dict(r, stage=stage) for r in rows)
    for arm in out:
        out[arm].sort(key=lambda r: (ORDER.index(r["interface"]) if r["interface"] in ORDER else 99, r["budget"]))
    return out


def table(rows: list[dict]) -> str:
    body = [
        [
            LABEL.get(r["interface"], r["interface"]),
            str(r["budget"]),
            f"{r['thought_tokens']:.1f}",
            UNIT.get(r["interface"], "tokens"),
            f"{100 * r['accuracy']:.1f}%",
            f"{r['correct']}/{r['n']}",
            r["split"],
        ]
        for r in rows
    ]
    return md_table(
        ["interface", "budget", "thought spent", "unit", "accuracy", "correct", "split"],
        body,
        ["l", "r", "r", "l", "r", "r", "l"],
    )


def plot(by_arm: dict[str, list[dict]], path: str | Path) -> Path:
    from thinkmid.report.plots import _STYLE, _empty, _save, plt

    arms = sorted(by_arm)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, max(1, len(arms)), figsize=(4.2 * max(1, len(arms)), 3.4), squeeze=False)
        if not arms:
            _empty(axes[0][0], "thought interfaces")
        for ax, arm in zip(axes[0], arms):
            rows = by_arm[arm]
            for name in ("verbal", "abstract", "continuous"):
                pts = sorted(
                    (
                        r
                        for r in rows
                        if r["interface"] == name or (name == "continuous" and r["interface"] == "continuous_zero")
                    ),
                    key=lambda r: r["budget"],
                )
                if pts:
                    ax.plot([r["thought_tokens"] for r in pts], [r["accuracy"] for r in pts], marker="o", label=name)
            for name, color, ls in (
                ("no_thought", "k", "--"),
                ("abstract_random", "C1", ":"),
                ("abstract_none", "C1", "-."),
            ):
                pts = [r for r in rows if r["interface"] == name]
                if pts:
                    ax.axhline(pts[0]["accuracy"], color=color, linestyle=ls, linewidth=1, label=LABEL[name])
            ax.set_title(f"arm {arm} ({rows[0]['split']} split)")
            ax.set_xlabel("thought tokens (continuous: latent steps)")
            ax.set_ylabel("accuracy")
            ax.set_ylim(-0.02, 1.02)
            ax.legend(fontsize=7)
        fig.tight_layout()
        return _save(fig, path)


def section(reports: str | Path) -> str:
    """The RESULTS.md section (with its plot written next to the other plots)."""
    by_arm = load_rows(reports)
    head = [
        "## Thought interfaces",
        "",
        "Accuracy on the same held-out problems against the thought spent: verbal thoughts capped at a "
        "token budget, abstract-token thoughts capped likewise, continuous thoughts by latent steps, and no "
        "thought; the ablations say whether the interface carries information (random abstract tokens, "
        "no abstract tokens, zero latent steps). Greedy answers; `split` names the problems scored.",
        "",
    ]
    if not by_arm:
        return "\n".join(head + ["Not run (no reports/thoughts/*_rows.json).", ""])
    plot(by_arm, Path(reports) / PLOT)
    out = head + [f"![Thought interfaces]({PLOT})", ""]
    for arm in sorted(by_arm):
        out += [f"### Arm `{arm}`", "", table(by_arm[arm]), ""]
    return "\n".join(out)


def summary(reports: str | Path) -> dict:
    """arm -> interface -> accuracy at its largest budget (for summary.json)."""
    out: dict = {}
    for arm, rows in load_rows(reports).items():
        best: dict = {}
        for r in rows:
            if r["interface"] not in best or r["budget"] >= best[r["interface"]]["budget"]:
                best[r["interface"]] = r
        out[arm] = {k: v["accuracy"] for k, v in sorted(best.items())}
    return out
