"""Run attempts as local processes, each in its own session, stopped as a group.

How an attempt is supervised (see shared/pitfalls.md for the evidence):

- ``Popen`` (or ``posix_spawn`` where it starts the same child for less:
  ``leader.py``) with an argv (never a shell), ``start_new_session=True``, run in the
  executor's spawn thread (``spawner.py``) so the event loop goes on while the child
  gets to ``exec`` (or inline, which costs less, within a budget per loop turn): the
  attempt's process group id is its pid, recorded as soon as the spawn returns, and
  the attempt is supervised from then on whatever happens.
- stdout and stderr go straight to the attempt's log file (a new file: see
  ``attempt_files.py``): no pipe into planrun, so nothing is buffered in memory and no
  grandchild can hold a pipe of ours open. The exceptions are a run with secrets and a
  step with ``max_log_bytes`` and an executor made with ``on_output`` (the lines go
  to that callback too, as they are written): output then flows through a pipe that planrun reads,
  masks and caps (``pump.Pump``) before it reaches the log, so no secret is ever on disk.
- ``$PLANRUN_OUTPUT`` names a file planrun creates for the attempt in a private temp
  dir, not the state dir (a step may write a secret there), with a random name; it is
  read back only if it is still that regular file, after a normal exit, and deleted
  (see ``attempt_files.py``).
- Leader exit is awaited through a pidfd (no thread per child); the leader is reaped
  only at the very end, so its pid, which is the group id, cannot be reused while we
  may still signal the group.
- Group emptiness is observed without polling: every attempt inherits the write end of
  a "sentinel" pipe, and the read end reaches EOF when the last holder exits.
- Stopping is ``killpg(SIGTERM)`` (or the step's ``stop_signal``), ``kill_grace``
  seconds, ``killpg(SIGKILL)``. It
  runs after a timeout, after cancellation (shielded, with its own deadline), and after
  a normal exit if the step left background processes behind: nothing a step started
  outlives its attempt.

Where each part lives (each module's docstring states its contract):

- ``spawn.py``: the attempt's files, environment and ``Popen``; spawn-error wording.
- ``spawner.py``: the thread that runs the ``Popen`` calls, one at a time.
- ``tags.py``: the environment markers of an attempt's processes and ``/proc`` scans.
- ``group.py``: supervising a started group (``Attempt``): waits, stop, escapees,
  stragglers.
- ``pump.py``: the masking and capping copy from the output pipe to the log.
- ``capacity.py``: the open-file limit (``attempt_capacity``) and fd checks for a spawn.
- ``attempt_files.py``: logs and outputs files; ``watchdog.py``: the process that kills
  the steps if planrun is killed.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable

import anyio

from ..outputs import OutputError
from ..ports import AttemptSpec, OutputSink, ProcessResult
from .attempt_files import OutputFile, OutputsRoot
from .capacity import (
    SPAWN_FDS,
    attempt_capacity,
    fds_available,
    no_fds_left,
    out_of_fds,
)
from .group import KILL_WAIT_SEC, Attempt, kill_and_wait, killpg
from .leader import inheritable_fds
from .pump import DRAIN_SEC
from .spawn import Launched, Prepared, finish, launch, prepare
from .spawner import SpawnThread
from .tags import Scanner, processes_of_runs
from .watchdog import Watchdog

__all__ = ["SPAWN_FDS", "LocalExecutor", "attempt_capacity"]


class LocalExecutor:
    """The default :class:`~planrun.ports.Executor`: local processes, one session each.

    A watchdog process (see ``watchdog.py``) kills the steps if planrun itself is
    killed; call :meth:`close` (or use ``with``) when done so it leaves quietly.

    Every step process carries ``PLANRUN_RUN_ID``, ``PLANRUN_STEP_ID``,
    ``PLANRUN_ATTEMPT`` and ``PLANRUN_ATTEMPT_TAG`` (``run/step/attempt``) in its
    environment, so descendants that left the process group are still found.

    ``on_output``: called with every line an attempt writes, as it is written (see
    :class:`~planrun.ports.OutputLine`), on the event loop thread; it must not raise
    (``run_plan`` guards the caller's). Without it, steps write their logs directly.
    """

    def __init__(self, on_output: OutputSink | None = None) -> None:
        self._on_output = on_output
        self._live: dict[int, Attempt] = {}
        self._watchdog = Watchdog()
        self._runs: set[str] = set()
        self._outputs = OutputsRoot(on_created=self._watchdog.remove_on_death)
        self._scanner = Scanner()
        #: Set (and replaced) whenever an attempt ends while spawns that ran out of
        #: file descriptors wait for it (``_fd_waiters`` of them).
        self._ended = anyio.Event()
        self._fd_waiters = 0
        #: ``/dev/null``, every leader's stdin: opened once, not once per spawn.
        self._devnull: int | None = None
        self._spawner = SpawnThread()
        #: planrun's inheritable fds, scanned at the first spawn (see leader.py); None:
        #: unknown, so ``Popen`` only (also with ``PLANRUN_SPAWN_POPEN=1``, to compare).
        self._inheritable: tuple[int, ...] | None = None
        self._popen_only = os.environ.get("PLANRUN_SPAWN_POPEN") == "1"
        #: Attempts between ``prepare`` and ``finish`` (their fds are taken).
        self._starting = 0
        #: Set by :meth:`kill_all`: an attempt whose spawn was under way then is
        #: killed as soon as it is registered.
        self._killing = False

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End of the runs: kill any process still tagged with their run keys (one that
        left its group with ``setsid`` and closed every inherited fd, or a step of a
        nested run) and wait until they are gone (``group.KILL_WAIT_SEC`` at most), then
        dismiss the watchdog. Call when no attempt runs any more.

        The spawn thread ends first: a launch still under way then (its task was
        cancelled from outside anyio) has started its process by the time of the
        sweep, which kills it."""
        self._spawner.close()
        if self._runs:
            kill_and_wait(processes_of_runs(self._runs))
        self._runs.clear()
        self._watchdog.close()
        self._outputs.close()
        if self._devnull is not None:
            os.close(self._devnull)
            self._devnull = None

    def start_run(self, run_key: str) -> None:
        """Start guarding the run ``run_key`` (``RUN_ID@SCOPE``, see ``proc.run_key``):
        from here on, if planrun is SIGKILLed, the watchdog kills every process of the
        run. Called before the run's first step (``HelperError`` if the watchdog cannot
        start); ``run`` calls it too."""
        if run_key not in self._runs:
            self._watchdog.watch_run(run_key)
            self._runs.add(run_key)

    async def _spawn_when_fds_allow(self, spec: AttemptSpec) -> Attempt | ProcessResult:
        """Start the attempt (``spawn.prepare`` here, ``launch`` in the spawn thread:
        see ``spawner.py``, ``finish`` here), but never failing for want of file
        descriptors while another attempt runs: wait for one to end (it frees its
        fds) and try again.

        Before each try, ``SPAWN_FDS`` descriptors are opened and closed again to see
        that a spawn can have them (nothing else runs on this loop before ``prepare``
        has opened the attempt's files).
        """
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if not self._popen_only:
                self._inheritable = inheritable_fds()
        while True:
            if fds_available(SPAWN_FDS):
                started = await self._start(spec, self._devnull)
                if not (self._holding_fds() and out_of_fds(started)):
                    return started
            elif not self._holding_fds():  # nothing will free any: waiting cannot help
                return no_fds_left()
            self._fd_waiters += 1
            try:
                await self._ended.wait()
            finally:
                self._fd_waiters -= 1

    def _holding_fds(self) -> bool:
        """Is an attempt running or being started (so fds will be freed)?"""
        return bool(self._live) or self._starting > 0

    def _signal_ended(self) -> None:
        """Wake the spawns waiting for fds: an attempt ended, or failed to start."""
        if self._fd_waiters:  # (a new Event per attempt would cost more than this check)
            self._ended.set()
            self._ended = anyio.Event()

    async def _start(self, spec: AttemptSpec, devnull: int) -> Attempt | ProcessResult:
        prepared = prepare(spec, self._outputs, self._on_output)
        if isinstance(prepared, ProcessResult):
            return prepared
        # Here, unless a burst has held the loop long enough: see spawner.py.
        inline = self._spawner.may_inline()
        self._starting += 1
        try:
            launched = await self._spawner.call(
                # posix_spawn holds the GIL until the child has exec'd (Popen's vfork
                # lets it go): inline only, where the loop waits for the spawn anyway.
                functools.partial(launch, prepared, devnull, self._inheritable if inline else None),
                functools.partial(_release_orphan, prepared),
                inline=inline,
            )
        finally:
            self._starting -= 1
        started = finish(prepared, launched)
        if isinstance(started, ProcessResult):
            self._signal_ended()  # its fds are free again
        return started

    def kill_all(self) -> None:
        """SIGKILL every running attempt's group now (the CLI's second Ctrl-C)."""
        self._killing = True
        for attempt in list(self._live.values()):
            killpg(attempt.pgid, signal.SIGKILL)

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        """Run one attempt; see :class:`~planrun.ports.Executor` for the contract."""
        self.start_run(spec.key)
        started = await self._spawn_when_fds_allow(spec)
        if isinstance(started, ProcessResult):
            on_started(None)
            return started
        attempt = started
        try:
            return await self._run_started(attempt, spec, on_started)
        finally:
            attempt.output.remove()  # also when cancelled: it holds an fd

    async def _run_started(
        self, attempt: Attempt, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        pump = attempt.pump
        if pump is None:
            # The common case (no secrets, no log cap): no task group to pay for.
            timed_out, code = await self._watch(attempt, spec, on_started)
        elif pump.start():  # copying from a reader callback: no task either
            try:
                timed_out, code = await self._watch(attempt, spec, on_started)
                if not pump.done.is_set():
                    with anyio.move_on_after(DRAIN_SEC):
                        await pump.done.wait()
            finally:
                error = pump.stop()
            if error is not None:
                raise error
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump.run)
                timed_out, code = await self._watch(attempt, spec, on_started)
                if not pump.done.is_set():
                    with anyio.move_on_after(DRAIN_SEC):
                        await pump.done.wait()
                    # (Only now: cancel() formats a reason naming the task, ~30 µs.)
                    tg.cancel_scope.cancel()
        result = ProcessResult(exit_code=code, timed_out=timed_out)
        if not timed_out and code is not None and code >= 0:
            result = _with_outputs(result, attempt.output)
        return result

    async def _watch(
        self, attempt: Attempt, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> tuple[bool, int | None]:
        """Supervise a started attempt to its end, whatever happens (cancellation
        included: the group is stopped first); (timed out, exit code)."""
        self._live[attempt.pgid] = attempt
        self._watchdog.track(attempt.pgid)
        if self._killing:  # kill_all ran while this one was being spawned
            killpg(attempt.pgid, signal.SIGKILL)
        try:
            on_started(attempt.pgid)
            timed_out = await self._supervise(attempt, spec)
        except BaseException:
            with anyio.move_on_after(spec.kill_grace + KILL_WAIT_SEC + 1, shield=True):
                await attempt.stop(spec.kill_grace, self._scanner, spec.stop_signal)
            raise
        finally:
            code = attempt.close()
            del self._live[attempt.pgid]
            self._watchdog.untrack(attempt.pgid)
            self._signal_ended()
        return timed_out, code

    async def _supervise(self, attempt: Attempt, spec: AttemptSpec) -> bool:
        """Wait for the attempt and stop whatever it leaves; True if it timed out."""
        timed_out = False
        if spec.timeout is None:
            await attempt.wait_exit()  # no cancel scope to pay for
        else:
            with anyio.move_on_after(spec.timeout):
                await attempt.wait_exit()
        if not attempt.exited:
            timed_out = True
            await attempt.stop(spec.kill_grace, self._scanner, spec.stop_signal)
        elif not attempt.check_group():
            # The leader is gone but something it started lingers: stop it too.
            await attempt.stop(spec.kill_grace, self._scanner, spec.stop_signal)
        await attempt.stop_stragglers(spec.kill_grace, spec.stop_signal)
        return timed_out


def _release_orphan(prepared: Prepared, launched: Launched) -> None:
    """A launch whose task was cancelled (from outside anyio) while it ran: kill the
    group, reap the leader, free its files; nobody will supervise it."""
    started = finish(prepared, launched)
    if isinstance(started, Attempt):
        killpg(started.pgid, signal.SIGKILL)
        started.close()
        if started.pump is not None:
            started.pump.release()
        started.output.remove()


def _with_outputs(result: ProcessResult, output: OutputFile) -> ProcessResult:
    """``result`` with what the attempt wrote to ``$PLANRUN_OUTPUT``."""
    try:
        outputs = output.read()
    except OutputError as exc:
        return ProcessResult(result.exit_code, result.timed_out, result.error, None, str(exc))
    return ProcessResult(result.exit_code, result.timed_out, result.error, outputs)
