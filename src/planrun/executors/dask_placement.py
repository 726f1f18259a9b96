"""Which attempts the workers of a Dask cluster can take: a step's ``resources``
against the workers' own, checked as each attempt starts.

Dask leaves a task whose resources no worker has pending for ever; the run start
checks the plan's steps (``executor_choice.check_placement``), but a ``uses`` child's
steps are only known later and workers come and go, so :class:`DaskExecutor` asks
:class:`Placement` before each submit of an attempt that asks for resources. It reads
the scheduler's own answer (``identity``), not the client's cached snapshot, and at
most once per :data:`REJOIN_POLL_SEC` while the last answer says yes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from ..placement import unsatisfied

__all__ = ["REJOIN_POLL_SEC", "REJOIN_SEC", "Placement", "worker_resources"]

#: How long an attempt waits for a worker with its resources to come back after one
#: that had them left (killed mid-step: its nanny restarts it in a second or two).
REJOIN_SEC = 15.0
#: How often the scheduler is asked meanwhile (and how old an answer may be reused).
REJOIN_POLL_SEC = 0.25


async def worker_resources(client: Any) -> dict[str, dict[str, float]]:
    """Every worker's resources now, by worker address: the scheduler's answer."""
    identity = await client.scheduler.identity()
    workers = identity.get("workers") or {}
    return {w: dict(info.get("resources") or {}) for w, info in workers.items()}


class Placement:
    """What the workers of ``client``'s cluster offer, for one executor."""

    def __init__(self, client: Any) -> None:
        self._client = client
        #: Every worker's resources seen so far, gone ones included.
        self._seen: dict[str, dict[str, float]] = {}
        self._last: dict[str, dict[str, float]] = {}
        self._asked = float("-inf")

    async def refresh(self) -> None:
        """Ask the scheduler which workers there are now (remembered as seen)."""
        await self._offers()

    async def _offers(self) -> dict[str, dict[str, float]]:
        self._last = await worker_resources(self._client)
        self._asked = anyio.current_time()
        self._seen.update(self._last)
        return self._last

    async def unplaceable(self, wanted: Mapping[str, float]) -> str | None:
        """Why no worker can take ``wanted`` (None: one can). When a worker that
        could is gone, wait up to :data:`REJOIN_SEC` for one to join."""
        fresh = anyio.current_time() - self._asked < REJOIN_POLL_SEC
        if fresh and unsatisfied(wanted, self._last) is None:
            return None  # a worker could a moment ago (one may leave any time anyway)
        why = unsatisfied(wanted, await self._offers())
        if why is None or unsatisfied(wanted, self._seen) is not None:
            return why  # placeable now, or never was
        # Polling: the workers join another process (the scheduler); nothing here
        # could wake us.
        with anyio.move_on_after(REJOIN_SEC):
            while why is not None:
                await anyio.sleep(REJOIN_POLL_SEC)
                why = unsatisfied(wanted, await self._offers())
        if why is not None:
            why += f"; the worker that had it left, and none came back within {REJOIN_SEC:g} s"
        return why
