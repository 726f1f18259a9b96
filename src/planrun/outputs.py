"""Step outputs: the ``$PLANRUN_OUTPUT`` file format. Pure, no I/O.

A step sets outputs by writing lines to the file named by ``$PLANRUN_OUTPUT``::

    sha=3f9a2c1
    notes<<PLANRUN_EOF_6f1c...
    first line
    second line
    PLANRUN_EOF_6f1c...

``KEY=VALUE`` sets one line (everything after the first ``=``); ``KEY<<DELIM`` starts a
multi-line value that ends at a line that is exactly ``DELIM``. Keys are
``[A-Za-z_][A-Za-z0-9_-]*`` (a ``-`` is allowed, as in GitHub's ``cache-hit``); blank
lines are ignored. Printing to stdout never sets an output. Values keep every byte: a
``\\r`` before a line's ``\\n`` is part of the value (and of a delimiter line: a CRLF
file's ``EOF\\r`` closes ``KEY<<EOF\\r``).

Why a key can be set only once (a second ``KEY=`` or ``KEY<<`` is an error): a value
written between a fixed delimiter (``notes<<EOF``) may itself hold the line ``EOF``,
which ends it early, and the lines after it would then be read as ``KEY=VALUE`` lines
(the ``GITHUB_ENV`` injection, CVE-2022-35954). The parser cannot tell such lines from
the step's own, but with keys set once they can never override a key the step sets:
the file fails instead. The real fix is a delimiter no value can contain: planrun hands
every attempt a random one in ``$PLANRUN_OUTPUT_DELIMITER`` (``delimiter`` here); a
line equal to it that does not close a value is an error too.
"""

from __future__ import annotations

import re

from .subst import KEY_PATTERN

__all__ = ["MAX_OUTPUT_BYTES", "OutputError", "parse_outputs", "too_large"]

#: The largest outputs file a step may write (larger fails the attempt, never truncates).
MAX_OUTPUT_BYTES = 64 * 1024

#: Output keys are named like variables, and may hold a ``-``.
_KEY = re.compile(KEY_PATTERN)

_WHERE = "$PLANRUN_OUTPUT line"


class OutputError(ValueError):
    """The outputs file is malformed or too large (the message says where)."""


def too_large(size: int) -> OutputError:
    """The error for an outputs file of ``size`` bytes, over the limit."""
    return OutputError(
        f"$PLANRUN_OUTPUT holds {size} bytes; the limit is {MAX_OUTPUT_BYTES} "
        "(write large data to a file and pass its path)"
    )


def _shown(text: str) -> str:
    """``text`` quoted for a message, control characters (``\\r``) escaped."""
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + "'"


def parse_outputs(data: bytes, delimiter: str | None = None) -> dict[str, str]:
    """Parse an outputs file; raise :class:`OutputError` naming the bad line.

    ``delimiter`` is the attempt's ``$PLANRUN_OUTPUT_DELIMITER`` (None: not known).
    """
    if len(data) > MAX_OUTPUT_BYTES:
        raise too_large(len(data))
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise OutputError(f"$PLANRUN_OUTPUT is not UTF-8 (byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: dict[str, str] = {}
    set_on: dict[str, int] = {}
    #: Delimiters used so far, with the line of the value they opened.
    closed: dict[str, tuple[str, int]] = {}
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if sep and "<<" not in key:
            _set(out, set_on, _key(key, number), value, number)
            continue
        key, sep, end = line.partition("<<")
        if not sep or not end:
            raise _bad_line(line, number, closed, delimiter)
        body: list[str] = []
        while i < len(lines) and lines[i] != end:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise OutputError(
                f"{_WHERE} {number}: no closing {_shown(end)} line for {_shown(key + '<<' + end)}"
            )
        i += 1  # the delimiter line
        _set(out, set_on, _key(key, number), "\n".join(body), number)
        closed[end] = (key, number)
    return out


def _set(out: dict[str, str], set_on: dict[str, int], key: str, value: str, number: int) -> None:
    if key in set_on:
        raise OutputError(
            f"{_WHERE} {number}: '{key}' is already set on line {set_on[key]} (a key is set "
            "once; if a multi-line value held its delimiter line, use "
            "$PLANRUN_OUTPUT_DELIMITER as the delimiter)"
        )
    set_on[key] = number
    out[key] = value


def _bad_line(
    line: str, number: int, closed: dict[str, tuple[str, int]], delimiter: str | None
) -> OutputError:
    """The error for a line that is neither ``KEY=VALUE`` nor ``KEY<<DELIMITER``."""
    if line in closed:
        key, opened = closed[line]
        return OutputError(
            f"{_WHERE} {number}: {_shown(line)} closes nothing: the value of '{key}' (line "
            f"{opened}) held its delimiter line and ended early; use "
            "$PLANRUN_OUTPUT_DELIMITER as the delimiter"
        )
    if delimiter is not None and line == delimiter:
        return OutputError(
            f"{_WHERE} {number}: the $PLANRUN_OUTPUT_DELIMITER line closes nothing "
            "(no 'KEY<<' line opened a value with it)"
        )
    return OutputError(f"{_WHERE} {number}: expected KEY=VALUE or KEY<<DELIMITER")


def _key(key: str, number: int) -> str:
    if not _KEY.fullmatch(key):
        raise OutputError(
            f"{_WHERE} {number}: invalid key {_shown(key)} "
            "(use letters, digits, '_' and '-', starting with a letter or '_')"
        )
    return key
