"""How to run a plan: one :class:`RunOptions`, resolved once.

Every default of a run is decided here and nowhere else: the state dir (by
:func:`planrun.paths.default_state_dir`), the run id (a fresh one), the concurrency
(``globals.max_concurrency`` unless overridden). ``run_plan``, ``execute`` and the CLI
all build a :class:`RunOptions` and call :meth:`RunOptions.resolve`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import UsageError
from .events import Event
from .model import Plan
from .paths import state_dir_or_default
from .ports import Executor, OutputSink
from .prepare import check_concurrency, check_run_id, new_run_id

if TYPE_CHECKING:
    from .state import RunView

__all__ = [
    "DASK_SCHEDULER_ENV",
    "DURABILITY_ENV",
    "Durability",
    "ExecutorKind",
    "KillSwitch",
    "ResolvedOptions",
    "RunOptions",
]

#: Where the CLI (and a ``RunOptions`` without ``durability``) reads the durability.
DURABILITY_ENV = "PLANRUN_SYNC"
#: The Dask scheduler's address when ``executor_kind`` is dask and none is given.
DASK_SCHEDULER_ENV = "PLANRUN_DASK_SCHEDULER"


class ExecutorKind(StrEnum):
    """Which executor ``execute`` opens when no ``executor`` object is given: ``local``
    (subprocesses on this machine, the default) or ``dask`` (a Dask cluster: the
    scheduler at ``scheduler``, else ``$PLANRUN_DASK_SCHEDULER``, else a local
    cluster started for the run; see :mod:`planrun.executor_choice`)."""

    LOCAL = "local"
    DASK = "dask"


class Durability(StrEnum):
    """What a committed event survives (SQLite's ``synchronous`` in WAL mode).

    ``full`` (the default): a committed event survives a crash of planrun at once, and
    a crash of the machine (power loss, kernel panic) at most 50 ms (plus one fsync)
    after its commit: a run's event batches are synced at that pace and after its last
    event (``store/walsync.py``), every other transaction at its commit. ``normal``: a
    commit survives a crash of planrun (the process, SIGKILL included), but the last
    transactions before a power loss or an OS crash may be lost (the database stays
    consistent: a run then ends at an earlier event, and ``planrun`` marks it crashed
    as usual).
    """

    FULL = "full"
    NORMAL = "normal"


def durability(value: str | Durability | None) -> Durability:
    """``value``, else ``$PLANRUN_SYNC``, else ``full``; ``UsageError`` for a bad one."""
    chosen = value if value is not None else os.environ.get(DURABILITY_ENV) or Durability.FULL
    try:
        return Durability(str(chosen).lower())
    except ValueError:
        where = "durability" if value is not None else f"${DURABILITY_ENV}"
        raise UsageError(
            f"{where} must be 'full' or 'normal', not {str(chosen)!r}", field="durability"
        ) from None


class KillSwitch:
    """Lets a front end kill every step process of a run at once, without waiting for
    the graceful stop (the CLI's second Ctrl-C). Give it as ``RunOptions.kill_switch``;
    :meth:`kill_all` then SIGKILLs the process group of every running attempt of the
    run's executor (a no-op before the run has started, or for an executor that has no
    such notion)."""

    def __init__(self) -> None:
        self._kills: list[Callable[[], None]] = []

    def attach(self, kill: Callable[[], None]) -> None:
        """Called by ``execute`` with its executor's kill-everything function."""
        self._kills.append(kill)

    def kill_all(self) -> None:
        for kill in list(self._kills):
            kill()


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Everything about a run that is not the plan. Every field is optional.

    ``state_dir``: where the run is recorded (default ``$PLANRUN_STATE_DIR`` or
    ``.planrun``). ``run_id``: default a fresh, time-sorted one. ``max_concurrency``:
    default the plan's ``globals.max_concurrency``. ``variables``/``secrets``: given to
    :func:`~planrun.prepare.prepare` (secret values reach the steps and are masked
    everywhere else). ``executor``: default a local subprocess executor. ``on_event``:
    called with every event, in order, from the event loop (keep it fast).
    ``on_output``: called with every line a step writes (an
    :class:`~planrun.ports.OutputLine`: stdout and stderr as the log has them, secrets
    masked), as it is written, in order per attempt, from the event loop (keep it
    fast); every line of an attempt comes before its ``AttemptFinished``. Only the
    default executor delivers lines (a given ``executor`` does not). Without it,
    steps write their logs directly, which is cheaper.
    ``on_view``: called once, before the first ``on_event``, with the run's own
    :class:`~planrun.state.RunView` (the reducer's view the result is built from),
    which then changes in place as events arrive: a front end that draws the run reads
    it (it is up to date in ``on_event``) instead of folding every event a second
    time; never modify it.
    ``on_notice``: called with a line for a person (e.g. "waiting for lock ...").
    ``owner_kind``: ``"cli"`` records that the owning process cancels the run on
    SIGTERM (what :func:`planrun.api.cancel_run` sends); embedders keep ``"api"``.
    ``kill_switch``: see :class:`KillSwitch`. ``durability``: ``"full"`` or ``"normal"``
    (default ``$PLANRUN_SYNC``, else ``"full"``): see :class:`Durability`.
    ``trigger``: what started the run (``planrun serve`` sets it: kind, slot, paths,
    shas); recorded in ``run_started.trigger`` and ``runs.trigger``.
    ``executor_kind``: ``"local"`` (default) or ``"dask"``, opened by ``execute`` when
    ``executor`` is not given; ``scheduler``: the Dask scheduler's address
    (``tcp://HOST:8786``; dask only): see :class:`ExecutorKind`.
    """

    state_dir: str | os.PathLike[str] | None = None
    run_id: str | None = None
    max_concurrency: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    executor: Executor | None = None
    on_event: Callable[[Event], None] | None = None
    on_output: OutputSink | None = None
    on_view: Callable[[RunView], None] | None = None
    on_notice: Callable[[str], None] | None = None
    owner_kind: str = "api"
    kill_switch: KillSwitch | None = None
    durability: Durability | str | None = None
    trigger: Mapping[str, Any] | None = None
    executor_kind: ExecutorKind | str | None = None
    scheduler: str | None = None

    def check(self) -> None:
        """``UsageError`` (with ``field``) for a run id or concurrency that can never
        be used, before anything is prepared or written."""
        if self.run_id is not None:
            check_run_id(self.run_id)
        check_concurrency(self.max_concurrency)
        durability(self.durability)
        self.kind()

    def kind(self) -> ExecutorKind:
        """The executor kind asked for (default local); ``UsageError`` for an unknown
        one, a ``scheduler`` without dask, or a kind beside an ``executor`` object."""
        try:
            kind = ExecutorKind(str(self.executor_kind or ExecutorKind.LOCAL).lower())
        except ValueError:
            raise UsageError(
                f"executor_kind must be 'local' or 'dask', not {self.executor_kind!r}",
                field="executor_kind",
            ) from None
        if self.scheduler is not None and kind is not ExecutorKind.DASK:
            raise UsageError("scheduler is only used with executor_kind='dask'", field="scheduler")
        if self.executor is not None and self.executor_kind is not None:
            raise UsageError("give executor or executor_kind, not both", field="executor_kind")
        return kind

    def dask_scheduler(self) -> str | None:
        """The Dask scheduler a dask run connects to: ``scheduler``, else
        ``$PLANRUN_DASK_SCHEDULER``, else None (a local cluster started for the run)."""
        return self.scheduler or os.environ.get(DASK_SCHEDULER_ENV) or None

    def executor_text(self) -> str:
        """The executor asked for, for a person: ``local``, ``dask tcp://HOST:8786``
        or ``dask (a local cluster)``."""
        if self.executor is not None or self.kind() is ExecutorKind.LOCAL:
            return "local" if self.executor is None else type(self.executor).__name__
        return f"dask {self.dask_scheduler() or '(a local cluster started for the run)'}"

    def updated(self, **changes: Any) -> RunOptions:
        """A copy with the ``changes`` that are not None (keyword arguments given
        beside an options object win over it)."""
        given = {name: value for name, value in changes.items() if value is not None}
        return replace(self, **given) if given else self

    def resolve(self, plan: Plan, *, run_id: str | None = None) -> ResolvedOptions:
        """Every default decided: the options of one run of ``plan``. ``run_id`` (a
        resumed run's) overrides ``self.run_id``. Raises ``UsageError``."""
        self.check()
        chosen = run_id if run_id is not None else self.run_id
        return ResolvedOptions(
            state_dir=state_dir_or_default(self.state_dir),
            run_id=check_run_id(chosen) if chosen is not None else new_run_id(),
            max_concurrency=self.concurrency(plan),
            durability=durability(self.durability),
            options=self,
        )

    def concurrency(self, plan: Plan) -> int:
        """How many attempts may run at once: ``max_concurrency``, else the plan's
        ``globals.max_concurrency`` (the open-file limit may still cap it)."""
        return self.max_concurrency or plan.globals.concurrency


class ResolvedOptions(msgspec.Struct, frozen=True, kw_only=True):
    """:class:`RunOptions` with every default filled in (see :meth:`RunOptions.resolve`)."""

    state_dir: Path
    run_id: str
    #: What was asked for: the open-file limit may still cap it (ConcurrencyCapped).
    max_concurrency: int
    durability: Durability
    options: RunOptions

    @property
    def on_event(self) -> Callable[[Event], None] | None:
        return self.options.on_event

    @property
    def on_notice(self) -> Callable[[str], None] | None:
        return self.options.on_notice

    @property
    def owner_kind(self) -> str:
        return self.options.owner_kind
