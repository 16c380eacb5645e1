"""Errors that mean "bad input": reported in one line and exit code 2, before any work starts."""

from __future__ import annotations


class InputError(Exception):
    """Bad params, a missing model dir, a truncated JSONL: the user must fix something."""

    exit_code = 2


def die_on_input_error(fn):
    """Decorator for stage `main`s: an InputError becomes one line on stderr and exit code 2."""
    import functools
    import sys

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(InputError.exit_code) from None

    return wrapper
