"""Run attempts on a Dask cluster, with the semantics of the local executor.

The coordinator (planrun's process) submits each attempt as one Dask task,
:func:`.dask_remote.run_attempt`, an ``async def`` that runs on a worker's event loop
and supervises the step there with the local executor's own code (see
``dask_remote.py``): process group and session, timeout, ``stop_signal`` →
``kill_grace`` → SIGKILL, ``$PLANRUN_OUTPUT``, masking, escapees; its watchdog kills the
step's processes if the worker process dies. So one runner serves both executors.

What Dask does not do, and this executor does (see issue 17):

- **Exactly one attempt per ``run``**: the task is submitted with ``pure=False``, a key
  of its own and ``retries=0``, and on entering, the executor sets the scheduler's
  ``allowed_failures`` to 0 (else a worker lost mid-step makes Dask run the step again,
  silently, while the old tree may still be alive). A lost worker is an attempt that
  failed with ``error`` "worker tcp://… lost while the attempt ran"; planrun's retry
  policy decides.
- **Stopping**: ``Future.cancel`` does not stop a running task. A cancelled ``run``
  asks the worker running it (``client.run`` of ``dask_remote.stop``; every worker
  when it is not known to have started yet) to stop the tree as a cancelled local
  attempt is stopped, and waits (``kill_grace`` + 2 s at most) for the end.
- **A killed coordinator**: every ``renew_sec`` the executor renews its lease on the
  workers running its attempts; an attempt whose lease lapses (``lease_sec``) is
  stopped by its worker.
- **Logs come home**: the worker sends each attempt's masked lines while it runs (its
  ``log_event``, this executor's topic); they are written to ``spec.log_path`` (a new
  file, capped at ``max_log_bytes`` as locally) and passed to ``on_output``. The result
  brings the last lines too, so lines still on the way when the attempt ends are
  filled in from there. The log is kept line by line: each line ends with ``\\n``,
  a line over 8 KiB keeps its first 8 KiB (as ``on_output`` gets it locally).
- **The end**: the worker's last message on the topic (``done``, after the last
  lines) ends the attempt; the task's result (one round trip more: a gather through
  the scheduler) is waited for only when that message is missing or lines are.
  Ended attempts' futures are released with the next submit, in the same batch (a
  release of its own would delay that submit by the client's and the scheduler's
  send intervals).

**Environment**: a remote step gets the *worker's* environment, then the step's
resolved ``env`` (plan ``globals.env`` and step ``env``, with variables and secrets
substituted), then planrun's ``PLANRUN_*`` markers (run, step, attempt, run key,
``$PLANRUN_OUTPUT``). Nothing else of the coordinator's environment reaches it.
``cwd`` is a path on the worker: if it does not exist there, the attempt fails to
start with the local executor's message, naming the worker.

**Placement and concurrency**: a step's ``resources`` are the task's Dask
``resources=``; a worker runs as many steps at once as it has threads
(``dask worker --nthreads N``). The attempt's timeout runs from when its process
starts on the worker (time queued in Dask does not count, as locally it does not).
The leader's pid is on another host: ``on_started`` gets None (no pid is recorded).

Usage: ``async with DaskExecutor(client, address=...) as executor:`` where ``client``
is a ``distributed.Client(asynchronous=True)`` connected in this event loop, then pass
the executor to ``run_plan``. Worker processes must have this planrun installed. A
coordinator whose event loop stalls longer than ``lease_sec`` (5 s) has its remote
steps stopped as if it were dead (they end lost, and are retried if they may be).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup
from distributed import Client
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from ..ports import AttemptSpec, OutputLine, OutputSink, ProcessResult
from .attempt_files import CappedLog, open_log, write_all
from .dask_placement import Placement
from .dask_remote import RemoteResult, Tail, kill, renew, run_attempt, stop

__all__ = ["DaskExecutor"]

#: Beyond ``kill_grace``: how long a cancelled ``run`` waits for the remote end.
STOP_MARGIN_SEC = 2.0
#: How many of our topic's messages the scheduler keeps (subscribers get them all).
TOPIC_KEPT = 16


class _Log:
    """An attempt's log on the coordinator: a new file, capped as locally."""

    def __init__(self, path: str | None, cap: int | None) -> None:
        self._fd = open_log(path).fd
        self._capped = CappedLog(self._fd, cap) if cap is not None else None

    def write(self, data: bytes) -> None:
        if self._capped is not None:
            self._capped.write(data)
        else:
            write_all(self._fd, data)

    def close(self) -> None:
        if self._capped is not None:
            self._capped.close()  # closes the fd
        else:
            os.close(self._fd)


class _Live:
    """What the coordinator knows of one attempt while it runs."""

    def __init__(
        self,
        spec: AttemptSpec,
        on_started: Callable[[int | None], None],
        log: _Log,
        on_output: OutputSink | None,
    ) -> None:
        self.spec, self.on_started, self.log, self.on_output = spec, on_started, log, on_output
        self.worker: str | None = None
        self.started = False
        self.received = 0
        self.done = False
        #: The ``done`` message's result, once it came, and the scope waiting for it.
        self.remote: RemoteResult | None = None
        self.waiting: anyio.CancelScope | None = None

    def start(self) -> None:
        if not self.started:
            self.started = True
            # The leader's pid is a pid on the worker's host: none to record here.
            self.on_started(None)

    def lines(self, first: int, lines: Tail | list[list[Any]]) -> None:
        """Lines ``first``, ``first + 1``, … (those already written are skipped),
        written to the log in one write (a batch from the worker is one write here)."""
        new = [(str(text), bool(cut)) for text, cut in lines[max(0, self.received - first) :]]
        if not new:
            return
        self.log.write(b"".join(text.encode() + b"\n" for text, _ in new))
        self.received += len(new)
        if self.on_output is not None:
            name = self.spec.output_name or self.spec.step_id
            for text, cut in new:
                self.on_output(OutputLine(name, self.spec.attempt, text, cut))


class DaskExecutor:
    """A :class:`~planrun.ports.Executor` running each attempt as a Dask task (see the
    module docstring). ``client``: an asynchronous ``distributed.Client`` connected in
    this event loop; ``address``: the scheduler's, recorded as the run's executor
    (``name``). Tuning: ``on_output`` (as ``LocalExecutor``'s), ``lease_sec`` (how long
    a worker keeps a step running without hearing from this process), ``renew_sec``."""

    def __init__(
        self,
        client: Client,
        *,
        address: str,
        on_output: OutputSink | None = None,
        lease_sec: float = 5.0,
        renew_sec: float = 1.0,
    ) -> None:
        self.name = f"dask {address}"
        self._address = address
        #: ``Any``: distributed's API is mostly untyped.
        self._client: Any = client
        self._on_output = on_output
        self._lease_sec = lease_sec
        self._renew_sec = renew_sec
        self._owner = uuid.uuid4().hex
        self._topic = f"planrun-{self._owner}"
        self._live: dict[str, _Live] = {}
        #: Futures of ended attempts, released with the next submit (see ``_release``).
        self._spent: list[Any] = []
        self._tg: TaskGroup | None = None
        self._placement = Placement(client)

    async def __aenter__(self) -> DaskExecutor:
        await self._client.run_on_scheduler(_scheduler_setup(), self._topic)
        await self._placement.refresh()  # the workers there are now: seen
        self._client.subscribe_topic(self._topic, self._on_event)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._renew_leases)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self._release()
            with contextlib.suppress(Exception):  # a closed client: nothing to undo
                self._client.unsubscribe_topic(self._topic)
            with anyio.move_on_after(STOP_MARGIN_SEC, shield=True), contextlib.suppress(Exception):
                await self._client.run_on_scheduler(_scheduler_forget(), self._topic)

    def kill_all(self) -> None:
        """SIGKILL every running attempt's process group now, on its worker (the CLI's
        second Ctrl-C: see ``options.KillSwitch``); sent from the executor's own task,
        so this returns at once. An attempt whose worker is not known yet (its
        process may run already, the worker's "start" message still on its way) has
        every worker asked."""
        if self._tg is None or not self._live:
            return
        known = {a.worker for a in self._live.values()}
        workers = None if None in known else sorted(w for w in known if w)  # None: all
        self._tg.start_soon(self._kill_remote, workers)

    async def _kill_remote(self, workers: list[str] | None) -> None:
        with contextlib.suppress(Exception):  # cluster gone: the lease does the rest
            await self._client.run(kill, self._owner, workers=workers, on_error="ignore")

    async def _renew_leases(self) -> None:
        """Every ``renew_sec``: renew this process's lease on the workers running its
        attempts (a lost renewal is not an error: the next one may get through)."""
        while True:
            await anyio.sleep(self._renew_sec)
            self._release()
            workers = sorted({a.worker for a in self._live.values() if a.worker})
            if not workers:
                continue
            with anyio.move_on_after(self._lease_sec / 2), contextlib.suppress(Exception):
                await self._client.run(
                    renew, self._owner, self._lease_sec, workers=workers, on_error="ignore"
                )

    def _on_event(self, event: tuple[float, list[Any]]) -> None:
        """A message from a worker about one of our attempts (see ``dask_remote``)."""
        msg = event[1]
        live = self._live.get(str(msg[1]))
        if live is None or live.done:
            return
        kind = msg[0]
        if kind == "lines":
            live.lines(int(msg[2]), msg[3])
        elif kind == "start":
            live.worker = str(msg[2])
            live.start()
        elif kind == "done":
            remote = RemoteResult.from_wire(msg[2])
            # Every line came before it (one stream, in order); else the task's
            # result, which brings the tail, is waited for.
            if live.received >= remote.lines and live.waiting is not None:
                live.remote = remote
                live.waiting.cancel()

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        """Run one attempt; see :class:`~planrun.ports.Executor` for the contract."""
        if self._tg is None:
            raise RuntimeError("DaskExecutor.run: enter the executor first (async with)")
        if spec.resources:
            why = await self._placement.unplaceable(spec.resources)
            if why is not None:  # Dask would leave it pending for ever
                on_started(None)
                where = f"no worker of the Dask cluster at {self._address} can run it"
                return ProcessResult(None, error=f"{where}: the step {why}")
        try:
            log = _Log(spec.log_path, spec.max_log_bytes)
        except OSError as exc:
            on_started(None)
            return ProcessResult(exit_code=None, error=str(exc))
        key = f"planrun-{spec.step_id}-{spec.attempt}-{uuid.uuid4().hex}"
        live = _Live(spec, on_started, log, self._on_output)
        self._live[key] = live
        try:
            try:
                future = self._submit(spec, key)
            except Exception as exc:  # e.g. the client is closed, the spec will not pickle
                return self._finish(live, _failed(exc, "cannot submit the attempt"))
            try:
                return self._finish(live, await self._ended(live, future))
            except BaseException:
                with anyio.move_on_after(spec.kill_grace + STOP_MARGIN_SEC, shield=True):
                    await self._stop(key, live, future)
                raise
            finally:
                self._spent.append(future)
        finally:
            live.done = True
            del self._live[key]
            log.close()

    def _submit(self, spec: AttemptSpec, key: str) -> Any:
        remote = msgspec.structs.replace(
            spec, log_path=None, max_log_bytes=None, env=dict(spec.env), resources={}
        )
        future: Any = self._client.submit(
            run_attempt,
            remote,
            key,
            self._owner,
            self._topic,
            self._lease_sec,
            key=key,
            pure=False,
            retries=0,
            resources=dict(spec.resources) or None,
        )
        self._release()
        return future

    def _release(self) -> None:
        """Release the futures of ended attempts. Called right after a submit, so that
        the client sends both in one batch: a message of its own would start the
        client's send interval (10 ms) and the scheduler's to the worker (5 ms) just
        before the next attempt's submit and delay it (the next step of a chain).
        Also every ``renew_sec`` and on exit, for futures no submit followed."""
        spent, self._spent = self._spent, []
        for future in spent:
            future.release()

    async def _ended(self, live: _Live, future: Any) -> RemoteResult | ProcessResult:
        """How the attempt ended: from its ``done`` message (see ``_on_event``), or
        from the task's outcome, whichever comes first."""
        outcome: RemoteResult | ProcessResult | None = None
        with anyio.CancelScope() as live.waiting:
            outcome = await self._outcome(future)
        live.waiting = None
        if live.remote is not None:
            return live.remote
        assert outcome is not None  # only a done message cancels the wait
        return outcome

    async def _outcome(self, future: Any) -> RemoteResult | ProcessResult:
        """The task's result, or the failed attempt if the task itself failed."""
        try:
            remote: RemoteResult = await future
        except KilledWorker as exc:
            return ProcessResult(
                exit_code=None,
                error=f"worker {exc.last_worker.address} lost while the attempt ran",
                lost=True,
            )
        except asyncio.CancelledError:
            raise
        except FutureCancelledError as exc:  # e.g. the scheduler's connection lost
            why = f"the task was cancelled by Dask ({exc.reason})"
            return ProcessResult(exit_code=None, error=f"dask: {why}", lost=True)
        except Exception as exc:  # any failure of the task: the attempt's
            return _failed(exc, "the task failed")
        return remote

    def _finish(self, live: _Live, outcome: RemoteResult | ProcessResult) -> ProcessResult:
        """The attempt's result, its log completed from the tail the result brought."""
        live.start()  # once, also for an attempt that never started
        if isinstance(outcome, ProcessResult):
            result = outcome
        else:
            first = outcome.lines - len(outcome.tail)
            if live.received < first:
                lost = first - live.received
                live.log.write(f"planrun: {lost} lines of output did not arrive\n".encode())
                live.received = first
            live.lines(first, outcome.tail)
            result = outcome.result or ProcessResult(
                exit_code=None,
                error=f"stopped on worker {outcome.worker}: {outcome.stopped}",
                lost=True,
            )
            if result.exit_code is None and result.error and not outcome.stopped:
                result = msgspec.structs.replace(
                    result, error=f"{result.error} (on worker {outcome.worker})"
                )
        live.done = True
        if result.exit_code is None and result.error:
            live.log.write(f"planrun: {result.error}\n".encode())
        return result

    async def _stop(self, key: str, live: _Live, future: Any) -> None:
        """Stop a cancelled attempt's tree and wait for its end: on its worker if it is
        known to run there; else on every worker (it may be starting on any of them,
        and one that has not started it yet never will), and out of the scheduler."""
        workers = [live.worker] if live.worker else None
        try:
            ran = await self._client.run(stop, key, "cancelled", workers=workers, on_error="ignore")
        except Exception:  # cluster gone: nothing more can be done here
            return
        if live.worker or any(value is True for value in ran.values()):
            with contextlib.suppress(Exception):  # how it ended does not matter now
                await future  # it returns once the tree is gone
        else:
            await self._client.cancel([future])


def _failed(exc: Exception, what: str) -> ProcessResult:
    """An attempt that failed in Dask, not in its process: why, in one line."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ProcessResult(exit_code=None, error=f"dask: {what}: {type(exc).__name__}: {first}")


def _scheduler_setup() -> Callable[..., int]:
    """A function for ``run_on_scheduler(f, topic)``: sets ``allowed_failures`` to 0 (a
    lost worker's task is not run again) and keeps only the last ``TOPIC_KEPT``
    messages of our topic on the scheduler (it keeps 100,000 by default, and they
    are our steps' output); returns the previous ``allowed_failures``. Made here so
    that it is pickled by value: the scheduler need not have planrun installed."""

    def setup(topic: str, dask_scheduler: Any) -> int:
        import collections

        previous = int(dask_scheduler.allowed_failures)
        dask_scheduler.allowed_failures = 0
        # Private: a version without it just keeps its default retention.
        with contextlib.suppress(AttributeError, KeyError, TypeError):
            dask_scheduler._broker._topics[topic].events = collections.deque(maxlen=TOPIC_KEPT)
        return previous

    return setup


def _scheduler_forget() -> Callable[..., None]:
    """A function for ``run_on_scheduler(f, topic)``: drop our topic's messages."""

    def forget(topic: str, dask_scheduler: Any) -> None:
        with contextlib.suppress(AttributeError):
            dask_scheduler._broker._topics.pop(topic, None)

    return forget
