"""Step outputs: the ``$PLANRUN_OUTPUT`` file format. Pure, no I/O.

A step sets outputs by writing lines to the file named by ``$PLANRUN_OUTPUT``::

    sha=3f9a2c1
    notes<<EOF
    first line
    second line
    EOF

``KEY=VALUE`` sets one line (everything after the first ``=``); ``KEY<<DELIM`` starts a
multi-line value that ends at a line that is exactly ``DELIM``. Keys are
``[A-Za-z_][A-Za-z0-9_]*``; a key set twice keeps its last value; blank lines are
ignored. Printing to stdout never sets an output.
"""

from __future__ import annotations

import re

from .model import VAR_NAME_PATTERN

__all__ = ["MAX_OUTPUT_BYTES", "OutputError", "parse_outputs", "too_large"]

#: The largest outputs file a step may write (larger fails the attempt, never truncates).
MAX_OUTPUT_BYTES = 64 * 1024

#: Output keys are named like variables.
_KEY = re.compile(VAR_NAME_PATTERN)


class OutputError(ValueError):
    """The outputs file is malformed or too large (the message says where)."""


def too_large(size: int) -> OutputError:
    """The error for an outputs file of ``size`` bytes, over the limit."""
    return OutputError(
        f"$PLANRUN_OUTPUT holds {size} bytes; the limit is {MAX_OUTPUT_BYTES} "
        "(write large data to a file and pass its path)"
    )


def parse_outputs(data: bytes) -> dict[str, str]:
    """Parse an outputs file; raise :class:`OutputError` naming the bad line."""
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
    i = 0
    while i < len(lines):
        line, number = lines[i].removesuffix("\r"), i + 1
        i += 1
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if sep and "<<" not in key:
            out[_key(key, number)] = value
            continue
        key, sep, delimiter = line.partition("<<")
        if not sep or not delimiter:
            raise OutputError(
                f"$PLANRUN_OUTPUT line {number}: expected KEY=VALUE or KEY<<DELIMITER"
            )
        body: list[str] = []
        while i < len(lines) and lines[i].removesuffix("\r") != delimiter:
            body.append(lines[i].removesuffix("\r"))
            i += 1
        if i == len(lines):
            raise OutputError(
                f"$PLANRUN_OUTPUT line {number}: no closing '{delimiter}' line for "
                f"'{key}<<{delimiter}'"
            )
        i += 1  # the delimiter line
        out[_key(key, number)] = "\n".join(body)
    return out


def _key(key: str, number: int) -> str:
    if not _KEY.fullmatch(key):
        raise OutputError(
            f"$PLANRUN_OUTPUT line {number}: invalid key '{key}' "
            "(use letters, digits and '_', not starting with a digit)"
        )
    return key
