"""OpenAIEngine against a real `transformers serve` of the tiny Qwen3 (text-only dialect there)."""

import pytest
from serve_fixtures import tiny_server  # noqa: F401  (the shared real server)

from thinkmid.engines.base import Engine, SamplingParams
from thinkmid.engines.hf import HFEngine
from thinkmid.engines.launcher import free_port
from thinkmid.engines.openai import EndpointError, OpenAIEngine


def _engine(srv, tok, **kw):
    return OpenAIEngine(srv.base_url, srv.served_model, tok, timeout_s=60, max_retries=1, backoff_s=0.05, **kw)


def test_greedy_matches_in_process_engine(tiny_server, tiny_model, qwen_tok):
    eng = _engine(tiny_server, qwen_tok)
    assert isinstance(eng, Engine)
    prompts = [qwen_tok.encode("The river runs"), qwen_tok.encode("Population growth in the capital was")]
    params = SamplingParams(max_new_tokens=8, temperature=0)
    got = eng.generate(prompts, params)
    assert eng.dialect == "transformers"  # token-id prompts were refused, text + generation_config taken
    ref = HFEngine(tiny_model, qwen_tok).generate(prompts, params)
    for g, r in zip(got, ref):
        assert len(g) == 1 and g[0].finish_reason == "length"
        assert g[0].text == r[0].text
        assert g[0].logprobs == [0.0] * len(g[0].token_ids)
    assert eng.has_logprobs is False
    eng.close()


def test_n_samples_and_stop_tokens(tiny_server, qwen_tok):
    eng = _engine(tiny_server, qwen_tok, concurrency=4)
    prompt = [qwen_tok.encode("The river runs")]
    comps = eng.generate(prompt, SamplingParams(max_new_tokens=12, n=3, temperature=1.0, seed=1))[0]
    assert len(comps) == 3 and len({tuple(c.token_ids) for c in comps}) > 1  # sampled, distinct seeds
    greedy = eng.generate(prompt, SamplingParams(max_new_tokens=12, temperature=0))[0][0]
    stop = greedy.token_ids[3]
    cut = eng.generate(prompt, SamplingParams(max_new_tokens=12, temperature=0, stop_token_ids=(stop,)))[0][0]
    assert cut.finish_reason == "stop" and cut.token_ids[-1] == stop
    assert cut.token_ids == greedy.token_ids[: greedy.token_ids.index(stop) + 1]
    eng.close()


def test_update_weights_without_reload_api_or_launcher_raises(tiny_server, qwen_tok, tiny_model_dir):
    eng = _engine(tiny_server, qwen_tok)
    with pytest.raises(EndpointError, match="cannot update weights"):
        eng.update_weights(str(tiny_model_dir))
    eng.close()


def test_refused_connection_bounded_retries(qwen_tok):
    eng = OpenAIEngine(
        f"http://127.0.0.1:{free_port()}/v1",
        "default",
        qwen_tok,
        timeout_s=2,
        max_retries=2,
        backoff_s=0.01,
        dialect="extended",
    )
    with pytest.raises(EndpointError, match="3 attempts"):
        eng.generate([[1, 2, 3]], SamplingParams(max_new_tokens=4))
    assert eng.client.retries == 2
