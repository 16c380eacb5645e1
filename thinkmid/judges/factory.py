"""Build judges from a `judge` / `reference_judge` params section (backend: lm | endpoint | lexical)."""

from __future__ import annotations

from thinkmid.errors import InputError
from thinkmid.judges.base import PairwiseJudge, ReferenceJudge


def _lm_model(judge_params, model, tokenizer):
    """The base model passed in (`model: base`), or the model dir at `model_path`."""
    if getattr(judge_params, "model", "base") == "path":
        path = getattr(judge_params, "model_path", None)
        if not path:
            raise InputError("judge.model is 'path' but judge.model_path is not set")
        from thinkmid.models.load import load_model

        return load_model(path)
    if model is None or tokenizer is None:
        raise InputError("judge backend 'lm' with model 'base' needs the base model and tokenizer")
    return model, tokenizer


def make_pairwise_judge(judge_params, model=None, tokenizer=None, concurrency: int = 8) -> PairwiseJudge:
    backend = judge_params.backend
    if backend == "lm":
        from thinkmid.judges.lm import LMPairwiseJudge

        m, t = _lm_model(judge_params, model, tokenizer)
        return LMPairwiseJudge(m, t, calibrate=judge_params.calibrate, batch_size=getattr(judge_params, "batch_size", 8))
    if backend == "likelihood":
        from thinkmid.judges.likelihood import LikelihoodPairwiseJudge

        m, t = _lm_model(judge_params, model, tokenizer)
        return LikelihoodPairwiseJudge(m, t, batch_size=getattr(judge_params, "batch_size", 8))
    if backend == "endpoint":
        from thinkmid.judges.endpoint import EndpointPairwiseJudge

        return EndpointPairwiseJudge.from_params(judge_params.endpoint, concurrency=concurrency, **_decoding(judge_params))
    if backend == "lexical":
        raise InputError("judge.backend 'lexical' has no pairwise judge (nothing to compare against); use lm or endpoint")
    raise InputError(f"unknown judge backend {backend!r}")


def make_reference_judge(judge_params, model=None, tokenizer=None, concurrency: int = 8) -> ReferenceJudge:
    backend = judge_params.backend
    if backend == "lexical":
        from thinkmid.judges.lexical import LexicalReferenceJudge

        return LexicalReferenceJudge(judge_params.lexical_threshold, getattr(judge_params, "lexical_metric", "f1"))
    if backend == "lm":
        from thinkmid.judges.lm import LMReferenceJudge

        m, t = _lm_model(judge_params, model, tokenizer)
        return LMReferenceJudge(m, t, calibrate=judge_params.calibrate, batch_size=getattr(judge_params, "batch_size", 8))
    if backend == "endpoint":
        from thinkmid.judges.endpoint import EndpointReferenceJudge

        return EndpointReferenceJudge.from_params(judge_params.endpoint, concurrency=concurrency,
                                                  **_decoding(judge_params))  # fmt: skip
    raise InputError(f"unknown judge backend {backend!r}")


def _decoding(judge_params) -> dict:
    """The verdict's decoding for an endpoint judge (the seed: T 0.7, top_p 0.6, 64 tokens)."""
    return {k: getattr(judge_params, k) for k in ("temperature", "top_p", "max_tokens") if hasattr(judge_params, k)}


def reference_judge_for(params):
    """The reference judge, built once and shared by every arm. An `lm` judge with `model: base` judges
    with models/base, never with the arm being measured (the policy must not grade itself)."""
    rj = params.reference_judge
    model = tok = None
    if rj.backend == "lm" and rj.model == "base":
        from thinkmid.engines.factory import pick_device
        from thinkmid.models.load import load_model

        model, tok = load_model("models/base", dtype=params.base.dtype)
        model.to(pick_device())
    return make_reference_judge(rj, model, tok, concurrency=params.engine.batch_size)
