"""What every stage module shares: argument parsing, params validation, and the exit-code contract.

A stage's `run(params, arm, args)` does the work; `stage_main` validates params and the arm first, so
bad input exits with code 2 and one line naming the problem before anything is touched.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from thinkmid.config import PARAMS_FILE, Params, load_params
from thinkmid.errors import InputError

log = logging.getLogger("thinkmid")


def stage_main(
    stage: str,
    run: Callable[[Params, str | None], None],
    arms: Sequence[str] | Callable[[Params], Sequence[str]] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """`arms`: the stage's arms, or a function of the params that gives them (the arms live in params.yaml)."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}")
    parser.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    if arms:
        choices = "an arm of params.yaml" if callable(arms) else f"one of: {', '.join(arms)}"
        parser.add_argument("--arm", required=True, help=choices)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("THINKMID_LOG", "INFO"), format="%(asctime)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        arm = getattr(args, "arm", None)
        known = list(arms(params) if callable(arms) else arms or [])
        if arms and arm not in known:
            raise InputError(f"--arm: unknown arm {arm!r}; expected one of {known} ({args.params})")
        seed_everything(params.seed)
        run(params, arm)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as e:  # a server that cannot start, or a port held by something else: one message
        from thinkmid.engines.launcher import ServerError

        if not isinstance(e, ServerError):
            raise
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.set_num_threads(threads())


# CPU threads of a stage: THINKMID_THREADS, else a fixed 2 (the CI machine's cores), never the host's
# core count: a float sum split over another number of threads rounds differently, so the same
# profile gives the same bits (and DVC hashes) on every host.
DEFAULT_THREADS = 2


def threads() -> int:
    return max(1, int(os.environ.get("THINKMID_THREADS", DEFAULT_THREADS)))
