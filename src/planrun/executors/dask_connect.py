"""Connecting to a Dask cluster for a run, and checking it can run the run's steps.

:func:`connected` yields a :class:`Cluster`: an asynchronous ``distributed.Client``
connected in the caller's event loop (to the scheduler at ``address``, or to a
:data:`LOCAL_WORKERS`-worker ``LocalCluster`` it starts when there is none), and what
every worker offers. Before it yields, nothing has run and every refusal is a
:class:`~planrun.errors.ClusterError` (exit 2):

- the scheduler does not answer within :data:`CONNECT_TIMEOUT_SEC`;
- it has no workers;
- a worker runs another planrun version than this process (or none): planrun's
  worker-side runner must be the one this coordinator speaks to.

A local cluster's scheduler never reruns a task whose worker died
(``allowed-failures`` 0); on a scheduler of the user's, the
:class:`~planrun.executors.dask.DaskExecutor` sets it to 0 when it opens.

``distributed`` is imported only here, and only when a run asks for Dask:
:func:`import_distributed` turns its absence into the install hint. Everything is
closed on exit (the client, and the local cluster with its worker processes).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import anyio

from ..errors import ClusterError

__all__ = [
    "CONNECT_TIMEOUT_SEC",
    "EXTRA_HINT",
    "LOCAL_WORKERS",
    "Cluster",
    "connected",
    "import_distributed",
    "planrun_version",
]

#: How long connecting to a scheduler may take before the run is refused (Dask's own
#: default is 30 s: too long to learn that an address is wrong).
CONNECT_TIMEOUT_SEC = 5.0
#: How long starting the local cluster may take.
START_SEC = 60.0
#: How long closing the client (or the local cluster and its workers) may take.
CLOSE_SEC = 10.0
#: How long planrun's client lets messages to the scheduler wait to go together
#: (Dask's default, 10 ms, is the floor of a chain's round trip: each step's submit
#: waits for it).
CLIENT_BATCH_SEC = 0.002
#: The install command for the optional dependency.
EXTRA_HINT = "pip install 'planrun[dask]'"
#: The local cluster started when no scheduler is given: worker processes.
LOCAL_WORKERS = 2


@dataclass(frozen=True)
class Cluster:
    """A connected cluster: ``client`` (asynchronous, in the caller's loop), the
    scheduler's ``address``, each worker's resources by worker address, and whether
    planrun started it (``local``)."""

    client: Any  # distributed.Client: not importable at type-check time without the extra
    address: str
    resources: Mapping[str, Mapping[str, float]]
    local: bool


def import_distributed() -> ModuleType:
    """The ``distributed`` package, or ``ClusterError`` with the install hint."""
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(
            f"the Dask executor needs the 'dask' extra ({exc}): {EXTRA_HINT}"
        ) from None
    return distributed


def planrun_version() -> str | None:
    """This process's planrun version, as a worker reports its own (distribution
    metadata: what ``pip`` installed), or None."""
    try:
        return metadata.version("planrun")
    except metadata.PackageNotFoundError:
        return None


@contextlib.asynccontextmanager
async def connected(
    address: str | None, *, connect_sec: float = CONNECT_TIMEOUT_SEC
) -> AsyncIterator[Cluster]:
    """A checked connection to the scheduler at ``address``, or to a local cluster
    started for the caller (closed on exit) when ``address`` is None. Raises
    ``ClusterError`` (see the module docstring) before yielding."""
    distributed = import_distributed()
    async with contextlib.AsyncExitStack() as stack:
        local = address is None
        if address is None:
            # Its scheduler logs here, on planrun's terminal: quiet what planrun says.
            quiet, scheduler_log = _QuietLostTasks(), logging.getLogger("distributed.scheduler")
            scheduler_log.addFilter(quiet)
            stack.callback(scheduler_log.removeFilter, quiet)
            cluster = _local_cluster(distributed)
            stack.push_async_callback(_close, cluster)
            # Started whole (its worker processes up), even when cancelled meanwhile:
            # closing a LocalCluster whose workers are still starting fails (and
            # leaves them), so a Ctrl-C now takes effect once it is up.
            try:
                with anyio.fail_after(START_SEC, shield=True):
                    await cluster
            except TimeoutError:
                raise _slow_start() from None
            address = str(cluster.scheduler_address)
        # Until the client is closed (the stack closes it first): see _NoTracebacks.
        quiet_client, client_log = _NoTracebacks(), logging.getLogger("distributed.client")
        client_log.addFilter(quiet_client)
        stack.callback(client_log.removeFilter, quiet_client)
        client = await _connect(distributed, address, connect_sec)
        stack.push_async_callback(_close, client)
        if local:
            try:
                await client.wait_for_workers(LOCAL_WORKERS, timeout=START_SEC)
            except TimeoutError:
                raise _slow_start() from None
        resources = await _check_cluster(client, address)
        yield Cluster(client, address, resources, local)


class _QuietLostTasks(logging.Filter):
    """Drops the local cluster's scheduler's ERROR line for a planrun task whose worker
    died ("Task planrun-... marked as failed because 1 workers died ..."): planrun
    reports the lost attempt itself, and the line would break into the live view."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        lost = str(record.msg).startswith("Task %s marked as failed because %d workers died")
        return not (lost and bool(args) and str(args[0]).startswith("planrun-"))


class _NoTracebacks(logging.Filter):
    """The client's own ERROR records as one line, without their traceback (a lost
    scheduler: the client logs each failed reconnect with one); one with no text of
    its own is dropped. planrun reports what they mean for the run itself (the
    attempts end lost, the run fails with the reason), in the live view's terms."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None and record.exc_text is None:
            return True
        record.exc_info, record.exc_text = None, None
        return bool(record.getMessage().strip())


async def _close(closable: Any) -> None:
    """Close a client or cluster, shielded and bounded: after a cancel (Ctrl-C) an
    unshielded close is cancelled half-way, leaving worker processes behind and Dask
    logging tracebacks."""
    with anyio.move_on_after(CLOSE_SEC, shield=True):
        try:
            await closable.close()
        except Exception as exc:  # Dask's own cleanup failing: say so, end the run as it ends
            logging.getLogger("planrun").warning("closing %r failed: %r", closable, exc)


def _local_cluster(distributed: ModuleType) -> Any:
    """A ``LocalCluster`` (not started: ``await`` starts it) of
    :data:`LOCAL_WORKERS` worker processes with no dashboard, whose scheduler never
    reruns a task itself (``allowed-failures`` 0: planrun's retry policy decides).
    The workers are spawned processes that import the caller's main module again: the
    ``planrun`` script and ``python -m planrun`` (a ``__main__`` module, which
    multiprocessing does not rerun) are safe; an embedding script needs its
    ``if __name__ == "__main__":`` guard."""
    return distributed.LocalCluster(
        n_workers=LOCAL_WORKERS,
        # A step's task waits on a process: threads bound how many run at once per
        # worker, so give each worker the machine's cores (the plan's
        # max_concurrency still bounds the run).
        threads_per_worker=max(2, os.cpu_count() or 1),
        processes=True,
        dashboard_address=None,
        asynchronous=True,
        silence_logs=logging.ERROR,
        # Steps are child processes of the worker; the nanny must not restart a
        # worker (and kill them) because of its own memory heuristics.
        memory_limit=0,
        # The workers share planrun's process group: a terminal's Ctrl-C must not
        # kill them under their steps (planrun cancels the run, then closes them).
        preload=["planrun.executors.dask_preload"],
        # No dashboard, and the scheduler's HTTP endpoints on a free local port (by
        # default they take :8787, warning when it is taken).
        scheduler_kwargs={
            "allowed_failures": 0,
            "dashboard": False,
            "dashboard_address": "127.0.0.1:0",
        },
    )


def _slow_start() -> ClusterError:
    return ClusterError(
        f"the local Dask cluster's {LOCAL_WORKERS} workers did not start within "
        f"{START_SEC:g} s; give --scheduler of a running cluster instead"
    )


def _unreachable(address: str, why: str) -> ClusterError:
    return ClusterError(
        f"cannot connect to the Dask scheduler at {address} ({why}); start one with "
        "`dask scheduler`, or check --scheduler / $PLANRUN_DASK_SCHEDULER"
    )


async def _connect(distributed: ModuleType, address: str, within: float) -> Any:
    """An asynchronous client connected to ``address`` within ``within`` s, or
    ``ClusterError``."""
    await _probe(distributed, address, within)
    client = None
    try:
        client = distributed.Client(address, asynchronous=True, timeout=within)
        # Bounded here too: Dask's own timeout does not cover a server that accepts
        # and never answers its handshake (the dashboard's HTTP port, 8787, does).
        with anyio.fail_after(within):
            await client
        _quicker_sends(client)
        return client
    except TimeoutError:
        why = f"no Dask answer within {within:g} s: is it the scheduler's port?"
    except (ValueError, TypeError) as exc:  # a malformed address
        why = f"{type(exc).__name__}: {exc}"
    except OSError as exc:  # e.g. the connection closed during the handshake
        why = f"{type(exc).__name__}: {exc}; is it the scheduler's port?"
    except Exception as exc:  # e.g. MemoryError: another protocol's bytes read as a frame
        why = f"what answers there is not a Dask scheduler ({type(exc).__name__})"
    # Closed now, shielded: else the client's __del__ closes it without awaiting, and
    # Python warns on the terminal ("coroutine ... was never awaited").
    if client is not None:
        await _close(client)
    raise _unreachable(address, why) from None


def _quicker_sends(client: Any) -> None:
    """Send the client's messages to the scheduler at most :data:`CLIENT_BATCH_SEC`
    after the previous batch (what the scheduler's own stream to a client uses). An
    attribute of Dask's ``BatchedSend``: a version without it keeps its default."""
    comm = getattr(client, "scheduler_comm", None)
    if comm is not None and hasattr(comm, "interval"):
        comm.interval = CLIENT_BATCH_SEC


async def _probe(distributed: ModuleType, address: str, within: float) -> None:
    """A refused TCP connection refuses the run at once (Dask's own connect retries
    it until its timeout, for a scheduler that is still starting)."""
    try:
        scheme, location = distributed.comm.parse_address(address)
        host, port = distributed.comm.parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise _unreachable(address, f"not a scheduler address: {exc}") from None
    if scheme not in ("tcp", "tls"):
        return  # another transport: Dask's connect says what is wrong
    try:
        with anyio.fail_after(within):
            stream = await anyio.connect_tcp(host, port)
    except TimeoutError:
        raise _unreachable(address, f"no answer within {within:g} s") from None
    except OSError as exc:
        # anyio wraps the per-address failures: the last one says why (refused).
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        why = os.strerror(cause.errno) if cause.errno else str(cause)
        raise _unreachable(address, f"{host}:{port}: {why}") from None
    await stream.aclose()


async def _check_cluster(client: Any, address: str) -> dict[str, dict[str, float]]:
    """Every worker's resources (by worker address), once the cluster is known fit:
    workers there, all with this planrun version."""
    # The scheduler's own answer: the client's scheduler_info() is a cached snapshot,
    # empty right after connecting.
    identity = await client.scheduler.identity()
    workers: dict[str, Any] = identity.get("workers") or {}
    if not workers:
        raise ClusterError(
            f"the Dask scheduler at {address} has no workers; start one with "
            f"`dask worker {address}` (planrun installed, same version)"
        )
    versions = await client.get_versions(packages=["planrun"])
    _check_versions(versions.get("workers") or {}, workers, address)
    return {worker: dict(info.get("resources") or {}) for worker, info in workers.items()}


def _check_versions(reported: Mapping[str, Any], workers: Mapping[str, Any], address: str) -> None:
    """``ClusterError`` naming every worker whose planrun differs from ours."""
    ours = planrun_version()
    shown = ours or "not installed as a package (no version)"
    wrong: list[str] = []
    for worker in sorted(workers):
        answer = reported.get(worker)
        theirs = (answer or {}).get("packages", {}).get("planrun") if answer else None
        if answer is None:
            wrong.append(f"worker {worker} did not report its planrun version")
        elif theirs is None:
            wrong.append(f"worker {worker} has no planrun installed (this planrun is {shown})")
        elif theirs != ours:
            wrong.append(f"worker {worker} runs planrun {theirs}, this planrun is {shown}")
    if wrong:
        raise ClusterError(
            f"the Dask cluster at {address} cannot run this plan: "
            + "; ".join(wrong)
            + f"; install planrun {ours or 'as a package'} on every worker and restart it"
        )
