import pytest

from thinkmid.judges.parse import VerdictError, load_prompt, parse_match, parse_winner, render


@pytest.mark.parametrize("text,want", [
    ('{"winner": "A"}', "A"),
    ('  {"winner":"B"}\n', "B"),
    ('```json\n{"winner": "A"}\n```', "A"),
    ('```\n{"winner": "B"}\n```', "B"),
    ('\n```json {"winner": "B"} ```  ', "B"),
    ('{"winner": "A", "reason": "more coherent"}', "A"),
])  # fmt: skip
def test_winner_valid(text, want):
    assert parse_winner(text) == want


@pytest.mark.parametrize("text", [
    "", "   ", None, "A", "The winner is A.", '"A"', "[\"A\"]",
    'Sure! {"winner": "A"}', '{"winner": "A"} because it is better',
    '{"winner": "A"}{"winner": "B"}', '{"winner": "A"}\n{"winner": "A"}',
    '{"winner": "a"}', '{"winner": "C"}', '{"winner": "A or B"}', '{"winner": null}', '{"winner": 1}',
    '{"winner": ["A"]}', '{"Winner": "A"}', '{"choice": "A"}', '{}', '{"winner": "A", "confidence": 0.9}',
    '{"winner": "A", "winner": "B"}', '{"winner": "A", "reason": 3}', "{'winner': 'A'}",
    '{"winner": "A"', '```json\n{"winner": "A"}', '```json\n{"winner": "A"}\n```\n```json\n{"winner": "B"}\n```',
    '{"match": true}', "<think>hmm</think>{\"winner\": \"A\"}",
])  # fmt: skip
def test_winner_invalid(text):
    with pytest.raises(VerdictError):
        parse_winner(text)


@pytest.mark.parametrize("text,want", [
    ('{"match": true}', 1), ('{"match": false}', 0), ('{"score": 1}', 1), ('{"score": 0}', 0),
    ('```json\n{"match": true}\n```', 1), (' {"score": 0, "reason": "different facts"} ', 0),
])  # fmt: skip
def test_match_valid(text, want):
    assert parse_match(text) == want


@pytest.mark.parametrize("text", [
    "", "yes", "true", "1", '{"match": "true"}', '{"match": 1}', '{"score": true}', '{"score": 1.0}',
    '{"score": 0.5}', '{"score": 2}', '{"score": "1"}', '{"match": true, "score": 1}', '{"winner": "A"}',
    '{"match": true} {"match": false}', 'match: {"match": true}', '{"Match": true}', '{"match": null}',
])  # fmt: skip
def test_match_invalid(text):
    with pytest.raises(VerdictError):
        parse_match(text)


def test_render_is_one_pass_and_keeps_braces():
    t = load_prompt("pairwise_quality")
    out = render(t, prefix="P {b} {x}", a="cont {a}", b="{\"winner\": \"B\"}")
    assert "P {b} {x}" in out and "cont {a}" in out and '{"winner": "A"}' in out
    assert "{prefix}" not in out
    with pytest.raises(KeyError):
        render("{prefix} {a}", prefix="x")


@pytest.mark.parametrize("name,slots", [
    ("pairwise_quality", {"prefix", "a", "b"}), ("pairwise_lm", {"prefix", "a", "b"}),
    ("reference_match", {"prefix", "predicted", "reference"}), ("reference_lm", {"prefix", "predicted", "reference"}),
])  # fmt: skip
def test_prompts_have_their_slots(name, slots):
    t = load_prompt(name)
    for s in slots:
        assert "{" + s + "}" in t
