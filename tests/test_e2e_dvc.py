"""End to end: `dvc repro` of the whole lifecycle on the micro profile, in a temp git repo.

Checks dvc.lock, the metrics files against the golden snapshot (tests/golden/micro_metrics.json), one
MLflow run per stage x arm, that a second repro does nothing, that an SFT param change makes only the
SFT stages stale, that `-S lr=` reaches only RLMT, and that a forced rerun keeps every result hash.

The golden snapshot is every JSON output in dvc.lock but the timing files, flattened to dotted keys.
After a deliberate change of results (or of a metrics schema), refresh it with one command:

    THINKMID_REFRESH_GOLDEN=1 python -m pytest tests/test_e2e_dvc.py -k golden

and commit tests/golden/micro_metrics.json with the change that moved it.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "micro_metrics.json"
pytestmark = pytest.mark.slow

# Floats are equal up to these (relative, absolute) tolerances, first matching pattern on the dotted
# key; ints, bools and strings exactly. The default is tight: rates and counts of sampled outcomes
# are exact ratios, the same on every CPU unless a sampled token flips, which the snapshot must catch.
TOLERANCES = [
    # Sums of fp32 log-softmax terms over many tokens: another CPU's SIMD width and BLAS blocking
    # reorder the adds (~1e-7 per add), and the optimizer steps before an evaluation compound it.
    ("*loss*", 1e-3, 1e-5),
    ("*nll*", 1e-3, 1e-5),
    ("*entity_ce*", 1e-3, 1e-5),
    ("*grad_norm*", 1e-3, 1e-6),
    # KL, DPO margins and implicit rewards are differences of two such sums, ~1e-6 after a few micro
    # steps: only rounding is left in them, so an absolute bound.
    ("*kl*", 5e-2, 1e-4),
    ("*margin*", 5e-2, 1e-4),
    ("*chosen_reward*", 5e-2, 1e-4),
    ("*rejected_reward*", 5e-2, 1e-4),
    # Engine vs teacher-forced log-probs of the same tokens: pure rounding noise, any CPU differs.
    ("*logprob_mismatch*", 1.0, 1e-3),
    # Gate values and their thresholds come out of a few fp32 training steps of the gates.
    ("*threshold*", 1e-3, 1e-6),
    ("*gate*", 1e-3, 1e-6),
]
DEFAULT_TOL = (1e-6, 1e-9)


def _sh(cmd: list[str], cwd: Path, env: dict, timeout: int = 1500) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}")
    return res


@pytest.fixture(scope="module")
def micro_repo(tmp_path_factory, qwen_tok):
    from tests.conftest import make_tiny_qwen3
    from thinkmid.models.load import save_model
    from thinkmid.profile import profile_text

    repo = tmp_path_factory.mktemp("lab")
    for name in ("dvc.yaml", "profiles", "stages", "thinkmid", ".gitignore"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
    (repo / "params.yaml").write_text(profile_text("micro"))  # what `python -m thinkmid.profile micro` writes
    save_model(make_tiny_qwen3(), qwen_tok, repo / ".micro" / "base")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(PYTHONPATH=str(repo), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", THINKMID_LOG="WARNING")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    _sh(["git", "init", "-q"], repo, env)
    _sh(["dvc", "init", "-q"], repo, env)
    _sh(["dvc", "config", "core.analytics", "false"], repo, env)
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/.micro/\n")
    _sh([*git, "add", "-A"], repo, env)
    _sh([*git, "commit", "-qm", "micro lab"], repo, env)
    _sh([sys.executable, "-m", "dvc", "repro"], repo, env)
    return repo, env, git


def test_repro_writes_lock_metrics_and_runs(micro_repo):
    repo, env, _ = micro_repo
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in (
        "prepare_base",
        "prepare_chunks",
        "self_improve",
        "eval_continuations",
        "teacher_thoughts",
        "sft@raw_base",
        "sft@think_base",
        "sft@think_phase3",
        "rlmt@think_base",
        "rlmt@think_phase3",
        "reward_gate",
        "thought_probe",
        "reasoning_eval@think_base",
        "report",
    ):
        assert stage in lock, stage
    sft = json.loads((repo / "reports/sft/think_phase3.json").read_text())
    for key in (
        "val_loss",
        "raw_val_loss",
        "selected_metric",
        "repetition_4gram_rate",
        "tokens_seen",
        "thought_token_nll_before",
        "thought_token_nll_after",
    ):
        assert key in sft, key
    timing = json.loads((repo / "reports/sft/think_phase3_timing.json").read_text())  # timing: its own file
    assert {"throughput_tok_s", "min_available_mem_gib", "wall_time_s"} <= set(timing)
    for path, flat in _snapshot(repo).items():  # no result file carries a timing figure
        assert not [k for k in flat if k.split(".")[-1] in TIMING_NAMES or k.endswith("_time_s")], path
    assert (repo / "models/sft_think_phase3/model.safetensors").exists()
    assert "RLMT" in (repo / "reports/RESULTS.md").read_text()
    db = sqlite3.connect(repo / "mlflow.db")
    names = [r[0] for r in db.execute("select name from runs where status = 'FINISHED'")]
    for name in (
        "prepare_base",
        "self_improve",
        "sft/raw_base",
        "sft/think_base",
        "sft/think_phase3",
        "rlmt/think_base",
        "rlmt/think_phase3",
        "reasoning_eval/think_phase3_rlmt",
        "report",
    ):
        assert names.count(name) == 1, (name, names)
    tags = dict(
        db.execute(
            "select t.key, t.value from tags t join runs r on t.run_uuid = r.run_uuid where r.name = 'sft/think_base'"
        )
    )
    assert tags["stage"] == "sft" and tags["arm"] == "think_base" and tags["profile"] == "micro"
    assert len(tags["git_commit"]) == 40


TIMING_NAMES = {"wall_time_s", "throughput_tok_s", "min_available_mem_gib"}


def _flat(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{prefix}{i}.").items()}
    return {prefix[:-1]: obj}


def _snapshot(repo: Path) -> dict[str, dict]:
    """Every JSON output in dvc.lock but the timing files, flattened: {path: {dotted key: value}}."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    paths = sorted(
        {
            o["path"]
            for st in lock.values()
            for o in st.get("outs", [])
            if o["path"].endswith(".json") and not o["path"].endswith("_timing.json")
        }
    )
    return {p: _flat(json.loads((repo / p).read_text())) for p in paths}


def _close(key: str, want, got) -> bool:
    numbers = isinstance(want, float) and isinstance(got, (int, float))
    if not numbers or isinstance(want, bool) or isinstance(got, bool):
        return want == got
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    rel, abs_ = next(((r, a) for pattern, r, a in TOLERANCES if fnmatch.fnmatch(key, pattern)), DEFAULT_TOL)
    return math.isclose(want, got, rel_tol=rel, abs_tol=abs_)


def golden_diff(want: dict, got: dict) -> list[str]:
    out = [f"{p}: {'missing' if p not in got else 'new'} file" for p in sorted(set(want) ^ set(got))]
    for path in sorted(set(want) & set(got)):
        w, g = want[path], got[path]
        out += [f"{path}: {k}: {'missing' if k not in g else 'new'} key" for k in sorted(set(w) ^ set(g))]
        out += [
            f"{path}: {k}: golden {w[k]!r}, got {g[k]!r}" for k in sorted(set(w) & set(g)) if not _close(k, w[k], g[k])
        ]
    return out


def test_metrics_match_the_golden_snapshot(micro_repo):
    """Every result of the micro lifecycle against tests/golden/micro_metrics.json (see the module
    docstring to refresh it)."""
    repo, _, _ = micro_repo
    got = _snapshot(repo)
    if os.environ.get("THINKMID_REFRESH_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"refreshed {GOLDEN}")
    problems = golden_diff(json.loads(GOLDEN.read_text()), got)
    assert not problems, f"{len(problems)} differences from {GOLDEN.name}:\n" + "\n".join(problems[:60])


def test_second_repro_is_a_noop_and_param_changes_are_scoped(micro_repo):
    repo, env, _ = micro_repo
    out = _sh([sys.executable, "-m", "dvc", "repro"], repo, env).stdout
    assert "Running stage" not in out
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["sft"]["lr"] = params["sft"]["lr"] * 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = _sh([sys.executable, "-m", "dvc", "status", "--json"], repo, env).stdout
    # check_params revalidates the whole file (its output is unchanged, so nothing else follows it)
    assert sorted(json.loads(stale)) == ["check_params", "sft@raw_base", "sft@think_base", "sft@think_phase3"]
    params["sft"]["lr"] = params["sft"]["lr"] / 2
    params["lr"] = params["lr"] * 10  # the RLMT sweep knob: `dvc exp run -S lr=...`
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stale = _sh([sys.executable, "-m", "dvc", "status", "--json"], repo, env).stdout
    assert sorted(json.loads(stale)) == ["check_params", "rlmt@think_base", "rlmt@think_phase3"]
    dry = _sh([sys.executable, "-m", "dvc", "repro", "--dry"], repo, env).stdout
    ran = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
    assert "sft@think_base" not in ran and "self_improve" not in ran
    assert {"rlmt@think_base", "rlmt@think_phase3"} <= ran


def test_exp_run_sweeps_rlmt_only(micro_repo):
    repo, env, _ = micro_repo
    _sh(["git", "checkout", "--", "params.yaml"], repo, env)
    out = _sh([sys.executable, "-m", "dvc", "exp", "run", "-n", "lr-sweep", "-S", "lr=1e-6"], repo, env).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert {"rlmt@think_base", "rlmt@think_phase3"} <= ran
    assert not ran & {"prepare_base", "prepare_chunks", "self_improve", "teacher_thoughts", "sft@think_base"}
    shown = _sh([sys.executable, "-m", "dvc", "exp", "show", "--json"], repo, env).stdout
    assert "lr-sweep" in shown and "avg_reward" in shown and "go_no_go" in shown


def test_mlflow_compare_view_shows_both_rlmt_arms(micro_repo, tmp_path):
    """The compare view of the RLMT arms, rendered by a real `mlflow server` in headless Chromium."""
    from tests.browser import chromium_or_skip, render_page
    from thinkmid.engines.launcher import free_port

    chrome = chromium_or_skip()
    repo, env, _ = micro_repo
    db = sqlite3.connect(repo / "mlflow.db")
    runs = dict(db.execute("select name, run_uuid from runs where name like 'rlmt/%' and status = 'FINISHED'"))
    exp_id = db.execute("select experiment_id from runs where name = 'rlmt/think_base'").fetchone()[0]
    assert set(runs) == {"rlmt/think_base", "rlmt/think_phase3"}
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{repo / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ids = ",".join(f'"{r}"' for r in runs.values())
        url = f'http://127.0.0.1:{port}/#/compare-runs?runs=[{ids}]&experiments=["{exp_id}"]'
        shot = tmp_path / "compare.png"
        dom = render_page(chrome, url, shot, health=f"http://127.0.0.1:{port}/health")
        assert shot.exists() and shot.stat().st_size > 1000
        assert "rlmt/think_base" in dom and "rlmt/think_phase3" in dom
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_forced_rerun_keeps_every_result_hash(micro_repo):
    """`dvc repro -f` of a training stage: only its timing file changes, the model and results keep
    their hashes (timing lives apart, threads are pinned, training is seeded)."""
    repo, env, _ = micro_repo
    _sh(["git", "checkout", "--", "params.yaml"], repo, env)

    def outs(stage):
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"][stage]
        return {o["path"]: o["md5"] for o in lock["outs"]}

    before = outs("sft@raw_base")
    _sh([sys.executable, "-m", "dvc", "repro", "-f", "-s", "sft@raw_base"], repo, env)
    after = outs("sft@raw_base")
    changed = sorted(p for p in before if before[p] != after[p])
    assert changed == ["reports/sft/raw_base_timing.json"], changed
