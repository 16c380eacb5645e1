"""Secrets and safe loading: an API key planted in the environment and echoed into error messages never
reaches MLflow (sqlite file or artifacts) or the stage's files; no pickle is loaded anywhere;
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


# THINKMID_API_KEY is recognised by its name; JUDGE_ACCESS_PHRASE is not, so HTTPClient must register it.
@pytest.mark.parametrize("env_name", ["THINKMID_API_KEY", "JUDGE_ACCESS_PHRASE"])
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
            tr.write_metrics(
                "reports/self_improve/metrics.json",
                {"judge_invalid_rate": judge.stats.invalid_rate, "last_error": verdicts[-1].error},
            )
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


# Modules whose loaders unpickle (run code from the file); importing one at all is an offence.
PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}
# Calls that unpickle unless told not to: name -> (keyword, the literal value that makes it safe).
GUARDED_CALLS = {
    "torch.load": ("weights_only", True),
    "torch.serialization.load": ("weights_only", True),
    "numpy.load": ("allow_pickle", False),
}
ALWAYS_UNSAFE = {"torch.jit.load", "pandas.read_pickle"}


def unsafe_loads(source: str, filename: str = "<src>") -> list[str]:
    """`file:line: what` for every pickle import and every unpickling call in `source`, following
    import aliases (`import pickle as p`, `from torch import load as L`, `import numpy as np`)."""
    tree = ast.parse(source, filename)
    names: dict[str, str] = {}  # local name -> dotted origin
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:  # `import a.b as x` binds x to a.b
                    names[a.asname] = a.name
                else:  # `import a.b` binds a
                    names[a.name.split(".")[0]] = a.name.split(".")[0]
                if a.name.split(".")[0] in PICKLE_MODULES:
                    found.append(f"{filename}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                origin = f"{node.module}.{a.name}"
                names[a.asname or a.name] = origin
                if node.module.split(".")[0] in PICKLE_MODULES or origin in PICKLE_MODULES | ALWAYS_UNSAFE:
                    found.append(f"{filename}:{node.lineno}: from {node.module} import {a.name}")

    def dotted(expr) -> str | None:
        if isinstance(expr, ast.Name):
            return names.get(expr.id, expr.id)
        if isinstance(expr, ast.Attribute):
            head = dotted(expr.value)
            return f"{head}.{expr.attr}" if head else None
        return None

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name is None:
            continue
        kw = {k.arg: k.value for k in node.keywords}
        if name in GUARDED_CALLS:
            key, safe = GUARDED_CALLS[name]
            value = kw.get(key)
            is_safe = isinstance(value, ast.Constant) and value.value is safe
            if name == "numpy.load" and value is None:
                is_safe = True  # numpy's default is allow_pickle=False
            if not is_safe:
                found.append(f"{filename}:{node.lineno}: {name} without {key}={safe}")
        elif name in ALWAYS_UNSAFE or name.split(".")[0] in PICKLE_MODULES:
            found.append(f"{filename}:{node.lineno}: {name}")
    return sorted(set(found))


BAD = {
    "torch.load(f)": "torch.load without",
    "torch.load(f, weights_only=False)": "torch.load without",
    "import torch as T\nT.load(f)": "torch.load without",
    "from torch import load\nload(f)": "torch.load without",
    "from torch import load as L\nL(f, map_location='cpu')": "torch.load without",
    "import torch.serialization\ntorch.serialization.load(f)": "torch.serialization.load without",
    "import pickle": "import pickle",
    "import pickle as p\np.loads(b)": "pickle.loads",
    "from pickle import loads\nloads(b)": "from pickle import loads",
    "import _pickle": "import _pickle",
    "import dill as d": "import dill",
    "import joblib": "import joblib",
    "import pandas as pd\npd.read_pickle(f)": "pandas.read_pickle",
    "import numpy as np\nnp.load(f, allow_pickle=True)": "numpy.load without",
    "import torch\ntorch.jit.load(f)": "torch.jit.load",
}
SAFE = [
    "import torch\ntorch.load(f, weights_only=True)",
    "from torch import load\nload(f, weights_only=True)",
    "import numpy as np\nnp.load(f)",
    "import json\njson.load(f)",
    "from safetensors.torch import load_file\nload_file(f)",
    "import yaml\nyaml.safe_load(f)",
]


@pytest.mark.parametrize("src", sorted(BAD))
def test_the_load_scan_catches_each_unsafe_form(src):
    found = unsafe_loads(src)
    assert found and any(BAD[src] in f for f in found), (src, found)


@pytest.mark.parametrize("src", SAFE)
def test_the_load_scan_passes_safe_loads(src):
    assert unsafe_loads(src) == []


def test_no_pickle_is_ever_loaded():
    """Every .py file of the project: no pickle module, torch.load only with weights_only=True."""
    scanned, offenders = [], []
    for path in _py_files():
        scanned.append(path.relative_to(ROOT).as_posix())
        offenders += unsafe_loads(path.read_text(encoding="utf-8"), scanned[-1])
    # The scan really read the project: the files that load weights are among those scanned.
    assert {"thinkmid/train/checkpoint.py", "thinkmid/models/load.py", "stages/sft.py"} <= set(scanned)
    assert len(scanned) > 50, scanned
    assert not offenders, f"unsafe loads (use safetensors, or torch.load(..., weights_only=True)): {offenders}"


def test_trust_remote_code_is_off_by_default():
    from thinkmid.models.load import load_model

    assert BaseModelParams().trust_remote_code is False
    assert parse_params("profile: x\n").base.trust_remote_code is False
    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False
    for path in _py_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), (
                    f"{path.relative_to(ROOT)}:{node.value.lineno}: trust_remote_code=True"
                )


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
    listening = {
        line.split()[1]
        for line in tcp.read_text().splitlines()[1:]
        if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"
    }
    assert listening == {f"0100007F:{port}"}  # the real server listens on 127.0.0.1 only
    v6 = Path("/proc/net/tcp6")
    if v6.exists():
        assert not [
            line
            for line in v6.read_text().splitlines()[1:]
            if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"
        ]
