"""The knowledge_gates params section: one error naming the key for each bad value."""

from __future__ import annotations

import pytest

from thinkmid.config import parse_params
from thinkmid.errors import InputError


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "knowledge_gates:\n  off_fractions: [0.5, 0.25]\n",
            r"params.yaml:2: knowledge_gates.off_fractions must be increasing",
        ),
        (
            "knowledge_gates:\n  arms: {nope: models/x}\n",
            r"params.yaml:2: knowledge_gates.arms.nope: unknown model path 'models/x'",
        ),
        (
            "knowledge_gates:\n  seq_len: 4096\n",
            r"params.yaml:2: knowledge_gates.seq_len \(4096\) exceeds base.max_context",
        ),
        (
            "knowledge_gates:\n  scale_mode: median\n",
            r"params.yaml:2: knowledge_gates.scale_mode: Input should be 'mean' or 'energy'",
        ),
        (
            "reasoning_eval:\n  gsm8k: {limit: null}\n",
            r"knowledge_gates.reasoning_source gsm8k trains on the GSM8K rows",
        ),
    ],
)
def test_bad_values_name_their_key(text, match):
    with pytest.raises(InputError, match=match):
        parse_params(text)


def test_paper_values_parse():
    p = parse_params(
        "knowledge_gates: {knowledge_source: popqa, reasoning_source: numina}\nreasoning_eval: {gsm8k: {limit: null}}\n"
    )
    assert p.knowledge_gates.reasoning_source == "numina" and p.reasoning_eval.gsm8k.limit is None
