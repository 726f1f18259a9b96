"""``--junit FILE``: a run's steps as a JUnit XML report, for CI test-report viewers.

One ``<testsuite>`` per run (named after the plan), one ``<testcase>`` per step:
``<failure>`` for a failed, timed-out or crashed step, ``<error>`` for one cancelled
while it ran, ``<skipped>`` for one that never started (skipped, cancelled before it
started); each carries the tail of its last log in ``<system-out>``. The report is fed
from the run's final :class:`~planrun.state.RunView` (the same reducer the summary
reads) and the step logs, masked with the run's masker. It is written atomically (a
temporary file in the same directory, then a rename), so a reader never sees half a file.

The helpers that say what happened to a step (:func:`step_seconds`,
:func:`step_detail`, :func:`step_tail`) are shared with ``cli/github.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

from ..errors import UsageError
from ..events import utc_now
from ..masking import Masker
from ..model import StepState
from ..state import RunView, StepView
from .view import log_tail

__all__ = [
    "TAIL_LINES",
    "check_junit_path",
    "junit_xml",
    "run_seconds",
    "step_detail",
    "step_seconds",
    "step_tail",
    "write_junit",
    "xml_text",
]

#: Log lines kept per step in the report (the summary on the terminal shows 10 too).
TAIL_LINES = 10

#: What XML 1.0 cannot carry, even escaped: C0 controls other than TAB, LF and CR,
#: lone surrogates, U+FFFE and U+FFFF. (Invalid UTF-8 in a log is already U+FFFD here.)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML cannot hold shown as ``\\xNN`` (so a step
    that prints NULs or terminal escapes still yields a file every parser reads)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def check_junit_path(path: Path) -> Path:
    """``path`` if a report can be written there; a :class:`UsageError` otherwise
    (checked before the run starts, so a typo does not cost a whole run)."""
    parent = path.parent
    if path.is_dir():
        raise UsageError(f"--junit {path}: is a directory; give a file name (e.g. report.xml)")
    if not parent.is_dir():
        raise UsageError(
            f"--junit {path}: directory {parent} does not exist; create it first "
            f"(mkdir -p {parent})"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--junit {path}: directory {parent} is not writable")
    return path


def _seconds(start: str | None, end: str | None) -> float:
    if start is None or end is None:
        return 0.0
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0.0, delta.total_seconds())


def step_seconds(step: StepView) -> float:
    """How long ``step`` ran (0 for one that never started)."""
    return _seconds(step.started_at, step.ended_at)


def run_seconds(view: RunView, wall: float) -> float:
    """How long the run (or the latest resume of it) took; ``wall`` if unknown."""
    start = view.resumed_at or view.started_at
    if start is None or view.ended_at is None:
        return wall
    return _seconds(start, view.ended_at)


def step_detail(step: StepView) -> str:
    """What ended ``step``: its state, then the exit code or error and the reason."""
    parts = [step.state.value]
    last = step.attempts[-1] if step.attempts else None
    if last is not None and last.error:
        parts.append(last.error)
    elif step.exit_code is not None:
        parts.append(f"exit code {step.exit_code}")
    if step.reason and step.reason not in parts:
        parts.append(step.reason)
    if not step.critical:
        parts.append("non-critical")
    return ", ".join(parts)


def step_tail(step: StepView, masker: Masker, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of ``step``'s last log, masked (logs are masked when
    written; masking again costs nothing and keeps a report safe on its own)."""
    path = step.attempts[-1].log_path if step.attempts else None
    return [masker.text(line) for line in log_tail(path, lines)]


def _outcome(step: StepView) -> str | None:
    """The JUnit result element for ``step``: None for a pass."""
    if step.state in (StepState.FAILED, StepState.TIMED_OUT, StepState.CRASHED):
        return "failure"
    if step.state is StepState.SUCCEEDED:
        return None
    if step.state is StepState.RUNNING:
        return "error"  # the run ended without the step ending (a crash, a lost event)
    if step.state is StepState.CANCELLED and step.started_at is not None:
        return "error"  # cancelled while it ran (a resume resets started_at)
    return "skipped"  # skipped, pending, or cancelled before it started


def _testcase(suite: ET.Element, step: StepView, plan_id: str, masker: Masker) -> str | None:
    case = ET.SubElement(
        suite,
        "testcase",
        # A run handler is grouped apart: "plan.on_failure".
        classname=xml_text(plan_id if step.handler is None else f"{plan_id}.{step.handler}"),
        name=xml_text(step.id),
        time=f"{step_seconds(step):.3f}",
    )
    outcome = _outcome(step)
    tail = xml_text("\n".join(step_tail(step, masker)))
    if outcome is not None:
        detail = masker.text(step_detail(step))
        if outcome == "skipped" and step.state is not StepState.SKIPPED:
            detail = f"{detail}, never started"
        result = ET.SubElement(case, outcome, message=xml_text(detail), type=step.state.value)
        if outcome != "skipped":
            result.text = tail
    if tail:
        ET.SubElement(case, "system-out").text = tail
    return outcome


def junit_xml(view: RunView, masker: Masker, wall: float, hostname: str | None = None) -> bytes:
    """The JUnit XML document for the run ``view`` (``wall``: its duration if the view
    does not say it, e.g. a run cancelled before it started)."""
    root = ET.Element("testsuites", name="planrun")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=xml_text(view.plan_id),
        timestamp=view.resumed_at or view.started_at or utc_now(),
        hostname=xml_text(hostname if hostname is not None else socket.gethostname()),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (("run_id", view.run_id), ("run_state", view.state.value)):
        ET.SubElement(props, "property", name=name, value=xml_text(value))
    outcomes = [_testcase(suite, step, view.plan_id, masker) for step in view.steps.values()]
    counts = {
        "tests": str(len(outcomes)),
        "failures": str(outcomes.count("failure")),
        "errors": str(outcomes.count("error")),
        "skipped": str(outcomes.count("skipped")),
        "time": f"{run_seconds(view, wall):.3f}",
    }
    for element in (root, suite):
        for key, value in counts.items():
            element.set(key, value)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_junit(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file beside it, flushed to
    disk, renamed over it (``OSError`` if that fails; nothing is left behind)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is for others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
