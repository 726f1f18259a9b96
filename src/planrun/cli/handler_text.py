"""How ``validate`` and ``run --dry-run`` (text and ``--json``) show a plan's run
handlers: the steps that run after the DAG, by list (``on_failure``, ...)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from ..model import Plan
from ..plan.handlers import HANDLER_KINDS, handler_steps
from ..prepare import PreparedRun
from .words import counted

__all__ = ["handlers_doc", "handlers_phrase", "print_handlers"]

#: When each list runs, as ``--dry-run`` says it.
_WHEN = {
    "on_success": "if the run succeeds",
    "on_failure": "if the run fails",
    "on_cancel": "if the run is cancelled",
    "on_exit": "always, last",
}


def handlers_phrase(plan: Plan) -> str:
    """``", 2 run handlers (on_failure: notify; on_exit: bye)"``, or ``""``."""
    found = handler_steps(plan.handlers)
    if not found:
        return ""
    lists = "; ".join(
        f"{kind}: {', '.join(s.id for k, s in found if k == kind)}"
        for kind in HANDLER_KINDS
        if any(k == kind for k, _ in found)
    )
    return f", {counted(len(found), 'run handler')} ({lists})"


def print_handlers(say: Callable[[str], None], prepared: PreparedRun) -> None:
    """The handlers after the levels of ``--dry-run``: argv (masked) and dependencies."""
    masker = prepared.masker
    for kind in HANDLER_KINDS:
        steps = [rs for k, rs in prepared.handlers if k == kind]
        if not steps:
            continue
        say(f"handlers {kind} ({_WHEN[kind]}; they never change the run's outcome):")
        for rs in steps:
            say(f"  {rs.step.id}: {' '.join(shlex.quote(masker.text(a)) for a in rs.argv)}")
            details = [f"after {', '.join(rs.step.depends_on)}"] if rs.step.depends_on else []
            if rs.timeout:
                details.append(f"timeout {rs.timeout:g}s")
            if rs.step.retries:
                details.append(f"retries {rs.step.retries}")
            if details:
                say(f"      {'; '.join(details)}")
    if prepared.handlers:
        timeout = prepared.plan.globals.handler_timeout_sec
        say(f"  (after a cancel, the handlers have {timeout:g}s in all: handler_timeout_sec)")


def handlers_doc(prepared: PreparedRun) -> list[dict[str, Any]]:
    """The handlers for ``run --dry-run --json``, every string masked."""
    mask = prepared.masker.text
    return [
        {
            "id": rs.step.id,
            "handler": kind,
            "depends_on": list(rs.step.depends_on),
            "argv": [mask(arg) for arg in rs.argv],
            "cwd": mask(rs.cwd) if rs.cwd else None,
            "timeout_sec": rs.timeout,
            "retries": rs.step.retries,
            "when": rs.step.when.value,
        }
        for kind, rs in prepared.handlers
    ]
