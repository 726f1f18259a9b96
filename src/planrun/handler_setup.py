"""Run handlers, for :mod:`planrun.api`: the handlers' steps with ``$PLANRUN_SUMMARY``
in their environment, the engine's settings for them, and the summary's writer.

The summary is made from the run's view as the recorder gets it (events masked), by
the pure :func:`planrun.summary.summary_document`, and written atomically, 0600, as
``summary.json`` in the run's directory (``.planrun/runs/RUN_ID/``) before each handler
list runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from .errors import StoreError
from .handler_stop import HandlerStop, WriteSummary
from .masking import Masker
from .model import RunState
from .options import ResolvedOptions
from .plan import ResolvedStep
from .prepare import PreparedRun
from .state import RunView
from .store import files
from .summary import SUMMARY_FILE, summary_document

__all__ = ["handler_settings", "handler_steps"]


def handler_steps(prepared: PreparedRun, run_dir: Path) -> list[ResolvedStep]:
    """The handlers' resolved steps, each told where the summary is."""
    path = str(run_dir / SUMMARY_FILE)
    return [
        dataclasses.replace(rs, env={**rs.env, "PLANRUN_SUMMARY": path})
        for _, rs in prepared.handlers
    ]


def handler_settings(
    prepared: PreparedRun,
    resolved: ResolvedOptions,
    run_dir: Path,
    view: Callable[[], RunView | None],
    masker: Masker,
) -> dict[str, Any]:
    """The :class:`~planrun.engine.EngineConfig` fields for the run handlers. The
    caller's kill switch (the CLI's second Ctrl-C) also stops a cancelled run's
    handlers."""
    stop = HandlerStop()
    if resolved.options.kill_switch is not None:
        resolved.options.kill_switch.attach(stop.stop)
    return {
        "handlers": {rs.step.id: kind for kind, rs in prepared.handlers},
        "handler_timeout": prepared.plan.globals.handler_timeout_sec,
        "handler_stop": stop,
        "write_summary": _writer(resolved, run_dir, view, masker) if prepared.handlers else None,
    }


def _writer(
    resolved: ResolvedOptions,
    run_dir: Path,
    view: Callable[[], RunView | None],
    masker: Masker,
) -> WriteSummary:
    def write(state: RunState, exit_code: int, reason: str | None, failed: list[str]) -> None:
        current = view()
        assert current is not None  # run_started came first
        masked = masker.text(reason) if reason is not None else None
        doc = summary_document(current, state, exit_code, masked, failed)
        data = msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"
        try:
            files.replace_file(resolved.state_dir, ["runs", run_dir.name, SUMMARY_FILE], data)
        except (OSError, StoreError) as exc:
            # The handlers still run (they are what reports a failure): say why the
            # file they are told about is missing or old.
            if resolved.on_notice is not None:
                resolved.on_notice(f"planrun: cannot write the run summary: {exc}")

    return write
