"""The run summary a run handler reads (``$PLANRUN_SUMMARY``): the run's outcome and
every step's end, as a JSON document. Pure: no I/O.

It is made from the run's view (:mod:`planrun.state`), which is folded from the events
*as recorded*: masked by the same masker, so a secret can appear in the summary no
more than in an event. The outcome is the DAG's (handlers never change it); the run
handlers are listed apart, as they stand when the summary is written.
"""

from __future__ import annotations

from typing import Any

from .model import RunState
from .state import RunView, StepView

__all__ = ["SUMMARY_FILE", "summary_document"]

#: The summary's file name in the run's directory.
SUMMARY_FILE = "summary.json"


def summary_document(
    view: RunView,
    state: RunState,
    exit_code: int,
    reason: str | None,
    failed_steps: list[str],
) -> dict[str, Any]:
    """The summary of run ``view`` that ended ``state`` (``reason`` already masked).

    ``steps`` and ``handlers`` map each id to ``state``, ``exit_code`` (None: it has
    none), ``reason``, ``outputs`` (``{}`` unless it succeeded and wrote some),
    ``attempts`` and its list (handlers only), in plan order.
    """
    return {
        "run_id": view.run_id,
        "plan_id": view.plan_id,
        "state": state.value,
        "exit_code": exit_code,
        "reason": reason,
        "failed_steps": list(failed_steps),
        "steps": {s.id: _step(s) for s in view.steps.values() if s.handler is None},
        "handlers": {
            s.id: {**_step(s), "handler": s.handler}
            for s in view.steps.values()
            if s.handler is not None
        },
    }


def _step(step: StepView) -> dict[str, Any]:
    return {
        "name": step.name,
        "state": step.state.value,
        "exit_code": step.exit_code,
        "reason": step.reason,
        "outputs": dict(step.outputs or {}),
        "attempts": len(step.attempts),
        "started_at": step.started_at,
        "ended_at": step.ended_at,
    }
