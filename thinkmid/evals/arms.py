"""What the reward gate and the thought probe stages share: every gate arm's model dir checked before any
work, and one arm's model loaded onto the device and freed after it."""

from __future__ import annotations


def missing_arm_dirs(arms: dict[str, str]) -> list[str]:
    from pathlib import Path

    return [d for d in arms.values() if not (Path(d) / "config.json").exists()]


def require_arm_dirs(arms: dict[str, str]) -> None:
    """One InputError naming every missing arm model dir (arms: arm -> model dir), before any work."""
    from thinkmid.errors import InputError

    missing = missing_arm_dirs(arms)
    if missing:
        also = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise InputError(f"{missing[0]}: model dir not found{also}; run the sft and rlmt stages first")


def load_arm(params, arm: str):
    """(model on the device, tokenizer, model dir) for one arm."""
    from thinkmid.engines.factory import pick_device
    from thinkmid.models.load import load_model

    path = params.arms.gate[arm]
    model, tok = load_model(path, dtype=params.base.dtype, trust_remote_code=params.base.trust_remote_code)
    model.to(pick_device())
    return model, tok, path


def free_memory() -> None:
    """Call after the function holding an arm's model has returned. On CPU refcounting has already
    freed the weights (the models hold no reference cycles); on a GPU also collect and empty the cache."""
    import torch

    if torch.cuda.is_available():
        import gc

        gc.collect()
        torch.cuda.empty_cache()
