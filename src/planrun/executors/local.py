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
import resource
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from ..masking import Masker
from ..outputs import OutputError
from ..ports import AttemptSpec, ProcessResult
from ..proc import RUN_TREE, child_tree, environments, runs_of, tree_of
from .attempt_files import CappedLog, OutputFile, OutputsRoot, open_log, write_all
from .watchdog import Watchdog

__all__ = ["LocalExecutor", "attempt_capacity"]

#: How long to wait for a group to vanish after SIGKILL before giving up on it.
KILL_WAIT_SEC = 2.0
#: After SIGKILL to the group, how long before looking for escaped descendants.
ESCAPE_CHECK_SEC = 0.2
#: File descriptors one spawn may need at once (log, output pipe, sentinel pipe, the
#: exec error pipe of ``subprocess``, /dev/null for stdin, the pidfd, with room to spare).
SPAWN_FDS = 12
#: File descriptors a running attempt holds: the sentinel's read end, the pidfd and
#: its outputs file (planrun reads it back through its own fd) ...
FDS_PER_ATTEMPT = 3
#: ... and, when its output goes through a pump (secrets to mask, or a log cap), the
#: pump's pipe and the log file.
FDS_PER_PUMPED_ATTEMPT = FDS_PER_ATTEMPT + 2
#: File descriptors kept free for everything else: SQLite (database, WAL, shared
#: memory, temporary files), events.jsonl, the event loop, the watchdog's pipe, the
#: pidfds of escapees being stopped, and one spawn in progress.
FDS_RESERVE = 16 + SPAWN_FDS
#: How old a ``/proc`` scan may be to pick the escapees that get the SIGTERM.
ESCAPE_SCAN_REUSE_SEC = 0.5
#: How long to keep reading a masked output pipe after the group is gone (a process
#: that left the group may still hold it).
DRAIN_SEC = 0.5


_ATTEMPT_TAG = b"PLANRUN_ATTEMPT_TAG="


def attempt_tag(run_id: str, step_id: str, attempt: int) -> bytes:
    """The environment entry that marks every process of one attempt."""
    return f"PLANRUN_ATTEMPT_TAG={run_id}/{step_id}/{attempt}".encode()


def tagged_processes(tag: bytes) -> list[int]:
    """Pids of live processes whose environment holds ``tag`` (a ``/proc`` scan)."""
    return [pid for pid, environ in environments() if tag in environ]


def processes_of_runs(run_ids: set[str]) -> list[int]:
    """Pids of live processes that belong to one of ``run_ids``, as their own run or
    as an ancestor (the steps of nested runs: see ``proc.RUN_TREE``)."""
    return [pid for pid, environ in environments() if run_ids.intersection(runs_of(environ))]


@dataclass(frozen=True, slots=True)
class _Tagged:
    """What one ``/proc`` scan found: pids by attempt tag, and by ancestor attempt."""

    taken_at: float
    by_tag: dict[bytes, list[int]]
    by_ancestor: dict[str, list[int]]


class _Scanner:
    """``/proc`` scans shared by the attempts being stopped at the same moment.

    Cancelling a run stops every attempt at once; one scan of every process's
    environment per attempt would be quadratic, so a scan taken at or after the
    moment a caller asks about is reused.
    """

    def __init__(self) -> None:
        self._last: _Tagged | None = None

    def since(self, moment: float) -> _Tagged:
        """A scan taken no earlier than ``moment`` (``time.monotonic()``)."""
        if self._last is None or self._last.taken_at < moment:
            self._last = self._scan()
        return self._last

    @staticmethod
    def _scan() -> _Tagged:
        taken_at = time.monotonic()
        by_tag: dict[bytes, list[int]] = {}
        by_ancestor: dict[str, list[int]] = {}
        for pid, environ in environments():
            for item in environ:
                if item.startswith(_ATTEMPT_TAG):
                    by_tag.setdefault(item, []).append(pid)
            for ancestor in tree_of(environ)[:-1]:
                by_ancestor.setdefault(ancestor, []).append(pid)
        return _Tagged(taken_at, by_tag, by_ancestor)


def _still_tagged(pid: int, tag: bytes) -> bool:
    """Does ``pid`` still carry ``tag`` (and not a reused pid)?"""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return tag in f.read().split(b"\0")
    except OSError:
        return False


def _outside_group(pid: int, pgid: int) -> bool:
    try:
        return os.getpgid(pid) != pgid
    except OSError:
        return False


class _Escapees:
    """Processes of an attempt that left its process group (``setsid``), held by
    pidfd once found, so a signal can never reach a process that reused the pid."""

    def __init__(self, pids: list[int], tag: bytes) -> None:
        self._fds: list[int] = []
        for pid in pids:
            fd = _pidfd(pid)
            if fd is None:
                continue
            if _still_tagged(pid, tag):  # checked after the pidfd holds the process
                self._fds.append(fd)
            else:
                os.close(fd)

    def signal(self, sig: int) -> None:
        for fd in self._fds:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(fd, sig)

    async def wait(self) -> None:
        """Wait until every one of them has exited."""
        for fd in self._fds:
            await anyio.wait_readable(fd)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


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
        #: This attempt as it appears in its descendants' ``PLANRUN_RUN_TREE``.
        self.tree = tag.decode().partition("=")[2]
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

    async def stop(self, grace: float, scanner: _Scanner | None = None) -> None:
        """SIGTERM the group and the attempt's processes that left it, wait ``grace``
        (or until all are gone), SIGKILL them, wait until they are gone; then SIGKILL
        what nested runs of this attempt left (see ``proc.RUN_TREE``)."""
        scanner = scanner or _Scanner()
        _killpg(self.pgid, signal.SIGTERM)
        # Escapees get the TERM too (not only the KILL after the grace): a cancel is
        # then as fast as the steps allow. A scan a moment old is fine for that: one
        # that escapes later is found after the KILL below. Only processes outside
        # the group: a second TERM would tell a nested planrun to kill at once.
        found = scanner.since(time.monotonic() - ESCAPE_SCAN_REUSE_SEC)
        pids = [p for p in found.by_tag.get(self.tag, ()) if _outside_group(p, self.pgid)]
        escapees = _Escapees(pids, self.tag)
        nested = bool(found.by_ancestor.get(self.tree))
        try:
            escapees.signal(signal.SIGTERM)
            with anyio.move_on_after(grace):
                await self.wait_group()
                await escapees.wait()
            _killpg(self.pgid, signal.SIGKILL)
            escapees.signal(signal.SIGKILL)
        finally:
            escapees.close()
        killed_at = time.monotonic()
        with anyio.move_on_after(ESCAPE_CHECK_SEC):
            await self.wait_group()
        if not self.group_empty:
            # Something holds the sentinel outside the group: a descendant that called
            # setsid() after the scan above. Find it by the tag in its environment.
            for pid in scanner.since(killed_at).by_tag.get(self.tag, ()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with anyio.move_on_after(KILL_WAIT_SEC):
            await self.wait_group()
        if nested:
            # A planrun inside this attempt stops its own steps when it gets the TERM;
            # if the KILL came first, its watchdog does. Either way nothing it started
            # outlives this attempt.
            for pid in scanner.since(time.monotonic()).by_ancestor.get(self.tree, ()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

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
        self._scanner = _Scanner()
        #: Set (and replaced) whenever an attempt ends: what a spawn that ran out of
        #: file descriptors waits for.
        self._ended = anyio.Event()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End of the runs: kill any process still tagged with their run ids (one that
        left its group with ``setsid`` and closed every inherited fd, or a step of a
        nested run), then dismiss the watchdog. Call when no attempt runs any more."""
        if self._runs:
            for pid in processes_of_runs(self._runs):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._runs.clear()
        self._watchdog.close()
        self._outputs.close()

    def start_run(self, run_id: str) -> None:
        """Start guarding ``run_id``: from here on, if planrun is SIGKILLed, the
        watchdog kills every process of the run. Called before the run's first step
        (``HelperError`` if the watchdog cannot start); ``run`` calls it too."""
        if run_id not in self._runs:
            self._watchdog.watch_run(run_id)
            self._runs.add(run_id)

    async def _spawn_when_fds_allow(self, spec: AttemptSpec) -> _Attempt | ProcessResult:
        """``_spawn``, but never failing for want of file descriptors while another
        attempt runs: wait for one to end (it frees its fds) and try again.

        Before each try, ``SPAWN_FDS`` descriptors are opened and closed again to see
        that a spawn can have them (nothing else runs in between on this loop).
        """
        while True:
            if _fds_available(SPAWN_FDS):
                started = self._spawn(spec)
                if not (self._live and _out_of_fds(started)):
                    return started
            elif not self._live:  # nothing will free any: waiting cannot help
                soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                return ProcessResult(
                    exit_code=None,
                    error=f"cannot start: no file descriptors left (open-file limit {soft}; "
                    "raise it with ulimit -n)",
                )
            await self._ended.wait()

    def kill_all(self) -> None:
        """SIGKILL every running attempt's group now (the CLI's second Ctrl-C)."""
        for attempt in list(self._live.values()):
            _killpg(attempt.pgid, signal.SIGKILL)

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        """Run one attempt; see :class:`~planrun.ports.Executor` for the contract."""
        self.start_run(spec.run_id)
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
                await attempt.stop(spec.kill_grace, self._scanner)
            raise
        finally:
            code = attempt.close()
            del self._live[attempt.pgid]
            self._watchdog.untrack(attempt.pgid)
            self._ended.set()
            self._ended = anyio.Event()
        return timed_out, code

    async def _supervise(self, attempt: _Attempt, spec: AttemptSpec) -> bool:
        """Wait for the attempt and stop whatever it leaves; True if it timed out."""
        timed_out = False
        with anyio.move_on_after(spec.timeout if spec.timeout is not None else float("inf")):
            await attempt.wait_exit()
        if not attempt.exited:
            timed_out = True
            await attempt.stop(spec.kill_grace, self._scanner)
        elif not attempt.check_group():
            # The leader is gone but something it started lingers: stop it too.
            await attempt.stop(spec.kill_grace, self._scanner)
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
        env[RUN_TREE] = child_tree(os.environ.get(RUN_TREE), value)
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


_FD_ERRORS = (errno.EMFILE, errno.ENFILE)
_FD_ERROR_TEXTS = tuple(os.strerror(e) for e in _FD_ERRORS)


def attempt_capacity(wanted: int, pumped: bool) -> tuple[int, int]:
    """How many attempts (at most ``wanted``) fit in the open-file limit, and the limit.

    The soft ``RLIMIT_NOFILE`` is raised first as far as ``wanted`` attempts need, at
    most to the hard limit: not further, because steps inherit it and some programs
    misbehave with a huge soft limit (``select()``, closing every possible fd).
    """
    per_attempt = FDS_PER_PUMPED_ATTEMPT if pumped else FDS_PER_ATTEMPT
    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 16
    need = in_use + FDS_RESERVE + per_attempt * wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return wanted, soft
    return max(1, min(wanted, (soft - in_use - FDS_RESERVE) // per_attempt)), soft


def _fds_available(count: int) -> bool:
    """Can this process open ``count`` more file descriptors right now?"""
    opened: list[int] = []
    try:
        opened.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        while len(opened) < count:
            opened.append(os.dup(opened[0]))  # cheaper than an open, same cost in fds
    except OSError as exc:
        if exc.errno not in _FD_ERRORS:
            raise
        return False
    finally:
        for fd in opened:
            os.close(fd)
    return True


def _out_of_fds(started: _Attempt | ProcessResult) -> bool:
    """Did a spawn fail for want of file descriptors (so that waiting would help)?"""
    return (
        isinstance(started, ProcessResult)
        and started.error is not None
        and any(text in started.error for text in _FD_ERROR_TEXTS)
    )


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
