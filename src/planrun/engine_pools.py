"""Groups of steps that share a limit, for the engine: named pools and the instances
of one matrix or ``for_each`` step.

- **pools**: ``globals.pools: {"db": 2}`` and ``"pool": "db"`` on steps: at most two
  of them run at once (within the run's ``max_concurrency``).
- **max_parallel**: the instances of one step (``model.base_id(id) != id``) with
  ``max_parallel: N`` form an implicit pool of ``N``.
- **fail_fast**: when an instance with ``fail_fast: true`` ends failed or timed out,
  its siblings that are still pending, waiting for a retry or running are cancelled
  (reason ``fail_fast: 'ID' failed``); other steps only see the usual outcomes.

A ready step whose group is full is *parked* here: it holds no run slot, and the ready
steps behind it start first. Each time the engine is about to start steps it calls
:meth:`Pools.unpark`, which puts back on its ready queue (plan order) as many parked
steps as their groups have free slots; one that finds its group full again is parked
again. A parked step is always in exactly one place (parked or queued), so a step the
engine drops from its queue (an abort) cannot strand the others. Everything is keyed by
the step (its groups come from its own fields) and by the node's index, so a node added
while the run goes (a ``for_each`` instance) needs no registration.

Internal to the engine; only the scheduler task calls it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

from .engine_nodes import Node
from .model import Step, StepState, base_id

__all__ = ["Pools", "groups"]


def groups(step: Step, limits: Mapping[str, int]) -> list[tuple[str, int]]:
    """The groups ``step`` counts against, as (key, limit): its pool, and the implicit
    pool of its base step when it is an instance with ``max_parallel``."""
    found: list[tuple[str, int]] = []
    if step.pool is not None and step.pool in limits:
        found.append((f"pool {step.pool}", limits[step.pool]))
    base = base_id(step.id)
    if step.max_parallel is not None and base != step.id:
        found.append((f"max_parallel {base}", step.max_parallel))
    return found


class Pools:
    """Per-group counters of running attempts, the steps parked for a slot, and why
    ``fail_fast`` cancelled an attempt.

    ``nodes`` is the engine's node list (read at call time: nodes appended later are
    seen); ``requeue(index)`` puts a parked node back on the engine's ready queue.
    """

    def __init__(
        self, limits: Mapping[str, int], nodes: Sequence[Node], requeue: Callable[[int], None]
    ) -> None:
        self._limits = dict(limits)
        self._nodes = nodes
        self._requeue = requeue
        self._running: dict[str, int] = {}
        #: Group key -> (limit, heap of the parked nodes' indices).
        self._parked: dict[str, tuple[int, list[int]]] = {}
        self._cancelled: dict[int, str] = {}

    def park(self, index: int) -> bool:
        """Called when the engine takes ``index`` from its ready queue: True if one of
        its groups is full (it is parked, stays ``queued`` and must not start now).
        A node that is not startable any more (it ended meanwhile) is never parked."""
        if not self._startable(index):
            return False
        for key, limit in groups(self._nodes[index].rs.step, self._limits):
            if self._running.get(key, 0) >= limit:
                heapq.heappush(self._parked.setdefault(key, (limit, []))[1], index)
                return True
        return False

    def unpark(self) -> None:
        """Requeue as many parked steps of each group as it has free slots (in plan
        order); parked steps that ended meanwhile (an abort, ``fail_fast``) are
        dropped without taking a slot, so they cannot strand the ones behind them."""
        for key, (limit, parked) in list(self._parked.items()):
            free = limit - self._running.get(key, 0)
            while free > 0 and parked:
                index = heapq.heappop(parked)
                if self._startable(index):
                    self._requeue(index)
                    free -= 1
            if not parked:
                del self._parked[key]

    def _startable(self, index: int) -> bool:
        node = self._nodes[index]
        return node.state is StepState.PENDING or node.waiting_retry

    def started(self, index: int) -> None:
        """An attempt of ``index`` started: it holds a slot in each of its groups."""
        for key, _ in groups(self._nodes[index].rs.step, self._limits):
            self._running[key] = self._running.get(key, 0) + 1

    def ended(self, index: int) -> None:
        """An attempt of ``index`` ended: it frees its slots."""
        for key, _ in groups(self._nodes[index].rs.step, self._limits):
            self._running[key] -= 1

    def fail_fast(self, index: int, *, cancelling: bool = False) -> list[tuple[int, str]]:
        """Node ``index`` ended failed or timed out: if it is an instance with
        ``fail_fast``, cancel its running siblings (their attempts end ``cancelled``:
        :meth:`why_cancelled` gives the reason; one whose result is already on its way
        is not retried: :meth:`stopped`) and stop the timers of those waiting for a
        retry; return the siblings the engine must now end ``cancelled`` (those not
        running), with the reason. Nothing while the whole run is being cancelled
        (``cancelling``): that ends them, with its own reason."""
        node = self._nodes[index]
        step = node.rs.step
        base = base_id(step.id)
        if cancelling or not step.fail_fast or base == step.id:
            return []
        reason = f"fail_fast: '{step.id}' {node.state.value}"
        to_end: list[tuple[int, str]] = []
        for i, other in enumerate(self._nodes):
            if i == index or other.kept or base_id(other.rs.step.id) != base:
                continue
            if other.state is StepState.PENDING or other.waiting_retry:
                if other.waiting_retry and other.scope is not None:
                    other.scope.cancel()  # its retry timer
                to_end.append((i, reason))
            elif other.state is StepState.RUNNING:
                self._cancelled[i] = reason
                if other.scope is not None:
                    other.scope.cancel()
        return to_end

    def stopped(self, index: int) -> bool:
        """``fail_fast`` stopped this node's attempt: its failure must not be retried."""
        return index in self._cancelled

    def why_cancelled(self, index: int) -> str | None:
        """Why ``fail_fast`` cancelled the attempt of ``index`` (None: it did not)."""
        return self._cancelled.pop(index, None)
