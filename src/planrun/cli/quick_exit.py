"""Leave the process as soon as a command is done, without tearing the interpreter down.

Python's normal exit, after the command has closed everything it opened, frees every
module and object one by one: about 30 ms of CPU with what ``planrun run`` imports, a
seventh of a one-step run. :func:`leave` does what that exit does that anyone can see
— waits for nothing (it only acts when no other non-daemon thread is alive), runs the
``atexit`` handlers (logging's flush, coverage's data), flushes stdout and stderr —
and then ends the process with ``os._exit``. Whenever any of that is not plainly
safe it re-raises the ``SystemExit`` instead and Python exits as it always does: another
non-daemon thread still running, an exit status that is not an integer (a message),
a stream that cannot be flushed (a reader that went away: Python's own handling of it
then applies), or ``-X dev`` (its warnings about unclosed resources come from the
teardown).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

__all__ = ["leave"]


def leave(done: SystemExit) -> NoReturn:
    """End the process with ``done``'s status, quickly if that is safe (see above)."""
    code = done.code
    if code is None:
        code = 0
    if not isinstance(code, int) or sys.flags.dev_mode or _others_alive():
        raise done
    atexit._run_exitfuncs()  # (they are cleared: a fallback exit does not run them twice)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            raise done from None
    os._exit(int(code) & 0xFF)  # what exit(code) gives on POSIX


def _others_alive() -> bool:
    """Is a non-daemon thread other than this one still running (Python would wait)?"""
    me = threading.current_thread()
    return any(t is not me and t.is_alive() and not t.daemon for t in threading.enumerate())
