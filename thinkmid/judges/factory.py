"""Build judges from a `judge` / `reference_judge` params section (backend: lm | likelihood | endpoint |
lexical | inprocess)."""

from __future__ import annotations

import contextlib

from thinkmid.errors import InputError
from thinkmid.judges.base import PairwiseJudge, ReferenceJudge


def load_judge_model(judge_params, dtype: str = "float32", role: str = "judge"):
    """(model, tokenizer) on the CPU: `model: path` from the dir at model_path; `model: hub` hub_id at
    revision through the base model's hub loader (the hub or its cache; HF_HUB_OFFLINE=1: cache only)."""
    if judge_params.model == "hub":
        from thinkmid.config import BaseModelParams
        from thinkmid.models.load import load_base

        spec = BaseModelParams(source="hub", hub_id=judge_params.hub_id, revision=judge_params.revision, dtype=dtype)
        return load_base(spec, key=f"{role}.hub_id")
    path = getattr(judge_params, "model_path", None)
    if not path:
        raise InputError(f"{role}.model is 'path' but {role}.model_path is not set")
    from thinkmid.models.load import load_model

    return load_model(path, dtype=dtype)


def _lm_model(judge_params, model, tokenizer):
    """The base model passed in (`model: base`), or the model at `model_path` / `hub_id`."""
    if getattr(judge_params, "model", "base") in ("path", "hub"):
        return load_judge_model(judge_params)
    if model is None or tokenizer is None:
        raise InputError("judge backend 'lm' with model 'base' needs the base model and tokenizer")
    return model, tokenizer


def make_pairwise_judge(judge_params, model=None, tokenizer=None, concurrency: int = 8, server=None) -> PairwiseJudge:
    backend = judge_params.backend
    if backend == "lm":
        from thinkmid.judges.lm import LMPairwiseJudge

        m, t = _lm_model(judge_params, model, tokenizer)
        return LMPairwiseJudge(
            m, t, calibrate=judge_params.calibrate, batch_size=getattr(judge_params, "batch_size", 8)
        )
    if backend == "likelihood":
        from thinkmid.judges.likelihood import LikelihoodPairwiseJudge

        m, t = _lm_model(judge_params, model, tokenizer)
        return LikelihoodPairwiseJudge(m, t, batch_size=getattr(judge_params, "batch_size", 8))
    if backend == "endpoint":
        from thinkmid.judges.endpoint import EndpointPairwiseJudge

        return EndpointPairwiseJudge.from_params(
            judge_params.endpoint, concurrency=concurrency, server=server, role="judge", **_decoding(judge_params)
        )
    if backend == "inprocess":  # the judge model on the GPU, shared-prefix scoring (judges/inprocess.py)
        from thinkmid.judges import inprocess

        return inprocess.from_params("pairwise", judge_params, model, tokenizer)
    if backend == "lexical":
        raise InputError(
            "judge.backend 'lexical' has no pairwise judge (nothing to compare against); use lm or endpoint"
        )
    raise InputError(f"unknown judge backend {backend!r}")


def make_reference_judge(judge_params, model=None, tokenizer=None, concurrency: int = 8, server=None) -> ReferenceJudge:
    backend = judge_params.backend
    if backend == "lexical":
        from thinkmid.judges.lexical import LexicalReferenceJudge

        return LexicalReferenceJudge(judge_params.lexical_threshold, getattr(judge_params, "lexical_metric", "f1"))
    if backend == "lm":
        from thinkmid.judges.lm import LMReferenceJudge

        m, t = _lm_model(judge_params, model, tokenizer)
        return LMReferenceJudge(
            m, t, calibrate=judge_params.calibrate, batch_size=getattr(judge_params, "batch_size", 8)
        )
    if backend == "endpoint":
        from thinkmid.judges.endpoint import EndpointReferenceJudge

        return EndpointReferenceJudge.from_params(
            judge_params.endpoint,
            concurrency=concurrency,
            server=server,
            role="reference_judge",
            **_decoding(judge_params),
        )
    if backend == "inprocess":  # the judge model on the GPU, shared-prefix scoring (judges/inprocess.py)
        from thinkmid.judges import inprocess

        return inprocess.from_params("reference", judge_params, model, tokenizer)
    raise InputError(f"unknown judge backend {backend!r}")


def judge_model(judge_params) -> str:
    """The model a judge role serves: `endpoint.server.model`, else `model_path`, else `hub_id`, else models/base."""
    jp = judge_params
    return jp.endpoint.server.model or getattr(jp, "model_path", None) or getattr(jp, "hub_id", None) or "models/base"


def _decoding(judge_params) -> dict:
    """The verdict's decoding for an endpoint judge (the seed: T 0.7, top_p 0.6, 64 tokens)."""
    return {k: getattr(judge_params, k) for k in ("temperature", "top_p", "max_tokens") if hasattr(judge_params, k)}


def judge_server_spec(judge_params, role: str):
    """The local server a judge role needs (servers.ServerSpec), or None (in-process or external)."""
    if judge_params.backend != "endpoint":
        return None
    from thinkmid.engines.servers import spec_for

    return spec_for(role, judge_params.endpoint, judge_model(judge_params))


@contextlib.contextmanager
def pairwise_judge_for(params, model=None, tokenizer=None):
    """The Phase 3 pairwise judge for the block. `endpoint`: its server (port 30001 by default) is
    attached or started first and stopped after, if started here; `lm`/`likelihood` judge with `model`."""
    from thinkmid.engines.servers import serve

    with serve(judge_server_spec(params.judge, "judge")) as handle:
        judge = make_pairwise_judge(params.judge, model, tokenizer, concurrency=params.engine.batch_size, server=handle)
        try:
            yield judge
        finally:
            _close(judge)


@contextlib.contextmanager
def reference_judge_for(params):
    """The reference judge for the block, built once and shared by every arm. `endpoint`: its server
    (port 30002 by default) is attached or started first. An `lm` judge with `model: base` judges with
    models/base, never with the arm being measured (the policy must not grade itself)."""
    from thinkmid.engines.servers import serve

    rj = params.reference_judge
    with serve(judge_server_spec(rj, "reference_judge")) as handle:
        model = tok = None
        if rj.backend in ("lm", "inprocess") and rj.model == "base":
            from thinkmid.engines.factory import pick_device
            from thinkmid.models.load import load_model

            model, tok = load_model("models/base", dtype=params.base.dtype)
            model.to(pick_device())
        judge = make_reference_judge(rj, model, tok, concurrency=params.engine.batch_size, server=handle)
        try:
            yield judge
        finally:
            _close(judge)


def _close(judge) -> None:
    close = getattr(judge, "close", None)
    if callable(close):
        close()
