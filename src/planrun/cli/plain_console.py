"""A console for a stream that is not a terminal and gets no colour, that loads rich
only when it must.

``planrun run`` writing to a pipe, a file or CI prints one plain line per change and a
summary: lines rich writes exactly as given, less markup, once it has imported ~12 ms
of modules. :class:`PlainConsole` writes those lines itself, exactly as rich's
console (``force_terminal=False``, no colour, ``highlight=False``, ``soft_wrap=True``)
would: markup tags removed, ``\\[`` escapes undone. Anything else — a renderable
(``Text``, a table), a tab (rich expands it), a control character (rich drops some),
an emoji code (``:smile:``, which rich replaces), markup it would parse in other ways
or reject, or options beyond ``markup``/``highlight``/``soft_wrap``/``end`` — goes to
a real rich console with the same settings, made on first need; so does every other
attribute. :func:`escape` is rich's ``rich.markup.escape``, without importing rich.
"""

from __future__ import annotations

import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["PlainConsole", "escape", "quiet_stream"]

#: rich's markup tag (``rich.markup.RE_TAGS``): backslashes, then ``[tag]``.
_TAG = re.compile(r"""((\\*)\[([a-z#/@][^[]*?)])""", re.VERBOSE)
#: The tags this module removes itself: a style of words, or a close (``[/]``, ``[/x]``).
_SIMPLE_TAG = re.compile(r"/?[a-z][a-z ]*|/")
#: rich's emoji code (``rich._emoji_replace``): a name between colons, no space.
_EMOJI = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")
#: The digit-only names of rich's emoji table (a clock's ``12:30:00`` is not one).
_DIGIT_EMOJI = frozenset({"100", "1234"})
#: What rich's ``escape`` rewrites: backslashes before something that reads as a tag.
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def escape(markup: str) -> str:
    """Text made safe to put in markup (``rich.markup.escape``, to the character)."""
    markup = _ESCAPE.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", markup)
    if markup.endswith("\\") and not markup.endswith("\\\\"):
        return markup + "\\"
    return markup


def _segments(markup: str) -> list[str] | None:
    """The texts rich's markup parser yields for ``markup``, tags left out, or None
    when this module does not remove its tags itself (see the module docstring)."""
    parts: list[str] = []
    position = opened = 0
    for match in _TAG.finditer(markup):
        full, escapes, tag = match.groups()
        start, end = match.span()
        if start > position:
            parts.append(markup[position:start])
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            if backslashes:
                parts.append("\\" * backslashes)
            if escaped:  # an escaped tag: the tag's text, as written
                parts.append(full[len(escapes) :])
                continue
        if not _SIMPLE_TAG.fullmatch(tag) or (tag.startswith("/") and tag != "/"):
            return None
        opened += -1 if tag == "/" else 1
        if opened < 0:  # a close with nothing open: rich's MarkupError
            return None
    if position < len(markup):
        parts.append(markup[position:])
    # rich undoes a ``\\[`` that escapes no tag in every text too.
    return [part.replace("\\[", "[") for part in parts]


def _unchanged(segment: str) -> bool:
    """Whether rich prints ``segment`` (one text of the markup) as it is: no tab,
    control character or emoji code in it."""
    if not "".join(segment.split("\n")).isprintable():
        return False
    for match in _EMOJI.finditer(segment):
        name = match.group(2).lower()
        if not name.isdigit() or name in _DIGIT_EMOJI:
            return False
    return True


def quiet_stream(stream: IO[str]) -> None:
    """Send what is still written to ``stream`` (and the interpreter's final flush)
    to /dev/null: its reader went away."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):  # not a real file (a test's StringIO): nothing to do
        pass
    finally:
        os.close(devnull)


class PlainConsole:
    """Stands for ``rich.console.Console`` on a stream that is neither a terminal nor
    coloured (see the module docstring); ``make`` builds the real one when needed."""

    is_terminal = False
    record = False
    quiet = False
    no_color = True
    color_system = None

    def __init__(self, *, stderr: bool, make: Any) -> None:
        self.stderr = stderr
        self._make = make
        self._rich: Console | None = None

    @property
    def file(self) -> TextIO:
        """The stream, looked up when used (as rich does: tests swap it)."""
        return sys.stderr if self.stderr else sys.stdout

    def rich(self) -> Console:
        """The real rich console with the same settings (made once)."""
        if self._rich is None:
            self._rich = self._make()
        return self._rich

    def __getattr__(self, name: str) -> Any:
        # Only for what is not defined here: everything else a rich console has.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.rich(), name)

    def print(
        self,
        *objects: Any,
        markup: bool | None = None,
        highlight: bool | None = None,
        soft_wrap: bool | None = None,
        end: str = "\n",
        **other: Any,
    ) -> None:
        """``Console.print``: plain text written here, anything else by rich."""
        text = self._own(objects, markup, highlight, soft_wrap, other)
        if text is None:
            self.rich().print(
                *objects, markup=markup, highlight=highlight, soft_wrap=soft_wrap, end=end, **other
            )
            return
        try:
            self.file.write(text + end)
            self.file.flush()
        except BrokenPipeError:
            self.on_broken_pipe()

    def on_broken_pipe(self) -> None:
        """As the CLI's rich console does: the rest of the output goes to /dev/null."""
        quiet_stream(self.file)

    @staticmethod
    def _own(
        objects: tuple[Any, ...],
        markup: bool | None,
        highlight: bool | None,
        soft_wrap: bool | None,
        other: dict[str, Any],
    ) -> str | None:
        """The text to write for a ``print`` call, or None if rich must draw it."""
        if other or highlight or soft_wrap is False or len(objects) != 1:
            return None
        (text,) = objects
        if type(text) is not str:
            return None
        segments = _segments(text) if markup is not False and "[" in text else [text]
        if segments is None or not all(_unchanged(s) for s in segments):
            return None
        return "".join(segments)
