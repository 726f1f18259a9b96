"""Start attempts off the event loop: one thread that runs the spawns, one at a time.

Why: ``Popen`` returns only once the child has called ``exec`` (it uses ``vfork``),
and with hundreds of steps in flight on a small machine the new child waits its turn
for a CPU first: a millisecond or more per spawn that the event loop would sit idle,
not recording events nor reaping the attempts that ended. CPython releases the GIL
while ``Popen`` waits, so in a thread the loop goes on meanwhile. One thread, fed by
a queue and answering through ``call_soon_threadsafe``, costs a few microseconds a
spawn (``anyio.to_thread`` per spawn measured about 0.4 ms of CPU more).

Contract: :meth:`SpawnThread.call` runs ``fn()`` in the thread, in the order of the
calls, and returns its result or raises its exception. The caller's anyio cancel
scopes cannot interrupt the wait (like a spawn on the loop, it cannot be half done):
a cancellation is delivered at the caller's next checkpoint, with the result in its
hands. If the waiting task is cancelled anyway (``Task.cancel()`` from outside anyio),
the result is passed to ``orphan``, on the loop, which must stop and release it.
Without a running asyncio loop (another anyio backend), ``fn`` runs inline; so it does
when the caller says ``inline`` (the executor does when no other attempt runs or
starts: nothing then waits on the loop, and each of the thread's two hand-offs costs a
wake-up on the critical path of a chain of short steps, 0.1-0.3 ms), and with
``PLANRUN_SPAWN_INLINE=1`` in planrun's environment (a diagnostic, to compare: inline
costs less CPU, about 0.1-0.5 ms an attempt on a busy 2-core machine, where the
thread's GIL hand-offs cost more; the thread gives the better wall time when the
machine is busy).
:meth:`SpawnThread.close` ends the thread once the queued calls are done.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

__all__ = ["SpawnThread"]

T = TypeVar("T")

#: One queued call: (fn, loop, future, orphan); None tells the thread to end.
_Request = tuple[
    Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[Any], None]
]


def _deliver(
    fut: asyncio.Future[Any],
    result: object,
    error: BaseException | None,
    orphan: Callable[[Any], None],
) -> None:
    """On the loop: hand the result to the waiting task, or to ``orphan`` if it left."""
    if fut.cancelled():
        if error is None:
            orphan(result)
    elif error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class SpawnThread:
    """The executor's spawn thread (started on the first call)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._inline = os.environ.get("PLANRUN_SPAWN_INLINE") == "1"

    async def call(
        self, fn: Callable[[], T], orphan: Callable[[T], None], *, inline: bool = False
    ) -> T:
        """``fn()``, run in the thread, or here if ``inline`` (see the module's contract)."""
        if inline or self._inline:
            return fn()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return fn()

        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="planrun-spawn", daemon=True)
            self._thread.start()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, loop, fut, orphan))
        with anyio.CancelScope(shield=True):
            result = await fut
        return result

    def _work(self) -> None:
        while (request := self._queue.get()) is not None:
            fn, loop, fut, orphan = request
            result: object = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, raised there
                error = exc
            try:
                loop.call_soon_threadsafe(_deliver, fut, result, error, orphan)
            except RuntimeError:  # the loop is closed: nobody will supervise it
                if error is None:
                    orphan(result)

    def close(self) -> None:
        """End the thread after the calls already queued (none are, when no attempt
        runs); returns once it has ended."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
