"""Profiles as overlays of the embedded default (thinkmid/profile.py): merge, validation, switching."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from thinkmid import profile
from thinkmid.config import flatten, load_params, parse_params
from thinkmid.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
# The last commits with each full profile file (before paper and micro became overlays; the paper
# one after its judges moved in process).
FULL_PROFILES_COMMIT = {"paper": "72be564", "micro": "cd78198"}
# keys changed on purpose since then (issue 17's recipe: thought17b, abs17), so the proof compares the rest
_THOUGHT_RECIPE = (
    "thoughts.abstract.min_tokens",
    "thoughts.abstract.rounds",  # micro: 1 (the embedded path, abs17)
    "thoughts.abstract.eval_temperature",
    "thoughts.abstract.round1_z",
    "thoughts.abstract.phase_b_z",
    "thoughts.abstract.phase_a",
    "thoughts.abstract.phase_b_epochs",
    "thoughts.abstract.chain_tokens",
    "thoughts.continuous.chain_steps",
    "thoughts.continuous.mixed_steps",
    "thoughts.continuous.teacher_batch",
    "thoughts.continuous.head_fit_steps",
    "thoughts.continuous.lr",
)
CHANGED_SINCE = {
    "paper": _THOUGHT_RECIPE
    + (
        "thoughts.tasks.gsm8k.micro_batch_size",
        "thoughts.tasks.modsum.abstract_budgets",
        "knowledge_gates.micro_batch_size",
    ),
    "micro": _THOUGHT_RECIPE + ("thoughts.tasks.tiny.abstract_budgets",),
}


@pytest.mark.parametrize("name", profile.names())
def test_every_profile_merges_and_validates(name):
    p = profile.load_profile(name)
    assert p.profile == name


@pytest.mark.parametrize("name", ["paper", "micro"])
def test_merged_profile_equals_the_full_file_it_replaced(name):
    """Key for key, after validation: the overlay + default mean what the full copy meant."""
    try:
        old = subprocess.run(
            ["git", "show", f"{FULL_PROFILES_COMMIT[name]}:profiles/{name}.yaml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history without {FULL_PROFILES_COMMIT[name]}")
    assert "extends:" not in old  # really the full copy
    want, got = flatten(parse_params(old, f"{name} (full)")), flatten(profile.load_profile(name))
    for key in CHANGED_SINCE.get(name, ()):  # values changed on purpose after that commit
        want.pop(key, None), got.pop(key, None)
    assert got == want, {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}


def test_overlays_state_less_than_the_default():
    full = len((ROOT / "profiles" / "embedded.yaml").read_text().splitlines())
    assert len((ROOT / "profiles" / "micro.yaml").read_text().splitlines()) < full // 2


def test_merge_rules():
    default = {
        "chunks": {"prefix_tokens": 96, "suffix_tokens": 32},
        "knowledge_gates": {"off_fractions": [0.1, 0.5]},
        "thoughts": {"arms": {"a": {"model": "m", "task": "t"}}},
    }
    overlay = {
        "chunks": {"prefix_tokens": 384, "windows": "first"},
        "knowledge_gates": {"off_fractions": [0.2]},
        "thoughts": {"arms": {"b": {"model": "n", "task": "u"}}},
    }
    out = profile.merge(default, overlay, "o.yaml", {})
    assert out["chunks"] == {"prefix_tokens": 384, "suffix_tokens": 32, "windows": "first"}  # mappings merge
    assert out["knowledge_gates"]["off_fractions"] == [0.2]  # lists replace
    assert out["thoughts"]["arms"] == {"b": {"model": "n", "task": "u"}}  # named mappings replace whole
    assert default["chunks"] == {"prefix_tokens": 96, "suffix_tokens": 32}  # the default is not touched


def test_unknown_overlay_key_names_file_and_line():
    text = "extends: embedded\nchunks:\n  prefix_tokens: 24\n  prefx_tokens: 8\n"
    with pytest.raises(InputError, match=r"o.yaml:4: chunks.prefx_tokens: not in profiles/embedded.yaml"):
        overlay = {k: v for k, v in yaml.safe_load(text).items() if k != "extends"}
        profile.merge({"chunks": {"prefix_tokens": 96}}, overlay, "o.yaml", profile._line_index(text))


def test_an_overlay_loaded_as_params_is_refused():
    with pytest.raises(InputError, match="overlay"):
        load_params(ROOT / "profiles" / "micro.yaml")


def test_cli_writes_merged_params_with_header(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert profile.main(["micro"]) == 0
    text = (tmp_path / "params.yaml").read_text()
    assert text.startswith("# params.yaml <- profiles/embedded.yaml + overlay profiles/micro.yaml")
    assert load_params(tmp_path / "params.yaml") == profile.load_profile("micro")
    assert profile.main(["embedded"]) == 0  # unedited: switching needs no --force
    assert "# Every key is validated" in (tmp_path / "params.yaml").read_text()  # the default's comments stay
    assert not (tmp_path / "params.yaml.bak").exists()


def test_switch_refuses_to_lose_edits_and_force_keeps_a_backup(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert profile.main(["micro"]) == 0
    params = tmp_path / "params.yaml"
    edited = params.read_text().replace("prefix_tokens: 24", "prefix_tokens: 28") + "seed: 3\n"
    params.write_text(edited)
    assert profile.main(["paper"]) == 2
    err = capsys.readouterr().err
    assert "chunks.prefix_tokens" in err and "seed" in err and "--force" in err
    assert params.read_text() == edited  # untouched
    assert profile.main(["paper", "--force"]) == 0
    assert (tmp_path / "params.yaml.bak").read_text() == edited
    assert load_params(params).profile == "paper"


def test_a_params_file_of_no_profile_counts_as_edited(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("profile: paper_standins\nseed: 0\n")
    with pytest.raises(InputError, match="paper_standins"):
        profile.switch("embedded", Path("params.yaml"))


def test_repository_params_is_the_default_profile_unedited():
    assert profile.edited_keys(ROOT / "params.yaml") == ("embedded", [])


def test_a_bad_value_in_an_overlay_names_the_overlay_line(tmp_path, monkeypatch):
    (tmp_path / "embedded.yaml").write_text((ROOT / "profiles" / "embedded.yaml").read_text())
    (tmp_path / "tiny.yaml").write_text("extends: embedded\nprofile: tiny\nsft:\n  lr: -1.0\n")
    monkeypatch.setattr(profile, "PROFILES", tmp_path)
    with pytest.raises(InputError, match=r"profiles/tiny.yaml:4: sft.lr: .*merged over profiles/embedded.yaml"):
        profile.profile_text("tiny")
    (tmp_path / "tiny.yaml").write_text("extends: embedded\nprofile: tiny\nchunks:\n  prefix_tokens: 200\n")
    with pytest.raises(InputError, match=r"profiles/tiny.yaml:3: chunks.min_source_tokens \(160\) must be"):
        profile.profile_text("tiny")  # a cross-field check: the overlay's section holding the first key it names
    (tmp_path / "tiny.yaml").write_text("profile: tiny\n")
    with pytest.raises(InputError, match=r"profiles/tiny.yaml:1: extends: expected 'embedded'"):
        profile.merged("tiny")
