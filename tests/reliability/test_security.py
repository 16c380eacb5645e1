"""Secrets and safe loading: an API key planted in the environment and echoed into error messages never
reaches MLflow (sqlite file or artifacts) or the stage's files; torch.load is weights_only everywhere;
trust_remote_code is off by default; local servers bind 127.0.0.1 only."""

from __future__ import annotations

import ast
import inspect
import json
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from reliability_lab import ROOT

from thinkmid.config import BaseModelParams, parse_params


class Echo(BaseHTTPRequestHandler):
    """A verbose server that quotes the request's Authorization header in its error bodies."""

    calls = 0

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).calls += 1
        status = 500 if type(self).calls % 2 else 401  # a retried 5xx, then a final 401
        body = json.dumps({"error": f"bad credentials: {self.headers.get('Authorization')}"}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def echo_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), type("E", (Echo,), {"calls": 0}))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()


# THINKMID_API_KEY is recognised by its name; JUDGE_CREDENTIAL is not, so HTTPClient must register it.
@pytest.mark.parametrize("env_name", ["THINKMID_API_KEY", "JUDGE_CREDENTIAL"])
def test_planted_key_never_reaches_mlflow(env_name, tmp_path, monkeypatch):
    from thinkmid.io import write_jsonl
    from thinkmid.judges.factory import make_pairwise_judge
    from thinkmid.track import StageRun

    key = f"sk-planted-{secrets.token_hex(12)}"
    monkeypatch.setenv(env_name, key)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    with echo_server() as url:
        params = parse_params(
            f"profile: micro\ntracking: {{experiment: secrets}}\n"
            f"judge: {{backend: endpoint, endpoint: {{base_url: '{url}', api_key_env: {env_name}, "
            f"max_retries: 1, backoff_s: 0.01, timeout_s: 5}}}}\n"
        )
        with pytest.raises(RuntimeError, match="judge failed"), StageRun("self_improve", params) as tr:
            judge = make_pairwise_judge(params.judge)
            verdicts = judge.judge_pairs([("The sea", " is calm.", " is blue."), ("The hill", " is green.", " .")])
            assert all(v.winner is None and "bad credentials" in v.error for v in verdicts)
            write_jsonl("reports/self_improve/verdicts.jsonl", [{"error": v.error} for v in verdicts])
            tr.log_artifact("reports/self_improve/verdicts.jsonl")
            tr.write_metrics("reports/self_improve/metrics.json",
                             {"judge_invalid_rate": judge.stats.invalid_rate, "last_error": verdicts[-1].error})
            tr.log_metrics({"invalid_judgments": judge.stats.invalid}, step=0)
            raise RuntimeError(f"judge failed: {verdicts[-1].error} (key was {key})")  # key in the message

    con = sqlite3.connect(db)
    status, artifact_uri = con.execute("select status, artifact_uri from runs").fetchone()
    error_tag = con.execute("select value from tags where key = 'error'").fetchone()[0]
    con.close()
    assert status == "FAILED" and "***" in error_tag  # the error was logged, scrubbed
    art = Path(artifact_uri.removeprefix("file://"))
    logged = [p for p in art.rglob("*") if p.is_file()]
    assert {p.name for p in logged} >= {"verdicts.jsonl", "metrics.json"}
    assert "***" in (art / "self_improve" / "verdicts.jsonl").read_text()
    everything = [p for p in tmp_path.rglob("*") if p.is_file()]  # the db (+ journals), artifacts, outputs
    assert db in everything and set(logged) <= set(everything)
    leaks = [str(p) for p in everything if key.encode() in p.read_bytes()]
    assert not leaks, leaks


def _py_files():
    for top in ("thinkmid", "stages", "tests", "scripts", "benchmarks"):
        yield from (ROOT / top).rglob("*.py")


def test_every_torch_load_is_weights_only():
    offenders, seen = [], 0
    for path in _py_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("torch", "pickle"):  # fmt: skip
                seen += 1
                kw = {k.arg: k.value for k in node.keywords}
                ok = node.func.value.id == "torch" and isinstance(kw.get("weights_only"), ast.Constant) \
                    and kw["weights_only"].value is True  # fmt: skip
                if not ok:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"unsafe loads (need torch.load(..., weights_only=True)): {offenders}"


def test_trust_remote_code_is_off_by_default():
    from thinkmid.models.load import load_model

    assert BaseModelParams().trust_remote_code is False
    assert parse_params("profile: x\n").base.trust_remote_code is False
    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False
    for path in _py_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), \
                    f"{path.relative_to(ROOT)}:{node.value.lineno}: trust_remote_code=True"  # fmt: skip


def test_local_server_binds_loopback_only(tiny_server):
    from thinkmid.engines.launcher import LocalServer
    from thinkmid.errors import InputError

    for kind in ("sglang", "transformers"):
        cmd = LocalServer(kind, "m", port=30001).command()
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd.count("--host") == 1
    for bad in (["--host", "0.0.0.0"], ["--host=0.0.0.0"]):  # params' extra_args cannot widen it
        with pytest.raises(InputError, match="--host is not allowed"):
            LocalServer("transformers", "m", extra_args=bad)
    tcp = Path("/proc/net/tcp")
    if not tcp.exists():
        pytest.skip("no /proc/net/tcp here")
    port = f"{tiny_server.port:04X}"
    listening = {line.split()[1] for line in tcp.read_text().splitlines()[1:]
                 if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"}  # fmt: skip
    assert listening == {f"0100007F:{port}"}  # the real server listens on 127.0.0.1 only
    v6 = Path("/proc/net/tcp6")
    if v6.exists():
        assert not [line for line in v6.read_text().splitlines()[1:]
                    if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"]  # fmt: skip
