"""One owner and one lifecycle for every local server a stage uses.

Each role has its own port and model: the policy engine (port 30000, the stage's own model), the
pairwise judge (30001), the reference judge (30002) and the teacher (30003), each serving its
`server.model` (default: models/base). A stage asks for a role's server with

    with serve(spec) as handle:            # spec = spec_for("judge", params.judge.endpoint, "models/base")
        client = HTTPClient(handle.base_url, ...)

which attaches to a healthy server already serving that model on that port (probed: SGLang's
/get_model_info, the path a `transformers serve` is pinned to, vLLM's /v1/models), else starts one
on 127.0.0.1 (`server.launch`), logs which of the two it did, and stops on exit only what it
started. A port held by anything else is one ServerError naming the port and what holds it; a
server that dies or never gets healthy is one ServerError with the tail of its log. Tests swap
the process launcher for a recording fake (`use_launcher`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass, field

import httpx

from thinkmid.engines.launcher import HOST, LocalServer, ServerError, _port_in_use

log = logging.getLogger("thinkmid.servers")

ROLE_PORTS = {"policy": 30000, "judge": 30001, "reference_judge": 30002, "teacher": 30003}
ROLE_KEYS = {"policy": "engine", "judge": "judge", "reference_judge": "reference_judge", "teacher": "teacher_thoughts"}
PROBE_MODEL = "thinkmid-which-model-is-served"  # a name no server serves: a pinned one answers with its own


@dataclass(frozen=True)
class ServerSpec:
    """What one role needs: `model` served on 127.0.0.1:`port`, started with `launch` if absent."""

    role: str
    launch: str  # "none" (attach only) | "sglang" | "transformers"
    model: str
    port: int
    extra_args: tuple[str, ...] = ()
    startup_timeout_s: float = 600.0

    @property
    def key(self) -> str:
        return f"{ROLE_KEYS[self.role]}.endpoint.server"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


@dataclass
class Handle:
    """A server a stage uses: where it is, the `model` field to send, and whether this stage owns it."""

    spec: ServerSpec
    base_url: str
    served_model: str | None  # None: leave the request's `model` field out (a pinned `transformers serve`)
    owned: bool
    kind: str  # "sglang" | "transformers" | "vllm" | "unknown"
    server: LocalServer | None = None  # the process, when owned (a restart reloads weights)
    extra: dict = field(default_factory=dict)


def spec_for(role: str, endpoint, default_model: str) -> ServerSpec | None:
    """The server a role's `endpoint` params ask for; None for an external endpoint (`base_url` set)."""
    if role not in ROLE_PORTS:
        raise ValueError(f"unknown server role {role!r}; expected one of {sorted(ROLE_PORTS)}")
    if endpoint.base_url is not None:
        return None
    srv = endpoint.server
    return ServerSpec(
        role,
        srv.launch,
        str(srv.model or default_model),
        srv.port or ROLE_PORTS[role],
        tuple(srv.extra_args),
        srv.startup_timeout_s,
    )


def same_model(want: str, got: str) -> bool:
    """A hub id matches itself; a local dir matches any spelling of its real path."""

    def norm(x: str) -> str:
        return os.path.realpath(x) if os.path.exists(x) else x.rstrip("/")

    return want == got or norm(want) == norm(got)


@dataclass
class Probe:
    healthy: bool
    kind: str = "unknown"
    models: list[str] = field(default_factory=list)  # model paths / ids the server says it serves
    request_model: str | None = None  # the name to send in requests
    detail: str = ""


def probe(port: int, timeout_s: float = 5.0) -> Probe:
    """Ask whatever listens on 127.0.0.1:`port` whether it is a healthy server and what it serves."""
    root = f"http://{HOST}:{port}"
    with httpx.Client(timeout=timeout_s) as http:
        try:
            r = http.get(f"{root}/health")
        except httpx.HTTPError as e:
            return Probe(False, detail=f"no HTTP answer ({type(e).__name__})")
        if r.status_code != 200:
            return Probe(False, detail=f"GET /health -> HTTP {r.status_code}")
        for path in ("/get_model_info", "/model_info"):  # SGLang (the second name in newer releases)
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = http.get(f"{root}{path}")
                if r.status_code == 200 and isinstance(r.json(), dict) and r.json().get("model_path"):
                    names = _model_ids(http, root)
                    return Probe(True, "sglang", [str(r.json()["model_path"])], names[0] if names else "default")
        with contextlib.suppress(httpx.HTTPError, ValueError):  # `transformers serve <model>` names its pin
            r = http.post(f"{root}/v1/completions", json={"model": PROBE_MODEL, "prompt": "", "max_tokens": 1})
            m = re.search(r"pinned to '([^']+)'", r.text)
            if m:
                return Probe(True, "transformers", [m.group(1)], None)
        with contextlib.suppress(httpx.HTTPError, ValueError):  # vLLM and others: /v1/models
            r = http.get(f"{root}/v1/models")
            data = r.json().get("data", []) if r.status_code == 200 else []
            models = [str(d[k]) for d in data for k in ("id", "root") if isinstance(d, dict) and d.get(k)]
            if models:
                return Probe(True, "vllm", models, str(data[0].get("id")))
    return Probe(True, detail="healthy, but it does not say which model it serves")


def _model_ids(http: httpx.Client, root: str) -> list[str]:
    with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
        r = http.get(f"{root}/v1/models")
        return [str(d["id"]) for d in r.json().get("data", []) if isinstance(d, dict) and "id" in d]
    return []


class ProcessLauncher:
    """Attach to a healthy server of the right model, or start one as a child process group."""

    def acquire(self, spec: ServerSpec) -> Handle:
        where = f"{HOST}:{spec.port}"
        if _port_in_use(spec.port):
            found = probe(spec.port)
            if not found.healthy:
                raise ServerError(
                    f"{spec.key}: port {spec.port} on {HOST} is held by something else ({found.detail}), "
                    f"not a server of {spec.model}; free the port or set {spec.key}.port"
                )
            if not any(same_model(spec.model, m) for m in found.models):
                what = ", ".join(found.models) or found.detail
                raise ServerError(
                    f"{spec.key}: port {spec.port} on {HOST} is held by a {found.kind} server of "
                    f"{what}, not {spec.model}; stop it or set {spec.key}.port"
                )
            log.info(
                "%s: attached to the %s server already serving %s on %s (not started here, left running)",
                spec.role,
                found.kind,
                spec.model,
                where,
            )
            return Handle(spec, spec.base_url, found.request_model, owned=False, kind=found.kind)
        if spec.launch == "none":
            raise ServerError(
                f"{spec.key}: nothing serves {spec.model} on {where} and launch is 'none' (attach only); "
                f"start it there or set {spec.key}.launch"
            )
        srv = LocalServer(
            spec.launch,
            spec.model,
            port=spec.port,
            startup_timeout_s=spec.startup_timeout_s,
            extra_args=list(spec.extra_args),
        )
        try:
            srv.start()
        except ServerError as e:
            raise ServerError(f"{spec.key}: {e}") from None
        log.info(
            "%s: started a %s server of %s on %s (stopped when the stage ends)",
            spec.role,
            spec.launch,
            spec.model,
            where,
        )
        return Handle(spec, srv.base_url, srv.served_model, owned=True, kind=spec.launch, server=srv)

    def release(self, handle: Handle) -> None:
        if handle.owned and handle.server is not None:
            handle.server.stop()
            if handle.server.log_path is not None and handle.server._own_log:
                handle.server.log_path.unlink(missing_ok=True)


_launcher: list = [ProcessLauncher()]


def launcher():
    return _launcher[-1]


@contextlib.contextmanager
def use_launcher(fake):
    """Route every `serve` in the block through `fake` (tests: no real process)."""
    _launcher.append(fake)
    try:
        yield fake
    finally:
        _launcher.remove(fake)


@contextlib.contextmanager
def serve(spec: ServerSpec | None):
    """The role's server for the block (None for an external endpoint); stops it only if started here."""
    if spec is None:
        yield None
        return
    lau = launcher()
    handle = lau.acquire(spec)
    try:
        yield handle
    finally:
        lau.release(handle)
