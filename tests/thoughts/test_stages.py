"""The four thought stages end to end on a tiny generated task, the report section they feed, and
the params checks that fail before any work."""

import json

import pytest

from thinkmid.cli import stage_main
from thinkmid.config import parse_params
from thinkmid.errors import InputError

PARAMS = """
profile: micro
seed: 0
engine: {backend: hf, batch_size: 8}
tracking: {experiment: thoughts-test}
thoughts:
  arms:
    tiny: {model: models/thought_init/tiny, task: tiny}
  tasks:
    tiny: {kind: modsum, terms: 6, modulus: 2, train: 16, eval: 4, epochs: 1, batch_size: 8, seq_len: 32,
           lr: 1.0e-3, warmup_steps: 0, checkpoint_every: 1, max_answer_tokens: 3, verbal_budgets: [0, 5],
           abstract_budgets: [1, 2], latent_steps: [0, 2], hidden_size: 16, layers: 1, heads: 2}
  abstract: {vocab_size: 8, max_tokens: 2, rounds: 2}
  continuous: {latent_steps: 2, rollouts: 2, head_fit_steps: 5, lr: 1.0e-4, chain_steps: true}
"""


@pytest.fixture()
def lab(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "params.yaml").write_text(PARAMS)
    return tmp_path


def test_stages_end_to_end_and_report(lab):
    from stages import abstract_thought, continuous_thought, prepare_thought_tasks, verbal_thought
    from thinkmid.report import interfaces

    stage_main("prepare_thought_tasks", prepare_thought_tasks.run, argv=["--params", "params.yaml"])
    train = [json.loads(line) for line in open("data/thought_tasks/tiny/train.jsonl")]
    held = [json.loads(line) for line in open("data/thought_tasks/tiny/eval.jsonl")]
    assert len(train) == 16 and len(held) == 4 and (lab / "models/thought_init/tiny/config.json").exists()
    for mod, name in ((verbal_thought, "verbal"), (abstract_thought, "abstract"), (continuous_thought, "continuous")):
        stage_main(f"{name}_thought", mod.run, arms=["tiny"], argv=["--params", "params.yaml", "--arm", "tiny"])
        metrics = json.loads((lab / f"reports/thoughts/{name}_tiny.json").read_text())
        assert metrics["split"] == "eval" and metrics["eval_problems"] == 4 and 0 <= metrics["accuracy"] <= 1
        assert not (lab / f"checkpoints/{name}_thought_tiny").exists()  # cleared once done
    assert (lab / "models/abstract_tiny/tokenizer.json").exists() and (
        lab / "models/continuous_tiny/head.safetensors"
    ).exists()
    cont, abst = metrics_of(lab, "continuous"), metrics_of(lab, "abstract")
    assert cont["latent_steps"] == 5 and "head_fit_loss" in cont  # chain_steps: K = the 6-term chain's 5 steps
    assert 0 <= abst["r2_phase_a_random_z_answer_accuracy"] <= 1 and "r1_teacher_z_answer_accuracy" in abst
    rows = interfaces.load_rows(lab / "reports")["tiny"]
    kinds = {r["interface"] for r in rows}
    assert kinds == {
        "no_thought",
        "verbal",
        "abstract",
        "abstract_random",
        "abstract_none",
        "continuous",
        "continuous_zero",
    }
    text = interfaces.section(lab / "reports")
    assert (
        "### Arm `tiny`" in text
        and "abstract: random tokens" in text
        and (lab / "reports/plots/thought_interfaces.png").exists()
    )
    assert interfaces.summary(lab / "reports")["tiny"]["verbal"] == metrics_of(lab, "verbal")["accuracy"]

    import mlflow

    runs = mlflow.search_runs(experiment_names=["thoughts-test"])
    names = set(runs["tags.mlflow.runName"])
    assert {"verbal_thought/tiny", "abstract_thought/tiny", "continuous_thought/tiny"} <= names
    assert "metrics.accuracy" in runs.columns and runs["metrics.accuracy"].notna().sum() == 3


def test_abstract_stage_on_the_anchored_path(lab):
    """The embedded default's path (our additions): Phase B alone on reasoning-anchored sequences of
    the chain's length, no Phase A probe, and the params it ran with in its metrics."""
    from stages import abstract_thought, prepare_thought_tasks

    anchored = "abstract: {vocab_size: 8, max_tokens: 2, rounds: 1, round1_z: reasoning, phase_b_z: teacher, "
    anchored += "phase_a: false, chain_tokens: true, phase_b_epochs: 2}"
    text = PARAMS.replace("abstract: {vocab_size: 8, max_tokens: 2, rounds: 2}", anchored)
    (lab / "params.yaml").write_text(
        text.replace("abstract_budgets: [1, 2]", "abstract_budgets: [2, 5]")
    )  # up to the chain
    stage_main("prepare_thought_tasks", prepare_thought_tasks.run, argv=["--params", "params.yaml"])
    stage_main(
        "abstract_thought", abstract_thought.run, arms=["tiny"], argv=["--params", "params.yaml", "--arm", "tiny"]
    )
    m = metrics_of(lab, "abstract")
    assert m["abstract_max_tokens"] == 5 and m["r1_mean_abstract_tokens"] == 5  # the 6-term chain's 5 steps
    assert m["round1_z"] == "reasoning" and m["steps"] == 4  # 2 epochs of 16 problems at batch 8
    assert not any(k.startswith("r1_phase_a") for k in m)


def metrics_of(lab, name):
    return json.loads((lab / f"reports/thoughts/{name}_tiny.json").read_text())


def test_unknown_arm_exits_2(lab, capsys):
    from stages import verbal_thought

    with pytest.raises(SystemExit) as e:
        stage_main(
            "verbal_thought", verbal_thought.run, arms=["tiny"], argv=["--params", "params.yaml", "--arm", "nope"]
        )
    assert e.value.code == 2 and "unknown arm 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit,message",
    [
        ("task: tiny}", "thoughts.arms.tiny.task: 'missing' is not one of thoughts.tasks"),
        ("verbal_budgets: [0, 5]", "thoughts.tasks.tiny.verbal_budgets: Value error, must be a non-empty list"),
        ("rounds: 2", "thoughts.abstract.rounds: Input should be greater than or equal to 1"),
        ("max_tokens: 2,", "thoughts.abstract: Value error, thoughts.abstract.min_tokens 3 exceeds max_tokens 2"),
        ("rounds: 2}", "thoughts.abstract: Value error, thoughts.abstract.phase_a: false needs round1_z: reasoning"),
        # every eval cap below the trained length: only cut thoughts scored (0% on the H200 stand-in run)
        ("max_tokens: 2, rounds", "thoughts: Value error, thoughts.tasks.tiny.abstract_budgets: [1, 2] are all below"),
        ("abstract: {vocab_size", "thoughts: Value error, thoughts.tasks.tiny.abstract_budgets: [1, 2] are all below"),
    ],
)
def test_bad_params_one_error(edit, message):
    bad = {
        "task: tiny}": "task: missing}",
        "verbal_budgets: [0, 5]": "verbal_budgets: [0, -1]",
        "rounds: 2": "rounds: 0",
        "max_tokens: 2,": "max_tokens: 2, min_tokens: 3,",
        "rounds: 2}": "rounds: 1, phase_a: false}",
        "max_tokens: 2, rounds": "max_tokens: 4, min_tokens: 3, rounds",
        "abstract: {vocab_size": "abstract: {chain_tokens: true, vocab_size",  # m = the chain length, 5
    }[edit]
    with pytest.raises(InputError) as e:
        parse_params(PARAMS.replace(edit, bad), "params.yaml")
    assert message.split(":")[0] in str(e.value) and str(e.value).startswith("params.yaml:")
    assert message.rpartition("Value error, ")[2] in str(e.value)
