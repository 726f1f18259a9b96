"""Secret masking: replace secret values by ``***`` in text, bytes, streams and data.

Pure, no I/O. A :class:`Masker` knows the run's secret values and the forms in which
a step (or planrun's own error messages) is likely to print them: the raw value, its
JSON-escaped form (as ``json.dumps`` writes it, with and without ``ensure_ascii``), its
Python ``repr`` form and, for multi-line secrets, each line of four characters or
more. Transformed values (base64, URL-encoded, split by the program itself) are not
recognised: masking is a safety net, not a guarantee, and the README says so.

:class:`StreamMasker` masks a byte stream read in arbitrary chunks: a secret split
across two reads is still masked, because the tail of a chunk that could still grow
into a (longer) secret form is held back until the next read (or the end of the
stream). The result is byte-for-byte what :meth:`Masker.text` gives on the whole
stream, wherever the reads split it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "Masker", "StreamMasker"]

MASK = "***"
#: Lines of a multi-line secret shorter than this are not masked on their own.
MIN_LINE = 4
#: Keys of event/record/plan fields that hold identifiers (or lists and maps of them),
#: never free text: not masked, so a secret that happens to equal a step id cannot
#: break the event stream or the dependency graph a reader rebuilds from it.
IDENTIFIER_KEYS = frozenset(
    {
        "type",
        "run_id",
        "step_id",
        "ts",
        "seq",
        "state",
        "id",
        "plan_id",
        "depends_on",
        "rerun",
        "kept",
        "failed_steps",
    }
)


def _forms(value: str) -> set[str]:
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }
    if "\n" in value:
        for line in value.splitlines():
            if len(line.strip()) >= MIN_LINE:
                forms.add(line.strip())
    return {f for f in forms if f}


class Masker:
    """Masks a fixed set of secret values. An empty masker changes nothing."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in secrets:
            if value:
                forms |= _forms(value)
        # Longest first: a longer form wins over a shorter one at the same position.
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        self.forms = tuple(ordered)
        self._bytes = tuple(f.encode() for f in ordered)
        self._text = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bin = re.compile(b"|".join(map(re.escape, self._bytes))) if ordered else None
        self.longest = max((len(b) for b in self._bytes), default=0)

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, value: str) -> str:
        """``value`` with every secret form replaced by ``***``."""
        if self._text is None:
            return value
        return self._text.sub(MASK, value)

    def data(self, value: Any, key: object = None) -> Any:
        """Mask every string inside builtins (dicts, lists), keys included, except
        whatever sits under an identifier field (see ``IDENTIFIER_KEYS``)."""
        if self._text is None or key in IDENTIFIER_KEYS:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            # Non-string keys (YAML allows ints) are not text: left as they are.
            return {
                (self.text(k) if isinstance(k, str) else k): self.data(v, k)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value

    def stream(self) -> StreamMasker:
        """A new masker for one byte stream."""
        return StreamMasker(self)

    def _sub_bytes(self, data: bytes) -> bytes:
        assert self._bin is not None
        return self._bin.sub(MASK.encode(), data)

    def _undecided_from(self, data: bytes) -> int:
        """First position of ``data`` where a secret form could still start and grow
        with more input (``data[p:]`` is a proper prefix of some form); ``len(data)``
        if none. Matching before that position is final whatever comes next."""
        for p in range(max(0, len(data) - self.longest + 1), len(data)):
            tail = data[p:]
            if any(len(form) > len(tail) and form.startswith(tail) for form in self._bytes):
                return p
        return len(data)


class StreamMasker:
    """Masks a byte stream fed in chunks; see the module docstring."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        """Masked bytes that are safe to write now (a possible secret start is held).

        ``_carry`` is raw (unmasked) input: masking it early could mask a shorter
        form that the next chunk would have extended into a longer one.
        """
        masker = self._masker
        if not masker:
            return chunk
        assert masker._bin is not None
        data = self._carry + chunk
        limit = masker._undecided_from(data)
        out: list[bytes] = []
        pos = 0
        while (m := masker._bin.search(data, pos)) is not None and m.start() < limit:
            out += (data[pos : m.start()], MASK.encode())
            pos = m.end()
        if pos < limit:
            out.append(data[pos:limit])
            pos = limit
        self._carry = data[pos:]
        return b"".join(out)

    def flush(self) -> bytes:
        """Whatever is held back, masked, at the end of the stream."""
        rest, self._carry = self._carry, b""
        return self._masker._sub_bytes(rest) if rest else rest
