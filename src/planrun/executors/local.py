"""Run attempts as local processes, each in its own session, stopped as a group.

How an attempt is supervised (see shared/pitfalls.md for the evidence):

- ``Popen`` with an argv (never a shell), ``start_new_session=True``: the attempt's
  process group id is its pid, recorded before any await.
- stdout and stderr go straight to the attempt's log file (a new file: see
  ``attempt_files.py``): no pipe into planrun, so nothing is buffered in memory and no
  grandchild can hold a pipe of ours open. The exceptions are a run with secrets and a
  step with ``max_log_bytes``: output then flows through a pipe that planrun reads,
  masks and caps (``_Pump``) before it reaches the log, so no secret is ever on disk.
- ``$PLANRUN_OUTPUT`` names a file planrun creates for the attempt in a private temp
  dir, not the state dir (a step may write a secret there), with a random name; it is
  read back only if it is still that regular file, after a normal exit, and deleted
  (see ``attempt_files.py``).
- Leader exit is awaited through a pidfd (no thread per child); the leader is reaped
  only at the very end, so its pid, which is the group id, cannot be reused while we
  may still signal the group.
- Group emptiness is observed without polling: every attempt inherits the write end of
  a "sentinel" pipe, and the read end reaches EOF when the last holder exits.
- Stopping is ``killpg(SIGTERM)``, ``kill_grace`` seconds, ``killpg(SIGKILL)``. It
  runs after a timeout, after cancellation (shielded, with its own deadline), and after
  a normal exit if the step left background processes behind: nothing a step started
  outlives its attempt.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from ..masking import Masker
from ..outputs import OutputError
from ..ports import AttemptSpec, ProcessResult
from ..proc import environments
from .attempt_files import CappedLog, OutputFile, OutputsRoot, open_log, write_all
from .watchdog import Watchdog

__all__ = ["LocalExecutor"]

#: How long to wait for a group to vanish after SIGKILL before giving up on it.
KILL_WAIT_SEC = 2.0
#: After SIGKILL to the group, how long before looking for escaped descendants.
ESCAPE_CHECK_SEC = 0.2
#: How long to keep reading a masked output pipe after the group is gone (a process
#: that left the group may still hold it).
DRAIN_SEC = 0.5


def attempt_tag(run_id: str, step_id: str, attempt: int) -> bytes:
    """The environment entry that marks every process of one attempt."""
    return f"PLANRUN_ATTEMPT_TAG={run_id}/{step_id}/{attempt}".encode()


def tagged_processes(tag: bytes) -> list[int]:
    """Pids of live processes whose environment holds ``tag`` (a ``/proc`` scan)."""
    return [pid for pid, environ in environments() if tag in environ]


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class _LogSink:
    """Where a pump's bytes go: the log file as is (no cap)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        write_all(self._fd, data)

    def close(self) -> None:
        os.close(self._fd)


class _Pump:
    """Copies a step's output from a pipe to its log file, masking secrets on the way
    (a secret split across two reads is still masked: see ``StreamMasker``) and then
    keeping at most ``cap`` bytes (``CappedLog``: the head, a marker, the tail)."""

    def __init__(self, read_fd: int, log_fd: int, masker: Masker | None, cap: int | None) -> None:
        self._fd = read_fd
        self._log: _LogSink | CappedLog = (
            _LogSink(log_fd) if cap is None else CappedLog(log_fd, cap)
        )
        self._stream = (masker or Masker(())).stream()
        self.done = anyio.Event()

    def discard(self) -> None:
        """Close the pipe's read end, never started (the log fd stays open)."""
        os.close(self._fd)

    def _read_available(self) -> bool:
        """Copy what can be read now; False at end of file."""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self._log.write(self._stream.feed(chunk))

    async def run(self) -> None:
        """Copy until every writer has closed the pipe (or until cancelled)."""
        try:
            while self._read_available():
                await anyio.wait_readable(self._fd)
        finally:
            # Whatever is still buffered in the pipe is copied before closing, also
            # when cancelled: the group is stopped by then, so nothing more will come.
            with contextlib.suppress(OSError):
                self._read_available()
            with contextlib.suppress(OSError):
                self._log.write(self._stream.flush())
            os.close(self._fd)
            with contextlib.suppress(OSError):
                self._log.close()
            self.done.set()


class _Attempt:
    """One running process group: its leader, pidfd and sentinel pipe."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        sentinel: int,
        tag: bytes,
        output: OutputFile,
        pump: _Pump | None = None,
    ) -> None:
        self.proc = proc
        self.tag = tag
        self.output = output
        self.pump = pump
        self.pgid = proc.pid
        self.sentinel = sentinel
        self.pidfd = _pidfd(proc.pid)
        self.exited = False
        self.group_empty = False

    async def wait_exit(self) -> None:
        """Wait until the leader has exited (it stays unreaped: a zombie)."""
        if self.exited:
            return
        if self.pidfd is not None:
            await anyio.wait_readable(self.pidfd)
        else:
            await anyio.to_thread.run_sync(
                os.waitid, os.P_PID, self.pgid, os.WEXITED | os.WNOWAIT, abandon_on_cancel=True
            )
        self.exited = True

    async def wait_group(self) -> None:
        """Wait until the leader exited and no process holds the sentinel any more."""
        await self.wait_exit()
        while not self.group_empty:
            await anyio.wait_readable(self.sentinel)
            try:
                self.group_empty = os.read(self.sentinel, 4096) == b""
            except BlockingIOError:
                continue

    def check_group(self) -> bool:
        """Non-blocking: is the sentinel at EOF (every holder gone)?"""
        if not self.group_empty:
            try:
                self.group_empty = os.read(self.sentinel, 4096) == b""
            except BlockingIOError:
                return False
        return self.group_empty

    async def stop(self, grace: float) -> None:
        """SIGTERM the group, wait ``grace``, SIGKILL it, wait until it is gone."""
        _killpg(self.pgid, signal.SIGTERM)
        with anyio.move_on_after(grace):
            await self.wait_group()
        _killpg(self.pgid, signal.SIGKILL)
        with anyio.move_on_after(ESCAPE_CHECK_SEC):
            await self.wait_group()
        if not self.group_empty:
            # Something holds the sentinel outside the group: a descendant that called
            # setsid(). Find it by the tag in its environment.
            for pid in tagged_processes(self.tag):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with anyio.move_on_after(KILL_WAIT_SEC):
            await self.wait_group()

    async def stop_stragglers(self, grace: float) -> None:
        """After a normal exit: stop group members that closed the sentinel.

        They are invisible to the sentinel, so once the leader is reaped the group is
        probed with signal 0 (a group with live members keeps its id, so it cannot
        have been reused) and, if anyone is left, sent SIGTERM, given ``grace`` (probed
        every 50 ms: no kernel notification exists for "group empty"), then SIGKILL.
        """
        self.proc.poll()
        if not _group_alive(self.pgid):
            return
        _killpg(self.pgid, signal.SIGTERM)
        with anyio.move_on_after(grace):
            while _group_alive(self.pgid):  # noqa: ASYNC110 - no event exists for this
                await anyio.sleep(0.05)
        _killpg(self.pgid, signal.SIGKILL)

    def close(self) -> int | None:
        """Kill what is left of the group, reap the leader, free the fds."""
        if self.proc.returncode is None:
            # The leader is still a zombie here, so the group id cannot have been reused.
            _killpg(self.pgid, signal.SIGKILL)
        code = self.proc.poll()
        for fd in (self.pidfd, self.sentinel):
            if fd is not None:
                os.close(fd)
        return code


class LocalExecutor:
    """The default :class:`~planrun.ports.Executor`: local processes, one session each.

    A watchdog process (see ``watchdog.py``) kills the steps if planrun itself is
    killed; call :meth:`close` (or use ``with``) when done so it leaves quietly.

    Every step process carries ``PLANRUN_RUN_ID``, ``PLANRUN_STEP_ID``,
    ``PLANRUN_ATTEMPT`` and ``PLANRUN_ATTEMPT_TAG`` (``run/step/attempt``) in its
    environment, so descendants that left the process group are still found.
    """

    def __init__(self) -> None:
        self._live: dict[int, _Attempt] = {}
        self._watchdog = Watchdog()
        self._runs: set[str] = set()
        self._outputs = OutputsRoot()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End of the runs: kill any process still tagged with their run ids (one that
        left its group with ``setsid`` and closed every inherited fd), then dismiss the
        watchdog. Call when no attempt runs any more."""
        for run_id in self._runs:
            for pid in tagged_processes(f"PLANRUN_RUN_ID={run_id}".encode()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._runs.clear()
        self._watchdog.close()
        self._outputs.close()

    def kill_all(self) -> None:
        """SIGKILL every running attempt's group now (the CLI's second Ctrl-C)."""
        for attempt in list(self._live.values()):
            _killpg(attempt.pgid, signal.SIGKILL)

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        """Run one attempt; see :class:`~planrun.ports.Executor` for the contract."""
        if spec.run_id not in self._runs:
            # Before the first spawn: if planrun is SIGKILLed from here on, the watchdog
            # kills every process tagged with this run id.
            self._watchdog.watch_run(spec.run_id)
            self._runs.add(spec.run_id)
        started = self._spawn(spec)
        if isinstance(started, ProcessResult):
            on_started(None)
            return started
        attempt = started
        try:
            return await self._run_started(attempt, spec, on_started)
        finally:
            attempt.output.remove()  # also when cancelled: it holds an fd

    async def _run_started(
        self, attempt: _Attempt, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        if attempt.pump is None:
            # The common case (no secrets, no log cap): no task group to pay for.
            timed_out, code = await self._watch(attempt, spec, on_started)
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(attempt.pump.run)
                timed_out, code = await self._watch(attempt, spec, on_started)
                with anyio.move_on_after(DRAIN_SEC):
                    await attempt.pump.done.wait()
                tg.cancel_scope.cancel()
        result = ProcessResult(exit_code=code, timed_out=timed_out)
        if not timed_out and code is not None and code >= 0:
            result = _with_outputs(result, attempt.output)
        return result

    async def _watch(
        self, attempt: _Attempt, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> tuple[bool, int | None]:
        """Supervise a started attempt to its end, whatever happens (cancellation
        included: the group is stopped first); (timed out, exit code)."""
        self._live[attempt.pgid] = attempt
        self._watchdog.track(attempt.pgid)
        try:
            on_started(attempt.pgid)
            timed_out = await self._supervise(attempt, spec)
        except BaseException:
            with anyio.move_on_after(spec.kill_grace + KILL_WAIT_SEC + 1, shield=True):
                await attempt.stop(spec.kill_grace)
            raise
        finally:
            code = attempt.close()
            del self._live[attempt.pgid]
            self._watchdog.untrack(attempt.pgid)
        return timed_out, code

    async def _supervise(self, attempt: _Attempt, spec: AttemptSpec) -> bool:
        """Wait for the attempt and stop whatever it leaves; True if it timed out."""
        timed_out = False
        with anyio.move_on_after(spec.timeout if spec.timeout is not None else float("inf")):
            await attempt.wait_exit()
        if not attempt.exited:
            timed_out = True
            await attempt.stop(spec.kill_grace)
        elif not attempt.check_group():
            # The leader is gone but something it started lingers: stop it too.
            await attempt.stop(spec.kill_grace)
        await attempt.stop_stragglers(spec.kill_grace)
        return timed_out

    def _open_files(self, spec: AttemptSpec) -> _Files | ProcessResult:
        """The attempt's outputs file, log and (masking or a cap) pump; or, if one
        cannot be made safely, the failed result saying why."""
        try:
            output = self._outputs.create()
        except OSError as exc:
            return ProcessResult(exit_code=None, error=f"cannot create $PLANRUN_OUTPUT: {exc}")
        try:
            log_fd = open_log(spec.log_path).fd
        except OSError as exc:
            output.remove()
            return ProcessResult(exit_code=None, error=str(exc))
        if not spec.masker and spec.max_log_bytes is None:
            return _Files(output, log_fd, log_fd, None)
        try:
            pipe_read, out_fd = os.pipe2(os.O_CLOEXEC)
        except OSError as exc:
            os.close(log_fd)
            output.remove()
            return ProcessResult(exit_code=None, error=f"cannot create the output pipe: {exc}")
        os.set_blocking(pipe_read, False)
        return _Files(
            output, log_fd, out_fd, _Pump(pipe_read, log_fd, spec.masker, spec.max_log_bytes)
        )

    def _spawn(self, spec: AttemptSpec) -> _Attempt | ProcessResult:
        env = dict(os.environ)
        env.update(spec.env)
        env["PLANRUN_RUN_ID"] = spec.run_id
        env["PLANRUN_STEP_ID"] = spec.step_id
        env["PLANRUN_ATTEMPT"] = str(spec.attempt)
        tag = attempt_tag(spec.run_id, spec.step_id, spec.attempt)
        name, _, value = tag.decode().partition("=")
        env[name] = value
        files = self._open_files(spec)
        if isinstance(files, ProcessResult):
            return files
        env.update(files.output.env)
        log_fd, out_fd, pump = files.log_fd, files.out_fd, files.pump
        read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=out_fd,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
                pass_fds=(write_end,),
            )
        except (OSError, ValueError) as exc:
            os.close(read_end)
            message = _spawn_error(exc, spec) if isinstance(exc, OSError) else str(exc)
            if spec.masker:
                message = spec.masker.text(message)
            os.write(log_fd, f"planrun: {message}\n".encode())
            if pump is not None:
                pump.discard()
                pump = None  # the log fd is closed below, not by the pump
            files.output.remove()
            return ProcessResult(exit_code=None, error=message)
        finally:
            os.close(write_end)
            if out_fd != log_fd:
                os.close(out_fd)
            if pump is None:
                os.close(log_fd)
        return _Attempt(proc, read_end, tag, files.output, pump)


@dataclass(frozen=True, slots=True)
class _Files:
    """An attempt's open files: its log fd, the fd its output goes to (the log, or a
    pipe into ``pump``) and its outputs file."""

    output: OutputFile
    log_fd: int
    out_fd: int
    pump: _Pump | None


def _with_outputs(result: ProcessResult, output: OutputFile) -> ProcessResult:
    """``result`` with what the attempt wrote to ``$PLANRUN_OUTPUT``."""
    try:
        outputs = output.read()
    except OutputError as exc:
        return ProcessResult(result.exit_code, result.timed_out, result.error, None, str(exc))
    return ProcessResult(result.exit_code, result.timed_out, result.error, outputs)


def _spawn_error(exc: OSError, spec: AttemptSpec) -> str:
    """A one-line explanation of why the program could not be started."""
    program = spec.argv[0]
    if spec.cwd is not None and exc.filename == spec.cwd:
        return f"working directory does not exist or is not a directory: {spec.cwd}"
    if exc.errno == errno.ENOENT:
        where = "in PATH" if "/" not in program else "at that path"
        return f"command not found: '{program}' (no such program {where})"
    if exc.errno == errno.EACCES:
        return f"permission denied: '{program}' (is it executable?)"
    if exc.errno == errno.ENOEXEC:
        return f"cannot execute '{program}': not a valid executable (missing '#!' line?)"
    return f"cannot start '{program}': {exc.strerror or exc}"
