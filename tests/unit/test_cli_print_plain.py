"""``view.print_plain`` writes exactly what rich's ``console.print`` of the same text
writes (it only skips rich's render): on terminals and files, coloured or not."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from planrun.cli.view import print_plain

TEXTS = [
    "12:00:01 build succeeded in 0.1s",
    "emoji codes :smile: and :thumbs_up: are replaced",
    "control codes: bell\x07 cr\r backspace\x08 vt\x0b ff\x0c",
    "[bold]not markup[/bold] [red]",
    "wide 漢字 " * 30,
    "marks ✔ ▶ · and a zero-width\u200bspace",
    "two\nlines",
    "a tab\there",
    "x" * 300,
    "",
]


def _console(out: io.StringIO, terminal: bool, colored: bool) -> Console:
    return Console(
        file=out,
        force_terminal=terminal,
        color_system="truecolor" if colored else None,
        no_color=not colored,
        highlight=False,
        soft_wrap=True,
        width=60,
    )


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("colored", [False, True])
def test_print_plain_writes_what_rich_writes(terminal: bool, colored: bool) -> None:
    by_rich, by_us = io.StringIO(), io.StringIO()
    rich_console, ours = _console(by_rich, terminal, colored), _console(by_us, terminal, colored)
    for text in TEXTS:
        rich_console.print(text, markup=False, highlight=False, soft_wrap=True)
        print_plain(ours, text)
    assert by_us.getvalue() == by_rich.getvalue()
