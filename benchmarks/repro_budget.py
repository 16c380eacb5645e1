"""`dvc repro` inside a time budget, one stage at a time, so a call that must end loses no half-run stage.

    python benchmarks/repro_budget.py --log out/repro.log [--budget 560] [--estimates stage_times.json]
                                      [--first prepare_thought_tasks verbal_thought ...]

`timeout N dvc repro` kills the stage it is in when time runs out, and the next call reruns it from the
start. This runs `dvc repro --single-item <stage>` for each stage that DVC says has changed, in
topological order (stages named by --first, and what they need, as early as the order allows, in
the order named), and
does not start a stage whose estimate (the last run's wall time from --estimates, else
--default-estimate) is more than the time left; it tries the smaller ones after it. A stage downstream
of a failed or unstarted one is skipped, and so is one that failed in an earlier call of the same log
(the work dir keeps the first call's code; --retry-failed runs it again). Every log line gets a unix timestamp in front, which
paper_lifecycle.sh's stage_times parser reads. Exit status: 1 if a stage failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def plan(first: list[str]) -> tuple[list[str], dict[str, set[str]]]:
    """(the changed stages in run order, each stage's upstream stages), from DVC's own graph."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo() as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        position = {s.addressing: i for i, s in enumerate(repo.index.stages)}
        changed = set(repo.status())
        names = {s.addressing for s in graph} | {s.addressing.partition("@")[0] for s in graph}
        unknown = [n for n in first if n not in names]
        if unknown:
            raise SystemExit(f"--first: no stage or foreach group {unknown} in dvc.yaml; stages: {sorted(names)}")
        # each stage takes the rank of the first --first entry it is (or feeds); the rest come after
        rank: dict = {}
        for r, name in enumerate(first):
            for s in graph:
                if name in (s.addressing, s.addressing.partition("@")[0]):
                    for u in (s, *nx.descendants(graph, s)):
                        rank.setdefault(u, r)
        order = nx.lexicographical_topological_sort(
            graph.reverse(), key=lambda s: (rank.get(s, len(first)), position.get(s.addressing, 0))
        )
        upstream = {s.addressing: {u.addressing for u in nx.descendants(graph, s)} for s in graph}
        return [s.addressing for s in order if s.addressing in changed], upstream


def estimate(stage: str, table: dict, default: float) -> float:
    v = table.get(stage)
    return float(v) if isinstance(v, (int, float)) else default


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:  # it ended on its own meanwhile
        pass


def run_stage(stage: str, log, seconds_left: float | None) -> bool:
    """`dvc repro --single-item stage`, its output stamped into `log` and stdout; True if it succeeded."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--single-item", stage],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # the hard stop below takes the stage's own children too
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # the estimate was wrong if this fires: the stage is lost, but the call still ends in time
    stop = threading.Timer(max(seconds_left, 1.0), _kill, (proc.pid,)) if seconds_left else None
    if stop:
        stop.start()
    for line in proc.stdout:
        stamped = f"{time.time():.1f} {line}"
        log.write(stamped)
        log.flush()
        sys.stdout.write(stamped)
    ok = proc.wait() == 0
    if stop:
        stop.cancel()
    return ok


def failed_before(log: Path) -> set[str]:
    """Stages whose last run in an earlier call's log failed: the work dir's code is the first call's,
    so the same stage would fail the same way again."""
    failed, current = set(), None
    if not log.is_file():
        return failed
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.search(r"Running stage '([^']+)'", line)
        if m:
            current = m.group(1)
            failed.discard(current)
        elif current and f"failed to reproduce '{current}'" in line:
            failed.add(current)
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", required=True, help="repro log to append to")
    ap.add_argument("--budget", type=float, default=0, help="seconds this call may run; 0: no limit")
    ap.add_argument("--estimates", help="JSON stage -> seconds (a previous run's stage_times.json)")
    ap.add_argument("--default-estimate", type=float, default=120.0)
    ap.add_argument("--first", nargs="*", default=[], help="stages (or foreach groups) to run as early as possible")
    ap.add_argument("--retry-failed", action="store_true", help="run again the stages an earlier call saw fail")
    args = ap.parse_args(argv)
    start = time.time()
    table = json.loads(Path(args.estimates).read_text()) if args.estimates and Path(args.estimates).is_file() else {}
    order, upstream = plan(args.first)
    blocked: dict[str, str] = {}  # stage -> why it did not run
    before = set() if args.retry_failed else failed_before(Path(args.log))
    with open(args.log, "a", encoding="utf-8") as log:
        for stage in order:
            why = next((f"upstream {u} {blocked[u]}" for u in upstream[stage] if u in blocked), None)
            if why is None and stage in before:
                why, blocked[stage] = "failed in an earlier call (--retry-failed runs it again)", "failed"
                log.write(f"{time.time():.1f} === skip {stage}: {why}\n")
                continue
            left = args.budget - (time.time() - start) if args.budget else None
            if why is None and left is not None and estimate(stage, table, args.default_estimate) > left:
                why = f"not started: estimate {estimate(stage, table, args.default_estimate):.0f} s > {left:.0f} s left"
            if why is not None:
                blocked[stage] = "not run"
                log.write(f"{time.time():.1f} === skip {stage}: {why}\n")
                continue
            if not run_stage(stage, log, left):
                blocked[stage] = "failed"
        left_out = sorted(s for s, w in blocked.items() if w != "failed")
        failed = sorted(s for s, w in blocked.items() if w == "failed")
        log.write(
            f"{time.time():.1f} === call done: failed {failed or '-'}; left for the next call {left_out or '-'}\n"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
