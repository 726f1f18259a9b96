"""Tables and times for people, at any width (``list``, ``show``).

What a user copies — run ids, step ids, paths — is never truncated, folded or wrapped:
when a table does not fit the terminal, whole columns are dropped (least useful first)
and long details move to a line of their own, wrapped only between words. Not on a
terminal (``width=None``) every column is kept, one row per line.

Times are shown in UTC, always said so ("UTC" after a time, "(UTC)" in a header): the
store, ``--json`` and ``events.jsonl`` hold UTC, and so do most CI machines.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "GAP",
    "Column",
    "kept_columns",
    "layout",
    "table_line",
    "utc_clock",
    "utc_stamp",
    "wrap_words",
]

#: Spaces between two columns.
GAP = 2


@dataclass(frozen=True)
class Column:
    """One column: its header, and when it is dropped to fit (``drop``: lower goes
    first; None: never dropped)."""

    header: str
    drop: int | None = None


def _width(values: Sequence[str]) -> int:
    return max(map(len, values), default=0)


def layout(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None
) -> list[str]:
    """The header and ``rows`` as left-aligned lines, columns ``GAP`` apart. Columns
    that can be dropped are kept, most useful (highest ``drop``) first, while a line
    still fits ``width`` (None: no limit). Values are never cut: a line of only
    undroppable columns may still be wider."""
    widths = [_width([c.header, *(row[i] for row in rows)]) for i, c in enumerate(columns)]
    keep = kept_columns(columns, widths, width)
    table = [[c.header for c in columns], *rows]
    return [table_line(line, widths, keep) for line in table]


def kept_columns(columns: Sequence[Column], widths: Sequence[int], width: int | None) -> list[int]:
    """The indexes of the columns :func:`layout` keeps for these column ``widths``
    (for a table laid out as its rows stream by, its widths measured first)."""
    keep = {i for i, c in enumerate(columns) if c.drop is None}
    used = sum(widths[i] + GAP for i in keep) - GAP
    # Most useful first; a column that does not fit is left out, a later one may fit.
    for _, index in sorted(
        ((c.drop, i) for i, c in enumerate(columns) if c.drop is not None), reverse=True
    ):
        if width is None or used + GAP + widths[index] <= width:
            keep.add(index)
            used += GAP + widths[index]
    return sorted(keep)


def table_line(values: Sequence[str], widths: Sequence[int], keep: Sequence[int]) -> str:
    """One line of a table: the kept ``values``, each padded to its column's width."""
    return (" " * GAP).join(values[i].ljust(widths[i]) for i in keep).rstrip()


def wrap_words(text: str, width: int | None, indent: int, hang: int | None = None) -> list[str]:
    """``text`` indented by ``indent`` spaces (later lines by ``hang``, default the
    same), wrapped to ``width`` between words only: a path or id longer than a line
    stays whole. One line when ``width`` is None."""
    prefix = " " * indent
    if width is None:
        return [prefix + text]
    return textwrap.wrap(
        text,
        width=max(width, indent + 20),
        initial_indent=prefix,
        subsequent_indent=" " * (indent if hang is None else hang),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [prefix]


def _parse(stamp: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_stamp(stamp: str | None, *, suffix: bool = True, ms: bool = True) -> str:
    """A stored ISO-8601 time as ``2026-12-01 12:16:35.118 UTC`` (``suffix=False``: for
    a column whose header says UTC; ``ms=False``: to the second); '' for None."""
    if not stamp:
        return ""
    moment = _parse(stamp)
    if moment is None:
        return stamp  # shown as stored rather than hidden
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if ms:
        text += f".{moment.microsecond // 1000:03d}"
    return f"{text} UTC" if suffix else text


def utc_clock(stamp: str | None) -> str:
    """A stored time as ``12:16:35.128`` (UTC, for a column headed "(UTC)")."""
    moment = _parse(stamp) if stamp else None
    if moment is None:
        return stamp or ""
    return moment.strftime("%H:%M:%S") + f".{moment.microsecond // 1000:03d}"
