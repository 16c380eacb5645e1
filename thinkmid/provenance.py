"""Where a result was produced: code version, machine, library versions, profile and switches.

`provenance(profile)` returns a flat dict of strings; `markdown(prov)` renders it as the block that
opens reports/RESULTS.md; `tags(prov)` turns it into MLflow tags (track.StageRun sets them on every
run). Nothing here depends on the time of day, so the same checkout on the same machine gives the
same bytes (the report's "a rerun changes no byte" holds).

    python -m thinkmid.provenance          # print the block for this checkout and machine
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path

SWITCH_PREFIX = "THINKMID_"
# Key names that hold credentials, for params and environment variables alike (case-insensitive,
# split into words at `_`, `.`, `-` and camelCase). `*_tokens` (lengths) and tokenizer roles such as
# `pad_token` are not secrets; `hf_token`, `api_key`, `OPENAI_API_KEY`, `AWS_SECRET_ACCESS_KEY` are.
# A key ending in `_env` names the variable a secret is read from, and is not itself a secret.
_SECRET_WORDS = {
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "credentials",
    "apikey",
    "authorization",
    "bearer",
    "cookie",
    "privatekey",
}
_SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("auth", "key")}
_TOKEN_ROLES = {
    "pad",
    "bos",
    "eos",
    "unk",
    "sep",
    "cls",
    "mask",
    "special",
    "think",
    "start",
    "end",
    "stop",
    "image",
    "video",
    "audio",
    "vision",
    "sentinel",
    "placeholder",
    "split",
    "first",
    "last",
}
_TOKEN_FOLLOWERS = {"id", "ids", "count", "counts", "len", "length", "budget", "limit", "type", "index"}


def key_words(key: str) -> list[str]:
    """`rlmt.suffix_max_tokens` -> [rlmt, suffix, max, tokens]; `hfApiKey` -> [hf, api, key]."""
    key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", key.lower()) if w]


def is_secret_key(key: str) -> bool:
    """Whether a params key or an environment variable name holds a credential."""
    words = key_words(key)
    if not words or words[-1] == "env":
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in zip(words, words[1:])):
        return True
    for i, w in enumerate(words):
        if w != "token":  # `tokens`, `tokenizer`, `max_new_tokens`: lengths and names, never secrets
            continue
        before = words[i - 1] if i else None
        after = words[i + 1] if i + 1 < len(words) else None
        if before not in _TOKEN_ROLES and after not in _TOKEN_FOLLOWERS:
            return True
    return False


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: str | os.PathLike | None = None) -> tuple[str, str]:
    """(commit, dirty) of the checkout the code runs from: dirty is "true"/"false" (tracked files
    differ from the commit, as `git describe --dirty` counts it) or "unknown" outside git."""
    root = Path(root or os.environ.get("DVC_ROOT") or Path.cwd())
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return "unknown", "unknown"
    # dvc.lock and .gitignore are DVC's own bookkeeping, rewritten by every `dvc repro`.
    status = _git(
        root,
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude,glob)**/dvc.lock",
        ":(exclude,glob)**/.gitignore",
    )
    return commit, "unknown" if status is None else ("true" if status else "false")


def device() -> str:
    """The device the stages pick (THINKMID_DEVICE, else CUDA when available), in words."""
    import torch

    want = os.environ.get("THINKMID_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda") and torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        counts = {n: names.count(n) for n in names}
        return "cuda: " + ", ".join(f"{c} x {n}" for n, c in counts.items())
    cpu = platform.processor() or platform.machine() or "unknown"
    return f"{want}: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def switches() -> dict[str, str]:
    """The THINKMID_* environment variables in force (secret-looking ones left out), sorted."""
    from thinkmid.track import scrub  # values pass the same scrubber as everything logged

    return {k: scrub(v) for k, v in sorted(os.environ.items()) if k.startswith(SWITCH_PREFIX) and not is_secret_key(k)}


def provenance(profile: str | None = None, root: str | os.PathLike | None = None) -> dict[str, str]:
    import torch

    commit, dirty = git_state(root)
    sw = switches()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "device": device(),
        "cuda": torch.version.cuda or "none",
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "profile": profile or "unknown",
        "switches": " ".join(f"{k}={v}" for k, v in sw.items()) or "none",
    }


def tags(prov: dict[str, str]) -> dict[str, str]:
    """MLflow tags: each field, plus one `env.<NAME>` tag per switch so the compare view can filter."""
    out = {k: v for k, v in prov.items() if k not in ("git_commit", "profile")}
    out.update({f"env.{k}": v for k, v in switches().items()})
    return out


def markdown(prov: dict[str, str]) -> str:
    """The block that opens RESULTS.md: one line per field."""
    dirty = {"true": " (uncommitted changes)", "false": "", "unknown": " (dirty state unknown)"}
    lines = [
        f"- Commit: `{prov['git_commit']}`{dirty.get(prov['git_dirty'], '')}",
        f"- Device: {prov['device']}",
        f"- CUDA {prov['cuda']}, torch {prov['torch']}, transformers {prov['transformers']}, Python {prov['python']}",
        f"- Profile: `{prov['profile']}`",
        f"- Switches: {'`' + prov['switches'] + '`' if prov['switches'] != 'none' else 'none set'}",
    ]
    return "Produced by:\n\n" + "\n".join(lines) + "\n"


def provenance_markdown(profile: str | None = None) -> str:
    """markdown(provenance(profile)): the block RESULTS.md opens with."""
    return markdown(provenance(profile))


if __name__ == "__main__":
    print(provenance_markdown(), end="")
