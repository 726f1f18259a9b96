"""The engine's bookkeeping: its configuration, one node per step, and the messages
attempt tasks and timers send to the scheduler's inbox.

Internal to the engine (``planrun.engine`` re-exports :class:`EngineConfig`). Only the
scheduler task mutates a :class:`Node`; attempt tasks set and clear ``scope`` (their
own cancel scope) and otherwise talk through messages.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

from . import policy
from .events import Event
from .handler_stop import HandlerStop, WriteSummary
from .masking import Masker
from .model import StepState
from .plan import ResolvedStep
from .ports import ProcessResult, RunChild
from .resume import PriorStep

__all__ = [
    "AttemptDone",
    "Deadline",
    "EngineConfig",
    "Message",
    "Node",
    "RetryDue",
    "dependents_to_recheck",
    "first_checks",
    "link_dependents",
]

#: How many steps the engine looks at in one loop turn when a run starts (~5 µs
#: each): a 100,000-step plan would otherwise hold an embedding service's event loop
#: for half a second before the first step starts, and with 2,000 steps the first
#: turns (the first look, the first spawns) were the run's longest stall (2,000
#: steps at j=8, worst tick of a 5 ms ticker, median of 6 runs: 20 ms with runs of
#: 1,000 steps, 18 with 250, 16 with 100; noisy).
FIRST_CHECK_CHUNK = 250


class EngineConfig(msgspec.Struct, frozen=True):
    """What the engine needs besides the steps."""

    run_id: str
    plan_id: str
    max_concurrency: int
    kill_grace: float = 5.0
    run_timeout: float | None = None
    log_dir: Path | None = None
    plan_path: str | None = None
    variables: dict[str, str] = msgspec.field(default_factory=dict)
    rand: Callable[[], float] = random.random
    #: Events to emit right after ``run_started`` (e.g. ``lock_acquired``): (type, fields).
    prelude: tuple[tuple[type[Event], dict[str, Any]], ...] = ()
    #: Masks the run's secrets in the attempts' logs (None: no secrets).
    masker: Masker | None = None
    #: A resume: the steps' earlier results, the ids to run again, and the last ``seq``
    #: of the run so far. The first event is then ``run_resumed``.
    prior: dict[str, PriorStep] = msgspec.field(default_factory=dict)
    rerun: frozenset[str] | None = None
    last_seq: int = 0
    #: Called after the first events, before any step starts (e.g. to start the
    #: executor's watchdog). A ``PlanrunError`` from it fails the run with its message,
    #: no step runs, and the error propagates.
    before_steps: Callable[[], None] | None = None
    #: The run across state dirs, passed on to the executor (``AttemptSpec.run_key``).
    run_key: str = ""
    #: A short name of the executor (``run_started.executor``), chosen by the caller:
    #: the engine knows executors only through the port.
    executor_name: str | None = None
    #: Runs a ``uses`` step's attempt as a child run (None: no step has ``uses``).
    run_child: RunChild | None = None
    #: Variables of planrun's environment the steps must not inherit (``AttemptSpec``).
    hidden_env: frozenset[str] = frozenset()
    #: Put before step ids in output lines (a child run's: ``PARENT_STEP/``).
    output_prefix: str = ""
    #: A resume: the items each for_each step was expanded from (``steps_expanded``).
    expanded: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    #: ``globals.pools``: at most this many steps of each named pool run at once.
    pools: dict[str, int] = msgspec.field(default_factory=dict)
    #: The run handlers (step id -> its list, ``on_failure``, ...; their steps come after
    #: the DAG's), how long a cancelled run's handlers may take in all, what stops them
    #: (the CLI's second Ctrl-C) and what writes ``$PLANRUN_SUMMARY`` (``engine_handlers``).
    handlers: dict[str, str] = msgspec.field(default_factory=dict)
    handler_timeout: float = 60.0
    handler_stop: HandlerStop = msgspec.field(default_factory=HandlerStop)
    write_summary: WriteSummary | None = None
    #: What started the run (``run_started.trigger``; None: started by hand).
    trigger: dict[str, Any] | None = None


class Node(msgspec.Struct, eq=False):
    """One step as the scheduler tracks it."""

    # The collections below are shared empty tuples unless the node has some (a plan
    # of 100,000 steps makes 100,000 nodes: an empty list each would be 5.6 MB).
    rs: ResolvedStep
    deps: Sequence[int]
    dependents: Sequence[int] = ()
    #: How many of ``deps`` have not ended yet (``policy.decisive`` says why it matters).
    waiting: int = 0
    state: StepState = StepState.PENDING
    attempts: int = 0
    queued: bool = False
    outcome: policy.DepOutcome | None = None
    scope: anyio.CancelScope | None = None
    waiting_retry: bool = False
    #: Attempts made before this run (a resume numbers its attempts after them).
    base: int = 0
    #: A resume left this step's earlier result as it was (it does not run).
    kept: bool = False
    exit_code: int | None = None
    #: What the step wrote to ``$PLANRUN_OUTPUT`` (None: nothing, or it did not succeed).
    outputs: dict[str, str] | None = None
    #: An instance of a for_each step: that step's node; the step: its instances and
    #: how many of them have not ended (``planrun.engine_fanout``).
    group: int | None = None
    instances: list[int] | None = None
    left: int = 0
    #: A run handler's list (None: a step of the DAG); ``held``: it waits for the DAG.
    handler: str | None = None
    held: bool = False

    @property
    def cleanup(self) -> bool:
        """A cleanup/rollback step (``policy.CLEANUP_RULES``): an abort lets it run."""
        return self.rs.step.when in policy.CLEANUP_RULES


def link_dependents(nodes: Sequence[Node]) -> None:
    """Give each node the indexes of the nodes that depend on it (a list only for the
    nodes that have dependents)."""
    dependents: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for d in node.deps:
            dependents.setdefault(d, []).append(i)
    for d, found in dependents.items():
        nodes[d].dependents = found


def first_checks(count: int, chunk: int | None = None) -> list[range]:
    """The node indexes ``0..count-1`` in plan order, cut into runs of ``chunk``
    (default :data:`FIRST_CHECK_CHUNK`; each looked at in its own loop turn); at least
    one run, empty for no nodes."""
    chunk = chunk or FIRST_CHECK_CHUNK
    return [range(i, min(i + chunk, count)) for i in range(0, count, chunk)] or [range(0)]


def dependents_to_recheck(
    nodes: Sequence[Node], node: Node, first: bool, *, everyone: bool
) -> list[int]:
    """The dependents of ``node`` (it just ended; ``first``: for the first time) whose
    rule its end may decide, each ``waiting`` count updated: all of them when
    ``everyone`` (an abort or a cancellation), else those it was the last unfinished
    dependency of, or whose rule its outcome decides at once (``policy.decisive``). The
    others would only be told to wait."""
    outcome = node.outcome
    assert outcome is not None
    found: list[int] = []
    for d in node.dependents:
        dependent = nodes[d]
        if first:
            dependent.waiting -= 1
        if everyone or dependent.waiting <= 0 or policy.decisive(dependent.rs.step.when, outcome):
            found.append(d)
    return found


# Inbox messages: what attempt tasks and timers tell the scheduler.
class AttemptDone(msgspec.Struct, frozen=True):
    """An attempt ended (``result`` None: cancelled before it could finish)."""

    index: int
    attempt: int
    result: ProcessResult | None
    duration: float


class RetryDue(msgspec.Struct, frozen=True):
    """A step's retry delay has passed."""

    index: int


class Deadline(msgspec.Struct, frozen=True):
    """The run's ``timeout_sec`` has passed."""


Message = AttemptDone | RetryDue | Deadline
