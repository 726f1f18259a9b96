"""Run handlers, for the engine: which lists run after the DAG, in what order, and how
a cancelled run's handlers are bounded.

The handlers are nodes of the engine like any step (announced in ``run_started``,
recorded with the same events), *held* until the DAG has ended: the run's outcome is
decided from the DAG alone, then the list of that outcome runs (``on_success``,
``on_failure`` — failed or aborted — or ``on_cancel``), then ``on_exit``; each list is
a small DAG the engine's scheduler runs to its end before the next. The lists that do
not apply end ``skipped`` ("handler on_success: the run failed"), so every announced
step ends. Before each list, the run summary (``$PLANRUN_SUMMARY``) is written.

A cancelled run's handlers run shielded from the cancellation that stopped the DAG,
under one deadline for all of them (``globals.handler_timeout_sec``); a second
interrupt (:meth:`HandlerStop.stop`, the CLI's kill switch) stops them, or skips them
if they have not started. The cancellation propagates afterwards.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from .engine_nodes import EngineConfig, Message, Node
from .engine_outcome import Outcome, failed_steps, run_outcome
from .exitcodes import ExitCode
from .handler_stop import HandlerStop
from .model import RunState, StepState
from .plan.handlers import HANDLER_KINDS

__all__ = [
    "applicable",
    "handler_phases",
    "hold_handlers",
    "run_cancelled_handlers",
    "run_handlers",
]

_FIRST = {
    RunState.SUCCEEDED: "on_success",
    RunState.FAILED: "on_failure",
    RunState.CANCELLED: "on_cancel",
}

FinishStep = Callable[..., None]


class Scheduler(Protocol):
    """The parts of :class:`planrun.engine.Engine` the handlers run with (its own
    scheduler: only its loop is repeated here)."""

    _cfg: EngineConfig
    _nodes: list[Node]
    _tg: TaskGroup | None
    _aborting: str | None
    _deadline_hit: bool
    _cancelling: bool
    _unfinished: int
    _check: deque[int]
    _inbox_recv: MemoryObjectReceiveStream[Message]
    _decided: tuple[Outcome, list[str]] | None

    def _settle(self) -> None: ...
    async def pump(self) -> None: ...
    def _finish_step(self, index: int, state: StepState, *, reason: str | None = None) -> None: ...
    def _finish_cancelled(self, reason: str = ..., *, end: bool = ...) -> None: ...


def applicable(state: RunState) -> tuple[str, ...]:
    """The handler lists that run, in order, after the DAG ended ``state``."""
    first = _FIRST.get(state)
    return (first, "on_exit") if first is not None else ("on_exit",)


def hold_handlers(nodes: Sequence[Node], handlers: Mapping[str, str]) -> int:
    """Mark the handler nodes (``handlers``: step id -> list) and hold them until the
    DAG ends; how many there are (they do not count as the DAG's unfinished steps)."""
    count = 0
    for node in nodes:
        kind = handlers.get(node.rs.step.id)
        if kind is not None and not node.kept and not node.state.terminal:
            node.handler, node.held = kind, True
            count += 1
    return count


def handler_phases(
    nodes: Sequence[Node],
    decided: tuple[Outcome, list[str]],
    stop: HandlerStop,
    finish_step: FinishStep,
    write_summary: Callable[[RunState, int, str | None, list[str]], None] | None,
) -> Iterator[list[int]]:
    """The handler lists to run, in order, each as the indices of its nodes, released.

    Ends the lists that do not apply ``skipped`` first; a list reached after
    :meth:`HandlerStop.stop` is skipped too. The summary is written before each list.
    """
    outcome, failed = decided
    lists = applicable(outcome.state)
    for kind in HANDLER_KINDS:
        if kind not in lists:
            for i in _held(nodes, kind):
                finish_step(i, StepState.SKIPPED, reason=f"handler {kind}: the run {outcome.state}")
    for kind in lists:
        indices = _held(nodes, kind)
        if not indices:
            continue
        if stop.stopped:
            for i in indices:
                finish_step(i, StepState.SKIPPED, reason="handlers skipped: interrupted again")
            continue
        if write_summary is not None:
            write_summary(outcome.state, outcome.exit_code, outcome.reason, failed)
        for i in indices:
            nodes[i].held = False
        yield indices


def _held(nodes: Sequence[Node], kind: str) -> list[int]:
    return [i for i, n in enumerate(nodes) if n.handler == kind and n.held and not n.state.terminal]


async def run_handlers(engine: Scheduler) -> None:
    """The DAG has ended: decide the run's outcome from its steps (``engine._decided``,
    what ``run_finished`` says), then run the handlers of that outcome."""
    outcome = run_outcome(
        engine._nodes, deadline_hit=engine._deadline_hit, aborting=engine._aborting
    )
    engine._decided = (outcome, failed_steps(engine._nodes))
    await _run_lists(engine, engine._decided)


async def _run_lists(engine: Scheduler, decided: tuple[Outcome, list[str]]) -> None:
    """Run the handlers of the outcome ``decided``, list by list, with the engine's own
    scheduler."""
    cfg = engine._cfg
    phases = handler_phases(
        engine._nodes, decided, cfg.handler_stop, engine._finish_step, cfg.write_summary
    )
    for indices in phases:
        async with anyio.create_task_group() as tg:
            # The DAG's abort or cancellation is over: it must not stop the handlers.
            engine._tg, engine._aborting, engine._cancelling = tg, None, False
            engine._unfinished = len(indices)
            engine._check.extend(indices)
            engine._settle()
            await engine.pump()


async def run_cancelled_handlers(engine: Scheduler) -> None:
    """A cancellation: record the end of what it stopped, then run the handlers still
    to run, shielded, under ``handler_timeout_sec`` (or until :meth:`HandlerStop.stop`).

    Stopping the DAG runs ``on_cancel`` and ``on_exit``. Stopping the handlers of a
    decided outcome (a cancel while ``on_failure`` runs) keeps that outcome: the
    handlers it stopped end ``cancelled``, and ``on_exit`` still runs if it had not.
    """
    engine._finish_cancelled(end=False)
    decided = engine._decided
    if decided is None:
        cancelled = Outcome(RunState.CANCELLED, ExitCode.CANCELLED, "run cancelled")
        decided = (cancelled, failed_steps(engine._nodes))
    with engine._cfg.handler_stop.deadline(engine._cfg.handler_timeout):
        await _run_lists(engine, decided)
