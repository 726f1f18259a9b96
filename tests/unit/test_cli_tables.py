"""``cli/tables.py``: tables that drop columns instead of cutting values, wrapping that
never breaks a word, times that say UTC."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from planrun.cli.tables import Column, layout, utc_clock, utc_stamp, wrap_words

WORD = st.text(alphabet="abcxyz0123456789-_/.", min_size=1, max_size=40)
COLUMNS = (Column("id"), Column("b", drop=1), Column("c", drop=3), Column("d", drop=2))


@given(
    rows=st.lists(st.lists(WORD, min_size=4, max_size=4), min_size=1, max_size=5),
    width=st.integers(min_value=10, max_value=200),
)
def test_layout_never_cuts_a_value(rows: list[list[str]], width: int) -> None:
    """Every kept value appears whole in its row's line; the id column is always kept;
    a line is wider than ``width`` only when the id column alone is."""
    lines = layout(COLUMNS, rows, width)
    assert len(lines) == len(rows) + 1
    widest_id = max(len("id"), *(len(r[0]) for r in rows))
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.split("  ")[0].rstrip() == row[0]
        if widest_id <= width:
            assert len(line) <= width
    kept = lines[0].split()
    for line, row in zip(lines[1:], rows, strict=True):
        for header, value in zip("ibcd", row, strict=True):
            if header == "i" or header in kept:
                assert value in line


def test_layout_drops_the_least_useful_column_first() -> None:
    rows = [["x" * 10, "b" * 5, "c" * 5, "d" * 5]]
    assert layout(COLUMNS, rows, None)[0].split() == ["id", "b", "c", "d"]
    assert layout(COLUMNS, rows, 10 + 2 + 5 + 2 + 5)[0].split() == ["id", "c", "d"]
    assert layout(COLUMNS, rows, 17)[0].split() == ["id", "c"]
    assert layout(COLUMNS, rows, 5)[0].split() == ["id"]  # still whole, wider than 5


@given(words=st.lists(WORD, min_size=1, max_size=30), width=st.integers(10, 100))
def test_wrap_words_breaks_between_words_only(words: list[str], width: int) -> None:
    text = " ".join(words)
    lines = wrap_words(text, width, 4)
    assert " ".join(" ".join(lines).split()) == text
    assert [w for line in lines for w in line.split()] == words
    for line in lines:
        assert line.startswith("    ")


def test_times_say_utc() -> None:
    assert utc_stamp("2026-12-01T08:18:58.474123Z") == "2026-12-01 08:18:58.474 UTC"
    assert utc_stamp("2026-12-01T09:18:58+01:00", ms=False) == "2026-12-01 08:18:58 UTC"
    assert utc_stamp("2026-12-01T08:18:58Z", suffix=False, ms=False) == "2026-12-01 08:18:58"
    assert utc_clock("2026-12-01T08:18:58.474123Z") == "08:18:58.474"
    assert utc_stamp(None) == ""
    assert utc_stamp("garbage") == "garbage"
