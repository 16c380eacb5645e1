"""Build the generation engine that params.engine asks for, around a policy model."""

from __future__ import annotations

import contextlib
import os

from thinkmid.engines.launcher import ServerError


def pick_device() -> str:
    import torch

    return os.environ.get("THINKMID_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def engine_for(
    engine_params, model, tokenizer, model_dir: str | None = None, progress: bool = True, trains: bool = False
):
    """`hf`: in-process on `model`. `openai`: the policy server (port engine.endpoint.server.port, 30000
    by default) serving `model_dir`, attached when one already serves it, else started on 127.0.0.1 and
    stopped on exit (thinkmid/engines/servers.py).

    `trains`: the stage will call `engine.sync(model, tokenizer)` after updates, so the server must take
    new weights: SGLang (update_weights_from_disk) or a server this stage started (restarted on them).
    """
    if engine_params.backend == "hf":
        from thinkmid.engines.hf import HFEngine

        yield HFEngine(model, tokenizer, batch_size=engine_params.batch_size, progress=progress)
        return
    from thinkmid.engines.openai import OpenAIEngine
    from thinkmid.engines.servers import serve, spec_for

    if model_dir is None:
        raise ValueError("engine.backend 'openai' needs the model dir the policy server is to serve")
    ep = engine_params.endpoint
    with serve(spec_for("policy", ep, str(model_dir))) as handle:
        if trains and not handle.owned and handle.kind != "sglang":
            raise ServerError(
                f"{handle.spec.key}: the {handle.kind} server on port {handle.spec.port} was not started by this "
                f"stage and has no weight-reload API, so the trained policy cannot reach it; stop it and let the "
                f"stage start its own"
            )
        eng = OpenAIEngine(
            handle.base_url,
            handle.served_model,
            tokenizer,
            ep.api_key_env,
            ep.timeout_s,
            ep.max_retries,
            ep.backoff_s,
            engine_params.batch_size,
            server=handle,
        )
        try:
            yield eng
        finally:
            eng.close()
