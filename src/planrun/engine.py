"""The scheduler: runs a validated plan's steps as a DAG under a concurrency bound.

One task (``Engine.run``) owns all scheduling state. Attempt tasks and timers never
touch it: they report through an inbox (a memory object stream) and the scheduler
reacts to each message — no polling, no shared mutable state. Decisions (retry or
not, may a step start, was it skipped) come from the pure ``policy`` module; the
engine only carries them out and emits an event for every change.

Stopping, three ways:

- **abort** (a critical step failed with ``on_failure: abort``, or the run deadline
  passed): running attempts are cancelled through their own cancel scopes, pending
  steps end ``cancelled``, but cleanup steps (``policy.CLEANUP_RULES``) still run.
- **cancellation of the caller** (Ctrl-C, a cancelled ``run_plan`` task): anyio cancels
  the task group; each attempt stops its process group in a shielded scope; then the
  remaining steps are recorded ``cancelled`` and the cancellation propagates.

Beside it: ``engine_nodes`` (its configuration, per-step nodes, inbox messages),
``engine_attempts`` (one attempt: its spec, its task, what its result means) and
``engine_outcome`` (the run's first-event fields and its outcome).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import anyio.lowlevel  # also binds anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import engine_fanout, policy
from .engine_attempts import (
    Bound,
    Unbound,
    attempt_spec,
    classify,
    failure_reason,
    lookup,
    run_attempt,
    secret_on_command_line,
)
from .engine_condition import condition_false
from .engine_handlers import hold_handlers, run_cancelled_handlers, run_handlers
from .engine_nodes import (
    AttemptDone,
    Deadline,
    EngineConfig,
    Message,
    Node,
    RetryDue,
    dependents_to_recheck,
    first_checks,
    link_dependents,
)
from .engine_outcome import Outcome, failed_steps, start_fields
from .engine_pools import Pools
from .errors import PlanrunError
from .events import (
    AttemptFinished,
    AttemptStarted,
    Event,
    RetryScheduled,
    RunAborting,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
    utc_now,
)
from .exitcodes import ExitCode
from .model import AttemptState, OnFailure, RunState, StepState
from .plan import ResolvedStep
from .ports import EventSink, Executor
from .subst import StepRef

__all__ = ["Engine", "EngineConfig", "Outcome"]


class Engine:
    """Runs one plan once. Create, then ``await run()`` exactly once."""

    def __init__(
        self,
        steps: Sequence[ResolvedStep],
        config: EngineConfig,
        executor: Executor,
        sink: EventSink,
    ) -> None:
        self._cfg = config
        self._executor = executor
        self._sink = sink
        self._index = index = {rs.step.id: i for i, rs in enumerate(steps)}
        self._nodes = [
            Node(rs, sorted({index[d] for d in rs.step.depends_on}) or ()) for rs in steps
        ]
        link_dependents(self._nodes)
        self._seq = config.last_seq
        self._now: str | None = None  # see pump
        self._ready: list[int] = []
        self._check: deque[int] = deque()
        self.launching: set[int] = set()  # attempt_started not out yet: the recorder waits
        self._running, self._unfinished = 0, len(self._nodes)
        self._pools = Pools(config.pools, self._nodes, partial(heapq.heappush, self._ready))
        for node in self._nodes:
            self._restore(node)
        for node in self._nodes:  # after every restore: kept dependencies have ended
            node.waiting = sum(1 for d in node.deps if self._nodes[d].outcome is None)
        self._unfinished -= hold_handlers(self._nodes, config.handlers)
        self._decided: tuple[Outcome, list[str]] | None = None  # the DAG's outcome
        self._aborting: str | None = None
        self._deadline_hit = self._cancelling = False
        self._cancel_reason = "run cancelled"
        self._ended = False  # run_finished was emitted (failed before any step started)
        self._tg: TaskGroup | None = None
        self._start_fields = start_fields(config, self._nodes)  # here: maybe off the loop
        send: MemoryObjectSendStream[Message]
        recv: MemoryObjectReceiveStream[Message]
        send, recv = anyio.create_memory_object_stream[Message](math.inf)
        self._inbox, self._inbox_recv = send, recv

    def _restore(self, node: Node) -> None:
        """A resume: carry over a step's earlier attempts, and its result if kept."""
        prior = self._cfg.prior.get(node.rs.step.id)
        if prior is None:
            return
        node.base = node.attempts = prior.attempts
        if self._cfg.rerun is None or node.rs.step.id in self._cfg.rerun:
            return
        node.kept = True
        node.state = prior.state
        node.exit_code = prior.exit_code
        node.outputs = dict(prior.outputs) or None
        node.outcome = policy.dep_outcome(node.rs.step, prior.state)
        self._unfinished -= 1

    # --- events ----------------------------------------------------------------------

    def _emit(self, cls: type[Event], **fields: Any) -> None:
        self._seq += 1
        self._sink(cls(run_id=self._cfg.run_id, seq=self._seq, ts=self._now or utc_now(), **fields))

    # --- the run ---------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Run every step to a terminal state and return the run's outcome.

        Cancelling the caller stops every process, records the remaining steps as
        ``cancelled``, emits ``run_finished`` and re-raises.
        """
        cfg = self._cfg
        try:
            fields = self._start_fields
            if cfg.rerun is None:
                self._emit(RunStarted, trigger=cfg.trigger, **fields)
            else:
                rerun = [n.rs.step.id for n in self._nodes if not n.kept]
                kept = {n.rs.step.id: n.state for n in self._nodes if n.kept}
                self._emit(RunResumed, rerun=rerun, kept=kept, **fields)
            for cls, fields in cfg.prelude:
                self._emit(cls, **fields)
            if cfg.before_steps is not None:
                self._before_steps(cfg.before_steps)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if cfg.run_timeout is not None:
                    tg.start_soon(self._deadline_timer, cfg.run_timeout)
                for chunk in first_checks(len(self._nodes)):  # big plans: a loop turn each
                    await anyio.lowlevel.checkpoint()
                    self._check.extend(chunk)
                    self._settle()
                await self.pump()
                tg.cancel_scope.cancel()  # stop the deadline timer
            await run_handlers(self)  # the outcome is decided first (self._decided)
        except anyio.get_cancelled_exc_class():
            await run_cancelled_handlers(self)  # shielded and bounded
            self._finish_cancelled(self._cfg.handler_stop.reason)
            raise
        except BaseException:
            if not self._ended:
                self._finish_cancelled(reason="internal error")
            raise
        return self._finish()

    def _before_steps(self, hook: Callable[[], None]) -> None:
        """Run ``hook``; if it raises a ``PlanrunError``, end the run ``failed`` with its
        message (every step ``cancelled``: none started) and re-raise."""
        try:
            hook()
        except PlanrunError as exc:
            reason = str(exc)
            for index, node in enumerate(self._nodes):
                if not node.state.terminal and not node.kept:
                    self._finish_step(index, StepState.CANCELLED, reason=f"not started: {reason}")
            self._check.clear()
            self._ended = True
            self._emit(
                RunFinished,
                state=RunState.FAILED,
                exit_code=ExitCode.FAILED,
                reason=reason,
                failed_steps=[],
            )
            raise

    def _settle(self) -> None:
        """Re-evaluate steps whose dependencies changed, then start what may start
        (until neither changes anything: a step can fail without starting)."""
        while True:
            while self._check:
                self._evaluate(self._check.popleft())
            self._pools.unpark()
            while (
                self._ready and self._running < self._cfg.max_concurrency and not self._cancelling
            ):
                index = heapq.heappop(self._ready)
                if self._pools.park(index):  # its pool is full: it waits aside, still queued
                    continue
                node = self._nodes[index]
                node.queued = False
                if node.state is StepState.PENDING or node.waiting_retry:
                    self._start_attempt(index)
            if not self._check:
                return

    def _evaluate(self, index: int) -> None:
        node = self._nodes[index]
        if node.state is not StepState.PENDING or node.queued or node.kept or node.held:
            return
        if self._cancelling:
            self._finish_step(index, StepState.CANCELLED, reason="run cancelled")
            return
        decision = policy.trigger(
            node.rs.step.when,
            [self._nodes[d].outcome for d in node.deps],
            aborting=self._aborting is not None,
        )
        match decision:
            case policy.Ready():
                if (false := condition_false(self._nodes, self._index, node.rs)) is not None:
                    self._finish_step(index, StepState.SKIPPED, reason=false)  # never failed
                    return
                node.queued = True
                heapq.heappush(self._ready, index)
            case policy.Skip(reason, root):
                self._finish_step(index, StepState.SKIPPED, reason=reason, root=root)
            case policy.Blocked():
                self._finish_step(index, StepState.CANCELLED, reason=self._aborting)
            case policy.Wait():
                pass

    def _lookup(self, ref: StepRef) -> str:  # ${steps.ID.outputs.KEY} / exit_code now
        return lookup(self._nodes, self._index, ref)

    def _start_attempt(self, index: int) -> None:
        node = self._nodes[index]
        if node.rs.for_each is not None:  # a fan-out: its instances run, not it
            engine_fanout.expand(self, index)
            return
        try:
            bound = node.rs.bind(self._lookup)
        except Unbound as exc:
            # Never run with an empty string in place of a missing value; retrying
            # cannot make it appear.
            self._fail_step(index, StepState.FAILED, None, str(exc))
            return
        node.attempts += 1
        node.waiting_retry = False
        node.state = StepState.RUNNING
        self._running += 1
        self._pools.started(index)
        self.launching.add(index)
        assert self._tg is not None
        self._tg.start_soon(self._attempt_task, index, node.attempts, bound)

    async def _attempt_task(self, index: int, attempt: int, bound: Bound) -> None:
        node = self._nodes[index]
        spec = attempt_spec(self._cfg, node.rs, attempt, bound)
        warning = secret_on_command_line(self._cfg.masker, node.rs, spec.argv)

        def started(pid: int | None, child_run_id: str | None = None) -> None:
            self.launching.discard(index)
            self._emit(
                AttemptStarted,
                step_id=node.rs.step.id,
                attempt=attempt,
                pid=pid,
                log_path=spec.log_path,
                **({"warning": warning} if warning else {}),
                **({"child_run_id": child_run_id} if child_run_id else {}),
            )

        inbox, child = self._inbox, self._cfg.run_child
        await run_attempt(self._executor, spec, node, index, started, inbox, child)

    async def _retry_timer(self, index: int, delay: float) -> None:
        node = self._nodes[index]
        with anyio.CancelScope() as scope:
            node.scope = scope
            await anyio.sleep(delay)
            node.scope = None
            self._inbox.send_nowait(RetryDue(index))

    async def _deadline_timer(self, seconds: float) -> None:
        await anyio.sleep(seconds)
        self._inbox.send_nowait(Deadline())

    # --- reacting to messages --------------------------------------------------------

    async def pump(self) -> None:
        """React to messages until every step counted in ``_unfinished`` has ended.
        One message per loop turn: a burst would start its attempts in one turn, and
        each start (a spawn) holds the loop."""
        while self._unfinished:
            msg = await self._inbox_recv.receive()
            self._now = utc_now()  # the events one message causes share its time (one str)
            self._handle(msg)
            self._settle()
            self._now = None

    def _handle(self, msg: Message) -> None:
        match msg:
            case AttemptDone():
                self._attempt_done(msg)
            case RetryDue(index):
                node = self._nodes[index]
                if node.waiting_retry and not node.queued:
                    node.queued = True
                    heapq.heappush(self._ready, index)
            case Deadline():
                self._deadline_hit = True
                self._abort(f"run deadline of {self._cfg.run_timeout:g}s exceeded")

    def _attempt_done(self, msg: AttemptDone) -> None:
        self._running -= 1
        self.launching.discard(msg.index)  # (an attempt cancelled before it started)
        self._pools.ended(msg.index)
        node = self._nodes[msg.index]
        step = node.rs.step
        state, exit_code, error = classify(step, msg.result)
        self._emit(
            AttemptFinished,
            step_id=step.id,
            attempt=msg.attempt,
            state=state,
            exit_code=exit_code,
            duration_sec=round(msg.duration, 6),
            error=error,
        )
        if state is AttemptState.SUCCEEDED:
            assert msg.result is not None
            node.outputs = dict(msg.result.outputs) if msg.result.outputs else None
            self._finish_step(
                msg.index, StepState.SUCCEEDED, exit_code=exit_code, outputs=node.outputs or {}
            )
        elif state is AttemptState.SKIPPED:
            reason = policy.skip_reason(exit_code)
            self._finish_step(msg.index, StepState.SKIPPED, exit_code=exit_code, reason=reason)
        elif state is AttemptState.CANCELLED:
            reason = self._pools.why_cancelled(msg.index) or self._aborting or "run cancelled"
            self._finish_step(msg.index, StepState.CANCELLED, reason=reason)
        else:
            self._attempt_failed(msg, state, exit_code, error)

    def _attempt_failed(
        self, msg: AttemptDone, state: AttemptState, exit_code: int | None, error: str | None
    ) -> None:
        """An attempt failed or timed out: schedule its retry, or end the step."""
        node = self._nodes[msg.index]
        step = node.rs.step
        may_retry = (self._aborting is None or node.cleanup) and not self._pools.stopped(msg.index)
        # Retries count from this run's first attempt (a resume starts after ``base``).
        relative = msg.attempt - node.base
        lost = msg.result is not None and msg.result.lost
        retry = policy.retry_decision(step, relative, state, exit_code, self._cfg.rand, lost)
        if retry is not None and self._cancelling:
            # It had a retry coming: the cancellation, not this failure, ends the step
            # (whether its attempt's result arrived just before or just after).
            self._finish_step(msg.index, StepState.CANCELLED, reason=self._cancel_reason)
            return
        if retry is not None and may_retry:
            node.waiting_retry = True
            self._emit(
                RetryScheduled,
                step_id=step.id,
                attempt=retry.attempt + node.base,
                delay_sec=round(retry.delay, 6),
            )
            assert self._tg is not None
            self._tg.start_soon(self._retry_timer, msg.index, retry.delay)
            return
        final = StepState.TIMED_OUT if state is AttemptState.TIMED_OUT else StepState.FAILED
        reason = error or failure_reason(final, exit_code, node.rs.timeout)
        self._fail_step(msg.index, final, exit_code, reason)

    def _fail_step(self, index: int, final: StepState, exit_code: int | None, reason: str) -> None:
        """End a step failed or timed out, aborting the run if its policy says so."""
        step = self._nodes[index].rs.step
        self._finish_step(index, final, exit_code=exit_code, reason=reason)
        for sibling, why in self._pools.fail_fast(index, cancelling=self._cancelling):
            self._finish_step(sibling, StepState.CANCELLED, reason=why)
        if step.critical and step.on_failure is OnFailure.ABORT and not self._cancelling:
            self._abort(f"step '{step.id}' {final.value}", step.id)

    def _finish_step(
        self,
        index: int,
        state: StepState,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
        root: str | None = None,
        outputs: dict[str, str] | None = None,
    ) -> None:
        node = self._nodes[index]
        first = node.outcome is None  # its dependents count it as ended once
        node.state, node.exit_code, node.waiting_retry = state, exit_code, False
        node.outcome = policy.dep_outcome(node.rs.step, state, root)
        self._unfinished -= 1
        self._emit(
            StepFinished,
            step_id=node.rs.step.id,
            state=state,
            attempts=node.attempts,
            exit_code=exit_code,
            reason=reason,
            outputs=outputs,
        )
        everyone = self._aborting is not None or self._cancelling  # every rule may change
        self._check.extend(dependents_to_recheck(self._nodes, node, first, everyone=everyone))
        if node.group is not None:
            engine_fanout.instance_done(self, node.group)

    def _abort(self, reason: str, step_id: str | None = None) -> None:
        """Stop everything but cleanup/rollback steps (``on_failure: abort``, deadline)."""
        if self._aborting is not None:
            return
        self._aborting = reason
        self._emit(RunAborting, reason=reason, step_id=step_id)
        for index, node in enumerate(self._nodes):
            if node.cleanup or node.kept:
                continue
            if node.state is StepState.PENDING:
                node.queued = False
                self._check.append(index)
            elif node.waiting_retry:
                if node.scope is not None:
                    node.scope.cancel()
                self._finish_step(index, StepState.CANCELLED, reason=reason)
            elif node.state is StepState.RUNNING and node.scope is not None:
                node.scope.cancel()
        self._ready[:] = [i for i in self._ready if self._nodes[i].cleanup]  # Pools has it
        heapq.heapify(self._ready)

    # --- the end ---------------------------------------------------------------------

    def _finish(self) -> Outcome:
        assert self._decided is not None
        outcome, failed = self._decided
        self._emit(
            RunFinished,
            state=outcome.state,
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            failed_steps=failed,
        )
        return outcome

    def _finish_cancelled(self, reason: str = "run cancelled", *, end: bool = True) -> None:
        """Record the end of a cancelled run. Synchronous: we are being cancelled.
        ``end=False``: the steps only (the handlers run before ``run_finished``); once the
        DAG's outcome was decided, ``run_finished`` keeps it."""
        self._cancelling = True
        self._cancel_reason = reason
        while True:
            try:
                msg = self._inbox_recv.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            if isinstance(msg, AttemptDone):
                self._attempt_done(msg)
        for index, node in enumerate(self._nodes):
            if not node.state.terminal and not node.kept and (end or not node.held):
                self._finish_step(index, StepState.CANCELLED, reason=reason)
        self._check.clear()
        if not end or self._decided is not None:
            if end:
                self._finish()
            return
        self._emit(
            RunFinished,
            state=RunState.CANCELLED,
            exit_code=ExitCode.CANCELLED,
            reason=reason,
            failed_steps=failed_steps(self._nodes),
        )
