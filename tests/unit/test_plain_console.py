"""The CLI's plain console (``cli/plain_console.py``) writes exactly what rich's
console writes to a stream that is neither a terminal nor coloured, for any text and
markup, and hands to rich what it does not write itself."""

from __future__ import annotations

import io
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich._emoji_codes import EMOJI
from rich.markup import escape as rich_escape

from planrun.cli import common, plain_console
from planrun.cli.common import make_console
from planrun.cli.plain_console import PlainConsole, escape

#: Pieces that rich treats specially: tags, escapes, emoji codes, tabs and controls.
PIECES = st.sampled_from(
    [
        "[", "]", "[/]", "[bold]", "[red]", "[bold green]", "[/red]", "[link=x]", "[@click]",
        "\\", "\\[", "\\\\[", ":", ":smile:", ":100:", ":12:", ":+1:", ":-1:", ":x:",
        "12:30:00.123", "\t", "\n", "\r", "\x1b[31m", "\x07", "\x00", " ", "a", "Z", "é",
        "…", "step-1", "[a]", "[#fff]", "::", ":smile-text:",
    ]
)  # fmt: skip
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=8).map("".join)


def _written(console: object, text: str, markup: bool | None) -> tuple[str, str | None]:
    """What ``console.print(text, markup=...)`` writes to stdout, and the error's type."""
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        console.print(text, markup=markup)  # type: ignore[attr-defined]
    except Exception as exc:  # the same error is what is compared
        return out.getvalue(), type(exc).__name__
    finally:
        sys.stdout = saved
    return out.getvalue(), None


def _plain_console() -> PlainConsole:
    """What ``make_console()`` gives for stdout that is not a terminal nor coloured
    (made here: the environment running the tests may ask for colour)."""
    return PlainConsole(
        stderr=False,
        make=lambda: common._console_class()(
            stderr=False,
            force_terminal=False,
            color_system=None,
            no_color=True,
            highlight=False,
            soft_wrap=True,
            width=None,
        ),
    )


def _pair() -> tuple[PlainConsole, object]:
    plain = _plain_console()
    return plain, plain.rich()


@settings(max_examples=400, deadline=None)
@given(text=TEXTS, markup=st.sampled_from([None, True, False]))
@example(text="run x [bold green]succeeded[/] in 0.0s", markup=None)
@example(text="12:00:01.000 UTC a running", markup=False)
@example(text="a \\[b] :smile: [/]", markup=None)
def test_writes_what_rich_writes(text: str, markup: bool | None) -> None:
    plain, rich = _pair()
    assert _written(plain, text, markup) == _written(rich, text, markup)


def test_plain_lines_load_no_rich_console() -> None:
    """The common lines are written without the rich console being made."""
    plain = _plain_console()
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        plain.print("run 1 [bold green]succeeded[/] in 0.0s (1 succeeded)")
        plain.print("19:00:07.617 UTC a running (attempt 1/1, pid 1)", markup=False)
    finally:
        sys.stdout = saved
    assert plain._rich is None
    assert out.getvalue() == (
        "run 1 succeeded in 0.0s (1 succeeded)\n19:00:07.617 UTC a running (attempt 1/1, pid 1)\n"
    )


@given(text=TEXTS)
def test_escape_is_richs(text: str) -> None:
    assert escape(text) == rich_escape(text)


def test_digit_emoji_names_are_richs() -> None:
    """A clock's ``:30:`` is written as it is because no emoji has that name; the
    digit-only names rich has are known here."""
    assert {name for name in EMOJI if name.isdigit()} == plain_console._DIGIT_EMOJI


@pytest.mark.parametrize("color", ["always"])
def test_only_a_plain_stream_gets_a_plain_console(
    color: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planrun.cli.params import ColorChoice

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert isinstance(make_console(), PlainConsole)  # pytest's stdout is no terminal
    assert not isinstance(make_console(color=ColorChoice(color)), PlainConsole)
    assert not isinstance(make_console(width=400), PlainConsole)
