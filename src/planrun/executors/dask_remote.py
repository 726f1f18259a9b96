"""The worker side of the Dask executor: one attempt, run on a Dask worker's event loop
by planrun's own local supervision.

Contract: :func:`run_attempt` is the task the coordinator submits (an ``async def``,
so it runs on the worker's event loop; nothing in it blocks that loop beyond the
cheap system calls :class:`~.local.LocalExecutor` makes there). It runs the attempt
with a :class:`~.local.LocalExecutor` made once per worker process (:func:`_local`), so
process group and session, timeout, ``stop_signal`` → ``kill_grace`` → SIGKILL,
``$PLANRUN_OUTPUT``, masking and the escapee sweep are the local executor's own code,
and that executor's watchdog kills the attempt's processes if the worker process
dies. It returns a :class:`RemoteResult` only once the attempt's processes are gone.

Around it, three things the local executor does not need:

- **Output**: every line (masked on the worker) goes home through the worker's
  ``log_event`` on the coordinator's topic, batched every ``FLUSH_SEC``, numbered, and
  the last ``TAIL_LINES`` lines (at most ``TAIL_BYTES``) also come back in the result,
  so the coordinator's log does not depend on the stream.
- **Stop**: :func:`stop` (called through ``client.run`` on the worker) cancels the
  attempt: its tree is stopped as a cancelled local attempt is. A stop that arrives
  before the attempt starts on this worker is remembered, and the attempt then never
  starts.
- **Lease**: the coordinator renews its lease (:func:`renew`) every second; an attempt
  whose coordinator's lease lapses (``lease_sec``, the coordinator was killed or cut
  off) is stopped the same way.

Messages on the topic (msgpack lists): ``["start", KEY, WORKER, PGID]``,
``["lines", KEY, FIRST_SEQ, [[TEXT, CUT], ...]]``, and last ``["done", KEY, RESULT]``
(:meth:`RemoteResult.wire`: the attempt's processes are gone).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec

from ..ports import AttemptSpec, OutputLine, ProcessResult
from .group import killpg
from .local import LocalExecutor

__all__ = ["RemoteResult", "Tail", "kill", "renew", "run_attempt", "stop"]

#: How long output lines may wait on the worker to be sent together.
FLUSH_SEC = 0.01
#: The tail that comes back with the result: at most this many lines and bytes.
TAIL_LINES = 1000
TAIL_BYTES = 256 * 1024
#: Stops remembered for attempts not (yet) seen on this worker.
STOPPED_KEPT = 10000

#: One line as it travels: (text, cut).
Tail = list[tuple[str, bool]]


@dataclass(slots=True)
class RemoteResult:
    """What an attempt's task returns: how it ended (``result``; None when it was
    stopped: ``stopped`` says why), where it ran, how many lines it wrote (``lines``)
    and the last of them (``tail``)."""

    result: ProcessResult | None
    worker: str
    lines: int = 0
    tail: Tail = field(default_factory=list)
    stopped: str | None = None

    def wire(self) -> list[Any]:
        """This result, without its tail, as the ``done`` message carries it (plain
        values: the scheduler relays it as msgpack)."""
        result = None if self.result is None else list(msgspec.structs.astuple(self.result))
        return [result, self.worker, self.lines, self.stopped]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> RemoteResult:
        """The result :meth:`wire` made (its tail empty: the lines came before it)."""
        result, worker, lines, stopped = wire
        process = None if result is None else ProcessResult(*result)
        return cls(process, str(worker), int(lines), [], stopped)


class _Attempt:
    """One attempt running on this worker: its output buffer and its cancel scope."""

    def __init__(self, key: str, owner: str, topic: str, worker: Any) -> None:
        self.key, self.owner, self.topic = key, owner, topic
        #: The ``distributed.Worker`` running it (held: callbacks need no context).
        self._worker = worker
        self.worker: str = worker.address
        self.scope = anyio.CancelScope()
        self.stopped: str | None = None
        #: The attempt's process group on this host, once it started.
        self.pgid: int | None = None
        self.sent = 0
        self.pending: Tail = []
        self.tail: collections.deque[tuple[str, bool]] = collections.deque(maxlen=TAIL_LINES)
        self.tail_bytes = 0
        self.flush_at: asyncio.TimerHandle | None = None

    def line(self, text: str, cut: bool) -> None:
        self.pending.append((text, cut))
        if len(self.tail) == TAIL_LINES:
            self.tail_bytes -= len(self.tail[0][0])
        self.tail.append((text, cut))
        self.tail_bytes += len(text)
        while self.tail_bytes > TAIL_BYTES and len(self.tail) > 1:
            self.tail_bytes -= len(self.tail.popleft()[0])
        if self.flush_at is None:
            self.flush_at = asyncio.get_running_loop().call_later(FLUSH_SEC, self.flush)

    def flush(self) -> None:
        """Send the lines not sent yet (one message)."""
        if self.flush_at is not None:
            self.flush_at.cancel()
            self.flush_at = None
        if self.pending:
            lines = [[text, cut] for text, cut in self.pending]
            self.send(["lines", self.key, self.sent, lines])
            self.sent += len(lines)
            self.pending = []

    def send(self, msg: list[object]) -> None:
        """A message to the coordinator (through the scheduler, in order)."""
        self._worker.log_event(self.topic, msg)

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
        self.scope.cancel()


#: The attempts running in this worker process, by key.
_running: dict[str, _Attempt] = {}
#: Keys stopped before they started here (bounded: oldest forgotten first).
_stopped: collections.OrderedDict[str, str] = collections.OrderedDict()
#: Each coordinator's lease: until when (``time.monotonic()``) it is good.
_leases: dict[str, float] = {}
_executor: list[LocalExecutor] = []


#: The workers of this process that ran an attempt here (see :func:`_hosted_by`).
_hosts: set[str] = set()
_CLOSER = "planrun-local-executor"


def _local() -> LocalExecutor:
    """This worker process's local executor (made on first use and kept while a worker
    of the process lives: its watchdog kills the steps if the worker process dies)."""
    if not _executor:
        _executor.append(LocalExecutor(on_output=_deliver))
        logging.getLogger("distributed.worker").addFilter(_quiet_renewals)
    return _executor[0]


async def _hosted_by(worker: Any) -> None:
    """Have ``worker`` close this process's local executor when it is the last worker
    of the process to close (a plugin's teardown). A ``dask worker`` process ends with
    its worker anyway; an in-process ``LocalCluster`` (``processes=False``) closes its
    workers while the process goes on, and the executor's watchdog must not outlive
    them as an idle process."""
    if worker.address in _hosts:
        return
    from distributed import WorkerPlugin

    class Closer(WorkerPlugin):
        def teardown(self, worker: Any) -> None:
            _hosts.discard(worker.address)
            if not _hosts and not _running and _executor:
                _executor.pop().close()

    _hosts.add(worker.address)
    await worker.plugin_add(Closer(), name=_CLOSER)


def _quiet_renewals(record: logging.LogRecord) -> bool:
    """Leave out the worker's INFO line for each lease renewal (one a second)."""
    return not (record.msg == "Run out-of-band function %r" and record.args == ("renew",))


def _deliver(line: OutputLine) -> None:
    """Route a line to its attempt (the remote spec's ``output_name`` is the key)."""
    attempt = _running.get(line.step_id)
    if attempt is not None:
        attempt.line(line.text, line.cut)


def renew(owner: str, lease_sec: float) -> None:
    """The coordinator ``owner`` is alive: its lease runs ``lease_sec`` from now."""
    _leases[owner] = max(_leases.get(owner, 0.0), time.monotonic() + lease_sec)


def stop(key: str, reason: str) -> bool:
    """Stop attempt ``key`` (now if it runs here, else as soon as it would start);
    True if it was running here."""
    attempt = _running.get(key)
    if attempt is not None:
        attempt.stop(reason)
        return True
    _stopped[key] = reason
    while len(_stopped) > STOPPED_KEPT:
        _stopped.popitem(last=False)
    return False


def kill(owner: str) -> int:
    """SIGKILL the process group of every attempt of coordinator ``owner`` running
    here, now (the local executor's ``kill_all``; the stop that follows the run's
    cancellation still sweeps what left the groups); how many."""
    killed = 0
    for attempt in list(_running.values()):
        if attempt.owner == owner and attempt.pgid is not None:
            killpg(attempt.pgid, signal.SIGKILL)
            killed += 1
    return killed


async def _watch_lease(attempt: _Attempt, lease_sec: float) -> None:
    """Stop ``attempt`` when its coordinator's lease lapses (a timer, re-armed at each
    renewal: the renewals come from another process, nothing here could wake us)."""
    while True:
        left = _leases.get(attempt.owner, 0.0) - time.monotonic()
        if left <= 0:
            attempt.stop(f"the coordinator's lease lapsed ({lease_sec:g}s without renewal)")
            return
        await anyio.sleep(left)


async def run_attempt(
    spec: AttemptSpec, key: str, owner: str, topic: str, lease_sec: float
) -> RemoteResult:
    """Run ``spec`` here (see the module's contract); ``key`` names the attempt,
    ``owner``/``topic`` its coordinator."""
    from distributed import get_worker

    host = get_worker()
    await _hosted_by(host)
    attempt = _Attempt(key, owner, topic, host)
    worker = attempt.worker
    if key in _stopped:
        return RemoteResult(None, worker, stopped=_stopped.pop(key))
    renew(owner, lease_sec)
    _running[key] = attempt
    try:
        result = await _supervised(
            attempt, msgspec.structs.replace(spec, output_name=key), lease_sec
        )
    except asyncio.CancelledError:
        # Only the worker itself cancels this task (it is closing): the tree is stopped
        # by now. Reported as stopped, not raised, so Dask does not run it again
        # elsewhere: planrun's retry policy decides.
        result, attempt.stopped = None, f"worker {worker} closed while the attempt ran"
    finally:
        del _running[key]
        attempt.flush()
    stopped = attempt.stopped if result is None else None
    remote = RemoteResult(result, worker, attempt.sent, list(attempt.tail), stopped)
    # The processes are gone: say so on the topic, after the last lines. The
    # coordinator takes this instead of waiting for the task's result (which costs it
    # a round trip more: task finished, then a gather through the scheduler).
    attempt.send(["done", key, remote.wire()])
    return remote


async def _supervised(
    attempt: _Attempt, spec: AttemptSpec, lease_sec: float
) -> ProcessResult | None:
    """The local executor's run of ``spec`` under ``attempt``'s cancel scope, with the
    lease watched beside it; None if it was stopped."""
    result: ProcessResult | None = None

    def started(pgid: int | None) -> None:
        attempt.pgid = pgid
        attempt.send(["start", attempt.key, attempt.worker, pgid])

    with attempt.scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_lease, attempt, lease_sec)
            try:
                result = await _local().run(spec, started)
            finally:
                attempt.pgid = None  # reaped: the id may be reused, never signal it again
            tg.cancel_scope.cancel()
    return result
