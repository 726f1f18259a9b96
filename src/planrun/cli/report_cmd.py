"""``planrun report``: one run as a single self-contained HTML file (see
:mod:`planrun.ui.report`), to attach to a CI job or a ticket.

The output's directory is checked before the store is read; the file is written
atomically (a temporary file renamed over it), so a failure leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from .. import monitor
from ..errors import PlanrunError
from .common import StateDirOpt, fail
from .graph_cmd import check_output_dir, write_output
from .observe import RunIdArg, no_such_run

__all__ = ["register_report_command"]


async def _build(state_dir: Path | None, run_id: str) -> str:
    """The report's HTML (``UsageError`` with a hint for an unknown run)."""
    from ..ui.report import load_report, render_report  # planrun.ui loads only here

    async with monitor.open_session(state_dir) as session:
        report = await load_report(session, run_id)
        if report is None:
            raise await no_such_run(session, run_id)
    return render_report(report)


def report(
    run_id: RunIdArg,
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", metavar="FILE", help="The HTML file to write.", show_default=False
        ),
    ],
    state_dir: StateDirOpt = None,
) -> None:
    """Write one run as a self-contained HTML file.

    Graph, timeline, steps and the failed steps' log tails; it opens from disk."""
    try:
        check_output_dir(output)
        html = anyio.run(_build, state_dir, run_id, backend="asyncio")
        write_output(output, html)
    except PlanrunError as exc:
        raise fail(exc) from None


def register_report_command(app: typer.Typer) -> None:
    """Add ``report`` to the ``planrun`` app."""
    app.command()(report)
