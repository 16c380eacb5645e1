"""Report figures as PNGs: RLMT reward per step, and reward-gate means with error bars.

Agg backend, fixed size/dpi and no Software/timestamp metadata, so unchanged inputs give the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless and deterministic; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from thinkmid.io import atomic_path  # noqa: E402
from thinkmid.report.inputs import GATE_ARMS, RLMT_ARMS  # noqa: E402
from thinkmid.report.tables import ordered  # noqa: E402

_STYLE = {"figure.dpi": 100, "savefig.dpi": 100, "font.size": 9, "svg.hashsalt": "thinkmid"}


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def rlmt_reward_plot(steps: dict[str, list[dict]], path: str | Path) -> Path:
    """Mean judge reward per RLMT step, one line per arm; an empty panel says "not run"."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        arms = [a for a in ordered(steps, RLMT_ARMS) if steps[a]]
        for arm in arms:
            rows = sorted(steps[arm], key=lambda r: r["step"])
            ax.plot([r["step"] for r in rows], [r["reward_mean"] for r in rows], label=arm, linewidth=1.2)
        if arms:
            ax.set_xlabel("RLMT step")
            ax.set_ylabel("reward mean")
            ax.legend(loc="best")
            ax.grid(alpha=0.3)
        else:
            _empty(ax, "RLMT per-step reward")
        ax.set_title("RLMT training reward")
        fig.tight_layout()
        return _save(fig, path)


def reward_gate_plot(gate: dict | None, path: str | Path, samples_per_arm: int | None = None) -> Path:
    """Reward mean per gate arm; bars are +-1 standard error when the sample count is known, else +-1 std."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        if gate is None:
            _empty(ax, "reward gate")
        else:
            arms = ordered(gate["arms"], GATE_ARMS)
            means = [gate["arms"][a]["reward_mean"] for a in arms]
            n = [gate["arms"][a].get("n", samples_per_arm) for a in arms]  # a per-arm count wins over params
            err = [
                gate["arms"][a]["reward_std"] / math.sqrt(k) if k else gate["arms"][a]["reward_std"]
                for a, k in zip(arms, n)
            ]
            ax.bar(range(len(arms)), means, yerr=err, capsize=4, color="#4c72b0")
            ax.set_xticks(range(len(arms)), arms, rotation=15)
            ax.set_ylabel("reward mean")
            ax.set_ylim(bottom=0)
            ax.grid(axis="y", alpha=0.3)
            ax.set_title("Reward gate" + (" (bars: +-1 s.e.)" if all(n) else " (bars: +-1 std)"))
        fig.tight_layout()
        return _save(fig, path)
