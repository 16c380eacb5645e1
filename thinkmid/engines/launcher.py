"""Start, health-check and stop a local OpenAI-compatible server on 127.0.0.1.

    with LocalServer("transformers", "models/base", port=free_port()) as srv:
        engine = OpenAIEngine(srv.base_url, srv.served_model, tokenizer, server=srv)

Stages do not use it directly: thinkmid/engines/servers.py gives each role its server (attach or start).

`sglang` runs `python -m sglang.launch_server` (GPU boxes); `transformers` runs `transformers serve`
(CPU here; needs the `serve` extra: fastapi, uvicorn, rich). The server lives in its own process
group so that stopping it also stops its workers; its output goes to a log file whose last lines are
quoted when it dies or does not become healthy in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import httpx

from thinkmid.errors import InputError

HOST = "127.0.0.1"  # never bind a public interface


class ServerError(RuntimeError):
    """The local server could not start, died, or did not become healthy in time."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tail(path: str | os.PathLike, n: int = 30) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class LocalServer:
    def __init__(
        self,
        kind: Literal["sglang", "transformers"],
        model_path: str | os.PathLike,
        port: int | None = None,
        startup_timeout_s: float = 600.0,
        extra_args: list[str] | tuple[str, ...] = (),
        log_path: str | os.PathLike | None = None,
    ):
        if kind not in ("sglang", "transformers"):
            raise ValueError(f"unknown server kind {kind!r} (expected 'sglang' or 'transformers')")
        if any(a == "--host" or a.startswith("--host=") for a in extra_args):
            raise InputError(
                f"server extra_args {list(extra_args)}: --host is not allowed; local servers bind {HOST} only"
            )
        self.kind = kind
        self.model_path = str(model_path)
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = list(extra_args)
        self._own_log = log_path is None
        self.log_path: Path | None = Path(log_path) if log_path else None  # a temp file on start
        self.proc: subprocess.Popen | None = None

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def served_model(self) -> str | None:
        """The `model` to send: SGLang serves it as "default"; `transformers serve` is pinned to the
        path it was started with and rejects other names, so the field is left out (None)."""
        return "default" if self.kind == "sglang" else None

    def command(self) -> list[str]:
        if self.kind == "sglang":
            return [
                sys.executable,
                "-m",
                "sglang.launch_server",
                "--model-path",
                self.model_path,
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--served-model-name",
                "default",
                *self.extra_args,
            ]
        return [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            self.model_path,
            "--host",
            HOST,
            "--port",
            str(self.port),
            *self.extra_args,
        ]

    def start(self) -> LocalServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        if _port_in_use(self.port):
            raise ServerError(f"port {self.port} on {HOST} is already in use; pick another (free_port())")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"thinkmid-{self.kind}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "ab") as log:
            # own session = own process group, so stop() reaches the server's worker processes too
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.root_url}/health"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServerError(
                    f"{self.kind} server exited with code {code} before becoming healthy "
                    f"(log {self.log_path}):\n{tail(self.log_path)}"
                )
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"{self.kind} server not healthy at {url} after {self.startup_timeout_s:.0f}s "
                    f"(log {self.log_path}):\n{tail(self.log_path)}"
                )
            time.sleep(0.25)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after `grace_s`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace_s)
        _signal_group(proc.pid, signal.SIGKILL)  # stray workers left in the group, if any

    def restart(self, model_path: str | os.PathLike | None = None) -> LocalServer:
        """Stop and start again (fault tests; reloading weights on servers without a reload API)."""
        self.stop()
        if model_path is not None:
            self.model_path = str(model_path)
        return self.start()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_log and exc[0] is None and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)  # keep the log when something went wrong


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the group id is the server's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((HOST, port)) == 0
