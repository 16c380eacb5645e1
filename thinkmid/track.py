"""Tracking in one place: one MLflow run per stage x arm, and the same numbers as DVC metrics files.

Run name `<stage>/<arm>` (or `<stage>`), tags stage, arm, profile, git commit, DVC experiment name
and the provenance fields (dirty flag, device, CUDA / torch / transformers versions, the THINKMID_*
switches in force); every params leaf flattened; per-step metrics with steps; the stage's JSON/JSONL
outputs as artifacts. The experiment is tagged as model training (MLflow 3's
`mlflow.experimentKind = custom_model_development`), so `mlflow ui` opens on the runs table.

Tracking URI: `MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` at the repository root, which is
also where `dvc exp run --temp` / `--queue` runs log (DVC runs those in a copy of the repository
under `<root>/.dvc/tmp/exps/`; see repo_root).

A run is resumed only by its id (`StageRun(..., run_id=...)`, the id a training stage stored in its
checkpoint, see train/checkpoint.py), never by looking up a run with the same name: two experiments
queued side by side have the same `<stage>/<arm>` names.
Secrets never reach MLflow: params whose key names a credential are dropped and values are scrubbed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock (run one stage at a time there)
    fcntl = None

from thinkmid.config import Params, flatten
from thinkmid.errors import InputError
from thinkmid.io import write_json
from thinkmid.provenance import is_secret_key

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# An offline lab sends nothing out: MLflow's usage telemetry is off unless the user turns it on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# MLflow 3 reads this experiment tag to choose the experiment page's first view: "genai_development"
# lands on traces, "custom_model_development" on the runs table and compare view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
_DVC_EXPS = (".dvc", "tmp", "exps")  # where DVC puts the repository copies of --temp and --queue runs


def repo_root() -> Path:
    """The repository root the tracking store belongs to.

    THINKMID_ROOT if set; else the directory DVC runs the stage in (DVC_ROOT, set for every stage
    command) or the working directory. `dvc exp run --temp` and queued experiments run in a fresh
    git repository at `<root>/.dvc/tmp/exps/<tmpdir>/` that is deleted afterwards (it has no link
    back to the original: DVC `git init`s it and pushes refs into it), so a path inside that layout
    maps back to `<root>`.
    """
    if os.environ.get("THINKMID_ROOT"):
        return Path(os.environ["THINKMID_ROOT"]).resolve()
    start = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    parts = start.parts
    for i in range(1, len(parts) - len(_DVC_EXPS) + 1):
        if parts[i : i + len(_DVC_EXPS)] == _DVC_EXPS:
            return Path(*parts[:i])
    return start


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _artifact_location(uri: str) -> str | None:
    """For a local store, artifacts live next to it at the repo root (not in a DVC temp copy)."""
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        return (repo_root() / "mlruns").as_uri()
    return None  # a tracking server decides


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
    found = {v for k, v in _environ() if is_secret_key(k) and len(v) >= 8} | _REGISTERED
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


_ACTIVE: list[str] = []  # run ids of the StageRuns entered in this process, innermost last


def active_run_id() -> str | None:
    """The id of the StageRun this process is inside (None outside one, and on non-main ranks)."""
    return _ACTIVE[-1] if _ACTIVE else None


def logged_params(params: Params) -> dict[str, str]:
    """Every params leaf as an MLflow param (dotted key -> text), except keys that name a credential."""
    return {k: scrub(str(v)) for k, v in flatten(params).items() if not is_secret_key(k)}


def _ensure_experiment(client, name: str, uri: str) -> str:
    """The experiment's id, creating it (artifacts at the repo root, tagged as model training) if needed."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(
            name, artifact_location=_artifact_location(uri), tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    if EXPERIMENT_KIND_TAG not in exp.tags:  # made before this tag existed: mark it; never override a user's
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


class StageRun:
    """Context for one stage x arm: MLflow run + reports/<stage>/ metrics files.

    `run_id`: resume exactly this run (a training stage passes the id stored in its checkpoint); a
    run that is gone from the store (a deleted mlflow.db) starts a new run with a warning, and a run
    of another stage, arm or experiment is refused. Without it, a new run starts.
    """

    def __init__(self, stage: str, params: Params, arm: str | None = None, run_id: str | None = None):
        self.stage, self.arm, self.params = stage, arm, params
        self.name = f"{stage}/{arm}" if arm else stage
        self._mlflow = None
        self._resume_id = run_id
        self.run_id: str | None = None
        self.resumed = False

    def __enter__(self) -> StageRun:
        import mlflow
        from mlflow.exceptions import MlflowException

        from thinkmid.provenance import provenance
        from thinkmid.provenance import tags as provenance_tags

        self._mlflow = mlflow
        uri = tracking_uri()
        mlflow.set_tracking_uri(uri)
        with _setup_lock(uri):  # stages running at once must not both create the schema/experiment
            client = mlflow.tracking.MlflowClient()  # opening the store creates (migrates) the schema
            exp_id = _ensure_experiment(client, self.params.tracking.experiment, uri)
            mlflow.set_experiment(experiment_id=exp_id)
            existing = None
            if self._resume_id:
                try:
                    existing = client.get_run(self._resume_id)
                except MlflowException:
                    log.warning(
                        "MLflow run %s (stored with the checkpoint) is not in %s; starting a new run",
                        self._resume_id,
                        uri,
                    )
            if existing is not None and (existing.info.experiment_id != exp_id or existing.info.run_name != self.name):
                raise InputError(
                    f"the checkpoint belongs to MLflow run {self._resume_id} ({existing.info.run_name!r} in "
                    f"experiment {existing.info.experiment_id}), not to {self.name!r} in experiment "
                    f"{self.params.tracking.experiment!r}; delete the stage's checkpoints to start over"
                )
            run = mlflow.start_run(run_id=existing.info.run_id) if existing else mlflow.start_run(run_name=self.name)
        self.run_id, self.resumed = run.info.run_id, existing is not None
        _ACTIVE.append(self.run_id)
        prov = provenance(self.params.profile)
        tags = {
            "stage": self.stage,
            "arm": self.arm or "",
            "profile": self.params.profile,
            "git_commit": prov["git_commit"],
            "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
            **provenance_tags(prov),
        }
        mlflow.set_tags(tags)
        self._log_params(existing.data.params if existing else {})
        return self

    def _log_params(self, already: dict[str, str]) -> None:
        """Log every params leaf; on a resumed run only the missing ones (MLflow refuses to change a
        param), and the keys whose value changed since are named in the `params_changed_on_resume` tag."""
        flat = logged_params(self.params)
        changed = sorted(k for k, v in flat.items() if k in already and already[k] != v)
        items = [(k, v) for k, v in flat.items() if k not in already]
        for i in range(0, len(items), 90):
            self._mlflow.log_params(dict(items[i : i + 90]))
        if changed:
            log.warning("%s resumed with changed params: %s", self.name, ", ".join(changed))
            self._mlflow.set_tag("params_changed_on_resume", ",".join(changed)[:5000])

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
        if self.run_id in _ACTIVE:
            _ACTIVE.remove(self.run_id)
        # A SIGKILL never gets here: that run stays RUNNING, and a rerun resumes into it through the
        # run id its checkpoint carries (train/checkpoint.py saved_run_id).
        if exc_type is None:
            self._mlflow.end_run("FINISHED")
        elif exc_type is KeyboardInterrupt:
            self._mlflow.end_run("KILLED")
        else:
            with contextlib.suppress(Exception):
                self._mlflow.set_tag("error", scrub(f"{exc_type.__name__}: {exc}")[:500])
            self._mlflow.end_run("FAILED")


def ui_url(experiment: str = "thinkmid", base: str = "http://127.0.0.1:5000") -> str:
    """The experiment's runs table in `mlflow ui`. MLflow 3.17's UI picks its first view from a global
    GenAI / Model training switch (default GenAI, remembered by the browser) rather than from the
    experiment's kind tag, which older MLflow 3 releases read; `workflowType=machine_learning` in
    the link selects Model training, so the link opens on the runs table either way."""
    import mlflow

    uri = tracking_uri()
    with _setup_lock(uri):
        exp = mlflow.tracking.MlflowClient(uri).get_experiment_by_name(experiment)
    where = f"experiments/{exp.experiment_id}" if exp else "experiments"
    return f"{base.rstrip('/')}/#/{where}?workflowType=machine_learning"


if __name__ == "__main__":  # python -m thinkmid.track [experiment]: how to open this store's runs
    import sys

    print(f"mlflow ui --backend-store-uri {tracking_uri()} --host 127.0.0.1 --port 5000")
    print(ui_url(*sys.argv[1:2]))
