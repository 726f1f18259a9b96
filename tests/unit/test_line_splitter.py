"""The pump's line splitter: the same lines whatever the chunking, long lines cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from planrun.executors.pump import LineSplitter

LIMIT = 16


def _split(chunks: list[bytes]) -> list[tuple[str, bool]]:
    got: list[tuple[str, bool]] = []
    splitter = LineSplitter(lambda text, cut: got.append((text, cut)), limit=LIMIT)
    for chunk in chunks:
        splitter.feed(chunk)
    splitter.flush()
    return got


def _expected(data: bytes) -> list[tuple[str, bool]]:
    """Each line (the last one also without a newline), cut to LIMIT bytes."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for line in lines:
        cut = len(line) > LIMIT
        text = line[:LIMIT].decode("utf-8", errors="replace")
        out.append((text[:-1] if text.endswith("\r") else text, cut))
    return out


@given(
    st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b"x" * 20, b"\xc3\xa9"]), max_size=40)
)
def test_lines_do_not_depend_on_how_the_stream_is_chunked(parts: list[bytes]) -> None:
    """Fed whole, byte by byte or in the given pieces: the same lines."""
    data = b"".join(parts)
    whole = _split([data])
    assert _split(parts) == whole
    assert _split([data[i : i + 1] for i in range(len(data))]) == whole
    assert whole == _expected(data)


def test_a_long_line_is_cut_once_and_the_next_line_is_whole() -> None:
    """A line over the limit is passed on cut (its rest dropped), then life goes on."""
    assert _split([b"y" * 40, b"z" * 40 + b"\nnext\n"]) == [("y" * LIMIT, True), ("next", False)]
    assert _split([b"y" * LIMIT + b"\n"]) == [("y" * LIMIT, False)]
    assert _split([]) == []
