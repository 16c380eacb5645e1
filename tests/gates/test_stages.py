"""knowledge_gates for two tiny random Qwen3 arms and knowledge_gates_report across them, in a temp
workspace with MLflow in a temp sqlite DB; then the main report's gates section."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from thinkmid.cli import stage_main
from thinkmid.models.load import save_model

PARAMS = """\
profile: micro
seed: 0
base: {source: local, local_dir: models/base, max_context: 256}
reasoning_eval: {gsm8k: {enabled: true, limit: 3}}
tracking: {experiment: micro}
knowledge_gates:
  arms: {base: models/base, think_base: models/sft_think_base}
  train_facts: 4
  eval_facts: 4
  reasoning_rows: 4
  seq_len: 24
  forget_batch_size: 2
  epochs: 1
  checkpoint_every: 1
  eval_problems: 1
  eval_max_new_tokens: 3
  batch_size: 8
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, qwen_tok):
    from tests.conftest import make_tiny_qwen3

    root = tmp_path_factory.mktemp("gates_ws")
    save_model(make_tiny_qwen3(seed=0), qwen_tok, root / "models/base")
    save_model(make_tiny_qwen3(seed=1), qwen_tok, root / "models/sft_think_base")
    (root / "params.yaml").write_text(PARAMS)
    return root


@pytest.fixture(scope="module")
def ran(workspace):
    """Both arms and the aggregate, run once for the module."""
    import os

    from stages.knowledge_gates import run as gates_run
    from stages.knowledge_gates_report import run as report_run

    old = os.getcwd()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workspace / 'mlflow.db'}"
    os.chdir(workspace)
    try:
        for arm in ("base", "think_base"):
            stage_main("knowledge_gates", gates_run, arms=("base", "think_base"), argv=["--arm", arm])
        stage_main("knowledge_gates_report", report_run, argv=[])
    finally:
        os.chdir(old)
        del os.environ["MLFLOW_TRACKING_URI"]
    return workspace


def test_arm_outputs_are_safetensors_and_metrics_line_up(ran):
    for arm in ("base", "think_base"):
        d = ran / "models/gates" / arm
        assert sorted(p.name for p in d.iterdir()) == [
            "gate_logits.safetensors",
            "gate_stats.safetensors",
            "knowledge_neurons.safetensors",
            "thresholds.safetensors",
        ]
        assert load_file(str(d / "gate_logits.safetensors"))["logits"].shape == (2, 64)
    m = {a: json.loads((ran / f"reports/knowledge_gates/{a}.json").read_text()) for a in ("base", "think_base")}
    assert set(m["base"]) == set(m["think_base"])
    pts = m["base"]["points"]
    assert [p["off_fraction"] for p in pts] == [0.0, 0.05, 0.25, 0.5, 0.75, 0.95]
    assert [p["closed_fraction"] for p in pts] == pytest.approx([0, 0.05, 0.25, 0.5, 0.75, 0.95], abs=1 / 128)
    for p in pts:
        assert 0 <= p["entity_acc"] <= 1 and 0 <= p["reasoning_acc"] <= 1 and p["gsm8k_solution_nll"] > 0
    assert m["base"]["steps"] == 2 and m["base"]["total_gates"] == 128
    steps = json.loads((ran / "reports/knowledge_gates/base_steps.json").read_text())
    assert [s["step"] for s in steps] == [0, 1]
    assert not (ran / "checkpoints/knowledge_gates_base").exists()  # cleared once the outputs are written


def test_report_tables_plot_and_mlflow_runs(ran):
    import mlflow

    summary = json.loads((ran / "reports/knowledge_gates_report/summary.json").read_text())
    assert summary["arms"] == ["base", "think_base"] and summary["not_run"] == []
    pair = summary["overlap"]["pairs"]["base__think_base"]
    assert 0 <= pair["jaccard"] <= 1 and len(pair["per_layer"]) == 2
    md = (ran / "reports/knowledge_gates_report/GATES.md").read_text()
    assert "### Entity-knowledge accuracy" in md and "| 95% " in md and "(curves.png)" in md
    assert (ran / "reports/knowledge_gates_report/curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mlflow.set_tracking_uri(f"sqlite:///{ran / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["micro"], output_format="list")
    names = sorted(r.info.run_name for r in runs if r.info.status == "FINISHED")
    assert names == ["knowledge_gates/base", "knowledge_gates/think_base", "knowledge_gates_report"]
    run = next(r for r in runs if r.info.run_name == "knowledge_gates/think_base")
    assert "entity_acc_off_50" in run.data.metrics and run.data.tags["arm"] == "think_base"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert sorted(h.step for h in history) == [0, 1]


def test_main_report_appends_the_section(ran, tmp_path):
    from thinkmid.report.gates import gates_section

    section = gates_section(ran / "reports")
    assert section.startswith("\n## Knowledge gates\n\n") and "(knowledge_gates_report/curves.png)" in section
    assert gates_section(tmp_path) == "\n## Knowledge gates\n\nNot run.\n"


def test_an_arm_outside_the_params_is_refused(workspace, monkeypatch, capsys):
    from stages.knowledge_gates import run as gates_run

    monkeypatch.chdir(workspace)
    with pytest.raises(SystemExit) as e:
        stage_main("knowledge_gates", gates_run, arms=("base", "think_base", "raw_base"), argv=["--arm", "raw_base"])
    assert e.value.code == 2 and "knowledge_gates.arms" in capsys.readouterr().err
