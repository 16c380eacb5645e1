"""Wheels for a GPU box that reaches no package index: what thinkmid needs there and the box lacks.

    python benchmarks/carry_wheels.py --have box.txt --out .whl [--extra serve] [--python 3.12]

Run it in the project's virtualenv. It walks thinkmid's runtime requirements (and the extras named)
through the installed distributions, so the box gets the versions tested here, leaves out every
distribution named in --have (one `pip list`/`pip freeze` line or bare name per line, or a
comma-separated list, as a machine's package list is often given), and downloads a wheel of each
remaining one for the box's Python and manylinux x86-64 with `pip download --no-deps`. A distribution
published only as an sdist (antlr4-python3-runtime, under dvc's hydra) is built into a wheel here with
`pip wheel --no-deps`: only pure-Python sdists are worth carrying that way.

On the box (benchmarks/paper_lifecycle.sh's callers):

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH

The CUDA stack (torch, triton, nvidia-*) is never carried: a GPU box has its own build of it.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

# The GPU box's own CUDA build of these must stay; a CPU wheel from here would replace it.
NEVER_CARRIED = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
# Tags pip must match exactly; manylinux_2_N for the N that the wheels here are published under.
PLATFORMS = ["manylinux1_x86_64", "manylinux2014_x86_64"] + [
    f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34)
]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_have(text: str) -> set[str]:
    """Names from `pip list`, `pip freeze` or a comma-separated list; headers and blanks ignored."""
    names = set()
    for part in re.split(r"[,\n]", text):
        part = part.strip().rstrip(".")
        if not part or part.startswith(("Package", "---", "#")):
            continue
        names.add(norm(re.split(r"[\s=<>@]", part, maxsplit=1)[0]))
    return names


def closure(root: str, extras: tuple[str, ...], python: str) -> dict[str, str]:
    """Installed name -> version for `root`'s requirements (with `extras`), recursively, as on Linux x86-64."""
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    env |= {"platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}
    found: dict[str, str] = {}
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # an optional requirement this venv never installed: the box does without it too
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate(env | {"extra": e}) for e in ("",) + wanted):
                continue
            key = norm(req.name)
            if key not in found:
                try:
                    found[key] = md.version(req.name)
                except md.PackageNotFoundError:
                    continue
                todo.append((req.name, tuple(req.extras)))
    return found


def to_carry(needed: dict[str, str], have: set[str]) -> dict[str, str]:
    return {n: v for n, v in sorted(needed.items()) if n not in have and not NEVER_CARRIED.match(n)}


def download(name: str, version: str, out: Path, python: str) -> str:
    """'wheel' or 'built'; raises with pip's last lines when neither works."""
    spec = f"{name}=={version}"
    tags = ["--python-version", python, "--implementation", "cp"] + [a for p in PLATFORMS for a in ("--platform", p)]
    got = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            *tags,
            "-d",
            str(out),
            spec,
        ],
        capture_output=True,
        text=True,
    )
    if got.returncode == 0:
        return "wheel"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), spec], capture_output=True, text=True
    )
    if built.returncode == 0:
        return "built"
    tail = "\n".join((got.stderr + built.stderr).strip().splitlines()[-4:])
    raise SystemExit(f"no wheel for {spec} (Python {python}, manylinux x86-64), nor one built here:\n{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--have", type=Path, required=True, help="the box's package list (pip list/freeze, or names)")
    ap.add_argument("--out", type=Path, default=Path(".whl"))
    ap.add_argument("--extra", action="append", default=[], help="thinkmid extras to carry too (serve, gpu)")
    ap.add_argument("--python", default="3.12", help="the box's Python, major.minor")
    ap.add_argument("--limit-mib", type=float, default=64, help="warn when the wheels exceed this")
    args = ap.parse_args(argv)
    if not args.have.is_file():
        ap.error(f"--have {args.have}: no such file")
    carry = to_carry(closure("thinkmid", tuple(args.extra), args.python), read_have(args.have.read_text()))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, version in carry.items():
        print(f"{name}=={version}: {download(name, version, args.out, args.python)}", flush=True)
    mib = sum(p.stat().st_size for p in args.out.glob("*.whl")) / 2**20
    print(f"{len(carry)} distributions, {mib:.1f} MiB in {args.out}")
    if mib > args.limit_mib:
        print(f"warning: over {args.limit_mib:g} MiB; leave out an extra or what the box's stages never import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
