"""What stops a cancelled run's handlers (the second interrupt, or their deadline), and
the type of the run summary's writer: the parts of the run handlers that the engine's
configuration holds (see :mod:`planrun.engine_handlers`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import anyio

from .model import RunState

__all__ = ["HandlerStop", "WriteSummary"]

#: Writes the run summary (``$PLANRUN_SUMMARY``) for the DAG's outcome: its state, exit
#: code, reason and failed steps.
WriteSummary = Callable[[RunState, int, str | None, list[str]], None]


class HandlerStop:
    """Stops a cancelled run's handlers: the second interrupt, or their deadline.

    :meth:`stop` may come before the handlers start (they are then skipped) or while
    they run (their processes are stopped as a cancelled run's are). ``reason`` is the
    cancelled run's reason, saying so when the handlers were stopped.
    """

    def __init__(self) -> None:
        self.stopped = False
        self._why: str | None = None
        self._scope: anyio.CancelScope | None = None

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._why = self._why or "interrupted again"
        if self._scope is not None:
            self._scope.cancel()

    @property
    def reason(self) -> str:
        return f"run cancelled; handlers stopped: {self._why}" if self._why else "run cancelled"

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Shield the body from the cancellation around it, for at most ``seconds``
        (or until :meth:`stop`)."""
        with anyio.move_on_after(seconds, shield=True) as scope:
            self._scope = scope
            if self.stopped:
                scope.cancel()
            try:
                yield
            finally:
                self._scope = None
        if scope.cancelled_caught and self._why is None:
            self._why = f"handler_timeout_sec ({seconds:g}s) passed"
