"""The ``planrun`` command. Commands stay synchronous (typer cannot run coroutines)
and enter the event loop with ``anyio.run(..., backend="asyncio")``.

Exit codes: 0 succeeded, 1 failed, 2 invalid plan or usage, 3 lock held (or the run
is being resumed elsewhere), 124 run deadline exceeded, 130 cancelled (SIGINT/SIGTERM).
"""

# No ``from __future__ import annotations``: typer reads every command's parameters
# from its annotations, and string ones are compiled and evaluated (twice) on every
# start (~2 ms for ``run``).

import os
import sys
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from ..exitcodes import ExitCode
from ..gcpause import paused_gc
from .ci import CiChoice
from .command import CONTEXT_SETTINGS, build_command
from .params import (
    ColorChoice,
    ColorOpt,
    ExecutorChoice,
    ExecutorOpt,
    JsonOpt,
    OutputChoice,
    OutputOpt,
    ResumePlanOpt,
    SchedulerOpt,
    StateDirOpt,
)
from .quick_exit import leave
from .ssl_deferred import ssl_deferred
from .version import VersionOpt

if TYPE_CHECKING:
    app: typer.Typer  # every command: see __getattr__ below

#: The commands declared here. Their modules are light (typer, the standard library):
#: a command imports what it acts with only when it runs; the commands of the other
#: cli modules join them in :func:`full_app`.
_app = typer.Typer(
    name="planrun",
    help="Run plans: DAGs of subprocess steps with timeouts, retries and failure policies.",
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
    rich_markup_mode=None,  # help shown literally by click: see cli/command.py
    pretty_exceptions_enable=False,
)


@_app.callback()
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
        "--max-concurrency",
        "-j",  # as make and ninja
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


@_app.command()
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
    executor: ExecutorOpt = ExecutorChoice.LOCAL,
    scheduler: SchedulerOpt = None,
) -> None:
    """Validate and run a plan, showing progress.

    Exits with the run's exit code (see the README's table)."""
    if not dry_run:
        _prestart_watchdog()
    with paused_gc(), ssl_deferred():  # the engine, the store, the view: see cli/entry.py
        from .run_cmd import load_event_loop, run_command

        if not dry_run:
            load_event_loop()

    run_command(
        plan,
        var,
        secret,
        state_dir,
        run_id,
        max_concurrency,
        dry_run,
        plain,
        as_json,
        ci,
        junit,
        allow_undeclared,
        output,
        color,
        (executor, scheduler),
    )


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


@_app.command(name="resume")
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
    executor: ExecutorOpt = ExecutorChoice.LOCAL,
    scheduler: SchedulerOpt = None,
) -> None:
    """Resume a failed, cancelled or crashed run, in the same run id.

    Reruns the steps that did not succeed, and what depends on them."""
    if not explain:
        _prestart_watchdog()
    with paused_gc(), ssl_deferred():  # see cli/entry.py
        from .run_cmd import load_event_loop, resume_command

        load_event_loop()

    resume_command(
        run_id,
        from_step,
        only,
        explain,
        allow_changed,
        plan,
        var,
        secret,
        state_dir,
        max_concurrency,
        plain,
        as_json,
        ci,
        junit,
        allow_undeclared,
        output,
        color,
        (executor, scheduler),
    )


def _prestart_watchdog() -> None:
    """Start the run's watchdog process before loading the engine and the store, so
    its interpreter is up when the run ends (a clean exit waits for it to be gone)."""
    from ..startup import prestart_watchdog

    prestart_watchdog()


@_app.command(name="validate")
def validate_cmd(
    plan: PlanArg,
    var: VarOpt = None,
    allow_undeclared: AllowUndeclaredOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a plan and report every problem at once.

    Exits 0 if the plan is valid, 2 if not."""
    with paused_gc():  # see cli/entry.py
        from ..errors import PlanError, PlanrunError
        from ..graph import level_count
        from ..prepare import check_plan
        from .common import err_console, fail, make_console, print_problems, var_values
        from .handler_text import handlers_phrase
        from .plan_text import print_instances
        from .trigger_text import plan_triggers_line
        from .words import counted

    try:
        result = check_plan(plan, var_values(var), allow_undeclared=allow_undeclared)
    except PlanError as exc:  # nothing could be checked: still a validation's answer
        if as_json:
            from . import jsonout

            jsonout.write_doc(jsonout.validation_doc(str(plan), None, exc))
        raise fail(exc) from None
    except PlanrunError as exc:
        from . import jsonout

        raise jsonout.fail(exc, as_json) from None
    if as_json:
        from . import jsonout

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
    level_total = level_count({s.id: s.depends_on for s in result.plan.steps})
    console.print(
        f"{plan}: valid plan '{result.plan.plan_id}': "
        f"{counted(len(result.plan.steps), 'step')} in {counted(level_total, 'level')}"
        + handlers_phrase(result.plan),
        markup=False,
    )
    print_instances(console, result.plan)
    if (triggers := plan_triggers_line(result.plan)) is not None:
        console.print(f"  {triggers}", markup=False)


@_app.command()
def schema() -> None:
    """Print the JSON Schema of the plan format.

    For editors: point a plan's "$schema" at the file."""
    import json

    from ..model import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


#: What ``planrun WORD ...`` needs no other command for: the commands declared here
#: (``--version`` too).
_OWN = frozenset({"run", "resume", "validate", "schema", "--version", "-V"})
#: The other commands: the cli module that declares each, and its register function.
#: In this order, ``planrun -h`` lists them after those declared here.
_MODULES = {
    "observe": ("register_observe_commands", ("watch", "list", "show", "logs", "cancel")),
    "version": ("register_version_command", ("version",)),
    "completion": ("register_completion_command", ("completion",)),
    "ui_cmd": ("register_ui_command", ("ui",)),
    "graph_cmd": ("register_graph_command", ("graph",)),
    "report_cmd": ("register_report_command", ("report",)),
    "serve_cmd": ("register_serve_commands", ("serve", "triggers")),
    "prune_cmd": ("register_prune_command", ("prune",)),
}
_registered: set[str] = set()


def _register(module: str) -> None:
    """Add the commands of cli module ``module`` (a key of :data:`_MODULES`), once."""
    if module not in _registered:
        register_name, _ = _MODULES[module]
        getattr(import_module(f".{module}", __package__), register_name)(_app)
        _registered.add(module)


def full_app() -> typer.Typer:
    """The ``planrun`` app with every command, in the order ``planrun -h`` lists them."""
    for module in _MODULES:
        _register(module)
    return _app


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole ``planrun`` app (what the tests build help from)."""
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _invoked(argv: list[str]) -> str | None:
    """The one command ``argv`` (after ``planrun``) runs, or ``--version``; None when
    it needs every command: ``-h``, a typo (the error suggests a command), a shell
    asking for completions."""
    if not argv or "_PLANRUN_COMPLETE" in os.environ:
        return None
    word = argv[0]
    if word in _OWN or any(word in words for _, words in _MODULES.values()):
        return word
    return None


def _command(word: str | None) -> click.Command:
    """The click command for ``word`` (see :func:`_invoked`): a group holding just that
    command, whose module alone is imported; every command for None."""
    if word is None:
        return build_command(full_app())
    if word.startswith("-"):  # --version: the root's own option, and no command
        return build_command(_app, only=word)
    for module, (_, words) in _MODULES.items():
        if word in words:
            _register(module)
    return build_command(_app, only=word)


def main() -> None:
    """Console-script entry point. Only the command being run is built (and its
    module imported): building and importing them all is most of ``planrun``'s
    start-up otherwise."""
    try:
        with paused_gc():  # importing the command's modules makes no garbage (~10% of it)
            command = _command(_invoked(sys.argv[1:]))
        command(prog_name="planrun")
    except SystemExit as done:
        leave(done)  # without the interpreter's teardown, when that is safe
    except Exception as exc:
        from ..errors import UsageError  # not at import: it loads msgspec

        if not isinstance(exc, UsageError):
            raise
        from .common import fail  # pragma: no cover - typer handles most paths

        raise SystemExit(fail(exc).exit_code) from None
