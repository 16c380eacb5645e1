import json
import shutil
from pathlib import Path

import pytest

from thinkmid.cli import stage_main
from thinkmid.config import ARMS_RLMT
from thinkmid.io import write_jsonl
from thinkmid.timing import is_timing
from thinkmid.train.rlmt import STEP_KEYS

STEPS = 2
PARAMS = """
profile: micro
seed: 0
lr: 1.0e-3
base: {{source: local, local_dir: models/sft_think_base, max_context: 256}}
chunks: {{prefix_tokens: 8, suffix_tokens: 8, min_source_tokens: 16}}
engine: {{backend: hf, batch_size: 8}}
reference_judge: {{backend: lexical, lexical_threshold: 0.05, max_invalid_rate: 0.5}}
rlmt:
  steps: {steps}
  prefixes_per_step: 2
  k: 2
  thought_max_tokens: 3
  suffix_max_tokens: 4
  warmup_steps: 1
  checkpoint_every: {every}
prefixes: {{min_before: 4, min_after: 4, reference_tokens: 8}}
tracking: {{experiment: {experiment}}}
"""
TEXTS = [
    ("The river runs through the old town and", " past the mill before it reaches the sea."),
    ("Most of the country is covered by forest,", " and the rest is farmland or mountains."),
    ("The capital has a population of about", " two million people in its metro area."),
]
SUMMARY_KEYS = {
    "arm",
    "completed_steps",
    "stopped_reason",
    "avg_reward",
    "final_reward",
    "avg_mixed_groups",
    "avg_near_zero_groups",
    "avg_all_zero_groups",
    "avg_all_one_groups",
    "invalid_judge_rate",
    "avg_length_drift",
    "avg_artifact_rate",
    "avg_markup_artifact_rate",
}


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    """One tracking DB for the module: creating its tables costs seconds (experiments keep tests apart)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _setup(tmp_path, monkeypatch, tiny_model_dir, qwen_tok, mlflow_db, experiment, steps=STEPS, every=1):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_db)
    monkeypatch.setenv("THINKMID_THREADS", "2")
    Path("params.yaml").write_text(PARAMS.format(steps=steps, every=every, experiment=experiment))
    shutil.copytree(tiny_model_dir, "models/sft_think_base")  # as save_model wrote it
    # RL prefixes are SFT train rows cut at their teacher thought (thinkmid/data/prefixes.py).
    rows = [
        {"id": f"rl-{i}", "original": p + s, "text": p + " <think>a note</think>" + s} for i, (p, s) in enumerate(TEXTS)
    ]
    write_jsonl("data/thoughts/train.jsonl", rows)


def _run():
    from stages.rlmt import run

    stage_main("rlmt", run, arms=ARMS_RLMT, argv=["--arm", "think_base"])


def _mlflow_runs(experiment):
    import mlflow

    client = mlflow.tracking.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], filter_string="tags.mlflow.runName = 'rlmt/think_base'")


def test_rlmt_stage_end_to_end(tmp_path, monkeypatch, tiny_model_dir, qwen_tok, mlflow_db):
    from thinkmid.models.load import load_model

    _setup(tmp_path, monkeypatch, tiny_model_dir, qwen_tok, mlflow_db, "rlmt-e2e")
    _run()
    model, _ = load_model("models/think_base_rlmt")
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not Path("checkpoints/rlmt_think_base").exists()  # cleared after success

    summary = json.loads(Path("reports/rlmt/think_base.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["arm"] == "think_base" and summary["completed_steps"] == STEPS
    assert summary["stopped_reason"] is None and summary["invalid_judge_rate"] == 0.0
    steps = json.loads(Path("reports/rlmt/think_base_steps.json").read_text())
    assert [s["step"] for s in steps] == list(range(STEPS))
    assert all(set(s) == {"step", *(k for k in STEP_KEYS if not is_timing(k))} for s in steps)
    timing = json.loads(Path("reports/rlmt/think_base_timing.json").read_text())  # timing apart from results
    assert timing["wall_time_s"] > 0 and [s["step"] for s in timing["steps"]] == list(range(STEPS))
    assert set(timing["steps"][0]) == {"step", "step_time_s", "gen_time_s", "judge_time_s", "update_time_s"}
    assert steps[0]["length_drift"] == 0.0 and steps[-1]["reward_mean"] == summary["final_reward"]

    client, runs = _mlflow_runs("rlmt-e2e")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    for key in ("reward_mean", "invalid_judge_rate", "loss", "kl", "logprob_mismatch", "lr"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == list(range(STEPS)), key
    assert runs[0].data.metrics["completed_steps"] == STEPS
    assert runs[0].data.tags["arm"] == "think_base"


def test_rlmt_stage_stops_on_nonfinite_loss_and_resumes(tmp_path, monkeypatch, tiny_model_dir, qwen_tok, mlflow_db):
    from thinkmid.train import rlmt as lib
    from thinkmid.train.loop import NonFiniteLossError

    _setup(tmp_path, monkeypatch, tiny_model_dir, qwen_tok, mlflow_db, "rlmt-resume")
    real = lib.policy_update

    def fail_at_1(*args, **kw):
        if args[8] == 1:  # step
            raise NonFiniteLossError(1, "loss", float("nan"))
        return real(*args, **kw)

    monkeypatch.setattr(lib, "policy_update", fail_at_1)
    with pytest.raises(NonFiniteLossError):
        _run()
    summary = json.loads(Path("reports/rlmt/think_base.json").read_text())
    assert summary["completed_steps"] == 1 and "non-finite loss" in summary["stopped_reason"]
    assert not Path("models/think_base_rlmt").exists()
    assert Path("checkpoints/rlmt_think_base/step-00000001").is_dir()  # the last checkpoint (1 step done) is kept
    client, runs = _mlflow_runs("rlmt-resume")
    assert [r.info.status for r in runs] == ["FAILED"]

    monkeypatch.setattr(lib, "policy_update", real)
    _run()  # resumes at step 1 from the checkpoint
    steps = json.loads(Path("reports/rlmt/think_base_steps.json").read_text())
    assert [s["step"] for s in steps] == [0, 1]
    assert json.loads(Path("reports/rlmt/think_base.json").read_text())["stopped_reason"] is None
    client, runs = _mlflow_runs("rlmt-resume")
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert len(done) == 1  # a new run (the failed one is closed) gets every step, once
    assert [m.step for m in client.get_metric_history(done[0].info.run_id, "reward_mean")] == [0, 1]


def test_rlmt_stage_rejects_unknown_arm():
    with pytest.raises(SystemExit) as e:
        stage_main("rlmt", lambda p, a: None, arms=ARMS_RLMT, argv=["--arm", "raw_base"])
    assert e.value.code == 2
