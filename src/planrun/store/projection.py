"""The event projection: a batch of events as the rows they change.

The ``events`` table gets every event; ``attempts``, ``steps`` and ``runs`` get the
changes the events imply, merged per key in event order, so a batch writes each row
once. Each row is a struct whose fields are the named parameters (``:name``) of its
statement in :mod:`.sql`; ``None`` means "leave the stored value" (the statements
``COALESCE``), so rows from several batches merge the same way as rows of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ..events import (
    AttemptFinished,
    AttemptStarted,
    Event,
    RunBegan,
    RunFinished,
    StepFinished,
    StepsExpanded,
    event_type,
)
from ..model import AttemptState, StepState

__all__ = ["AttemptRow", "Projection", "StepRow"]


class AttemptRow(msgspec.Struct):
    """The change to one ``attempts`` row (:data:`sql.UPSERT_ATTEMPT`)."""

    run_id: str
    step_id: str
    attempt: int
    state: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    log_path: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_sec: float | None = None
    error: str | None = None
    child_run_id: str | None = None


class StepRow(msgspec.Struct):
    """The change to one ``steps`` row (:data:`sql.UPDATE_STEP`)."""

    run_id: str
    step_id: str
    state: str
    attempts: int
    exit_code: int | None = None
    reason: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    outputs: str | None = None
    masked_outputs: str | None = None

    def then(self, later: StepRow) -> StepRow:
        """This change followed by ``later``: its set fields win, but a step started
        when its first attempt did."""
        merged = msgspec.structs.replace(
            later,
            **{
                name: getattr(self, name)
                for name in later.__struct_fields__
                if getattr(later, name) is None
            },
        )
        merged.started_at = self.started_at or later.started_at
        return merged


class Projection:
    """Turns a batch of events into rows: the row changes merged per key, in order.

    ``events``, :meth:`attempts`, :meth:`steps`, ``run_updates`` and
    ``executor_updates`` are parameter dicts for ``executemany`` of ``INSERT_EVENT``,
    ``UPSERT_ATTEMPT``, ``UPDATE_STEP``, ``FINISH_RUN`` and ``SET_RUN_EXECUTOR``.
    """

    def __init__(self, batch: Sequence[Event], bodies: Sequence[bytes]) -> None:
        self.events = [
            {
                "run_id": e.run_id,
                "seq": e.seq,
                "ts": e.ts,
                "type": event_type(e),
                "step_id": getattr(e, "step_id", None),
                "body": b.decode(),
            }
            for e, b in zip(batch, bodies, strict=True)
        ]
        self._attempts: dict[tuple[str, str, int], AttemptRow] = {}
        self._steps: dict[tuple[str, str], StepRow] = {}
        self.run_updates: list[dict[str, Any]] = []
        self.executor_updates: list[dict[str, Any]] = []
        #: ``steps_expanded``: (run id, for_each step id, [(instance id, name)]), in
        #: order; their rows must exist before the step changes are written.
        self.expansions: list[tuple[str, str, list[tuple[str, str]]]] = []
        for event in batch:
            self._add(event)

    def _add(self, event: Event) -> None:
        match event:
            case AttemptStarted():
                self._attempt_started(event)
            case AttemptFinished():
                self._attempt_finished(event)
            case StepFinished():
                self._step_finished(event)
            case RunFinished():
                self.run_updates.append(
                    {
                        "run_id": event.run_id,
                        "state": event.state.value,
                        "exit_code": event.exit_code,
                        "reason": event.reason,
                        "ended_at": event.ts,
                    }
                )
            case StepsExpanded():
                rows = [(info.id, info.name) for info in event.steps]
                self.expansions.append((event.run_id, event.step_id, rows))
                group = StepRow(
                    event.run_id,
                    event.step_id,
                    state=StepState.RUNNING.value,
                    attempts=0,
                    started_at=event.ts,
                )
                self._step(group)
            case RunBegan():
                trigger = getattr(event, "trigger", None)  # run_started only
                self.executor_updates.append(
                    {
                        "run_id": event.run_id,
                        "executor": event.executor,
                        "trigger": _json_or_none(trigger),
                    }
                )
            case _:
                pass

    def _attempt_started(self, event: AttemptStarted) -> None:
        key = (event.run_id, event.step_id, event.attempt)
        self._attempts[key] = AttemptRow(
            *key,
            state=AttemptState.RUNNING.value,
            pid=event.pid,
            log_path=event.log_path,
            started_at=event.ts,
            child_run_id=event.child_run_id,
        )
        step = StepRow(
            event.run_id,
            event.step_id,
            state=StepState.RUNNING.value,
            attempts=event.attempt,
            started_at=event.ts,
        )
        self._step(step)

    def _attempt_finished(self, event: AttemptFinished) -> None:
        key = (event.run_id, event.step_id, event.attempt)
        row = self._attempts.setdefault(key, AttemptRow(*key))
        row.state, row.exit_code, row.ended_at = event.state.value, event.exit_code, event.ts
        row.duration_sec, row.error = event.duration_sec, event.error

    def _step_finished(self, event: StepFinished) -> None:
        step = StepRow(
            event.run_id,
            event.step_id,
            state=event.state.value,
            attempts=event.attempts,
            exit_code=event.exit_code,
            reason=event.reason,
            ended_at=event.ts,
            outputs=_json_or_none(event.outputs),
            masked_outputs=_json_or_none(event.masked_outputs),
        )
        self._step(step)

    def _step(self, change: StepRow) -> None:
        key = (change.run_id, change.step_id)
        earlier = self._steps.get(key)
        self._steps[key] = change if earlier is None else earlier.then(change)

    def attempts(self) -> list[dict[str, Any]]:
        return [msgspec.structs.asdict(row) for row in self._attempts.values()]

    def steps(self) -> list[dict[str, Any]]:
        return [msgspec.structs.asdict(row) for row in self._steps.values()]


def _json_or_none(value: object) -> str | None:
    return msgspec.json.encode(value).decode() if value is not None else None
