"""Every hub dataset is loaded at its `revision` param (issue 16, item 3): a revision change is a params
change, so DVC reruns the stage that reads it."""

from __future__ import annotations

import sys
import types

import pytest

from thinkmid.config import flatten
from thinkmid.data import sources
from thinkmid.evals.reasoning import common
from thinkmid.gates import data as gates_data
from thinkmid.profile import load_profile


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def load_dataset(*args, **kwargs):
        seen.append((args, kwargs))
        return [{"text": "x", "subj": "s", "obj": "o", "question": "q", "answer": "a", "problem": "p"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return seen


def test_every_hub_loader_passes_the_revision(calls):
    list(sources.fineweb_documents("HuggingFaceFW/fineweb-edu", "sample-10BT", 1, revision="r1"))
    common.load_hub("openai/gsm8k", "main", "test", "gsm8k", "r2")
    gates_data._hub("akariasai/PopQA", "test", "knowledge_source", revision="r3")
    assert [kw.get("revision") for _, kw in calls] == ["r1", "r2", "r3"]


def test_the_paper_profile_names_a_revision_for_each_hub_dataset():
    flat = flatten(load_profile("paper"))
    for key in (
        "chunks.fineweb_revision",
        "chunks.phase3_revision",
        "reasoning_eval.gsm8k.revision",
        "reasoning_eval.math500.revision",
        "reasoning_eval.gpqa_diamond.revision",
        "reasoning_eval.olympiadbench.revision",
        "knowledge_gates.popqa_revision",
        "knowledge_gates.numina_revision",
        "thoughts.tasks.gsm8k.revision",
    ):
        assert flat[key] == "main", key  # no pin is known for these; never an invented hash
