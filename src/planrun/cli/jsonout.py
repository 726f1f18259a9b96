"""What the CLI prints for programs (``--json``): one encoder for every command.

Contract (README "JSON output"): every document is one line of compact JSON written
with ``sys.stdout.write`` — never through rich, so never wrapped, styled or masked a
second time — and every top-level object has a ``type``: an event's own tag
(``run_started``, ...), or ``result``, ``validation``, ``dry_run``, ``explain``,
``cancel`` or ``error``. Keys are only ever added. Values are masked once, here or
upstream (events are masked by the api's sink before any observer sees them).

An error under ``--json`` is said twice: for a person on stderr (``common.fail``)
and as one ``{"type": "error", ...}`` object on stdout, with the same exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import typer

from ..errors import (
    CancelError,
    ClusterError,
    HelperError,
    LockConflict,
    NoRunStore,
    PlanError,
    PlanrunError,
    Problem,
    ResumeConflict,
    RunExists,
    StoreError,
    UsageError,
)
from ..events import Event, encode_event
from ..graph import levels
from ..model import Plan
from ..plan import ResolvedStep, Validation
from ..plan.expand import cell
from ..plan.handlers import handler_steps
from ..plan.rules import signal_name
from ..prepare import PreparedRun
from ..records import RunRecord
from ..results import RunResult
from ..state import RunView
from .common import cli_hint, cli_words, err_console, quiet_stream
from .common import fail as fail_for_people
from .handler_text import handlers_doc
from .params import JsonOpt
from .trigger_text import plan_triggers_doc
from .view import Renderer

if TYPE_CHECKING:  # the store and the run options load only for what needs them,
    # not for validate --json
    from ..options import RunOptions
    from ..resume.load import LoadedResume

__all__ = [
    "JsonEvents",
    "JsonOpt",
    "cancel_doc",
    "dry_run_doc",
    "error_doc",
    "explain_doc",
    "fail",
    "problem_doc",
    "result_doc",
    "validation_doc",
    "write_doc",
    "write_result",
    "write_event",
]


def write_doc(doc: object) -> None:
    """``doc`` as one line of compact JSON on stdout, flushed (a reader sees it now)."""
    sys.stdout.write(msgspec.json.encode(doc).decode() + "\n")
    sys.stdout.flush()


def write_event(event: Event) -> None:
    """One event as one NDJSON line: the very bytes the store keeps (``encode_event``)."""
    sys.stdout.write(encode_event(event).decode() + "\n")
    sys.stdout.flush()


def quiet_stdout() -> None:
    """The reader of stdout went away (``planrun run --json | head``): send the rest,
    and the interpreter's final flush, to /dev/null instead of failing on them."""
    quiet_stream(sys.stdout)


#: ``--json`` on the commands that print a result (README "JSON output").


# --- errors ------------------------------------------------------------------------

#: The stable ``error`` kind of each library error; the first match wins.
_KINDS: tuple[tuple[type[PlanrunError], str], ...] = (
    (PlanError, "invalid_plan"),
    (RunExists, "run_exists"),
    (ResumeConflict, "resume_conflict"),
    (LockConflict, "lock_held"),
    (CancelError, "not_cancelled"),
    (NoRunStore, "no_run_store"),
    (StoreError, "store_failed"),
    (HelperError, "helper_failed"),
    (ClusterError, "cluster_refused"),
    (UsageError, "usage"),
)


def error_kind(exc: PlanrunError) -> str:
    """The ``error`` field for ``exc``: a stable word a program can switch on."""
    if isinstance(exc, UsageError) and str(exc).startswith("no run '"):
        return "unknown_run"  # every reader words an unknown run id this way
    return next((kind for cls, kind in _KINDS if isinstance(exc, cls)), "failed")


def problem_doc(problem: Problem) -> dict[str, Any]:
    """A plan problem: ``line``/``column`` are numbers when the path is ``line:column``
    (a syntax error), else null."""
    line = column = None
    head, sep, tail = problem.path.partition(":")
    if sep and head.isdigit() and tail.isdigit():
        line, column = int(head), int(tail)
    return {
        "path": problem.path,
        "step_id": problem.step_id,
        "line": line,
        "column": column,
        "message": problem.message,
        "hint": problem.hint,
        "severity": "warning" if problem.warning else "error",
    }


def error_doc(exc: PlanrunError) -> dict[str, Any]:
    """The ``{"type": "error"}`` object for ``exc`` (an invalid plan adds its problems)."""
    doc = _error(int(exc.exit_code), error_kind(exc), cli_words(exc), cli_hint(exc))
    if isinstance(exc, PlanError):
        errors = sum(not p.warning for p in exc.problems)
        doc["message"] = f"invalid plan ({errors} problem{'s' if errors != 1 else ''})"
        doc["plan"] = exc.source
        doc["problems"] = [problem_doc(p) for p in exc.problems]
    if isinstance(exc, CancelError):
        doc["state"] = exc.state
    return doc


def fail(exc: PlanrunError, as_json: bool) -> typer.Exit:
    """``common.fail`` (the message on stderr), plus the error object on stdout under
    ``--json``; the ``typer.Exit`` with the error's exit code."""
    exit_ = fail_for_people(exc)
    if as_json:
        try:
            write_doc(error_doc(exc))
        except BrokenPipeError:
            quiet_stdout()
    return exit_


# --- documents -----------------------------------------------------------------------


def validation_doc(plan: str, result: Validation | None, error: PlanError | None) -> dict[str, Any]:
    """``validate --json``: the ``result`` of ``plan.validate``, or the ``error`` it
    raised when nothing could be checked (unreadable file, syntax error)."""
    parsed = result.plan if result is not None else None
    problems = result.problems if result is not None else error.problems if error else ()
    ok = result is not None and result.ok
    # Levels only of a valid plan: an unknown dependency or a cycle has none.
    tiers = levels({s.id: s.depends_on for s in parsed.steps}) if ok and parsed else []
    return {
        "type": "validation",
        "ok": ok,
        "plan": plan,
        "plan_id": parsed.plan_id if parsed is not None else None,
        "steps": [s.id for s in parsed.steps] if parsed is not None else [],
        # The run handlers, by list: {"on_failure": ["notify"]}.
        "handlers": _handler_ids(parsed),
        "levels": [list(tier) for tier in tiers],
        # Variables with no value yet: fine for validate, a run must be given them.
        "required_at_run_time": list(result.unset) if result is not None else [],
        "problems": [problem_doc(p) for p in problems],
        **(plan_triggers_doc(parsed) if parsed is not None else {}),
    }


def dry_run_doc(prepared: PreparedRun, options: RunOptions) -> dict[str, Any]:
    """``run --dry-run --json``: the resolved plan, every string masked."""
    plan = prepared.plan
    mask = prepared.masker.text
    tiers = levels({s.id: s.depends_on for s in plan.steps})
    level_of = {step_id: depth for depth, tier in enumerate(tiers) for step_id in tier}
    steps = []
    for rs in prepared.steps:
        step = rs.step
        overrides = {**plan.globals.env, **step.env}
        steps.append(
            {
                "id": step.id,
                "name": step.display_name,
                "level": level_of[step.id],
                "depends_on": list(step.depends_on),
                "argv": [mask(arg) for arg in rs.argv],
                "env": {k: mask(rs.env[k]) for k in overrides},
                "cwd": mask(rs.cwd) if rs.cwd else None,
                "timeout_sec": rs.timeout,
                "retries": step.retries,
                "retry_delay_sec": step.retry_delay_sec,
                "retry_backoff": step.retry_backoff,
                "when": step.when.value,
                "if": step.if_,
                "matrix": cell(step),
                "on_failure": step.on_failure.value,
                "critical": step.critical,
                # A ``uses`` step: argv is its plan alone, ``with`` its variables.
                **(
                    {
                        "uses": mask(rs.argv[0]),
                        "with": {k: mask(v) for k, v in rs.env.items()},
                        "secrets": list(step.pass_secrets),
                    }
                    if step.uses is not None
                    else {}
                ),
                **_for_each(rs, mask),
                "pool": step.pool,
                "skip_exit_codes": list(step.skip_exit_codes),
                "stop_signal": signal_name(step.stop_signal),
            }
        )
    return {
        "type": "dry_run",
        "plan": prepared.source,
        "plan_id": plan.plan_id,
        "max_concurrency": options.concurrency(plan),
        "executor": options.executor_text(),
        "pools": dict(plan.globals.pools),
        "variables": prepared.masked_variables,
        "secrets": sorted(prepared.secrets),
        "levels": [list(tier) for tier in tiers],
        "steps": steps,
        "handlers": handlers_doc(prepared),
        **plan_triggers_doc(plan),  # what `planrun serve` would fire it on
    }


def _for_each(rs: ResolvedStep, mask: Callable[[str], str]) -> dict[str, Any]:
    """A for_each step's template (variables substituted, step references as written)
    and ``max_items``; nothing for other steps."""
    if rs.for_each is None:
        return {}
    text = "".join(p if isinstance(p, str) else p.text for p in rs.for_each)
    return {"for_each": mask(text), "max_items": rs.step.max_items}


def explain_doc(loaded: LoadedResume) -> dict[str, Any]:
    """``resume --explain --json``: each step's action and why, and what changed."""
    choices = loaded.resume.choices
    return {
        "type": "explain",
        "run_id": loaded.run.run_id,
        "state": loaded.run.state.value,
        "rerun": loaded.resume.rerun,
        "choices": [
            {"step_id": c.step_id, "action": c.action.value, "why": c.why} for c in choices
        ],
        "changes": list(loaded.changes),
    }


def cancel_doc(record: RunRecord) -> dict[str, Any]:
    """``cancel --json``: the run as it was recorded once cancelled."""
    return {
        "type": "cancel",
        "run_id": record.run_id,
        "state": record.state.value,
        "exit_code": record.exit_code,
    }


def result_doc(view: RunView, exit_code: int) -> dict[str, Any]:
    """The last line of ``run --json``/``resume --json``: the ``RunResult`` (as
    ``run_plan`` returns it), step counts, and the process's exit code."""
    result = msgspec.to_builtins(RunResult.from_view(view))
    counts = {state.value: n for state, n in view.counts.items() if n}
    return {"type": "result", **result, "exit_code": exit_code, "counts": counts}


def write_result(view: RunView | None, exit_code: int) -> None:
    """The last line of ``run --json``: the result, or (a run interrupted before its
    first event) an error object saying so."""
    try:
        if view is not None:
            write_doc(result_doc(view, exit_code))
        else:
            message = "the run was cancelled before it started"
            write_doc(_error(exit_code, "cancelled", message))
    except BrokenPipeError:
        quiet_stdout()


def _error(exit_code: int, kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "exit_code": exit_code,
        "error": kind,
        "message": message,
        "hint": hint,
    }


class JsonEvents(Renderer):
    """The ``run --json`` "view": every event as one NDJSON line as it happens, the
    same lines ``watch --json`` prints; people's notices go to stderr."""

    def __init__(self) -> None:
        super().__init__(err_console())

    def on_event(self, event: Event) -> None:
        super().on_event(event)  # the view still folds: the result line needs it
        try:
            write_event(event)
        except BrokenPipeError:
            quiet_stdout()  # the run goes on; a reader that left reads nothing more


def _handler_ids(plan: Plan | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for kind, step in handler_steps(plan.handlers) if plan is not None else ():
        found.setdefault(kind, []).append(step.id)
    return found
