"""Timing figures (wall times, throughput, free memory) apart from results.

They change on every run, so a stage writes them to a file of their own,
`reports/<stage>/<arm or metrics>_timing.json` (DVC `metrics` with `cache: false`), and to MLflow;
the result metrics and step files keep hashes that change only when the results do. The report reads
the timing files for the record's Throughput / Wall Time / memory columns.
"""

from __future__ import annotations

import os

# A key is timing if it ends in one of these or is one of the exact names below.
_SUFFIXES = ("_time_s",)
_NAMES = frozenset({"throughput_tok_s", "min_available_mem_gib", "wall_time_s"})


def is_timing(key: str) -> bool:
    return key in _NAMES or key.endswith(_SUFFIXES)


def split_timing(metrics: dict) -> tuple[dict, dict]:
    """(results, timing) of one flat metrics dict."""
    res = {k: v for k, v in metrics.items() if not is_timing(k)}
    return res, {k: v for k, v in metrics.items() if is_timing(k)}


def timing_path(stage: str, name: str = "metrics", reports: str | os.PathLike = "reports") -> str:
    """<reports>/<stage>/<name>_timing.json; `name` is the arm, or `metrics` for a stage without arms."""
    return f"{reports}/{stage}/{name}_timing.json"


def write_timing(tr, path: str | os.PathLike, timing: dict) -> None:
    """Write the timing JSON and log its numbers to MLflow (through a StageRun `tr`). The THINKMID_*
    switches in force go in too (`switches`, for `dvc exp show`; MLflow has them as env.* tags): like
    the timings they describe the run, and here they leave the result metrics' hashes alone."""
    from thinkmid.io import write_json
    from thinkmid.provenance import switches

    write_json(path, {**timing, "switches": switches()})
    tr.log_metrics({k: v for k, v in timing.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
