"""reward_gate and thought_probe end to end in a temp workspace: four tiny random Qwen3 arms, a few
real sentences as gate/probe rows, the lexical reference judge, MLflow in a temp sqlite DB."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from thinkmid.cli import stage_main
from thinkmid.config import ARMS_GATE
from thinkmid.config.arms import DEFAULT_ARMS
from thinkmid.io import write_jsonl
from thinkmid.models.load import save_model

PARAMS = """\
profile: micro
seed: 3
base: {source: local, local_dir: models/base, max_context: 256}
chunks: {prefix_tokens: 16, suffix_tokens: 8, min_source_tokens: 24}
engine: {backend: hf, batch_size: 8}
reference_judge: {backend: lexical, lexical_threshold: 0.05, max_invalid_rate: 0.5}
rlmt: {thought_max_tokens: 2, suffix_max_tokens: 3}
reward_gate: {prefixes: 3, k: 2}
thought_probe: {prefixes: 3, k: 2}
prefixes: {min_before: 4, min_after: 4, reference_tokens: 8}
tracking: {experiment: micro}
"""
TESTS = Path(__file__).resolve().parents[1]


def _helper(relpath: str, name: str):
    """A helper function from another test folder's conftest.py (tests/ is not an importable package)."""
    spec = importlib.util.spec_from_file_location(f"_helpers_{relpath.replace('/', '_')[:-3]}", TESTS / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


TEXTS = [
    ("The river rises in the northern mountains and flows south", " to the sea through a wide plain."),
    ("Rice is the main crop, grown on terraces along the valleys", " and in the delta near the coast."),
    ("The capital lies on the coast and has the largest port", " which handles most foreign trade."),
    ("Winters are cold and dry in the interior highlands", " while summers are hot and humid."),
]
TEACHER = ["The next part is about the sea.", "", "Trade comes next.", "Seasons."]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, qwen_tok):
    root = tmp_path_factory.mktemp("ws")
    make_tiny_qwen3 = _helper("conftest.py", "make_tiny_qwen3")
    for seed, arm in enumerate(ARMS_GATE):
        save_model(make_tiny_qwen3(seed=seed), qwen_tok, root / DEFAULT_ARMS.gate[arm])
    gate = [
        {
            "id": f"doc{i}#0",
            "source_id": f"doc{i}",
            "prefix": p,
            "suffix": s,
            "text": p + s,
            "prefix_ids": qwen_tok.encode(p, add_special_tokens=False),
            "suffix_ids": qwen_tok.encode(s, add_special_tokens=False),
        }
        for i, (p, s) in enumerate(TEXTS)
    ]
    write_jsonl(root / "data/chunks/gate.jsonl", gate)
    # The gate and probe prefixes are the SFT val rows cut at their teacher thought (data/prefixes.py).
    val = [
        {"id": r["id"], "original": r["text"], "text": r["prefix"] + f" <think>{t}</think>" + r["suffix"]}
        for r, t in zip(gate, TEACHER)
    ]
    write_jsonl(root / "data/thoughts/val.jsonl", val)
    (root / "params.yaml").write_text(PARAMS)
    return root


@pytest.fixture(scope="module")
def tokenizer_cache():
    return {}


@pytest.fixture()
def in_ws(workspace, monkeypatch, tokenizer_cache):
    """Run in the workspace. The arms' tokenizer files are identical, so tokenizers are loaded once
    per distinct tokenizer.json (a test-speed shim: each load of the Qwen vocab takes ~2 s)."""
    import hashlib

    from transformers import AutoTokenizer

    real = AutoTokenizer.from_pretrained.__func__

    def cached(cls, path, *args, **kwargs):
        key = hashlib.sha256((Path(path) / "tokenizer.json").read_bytes()).hexdigest()
        if key not in tokenizer_cache:
            tokenizer_cache[key] = real(cls, path, *args, **kwargs)
        return tokenizer_cache[key]

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", classmethod(cached))
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workspace / 'mlflow.db'}")
    monkeypatch.setenv("THINKMID_THREADS", "2")
    return workspace


def _runs(ws, stage):
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")
    exp = client.get_experiment_by_name("micro")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.stage = '{stage}'")
    return {r.info.run_name: r for r in runs}


def _shuffled_ids(seed: int) -> list[str]:
    import random

    ids = [f"doc{i}#0" for i in range(len(TEXTS))]
    random.Random(seed).shuffle(ids)
    return ids


def test_reward_gate_stage(in_ws):
    from stages.reward_gate import run
    from thinkmid.report.inputs import _check_gate

    stage_main("reward_gate", run, argv=["--params", "params.yaml"])
    path = in_ws / "reports/reward_gate/summary.json"
    summary = json.loads(path.read_text())
    _check_gate(path, summary)  # the report's own schema check
    assert set(summary["arms"]) == set(ARMS_GATE)
    for arm, a in summary["arms"].items():
        assert a["n"] == 3 * 2 and a["prefixes"] == 3 and a["invalid_rate"] == 0.0
        assert 0 <= a["reward_mean"] <= 1 and a["closed_think_rate"] == 1.0
        lines = (in_ws / f"reports/reward_gate/samples/{arm}.jsonl").read_text().splitlines()
        rows = [json.loads(x) for x in lines]
        first = _shuffled_ids(3)[0]  # val rows shuffled with params.seed (data/prefixes.py), K samples each
        assert len(rows) == 6 and [r["prefix_id"] for r in rows[:2]] == [first, first]
        assert {"prefix_id", "sample_idx", "thought", "predicted_suffix", "reward", "new_tokens"} <= set(rows[0])
        assert sum(r["reward"] for r in rows) / 6 == pytest.approx(a["reward_mean"])
        assert all(r["new_tokens"] <= 2 + 1 + 3 for r in rows)
    assert sorted(summary["comparisons"]) == sorted(
        [
            "think_base_rlmt_minus_think_base",
            "think_phase3_minus_think_base",
            "think_phase3_rlmt_minus_think_base",
            "think_phase3_minus_think_base_rlmt",
            "think_phase3_rlmt_minus_think_base_rlmt",
            "think_phase3_rlmt_minus_think_phase3",
        ]
    )
    assert all(c["shared_prefixes"] == 3 for c in summary["comparisons"].values())
    assert all(isinstance(v, bool) for v in summary["go_no_go"].values())
    g, arms = summary["go_no_go"], summary["arms"]
    assert g["reward_validity_ok"] is True
    # the seed's definitions, from the summary's own fields
    assert g["variance_ok"] is all(a["near_zero_groups"] <= 0.5 for a in arms.values())
    b, p = arms["think_base"], arms["think_phase3"]
    assert g["phase3_more_reward_separable"] is (
        p["mean_group_std"] > b["mean_group_std"] or p["mixed_groups"] > b["mixed_groups"]
    )
    assert g["phase3_higher_mean_reward"] is (summary["phase3_vs_base"]["mean_phase3_minus_base_reward"] > 0)
    assert summary["phase3_vs_base"]["mean_phase3_minus_base_reward"] == pytest.approx(
        summary["comparisons"]["think_phase3_minus_think_base"]["mean_reward_delta"]
    )
    runs = _runs(in_ws, "reward_gate")
    assert set(runs) == {f"reward_gate/{a}" for a in ARMS_GATE} | {"reward_gate"}
    keys = [set(runs[f"reward_gate/{a}"].data.metrics) for a in ARMS_GATE]
    assert all(k == keys[0] for k in keys) and {"reward_mean", "mixed_groups", "n"} <= keys[0]
    top = runs["reward_gate"].data.metrics
    assert "go_no_go/variance_ok" in top and "think_phase3_rlmt_minus_think_phase3/mean_reward_delta" in top
    assert all(r.info.status == "FINISHED" for r in runs.values())


def test_thought_probe_stage(in_ws):
    from stages.thought_probe import run
    from thinkmid.report.inputs import PROBE_CONDITIONS, _check_probe

    stage_main("thought_probe", run, argv=["--params", "params.yaml"])
    path = in_ws / "reports/thought_probe/summary.json"
    summary = json.loads(path.read_text())
    _check_probe(path, summary)
    assert set(summary["arms"]) == set(ARMS_GATE)
    with_teacher = sum(bool(TEACHER[int(i[3])]) for i in _shuffled_ids(3)[:3])  # the probe's 3 prefixes
    for arm, a in summary["arms"].items():
        assert set(a["conditions"]) == set(PROBE_CONDITIONS)
        assert a["conditions"]["normal"]["n"] == 3 * 2
        assert a["conditions"]["teacher"]["n"] == with_teacher * 2  # rows without a teacher thought are skipped
        assert set(a["causal_deltas"]) == {f"normal_minus_{c}" for c in PROBE_CONDITIONS if c != "normal"}
        # every prefix has all its verdicts, so the mean delta is the difference of the prefix means
        c = a["conditions"]
        d = c["normal"]["prefix_mean_reward"] - c["blank"]["prefix_mean_reward"]
        assert a["causal_deltas"]["normal_minus_blank"]["mean_delta"] == pytest.approx(d)
    rows = [json.loads(x) for x in (in_ws / "reports/thought_probe/samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 2 * (4 * 3 + with_teacher)
    assert {r["condition"] for r in rows} == set(PROBE_CONDITIONS)
    runs = _runs(in_ws, "thought_probe")
    assert set(runs) == {f"thought_probe/{a}" for a in ARMS_GATE} | {"thought_probe"}
    keys = [set(runs[f"thought_probe/{a}"].data.metrics) for a in ARMS_GATE]
    assert all(k == keys[0] for k in keys)
    assert {
        "reward_normal",
        "reward_swapped",
        "normal_minus_swapped/mean_delta",
        "normal_minus_teacher/mean_delta",
    } <= keys[0]


def test_report_reads_both_outputs(in_ws):
    """After both stages: thinkmid.report.load_inputs accepts the files (other inputs are stubs)."""
    if not (in_ws / "reports/thought_probe/summary.json").exists():
        pytest.skip("needs the two stage tests above")
    from thinkmid.report import build_summary, load_inputs, render_results

    write_inputs = _helper("report/conftest.py", "write_inputs")
    write_inputs(in_ws / "stub")
    for name in ("reward_gate", "thought_probe"):
        (in_ws / f"stub/reports/{name}/summary.json").write_text((in_ws / f"reports/{name}/summary.json").read_text())
    inp = load_inputs(in_ws / "stub/reports")
    assert set(inp.reward_gate["arms"]) == set(ARMS_GATE) and set(inp.thought_probe["arms"]) == set(ARMS_GATE)
    text = render_results(inp)
    assert "think_phase3_rlmt_minus_think_phase3" in text and "phase3_higher_mean_reward" in text
    assert re.search(r"\| think_base_rlmt +\| swapped +\|", text)
    json.dumps(build_summary(inp), allow_nan=False)


def test_missing_probe_input_exits_2(tmp_path, monkeypatch, capsys):
    from stages.thought_probe import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)
    with pytest.raises(SystemExit) as e:
        stage_main("thought_probe", run, argv=[])
    assert e.value.code == 2 and "data/thoughts/val.jsonl" in capsys.readouterr().err


def test_missing_arm_models_exit_2(tmp_path, monkeypatch, capsys, workspace):
    from stages.reward_gate import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "data/thoughts").mkdir(parents=True)
    (tmp_path / "data/thoughts/val.jsonl").write_text((workspace / "data/thoughts/val.jsonl").read_text())
    with pytest.raises(SystemExit) as e:
        stage_main("reward_gate", run, argv=[])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "models/sft_think_base: model dir not found" in err and "think_phase3_rlmt" in err
