"""The escapes of the CI reports (cli/github.py, cli/junit.py) hold for any text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from planrun.cli.github import escape_data, escape_property, markdown_text
from planrun.cli.junit import xml_text


def _runner_unescape(text: str) -> str:
    """GitHub's runner, reversing the escapes (``%25`` last, as it does)."""
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


@given(st.text())
def test_workflow_command_values_round_trip(text: str) -> None:
    """A property holds no ``:``, ``,``, CR or LF (they would end it); data no CR/LF;
    the runner gets the text back."""
    prop = escape_property(text)
    assert not set(prop) & {":", ",", "\r", "\n"}
    assert _runner_unescape(prop) == text
    data = escape_data(text)
    assert not set(data) & {"\r", "\n"}
    assert _runner_unescape(data) == text


@given(st.text())
def test_markdown_text_has_nothing_markdown_or_html_acts_on(text: str) -> None:
    """Only the ``<br>`` it writes for a line break is markup."""
    out = markdown_text(text).replace("<br>", "")
    assert not set(out) & set("|<>`*_[]\\\n\r@")


@given(st.text(alphabet=st.characters(exclude_categories=())))  # surrogates too
def test_xml_text_always_parses(text: str) -> None:
    """Any string (NUL, ESC, lone surrogates, U+FFFE) made safe is read back by a
    strict XML parser, in text and in an attribute."""
    element = ET.Element("case", message=xml_text(text))
    element.text = xml_text(text)
    data = ET.tostring(element, encoding="utf-8")
    back = ET.fromstring(data)  # noqa: S314 - our own document
    assert back.get("message") == xml_text(text)
