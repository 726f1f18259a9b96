"""The embedded API: ``await run_plan(...)``. The CLI is built on the same two steps.

:func:`~planrun.prepare.prepare` validates and resolves (pure, raises
:class:`~planrun.errors.PlanError`); :func:`execute` opens the store and, in one task
group, runs the engine and the recorder that writes its events to SQLite and JSONL.
:func:`cancel_run` stops a run another process owns. Nothing here installs signal
handlers: in an embedding service, cancelling the awaiting task is how a run is stopped.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import anyio

from . import fanout
from .cancel import cancel_run
from .crash import sweep_leftovers
from .engine import Engine, EngineConfig
from .errors import PlanrunError, RunExists, UsageError
from .events import ConcurrencyCapped, Event, utc_now
from .executor_choice import open_executor
from .executors.local import LocalExecutor, attempt_capacity
from .handler_setup import handler_settings, handler_steps
from .masking import PATH_VARIABLES, Masker
from .model import Plan
from .options import ResolvedOptions, RunOptions
from .plan import ResolvedStep
from .ports import Executor, OutputLine, OutputSink, RunChild
from .prepare import (
    PreparedRun,
    Resume,
    check_strings,
    new_run_id,
    prepare,
)
from .proc import run_key
from .results import AttemptResult, RunResult, StepResult, stored_result
from .resume.load import load_resume
from .run_sink import Sink
from .runlock import Prelude, lock_key, run_lock
from .state import replay
from .store.sqlite import RunPaths, SqliteStore
from .subplan import ChildContext, run_child

__all__ = [
    "AttemptResult",
    "OutputLine",
    "PreparedRun",
    "RunOptions",
    "RunResult",
    "StepResult",
    "cancel_run",
    "execute",
    "new_run_id",
    "prepare",
    "run_plan",
]


_LOG = logging.getLogger("planrun")
#: Above this many steps the engine is built on a worker thread (a thread hop costs
#: more than building a small plan's engine on the loop: ~1 ms for 500 steps). With
#: 2,000 steps at j=8, building it on the loop (~4 ms) made the run's longest loop
#: callback 8.5 ms (median of 8 runs); off the loop, 3.4 ms.
_BUILD_OFF_LOOP = 500
T = TypeVar("T")


async def execute(
    prepared: PreparedRun,
    options: RunOptions | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    max_concurrency: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_output: OutputSink | None = None,
    executor: Executor | None = None,
    owner_kind: str | None = None,
    on_notice: Callable[[str], None] | None = None,
    resume: Resume | None = None,
) -> RunResult:
    """Run a prepared plan, recording it in the store; see :func:`run_plan`.

    ``options`` say how (see :class:`~planrun.options.RunOptions`; keyword arguments
    given beside it win; its ``variables``/``secrets`` are not used: ``prepared``
    has them). With ``resume`` (from :func:`planrun.resume.load.load_resume`) the run
    ``resume.run_id`` is taken over instead of a new one being created.
    """
    opts = (options or RunOptions()).updated(
        state_dir=state_dir,
        run_id=run_id,
        max_concurrency=max_concurrency,
        on_event=on_event,
        on_output=on_output,
        executor=executor,
        owner_kind=owner_kind,
        on_notice=on_notice,
    )
    resolved = opts.resolve(prepared.plan, run_id=resume.run_id if resume is not None else None)
    key = lock_key(prepared)
    async with SqliteStore.open(resolved.state_dir, durability=resolved.durability) as store:
        # Processes left by crashed runs (that escaped the watchdog): kill them now.
        await sweep_leftovers(store)
        # The given executor, the local one, or a Dask cluster connected and checked
        # (before the run is recorded: a ClusterError leaves no run behind).
        async with (
            run_lock(
                key, resolved.run_id, store.state_dir, prepared.plan, resolved.on_notice
            ) as prelude,
            open_executor(opts, prepared, _guarded(opts.on_output)) as chosen,
        ):
            return await _execute_in_store(store, prepared, resolved, chosen, prelude, resume)


def _executor_name(executor: object) -> str:
    """The short name a run records for ``executor``: ``"local"`` for the
    :class:`LocalExecutor`, else its ``name`` attribute (a non-empty string), else its
    class name."""
    if isinstance(executor, LocalExecutor):
        return "local"
    name = getattr(executor, "name", None)
    return name if isinstance(name, str) and name else type(executor).__name__


async def _execute_in_store(
    store: SqliteStore,
    prepared: PreparedRun,
    resolved: ResolvedOptions,
    executor: Executor,
    prelude: Prelude,
    resume: Resume | None,
    parent: tuple[str, str] | None = None,
    hidden_env: frozenset[str] = frozenset(),
    output_prefix: str = "",
) -> RunResult:
    """Record and run a prepared plan in an open store (the lock is held); ``parent``
    (run id, step id): a ``uses`` step's child run, whose steps do not see ``hidden_env``."""
    paths, last_seq = await _claim(store, prepared, resolved, resume, parent)
    send, recv = anyio.create_memory_object_stream[Event](math.inf)
    sink = Sink(
        send,
        _event_masker(prepared, resolved.run_id, store, paths),
        replay(resume.history) if resume is not None else None,
        resolved.on_event,
        resolved.options.on_view,
    )
    concurrency, capped = _concurrency(
        resolved.max_concurrency, prepared, executor, resolved.options.on_output is not None
    )
    key = run_key(resolved.run_id, store.state_dir)
    config = EngineConfig(
        run_id=resolved.run_id,
        run_key=key,
        executor_name=_executor_name(executor),
        plan_id=prepared.plan.plan_id,
        max_concurrency=concurrency,
        pools=prepared.plan.globals.pools,
        kill_grace=prepared.plan.globals.kill_grace_sec,
        run_timeout=prepared.plan.globals.timeout_sec,
        log_dir=paths.log_dir,
        plan_path=prepared.source,
        variables=prepared.masked_variables,
        prelude=prelude + capped,
        masker=prepared.masker or None,
        prior=resume.prior if resume is not None else {},
        rerun=frozenset(_rerun(prepared, resume)) if resume is not None else None,
        expanded=resume.expanded if resume is not None else {},
        last_seq=last_seq,
        before_steps=_watchdog_start(executor, key),
        **handler_settings(prepared, resolved, paths.run_dir, lambda: sink.view, sink.masker),
        run_child=_run_child(prepared, resolved, executor, store, hidden_env, output_prefix),
        hidden_env=hidden_env,
        output_prefix=output_prefix,
        trigger=dict(resolved.options.trigger or {}) or None,
    )
    steps = [*prepared.steps, *handler_steps(prepared, paths.run_dir)]
    engine = await _engine(steps, config, executor, sink)
    with _unwrap_planrun_errors():
        async with anyio.create_task_group() as tg:  # (the recorder must not keep engine)
            tg.start_soon(store.record, recv, paths, functools.partial(bool, engine.launching))
            with send:
                await engine.run()
    del engine, steps, config  # the scheduler's nodes go before the result is made
    return await _result(sink)


async def _engine(
    steps: list[ResolvedStep], config: EngineConfig, executor: Executor, sink: Sink
) -> Engine:
    """The run's engine; a big plan's (a node and an announcement per step) is built
    off the loop: for 100,000 steps, ~0.5 s of pure Python the caller's loop would
    otherwise wait for."""
    build = functools.partial(Engine, steps, config, executor, sink)
    return await _off_loop(build) if len(steps) > _BUILD_OFF_LOOP else build()


async def _result(sink: Sink) -> RunResult:
    """The run's result, made off the loop from its view, which no longer changes; a
    view no caller reads (no ``on_view``) is consumed as the result is made."""
    view, sink.view = sink.view, None
    assert view is not None
    consume = sink.on_view is None
    return await _off_loop(lambda: RunResult.from_view(view, consume=consume))


async def _off_loop(work: Callable[[], T]) -> T:
    """``work()`` on a worker thread: validating a plan or building a result takes tens
    of milliseconds of pure Python for thousands of steps, and an embedding service's
    event loop must keep its turns meanwhile (the GIL switches every few ms)."""
    return await anyio.to_thread.run_sync(work)


def _watchdog_start(executor: Executor, key: str) -> Callable[[], None] | None:
    """The local executor's watchdog start for run ``key``: it runs before the first
    step, so if it cannot start, nothing runs."""
    if isinstance(executor, LocalExecutor):
        return functools.partial(executor.start_run, key)
    return None


def _run_child(
    prepared: PreparedRun,
    resolved: ResolvedOptions,
    executor: Executor,
    store: SqliteStore,
    hidden: frozenset[str],
    output_prefix: str,
) -> RunChild:
    """How the run's ``uses`` steps run: child runs in this store (through this
    connection) and process, on this executor (so its watchdog guards them), given only
    the secrets each step names."""
    execute = functools.partial(_execute_child, resolved, executor, store, output_prefix)
    context = ChildContext(resolved.run_id, execute, prepared.secrets, hidden, prepared.masker)
    return functools.partial(run_child, context)


async def _execute_child(
    parent: ResolvedOptions,
    executor: Executor,
    store: SqliteStore,
    output_prefix: str,
    prepared: PreparedRun,
    run_id: str,
    step_id: str,
    hidden_env: frozenset[str],
) -> RunResult:
    """Run a prepared child plan as run ``run_id`` of the parent's store, linked to
    the parent's step ``step_id``, through the parent's store (the store serialises the
    two recorders' transactions), taking its plan's lock if it has one. Not observed
    through the parent's ``on_event``: the parent's events name the child run. Its steps'
    output lines are named ``PARENT_STEP/STEP`` (``output_prefix`` nests them)."""
    opts = RunOptions(state_dir=parent.state_dir, run_id=run_id, owner_kind=parent.owner_kind)
    resolved = opts.updated(on_notice=parent.on_notice).resolve(prepared.plan)
    key = lock_key(prepared)
    async with run_lock(key, run_id, store.state_dir, prepared.plan, resolved.on_notice) as prelude:
        parent_step = (parent.run_id, step_id)
        prefix = f"{output_prefix}{step_id}/"
        return await _execute_in_store(
            store, prepared, resolved, executor, prelude, None, parent_step, hidden_env, prefix
        )


def _event_masker(
    prepared: PreparedRun, run_id: str, store: SqliteStore, paths: RunPaths
) -> Masker:
    """The masker for events: it keeps the run's ids and paths (stored in clear
    anyway), so a secret that occurs in them does not turn "step 'x' failed" into
    "step '***' failed"."""
    plan = prepared.plan
    return prepared.masker.keeping(
        [
            run_id,
            plan.plan_id,
            *(s.id for s in plan.steps),
            *(rs.step.id for _, rs in prepared.handlers),
            str(store.state_dir),
            str(paths.run_dir),
            str(paths.log_dir),
            prepared.source or "",
            *(v for k, v in prepared.variables.items() if k in PATH_VARIABLES),
        ]
    )


def _guarded(callback: OutputSink | None) -> OutputSink | None:
    """``callback``, dropped (with one warning) the first time it raises: a broken
    observer must not break the run it observes (as ``on_event`` in :class:`.Sink`)."""
    if callback is None:
        return None
    alive = [callback]

    def deliver(line: OutputLine) -> None:
        if not alive:
            return
        try:
            alive[0](line)
        except (Exception, SystemExit) as exc:
            alive.clear()
            _LOG.warning("on_output raised %r; no more lines are sent to it", exc)

    return deliver


def _concurrency(
    requested: int, prepared: PreparedRun, executor: Executor, on_output: bool = False
) -> tuple[int, Prelude]:
    """The run's effective ``max_concurrency``, and the ``concurrency_capped`` event to
    emit if local attempts would not fit in the open-file limit (see
    :func:`~planrun.executors.local.attempt_capacity`)."""
    if not isinstance(executor, LocalExecutor):
        return requested, ()
    wanted = min(requested, len(prepared.steps))
    pumped = on_output or bool(prepared.masker) or any(rs.max_log_bytes for rs in prepared.steps)
    effective, limit = attempt_capacity(wanted, pumped)
    if effective >= wanted:
        return requested, ()
    fields = {"requested": wanted, "effective": effective, "fd_limit": limit}
    return effective, ((ConcurrencyCapped, fields),)


async def _claim(
    store: SqliteStore,
    prepared: PreparedRun,
    resolved: ResolvedOptions,
    resume: Resume | None,
    parent: tuple[str, str] | None = None,
) -> tuple[RunPaths, int]:
    """Create the run (or take it over for a resume); its paths and last ``seq``."""
    plan = prepared.plan
    run_id = resolved.run_id
    steps = [(s.id, s.display_name) for s in plan.steps]
    steps += [(rs.step.id, rs.step.display_name) for _, rs in prepared.handlers]
    if resume is not None:
        steps = fanout.with_instances(plan, steps, resume.prior)
        return await store.claim_run(
            run_id,
            variables=prepared.masked_variables,
            plan_json=prepared.plan_json(),
            secret_names=sorted(prepared.secrets),
            steps=steps,
            rerun=_rerun(prepared, resume),
            owner_kind=resolved.owner_kind,
            # What to rerun was decided from the run as it was at seq last_seq; if
            # anything ran since (a second resume that got the lock first), refuse.
            expected_last_seq=resume.last_seq,
        )
    try:
        paths = await store.create_run(
            run_id,
            plan.plan_id,
            prepared.source,
            prepared.masked_variables,
            steps,
            utc_now(),
            resolved.owner_kind,
            plan_json=prepared.plan_json(),
            secret_names=sorted(prepared.secrets),
            parent=parent,
        )
    except RunExists:
        # The run id was taken: that run is not ours to touch (front ends add a hint).
        raise
    except BaseException:
        # Cancelled (or failed) once the row may be committed: never leave a run that
        # will not start looking "running".
        await store.abandon_run(run_id, "cancelled before it started")
        raise
    return paths, 0


def _rerun(prepared: PreparedRun, resume: Resume) -> list[str]:
    """What a resume runs again: the steps it chose, and every run handler (they are
    never kept: they run again at the end of the resumed run)."""
    return [*resume.rerun, *(rs.step.id for _, rs in prepared.handlers)]


@contextlib.contextmanager
def _unwrap_planrun_errors() -> Iterator[None]:
    """Re-raise a planrun error (e.g. the recorder's ``StoreError``) out of the task
    group's exception group, so callers can catch ``PlanrunError`` as documented."""
    try:
        yield
    except BaseExceptionGroup as group:
        matched, _ = group.split(PlanrunError)
        if matched is None:
            raise
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from group


async def run_plan(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str] | None,
    variables: Mapping[str, str] | None = None,
    *,
    options: RunOptions | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    max_concurrency: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_output: OutputSink | None = None,
    executor: Executor | None = None,
    secrets: Mapping[str, str] | None = None,
    resume: str | None = None,
    from_step: str | None = None,
    only: str | None = None,
    allow_changed: bool = False,
    allow_undeclared: bool = False,
) -> RunResult:
    """Validate and run a plan; return its :class:`RunResult` when every step is done.

    ``plan`` is a :class:`Plan`, parsed plan data, or a path to a JSON/YAML/TOML file (relative
    step ``cwd`` values are then resolved against the file's directory). How it runs is
    ``options`` (:class:`~planrun.options.RunOptions`: every default); keyword arguments of the
    same names win over it. ``on_event`` gets every event and ``on_output`` every line a step
    writes (:class:`~planrun.ports.OutputLine`), in order, on the event loop (keep them fast;
    one that raises is dropped). ``secrets`` reach the steps, masked ``***`` everywhere else.

    ``resume=RUN_ID`` resumes that failed, cancelled or crashed run: steps that did not succeed
    rerun (``from_step``: also that step and everything downstream; ``only``: just that step)
    with new attempts in the same run id. ``plan=None`` means the file the run was started from;
    its variables are used again, ``variables`` overriding. It raises ``UsageError`` if the plan
    or variables changed (unless ``allow_changed``) and ``LockConflict`` if the run is running.
    A run with nothing to rerun returns its stored result.

    A failed run is a result, not an exception. Raises ``PlanError`` for an invalid plan or a
    variable it does not declare (unless ``allow_undeclared``: then it is in the steps'
    environment) before anything is written or started, ``UsageError`` for a bad
    ``run_id``/``max_concurrency``, ``StoreError`` if the store fails, ``HelperError`` if the
    watchdog cannot start (the run is recorded ``failed``, no step starts). The open-file limit
    may cap concurrency (a ``ConcurrencyCapped`` event). Cancelling the awaiting task stops
    every step process, records the run ``cancelled`` and re-raises the cancellation.
    """
    opts = (options or RunOptions()).updated(
        state_dir=state_dir,
        run_id=run_id,
        max_concurrency=max_concurrency,
        on_event=on_event,
        on_output=on_output,
        executor=executor,
        variables=variables,
        secrets=secrets,
    )
    check_strings(variable=opts.variables, secret=opts.secrets)
    if resume is not None:
        return await _resume(resume, plan, opts, from_step, only, allow_changed, allow_undeclared)
    if plan is None:
        raise UsageError("run_plan needs a plan (or resume=RUN_ID)", field="plan")
    work = functools.partial(prepare, plan, opts.variables, opts.secrets)
    return await execute(await _off_loop(lambda: work(allow_undeclared=allow_undeclared)), opts)


async def _resume(
    run_id: str,
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str] | None,
    options: RunOptions,
    from_step: str | None,
    only: str | None,
    allow_changed: bool,
    allow_undeclared: bool,
) -> RunResult:
    """``run_plan(resume=run_id)``: take the run over, or return its stored result if
    nothing would rerun."""
    loaded = await load_resume(
        run_id,
        options.state_dir,
        plan=plan,
        variables=options.variables,
        secrets=options.secrets,
        from_step=from_step,
        only=only,
        allow_changed=allow_changed,
        allow_undeclared=allow_undeclared,
    )
    if not loaded.resume.rerun:
        return stored_result(loaded.resume.history)
    return await execute(loaded.prepared, options, resume=loaded.resume)
