"""Switch params.yaml to a named profile after validating it: `python -m thinkmid.profile paper`."""

from __future__ import annotations

import sys
from pathlib import Path

from thinkmid.config import load_params
from thinkmid.errors import InputError
from thinkmid.io import write_text

PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(p.stem for p in PROFILES.glob("*.yaml"))
    if len(argv) != 1 or argv[0] not in names:
        print(f"usage: python -m thinkmid.profile {{{','.join(names)}}}", file=sys.stderr)
        return 2
    src = PROFILES / f"{argv[0]}.yaml"
    try:
        load_params(src)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_text("params.yaml", src.read_text(encoding="utf-8"))
    print(f"params.yaml <- profiles/{src.name}; run `dvc repro` (or `dvc exp run -n {argv[0]}`)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
