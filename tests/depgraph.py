"""What a stage module really uses, read from the source with `ast` (for tests/test_dvc_deps.py).

imports(): the repo modules (`thinkmid.*`, `stages.*`) a stage imports, transitively, with the package
`__init__.py` files that importing them runs, as repo-relative file paths. Function-level imports count:
they run when the stage does; an import inside an `except` handler does not (it names an exception on
the error path), nor does a module of a docstring only.

param_reads(): the params keys (`section` or `section.key`) a stage reads. Every attribute chain rooted
at the params object is a read: `params.<section>.<key>` in the stage module (also `self.params` in its
classes and in their repo base classes, and names bound to a section, `p = params.sft`). When the params
object or a section of it is passed to a repo function, that function's body is read the same way with
its parameter bound to it, so `reference_judge_for(params)` adds what it reads. The engine wiring
`build(part, params)` reads a different section per part kind, so it is not followed through its branches:
the stage's own `wiring(params, arm)` says which parts it builds (PART_READERS maps a kind to the function
`build` hands it to).
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("thinkmid", "stages")
# Pydantic methods read the whole object they are called on.
WHOLE = {"model_dump", "model_dump_json", "model_copy", "model_fields_set"}
# MLflow/tracking helpers log every param (not a read that changes a result) and are not followed.
NOT_FOLLOWED = {
    ("thinkmid.track", "StageRun"),
    ("thinkmid.track", "logged_params"),
    ("thinkmid.engines.wiring", "build"),
}
# Keys only MLflow reads (the experiment name), never a result.
TRACKING_ONLY = {"tracking", "tracking.experiment"}
PART_READERS = {  # Part.kind -> (module, function) that thinkmid.engines.wiring.build hands params to
    "judge": ("thinkmid.judges.factory", "pairwise_judge_for"),
    "reference_judge": ("thinkmid.judges.factory", "reference_judge_for"),
    "teacher": ("thinkmid.engines.wiring", "teacher_for"),
}


def module_file(mod: str) -> Path | None:
    base = ROOT.joinpath(*mod.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _in_repo(mod: str) -> bool:
    return mod.split(".")[0] in PACKAGES


@cache
def _tree(path: Path) -> ast.Module:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):  # parents, so a read is the outermost attribute of its chain
        for child in ast.iter_child_nodes(node):
            child._parent = node
    return tree


def _direct_imports(mod: str) -> set[str]:
    path = module_file(mod)
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"
    on_error = {id(n) for h in ast.walk(_tree(path)) if isinstance(h, ast.ExceptHandler) for n in ast.walk(h)}
    for node in ast.walk(_tree(path)):
        if id(node) in on_error:  # imported only to name an exception: runs on the error path only
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if _in_repo(a.name)}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                src = ".".join(parts + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if not _in_repo(src):
                continue
            out.add(src)
            out |= {f"{src}.{a.name}" for a in node.names if module_file(f"{src}.{a.name}")}
    return {m for m in out if module_file(m)}


def _with_parents(mod: str) -> set[str]:
    parts = mod.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@cache
def imports(mod: str) -> frozenset[str]:
    """Repo modules `mod` runs when imported (itself included), transitively."""
    seen: set[str] = set()
    todo = [mod]
    while todo:
        m = todo.pop()
        for x in _with_parents(m):
            if x not in seen and module_file(x):
                seen.add(x)
                todo += sorted(_direct_imports(x))
    return frozenset(seen)


def _runs_nothing(path: Path) -> bool:
    """A module of a docstring (and comments) only: importing it cannot change an output."""
    body = _tree(path).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def import_files(mod: str) -> list[str]:
    """Repo files `mod` runs, less those that run nothing."""
    files = (module_file(m) for m in imports(mod))
    return sorted(str(f.relative_to(ROOT)) for f in files if not _runs_nothing(f))


# --- params reads -------------------------------------------------------------------------------------


def _chain(node: ast.AST) -> list[str] | None:
    """`a.b.c` -> ["a", "b", "c"]; `self.params.x` -> ["self", "params", "x"]; else None."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(names)]
    return None


def _key(prefix: str, rest: list[str]) -> str:
    """The read key, at most `section.key` deep; pydantic methods read what they are called on."""
    parts = [p for p in prefix.split(".") if p]
    for r in rest:
        if r in WHOLE:
            break
        parts.append(r)
    return ".".join(parts[:2])


class _Reader:
    """Walks function bodies; `bound` maps a local name (or "self.params") to the params key it holds."""

    def __init__(self):
        self.reads: set[str] = set()
        self._done: set[tuple] = set()

    def module_names(self, mod: str) -> dict[str, tuple[str, str]]:
        """Local name -> (module, attribute) for `from m import f` (and the module's own functions)."""
        names: dict[str, tuple[str, str]] = {}
        for node in ast.walk(_tree(module_file(mod))):
            if isinstance(node, ast.ImportFrom) and node.module and _in_repo(node.module) and not node.level:
                for a in node.names:
                    names[a.asname or a.name] = (node.module, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if _in_repo(a.name):
                        names[a.asname or a.name.split(".")[0]] = (a.name, "")
        for node in _tree(module_file(mod)).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names[node.name] = (mod, node.name)
        return names

    def find(self, mod: str, name: str) -> tuple[str, ast.AST] | None:
        """The function or class `name` defined in (or re-exported by) repo module `mod`."""
        path = module_file(mod)
        if path is None:
            return None
        for node in _tree(path).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                return mod, node
        target = self.module_names(mod).get(name)
        if target and target[0] != mod and target[1]:
            return self.find(*target)
        return None

    def resolve(self, mod: str, func: ast.AST) -> tuple[str, ast.AST] | None:
        ch = _chain(func)
        if not ch:
            return None
        names = self.module_names(mod)
        if len(ch) == 1 and ch[0] in names:
            return self.find(*names[ch[0]])
        if len(ch) == 2 and ch[0] in names and not names[ch[0]][1]:  # module.func
            return self.find(names[ch[0]][0], ch[1])
        if len(ch) == 2 and ch[0] in names:  # `import thinkmid.evals.reward_gate as rg` style via from-import
            m = f"{names[ch[0]][0]}.{names[ch[0]][1]}"
            if module_file(m):
                return self.find(m, ch[1])
        return None

    def function(self, mod: str, fn: ast.AST, bound: dict[str, str]) -> None:
        key = (mod, getattr(fn, "name", ""), getattr(fn, "lineno", 0), tuple(sorted(bound.items())))
        if key in self._done or (mod, getattr(fn, "name", "")) in NOT_FOLLOWED:
            return
        self._done.add(key)
        if isinstance(fn, ast.ClassDef):  # a class called with params: its methods, `self.params` bound
            self.klass(mod, fn, {"self.params": bound.get("params", "")} if bound else {})
            return
        bound = dict(bound)
        used: set[int] = set()  # attribute nodes accounted for (aliased or passed to a followed function)
        for node in ast.walk(fn):  # aliases first: `p = params.sft`, `a, p = x, params.sft`
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                pairs = [(node.targets[0], node.value)]
                if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
                    pairs = list(zip(node.targets[0].elts, node.value.elts))
                for target, value in pairs:
                    got = self.bound_key(value, bound)
                    if isinstance(target, ast.Name) and got is not None and isinstance(value, ast.Attribute):
                        bound[target.id] = got
                        used.add(id(value))
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                self.call(mod, node, bound, used)
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and id(node) not in used:
                got = self.bound_key(node, bound)
                if got is not None and not isinstance(getattr(node, "_parent", None), ast.Attribute):
                    self.reads.add(got)

    def bound_key(self, node: ast.AST, bound: dict[str, str]) -> str | None:
        ch = _chain(node)
        if not ch:
            return None
        for n in (2, 1):
            root = ".".join(ch[:n])
            if len(ch) >= n and root in bound:
                return _key(bound[root], ch[n:])
        return None

    def call(self, mod: str, node: ast.Call, bound: dict[str, str], used: set[int]) -> None:
        args = [(i, a) for i, a in enumerate(node.args)] + [(k.arg, k.value) for k in node.keywords]
        passed = [(slot, self.bound_key(a, bound), a) for slot, a in args]
        passed = [(slot, k, a) for slot, k, a in passed if k is not None]
        if not passed:
            return
        target = self.resolve(mod, node.func)
        if target is None or (target[0], getattr(target[1], "name", "")) in NOT_FOLLOWED:
            self.reads |= {k for _, k, _ in passed}  # an outside function reads what it is given whole
            return
        tmod, tfn = target
        if isinstance(tfn, ast.ClassDef):
            init = next((n for n in tfn.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            arg_names = [a.arg for a in init.args.args[1:]] if init else []
        else:
            arg_names = [a.arg for a in tfn.args.args]
        inner: dict[str, str] = {}
        for slot, k, a in passed:
            name = arg_names[slot] if isinstance(slot, int) and slot < len(arg_names) else slot
            if isinstance(name, str):
                inner[name] = k
                used.add(id(a))
        before = set(self.reads)
        if isinstance(tfn, ast.ClassDef):
            self.klass(tmod, tfn, {"self.params": inner["params"]} if "params" in inner else {})
        else:
            self.function(tmod, tfn, inner)
        for k in inner.values():  # a value the callee uses without reading its attributes: read whole
            if not any(r == k or r.startswith(k + ".") or not k for r in self.reads - before):
                self.reads.add(k)

    def klass(self, mod: str, cls: ast.ClassDef, bound: dict[str, str]) -> None:
        if not bound:
            return
        for item in cls.body:
            if isinstance(item, ast.FunctionDef):
                self.function(mod, item, bound)
        names = self.module_names(mod)
        for base in cls.bases:  # repo base classes run their own methods on self.params
            ch = _chain(base)
            if ch and len(ch) == 1 and ch[0] in names and (found := self.find(*names[ch[0]])):
                if isinstance(found[1], ast.ClassDef):
                    self.klass(found[0], found[1], bound)


def param_reads(mod: str, arms: list[str | None] | None = None) -> set[str]:
    """Params keys the stage module `mod` reads (see the module docstring)."""
    r = _Reader()
    for node in _tree(module_file(mod)).body:
        if isinstance(node, ast.FunctionDef) and node.args.args and node.args.args[0].arg == "params":
            r.function(mod, node, {"params": ""})
        elif isinstance(node, ast.ClassDef):
            r.klass(mod, node, {"self.params": ""})
    stage = importlib.import_module(mod)
    if hasattr(stage, "wiring"):  # the parts `build` makes: what each reads
        from thinkmid.config import Params

        for arm in arms or [None]:
            for part in stage.wiring(Params(), arm):
                if part.kind == "policy":
                    r.reads.add("engine")
                elif part.kind in PART_READERS:
                    found = r.find(*PART_READERS[part.kind])
                    r.function(found[0], found[1], {"params": ""})
    return {k for k in r.reads if k and k not in TRACKING_ONLY}
