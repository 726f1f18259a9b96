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
from collections.abc import AsyncIterator, Mapping

from .errors import ClusterError, Problem
from .executors.local import LocalExecutor
from .options import ExecutorKind, RunOptions
from .placement import placement_problems
from .ports import Executor, OutputSink
from .prepare import PreparedRun

__all__ = ["check_placement", "open_executor"]


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
        async with executor:  # it checks each attempt's resources as it starts
            yield executor


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
