"""Where each stage process spent its wall time, from benchmarks/stack_sampler's collapsed stacks.

    python scripts/stack_summary.py STACKS_DIR [--top 3]

Each sample of a stage's main thread is put in the first category whose marker its stack holds
(imports, torch.compile, CUDA-graph capture, model load/save, MLflow, dataset loading); the rest
is the stage's own work, named by the innermost frame in thinkmid/ or stages/. Seconds are
samples x the sampling interval; a stage run twice (a resumed call) shows its last process.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (category, markers): the first category with a marker in a sample's stack takes the sample
CATEGORIES = (
    ("imports", ("_find_and_load (",)),
    ("compile", ("torch/_dynamo/", "torch/_inductor/")),
    ("graph capture", ("torch/cuda/graphs.py",)),
    ("model load", ("from_pretrained (", "load_file (", "safe_open (")),
    ("model save", ("save_pretrained (", "save_file (")),
    ("mlflow", ("mlflow/",)),
    ("datasets", ("datasets/",)),
)
OWN = re.compile(r"(?:^|;)([^;]*\((?:[^;]*/)?(?:thinkmid|stages)/[^;]*\))")


def classify(stack: str) -> str:
    for cat, markers in CATEGORIES:
        if any(m in stack for m in markers):
            return cat
    own = OWN.findall(stack)
    if not own:
        return "other"
    frame = own[-1]
    func, _, where = frame.partition(" (")
    return f"{func} ({where.split('/')[-1].split(':')[0]})"


def read(path: Path) -> tuple[float, float, Counter]:
    """(wall_s, interval_s, samples per category) of one process's file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head = lines[0].split()
    wall, interval = float(head[2]), float(head[4])
    cats: Counter = Counter()
    for line in lines[1:]:
        stack, _, n = line.rpartition(" ")
        cats[classify(stack)] += int(n)
    return wall, interval, cats


def summarize(folder: str | Path) -> dict[str, dict]:
    """stage -> {wall_s, seconds per category}; the newest process of each stage."""
    latest: dict[str, Path] = {}
    for p in sorted(Path(folder).glob("*.txt"), key=lambda p: p.stat().st_mtime):
        latest[p.stem.rsplit("-", 1)[0]] = p
    out = {}
    for stage, p in latest.items():
        wall, interval, cats = read(p)
        out[stage] = {"wall_s": wall, "seconds": {c: n * interval for c, n in cats.most_common()}}
    return out


def fixed_categories() -> list[str]:
    return [c for c, _ in CATEGORIES]


def markdown(summary: dict[str, dict], top: int = 3) -> str:
    cols = fixed_categories()
    rows = [
        "| stage | wall s | " + " | ".join(cols) + " | own work (top) |",
        "|---|---:|" + "---:|" * len(cols) + "---|",
    ]
    for stage, s in summary.items():
        secs = s["seconds"]
        own = [(c, v) for c, v in secs.items() if c not in cols][:top]
        cells = [f"{secs.get(c, 0):.0f}" for c in cols]
        rows.append(
            f"| {stage} | {s['wall_s']:.0f} | "
            + " | ".join(cells)
            + " | "
            + ", ".join(f"{c} {v:.0f}" for c, v in own)
            + " |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--top", type=int, default=3, help="own-work functions shown per stage (default: %(default)s)")
    args = ap.parse_args(argv)
    print(markdown(summarize(args.folder), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
