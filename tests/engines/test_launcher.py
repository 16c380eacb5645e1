import os
import socket

import pytest
from serve_fixtures import serve_dir

from thinkmid.engines.base import SamplingParams
from thinkmid.engines.launcher import LocalServer, ServerError, free_port
from thinkmid.engines.openai import OpenAIEngine


def _listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_free_port_is_bindable():
    p = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", p))


def test_commands_bind_localhost_only(tmp_path):
    sg = LocalServer("sglang", tmp_path, port=31234).command()
    assert sg[1:3] == ["-m", "sglang.launch_server"] and "--served-model-name" in sg
    tf = LocalServer("transformers", tmp_path, port=31234, extra_args=["--device", "cpu"]).command()
    assert tf[-2:] == ["--device", "cpu"]
    for cmd in (sg, tf):
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "31234"
    with pytest.raises(ValueError):
        LocalServer("vllm", tmp_path)


def test_dying_server_reports_its_log(tmp_path):
    srv = LocalServer(
        "transformers", tmp_path, extra_args=["--no-such-flag"], startup_timeout_s=120, log_path=tmp_path / "server.log"
    )
    with pytest.raises(ServerError, match="exited with code") as e:
        srv.start()
    assert "no-such-flag" in str(e.value)


def test_start_restart_update_weights_stop(tiny_model_dir, tmp_path, qwen_tok):
    model = serve_dir(tiny_model_dir, tmp_path / "m")
    srv = LocalServer("transformers", model, startup_timeout_s=180, extra_args=["--device", "cpu"])
    with srv:
        pid = srv.proc.pid
        assert _listening(srv.port)
        with pytest.raises(ServerError, match="already in use"):
            LocalServer("transformers", model, port=srv.port).start()
        eng = OpenAIEngine(srv.base_url, srv.served_model, qwen_tok, max_retries=0, server=srv)
        eng.update_weights(str(model))  # no reload API on `transformers serve`: restart via the launcher
        assert srv.alive() and srv.proc.pid != pid
        out = eng.generate([qwen_tok.encode("Hello")], SamplingParams(max_new_tokens=3, temperature=0))
        assert len(out[0][0].token_ids) == 3
        eng.close()
        pid = srv.proc.pid
    assert not srv.alive() and not _listening(srv.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone


def test_startup_timeout_stops_the_server(tiny_model_dir, tmp_path):
    srv = LocalServer(
        "transformers",
        tiny_model_dir,
        startup_timeout_s=0.5,
        extra_args=["--device", "cpu"],
        log_path=tmp_path / "server.log",
    )
    with pytest.raises(ServerError, match="not healthy"):
        srv.start()
    assert srv.proc is None and not _listening(srv.port)
