"""Process exit codes: the one table every front end and the engine use.

``ExitCode`` is an ``IntEnum``, so a member is the number itself: ``sys.exit`` takes it,
``RunResult.exit_code`` compares equal to it, and JSON encodes it as the number. The
README's exit-code table lists the same values.
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    """What a planrun command's exit status means."""

    #: The run succeeded (or the plan is valid, or there was nothing to do).
    OK = 0
    #: The run failed (a critical step failed), the run crashed, the store failed, or a
    #: helper process (the watchdog) could not start.
    FAILED = 1
    #: Invalid plan or usage: nothing was run.
    INVALID = 2
    #: The plan's lock is held by another live run; a resume of a running run.
    LOCKED = 3
    #: The run deadline (``globals.timeout_sec``) passed.
    DEADLINE = 124
    #: The run was cancelled (SIGINT, SIGTERM, ``planrun cancel``, a cancelled caller).
    CANCELLED = 130
