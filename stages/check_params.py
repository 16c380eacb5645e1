"""Validate the whole params.yaml against the schema (thinkmid/config/) before any other stage runs.

DVC reruns a stage only when something it depends on changed, and each stage depends on the params
sections it reads, so a key no stage reads (a hand-added `lrr: 1e-07` at the top level) would pass
`dvc repro` silently. This first stage depends on the whole file and on the schema; every stage
descends from it (prepare_base depends on its output), so a bad params.yaml stops `dvc repro` and
`dvc exp run` here with one line naming the key and its line, exit code 2.

Its output says only that the file was valid: the same bytes after every valid edit, so a change to
one section still reruns only the stages that read that section.

    python -m stages.check_params
"""

from __future__ import annotations

import argparse
import sys

from thinkmid.config import PARAMS_FILE, load_params
from thinkmid.errors import InputError
from thinkmid.io import write_text

OUT = "reports/check_params/valid.txt"
# Unchanged since the schema was one file, thinkmid/config.py: new bytes here would rerun every stage.
TEXT = "params.yaml is valid against thinkmid/config.py\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.check_params")
    parser.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        load_params(args.params)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(InputError.exit_code) from None
    write_text(OUT, TEXT)


if __name__ == "__main__":
    main()
