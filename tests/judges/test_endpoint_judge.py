"""Endpoint judges against a real `transformers serve` (tiny random model: it answers garbage, so
verdicts are mostly invalid; what matters is that every answer is counted, valid or not)."""

import pytest

from thinkmid.config import EndpointParams, JudgeParams, Params, ServerParams
from thinkmid.engines.launcher import free_port
from thinkmid.engines.openai import HTTPClient
from thinkmid.judges.base import check_invalid_rate
from thinkmid.judges.endpoint import EndpointPairwiseJudge, EndpointReferenceJudge
from thinkmid.judges.factory import make_pairwise_judge, reference_judge_for

ITEMS = [
    ("The river rises in the hills and", " flows to the sea.", " is blue."),
    ("In 1990 the population was", " two million.", " very."),
]


def _client(url, retries=1):
    return HTTPClient(url, "THINKMID_TEST_KEY", timeout_s=60, max_retries=retries, backoff_s=0.05, concurrency=4)


def test_pairwise_over_real_server(tiny_server):
    j = EndpointPairwiseJudge(_client(tiny_server.base_url), tiny_server.served_model, max_tokens=8)
    v = j.judge_pairs(ITEMS)
    assert len(v) == 2 and j.stats.calls == 2
    assert j.stats.invalid == sum(x.winner is None for x in v)
    for x in v:
        assert x.winner in ("A", "B") or (x.error and "transport" not in x.error)
        assert x.raw or x.error  # the model did answer (HTTP path worked)
    assert j.stats.retries == 0


def test_reference_over_real_server_via_factory(tiny_server):
    """The reference judge's role server is already up with the configured model on its port: attached."""
    server = ServerParams(launch="transformers", port=tiny_server.port, model=tiny_server.model_path)
    params = Params(
        reference_judge=JudgeParams(backend="endpoint", endpoint=EndpointParams(max_retries=0, server=server))
    )
    with reference_judge_for(params) as j:
        assert isinstance(j, EndpointReferenceJudge) and j.model is None  # pinned server: no model field
        assert j.server.owned is False and j.client.base_url == tiny_server.base_url
        out = j.judge([(p, a, b) for p, a, b in ITEMS])
    assert len(out) == 2 and j.stats.invalid == out.count(None) and j.stats.calls == 2
    assert all(e is None or "HTTP" not in e for e in j.last_errors)  # answers, not transport failures
    assert tiny_server.alive()  # not started by the judge, so not stopped by it


def test_wrong_model_name_is_an_invalid_verdict_not_a_crash(tiny_server):
    j = EndpointPairwiseJudge(_client(tiny_server.base_url), "no-such-model", max_tokens=4)
    v = j.judge_pairs(ITEMS[:1])
    assert v[0].winner is None and "400" in v[0].error and j.stats.invalid == 1


def test_refused_connection_retries_then_invalid(monkeypatch):
    monkeypatch.setenv("THINKMID_TEST_KEY", "sk-secret-value-123")
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    ep = EndpointParams(base_url=url, max_retries=2, backoff_s=0.01, timeout_s=2, api_key_env="THINKMID_TEST_KEY")
    j = make_pairwise_judge(JudgeParams(backend="endpoint", endpoint=ep))
    v = j.judge_pairs(ITEMS)
    assert [x.winner for x in v] == [None, None]
    assert j.stats.calls == 2 and j.stats.invalid == 2 and j.stats.retries == 2 * 2
    assert "3 attempts" in v[0].error and "sk-secret" not in v[0].error
    check_invalid_rate(j.stats, 1.0, "test")
    with pytest.raises(RuntimeError, match=r"test: 2/2 judge verdicts invalid"):
        check_invalid_rate(j.stats, 0.5, "test")
