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

import enum
import json
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from .events import Event, StepFinished, StepInfo

__all__ = ["MASK", "MIN_SECRET", "Masker", "StreamMasker", "mask_event", "secret_problem"]

MASK = "***"
#: Lines of a multi-line secret shorter than this are not masked on their own.
MIN_LINE = 4
#: Shortest secret accepted: a shorter value (``e``, ``ab``, ``1``) occurs everywhere, in
#: ids, paths and numbers, so masking it would destroy far more than it hides.
MIN_SECRET = 4
#: Keys of plan/record fields that hold identifiers or paths (or lists and maps of
#: them), never free text: :meth:`Masker.data` does not mask their values, so a secret
#: that happens to equal a step id cannot break the dependency graph a reader rebuilds.
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
        "plan_path",
        "log_path",
        # The plan's secret names (never their values).
        "secrets",
    }
)
#: Variables whose value planrun makes (a path): kept as they are, like ``plan_path``.
PATH_VARIABLES = frozenset({"PLAN_DIR"})

# How each event field is masked. Every field of every event type is in exactly one
# of these sets (tests/unit/test_masking.py checks it), so a new field is a decision.
#: Free text (messages): masked.
EVENT_TEXT_FIELDS = frozenset({"reason", "error", "warning"})
#: Maps of names to free text: values masked (``variables``: except PATH_VARIABLES);
#: keys are variable names from the plan and stay. ``outputs`` keys are written by a
#: step, so a key that holds a secret is masked too (and listed in ``masked_outputs``).
EVENT_TEXT_MAP_FIELDS = frozenset({"variables", "outputs"})
#: ``steps``: a list of StepInfo whose ``name`` (display text) is masked.
EVENT_STEP_LIST_FIELDS = frozenset({"steps"})
#: ``items`` (``steps_expanded``): JSON data from a step's output; ``trigger``
#: (``run_started``): what started the run (changed paths, shas, a slot), from outside
#: the plan. Every string in them is masked (structurally, keys kept).
EVENT_DATA_FIELDS = frozenset({"items", "trigger"})
#: Identifiers, paths planrun made, numbers, flags, enums, times: never masked.
EVENT_KEPT_FIELDS = frozenset(
    {
        "type",
        "run_id",
        "seq",
        "ts",
        "plan_id",
        "plan_path",
        "max_concurrency",
        "pid",
        "rerun",
        "kept",
        "step_id",
        "attempt",
        "log_path",
        # A child run's id (planrun makes it from the run and step ids).
        "child_run_id",
        "state",
        "exit_code",
        "duration_sec",
        "delay_sec",
        "attempts",
        "masked_outputs",  # not masked: set by mask_event from ``outputs``
        "owner_pid",
        # The executor's short name (planrun's or the executor's own, not free text).
        "executor",
        # The lock name: secrets are refused in it at validation.
        "name",
        "waited_sec",
        "reclaimed_from_run",
        "reclaimed_from_pid",
        # The lock's canonical path: secrets are refused in it at validation too.
        "path",
        # concurrency_capped: numbers.
        "requested",
        "effective",
        "fd_limit",
        "failed_steps",
    }
)


def secret_problem(value: str) -> str | None:
    """Why ``value`` cannot be a secret (``"empty"``, ``"shorter than 4 characters"``,
    ``"not valid UTF-8"``),
    or None if it can. The value itself is never part of the answer."""
    if not value:
        return "empty"
    if len(value) < MIN_SECRET:
        return f"shorter than {MIN_SECRET} characters"
    try:
        value.encode()
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 (decoded from the environment with surrogateescape):
        # they could be neither masked in text nor stored.
        return "not valid UTF-8"
    return None


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

    def __init__(self, secrets: Iterable[str], keep: Iterable[str] = ()) -> None:
        """``keep``: identifiers and paths planrun made (a run id, step ids, the state
        dir) that are stored in clear anyway; in free text, a secret occurrence that lies
        wholly inside one of them is left alone (see :meth:`text`)."""
        self._secrets = tuple(secrets)
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
        # Only the words that hold a secret form matter, longest first.
        words = sorted(
            {w for w in keep if any(f in w for f in ordered)}, key=lambda w: (-len(w), w)
        )
        self._keep = re.compile("|".join(map(re.escape, words))) if words else None

    def keeping(self, words: Iterable[str]) -> Masker:
        """This masker, also keeping ``words`` (see ``__init__``)."""
        return Masker(self._secrets, words)

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, value: str, *, keep: bool = True) -> str:
        """``value`` with every secret form replaced by ``***``, except occurrences
        that lie wholly inside a kept word (one that starts inside a kept word and runs
        past its end is masked: it would show the secret). ``keep=False`` for data (a
        variable or output value), where a value equal to a kept word is the secret."""
        if self._text is None:
            return value
        spans = [m.span() for m in self._keep.finditer(value)] if self._keep and keep else []
        if not spans:
            return self._text.sub(MASK, value)
        out: list[str] = []
        pos = search = 0
        while (m := self._text.search(value, search)) is not None:
            start, end = m.span()
            if any(a <= start and end <= b for a, b in spans):
                search = start + 1  # a longer form may still start inside and run past
                continue
            out += (value[pos:start], MASK)
            pos = search = end
        out.append(value[pos:])
        return "".join(out)

    def data(self, value: Any, key: object = None) -> Any:
        """Mask every string *value* inside builtins (dicts, lists). Never a dict key,
        never a non-string (numbers, booleans, None), never whatever sits under an
        identifier or path field (see ``IDENTIFIER_KEYS``): the result has the same
        shape and types as ``value``, so it converts back to the type it came from."""
        if self._text is None or key in IDENTIFIER_KEYS:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value

    def struct(self, value: Any, key: object = None) -> Any:
        """``value`` (a msgspec struct such as a :class:`~planrun.model.Plan`, or lists,
        dicts and scalars of them) of the same type, with secrets masked in its free-text
        strings only: never in an enum value (``on_failure``...), a dict key, a
        non-string, or a field of ``IDENTIFIER_KEYS`` (ids, names, paths), so the result
        still validates as its type."""
        if self._text is None or key in IDENTIFIER_KEYS or isinstance(value, enum.Enum):
            return value
        if isinstance(value, str):
            return self.text(value, keep=False)
        if isinstance(value, msgspec.Struct):
            changes = {
                name: masked
                for name in value.__struct_fields__
                if (masked := self.struct(old := getattr(value, name), name)) is not old
            }
            return msgspec.structs.replace(value, **changes) if changes else value
        if isinstance(value, dict):
            return {k: self.struct(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.struct(v) for v in value]
        return value

    def variables(self, values: dict[str, str]) -> dict[str, str]:
        """Variables as stored and shown: every value masked but ``PATH_VARIABLES``."""
        if self._text is None:
            return values
        return {
            k: v if k in PATH_VARIABLES else self.text(v, keep=False) for k, v in values.items()
        }

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


def mask_event(event: Event, masker: Masker) -> Event:
    """``event`` with secrets masked in its free-text fields only (see the
    ``EVENT_*_FIELDS`` sets): ids, paths, numbers and keys are kept, and every field
    keeps its type, so the result encodes and decodes as ``event`` does.

    A succeeded step's outputs that held a secret are listed in ``masked_outputs``, so
    a resume knows their stored values are unusable.
    """
    if not masker:
        return event
    changes: dict[str, Any] = {}
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if value is None:
            continue
        if name in EVENT_TEXT_FIELDS:
            masked: Any = masker.text(value)
        elif name == "variables":
            masked = masker.variables(value)
        elif name == "outputs":
            masked = {
                masker.text(k, keep=False): masker.text(v, keep=False) for k, v in value.items()
            }
        elif name in EVENT_STEP_LIST_FIELDS:
            masked = [_mask_step_info(info, masker) for info in value]
        elif name in EVENT_DATA_FIELDS:
            masked = masker.data(value)
        else:
            continue
        if masked != value:
            changes[name] = masked
    if isinstance(event, StepFinished) and "outputs" in changes:
        outputs = event.outputs or {}
        held = [
            masker.text(k, keep=False)
            for k, v in outputs.items()
            if masker.text(v, keep=False) != v or masker.text(k, keep=False) != k
        ]
        changes["masked_outputs"] = list(dict.fromkeys(held)) or None
    return msgspec.structs.replace(event, **changes) if changes else event


def _mask_step_info(info: StepInfo, masker: Masker) -> StepInfo:
    name = masker.text(info.name)
    return info if name == info.name else msgspec.structs.replace(info, name=name)


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
