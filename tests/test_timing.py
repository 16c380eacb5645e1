"""thinkmid.timing: timing files carry the THINKMID_* switches in force (issue 16, item 3)."""

from __future__ import annotations

import json

from thinkmid.timing import write_timing


class _Run:  # a StageRun's log_metrics only
    def __init__(self):
        self.logged = {}

    def log_metrics(self, metrics):
        self.logged.update(metrics)


def test_timing_file_records_the_switches(tmp_path, monkeypatch):
    monkeypatch.setenv("THINKMID_FUSED_CE", "0")
    monkeypatch.setenv("THINKMID_API_KEY", "sk-secret")  # secret-looking: left out
    tr, path = _Run(), tmp_path / "metrics_timing.json"
    write_timing(tr, path, {"wall_time_s": 1.5})
    got = json.loads(path.read_text())
    assert got["wall_time_s"] == 1.5 and got["switches"]["THINKMID_FUSED_CE"] == "0"
    assert "THINKMID_API_KEY" not in got["switches"] and "sk-secret" not in path.read_text()
    assert tr.logged == {"wall_time_s": 1.5}  # MLflow has the switches as env.* tags, not metrics
