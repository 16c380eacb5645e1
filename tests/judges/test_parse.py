import pytest

from thinkmid.judges.parse import (
    VerdictError,
    load_prompt,
    parse_match,
    parse_score_lenient,
    parse_winner,
    parse_winner_lenient,
    render,
)


@pytest.mark.parametrize(
    "text,want",
    [
        ('{"winner": "A"}', "A"),
        ('  {"winner":"B"}\n', "B"),
        ('```json\n{"winner": "A"}\n```', "A"),
        ('```\n{"winner": "B"}\n```', "B"),
        ('\n```json {"winner": "B"} ```  ', "B"),
        ('{"winner": "A", "reason": "more coherent"}', "A"),
    ],
)
def test_winner_valid(text, want):
    assert parse_winner(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        None,
        "A",
        "The winner is A.",
        '"A"',
        '["A"]',
        'Sure! {"winner": "A"}',
        '{"winner": "A"} because it is better',
        '{"winner": "A"}{"winner": "B"}',
        '{"winner": "A"}\n{"winner": "A"}',
        '{"winner": "a"}',
        '{"winner": "C"}',
        '{"winner": "A or B"}',
        '{"winner": null}',
        '{"winner": 1}',
        '{"winner": ["A"]}',
        '{"Winner": "A"}',
        '{"choice": "A"}',
        "{}",
        '{"winner": "A", "confidence": 0.9}',
        '{"winner": "A", "winner": "B"}',
        '{"winner": "A", "reason": 3}',
        "{'winner': 'A'}",
        '{"winner": "A"',
        '```json\n{"winner": "A"}',
        '```json\n{"winner": "A"}\n```\n```json\n{"winner": "B"}\n```',
        '{"match": true}',
        '<think>hmm</think>{"winner": "A"}',
    ],
)
def test_winner_invalid(text):
    with pytest.raises(VerdictError):
        parse_winner(text)


@pytest.mark.parametrize(
    "text,want",
    [
        ('{"match": true}', 1),
        ('{"match": false}', 0),
        ('{"score": 1}', 1),
        ('{"score": 0}', 0),
        ('```json\n{"match": true}\n```', 1),
        (' {"score": 0, "reason": "different facts"} ', 0),
    ],
)
def test_match_valid(text, want):
    assert parse_match(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yes",
        "true",
        "1",
        '{"match": "true"}',
        '{"match": 1}',
        '{"score": true}',
        '{"score": 1.0}',
        '{"score": 0.5}',
        '{"score": 2}',
        '{"score": "1"}',
        '{"match": true, "score": 1}',
        '{"winner": "A"}',
        '{"match": true} {"match": false}',
        'match: {"match": true}',
        '{"Match": true}',
        '{"match": null}',
    ],
)
def test_match_invalid(text):
    with pytest.raises(VerdictError):
        parse_match(text)


def test_render_is_one_pass_and_keeps_braces():
    t = load_prompt("pairwise_quality")
    out = render(t, prefix="P {b} {x}", a="cont {a}", b='{"winner": "B"}')
    assert "P {b} {x}" in out and "cont {a}" in out and '{"winner": "A"}' in out
    assert "{prefix}" not in out
    with pytest.raises(KeyError):
        render("{prefix} {a}", prefix="x")


@pytest.mark.parametrize(
    "name,slots",
    [
        ("pairwise_quality", {"prefix", "a", "b"}),
        ("pairwise_lm", {"prefix", "a", "b"}),
        ("reference_match", {"prefix", "predicted", "reference"}),
        ("reference_lm", {"prefix", "predicted", "reference"}),
    ],
)
def test_prompts_have_their_slots(name, slots):
    t = load_prompt(name)
    for s in slots:
        assert "{" + s + "}" in t


# The seed's lenient readings (scripts/self_improving.py parse_winner; eval_thinking.py judge_pointwise),
# kept beside the strict parse: prose around the verdict still counts, nothing is ever invalid for
# the pairwise judge (the fallback is "B"), and a reference answer without a score is no verdict.
@pytest.mark.parametrize(
    "text,want",
    [
        ('{"winner": "A"}', "A"),
        ('Sure! {"winner":"a"} because', "A"),
        ("Option: B is better", "B"),
        ("winner 1", "A"),
        ("Option 2", "B"),
        ("I pick A.", "A"),
        ("neither", "B"),
        ("", "B"),
        (None, "B"),
    ],
)
def test_winner_lenient(text, want):
    assert parse_winner_lenient(text) == want


@pytest.mark.parametrize(
    "text,want",
    [
        ('{"score": 1}', 1),
        ('Verdict: {"score":0} (off topic)', 0),
        ('{"score": 1.0}', 1),
        ('{"match": true}', None),
        ("1", None),
        ("", None),
        (None, None),
    ],
)
def test_score_lenient(text, want):
    assert parse_score_lenient(text) == want


@pytest.mark.parametrize(
    "name,order,opening",
    [
        ("reference_match", ("{prefix}", "{reference}", "{predicted}"), '{"score": '),
        ("pairwise_quality", ("{prefix}", "{a}", "{b}"), '{"winner": "'),
    ],
)
def test_judge_prompts_put_shared_parts_first_and_end_on_the_verdict(name, order, opening):
    """Instructions, the verdict format, the passage (and the true continuation) come before the
    candidates, so a judge reuses their KV across candidates; after the last candidate only its
    closing tag is left (the in-process judge recomputes those tokens for every pair)."""
    t = load_prompt(name)
    at = [t.index(slot) for slot in order]
    assert at == sorted(at)
    assert t.index("prefer") < at[0] if name == "pairwise_quality" else t.index("Give 1") < at[0]
    fmt = next(line for line in t.splitlines() if opening in line)
    assert fmt.startswith("Reply with one JSON object") and fmt.endswith("}.") and t.index(fmt) < at[0]
    tail = t[at[-1] + len(order[-1]) :].strip()
    assert tail.startswith("</") and tail.endswith(">") and "\n" not in tail
    if name == "pairwise_quality":
        assert "do not favour a continuation because it matches the original source" in " ".join(t.split())


class _RecordingClient:
    """Transport only: records request bodies and answers each with a scripted chat response."""

    def __init__(self, answers):
        self.answers, self.bodies, self.retries = answers, [], 0

    def post_many(self, path, bodies):
        self.bodies += bodies
        return [{"choices": [{"message": {"content": a}}]} for a in self.answers[: len(bodies)]]


def test_endpoint_judge_decoding_from_params_and_lenient_reading_beside_strict():
    from thinkmid.config import JudgeParams
    from thinkmid.judges.endpoint import EndpointReferenceJudge
    from thinkmid.judges.factory import _decoding

    jp = JudgeParams(backend="endpoint", temperature=0.7, top_p=0.6, max_tokens=64)
    client = _RecordingClient(['{"score": 1}', 'Reason first. {"score": 0}', "no verdict"])
    judge = EndpointReferenceJudge(client, "m", **_decoding(jp))
    got = judge.judge([("p", "c", "r")] * 3)
    assert [(b["temperature"], b["top_p"], b["max_tokens"]) for b in client.bodies] == [(0.7, 0.6, 64)] * 3
    assert got == [1, None, None] and judge.stats.invalid == 2  # strict: prose around the JSON is invalid
    assert judge.last_lenient == [1, 0, None]  # the seed's reading of the same answers
    plain = _RecordingClient(['{"score": 1}'])
    EndpointReferenceJudge(plain, "m").judge([("p", "c", "r")])  # no decoding given: greedy, no top_p sent
    assert plain.bodies[0]["temperature"] == 0 and "top_p" not in plain.bodies[0]
