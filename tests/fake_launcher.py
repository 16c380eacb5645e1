"""A recording launcher for wiring tests: no process, no socket; it keeps the real launcher's rules.

It records every server a stage would start (role, launch kind, model, port) and every stop, attaches
when a server of the same model is already live on the port (as the real launcher does), and refuses
a live port held by another model with the same ServerError.
"""

from __future__ import annotations

from thinkmid.engines.launcher import ServerError
from thinkmid.engines.servers import Handle, ServerSpec, same_model


class RecordingLauncher:
    def __init__(self, already_serving: dict[int, str] | None = None):
        self.started: list[ServerSpec] = []
        self.stopped: list[ServerSpec] = []
        self.attached: list[ServerSpec] = []
        # port -> model served there by someone else (a hand-started server)
        self.live: dict[int, tuple[str, bool]] = {p: (m, False) for p, m in (already_serving or {}).items()}

    def acquire(self, spec: ServerSpec) -> Handle:
        if spec.port in self.live:
            model, _ = self.live[spec.port]
            if not same_model(spec.model, model):
                raise ServerError(
                    f"{spec.key}: port {spec.port} on 127.0.0.1 is held by a server of {model}, not {spec.model}"
                )
            self.attached.append(spec)
            return Handle(spec, spec.base_url, "default", owned=False, kind="sglang")
        if spec.launch == "none":
            raise ServerError(f"{spec.key}: nothing serves {spec.model} on 127.0.0.1:{spec.port}")
        self.started.append(spec)
        self.live[spec.port] = (spec.model, True)
        served = "default" if spec.launch == "sglang" else None
        return Handle(spec, spec.base_url, served, owned=True, kind=spec.launch)

    def release(self, handle: Handle) -> None:
        if handle.owned:
            self.stopped.append(handle.spec)
            del self.live[handle.spec.port]
