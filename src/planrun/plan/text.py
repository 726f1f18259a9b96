"""How plan values are shown in messages, and which strings can be stored at all."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["encodable", "shown"]

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def shown(text: Any, limit: int = 80) -> str:
    """``text`` fit to print in a message on one line: escaped (``\\n``, ``\\ud800``)
    unless printable, at most ``limit`` characters."""
    out = str(text)
    if not out.isprintable():
        out = out.encode("unicode_escape").decode("ascii")
    return out if len(out) <= limit else out[: limit - 3] + "..."


def encodable(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (no lone surrogate such as ``\\ud800``,
    which a JSON escape or undecodable command-line bytes produce)."""
    return text.isascii() or _SURROGATE.search(text) is None
