"""Fixed number formats and a markdown table writer, so the same inputs always give the same bytes.

The writer is ours rather than DataFrame.to_markdown: tabulate re-parses numeric-looking strings
(turning "0.0000" into "0") and its padding rules change between versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

NA = "n/a"


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fixed(decimals: int) -> Callable[[Any], str]:
    """A formatter with a fixed number of decimals; -0 prints as 0."""

    def f(x: Any) -> str:
        v = _num(x)
        if v is None:
            return NA
        s = f"{v:.{decimals}f}"
        return s[1:] if s.startswith("-") and float(s) == 0 else s

    return f


def signed(decimals: int) -> Callable[[Any], str]:
    """A delta: always carries its sign, and a delta that rounds to zero prints as +0."""

    def f(x: Any) -> str:
        v = _num(x)
        if v is None:
            return NA
        s = f"{v:+.{decimals}f}"
        return "+" + s[1:] if float(s) == 0 else s

    return f


def count(x: Any) -> str:
    v = _num(x)
    return NA if v is None else f"{int(round(v)):,}"


def pct(x: Any, decimals: int = 2) -> str:
    v = _num(x)
    return NA if v is None else f"{100 * v:.{decimals}f}%"


def flag(x: Any) -> str:
    return "null" if x is None else ("true" if x else "false")


def text(x: Any) -> str:
    return "null" if x is None else str(x)  # as the record prints a missing value (JSON's null)


def plain(x: Any) -> str:
    """An integer without thousands separators, as the record prints counts like "1113 / 10552"."""
    v = _num(x)
    return NA if v is None else str(int(round(v)))


f1, f2, f4, f6 = fixed(1), fixed(2), fixed(4), fixed(6)
d1, d6 = signed(1), signed(6)


def ci(lo, hi) -> str:
    return f"[{f6(lo)}, {f6(hi)}]"


def delta_ci(lo, hi) -> str:
    """A delta's interval, signed; n/a when the artifact predates the intervals."""
    return "n/a" if lo is None or hi is None else f"[{d6(lo)}, {d6(hi)}]"


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> str:
    """A GitHub pipe table with padded columns; `align` is "l" or "r" per column (default: first left)."""
    headers = [_cell(h) for h in headers]
    rows = [[_cell(c) for c in r] for r in rows]
    align = list(align or ["l"] + ["r"] * (len(headers) - 1))
    width = [max([len(headers[i]), 3] + [len(r[i]) for r in rows]) for i in range(len(headers))]

    def line(cells):
        out = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, width, align)]
        return "| " + " | ".join(out) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + (":" if a == "r" else "-") for w, a in zip(width, align)) + " |"
    return "\n".join([line(headers), rule] + [line(r) for r in rows])


Column = tuple[str, str, Callable[[Any], str]]  # header, key, formatter


def spec_table(
    columns: Sequence[Column], records: Sequence[dict], first: tuple[str, Sequence[str]] | None = None
) -> str:
    """A table from records and a column spec; `first` prepends a label column (header, labels)."""
    headers = ([first[0]] if first else []) + [c[0] for c in columns]
    rows = []
    for i, rec in enumerate(records):
        cells = [fmt(rec.get(key)) for _, key, fmt in columns]
        rows.append(([first[1][i]] if first else []) + cells)
    align = (["l"] if first else []) + ["l" if fmt is text else "r" for _, _, fmt in columns]
    return md_table(headers, rows, align)
