"""Profiles: `profiles/embedded.yaml` is the full default; every other profile is an overlay that
states only what differs (`extends: embedded` at its top). `python -m thinkmid.profile paper` writes
the merged, validated params.yaml.

Merge rule: mappings merge key by key, lists and scalars replace, and mappings whose keys are names
chosen by the user (schema fields typed `dict[str, ...]`: `thoughts.arms`, `thoughts.tasks`,
`knowledge_gates.arms`) replace whole, so an overlay can drop an arm. A key the default does not
write is allowed only where the params schema has it; anything else is an error naming the
overlay's file:line. Switching refuses to overwrite a params.yaml whose values differ from what its
own profile produces (it names the edited keys); `--force` saves the old file as params.yaml.bak first.
"""

from __future__ import annotations

import copy
import re
import shutil
import sys
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel

from thinkmid.config import Params, _line_index, flatten, parse_params
from thinkmid.errors import InputError
from thinkmid.io import write_text

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
DEFAULT = "embedded"
OVERLAY_KEY = "extends"  # top-level key of an overlay: the profile it changes


def names() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def _read(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(
            f"{path}:{mark.line + 1 if mark else '?'}: invalid YAML ({getattr(e, 'problem', e)})"
        ) from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of sections at the top level")
    return raw, text


def _field(model: type[BaseModel] | None, key: str):
    """The annotation of `key` in a pydantic section, or None when the schema has no such key."""
    if model is None or key not in model.model_fields:
        return None
    return model.model_fields[key].annotation


def _section(annotation) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _is_named_mapping(annotation) -> bool:
    """`dict[str, X]` in the schema: keys are user-chosen names (arms, tasks), so the overlay replaces it."""
    return typing.get_origin(annotation) is dict


def merge(
    default: dict,
    overlay: dict,
    where: str,
    lines: dict[tuple, int],
    schema: type[BaseModel] = Params,
    path: tuple = (),
) -> dict:
    """`default` with `overlay` laid over it (see the module docstring); `where` names the overlay file."""
    out = copy.deepcopy(default)
    for key, value in overlay.items():
        p = path + (key,)
        ann = _field(schema, key)
        if key not in default and ann is None:
            line = lines.get(p)
            raise InputError(
                f"{where}:{line or '?'}: {'.'.join(map(str, p))}: not in profiles/{DEFAULT}.yaml and not a "
                "params key (check the spelling; see thinkmid/config/ for the schema)"
            )
        sub = _section(ann)
        if isinstance(value, dict) and not _is_named_mapping(ann) and sub is not None:
            base = default.get(key) if isinstance(default.get(key), dict) else {}
            out[key] = merge(base, value, where, lines, sub, p)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merged(name: str) -> dict:
    """The full params mapping of profile `name` (the default itself, or the default + its overlay)."""
    if name not in names():
        raise InputError(f"profiles/{name}.yaml: no such profile; expected one of {names()}")
    default, _ = _read(PROFILES / f"{DEFAULT}.yaml")
    if name == DEFAULT:
        return default
    path = PROFILES / f"{name}.yaml"
    overlay, text = _read(path)
    lines = _line_index(text)
    base = overlay.pop(OVERLAY_KEY, None)
    if base != DEFAULT:
        raise InputError(
            f"profiles/{name}.yaml:{lines.get((OVERLAY_KEY,), 1)}: {OVERLAY_KEY}: expected "
            f"{DEFAULT!r} (an overlay states only what differs from profiles/{DEFAULT}.yaml), got {base!r}"
        )
    return merge(default, overlay, f"profiles/{name}.yaml", lines)


def _validate(text: str, name: str) -> None:
    """parse_params on the merged text, with an error moved to the profile file:line that holds the key."""
    try:
        parse_params(text, "params.yaml")
    except InputError as e:
        msg = re.sub(r"^params\.yaml(?::\d+)?: ", "", str(e))  # its line is in the merged text, not a file
        lead = re.match(r"([\w.]+): ", msg)  # `key: what was wrong`; a cross-field check names its keys inside
        first = lead.group(1) if lead else next(iter(re.findall(r"\b[a-z_]+(?:\.[a-z_]+)+\b", msg)), "")
        key = tuple(first.split(".")) if first else ()
        also = "" if name == DEFAULT else f" (profile {name}, merged over profiles/{DEFAULT}.yaml)"
        for fname in dict.fromkeys((name, DEFAULT)):  # the overlay first: its value won
            lines = _line_index((PROFILES / f"{fname}.yaml").read_text(encoding="utf-8"))
            line = next((lines[key[:i]] for i in range(len(key), 0, -1) if key[:i] in lines), None)
            if line:
                raise InputError(f"profiles/{fname}.yaml:{line}: {msg}{also}") from None
        raise InputError(f"profiles/{name}.yaml: {msg}{also}") from None


def profile_text(name: str) -> str:
    """What `python -m thinkmid.profile <name>` writes to params.yaml (validated)."""
    if name == DEFAULT:  # the default verbatim, so its comments stay beside the values
        head = f"# params.yaml <- profiles/{DEFAULT}.yaml (`python -m thinkmid.profile {DEFAULT}`); edit freely.\n"
        text = head + (PROFILES / f"{DEFAULT}.yaml").read_text(encoding="utf-8")
    else:
        head = (
            f"# params.yaml <- profiles/{DEFAULT}.yaml + overlay profiles/{name}.yaml "
            f"(`python -m thinkmid.profile {name}`).\n# The comments on each value (and where the paper "
            "values come from) are in those two files; edit here freely.\n"
        )
        text = head + yaml.safe_dump(merged(name), sort_keys=False, width=120)
    _validate(text, name)
    return text


def load_profile(name: str) -> Params:
    return parse_params(profile_text(name), f"profiles/{name}.yaml (merged)")


def edited_keys(params_path: Path) -> tuple[str | None, list[str]]:
    """(the profile params.yaml names, the dotted keys whose values differ from that profile's output).

    A params.yaml naming no shipped profile (e.g. `paper_standins`) counts as edited throughout."""
    current, _ = _read(params_path)
    name = current.get("profile")
    if name not in names():
        return name, ["(the whole file: its profile names no profiles/*.yaml)"]
    want, have = flatten(merged(name)), flatten(current)
    return name, sorted(k for k in set(want) | set(have) if want.get(k, "<unset>") != have.get(k, "<unset>"))


def switch(name: str, params_path: Path = Path("params.yaml"), force: bool = False) -> bool:
    """Write profile `name` to `params_path`; refuse (InputError) to drop edits unless `force`.

    Returns whether the old file was saved as `<params_path>.bak` (only when it held edits)."""
    text = profile_text(name)
    if params_path.exists():
        current, edits = edited_keys(params_path)
        if edits and not force:
            shown = ", ".join(edits[:12]) + (f" (+{len(edits) - 12} more)" if len(edits) > 12 else "")
            raise InputError(
                f"{params_path}: differs from what profile {current!r} writes at {shown}; switching "
                f"would lose those edits. Re-run with --force to save it as {params_path}.bak first"
            )
        if edits:
            shutil.copy2(params_path, params_path.with_name(params_path.name + ".bak"))
            write_text(params_path, text)
            return True
    write_text(params_path, text)
    return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in argv
    args = [a for a in argv if a != "--force"]
    if len(args) != 1 or args[0] not in names():
        print(f"usage: python -m thinkmid.profile {{{','.join(names())}}} [--force]", file=sys.stderr)
        return 2
    try:
        saved = switch(args[0], Path("params.yaml"), force=force)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    over = "" if args[0] == DEFAULT else f" + profiles/{args[0]}.yaml"
    saved = " (the old one, with its edits, saved as params.yaml.bak)" if saved else ""
    print(f"params.yaml <- profiles/{DEFAULT}.yaml{over}{saved}; run `dvc repro` (or `dvc exp run -n {args[0]}`)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
