"""The ``$PLANRUN_OUTPUT`` file format: KEY=VALUE, KEY<<DELIM blocks, and its errors."""

from __future__ import annotations

import pytest

from planrun.outputs import MAX_OUTPUT_BYTES, OutputError, parse_outputs


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"", {}, id="empty"),
        pytest.param(b"\n\n", {}, id="only-newlines"),
        pytest.param(b"sha=3f9a2c1\n", {"sha": "3f9a2c1"}, id="one"),
        pytest.param(b"sha=3f9a2c1", {"sha": "3f9a2c1"}, id="no-final-newline"),
        pytest.param(b"a=1\nb=2\n", {"a": "1", "b": "2"}, id="two"),
        pytest.param(b"a=\n", {"a": ""}, id="empty-value"),
        pytest.param(b"url=https://x/?a=b&c=d\n", {"url": "https://x/?a=b&c=d"}, id="eq-in-value"),
        pytest.param(b"a==\n", {"a": "="}, id="value-is-eq"),
        pytest.param(b"a= spaced \n", {"a": " spaced "}, id="spaces-kept"),
        pytest.param(b"a=x<<y\n", {"a": "x<<y"}, id="heredoc-marker-in-value"),
        pytest.param(b"a=<<EOF\n", {"a": "<<EOF"}, id="value-starting-with-heredoc-marker"),
        pytest.param(b"\na=1\n\n   \n", {"a": "1"}, id="blank-lines"),
        pytest.param(b"a=1\r\nb=2\r\n", {"a": "1\r", "b": "2\r"}, id="crlf-bytes-kept"),
        pytest.param(b"a=1\r\n\r\nb=2\r\n", {"a": "1\r", "b": "2\r"}, id="crlf-blank-line"),
        pytest.param(b"a=x\ry\n", {"a": "x\ry"}, id="inner-cr-kept"),
        pytest.param(b"_A9_=v\n", {"_A9_": "v"}, id="key-underscore-digits"),
        pytest.param("k=caf\u00e9 \u2713\n".encode(), {"k": "caf\u00e9 \u2713"}, id="utf-8"),
        pytest.param(b"k=a\xe2\x80\xa8b\n", {"k": "a\u2028b"}, id="unicode-line-separator"),
        pytest.param(
            b"notes<<EOF\nfirst line\nsecond line\nEOF\n",
            {"notes": "first line\nsecond line"},
            id="heredoc",
        ),
        pytest.param(b"n<<EOF\nEOF\n", {"n": ""}, id="heredoc-empty"),
        pytest.param(b"n<<EOF\n\nx\n\nEOF\n", {"n": "\nx\n"}, id="heredoc-blank-lines-kept"),
        pytest.param(b"n<<EOF\na=1\nm<<X\nEOF\n", {"n": "a=1\nm<<X"}, id="heredoc-body-verbatim"),
        pytest.param(b"n<<EOF\n EOF\nEOF \nEOF\n", {"n": " EOF\nEOF "}, id="delimiter-exact"),
        pytest.param(b"n<<EOF\r\nx\r\ny\r\nEOF\r\n", {"n": "x\r\ny\r"}, id="heredoc-crlf"),
        pytest.param(b"n<<EOF\nx\r\nEOF\n", {"n": "x\r"}, id="heredoc-cr-kept"),
        pytest.param(b"a<<EOF\n1\nEOF\nb<<EOF\n2\nEOF\n", {"a": "1", "b": "2"}, id="delim-reused"),
        pytest.param(b"n<<EOF\nx\nEOF", {"n": "x"}, id="heredoc-no-final-newline"),
        pytest.param(b"n<<a=b\nx\na=b\n", {"n": "x"}, id="delimiter-with-eq"),
        pytest.param(
            b"a=1\nn<<EOF\nx\nEOF\nb=2\nm<<END\ny\nEND\n",
            {"a": "1", "n": "x", "b": "2", "m": "y"},
            id="mixed",
        ),
    ],
)
def test_parse_outputs(data: bytes, expected: dict[str, str]) -> None:
    """Valid outputs files parse to the expected keys and values."""
    assert parse_outputs(data) == expected


def test_blank_lines_and_whitespace_lines_are_ignored() -> None:
    """Lines that are empty or hold only whitespace are skipped."""
    assert parse_outputs(b"\n \n\t\na=1\n  \nb=2\n\n") == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"a=1\nb=2\na=3\n", id="line-twice"),
        pytest.param(b"a<<E\n1\nE\na=2\n", id="heredoc-then-line"),
        pytest.param(b"a=1\na<<E\n2\nE\n", id="line-then-heredoc"),
    ],
)
def test_a_key_set_twice_is_an_error(data: bytes) -> None:
    """A key is set once: a second assignment fails, naming both lines."""
    with pytest.raises(OutputError, match=r"line \d: 'a' is already set on line 1"):
        parse_outputs(data)


#: What ``printf 'notes<<EOF\n%s\nEOF\n' "$NOTES"`` writes for a hostile ``NOTES``.
def _fixed_delimiter(notes: bytes, before: bytes = b"", after: bytes = b"") -> bytes:
    return before + b"notes<<EOF\n" + notes + b"\nEOF\n" + after


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            _fixed_delimiter(b"x\nEOF\nsha=attacker"),
            "line 5: 'EOF' closes nothing: the value of 'notes' (line 1) held its delimiter",
            id="stray-delimiter",
        ),
        pytest.param(
            _fixed_delimiter(b"x\nEOF\nsha=attacker\nz<<EOF", before=b"sha=real\n"),
            "line 5: 'sha' is already set on line 1",
            id="swallowed-delimiter-sha-before",
        ),
        pytest.param(
            _fixed_delimiter(b"x\nEOF\nsha=attacker\nz<<EOF", after=b"sha=real\n"),
            "line 7: 'sha' is already set on line 4",
            id="swallowed-delimiter-sha-after",
        ),
    ],
)
def test_a_value_holding_its_delimiter_cannot_override_a_key(data: bytes, message: str) -> None:
    """A value that contains its own (fixed) delimiter line ends early; the lines it
    smuggles in can never override a key the step sets: the file fails instead."""
    with pytest.raises(OutputError) as info:
        parse_outputs(data)
    assert message in str(info.value)


def test_the_handed_out_delimiter_keeps_a_hostile_value_whole() -> None:
    """With the attempt's random delimiter, a value holding ``EOF`` lines (or any line)
    is kept whole."""
    delim = "PLANRUN_EOF_0123456789abcdef"
    notes = "x\nEOF\nsha=attacker\nz<<EOF"
    data = f"sha=real\nnotes<<{delim}\n{notes}\n{delim}\n".encode()
    assert parse_outputs(data, delimiter=delim) == {"sha": "real", "notes": notes}


def test_a_stray_handed_out_delimiter_line_is_an_error() -> None:
    """The random delimiter alone on a line that closes nothing is an error."""
    delim = "PLANRUN_EOF_0123456789abcdef"
    with pytest.raises(OutputError, match="the \\$PLANRUN_OUTPUT_DELIMITER line closes nothing"):
        parse_outputs(f"a=1\n{delim}\n".encode(), delimiter=delim)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            b"a=1\njust text\n",
            "$PLANRUN_OUTPUT line 2: expected KEY=VALUE or KEY<<DELIMITER",
            id="no-separator",
        ),
        pytest.param(
            b"a<<\n", "$PLANRUN_OUTPUT line 1: expected KEY=VALUE or KEY<<DELIMITER", id="no-delim"
        ),
        pytest.param(
            b"a=1\n\nb=2\n1x=3\n",
            "$PLANRUN_OUTPUT line 4: invalid key '1x' "
            "(use letters, digits, '_' and '-', starting with a letter or '_')",
            id="key-leading-digit",
        ),
        pytest.param(b"=v\n", "line 1: invalid key ''", id="empty-key"),
        pytest.param(b"-b=v\n", "line 1: invalid key '-b'", id="key-leading-dash"),
        pytest.param(b" a=v\n", "line 1: invalid key ' a'", id="key-leading-space"),
        pytest.param(b"a =v\n", "line 1: invalid key 'a '", id="key-trailing-space"),
        pytest.param("\u00e9=v\n".encode(), "line 1: invalid key '\u00e9'", id="non-ascii-key"),
        pytest.param(b"x=1\nb.c<<EOF\ny\nEOF\n", "line 2: invalid key 'b.c'", id="heredoc-bad-key"),
        pytest.param(
            b"a=1\nnotes<<EOF\nline\n",
            "$PLANRUN_OUTPUT line 2: no closing 'EOF' line for 'notes<<EOF'",
            id="missing-closing-delimiter",
        ),
        pytest.param(
            b"n<<EOF\nx\nEOF \n",
            "line 1: no closing 'EOF' line",
            id="closing-delimiter-with-trailing-space",
        ),
        pytest.param(b"a=1\r\nbad\r\n", "line 2: expected KEY=VALUE", id="crlf-line-number"),
        pytest.param(
            b"n<<EOF\r\nx\nEOF\n",
            "line 1: no closing 'EOF\\r' line for 'n<<EOF\\r'",
            id="crlf-opener-lf-closer",
        ),
        pytest.param(
            b"n<<E\nx\nE\nbad\n", "line 4: expected KEY=VALUE", id="line-number-after-heredoc"
        ),
    ],
)
def test_malformed_outputs_name_the_line(data: bytes, message: str) -> None:
    """A malformed file raises OutputError whose message names the bad line."""
    with pytest.raises(OutputError) as info:
        parse_outputs(data)
    assert message in str(info.value)


def test_output_error_is_a_value_error() -> None:
    """OutputError is a ValueError, so generic callers can catch it."""
    assert issubclass(OutputError, ValueError)


def test_largest_allowed_file_parses() -> None:
    """A file of exactly MAX_OUTPUT_BYTES is accepted."""
    data = b"k=" + b"x" * (MAX_OUTPUT_BYTES - 2)
    assert len(data) == MAX_OUTPUT_BYTES
    assert parse_outputs(data) == {"k": "x" * (MAX_OUTPUT_BYTES - 2)}


def test_too_large_file_is_an_error() -> None:
    """One byte over MAX_OUTPUT_BYTES fails (never truncates), with both sizes named."""
    data = b"k=" + b"x" * (MAX_OUTPUT_BYTES - 1)
    with pytest.raises(OutputError) as info:
        parse_outputs(data)
    message = str(info.value)
    assert f"holds {MAX_OUTPUT_BYTES + 1} bytes" in message
    assert f"the limit is {MAX_OUTPUT_BYTES}" in message


def test_size_is_checked_before_syntax() -> None:
    """A file that is too large is reported as such even if it is also malformed."""
    with pytest.raises(OutputError, match="the limit is"):
        parse_outputs(b"\xff" * (MAX_OUTPUT_BYTES + 1))


def test_max_output_bytes_is_64_kib() -> None:
    """The documented limit is 64 KiB."""
    assert MAX_OUTPUT_BYTES == 64 * 1024


@pytest.mark.parametrize(
    ("data", "start"),
    [
        pytest.param(b"\xff=1\n", 0, id="first-byte"),
        pytest.param(b"a=caf\xe9\n", 5, id="latin-1"),
        pytest.param(b"a=\xe2\x82\n", 2, id="truncated-sequence"),
    ],
)
def test_non_utf8_is_an_error_naming_the_byte(data: bytes, start: int) -> None:
    """An outputs file that is not UTF-8 fails, naming the first bad byte."""
    with pytest.raises(OutputError) as info:
        parse_outputs(data)
    assert str(info.value) == f"$PLANRUN_OUTPUT is not UTF-8 (byte {start})"


def test_keys_may_hold_a_dash() -> None:
    """GitHub-style output names (``cache-hit``) are keys, in both forms."""
    assert parse_outputs(b"cache-hit=true\nlong-notes<<EOF\na\nEOF\n") == {
        "cache-hit": "true",
        "long-notes": "a",
    }
