"""A Dask worker preload for the local cluster planrun starts (``--executor dask`` with
no scheduler): its workers ignore the terminal's Ctrl-C.

The local cluster's worker processes are spawned in planrun's process group, so a
Ctrl-C in the terminal reaches them as well as planrun. Left to Python, each worker
dies at once with a ``KeyboardInterrupt`` traceback on the terminal, its steps are
killed without ``stop_signal`` or grace, their output stops streaming, and planrun's
own cancel then waits on a dead cluster. planrun cancels the run itself (and closes
the cluster after), so the workers must leave SIGINT to it.

Contract: :func:`dask_setup` runs in each worker process, in its main thread (Dask's
preload hook), and replaces the SIGINT handler with one that does nothing. A handler
(not ``SIG_IGN``) because an ignored signal stays ignored across ``exec``: the steps
the worker starts would then ignore SIGINT, and a plan's ``stop_signal: SIGINT``
would not stop them; a caught signal is reset to its default in the new program.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

__all__ = ["dask_setup"]


def _ignore(signum: int, frame: FrameType | None) -> None:
    """SIGINT on a worker of planrun's local cluster: planrun handles it."""


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, in the worker process's main thread (see the module)."""
    signal.signal(signal.SIGINT, _ignore)
