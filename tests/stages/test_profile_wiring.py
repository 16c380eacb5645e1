"""Every stage of every shipped profile, built with a recording launcher (no process is started).

Like torchtune's recipe-config tests: for each profile (and the paper profile with its policy on a
server, with its commented endpoint judges switched on, and with the one-GPU stand-ins) each stage's
parts are built exactly as the stage builds them (`stage.wiring` + `thinkmid.engines.wiring.build`),
and we check which servers start, with which model and on which port, that each was stopped by the
stage that started it, that the stage's engines and judges talk to those servers, and that an
in-process judge loads its own model (the 4B at the pinned revision) and starts no server.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from fake_launcher import RecordingLauncher

from tests.conftest import load_script
from thinkmid.config import ARMS_GATE, ARMS_RLMT, ARMS_SFT, parse_params
from thinkmid.engines.hf import HFEngine
from thinkmid.engines.launcher import ServerError
from thinkmid.engines.openai import OpenAIEngine
from thinkmid.engines.servers import use_launcher
from thinkmid.engines.wiring import build
from thinkmid.errors import InputError
from thinkmid.judges.inprocess import InprocessPairwiseJudge, InprocessReferenceJudge
from thinkmid.profile import merged

ROOT = Path(__file__).resolve().parents[2]
JUDGE_4B = "Qwen/Qwen3-4B-Instruct-2507"
JUDGE_4B_REVISION = "cdbee75f17c01a7cc42f958dc650907174af0554"
STAGE_ARMS = {
    "self_improve": [None],
    "eval_continuations": [None],
    "teacher_thoughts": [None],
    "sft": list(ARMS_SFT),
    "rlmt": list(ARMS_RLMT),
    "reward_gate": [None],
    "thought_probe": [None],
    "reasoning_eval": list(ARMS_GATE),
}
NO_SERVERS = ("prepare_base", "prepare_chunks", "report")
ARM_DIR = {
    "think_base": "models/sft_think_base",
    "think_phase3": "models/sft_think_phase3",
    "think_base_rlmt": "models/think_base_rlmt",
    "think_phase3_rlmt": "models/think_phase3_rlmt",
}
SFT_START = {"raw_base": "models/base", "think_base": "models/base", "think_phase3": "models/phase3"}


def profile_dict(name: str) -> dict:
    return merged(name)  # the default + the profile's overlay


def paper_on_servers() -> dict:
    """The paper profile with the policy on its own SGLang server too."""
    d = profile_dict("paper")
    d["engine"] = {**d["engine"], "backend": "openai", "endpoint": {"server": {"launch": "sglang"}}}
    return d


def paper_endpoint_judges() -> dict:
    """The paper profile with its commented alternative switched on: each judge on its own SGLang
    server (the `# endpoint:` block of each judge section, uncommented, and backend endpoint)."""
    text = (ROOT / "profiles" / "paper.yaml").read_text()
    d = profile_dict("paper")
    for role in ("judge", "reference_judge"):
        section = re.search(rf"^{role}:\n((?:  .*\n|\n)*)", text, re.M).group(1)
        block = [ln.replace("  # ", "  ", 1) for ln in section.splitlines() if re.match(r"  # (endpoint:|  )", ln)]
        assert block and block[0] == "  endpoint:", f"profiles/paper.yaml {role}: no commented endpoint block"
        d[role] = {**d[role], "backend": "endpoint", **yaml.safe_load("\n".join(b[2:] for b in block))}
    return d


def paper_standins() -> dict:
    """The paper profile with scripts/paper_standins.py's overrides (the one-GPU run)."""
    return yaml.safe_load(load_script("paper_standins").standin_params_text())


def expected(profile: str, stage: str, arm: str | None) -> list[tuple[str, str, str, int]]:
    """(role, launch, model, port) of each server the stage starts, in order: written out by hand."""
    paper = profile.startswith("paper")
    kind, model = ("transformers", "standins/qwen3-4b") if profile == "paper_standins" else ("sglang", JUDGE_4B)
    judge = [("judge", kind, model, 30001)] if profile == "paper_endpoint_judges" else []  # else in process
    ref = [("reference_judge", kind, model, 30002)] if profile == "paper_endpoint_judges" else []
    teacher = [("teacher", kind, model, 30003)] if paper else []
    if profile != "paper_on_servers":  # the policy samples in process
        return {
            "self_improve": judge,
            "eval_continuations": judge,
            "teacher_thoughts": teacher,
            "sft": [],
            "rlmt": ref,
            "reward_gate": ref,
            "thought_probe": ref,
            "reasoning_eval": [],
        }[stage]

    def pol(model):
        return ("policy", "sglang", model, 30000)

    gate = ref + [pol(ARM_DIR[a]) for a in ARMS_GATE]
    return {
        "self_improve": lambda: judge + [pol("models/base")],
        "eval_continuations": lambda: [pol("models/base"), pol("models/phase3")] + judge,
        "teacher_thoughts": lambda: teacher,
        "sft": lambda: [pol(SFT_START[arm])],
        "rlmt": lambda: ref + [pol(ARM_DIR[arm])],
        "reward_gate": lambda: gate,
        "thought_probe": lambda: gate,
        "reasoning_eval": lambda: [pol(ARM_DIR[arm])],
    }[stage]()


PROFILES = {
    "embedded": lambda: profile_dict("embedded"),
    "micro": lambda: profile_dict("micro"),
    "paper": lambda: profile_dict("paper"),
    "paper_on_servers": paper_on_servers,
    "paper_endpoint_judges": paper_endpoint_judges,
    "paper_standins": paper_standins,
}
CASES = [(p, s, a) for p in PROFILES for s, arms in STAGE_ARMS.items() for a in arms]


def check_wired(part, obj, launcher: RecordingLauncher, tiny_model, params=None, loads=()) -> None:
    """The built engine / judge / teacher talks to the server started for it (or runs in process)."""
    client = getattr(obj, "client", None) or getattr(getattr(obj, "engine", None), "client", None)
    if client is None:  # in process: an hf engine on the model we gave it, or an lm / lexical / inprocess judge
        assert not launcher.live
        if isinstance(obj, HFEngine):
            assert obj.model is tiny_model
        jp = params and {"judge": params.judge, "reference_judge": params.reference_judge}.get(part.kind)
        if jp is not None and jp.backend == "inprocess":  # its own model, loaded once for the part
            cls = InprocessPairwiseJudge if part.kind == "judge" else InprocessReferenceJudge
            assert isinstance(obj, cls) and (obj.temperature, obj.top_p) == (0.7, 0.6)  # the seed's decoding
            want = (jp.model, jp.hub_id, jp.revision) if jp.model == "hub" else (jp.model, jp.model_path)
            assert loads == [want]
        return
    spec = launcher.started[-1]
    assert client.base_url == f"http://127.0.0.1:{spec.port}/v1" == spec.base_url
    assert spec.port in launcher.live  # up while the part is in use
    if part.kind == "policy":
        assert isinstance(obj, OpenAIEngine) and spec.model == part.model and spec.role == "policy"
        assert obj.model == "default"  # SGLang's served name
    elif spec.launch == "transformers":
        assert obj.model is None  # a pinned `transformers serve`: no model field in requests


@pytest.mark.parametrize("profile,stage,arm", CASES, ids=[f"{p}-{s}-{a or ''}".rstrip("-") for p, s, a in CASES])
def test_stage_servers_models_ports(profile, stage, arm, tiny_model, qwen_tok, monkeypatch):
    from thinkmid.judges import factory

    # sort_keys=False: the arms run in params.yaml's order (safe_dump would sort them)
    params = parse_params(yaml.safe_dump(PROFILES[profile](), sort_keys=False), f"profiles/{profile}.yaml")
    mod = importlib.import_module(f"stages.{stage}")
    parts = mod.wiring(params, arm)
    loads = []  # what an in-process judge loaded: (model, hub id, revision) or (model, path)

    def fake_load(jp, dtype="float32", role="judge"):
        loads.append((jp.model, jp.hub_id, jp.revision) if jp.model == "hub" else (jp.model, jp.model_path))
        return tiny_model, qwen_tok

    monkeypatch.setattr(factory, "load_judge_model", fake_load)
    with use_launcher(RecordingLauncher()) as fake:
        for part in parts:
            loads.clear()
            with build(part, params, tiny_model, qwen_tok, progress=False) as obj:
                check_wired(part, obj, fake, tiny_model, params, loads)
            assert not fake.live  # every server the part started is stopped when it is done
    got = [(s.role, s.launch, s.model, s.port) for s in fake.started]
    assert got == expected(profile, stage, arm)
    assert fake.stopped == fake.started and not fake.attached


def test_paper_judges_are_the_4b_in_process_at_the_pinned_revision():
    params = parse_params(yaml.safe_dump(profile_dict("paper")), "profiles/paper.yaml")
    for jp in (params.judge, params.reference_judge):
        assert (jp.backend, jp.model, jp.hub_id, jp.revision) == ("inprocess", "hub", JUDGE_4B, JUDGE_4B_REVISION)
        assert (jp.inprocess.temperature, jp.inprocess.top_p) == (0.7, 0.6)  # the seed's judge decoding


@pytest.mark.parametrize("stage", NO_SERVERS)
def test_stages_without_servers_build_none(stage):
    mod = importlib.import_module(f"stages.{stage}")
    assert not hasattr(mod, "wiring")
    src = Path(mod.__file__).read_text()
    assert "engine_for" not in src and "judge_for" not in src and "thinkmid.engines.wiring" not in src


def test_hand_started_server_of_the_model_is_attached_and_left_running(tiny_model, qwen_tok):
    """A reference judge already up on 30002 with the configured model: rlmt attaches, never stops it."""
    params = parse_params(yaml.safe_dump(paper_endpoint_judges()))
    rlmt = importlib.import_module("stages.rlmt")
    with use_launcher(RecordingLauncher(already_serving={30002: JUDGE_4B})) as fake:
        for part in rlmt.wiring(params, "think_base"):
            with build(part, params, tiny_model, qwen_tok, progress=False) as obj:
                if part.kind == "reference_judge":
                    assert obj.client.base_url == "http://127.0.0.1:30002/v1" and obj.server.owned is False
    assert [s.role for s in fake.attached] == ["reference_judge"] and not fake.started and not fake.stopped
    assert fake.live == {30002: (JUDGE_4B, False)}


def test_a_server_of_another_model_on_the_port_is_named(tiny_model, qwen_tok):
    """The old shared-port layout: a judge server on the teacher's port makes teacher_thoughts say so."""
    params = parse_params(yaml.safe_dump(profile_dict("paper")))
    tt = importlib.import_module("stages.teacher_thoughts")
    with use_launcher(RecordingLauncher(already_serving={30003: "models/base"})):
        with pytest.raises(
            ServerError,
            match=r"teacher_thoughts\.endpoint\.server: port 30003 .* models/base, not "
            r"Qwen/Qwen3-4B-Instruct-2507",
        ):
            with build(tt.wiring(params)[0], params):
                pass


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            {"engine": {"backend": "openai", "endpoint": {"server": {"launch": "none"}}}},
            "engine.endpoint.server.launch: 'none' with engine.backend 'openai' would sample every arm",
        ),
        (
            {"engine": {"backend": "openai", "endpoint": {"server": {"launch": "sglang", "model": "x"}}}},
            "engine.endpoint.server.model: the policy server serves each stage's own model",
        ),
        (
            {
                "judge": {
                    "backend": "endpoint",
                    "endpoint": {"server": {"launch": "sglang", "extra_args": ["--model-path", "x"]}},
                }
            },
            "the served model is `server.model`, not an extra argument",
        ),
        (
            {
                "judge": {
                    "backend": "endpoint",
                    "endpoint": {"base_url": "http://h:1/v1", "server": {"launch": "sglang"}},
                }
            },
            "names an external server but server launch is 'sglang'",
        ),
    ],
)
def test_configs_that_cannot_be_wired_are_refused_before_work(edit, message):
    d = profile_dict("paper")
    for k, v in edit.items():
        d[k] = v
    with pytest.raises(InputError, match=None) as e:
        parse_params(yaml.safe_dump(d), "params.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)
