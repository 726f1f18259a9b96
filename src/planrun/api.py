"""The embedded API: ``await run_plan(...)``. The CLI is built on the same two steps.

``prepare`` validates and resolves (pure, raises :class:`~planrun.errors.PlanError`);
``execute`` opens the store and, in one task group, runs the engine and the recorder
that writes its events to SQLite and JSONL. Nothing here installs signal handlers:
in an embedding service, cancelling the awaiting task is how a run is stopped.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec

from . import subst
from .crash import sweep_leftovers
from .engine import Engine, EngineConfig
from .errors import LockConflict, PlanError, PlanrunError, Problem, UsageError
from .events import ConcurrencyCapped, Event, LockAcquired, utc_now
from .executors.local import LocalExecutor, attempt_capacity
from .locks import HeldLock, LockKey, resolve_key, try_lock
from .masking import MIN_SECRET, PATH_VARIABLES, Masker, mask_event, secret_problem
from .model import MAX_CONCURRENCY, AttemptState, OnLockConflict, Plan, RunState, StepState
from .plan import ResolvedStep, resolve_steps, resolve_variables, validate
from .ports import Executor
from .resume import Action, Choice, PriorStep
from .state import RunView, apply, replay
from .store.sqlite import RunPaths, SqliteStore, default_state_dir

__all__ = [
    "AttemptResult",
    "PreparedRun",
    "RunResult",
    "StepResult",
    "execute",
    "new_run_id",
    "prepare",
    "run_plan",
]

_LOG = logging.getLogger("planrun")

#: Seconds between two tries for a held lock (``on_lock_conflict: wait``).
LOCK_POLL_SEC = 0.2
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class AttemptResult(msgspec.Struct, frozen=True):
    number: int
    state: AttemptState
    exit_code: int | None
    pid: int | None
    log_path: str | None
    started_at: str | None
    ended_at: str | None
    error: str | None


class StepResult(msgspec.Struct, frozen=True):
    id: str
    state: StepState
    reason: str | None
    exit_code: int | None
    critical: bool
    attempts: list[AttemptResult]
    #: What the step wrote to $PLANRUN_OUTPUT (secrets masked).
    outputs: dict[str, str] | None = None


class RunResult(msgspec.Struct, frozen=True):
    """What ``run_plan`` returns: the run's final state and every step's attempts."""

    run_id: str
    plan_id: str
    state: RunState
    exit_code: int
    reason: str | None
    started_at: str | None
    ended_at: str | None
    steps: dict[str, StepResult]

    @property
    def ok(self) -> bool:
        return self.state is RunState.SUCCEEDED

    @classmethod
    def from_view(cls, view: RunView) -> RunResult:
        steps = {
            s.id: StepResult(
                s.id,
                s.state,
                s.reason,
                s.exit_code,
                s.critical,
                [
                    AttemptResult(
                        a.number,
                        a.state,
                        a.exit_code,
                        a.pid,
                        a.log_path,
                        a.started_at,
                        a.ended_at,
                        a.error,
                    )
                    for a in s.attempts
                ],
                s.outputs,
            )
            for s in view.steps.values()
        }
        return cls(
            view.run_id,
            view.plan_id,
            view.state,
            view.exit_code or 0,
            view.reason,
            view.started_at,
            view.ended_at,
            steps,
        )


@dataclass(frozen=True)
class PreparedRun:
    """A validated plan with its variables resolved: ready to execute.

    ``variables`` are the plain variables (stored and shown); ``secrets`` hold the
    secret values, which reach the steps but are masked everywhere else.
    """

    plan: Plan
    steps: list[ResolvedStep]
    variables: dict[str, str]
    source: str | None
    warnings: tuple[Problem, ...]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def masker(self) -> Masker:
        """Masks this run's secret values (built once: it compiles a pattern)."""
        return Masker(self.secrets.values())

    @functools.cached_property
    def masked_variables(self) -> dict[str, str]:
        """``variables`` as stored and shown: a value holding a secret is masked (names
        and the ``PLAN_DIR`` path are kept)."""
        return self.masker.variables(self.variables)

    def plan_json(self) -> str:
        """The plan as run, secrets masked: what ``resume`` compares against."""
        return msgspec.json.encode(self.masker.struct(self.plan)).decode()


@dataclass(frozen=True)
class Resume:
    """What a resume does (see :func:`planrun.recovery.load_resume`)."""

    run_id: str
    choices: list[Choice]
    prior: dict[str, PriorStep]
    history: list[Event]
    last_seq: int

    @property
    def rerun(self) -> list[str]:
        return [c.step_id for c in self.choices if c.action is Action.RERUN]


def new_run_id() -> str:
    """A fresh run id that sorts by start time: ``20261124T101502123Z-3f9a2c``."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now % 1 * 1000):03d}Z-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is safe as a file name, else :class:`UsageError`."""
    if not _RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"invalid run id {run_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run_id


def check_concurrency(max_concurrency: int | None) -> None:
    """``UsageError`` unless ``max_concurrency`` is None or within 1..MAX_CONCURRENCY
    (the bound of ``globals.max_concurrency``)."""
    if max_concurrency is not None and not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise UsageError(f"--max-concurrency must be between 1 and {MAX_CONCURRENCY}")


def secrets_from_env(
    names: Iterable[str], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The values of secrets ``names`` from ``environ`` (default ``os.environ``), and,
    for each name without a usable one, why: ``"not set"``, ``"empty"`` (it would mask
    nothing) or ``"shorter than 4 characters"`` (it would mask parts of ids, paths and
    numbers). Callers word the error for their own input."""
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name in names:
        value = environ.get(name)
        why = "not set" if value is None else secret_problem(value)
        if why is None and value is not None:
            values[name] = value
        else:
            missing[name] = why or "not set"
    return values, missing


def secret_hint(name: str, why: str) -> str:
    """What to do about secret ``name`` that :func:`secrets_from_env` refused."""
    if why in ("not set", "empty"):
        return f"export {name}=... in the environment planrun runs in"
    if why == "not valid UTF-8":
        return f"give {name} a value that is UTF-8 text (encode binary secrets, e.g. base64)"
    return (
        f"give {name} a value of at least {MIN_SECRET} characters (a shorter one occurs "
        "inside ids, paths and numbers, and cannot be masked without corrupting them)"
    )


def check_secrets(secrets: Mapping[str, str]) -> None:
    """``UsageError`` naming the first secret value given directly that is unusable."""
    for name, value in secrets.items():
        why = secret_problem(value)
        if why is not None:
            raise UsageError(f"secret '{name}' is {why}; {secret_hint(name, why)}")


def prepare(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PreparedRun:
    """Validate ``plan`` and resolve its variables and secrets (raises ``PlanError``).

    ``secrets`` are secret values given directly (the CLI's ``--secret``); the
    plan's own ``secrets`` names are read from ``environ`` (default ``os.environ``)
    unless given. No I/O but reading the plan file.
    """
    given = dict(variables or {})
    explicit = dict(secrets or {})
    check_secrets(explicit)
    validation = validate(plan, given, secrets=list(explicit))
    checked = validation.raise_for_errors()
    found, missing = secrets_from_env((n for n in checked.secrets if n not in explicit), environ)
    if missing:
        problems = [
            Problem(
                f"$.secrets[{i}]",
                f"secret '{name}' is {missing[name]}",
                hint=secret_hint(name, missing[name]),
            )
            for i, name in enumerate(checked.secrets)
            if name in missing
        ]
        raise PlanError(problems, validation.source)
    explicit |= found
    values = resolve_variables(checked, given, validation.base_dir)
    return PreparedRun(
        plan=checked,
        steps=resolve_steps(checked, values | explicit, validation.base_dir),
        variables=values,
        source=str(Path(validation.source).resolve()) if validation.source else None,
        warnings=validation.warnings,
        secrets=explicit,
    )


async def execute(
    prepared: PreparedRun,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    max_concurrency: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    executor: Executor | None = None,
    owner_kind: str = "api",
    on_notice: Callable[[str], None] | None = None,
    resume: Resume | None = None,
) -> RunResult:
    """Run a prepared plan, recording it in the store; see :func:`run_plan`.

    ``owner_kind="cli"`` records that this process cancels the run on SIGTERM, which
    is how ``planrun cancel`` reaches it. With ``resume`` (from
    :func:`planrun.recovery.load_resume`) the run ``resume.run_id`` is taken over
    instead of a new one being created.
    """
    if resume is not None:
        run_id = resume.run_id
    run_id = check_run_id(run_id) if run_id is not None else new_run_id()
    check_concurrency(max_concurrency)
    plan = prepared.plan
    lock = _lock_key(prepared)
    async with SqliteStore.open(state_dir or default_state_dir()) as store:
        # Processes left by crashed runs (that escaped the watchdog): kill them now.
        await sweep_leftovers(store)
        prelude: tuple[tuple[type[Event], dict[str, Any]], ...] = ()
        held: HeldLock | None = None
        try:
            if lock is not None:
                held, taken = await _take_lock(store, lock, run_id, plan, on_notice)
                prelude = (taken,)
            with contextlib.ExitStack() as stack:
                if executor is None:
                    executor = stack.enter_context(LocalExecutor())
                return await _execute_in_store(
                    store,
                    prepared,
                    run_id,
                    max_concurrency,
                    on_event,
                    executor,
                    owner_kind,
                    prelude,
                    resume,
                )
        finally:
            if held is not None:
                held.release()


def _lock_key(prepared: PreparedRun) -> LockKey | None:
    """The run's lock with its variables filled in and its path made canonical.

    A relative ``path`` is taken from where the steps run by default: ``globals.cwd``
    (itself relative to the plan's directory) if set, else the working directory.
    """
    lock = prepared.plan.globals.lock
    if lock is None:
        return None
    if isinstance(lock, str):
        return LockKey(subst.substitute(lock, prepared.variables))
    base = Path.cwd()
    if prepared.plan.globals.cwd is not None:
        plan_dir = Path(prepared.source).parent if prepared.source else base
        base = plan_dir / subst.substitute(prepared.plan.globals.cwd, prepared.variables)
    path = subst.substitute(lock.path, prepared.variables) if lock.path is not None else None
    return resolve_key(subst.substitute(lock.name, prepared.variables), path, lock.resolve, base)


async def _take_lock(
    store: SqliteStore,
    key: LockKey,
    run_id: str,
    plan: Plan,
    on_notice: Callable[[str], None] | None,
) -> tuple[HeldLock, tuple[type[Event], dict[str, Any]]]:
    """Take the run lock (``LockConflict`` if held and not waiting, or on timeout);
    the held lock and its ``lock_acquired`` event.

    Waiting polls (``flock`` with ``LOCK_NB``): the holder is another process, which
    cannot wake us, and a blocking ``flock`` would hold a worker thread uncancellably.
    """
    began = anyio.current_time()
    timeout = plan.globals.lock_timeout_sec
    announced = False
    while True:
        held, holder = try_lock(key, run_id, store.state_dir, utc_now())
        if held is not None:
            fields: dict[str, Any] = {
                "name": key.name,
                "path": key.path,
                "waited_sec": round(anyio.current_time() - began, 3),
            }
            if holder is not None:
                fields["reclaimed_from_run"] = holder.run_id
                fields["reclaimed_from_pid"] = holder.pid
            return held, (LockAcquired, fields)
        # No record yet: the holder took the lock a moment ago and is writing it.
        who = holder.describe() if holder is not None else "another run (starting)"
        if plan.globals.on_lock_conflict is OnLockConflict.FAIL:
            raise LockConflict(f"lock {key.label} is held by {who}; try again when it ends")
        waited = anyio.current_time() - began
        if timeout is not None and waited >= timeout:
            raise LockConflict(f"lock {key.label} still held by {who} after {timeout:g}s")
        if not announced and on_notice is not None:
            on_notice(f"waiting for lock {key.label}, held by {who}")
            announced = True
        await anyio.sleep(LOCK_POLL_SEC)


async def _execute_in_store(
    store: SqliteStore,
    prepared: PreparedRun,
    run_id: str,
    max_concurrency: int | None,
    on_event: Callable[[Event], None] | None,
    executor: Executor,
    owner_kind: str,
    prelude: tuple[tuple[type[Event], dict[str, Any]], ...],
    resume: Resume | None = None,
) -> RunResult:
    """Record and run a prepared plan in an open store (the lock is already held)."""
    plan = prepared.plan
    masker = prepared.masker
    paths, last_seq = await _claim(store, prepared, run_id, owner_kind, resume)
    # Events are masked keeping the run's ids and paths (stored in clear anyway): a
    # secret that occurs in them does not turn "step 'x' failed" into "step '***' failed".
    event_masker = masker.keeping(
        [
            run_id,
            plan.plan_id,
            *(s.id for s in plan.steps),
            str(store.state_dir),
            str(paths.run_dir),
            str(paths.log_dir),
            prepared.source or "",
            *(v for k, v in prepared.variables.items() if k in PATH_VARIABLES),
        ]
    )
    send, recv = anyio.create_memory_object_stream[Event](math.inf)
    view = replay(resume.history) if resume is not None else None
    callback = on_event

    def sink(event: Event) -> None:
        nonlocal view, callback
        event = mask_event(event, event_masker)
        # The recorder may have failed (its error propagates); keep the run's
        # own bookkeeping going so every process is still stopped.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            send.send_nowait(event)
        view = apply(view, event)
        if callback is not None:
            try:
                callback(event)
            except (Exception, SystemExit) as exc:
                # A broken observer (e.g. a display whose stdout was closed) must not
                # break the run it observes: drop it and carry on.
                callback = None
                _LOG.warning("on_event raised %r; no more events are sent to it", exc)

    concurrency, capped = _concurrency(
        max_concurrency or plan.globals.concurrency, prepared, executor
    )
    config = EngineConfig(
        run_id=run_id,
        plan_id=plan.plan_id,
        max_concurrency=concurrency,
        kill_grace=plan.globals.kill_grace_sec,
        run_timeout=plan.globals.timeout_sec,
        log_dir=paths.log_dir,
        plan_path=prepared.source,
        variables=prepared.masked_variables,
        prelude=prelude + capped,
        masker=masker or None,
        prior=resume.prior if resume is not None else {},
        rerun=frozenset(resume.rerun) if resume is not None else None,
        last_seq=last_seq,
        # The watchdog starts before the first step: if it cannot, nothing runs.
        before_steps=(
            functools.partial(executor.start_run, run_id)
            if isinstance(executor, LocalExecutor)
            else None
        ),
    )
    engine = Engine(prepared.steps, config, executor, sink)
    with _unwrap_planrun_errors():
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.record, recv, paths)
            with send:
                await engine.run()
    assert view is not None
    return RunResult.from_view(view)


def _concurrency(
    requested: int, prepared: PreparedRun, executor: Executor
) -> tuple[int, tuple[tuple[type[Event], dict[str, Any]], ...]]:
    """The run's effective ``max_concurrency``, and the ``concurrency_capped`` event to
    emit if local attempts would not fit in the open-file limit (see
    :func:`~planrun.executors.local.attempt_capacity`)."""
    if not isinstance(executor, LocalExecutor):
        return requested, ()
    wanted = min(requested, len(prepared.steps))
    pumped = bool(prepared.masker) or any(rs.max_log_bytes for rs in prepared.steps)
    effective, limit = attempt_capacity(wanted, pumped)
    if effective >= wanted:
        return requested, ()
    fields = {"requested": wanted, "effective": effective, "fd_limit": limit}
    return effective, ((ConcurrencyCapped, fields),)


async def _claim(
    store: SqliteStore,
    prepared: PreparedRun,
    run_id: str,
    owner_kind: str,
    resume: Resume | None,
) -> tuple[RunPaths, int]:
    """Create the run (or take it over for a resume); its paths and last ``seq``."""
    plan = prepared.plan
    steps = [(s.id, s.display_name) for s in plan.steps]
    if resume is not None:
        return await store.claim_run(
            run_id,
            variables=prepared.masked_variables,
            plan_json=prepared.plan_json(),
            secret_names=sorted(prepared.secrets),
            steps=steps,
            rerun=resume.rerun,
            owner_kind=owner_kind,
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
            owner_kind,
            plan_json=prepared.plan_json(),
            secret_names=sorted(prepared.secrets),
        )
    except UsageError:
        raise  # the run id was taken: that run is not ours to touch
    except BaseException:
        # Cancelled (or failed) once the row may be committed: never leave a run that
        # will not start looking "running".
        await store.abandon_run(run_id, "cancelled before it started")
        raise
    return paths, 0


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
    state_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    max_concurrency: int | None = None,
    on_event: Callable[[Event], None] | None = None,
    executor: Executor | None = None,
    secrets: Mapping[str, str] | None = None,
    resume: str | None = None,
    from_step: str | None = None,
    only: str | None = None,
    allow_changed: bool = False,
) -> RunResult:
    """Validate and run a plan; return its :class:`RunResult` when every step is done.

    ``plan`` is a :class:`Plan`, parsed plan data, or a path to a JSON/YAML/TOML file
    (relative step ``cwd`` values are then resolved against the file's directory).
    The run is recorded under ``state_dir`` (default ``$PLANRUN_STATE_DIR`` or
    ``.planrun``). ``on_event`` is called with every event, in order, from the event
    loop: keep it fast and do not raise from it. ``secrets`` maps secret names to
    values (the plan's ``secrets`` are otherwise read from ``os.environ``): they reach
    the steps and are masked as ``***`` in every log, event and stored row.

    ``resume=RUN_ID`` resumes that failed, cancelled or crashed run instead of starting
    a new one: steps that did not succeed rerun (``from_step``: also that step and
    everything downstream; ``only``: just that step) with new attempts in the same run
    id. ``plan=None`` means the file the run was started from; the run's variables are
    used again, with ``variables`` overriding some of them. It raises ``UsageError``
    if the plan or variables changed (unless ``allow_changed``) and ``LockConflict``
    if the run is running. A run with nothing to rerun returns its stored result.

    A failed run is a result, not an exception. Raises ``PlanError`` for an invalid
    plan (before anything is written or started), ``UsageError`` for a bad
    ``run_id``/``max_concurrency``, ``StoreError`` if the store fails, ``HelperError``
    if the watchdog cannot start (the run is then recorded ``failed`` and no step
    starts). Fewer attempts than ``max_concurrency`` run at once if the open-file
    limit cannot hold them (a ``ConcurrencyCapped`` event says so). Cancelling the
    awaiting task stops every step process (TERM, grace, KILL), records the run
    ``cancelled`` and re-raises the cancellation.
    """
    if resume is not None:
        from .recovery import load_resume  # recovery builds on this module

        loaded = await load_resume(
            resume,
            state_dir or default_state_dir(),
            plan=plan,
            variables=variables,
            secrets=secrets,
            from_step=from_step,
            only=only,
            allow_changed=allow_changed,
        )
        if not loaded.resume.rerun:
            return stored_result(loaded.resume.history)
        return await execute(
            loaded.prepared,
            state_dir=state_dir,
            max_concurrency=max_concurrency,
            on_event=on_event,
            executor=executor,
            resume=loaded.resume,
        )
    if plan is None:
        raise UsageError("run_plan needs a plan (or resume=RUN_ID)")
    return await execute(
        prepare(plan, variables, secrets),
        state_dir=state_dir,
        run_id=run_id,
        max_concurrency=max_concurrency,
        on_event=on_event,
        executor=executor,
    )


def stored_result(history: list[Event]) -> RunResult:
    """The :class:`RunResult` of a run from its stored events."""
    view = replay(history)
    if view is None:
        raise UsageError("the run has no recorded events")
    return RunResult.from_view(view)
