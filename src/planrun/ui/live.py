"""Server-sent events for a run page, fed by :func:`planrun.monitor.follow`.

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
from .data import run_summary, step_summary

__all__ = ["MIN_INTERVAL_SEC", "RunFeed", "sse_message"]

#: Least time between two messages of one stream (the page's refresh rate).
MIN_INTERVAL_SEC = 0.5


def sse_message(event: str, data: Any) -> bytes:
    """One server-sent event (``data`` as one line of JSON)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class RunFeed:
    """The ASGI response streaming run ``run_id``'s changes as server-sent events."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.state_dir = state_dir
        self.run_id = run_id
        self._wake = anyio.Event()
        self._ended = False
        #: step id -> (state, attempts, exit code) as last sent.
        self._sent: dict[str, tuple[str, int, int | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._until_disconnect, receive, tg.cancel_scope)
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
