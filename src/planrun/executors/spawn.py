"""Start one attempt's leader: its files, its environment, ``Popen``, and the wording
of a failure to start.

Contract: :func:`prepare`, :func:`launch` (``Popen`` or ``posix_spawn``: see
``leader.py``; the executor runs it in its spawn thread or inline) and :func:`finish`,
in that order, give either a started
:class:`~.group.Attempt` (which then owns the sentinel's read end, the pidfd, the
outputs file and the pump, if any) or the failed :class:`~planrun.ports.ProcessResult`
saying why in one line (masked, and also written to the attempt's log as ``planrun:
...``), having closed every fd it opened and removed the outputs file. (Only creating
the sentinel pipe may raise ``OSError``: callers check ``capacity.fds_available``
first.) The leader gets an argv (never a shell), stdin from ``/dev/null``, stdout and
stderr on the log file (or the pump's pipe, also whenever ``on_output`` is given), a new
session, and the write end of the sentinel pipe; planrun keeps no write end of any pipe.
"""

from __future__ import annotations

import errno
import os
import subprocess

import msgspec

from ..ports import AttemptSpec, OutputLine, OutputSink, ProcessResult
from . import leader
from .attempt_files import OutputFile, OutputsRoot, open_log
from .group import Attempt
from .pump import LineCallback, Pump
from .tags import step_env

__all__ = ["Launched", "Prepared", "finish", "launch", "prepare", "spawn_error"]


class _Files(msgspec.Struct, frozen=True):
    """An attempt's open files: its log fd, the fd its output goes to (the log, or a
    pipe into ``pump``) and its outputs file."""

    output: OutputFile
    log_fd: int
    out_fd: int
    pump: Pump | None


def _line_callback(spec: AttemptSpec, on_output: OutputSink | None) -> LineCallback | None:
    """What the pump calls per line: ``on_output`` with the attempt's :class:`OutputLine`."""
    if on_output is None:
        return None
    step_id, attempt = spec.output_name or spec.step_id, spec.attempt

    def deliver(text: str, cut: bool) -> None:
        on_output(OutputLine(step_id, attempt, text, cut))

    return deliver


def _open_files(
    spec: AttemptSpec, outputs: OutputsRoot, on_output: OutputSink | None
) -> _Files | ProcessResult:
    """The attempt's outputs file, log and (masking, a cap or ``on_output``) pump; or,
    if one cannot be made safely, the failed result saying why."""
    try:
        output = outputs.create()
    except OSError as exc:
        return ProcessResult(exit_code=None, error=f"cannot create $PLANRUN_OUTPUT: {exc}")
    try:
        log_fd = open_log(spec.log_path).fd
    except OSError as exc:
        output.remove()
        return ProcessResult(exit_code=None, error=str(exc))
    if not spec.masker and spec.max_log_bytes is None and on_output is None:
        # The fast path: the step writes its log itself, nothing passes through us.
        return _Files(output, log_fd, log_fd, None)
    try:
        pipe_read, out_fd = os.pipe2(os.O_CLOEXEC)
    except OSError as exc:
        os.close(log_fd)
        output.remove()
        return ProcessResult(exit_code=None, error=f"cannot create the output pipe: {exc}")
    os.set_blocking(pipe_read, False)
    pump = Pump(pipe_read, log_fd, spec.masker, spec.max_log_bytes, _line_callback(spec, on_output))
    return _Files(output, log_fd, out_fd, pump)


class Prepared(msgspec.Struct, frozen=True):
    """An attempt ready to launch: its environment, files and sentinel pipe."""

    spec: AttemptSpec
    env: dict[bytes, bytes]
    tag: bytes
    files: _Files
    #: The sentinel pipe: planrun keeps the read end, the leader gets the write end.
    read_end: int
    write_end: int


#: What :func:`launch` gives back: the leader, or why it could not be started.
Launched = subprocess.Popen[bytes] | leader.Leader | OSError | ValueError


def prepare(
    spec: AttemptSpec, outputs: OutputsRoot, on_output: OutputSink | None = None
) -> Prepared | ProcessResult:
    """Everything before ``Popen`` (on the event loop: cheap system calls): the
    environment, the outputs file, the log, the pump's pipe, the sentinel pipe."""
    env, tag = step_env(spec)
    files = _open_files(spec, outputs, on_output)
    if isinstance(files, ProcessResult):
        return files
    for key, value in files.output.env.items():
        env[key.encode()] = os.fsencode(value)
    read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    return Prepared(spec, env, tag, files, read_end, write_end)


def launch(prepared: Prepared, stdin: int, inheritable: tuple[int, ...] | None = None) -> Launched:
    """``Popen``, or ``posix_spawn`` where that starts the same child for less (see
    ``leader.py``; ``inheritable``: the process's inheritable fds, None if unknown:
    only ``Popen`` then), safe in another thread (it touches nothing else); then close
    planrun's copies of the write ends the leader got (the sentinel's, the pump
    pipe's) before the next launch can copy them into its own child: a child that
    has not yet called ``exec`` holds every fd of planrun, and an attempt's sentinel
    must reach EOF as soon as its own processes are gone. ``stdin``: an open fd on
    ``/dev/null`` (the executor's, opened once)."""
    spec, files = prepared.spec, prepared.files
    fds = (stdin, files.out_fd, prepared.write_end)
    try:
        if leader.can_spawn(spec.cwd, fds, inheritable):
            assert inheritable is not None
            return leader.spawn(spec.argv, prepared.env, fds, inheritable)
        return subprocess.Popen(
            spec.argv,
            stdin=stdin,
            stdout=files.out_fd,
            stderr=files.out_fd,
            cwd=spec.cwd,
            env=prepared.env,
            start_new_session=True,
            pass_fds=(prepared.write_end,),
        )
    except (OSError, ValueError) as exc:
        return exc
    finally:
        os.close(prepared.write_end)
        if files.out_fd != files.log_fd:
            os.close(files.out_fd)


def finish(prepared: Prepared, launched: Launched) -> Attempt | ProcessResult:
    """After :func:`launch`: the started :class:`Attempt`, or the failed result (its
    reason also in the log), having closed the log fd unless the pump owns it."""
    spec, files = prepared.spec, prepared.files
    log_fd, pump = files.log_fd, files.pump
    if isinstance(launched, subprocess.Popen | leader.Leader):
        if pump is None:
            os.close(log_fd)
        return Attempt(launched, prepared.read_end, prepared.tag, files.output, pump)
    os.close(prepared.read_end)
    exc = launched
    message = spawn_error(exc, spec) if isinstance(exc, OSError) else str(exc)
    if spec.masker:
        message = spec.masker.text(message)
    try:
        os.write(log_fd, f"planrun: {message}\n".encode())
    finally:
        if pump is not None:
            pump.discard()  # the log fd is closed below, not by the pump
        os.close(log_fd)
        files.output.remove()
    return ProcessResult(exit_code=None, error=message)


def spawn_error(exc: OSError, spec: AttemptSpec) -> str:
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
