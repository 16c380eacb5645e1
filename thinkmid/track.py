"""Tracking in one place: one MLflow run per stage x arm, and the same numbers as DVC metrics files.

Run name `<stage>/<arm>` (or `<stage>`), tags stage, arm, profile, git commit and DVC experiment
name; params flattened; per-step metrics with steps; the stage's JSON/JSONL outputs as artifacts.
Tracking URI: `MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` at the repo root.
Secrets never reach MLflow: params whose key names a secret are dropped and values are scrubbed.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock (run one stage at a time there)
    fcntl = None

from thinkmid.config import Params, flatten
from thinkmid.io import write_json

REPO_ROOT = Path(os.environ.get("THINKMID_ROOT", Path.cwd()))
_SECRET_KEY = re.compile(r"(api_key|token|secret|password)(?!_env)", re.I)
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# An offline lab sends nothing out: MLflow's usage telemetry is off unless the user turns it on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(REPO_ROOT / 'mlflow.db').resolve()}"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


_REGISTERED: set[str] = set()


def register_secret(value: str | None) -> None:
    """Scrub this value too (an API key read from an env var whose name does not look secret)."""
    if value and len(value) >= 8:
        _REGISTERED.add(value)


def _environ() -> list[tuple[str, str]]:
    """os.environ's items, read again if another thread (MLflow's telemetry) removes a variable mid-read."""
    for attempt in range(5):
        try:
            return list(os.environ.items())
        except KeyError:
            if attempt == 4:
                raise
    return []  # pragma: no cover - unreachable


def _secret_values() -> list[str]:
    """Values of environment variables that look like credentials, to scrub from anything logged."""
    found = {v for k, v in _environ() if _SECRET_KEY.search(k) and len(v) >= 8} | _REGISTERED
    return sorted(found, key=len, reverse=True)  # longest first, so no key is left half-replaced


def scrub(text: str) -> str:
    for v in _secret_values():
        text = text.replace(v, "***")
    return text


@contextlib.contextmanager
def _setup_lock(uri: str):
    """An inter-process lock per sqlite database: MLflow creates (migrates) the schema and the
    experiment on first use, and two processes doing that at once break each other."""
    if not uri.startswith("sqlite:") or fcntl is None:
        yield
        return
    digest = hashlib.sha1(uri.encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"thinkmid-mlflow-{digest}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _finite(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


class StageRun:
    """Context for one stage x arm: MLflow run + reports/<stage>/ metrics files."""

    def __init__(self, stage: str, params: Params, arm: str | None = None):
        self.stage, self.arm, self.params = stage, arm, params
        self.name = f"{stage}/{arm}" if arm else stage
        self._mlflow = None
        self.run_id: str | None = None

    def __enter__(self) -> StageRun:
        import mlflow

        self._mlflow = mlflow
        uri = tracking_uri()
        mlflow.set_tracking_uri(uri)
        with _setup_lock(uri):  # stages running at once must not both create the schema/experiment
            mlflow.set_experiment(self.params.tracking.experiment)
            # A resumed stage reuses its unfinished run, so steps are neither lost nor duplicated.
            existing = self._find_unfinished()
            run = mlflow.start_run(run_id=existing) if existing else mlflow.start_run(run_name=self.name)
        self.run_id = run.info.run_id
        tags = {
            "stage": self.stage,
            "arm": self.arm or "",
            "profile": self.params.profile,
            "git_commit": _git_commit(),
            "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        }
        mlflow.set_tags(tags)
        if not existing:
            flat = {k: scrub(str(v)) for k, v in flatten(self.params).items() if not _SECRET_KEY.search(k)}
            items = list(flat.items())
            for i in range(0, len(items), 90):
                mlflow.log_params(dict(items[i : i + 90]))
        return self

    def _find_unfinished(self) -> str | None:
        client = self._mlflow.tracking.MlflowClient()
        exp = client.get_experiment_by_name(self.params.tracking.experiment)
        if exp is None:
            return None
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.mlflow.runName = '{self.name}' and attributes.status = 'RUNNING'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def logged_steps(self, key: str) -> set[int]:
        client = self._mlflow.tracking.MlflowClient()
        return {m.step for m in client.get_metric_history(self.run_id, key)}

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if self._mlflow is not None:
            self._mlflow.log_metrics(_finite(metrics), step=step)

    def log_artifact(self, path: str | os.PathLike) -> None:
        if self._mlflow is not None and Path(path).exists():
            self._mlflow.log_artifact(str(path), artifact_path=self.stage)

    def write_metrics(self, path: str | os.PathLike, metrics: dict, log: bool = True) -> None:
        """Write a DVC metrics JSON file atomically and log its numbers to MLflow."""
        write_json(path, metrics)
        if log:
            self.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
        self.log_artifact(path)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._mlflow is None:
            return
        # A SIGKILL never gets here: that run stays RUNNING and a rerun resumes into it.
        if exc_type is None:
            self._mlflow.end_run("FINISHED")
        elif exc_type is KeyboardInterrupt:
            self._mlflow.end_run("KILLED")
        else:
            with contextlib.suppress(Exception):
                self._mlflow.set_tag("error", scrub(f"{exc_type.__name__}: {exc}")[:500])
            self._mlflow.end_run("FAILED")
