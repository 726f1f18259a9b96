"""Server-sent events: a run page's (:class:`RunFeed`), the runs list's (:class:`RunsFeed`).

The runs list: one :class:`RunsHub` per server reads ``monitor.list_runs`` every
:data:`RUNS_POLL_SEC` while at least one runs page is open, and every open page's
stream sends its (filtered) list when it changed. Polling is the only way: the runs
are written by other processes (each ``planrun run``), which cannot wake this one.

A run page's stream is fed by :func:`planrun.monitor.follow`.

One stream per open page. ``monitor.follow`` wakes a snapshot task whenever events
arrive; that task sends the run's header and the steps that changed since the last
message, at most every :data:`MIN_INTERVAL_SEC` (a run of thousands of steps sends a
few messages a second, not one per event). When the run ends, a last ``update`` and an
``end`` message close the stream. The stream is its own ASGI response so the follower,
the sender and the disconnect listener live in one task group (no generator holds a
cancel scope across ``yield``).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

from .. import monitor
from ..errors import PlanrunError
from .data import list_runs, run_summary, step_summary

__all__ = [
    "MIN_INTERVAL_SEC",
    "RUNS_POLL_SEC",
    "RunFeed",
    "RunsFeed",
    "RunsHub",
    "Stopping",
    "sse_message",
]

#: Least time between two messages of one stream (the page's refresh rate).
MIN_INTERVAL_SEC = 0.5
#: How often the runs list is read from the store while a runs page is open (>= 1 s:
#: another process writes it, so it is polled; one poller serves every open page).
RUNS_POLL_SEC = 1.0


def sse_message(event: str, data: Any) -> bytes:
    """One server-sent event (``data`` as one line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _start_event_stream(send: Send) -> None:
    """Open a server-sent-events response: never cached, never buffered by a proxy."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )


class Stopping:
    """Set when the server begins to stop: every open stream then ends at once.

    (Else uvicorn waits for them, its grace period long, then cancels them and logs a
    traceback.) :func:`planrun.ui.server.serve` sets it from uvicorn's shutdown.
    """

    def __init__(self) -> None:
        self.is_set = False
        self._events: list[anyio.Event] = []

    def set(self) -> None:
        self.is_set = True
        for event in self._events:
            event.set()

    async def ends(self, scope: anyio.CancelScope) -> None:
        """Cancel ``scope`` (a stream's own) once the server stops."""
        event = anyio.Event()
        self._events.append(event)
        try:
            if not self.is_set:
                await event.wait()
            scope.cancel()
        finally:
            self._events.remove(event)


class RunFeed:
    """The ASGI response streaming run ``run_id``'s changes as server-sent events."""

    def __init__(self, state_dir: Path, run_id: str, stopping: Stopping | None = None) -> None:
        self.state_dir = state_dir
        self.run_id = run_id
        self.stopping = stopping or Stopping()
        self._wake = anyio.Event()
        self._ended = False
        #: step id -> (state, attempts, exit code) as last sent.
        self._sent: dict[str, tuple[str, int, int | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _start_event_stream(send)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._until_disconnect, receive, tg.cancel_scope)
            tg.start_soon(self.stopping.ends, tg.cancel_scope)
            tg.start_soon(self._follow)
            await self._send_updates(send)
            tg.cancel_scope.cancel()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _until_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _follow(self) -> None:
        """Wake the sender at every batch of events; at the end, once more."""
        async with contextlib.aclosing(
            monitor.follow(self.run_id, state_dir=self.state_dir)
        ) as events:
            async for _ in events:
                self._wake.set()
        self._ended = True
        self._wake.set()

    async def _send_updates(self, send: Send) -> None:
        """Send a snapshot now, then after each wake-up (rate-limited), until the end."""
        async with monitor.open_session(self.state_dir) as session:
            while True:
                ended = self._ended
                snapshot = await session.run_and_steps(self.run_id)
                if snapshot is None:
                    return
                await send(self._body(sse_message("update", self._update(*snapshot))))
                if ended:
                    await send(self._body(sse_message("end", {"state": snapshot[0].state})))
                    return
                await anyio.sleep(MIN_INTERVAL_SEC)  # a rate limit, not a poll
                await self._wake.wait()
                self._wake = anyio.Event()

    def _update(self, run: Any, steps: list[Any]) -> dict[str, Any]:
        changed = []
        for step in steps:
            key = (step.state.value, len(step.attempts), step.exit_code)
            if self._sent.get(step.step_id) != key:
                self._sent[step.step_id] = key
                changed.append(step_summary(step))
        return {"run": run_summary(run), "steps": changed}

    @staticmethod
    def _body(data: bytes) -> dict[str, Any]:
        return {"type": "http.response.body", "body": data, "more_body": True}


class RunsHub:
    """The runs list as last read, shared by every open runs page's stream.

    :meth:`run` (in the server's task group) reads it every :data:`RUNS_POLL_SEC`
    while someone listens and sleeps on an event while nobody does; each change bumps
    :attr:`version` and wakes the listeners. :attr:`polls` counts the reads.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.runs: list[dict[str, Any]] = []
        self.problem: str | None = None
        self.version = 0
        self.polls = 0
        self._listeners = 0
        self._joined = anyio.Event()
        self._changed = anyio.Event()

    async def run(self) -> None:
        """Poll while listened to; forever (cancel it with the server)."""
        while True:
            if not self._listeners:
                await self._joined.wait()
                self._joined = anyio.Event()
                continue
            try:
                runs, problem = await list_runs(self.state_dir), None
            except PlanrunError as exc:  # an unreadable store: say so, keep polling
                runs, problem = [], str(exc)
            self.polls += 1
            if (runs, problem) != (self.runs, self.problem) or not self.version:
                self.runs, self.problem = runs, problem
                self.version += 1
                self._changed.set()
                self._changed = anyio.Event()
            await anyio.sleep(RUNS_POLL_SEC)

    @contextlib.contextmanager
    def listening(self) -> Any:
        """Count a listener for the ``with`` block (the poller runs while one is)."""
        self._listeners += 1
        self._joined.set()
        try:
            yield self
        finally:
            self._listeners -= 1

    async def changed_since(self, version: int) -> None:
        """Return once :attr:`version` is past ``version``."""
        while self.version <= version:
            await self._changed.wait()


class RunsFeed:
    """The ASGI response streaming the runs list (filtered by ``state`` and
    ``plan_id``) as ``runs`` events, each the whole list, sent when it changed."""

    def __init__(
        self, hub: RunsHub, state: str | None, plan_id: str | None, stopping: Stopping
    ) -> None:
        self.hub = hub
        self.stopping = stopping
        self.state = state
        self.plan_id = plan_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _start_event_stream(send)
        async with anyio.create_task_group() as tg:
            tg.start_soon(RunFeed._until_disconnect, receive, tg.cancel_scope)
            tg.start_soon(self.stopping.ends, tg.cancel_scope)
            with self.hub.listening():
                await self._send_changes(send)
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _shown(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.hub.runs
            if (not self.state or r["state"] == self.state)
            and (not self.plan_id or r["plan_id"] == self.plan_id)
        ]

    async def _send_changes(self, send: Send) -> None:
        """Send the list at each change of the hub's (when this page's part changed)."""
        seen = 0
        sent: tuple[list[dict[str, Any]], str | None] | None = None
        while True:
            await self.hub.changed_since(seen)
            seen = self.hub.version
            runs = self._shown()
            if (runs, self.hub.problem) != sent:
                sent = (runs, self.hub.problem)
                message = {"runs": runs, "problem": self.hub.problem}
                await send(RunFeed._body(sse_message("runs", message)))
