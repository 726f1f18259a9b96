"""What ``planrun run`` and ``planrun resume`` do, once click has parsed them: imported
only when one of them runs (``cli/app.py`` declares the commands), so ``planrun -h``,
``--version`` and ``validate`` load neither the engine nor the store.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import time
from dataclasses import replace
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import anyio
import typer

from ..api import PreparedRun, RunOptions, RunResult, execute
from ..errors import PlanrunError, UsageError
from ..exitcodes import ExitCode
from ..options import KillSwitch
from ..prepare import Resume, check_concurrency, secret_hint, secrets_from_env
from ..resume.load import LoadedResume, load_resume
from ..state import replay
from . import jsonout
from .ci import CiChoice
from .common import err_console, make_console, print_problems, var_values
from .output import choose_renderer
from .params import ColorChoice, ExecutorChoice, OutputChoice
from .plan_input import plan_source, prepare_plan
from .plan_text import print_dry_run, print_explain
from .reports import RunReports, unstarted_view
from .view import Renderer, print_summary

if TYPE_CHECKING:
    from anyio.abc import TaskStatus  # anyio.abc loads its socket layer
    from rich.console import Console

__all__ = ["load_event_loop", "resume_command", "run_command"]


def load_event_loop() -> None:
    """Import anyio's asyncio backend now (``anyio.run`` would on its first call), so
    that the caller's ``paused_gc`` and ``ssl_deferred`` cover it too."""
    with contextlib.suppress(ImportError):  # (a private module: anyio.run imports it)
        import_module("anyio._backends._asyncio")


def _secrets(names: list[str] | None) -> dict[str, str]:
    """``--secret NAME`` values, from planrun's environment."""
    values, missing = secrets_from_env(names or [])
    if missing:
        name, why = next(iter(missing.items()))  # the first one is enough to act on
        if why not in ("not set", "empty"):
            raise UsageError(f"--secret {name}: secret '{name}' is {why}; {secret_hint(name, why)}")
        raise UsageError(
            f"--secret {name}: {name} is {why} in the environment; export {name}=... first "
            "(a secret never goes on the command line)"
        )
    return values


#: ``--executor`` and ``--scheduler``, as given.
Placement = tuple[ExecutorChoice, str | None]


def _with_executor(options: RunOptions, placement: Placement) -> RunOptions:
    """``options`` with ``--executor``/``--scheduler``; ``UsageError`` for a scheduler
    without the dask executor."""
    kind, scheduler = placement
    if scheduler is not None and kind is not ExecutorChoice.DASK:
        raise UsageError(f"--scheduler {scheduler} needs --executor dask")
    if kind is ExecutorChoice.LOCAL:
        return options
    return replace(options, executor_kind=kind.value, scheduler=scheduler)


def run_command(
    plan: Path,
    var: list[str] | None,
    secret: list[str] | None,
    state_dir: Path | None,
    run_id: str | None,
    max_concurrency: int | None,
    dry_run: bool,
    plain: bool,
    as_json: bool,
    ci: CiChoice,
    junit: Path | None,
    allow_undeclared: bool,
    output: OutputChoice,
    color: ColorChoice,
    placement: Placement = (ExecutorChoice.LOCAL, None),
) -> None:
    """``planrun run``: see its help in ``cli/app.py``."""
    try:
        options = _with_executor(
            RunOptions(state_dir=state_dir, run_id=run_id, max_concurrency=max_concurrency),
            placement,
        )
        reports = RunReports.from_options(ci, junit, json_stdout=as_json)
        check_concurrency(max_concurrency)
        prepared = prepare_plan(
            plan,
            var_values(var),
            _secrets(secret),
            allow_undeclared=allow_undeclared,
            check_host=dry_run,  # what validate warns about; a run reports the real failure
        )
    except PlanrunError as exc:
        raise jsonout.fail(exc, as_json) from None
    if prepared.warnings:
        print_problems(err_console(), prepared.warnings, prepared.source)
    if dry_run and as_json:
        jsonout.write_doc(jsonout.dry_run_doc(prepared, options))
        raise typer.Exit(ExitCode.OK)
    if dry_run:
        print_dry_run(make_console(color=color), prepared, options)
        raise typer.Exit(ExitCode.OK)
    _run_and_exit(prepared, plain, options, None, as_json, reports, output=output, color=color)


def resume_command(
    run_id: str,
    from_step: str | None,
    only: str | None,
    explain: bool,
    allow_changed: bool,
    plan: Path | None,
    var: list[str] | None,
    secret: list[str] | None,
    state_dir: Path | None,
    max_concurrency: int | None,
    plain: bool,
    as_json: bool,
    ci: CiChoice,
    junit: Path | None,
    allow_undeclared: bool,
    output: OutputChoice,
    color: ColorChoice,
    placement: Placement = (ExecutorChoice.LOCAL, None),
) -> None:
    """``planrun resume``: see its help in ``cli/app.py``."""
    try:
        opts = _with_executor(
            RunOptions(state_dir=state_dir, max_concurrency=max_concurrency), placement
        )
        reports = RunReports.from_options(ci, junit, json_stdout=as_json)
        loaded = anyio.run(
            functools.partial(
                load_resume,
                run_id,
                state_dir,
                plan=plan_source(plan) if plan is not None else None,
                variables=var_values(var),
                secrets=_secrets(secret),
                from_step=from_step,
                only=only,
                allow_changed=allow_changed,
                allow_undeclared=allow_undeclared,
            ),
            backend="asyncio",
        )
    except PlanrunError as exc:
        raise jsonout.fail(exc, as_json) from None
    if explain and as_json:
        jsonout.write_doc(jsonout.explain_doc(loaded))
        raise typer.Exit(ExitCode.OK)
    if explain:
        print_explain(make_console(color=color), loaded)
        raise typer.Exit(ExitCode.OK)
    if not loaded.resume.rerun:
        _nothing_to_rerun(loaded, as_json, reports)
    _run_and_exit(loaded.prepared, plain, opts, loaded.resume, as_json, reports, output, color)


def _run_and_exit(
    prepared: PreparedRun,
    plain: bool,
    options: RunOptions,
    resume: Resume | None,
    as_json: bool,
    reports: RunReports,
    output: OutputChoice = OutputChoice.AUTO,
    color: ColorChoice = ColorChoice.AUTO,
) -> None:
    """Run (or resume) with a live view, plain log or step output (``--output``), print
    the summary, exit; under ``as_json`` the events and the result as NDJSON
    (``jsonout``)."""
    console = make_console(color=color)
    renderer: Renderer = (
        jsonout.JsonEvents() if as_json else choose_renderer(console, output, plain, reports.ci)
    )
    renderer.state_dir = options.state_dir
    if resume is not None:  # the view starts from the run's history, without printing it
        renderer.view = replay(resume.history)
    started = time.monotonic()
    try:
        code = anyio.run(_run, prepared, renderer, options, resume, backend="asyncio")
    except PlanrunError as exc:
        if renderer.view is not None:  # it failed mid-run: report what did happen
            reports.finish(renderer.view, prepared, time.monotonic() - started)
        raise jsonout.fail(exc, as_json) from None
    except KeyboardInterrupt:  # before our handlers were installed
        code = ExitCode.CANCELLED
    if as_json:
        jsonout.write_result(renderer.view, code)
    elif renderer.view is not None:
        print_summary(console, renderer.view, time.monotonic() - started)
    reports.finish(
        renderer.view or unstarted_view(prepared, options.run_id),
        prepared,
        time.monotonic() - started,
    )
    raise typer.Exit(code)


async def _run(
    prepared: PreparedRun, renderer: Renderer, options: RunOptions, resume: Resume | None
) -> int:
    """Run under signal handling: the first SIGINT/SIGTERM cancels gracefully, the
    second kills every step process at once."""
    kill_switch = KillSwitch()
    options = replace(
        options,
        on_event=renderer.on_event,
        on_view=renderer.share_view,
        on_output=renderer.on_output if renderer.wants_output else None,
        owner_kind="cli",
        on_notice=lambda text: err_console().print(text, markup=False),
        kill_switch=kill_switch,
    )
    result: RunResult | None = None
    error: PlanrunError | None = None
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as run_scope:
            await tg.start(_handle_signals, run_scope, kill_switch, renderer.console)
            tg.start_soon(renderer.run)
            try:
                result = await execute(prepared, options, resume=resume)
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
        return ExitCode.CANCELLED
    return result.exit_code


async def _handle_signals(
    run_scope: anyio.CancelScope,
    kill_switch: KillSwitch,
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
                kill_switch.kill_all()


def _nothing_to_rerun(loaded: LoadedResume, as_json: bool, reports: RunReports) -> NoReturn:
    """Every step of the run succeeded: say so, report the run as it stands, exit 0."""
    err_console().print(
        f"planrun: nothing to rerun: every step of run {loaded.run.run_id} succeeded "
        "(use --from STEP to run steps again)",
        markup=False,
    )
    stored = replay(loaded.resume.history)
    if as_json:  # the run as it stands: there is nothing new to stream
        jsonout.write_result(stored, ExitCode.OK)
    if stored is not None:  # CI still gets its report
        reports.finish(stored, loaded.prepared, 0.0)
    raise typer.Exit(ExitCode.OK)
