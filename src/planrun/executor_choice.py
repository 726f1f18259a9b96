"""Which executor a run uses, opened for it: ``RunOptions.executor_kind``.

:func:`open_executor` is what :func:`planrun.api.execute` enters when no
``executor`` object was given: the :class:`~planrun.executors.local.LocalExecutor`,
or (``executor_kind="dask"``) a :class:`~planrun.executors.dask.DaskExecutor` on a
cluster connected and checked by :mod:`planrun.executors.dask_connect` — the
scheduler at ``RunOptions.scheduler``, else ``$PLANRUN_DASK_SCHEDULER``, else a local
cluster started for the run. Every refusal (no ``distributed``, scheduler unreachable,
no workers, another planrun version on a worker, a resource no worker has) is a
:class:`~planrun.errors.ClusterError` raised before the run is recorded or any step
starts. An embedder with a client of its own passes
``run_plan(..., executor=DaskExecutor(client, address=...))`` instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio

from .errors import ClusterError, Problem
from .executors.local import LocalExecutor
from .options import ExecutorKind, RunOptions
from .placement import placement_problems, unsatisfied
from .ports import AttemptSpec, Executor, OutputSink, ProcessResult
from .prepare import PreparedRun

__all__ = ["check_placement", "open_executor"]

#: How long an attempt that asks for resources waits for a worker that offered them
#: earlier in the run to come back (one lost mid-step is restarted by its nanny).
REJOIN_SEC = 15.0
#: How often the scheduler is asked meanwhile.
REJOIN_POLL_SEC = 0.25


@contextlib.asynccontextmanager
async def open_executor(
    options: RunOptions, prepared: PreparedRun, on_output: OutputSink | None
) -> AsyncIterator[Executor]:
    """The executor ``options`` ask for, open for the run, closed on exit:
    ``options.executor`` as it is when given (the caller opened it), else by
    ``executor_kind``. ``on_output`` goes to the executor opened here."""
    if options.executor is not None:
        kill_all = getattr(options.executor, "kill_all", None)  # local and Dask have one
        if options.kill_switch is not None and callable(kill_all):
            options.kill_switch.attach(kill_all)
        yield options.executor
        return
    if options.kind() is ExecutorKind.LOCAL:
        with LocalExecutor(on_output) as local:
            if options.kill_switch is not None:
                options.kill_switch.attach(local.kill_all)
            yield local
        return
    async with _dask_executor(options, prepared, on_output) as executor:
        yield executor


@contextlib.asynccontextmanager
async def _dask_executor(
    options: RunOptions, prepared: PreparedRun, on_output: OutputSink | None
) -> AsyncIterator[Executor]:
    """A DaskExecutor on the checked cluster; ``ClusterError`` before anything runs."""
    from .executors.dask_connect import connected, import_distributed

    import_distributed()  # the install hint before anything else is tried
    async with connected(options.dask_scheduler()) as cluster:
        check_placement(prepared, cluster.resources, cluster.address, local=cluster.local)
        from .executors.dask import DaskExecutor

        executor = DaskExecutor(cluster.client, address=cluster.address, on_output=on_output)
        if options.kill_switch is not None:  # the CLI's second Ctrl-C
            options.kill_switch.attach(executor.kill_all)
        async with executor:
            yield _Placed(executor, cluster.client, cluster.address, cluster.resources)


class _Placed:
    """An executor on a Dask cluster whose attempts that ask for resources are checked
    against the workers there are as each starts (a ``uses`` child's steps are not
    checked at the start, and workers come and go): one that no worker can take fails
    to start, with the reason, instead of staying pending for ever (Dask's way)."""

    def __init__(
        self,
        inner: Executor,
        client: Any,
        address: str,
        offers: Mapping[str, Mapping[str, float]],
    ) -> None:
        self._inner, self._client, self._address = inner, client, address
        self.name: str = getattr(inner, "name", "dask")
        #: Every worker's resources seen during the run, gone ones included.
        self._seen = {worker: dict(have) for worker, have in offers.items()}

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        if spec.resources:
            why = await self._unplaceable(spec.resources)
            if why is not None:
                where = f"no worker of the Dask cluster at {self._address} can run it"
                return ProcessResult(None, error=f"{where}: the step {why}")
        return await self._inner.run(spec, on_started)

    async def _offers(self) -> dict[str, dict[str, float]]:
        """Every worker's resources now: the scheduler's answer, not a cached one."""
        identity = await self._client.scheduler.identity()
        workers = identity.get("workers") or {}
        offers = {w: dict(info.get("resources") or {}) for w, info in workers.items()}
        self._seen.update(offers)
        return offers

    async def _unplaceable(self, wanted: Mapping[str, float]) -> str | None:
        """Why no worker can take ``wanted`` (None: one can). When a worker that could
        is gone (e.g. killed mid-step, the attempt being retried), wait up to
        :data:`REJOIN_SEC` for one to join: its nanny restarts it in a second or two."""
        why = unsatisfied(wanted, await self._offers())
        if why is None or unsatisfied(wanted, self._seen) is not None:
            return why  # placeable now, or never was during the run
        # Polling: the workers join another process (the scheduler); nothing here
        # could wake us.
        with anyio.move_on_after(REJOIN_SEC):
            while why is not None:
                await anyio.sleep(REJOIN_POLL_SEC)
                why = unsatisfied(wanted, await self._offers())
        if why is not None:
            why += f"; the worker that had it left, and none came back within {REJOIN_SEC:g} s"
        return why


def check_placement(
    prepared: PreparedRun,
    workers: Mapping[str, Mapping[str, float]],
    address: str,
    *,
    local: bool = False,
) -> None:
    """``ClusterError`` naming every step (JSON path, id, resource) whose
    ``resources`` no worker of the cluster at ``address`` (``local``: one started for
    the run) can satisfy."""
    plan = prepared.written if prepared.written is not None else prepared.plan
    found = placement_problems(plan, workers)
    if not found:
        return
    wanted: dict[str, float] = {}
    for *_, resources in found:
        for name, amount in resources.items():
            wanted[name] = max(amount, wanted.get(name, 0.0))
    shown = ",".join(f"{k}={v:g}" for k, v in sorted(wanted.items()))
    hint = (
        f"the local cluster's workers have no resources: give --scheduler of a cluster "
        f"with a worker started with --resources {shown}"
        if local
        else f"start a worker that has them: `dask worker {address} --resources {shown}`"
    )
    source = prepared.source
    lines = [Problem(path, text, step_id).render(source) for path, step_id, text, _ in found]
    raise ClusterError(
        f"no worker of the Dask cluster at {address} can run "
        + ("this step" if len(found) == 1 else f"these {len(found)} steps")
        + f" (nothing was run; {hint}, or drop the request):\n  "
        + "\n  ".join(lines)
    )
