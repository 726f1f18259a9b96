"""What the recorder writes in one transaction: the events that can be had now, and,
while attempts are being spawned, their ``attempt_started`` too (see
:meth:`planrun.store.sqlite.SqliteStore.record`)."""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ..events import Event

__all__ = ["LAUNCH_WAIT_SEC", "MAX_BATCH", "gather"]

#: Most events written in one transaction.
MAX_BATCH = 2000
#: Longest a batch waits for the ``attempt_started`` of attempts being spawned.
LAUNCH_WAIT_SEC = 0.05


async def gather(
    first: Event, events: MemoryObjectReceiveStream[Event], launching: Callable[[], bool]
) -> tuple[list[Event], bool]:
    """``first`` and what can be had now, plus, while ``launching()``, what comes
    within ``LAUNCH_WAIT_SEC``; (the batch, whether the stream has ended)."""
    batch = [first, *_ready(events, MAX_BATCH - 1)]
    if not launching():
        return batch, False
    with anyio.move_on_after(LAUNCH_WAIT_SEC):
        while launching() and len(batch) < MAX_BATCH:
            try:
                batch.append(await events.receive())
            except anyio.EndOfStream:
                return batch, True
            batch += _ready(events, MAX_BATCH - len(batch))
    return batch, False


def _ready(events: MemoryObjectReceiveStream[Event], most: int) -> list[Event]:
    """Up to ``most`` events that can be had from ``events`` without waiting."""
    ready: list[Event] = []
    while len(ready) < most:
        try:
            ready.append(events.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return ready
