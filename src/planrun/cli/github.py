"""GitHub Actions mode (``--ci github``, or ``GITHUB_ACTIONS=true``): what a run leaves
in the workflow's UI once it has finished.

- one ``::error title=...::message`` workflow command per failed, timed-out or crashed
  step, on stdout (GitHub turns it into an annotation on the job), escaped the way the
  runner unescapes it (``%``, CR, LF in the data; also ``:`` and ``,`` in a property);
- a Markdown job summary (run, plan, state, duration, a table of the steps, each
  failed step's log tail) appended to the file ``$GITHUB_STEP_SUMMARY`` names.

Everything is fed from the run's final :class:`~planrun.state.RunView` and masked with
the run's masker. Text from steps (ids, reasons, log lines) is escaped so it cannot
break the table or inject Markdown/HTML into the summary.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..masking import Masker
from ..model import StepState
from ..state import RunView, StepView
from .junit import run_seconds, step_detail, step_seconds, step_tail, xml_text
from .view import format_duration

__all__ = [
    "ANNOTATION_LINES",
    "error_commands",
    "escape_data",
    "escape_property",
    "markdown_text",
    "summary_markdown",
    "write_summary",
]

#: Log lines quoted in an annotation (the summary and the JUnit report hold more).
ANNOTATION_LINES = 3
_ANNOTATED = (StepState.FAILED, StepState.TIMED_OUT, StepState.CRASHED)


def escape_data(text: str) -> str:
    """``text`` as a workflow command's data (the message): ``%``, CR and LF encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """``text`` as a workflow command's property value (e.g. ``title``): the data
    escapes, and ``:`` and ``,``, which would end the value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_commands(view: RunView, masker: Masker) -> list[str]:
    """One ``::error`` line per failed, timed-out or crashed step of ``view``."""
    lines = []
    for step in view.steps.values():
        if step.state not in _ANNOTATED:
            continue
        named = f" ({step.name})" if step.name != step.id else ""
        label = "" if step.critical else " (non-critical)"
        label = f" (handler {step.handler})" if step.handler else label
        title = masker.text(f"planrun step {step.id}{named} {step.state.value}{label}")
        message = masker.text(f"{step.id}: {step_detail(step)}")
        tail = step_tail(step, masker, ANNOTATION_LINES)
        if tail:
            message += "\n" + "\n".join(tail)
        # A terminal escape or NUL from a step's log is shown, not sent to the runner.
        title, message = xml_text(title), xml_text(message)
        lines.append(f"::error title={escape_property(title)}::{escape_data(message)}\n")
    return lines


#: Characters Markdown or HTML would act on in the summary (``|`` ends a table cell,
#: ``@`` mentions people, ``<`` opens a tag); written as numeric character references.
_MARKDOWN = re.compile(r"[\\`*_{}\[\]<>|#!~&@]")


def markdown_text(text: str) -> str:
    """``text`` as literal inline Markdown: every active character escaped, line
    breaks as ``<br>`` (a newline would end a table row)."""
    escaped = _MARKDOWN.sub(lambda m: f"&#{ord(m.group())};", xml_text(text))
    return "<br>".join(escaped.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _row(step: StepView, masker: Masker) -> str:
    state = step.state.value + ("" if step.critical else " (non-critical)")
    if step.handler:
        state = f"{step.state.value} (handler {step.handler})"
    attempts = f"{len(step.attempts)}/{step.max_attempts}" if step.attempts else ""
    took = format_duration(step_seconds(step)) if step.started_at else ""
    code = "" if step.exit_code is None else str(step.exit_code)
    cells = [masker.text(step.id), state, attempts, took, code]
    return "| " + " | ".join(markdown_text(c) for c in cells) + " |"


def _failures(view: RunView, masker: Masker) -> list[str]:
    out = []
    for step in view.steps.values():
        if step.state not in _ANNOTATED:
            continue
        named = f" ({step.name})" if step.name != step.id else ""
        detail = markdown_text(masker.text(f"{step.id}{named}: {step_detail(step)}"))
        tail = html.escape(xml_text("\n".join(step_tail(step, masker))))
        tail = tail.replace("@", "&#64;")  # no @mention from a log line
        out += ["", f"<details><summary>{detail}</summary>", "", f"<pre>{tail}</pre>"]
        out += ["</details>"]
    return out


def summary_markdown(view: RunView, masker: Masker, wall: float) -> str:
    """The job summary for the run ``view`` (``wall``: its duration if the view does
    not say it)."""
    since = " (this resume)" if view.resumed_at else ""
    facts = [
        ("run", view.run_id),
        ("plan", view.plan_id),
        ("state", view.state.value),
        ("duration", format_duration(run_seconds(view, wall)) + since),
    ]
    if view.exit_code is not None:
        facts.append(("exit code", str(view.exit_code)))
    if view.reason and view.state.value != "succeeded":
        facts.append(("reason", masker.text(view.reason)))
    lines = [f"### planrun: run {markdown_text(view.run_id)} {view.state.value}", ""]
    lines += [f"- **{name}**: {markdown_text(value)}" for name, value in facts]
    lines += ["", "| step | state | attempts | duration | exit code |", "|---|---|---|---|---|"]
    lines += [_row(step, masker) for step in view.steps.values()]
    lines += _failures(view, masker)
    return "\n".join(lines) + "\n\n"


def write_summary(text: str, env: Mapping[str, str] | None = None) -> str | None:
    """Append ``text`` to the file ``$GITHUB_STEP_SUMMARY`` names (nothing when it is
    unset); a warning to show when that file cannot be written, else None."""
    env = os.environ if env is None else env
    name = env.get("GITHUB_STEP_SUMMARY")
    if not name:
        return None
    try:
        with Path(name).open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        return f"planrun: warning: cannot write the job summary to {name}: {why}"
    return None
