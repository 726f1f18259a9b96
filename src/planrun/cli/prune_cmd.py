"""``planrun prune``: delete finished runs with their logs and events (see
:mod:`planrun.prune`). The store is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import PlanrunError, UsageError
from ..exitcodes import ExitCode
from . import jsonout
from .common import out_console
from .params import JsonOpt, StateDirOpt
from .tables import Column, layout, utc_stamp

if TYPE_CHECKING:
    from ..prune import PruneResult

__all__ = ["register_prune_command"]

_COLUMNS = (
    Column("run id"),
    Column("plan", drop=3),
    Column("state", drop=2),
    Column("started (UTC)", drop=1),
    Column("age"),
    Column("child runs", drop=0),
)


def age_text(seconds: float) -> str:
    """``31d04h``, ``5h12m``, ``42m``, ``12s``: how long ago, to two units at most."""
    sec = max(0, int(seconds))
    days, rest = divmod(sec, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, sec = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{sec}s"


def _print(result: PruneResult, state_dir: Path) -> None:
    console = out_console()
    width = console.width if console.is_terminal else None
    if result.swept:
        console.print(
            f"removed the files of {len(result.swept)} run(s) deleted earlier "
            "(an interrupted prune left them)",
            markup=False,
        )
    if not result.runs:
        console.print("nothing to delete", markup=False)
        return
    rows = [
        [
            run.run_id,
            run.plan_id,
            run.state.value,
            utc_stamp(run.started_at, suffix=False, ms=False),
            age_text(run.age_sec),
            str(len(run.child_run_ids)) if run.child_run_ids else "",
        ]
        for run in result.runs
    ]
    from .show import print_lines  # a chunk of lines per call: 100,000 rows print fast

    print_lines(console, layout(_COLUMNS, rows, width))
    children = len(result.run_ids) - len(result.runs)
    also = f" and {children} child run(s)" if children else ""
    verb = "would delete" if result.dry_run else "deleted"
    tail = " (dry run: nothing deleted)" if result.dry_run else ""
    console.print(f"{verb} {len(result.runs)} run(s){also} in {state_dir}{tail}", markup=False)


def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Only runs that ended longer ago than this: 30d, 12h, 90m, 45s, 2w.",
            show_default=False,
        ),
    ] = None,
    keep_last: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="N",
            help="Keep the newest N finished runs of each plan.",
            show_default=False,
        ),
    ] = None,
    plan: Annotated[
        str | None,
        typer.Option(metavar="PLAN_ID", help="Only runs of this plan id.", show_default=False),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be deleted; delete nothing.")
    ] = False,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished runs, with their logs and events.

    At least one of --older-than and --keep-last. A running run is never deleted;
    child runs (uses) go with their parent. Rows go first (one transaction per batch
    of runs), then files: an interrupted prune leaves no half-deleted run, and the
    next prune removes the files it left. Prints each run deleted."""
    try:
        result = _prune(older_than, keep_last, plan, dry_run, state_dir)
    except PlanrunError as exc:
        raise jsonout.fail(exc, as_json) from None
    root = _result_dir(state_dir)
    if as_json:
        jsonout.write_doc({"type": "prune", **_doc(result), "state_dir": str(root)})
    else:
        _print(result, root)
    raise typer.Exit(ExitCode.OK)


def _result_dir(state_dir: Path | None) -> Path:
    from ..paths import state_dir_or_default

    return state_dir_or_default(state_dir).absolute()


def _prune(
    older_than: str | None,
    keep_last: int | None,
    plan: str | None,
    dry_run: bool,
    state_dir: Path | None,
) -> PruneResult:
    """Check the flags, then prune (``UsageError`` for bad ones)."""
    from datetime import UTC, datetime

    import anyio

    from ..prune import prune as prune_runs
    from ..retention import Policy, parse_duration

    if older_than is None and keep_last is None:
        raise UsageError(
            "say what to delete: --older-than DURATION (e.g. 30d) and/or --keep-last N "
            "(e.g. `planrun prune --older-than 30d --keep-last 100 --dry-run`)"
        )
    policy = Policy(
        older_than=parse_duration(older_than) if older_than is not None else None,
        keep_last=keep_last,
        plan_id=plan,
    )
    now = datetime.now(UTC)
    found: list[PruneResult] = []

    async def go() -> None:
        # Not returned from the main task: asyncio formats its repr (the whole
        # result: 0.6 s for 70,000 runs) when it finishes.
        found.append(await prune_runs(policy, now=now, state_dir=state_dir, dry_run=dry_run))

    anyio.run(go, backend="asyncio")
    return found[0]


def _doc(result: PruneResult) -> dict[str, object]:
    return {
        "dry_run": result.dry_run,
        "runs": result.runs,
        "deleted_run_ids": [] if result.dry_run else result.run_ids,
        "swept": result.swept,
    }


def register_prune_command(app: typer.Typer) -> None:
    """Add ``prune`` to the ``planrun`` app."""
    app.command()(prune)
