"""Role servers against real `transformers serve` processes: launch, attach, port held, failed start,
and a server engine kept on-policy by sync()."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from serve_fixtures import serve_dir, tiny_server  # noqa: F401  (the shared real server)

from tests.conftest import make_tiny_qwen3
from thinkmid.config import EndpointParams, EngineParams, ServerParams
from thinkmid.engines.base import SamplingParams
from thinkmid.engines.factory import engine_for
from thinkmid.engines.hf import HFEngine
from thinkmid.engines.launcher import ServerError, _port_in_use, free_port
from thinkmid.engines.servers import ServerSpec, probe, serve

CPU = ("--device", "cpu")


def spec(model, port, launch="transformers", role="judge", timeout=180.0) -> ServerSpec:
    return ServerSpec(role, launch, str(model), port, CPU, timeout)


def test_launch_then_attach_then_stop_only_what_was_started(tiny_model_dir, tmp_path):
    model, port = serve_dir(tiny_model_dir, tmp_path / "m"), free_port()
    with serve(spec(model, port)) as first:
        assert first.owned and first.kind == "transformers" and first.served_model is None
        found = probe(port)
        assert found.kind == "transformers" and found.models == [str(model)]  # the pin names the model
        with serve(spec(model, port, role="reference_judge")) as second:  # same model, same port: attached
            assert not second.owned and second.base_url == first.base_url and second.server is None
        assert first.server.alive()  # the attached user did not stop it
    assert not _port_in_use(port)  # the owner did


def test_port_held_by_a_server_of_another_model_is_named(tiny_server, tmp_path):
    with pytest.raises(ServerError) as e:
        with serve(spec(tmp_path / "other", tiny_server.port)):
            pass
    msg = str(e.value)
    assert msg.startswith(
        f"judge.endpoint.server: port {tiny_server.port} on 127.0.0.1 is held by a transformers "
        f"server of {tiny_server.model_path}, not {tmp_path / 'other'}"
    )
    assert tiny_server.alive()


@contextmanager
def not_a_model_server():
    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_port_held_by_something_else_is_named(tmp_path):
    with not_a_model_server() as port:
        with pytest.raises(
            ServerError,
            match=rf"teacher_thoughts\.endpoint\.server: port {port} on 127\.0\.0\.1 is "
            r"held by something else \(GET /health -> HTTP 404\)",
        ):
            with serve(spec(tmp_path, port, role="teacher")):
                pass


def test_attach_only_with_nothing_there(tmp_path):
    with pytest.raises(ServerError, match="nothing serves .* launch is 'none'"):
        with serve(spec(tmp_path, free_port(), launch="none")):
            pass


def test_failed_start_names_the_role_and_quotes_the_log(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ServerError) as e:
        with serve(spec(missing, free_port(), role="reference_judge", timeout=120)):
            pass
    msg = str(e.value)
    assert msg.startswith("reference_judge.endpoint.server: transformers server exited with code")
    assert "no-such-model" in msg.split("\n", 1)[1]  # the log's tail says what went wrong


def test_trained_policy_cannot_go_to_a_server_it_does_not_own(tiny_server, tiny_model, qwen_tok):
    ep = EngineParams(
        backend="openai", endpoint=EndpointParams(server=ServerParams(launch="transformers", port=tiny_server.port))
    )
    with pytest.raises(ServerError, match="not started by this stage and has no weight-reload API"):
        with engine_for(ep, tiny_model, qwen_tok, tiny_server.model_path, trains=True):
            pass
    with engine_for(ep, tiny_model, qwen_tok, tiny_server.model_path) as eng:  # sampling only: attached
        assert not eng.server.owned
    assert tiny_server.alive()


def test_sync_brings_an_owned_server_to_the_trained_weights(tiny_model_dir, tmp_path, qwen_tok):
    start, trained = serve_dir(tiny_model_dir, tmp_path / "start"), make_tiny_qwen3(seed=1)
    port = free_port()
    ep = EngineParams(
        backend="openai",
        batch_size=2,
        endpoint=EndpointParams(
            server=ServerParams(launch="transformers", port=port, startup_timeout_s=180, extra_args=list(CPU))
        ),
    )
    prompts = [qwen_tok.encode("The river runs"), qwen_tok.encode("In the north")]
    greedy = SamplingParams(max_new_tokens=6, temperature=0)
    want = [c[0].text for c in HFEngine(trained, qwen_tok).generate(prompts, greedy)]
    with engine_for(ep, None, qwen_tok, str(start), trains=True) as eng:
        before = [c[0].text for c in eng.generate(prompts, greedy)]
        eng.sync(trained, qwen_tok)
        scratch = Path(eng._weights_dir)
        assert probe(port).models == [str(scratch)]  # restarted on the trained weights, same port
        after = [c[0].text for c in eng.generate(prompts, greedy)]
    assert after == want != before
    assert not scratch.exists() and not _port_in_use(port)
