"""The ``planrun`` command. Commands stay synchronous (typer cannot run coroutines)
and enter the event loop with ``anyio.run(..., backend="asyncio")``.

Exit codes: 0 succeeded, 1 failed, 2 invalid plan or usage, 124 run deadline
exceeded, 130 cancelled (SIGINT/SIGTERM).
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import anyio
import typer
from anyio.abc import TaskStatus
from rich.console import Console

from ..api import PreparedRun, RunResult, execute, prepare
from ..engine import EXIT_CANCELLED
from ..errors import PlanError, PlanrunError, UsageError
from ..executors.local import LocalExecutor
from ..graph import levels
from ..model import json_schema
from ..plan import parse_var, validate
from .common import StateDirOpt, err_console, fail, print_problems
from .observe import register_observe_commands
from .view import LiveView, PlainLog, Renderer, print_summary

app = typer.Typer(
    name="planrun",
    help="Run plans: DAGs of subprocess steps with timeouts, retries and failure policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PlanArg = Annotated[
    Path, typer.Argument(help="Plan file (.json, .yaml/.yml or .toml).", show_default=False)
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("--var", help="Set a variable: NAME=VALUE (repeatable).", show_default=False),
]


def _variables(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        try:
            name, value = parse_var(pair)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        out[name] = value
    return out


@app.command()
def run(
    plan: PlanArg,
    var: VarOpt = None,
    state_dir: StateDirOpt = None,
    run_id: Annotated[
        str | None, typer.Option(help="Use this run id instead of a new one.")
    ] = None,
    max_concurrency: Annotated[
        int | None, typer.Option(min=1, help="Override globals.max_concurrency.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the resolved steps level by level; run nothing."),
    ] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="One line per state change, even on a terminal.")
    ] = False,
) -> None:
    """Validate and run a plan, showing progress; exit with the run's exit code."""
    try:
        prepared = prepare(plan, _variables(var))
    except PlanrunError as exc:
        raise fail(exc) from None
    if prepared.warnings:
        print_problems(err_console(), prepared.warnings, prepared.source)
    if dry_run:
        _print_dry_run(Console(highlight=False, soft_wrap=True), prepared, max_concurrency)
        raise typer.Exit(0)
    console = Console(highlight=False, soft_wrap=True)
    renderer: Renderer = (
        PlainLog(console) if plain or not console.is_terminal else LiveView(console)
    )
    started = time.monotonic()
    try:
        code = anyio.run(
            _run, prepared, renderer, state_dir, run_id, max_concurrency, backend="asyncio"
        )
    except PlanrunError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:  # before our handlers were installed
        code = EXIT_CANCELLED
    if renderer.view is not None:
        print_summary(console, renderer.view, time.monotonic() - started)
    raise typer.Exit(code)


async def _run(
    prepared: PreparedRun,
    renderer: Renderer,
    state_dir: Path | None,
    run_id: str | None,
    max_concurrency: int | None,
) -> int:
    """Run under signal handling: the first SIGINT/SIGTERM cancels gracefully, the
    second kills every step process at once."""
    with LocalExecutor() as executor:
        return await _run_with(prepared, renderer, state_dir, run_id, max_concurrency, executor)


async def _run_with(
    prepared: PreparedRun,
    renderer: Renderer,
    state_dir: Path | None,
    run_id: str | None,
    max_concurrency: int | None,
    executor: LocalExecutor,
) -> int:
    """The run itself, under signal handling (see :func:`_run`)."""
    result: RunResult | None = None
    error: PlanrunError | None = None
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as run_scope:
            await tg.start(_handle_signals, run_scope, executor, renderer.console)
            tg.start_soon(renderer.run)
            try:
                result = await execute(
                    prepared,
                    state_dir=state_dir,
                    run_id=run_id,
                    max_concurrency=max_concurrency,
                    on_event=renderer.on_event,
                    executor=executor,
                    owner_kind="cli",
                    on_notice=lambda text: err_console().print(text, markup=False),
                )
            except PlanrunError as exc:
                error = exc
        renderer.close()
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    if result is None:
        view = renderer.view
        if view is not None and view.exit_code is not None:
            return view.exit_code  # the signal came after the run had finished
        return EXIT_CANCELLED
    return result.exit_code


async def _handle_signals(
    run_scope: anyio.CancelScope,
    executor: LocalExecutor,
    console: Console,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        count = 0
        async for signum in signals:
            count += 1
            name = signal.Signals(signum).name
            if count == 1:
                # Through the console, so a live view draws it above itself.
                console.print(
                    f"planrun: {name}: cancelling the run (again to kill at once)", markup=False
                )
                run_scope.cancel()
            else:
                console.print(f"planrun: {name}: killing every step process", markup=False)
                executor.kill_all()


def _print_dry_run(console: Console, prepared: PreparedRun, max_concurrency: int | None) -> None:
    plan = prepared.plan
    by_id = {rs.step.id: rs for rs in prepared.steps}
    tiers = levels({s.id: s.depends_on for s in plan.steps})
    concurrency = max_concurrency or plan.globals.concurrency
    console.print(
        f"plan {plan.plan_id}: {len(plan.steps)} steps in {len(tiers)} levels, "
        f"max concurrency {concurrency} (dry run: nothing is written or started)",
        markup=False,
    )
    shown = {k: v for k, v in prepared.variables.items() if k != "PLAN_DIR"}
    if shown:
        console.print(
            "variables: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in shown.items()),
            markup=False,
        )
    for depth, tier in enumerate(tiers):
        console.print(f"level {depth}:", markup=False)
        for step_id in tier:
            rs = by_id[step_id]
            step = rs.step
            console.print(f"  {step_id}: {shlex.join(rs.argv)}", markup=False, soft_wrap=True)
            details = []
            if step.depends_on:
                details.append(f"after {', '.join(step.depends_on)}")
            if step.when.value != "all_success":
                details.append(f"when {step.when.value}")
            if rs.cwd:
                details.append(f"cwd {rs.cwd}")
            if rs.timeout:
                details.append(f"timeout {rs.timeout:g}s")
            if step.retries:
                details.append(f"retries {step.retries}")
            if step.on_failure.value != "abort":
                details.append(f"on_failure {step.on_failure.value}")
            if not step.critical:
                details.append("non-critical")
            extra_env = {**plan.globals.env, **step.env}
            if extra_env:
                details.append(
                    "env " + " ".join(f"{k}={shlex.quote(rs.env[k])}" for k in extra_env)
                )
            if details:
                console.print(f"      {'; '.join(details)}", markup=False, soft_wrap=True)


@app.command(name="validate")
def validate_cmd(plan: PlanArg, var: VarOpt = None) -> None:
    """Check a plan and report every problem at once; exit 0 if valid, 2 if not."""
    try:
        result = validate(plan, _variables(var))
    except PlanrunError as exc:
        raise fail(exc) from None
    console = Console(highlight=False, soft_wrap=True)
    if not result.ok:
        raise fail(PlanError(result.problems, result.source))
    print_problems(err_console(), result.warnings, result.source)
    assert result.plan is not None
    tiers = levels({s.id: s.depends_on for s in result.plan.steps})
    console.print(
        f"{plan}: valid plan '{result.plan.plan_id}': {len(result.plan.steps)} steps "
        f"in {len(tiers)} levels",
        markup=False,
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the plan format (for editors: "$schema" in a plan)."""
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


register_observe_commands(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except UsageError as exc:  # pragma: no cover - typer handles most paths
        raise SystemExit(fail(exc).exit_code) from None
