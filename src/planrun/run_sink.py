"""The engine's event sink for a run (``api`` makes one per run). Not pure: it feeds
the recorder's stream and calls the caller's observers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .events import Event
from .masking import Masker, mask_event
from .state import RunView, apply

__all__ = ["Sink"]

_LOG = logging.getLogger("planrun")


class Sink:
    """Masks each event, queues it for the recorder, folds it into the run's view (the
    result) and passes it to the caller's ``on_event``.

    ``on_view`` (``RunOptions.on_view``) is given the view once, as soon as there is
    one (before the first ``on_event``): a front end that draws the run reads it
    instead of folding every event into a view of its own (100,000 steps: ~35 MB)."""

    def __init__(
        self,
        send: MemoryObjectSendStream[Event],
        masker: Masker,
        view: RunView | None,
        callback: Callable[[Event], None] | None,
        on_view: Callable[[RunView], None] | None = None,
    ) -> None:
        self.send = send
        self.masker = masker
        self.view = view
        self.callback = callback
        self.on_view = on_view
        self._shown = False
        if view is not None:
            self._show(view)

    def _show(self, view: RunView) -> None:
        if self.on_view is not None and not self._shown:
            self._shown = True
            self.on_view(view)

    def __call__(self, event: Event) -> None:
        event = mask_event(event, self.masker)
        # The recorder may have failed (its error propagates); keep the run's
        # own bookkeeping going so every process is still stopped.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.send.send_nowait(event)
        self.view = apply(self.view, event)
        self._show(self.view)
        if self.callback is not None:
            try:
                self.callback(event)
            except (Exception, SystemExit) as exc:
                # A broken observer (e.g. a display whose stdout was closed) must not
                # break the run it observes: drop it and carry on.
                self.callback = None
                _LOG.warning("on_event raised %r; no more events are sent to it", exc)
