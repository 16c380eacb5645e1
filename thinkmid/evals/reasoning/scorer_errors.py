"""Scorer exceptions are counted, never silently read as "wrong".

A scorer that raises on every sample (math-verify's signal-based timeout off the main thread, a
renamed field, a broken install) would otherwise score a benchmark 0% with no word. The scorers'
own broad `except` blocks call `note(e)`; `guarded(score, ...)` runs one sample's scoring and says
whether anything raised (inside those blocks or out of the scorer itself, which then scores False);
`check(benchmark, errors, samples)` fails the benchmark when every sample raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_seen = {"count": 0, "first": None}


def note(exc: BaseException) -> None:
    """Record an exception a scorer caught and turned into "wrong"."""
    _seen["count"] += 1
    if _seen["first"] is None:
        _seen["first"] = f"{type(exc).__name__}: {str(exc)[:200]}"


def guarded(score: Callable, *args, **kwargs) -> tuple[object, bool]:
    """(score's result, whether anything raised while scoring); a scorer that raises gives (False, None)."""
    before = _seen["count"]
    try:
        result = score(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - counted and reported by check(), not hidden
        note(e)
        result = (False, None)
    return result, _seen["count"] > before


def check(benchmark: str, errors: int, samples: int) -> None:
    """Raise when every one of a benchmark's samples raised in its scorer; log when some did."""
    first, _seen["first"] = _seen["first"], None
    if samples and errors >= samples:
        raise RuntimeError(
            f"{benchmark}: the scorer raised on every one of its {samples} samples (first: {first}); "
            f"a 0% score would be the scorer's failure, not the model's"
        )
    if errors:
        log.warning(
            "%s: the scorer raised on %d of %d samples (first: %s); those count as wrong",
            benchmark,
            errors,
            samples,
            first,
        )
