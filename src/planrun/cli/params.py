"""The options and arguments several commands share, as typer annotations, and the
choices they take: kept apart from the code that acts on them, so that declaring the
commands (``planrun -h``, ``--version``) imports typer and the standard library only.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..paths import STATE_DIR_ENV

__all__ = [
    "ColorChoice",
    "ColorOpt",
    "ExecutorChoice",
    "ExecutorOpt",
    "JsonOpt",
    "OutputChoice",
    "OutputOpt",
    "ResumePlanOpt",
    "SchedulerOpt",
    "StateDirOpt",
]

StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        envvar=STATE_DIR_ENV,
        metavar="DIR",
        show_default=False,
        help="Where runs are stored [default: the nearest .planrun here or above, else ./.planrun]",
    ),
]


class ColorChoice(StrEnum):
    """What ``--color`` accepts."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


ColorOpt = Annotated[
    ColorChoice,
    typer.Option(
        "--color",
        metavar="WHEN",
        show_default=False,
        help="Colour: auto (a terminal, unless NO_COLOR; FORCE_COLOR forces it), always, never.",
        case_sensitive=False,
    ),
]


class OutputChoice(StrEnum):
    """What ``--output`` accepts."""

    AUTO = "auto"
    PREFIXED = "prefixed"
    GROUPED = "grouped"
    QUIET = "quiet"


OutputOpt = Annotated[
    OutputChoice,
    typer.Option(
        "--output",
        metavar="MODE",
        help="Step output while running (auto, prefixed, grouped, quiet): prefixed "
        "(each line as 'step | line'), grouped (one block per attempt when it ends), "
        "quiet (none). Default: the live view "
        "shows each running step's last line on a terminal; grouped on GitHub Actions, "
        "prefixed elsewhere.",
        case_sensitive=False,
        show_default=False,
    ),
]


#: ``resume --plan``: the plan again, for a run whose file is gone or that read stdin.
ResumePlanOpt = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        metavar="FILE",
        help="The plan (a file, or - for stdin) when the run's file is gone or it came "
        "from stdin; it must be the run's plan (else --allow-changed).",
        show_default=False,
    ),
]


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON for programs (see README: JSON output).")
]


class ExecutorChoice(StrEnum):
    """What ``--executor`` accepts (``planrun.options.ExecutorKind``'s values)."""

    LOCAL = "local"
    DASK = "dask"


ExecutorOpt = Annotated[
    ExecutorChoice,
    typer.Option(
        "--executor",
        metavar="KIND",
        help="Where steps run: local (subprocesses here) or dask (a Dask cluster: "
        "--scheduler, else $PLANRUN_DASK_SCHEDULER, else a local cluster started for "
        "the run; needs pip install 'planrun[dask]').",
        case_sensitive=False,
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="The Dask scheduler to run on, e.g. tcp://HOST:8786 (with --executor dask; "
        "default $PLANRUN_DASK_SCHEDULER).",
        show_default=False,
    ),
]
