"""Start one attempt's leader: its files, its environment, ``Popen``, and the wording
of a failure to start.

Contract: :func:`spawn` returns either a started :class:`~.group.Attempt` (which then
owns the sentinel's read end, the pidfd, the outputs file and the pump, if any) or the
failed :class:`~planrun.ports.ProcessResult` saying why in one line (masked, and also
written to the attempt's log as ``planrun: ...``), having closed every fd it opened
and removed the outputs file. (Only creating the sentinel pipe may raise ``OSError``:
callers check ``capacity.fds_available`` first.) The leader gets an argv (never a
shell), stdin from ``/dev/null``, stdout and stderr on the log file (or the pump's
pipe, also whenever ``on_output`` is given), a new session, and the write end of the
sentinel pipe; planrun keeps no write end of any pipe.
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass

from ..ports import AttemptSpec, OutputLine, OutputSink, ProcessResult
from .attempt_files import OutputFile, OutputsRoot, open_log
from .group import Attempt
from .pump import LineCallback, Pump
from .tags import step_env

__all__ = ["spawn", "spawn_error"]


@dataclass(frozen=True, slots=True)
class _Files:
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


def spawn(
    spec: AttemptSpec, outputs: OutputsRoot, on_output: OutputSink | None = None
) -> Attempt | ProcessResult:
    """Start the attempt (see the module's contract); ``outputs`` makes its
    ``$PLANRUN_OUTPUT`` file; ``on_output`` gets its lines as they are written."""
    env, tag = step_env(spec)
    files = _open_files(spec, outputs, on_output)
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
        message = spawn_error(exc, spec) if isinstance(exc, OSError) else str(exc)
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
    return Attempt(proc, read_end, tag, files.output, pump)


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
