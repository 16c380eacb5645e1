"""Build the generation engine that params.engine asks for, around a policy model."""

from __future__ import annotations

import contextlib
import os


def pick_device() -> str:
    import torch

    return os.environ.get("THINKMID_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def engine_for(engine_params, model, tokenizer, model_dir: str | None = None, progress: bool = True):
    """`hf`: in-process on `model`. `openai`: an OpenAI-compatible server, launched on 127.0.0.1
    from `model_dir` when engine.endpoint.server.launch is set, stopped on exit."""
    if engine_params.backend == "hf":
        from thinkmid.engines.hf import HFEngine

        yield HFEngine(model, tokenizer, batch_size=engine_params.batch_size, progress=progress)
        return
    from thinkmid.engines.launcher import server_from_params
    from thinkmid.engines.openai import OpenAIEngine

    ep = engine_params.endpoint
    server = server_from_params(ep.server, model_dir) if model_dir else None
    with server if server is not None else contextlib.nullcontext():
        eng = OpenAIEngine.from_params(ep, tokenizer, server=server, concurrency=engine_params.batch_size)
        try:
            yield eng
        finally:
            eng.close()


@contextlib.contextmanager
def serving(endpoint_params, model_path: str | None):
    """Start the local server an endpoint's params ask for (if any) for the duration of a block."""
    from thinkmid.engines.launcher import server_from_params

    server = server_from_params(endpoint_params.server, model_path) if model_path else None
    with server if server is not None else contextlib.nullcontext():
        yield server
