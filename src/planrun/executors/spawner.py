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
when the caller says ``inline`` and with ``PLANRUN_SPAWN_INLINE=1`` in planrun's
environment (a diagnostic). :meth:`SpawnThread.may_inline` says when a caller should:
while the thread has nothing to do and the inline calls of this turn of the event loop
have taken less than :data:`INLINE_BUDGET_SEC` in all. Measured on the project's 2-core
machine, quiet: the thread's hand-offs cost more than they save, on the critical path of
a chain of short steps (0.1-0.3 ms a step) and in CPU (wide peerbench shape at j=8: 16%
less wall time and 14% less CPU inline; 2,000 ``sleep 0.1`` at concurrency 256: 8%
less). The budget bounds what a burst of spawns (a fan-out, the first turn of a wide
run) holds the loop before the rest of it goes to the thread, which lets the loop
record and reap meanwhile, and keeps an embedding service's loop responsive.
:meth:`SpawnThread.close` ends the thread once the queued calls are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

__all__ = ["INLINE_BUDGET_SEC", "SpawnThread"]

#: The most time inline calls may take in one turn of the event loop (see above).
INLINE_BUDGET_SEC = 0.004

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
        #: Calls queued to the thread or running there.
        self._pending = 0
        #: Time inline calls took in this turn of the loop (reset at the next turn).
        self._spent = 0.0
        self._reset_due = False

    def may_inline(self) -> bool:
        """Should the next call run inline (see the module's doc)?"""
        return self._pending == 0 and (not self._reset_due or self._spent < INLINE_BUDGET_SEC)

    def _reset(self) -> None:
        self._spent, self._reset_due = 0.0, False

    def _run_inline(self, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self._spent += time.perf_counter() - start
            if not self._reset_due:
                # Runs at the loop's next turn: the budget is per turn.
                with contextlib.suppress(RuntimeError):  # (no loop: nothing to bound)
                    asyncio.get_running_loop().call_soon(self._reset)
                    self._reset_due = True

    async def call(
        self, fn: Callable[[], T], orphan: Callable[[T], None], *, inline: bool = False
    ) -> T:
        """``fn()``, run in the thread, or here if ``inline`` (see the module's contract)."""
        if inline or self._inline:
            return self._run_inline(fn)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return fn()

        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="planrun-spawn", daemon=True)
            self._thread.start()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending += 1
        self._queue.put((fn, loop, fut, orphan))
        try:
            with anyio.CancelScope(shield=True):
                result = await fut
        finally:
            self._pending -= 1
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
