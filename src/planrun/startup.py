"""What a front end may start early, before it loads the engine and the store.

Library surface (like ``api`` and ``monitor``): front ends ask here rather than reach
into the executors.
"""

from __future__ import annotations

__all__ = ["prestart_watchdog"]


def prestart_watchdog() -> None:
    """Start the watchdog process of this process's next local run now (see
    ``executors/watchdog.py``): its interpreter then starts while the caller loads the
    rest, and is up when the run ends, whose clean exit waits for it to be gone. A
    watchdog that cannot start is reported by the run, as before; one no run takes
    leaves at exit."""
    from .executors.watchdog import prestart

    prestart()
