"""The ``planrun`` command. Commands stay synchronous (typer cannot run coroutines)
and enter the event loop with ``anyio.run(..., backend="asyncio")``.

Exit codes: 0 succeeded, 1 failed, 2 invalid plan or usage, 3 lock held (or the run
is being resumed elsewhere), 124 run deadline exceeded, 130 cancelled (SIGINT/SIGTERM).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import anyio
import typer
from anyio.abc import TaskStatus
from rich.console import Console

from ..api import PreparedRun, RunOptions, RunResult, execute
from ..errors import PlanError, PlanrunError, UsageError
from ..exitcodes import ExitCode
from ..graph import levels
from ..model import json_schema
from ..options import KillSwitch
from ..prepare import Resume, check_concurrency, check_plan, secret_hint, secrets_from_env
from ..resume.load import LoadedResume, load_resume
from ..state import replay
from . import jsonout
from .ci import CiChoice
from .command import CONTEXT_SETTINGS, build_command
from .common import (
    ColorChoice,
    ColorOpt,
    StateDirOpt,
    err_console,
    fail,
    make_console,
    print_problems,
    var_values,
)
from .completion import register_completion_command
from .graph_cmd import register_graph_command
from .jsonout import JsonOpt
from .observe import register_observe_commands
from .output import OutputChoice, OutputOpt, choose_renderer
from .plan_input import ResumePlanOpt, plan_source, prepare_plan
from .plan_text import print_dry_run, print_explain, print_instances
from .report_cmd import register_report_command
from .reports import RunReports, unstarted_view
from .ui_cmd import register_ui_command
from .version import VersionOpt, register_version_command
from .view import Renderer, counted, print_summary

app = typer.Typer(
    name="planrun",
    help="Run plans: DAGs of subprocess steps with timeouts, retries and failure policies.",
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
    rich_markup_mode=None,  # help shown literally by click: see cli/command.py
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(version: VersionOpt = False) -> None:
    """Run plans: DAGs of subprocess steps with timeouts, retries and failure policies."""


PlanArg = Annotated[
    Path,
    typer.Argument(
        metavar="PLAN", help="Plan file (.json, .yaml/.yml or .toml).", show_default=False
    ),
]
ResumeIdArg = Annotated[
    str, typer.Argument(metavar="RUN_ID", help="The run to resume.", show_default=False)
]
RunPlanArg = Annotated[
    Path,
    typer.Argument(
        help="Plan file (.json, .yaml/.yml or .toml), or - to read it from stdin.",
        show_default=False,
    ),
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        metavar="NAME=VALUE",
        help="Set the plan variable NAME (repeatable).",
        show_default=False,
    ),
]
SecretOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        metavar="NAME",
        help="Pass the environment variable NAME to the steps as a secret: usable as "
        "${NAME}, masked as *** in every log, event and stored row (repeatable).",
        show_default=False,
    ),
]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="One line per state change, even on a terminal.")
]
MaxConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help="Run at most N steps at once (overrides the plan's globals.max_concurrency).",
    ),
]
CiOpt = Annotated[
    CiChoice,
    typer.Option(
        "--ci",
        help="CI output: github = annotations for failed steps and a job summary; "
        "auto = github when GITHUB_ACTIONS=true.",
    ),
]
JunitOpt = Annotated[
    Path | None,
    typer.Option(
        "--junit",
        help="Write a JUnit XML report (one testcase per step) to FILE.",
        metavar="FILE",
        show_default=False,
    ),
]
AllowUndeclaredOpt = Annotated[
    bool,
    typer.Option(
        "--allow-undeclared",
        help="Accept a --var the plan does not declare (it reaches the steps' environment).",
    ),
]


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


@app.command()
def run(
    plan: RunPlanArg,
    var: VarOpt = None,
    secret: SecretOpt = None,
    state_dir: StateDirOpt = None,
    run_id: Annotated[
        str | None, typer.Option(metavar="RUN_ID", help="Use this run id instead of a new one.")
    ] = None,
    max_concurrency: MaxConcurrencyOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the resolved steps level by level; run nothing."),
    ] = False,
    plain: PlainOpt = False,
    as_json: JsonOpt = False,
    ci: CiOpt = CiChoice.AUTO,
    junit: JunitOpt = None,
    allow_undeclared: AllowUndeclaredOpt = False,
    output: OutputOpt = OutputChoice.AUTO,
    color: ColorOpt = ColorChoice.AUTO,
) -> None:
    """Validate and run a plan, showing progress.

    Exits with the run's exit code (see the README's table)."""
    options = RunOptions(state_dir=state_dir, run_id=run_id, max_concurrency=max_concurrency)
    try:
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


#: ``resume``'s own options (named here so the command stays readable).
FromOpt = Annotated[
    str | None,
    typer.Option("--from", metavar="STEP", help="Also rerun STEP and everything downstream of it."),
]
OnlyOpt = Annotated[
    str | None,
    typer.Option(
        "--only", metavar="STEP", help="Rerun just STEP (its dependencies must have succeeded)."
    ),
]
ExplainOpt = Annotated[
    bool, typer.Option("--explain", help="Print what each step would do and why; run nothing.")
]
AllowChangedOpt = Annotated[
    bool, typer.Option("--allow-changed", help="Resume even if the plan or variables changed.")
]


@app.command(name="resume")
def resume_cmd(
    run_id: ResumeIdArg,
    from_step: FromOpt = None,
    only: OnlyOpt = None,
    explain: ExplainOpt = False,
    allow_changed: AllowChangedOpt = False,
    plan: ResumePlanOpt = None,
    var: VarOpt = None,
    secret: SecretOpt = None,
    state_dir: StateDirOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    plain: PlainOpt = False,
    as_json: JsonOpt = False,
    ci: CiOpt = CiChoice.AUTO,
    junit: JunitOpt = None,
    allow_undeclared: AllowUndeclaredOpt = False,
    output: OutputOpt = OutputChoice.AUTO,
    color: ColorOpt = ColorChoice.AUTO,
) -> None:
    """Resume a failed, cancelled or crashed run, in the same run id.

    Reruns the steps that did not succeed, and what depends on them."""
    try:
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
    opts = RunOptions(state_dir=state_dir, max_concurrency=max_concurrency)
    _run_and_exit(loaded.prepared, plain, opts, loaded.resume, as_json, reports, output, color)


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


@app.command(name="validate")
def validate_cmd(
    plan: PlanArg,
    var: VarOpt = None,
    allow_undeclared: AllowUndeclaredOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a plan and report every problem at once.

    Exits 0 if the plan is valid, 2 if not."""
    try:
        result = check_plan(plan, var_values(var), allow_undeclared=allow_undeclared)
    except PlanError as exc:  # nothing could be checked: still a validation's answer
        if as_json:
            jsonout.write_doc(jsonout.validation_doc(str(plan), None, exc))
        raise fail(exc) from None
    except PlanrunError as exc:
        raise jsonout.fail(exc, as_json) from None
    if as_json:
        jsonout.write_doc(jsonout.validation_doc(str(plan), result, None))
    console = make_console()
    if not result.ok:
        raise fail(PlanError(result.problems, result.source))
    print_problems(err_console(), result.warnings, result.source)
    if result.unset:
        names = ", ".join(result.unset)
        err_console().print(f"{plan}: note: required at run time: {names}", markup=False)
    if as_json:
        raise typer.Exit(ExitCode.OK)
    assert result.plan is not None
    tiers = levels({s.id: s.depends_on for s in result.plan.steps})
    console.print(
        f"{plan}: valid plan '{result.plan.plan_id}': "
        f"{counted(len(result.plan.steps), 'step')} in {counted(len(tiers), 'level')}",
        markup=False,
    )
    print_instances(console, result.plan)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the plan format.

    For editors: point a plan's "$schema" at the file."""
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


register_observe_commands(app)
register_version_command(app)
register_completion_command(app)
register_ui_command(app)
register_graph_command(app)
register_report_command(app)


def main() -> None:
    """Console-script entry point."""
    try:
        build_command(app)(prog_name="planrun")
    except UsageError as exc:  # pragma: no cover - typer handles most paths
        raise SystemExit(fail(exc).exit_code) from None
