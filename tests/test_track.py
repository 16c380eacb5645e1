"""thinkmid.track: secret keys, every param logged, resume by run id only, the store's location under
DVC's temp experiment runs, the experiment kind tag, switches as tags."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from thinkmid.config import flatten, load_params, parse_params
from thinkmid.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A fresh sqlite store; the working directory is tmp_path."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return mlflow.tracking.MlflowClient(uri)


def _params(experiment: str = "t"):
    return parse_params(f"profile: micro\ntracking: {{experiment: {experiment}}}\n")


def test_secret_scan_survives_a_variable_removed_while_reading(monkeypatch):
    """MLflow's telemetry thread deletes a variable; iterating os.environ then raises KeyError once."""
    from thinkmid import track

    monkeypatch.setenv("THINKMID_TEST_API_KEY", "s3cr3t-value-123")
    real = os.environ.items
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("_MLFLOW_TELEMETRY_SESSION_ID")
        return real()

    monkeypatch.setattr(os.environ, "items", flaky)
    assert track.scrub("key=s3cr3t-value-123") == "key=***" and calls["n"] == 2


SECRETS = [
    "hf_token",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "api_key",
    "OPENAI_API_KEY",
    "judge.endpoint.api_key",
    "hub.token",
    "token",
    "GITHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "db_password",
    "MLFLOW_TRACKING_TOKEN",
    "DVC_STUDIO_TOKEN",
    "client_secret",
    "openaiApiKey",
    "access_token",
]
NOT_SECRETS = [
    "chunks.prefix_tokens",
    "chunks.suffix_tokens",
    "rlmt.suffix_max_tokens",
    "rlmt.thought_max_tokens",
    "teacher_thoughts.thought_max_tokens",
    "reasoning_eval.max_new_tokens",
    "min_source_tokens",
    "judge.endpoint.api_key_env",
    "TOKENIZERS_PARALLELISM",
    "tokenizer",
    "pad_token",
    "eos_token_id",
    "think_token",
    "token_budget",
    "lr",
    "THINKMID_DECODE_ATTN",
]


@pytest.mark.parametrize("key", SECRETS)
def test_credential_keys_are_secret(key):
    from thinkmid.provenance import is_secret_key

    assert is_secret_key(key)


@pytest.mark.parametrize("key", NOT_SECRETS)
def test_lengths_and_tokenizer_names_are_not_secret(key):
    from thinkmid.provenance import is_secret_key

    assert not is_secret_key(key)


def test_secret_env_values_are_scrubbed_and_token_lengths_are_not(monkeypatch):
    from thinkmid.track import scrub

    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-0123456789abcdef")
    monkeypatch.setenv("THINKMID_PREFIX_TOKENS", "384384384")  # a length switch, not a credential
    text = "hf_abcdefghijklmnop sk-0123456789abcdef 384384384"
    assert scrub(text) == "*** *** 384384384"


@pytest.mark.parametrize("params_file", ["params.yaml", "paper", "micro"])
def test_every_params_leaf_is_logged(params_file, store):
    """MLflow params completeness: each leaf of the validated params is a param with its value."""
    from thinkmid.profile import load_profile
    from thinkmid.track import StageRun

    params = load_params(ROOT / params_file) if params_file.endswith(".yaml") else load_profile(params_file)
    with StageRun("rlmt", params, arm="think_base") as tr:
        pass
    logged = store.get_run(tr.run_id).data.params
    expected = {k: str(v) for k, v in flatten(params).items()}
    assert {k for k in ("chunks.prefix_tokens", "rlmt.suffix_max_tokens") if k in expected} <= set(logged)
    assert set(logged) == set(expected), sorted(set(expected) ^ set(logged))
    assert logged == expected


def test_a_running_run_of_the_same_name_is_never_reattached(store):
    """Two experiments queued side by side both have an `sft/think_base` run RUNNING."""
    from thinkmid.track import StageRun

    params = _params()
    exp = store.create_experiment("t")
    other = store.create_run(exp, run_name="sft/think_base").info  # left RUNNING, like a killed run
    with StageRun("sft", params, arm="think_base") as tr:
        assert not tr.resumed
    assert tr.run_id != other.run_id
    assert store.get_run(other.run_id).info.status == "RUNNING"
    assert store.get_run(tr.run_id).info.status == "FINISHED"


def test_resume_exactly_the_stored_run_id(store):
    from thinkmid.track import StageRun

    params = _params()
    with pytest.raises(RuntimeError), StageRun("sft", params, arm="think_base") as first:
        first.log_metrics({"train_loss": 1.0}, step=0)
        raise RuntimeError("killed")
    with StageRun("sft", params, arm="think_base") as decoy:  # a newer run of the same name
        pass
    with StageRun("sft", params, arm="think_base", run_id=first.run_id) as tr:
        assert tr.resumed and tr.run_id == first.run_id != decoy.run_id
        assert tr.logged_steps("train_loss") == {0}
        tr.log_metrics({"train_loss": 0.5}, step=1)
    run = store.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in store.get_metric_history(first.run_id, "train_loss")] == [0, 1]
    assert "params_changed_on_resume" not in run.data.tags


def test_resume_with_changed_params_is_named_in_a_tag(store):
    from thinkmid.track import StageRun

    with StageRun("sft", _params(), arm="think_base") as first:
        pass
    changed = parse_params("profile: micro\ntracking: {experiment: t}\nsft: {lr: 0.001}\n")
    with StageRun("sft", changed, arm="think_base", run_id=first.run_id):
        pass
    run = store.get_run(first.run_id)
    assert run.data.tags["params_changed_on_resume"] == "sft.lr"
    assert run.data.params["sft.lr"] == str(_params().sft.lr)  # MLflow keeps the first value


def test_a_missing_run_id_starts_a_new_run_and_a_foreign_one_is_refused(store, caplog):
    from thinkmid.track import StageRun

    params = _params()
    with caplog.at_level(logging.WARNING), StageRun("sft", params, arm="think_base", run_id="0" * 32) as tr:
        assert not tr.resumed and tr.run_id != "0" * 32
    assert "not in" in caplog.text
    with StageRun("rlmt", params, arm="think_base") as rlmt:
        pass
    with pytest.raises(InputError, match="belongs to MLflow run"):
        StageRun("sft", params, arm="think_base", run_id=rlmt.run_id).__enter__()


def test_checkpoint_carries_the_run_id(store, tmp_path):
    import torch

    from thinkmid.track import StageRun
    from thinkmid.train.checkpoint import save_checkpoint, saved_run_id

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    d = tmp_path / "ckpt"
    assert saved_run_id(d) is None
    save_checkpoint(d, 1, model, opt)  # outside any run: no id
    assert saved_run_id(d) is None
    with StageRun("sft", _params(), arm="think_base") as tr:
        save_checkpoint(d, 2, model, opt)  # inside one: the active run's id by default
    assert saved_run_id(d) == tr.run_id
    save_checkpoint(d, 3, model, opt, run_id="abc")
    assert saved_run_id(d) == "abc"
    (d / "step-00000003" / "state.json").write_text("{broken")  # unreadable newest: the previous one's id
    assert saved_run_id(d) == tr.run_id


def test_experiment_is_marked_as_model_training(store):
    from thinkmid.track import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, StageRun

    assert (EXPERIMENT_KIND_TAG, EXPERIMENT_KIND) == ("mlflow.experimentKind", "custom_model_development")
    store.create_experiment("old")  # made before the tag existed
    user = store.create_experiment("user", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    for name in ("new", "old", "user"):
        with StageRun("report", _params(name)):
            pass
    assert store.get_experiment_by_name("new").tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert store.get_experiment_by_name("old").tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert store.get_experiment(user).tags[EXPERIMENT_KIND_TAG] == "genai_development"  # a user's choice stays


def test_switches_and_provenance_are_tags(store, monkeypatch):
    from thinkmid.track import StageRun

    monkeypatch.setenv("THINKMID_FUSED_CE", "0")
    monkeypatch.setenv("THINKMID_API_KEY", "sk-not-a-switch-123")
    with StageRun("sft", _params(), arm="raw_base") as tr:
        pass
    tags = store.get_run(tr.run_id).data.tags
    assert tags["env.THINKMID_FUSED_CE"] == "0" and "THINKMID_FUSED_CE=0" in tags["switches"]
    assert not any("THINKMID_API_KEY" in k or "sk-not-a-switch" in v for k, v in tags.items())
    for key in ("git_commit", "git_dirty", "device", "cuda", "torch", "transformers", "profile"):
        assert tags[key], key


def test_repo_root_maps_dvc_temp_copies_back(tmp_path, monkeypatch):
    from thinkmid.track import repo_root, tracking_uri

    for var in ("THINKMID_ROOT", "DVC_ROOT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    temp = tmp_path / "lab" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    temp.mkdir(parents=True)
    monkeypatch.chdir(temp)
    assert repo_root() == (tmp_path / "lab").resolve()
    assert tracking_uri() == f"sqlite:///{(tmp_path / 'lab').resolve() / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(temp))  # DVC's env var wins over the working directory
    assert repo_root() == (tmp_path / "lab").resolve()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "plain"))
    assert repo_root() == (tmp_path / "plain").resolve()
    monkeypatch.setenv("THINKMID_ROOT", str(tmp_path / "pinned"))
    assert repo_root() == (tmp_path / "pinned").resolve()


STAGE = """\
from thinkmid.config import load_params
from thinkmid.track import StageRun
with StageRun("probe_store", load_params("params.yaml")) as tr:
    tr.write_metrics("out/metrics.json", {"v": 1.0})
"""


@pytest.mark.slow
def test_dvc_exp_run_temp_logs_to_the_repo_root_store(tmp_path):
    """A real `dvc exp run --temp`: the run lands in <repo>/mlflow.db, artifacts in <repo>/mlruns."""
    import sqlite3

    repo = tmp_path / "lab"
    repo.mkdir()
    (repo / "params.yaml").write_text("profile: micro\nlr: 1.0e-5\ntracking: {experiment: tempexp}\n")
    (repo / "probe.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(
        "stages:\n  probe:\n    cmd: python probe.py\n    deps: [probe.py]\n"
        "    params: [lr]\n    metrics: [out/metrics.json]\n"
    )
    (repo / ".gitignore").write_text("/mlflow.db\n/mlruns/\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "THINKMID_ROOT"))}
    env.update(PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        [*git, "add", "-A"],
        [*git, "commit", "-qm", "lab"],
        ["dvc", "exp", "run", "--temp", "-S", "lr=2e-5"],
    ):
        exe = [sys.executable, "-m", "dvc", *cmd[1:]] if cmd[0] == "dvc" else cmd
        res = subprocess.run(exe, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, (cmd, res.stdout[-2000:], res.stderr[-3000:])
    assert not list((repo / ".dvc" / "tmp" / "exps").glob("tmp*"))  # DVC removed its temp copy
    con = sqlite3.connect(repo / "mlflow.db")
    ((name, status, art),) = con.execute("select name, status, artifact_uri from runs").fetchall()
    params = dict(con.execute("select key, value from params"))
    con.close()
    assert (name, status, params["lr"]) == ("probe_store", "FINISHED", "2e-05")
    art = Path(art.removeprefix("file://"))
    assert art.is_relative_to(repo.resolve() / "mlruns") and (art / "probe_store" / "metrics.json").is_file()
    shutil.rmtree(repo / "mlruns")


@pytest.mark.slow
def test_ui_link_opens_on_the_runs_table(store, tmp_path):
    """A real `mlflow server` in headless Chromium: the link lands on the runs table with both arms."""
    from tests.browser import chromium_or_skip, render_page
    from thinkmid.engines.launcher import free_port
    from thinkmid.track import StageRun, ui_url

    chrome = chromium_or_skip()
    for arm in ("think_base", "think_phase3"):
        with StageRun("rlmt", _params("ui"), arm=arm) as tr:
            tr.log_metrics({"reward_mean": 0.5}, step=0)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = ui_url("ui", f"http://127.0.0.1:{port}")
        assert url.endswith("?workflowType=machine_learning") and "/#/experiments/" in url
        dom = render_page(chrome, url, tmp_path / "runs.png", health=f"http://127.0.0.1:{port}/health")
        assert "rlmt/think_base" in dom and "rlmt/think_phase3" in dom  # the runs table, not the traces overview
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
