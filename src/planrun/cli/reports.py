"""What a run leaves behind for CI once it has finished: the ``--junit`` report and,
in GitHub Actions mode, the annotations and the job summary (``cli/junit.py``,
``cli/github.py``). ``app.py`` builds a :class:`RunReports` from the options before
the run starts (so a bad ``--junit`` path costs no run) and calls :meth:`finish` at
the end, whatever the run's outcome (failed, cancelled by Ctrl-C, ...)."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from ..model import RunState, StepState
from ..prepare import PreparedRun
from ..state import RunView, StepView
from .ci import CiChoice, CiMode, detect_ci
from .common import err_console

__all__ = ["RunReports", "unstarted_view"]


def unstarted_view(prepared: PreparedRun, run_id: str | None) -> RunView:
    """The view of a run cancelled before it started (no event was recorded): every
    step cancelled before it started."""
    steps = {
        s.id: StepView(s.id, s.display_name, s.retries + 1, s.critical, StepState.CANCELLED)
        for s in prepared.plan.steps
    }
    return RunView(
        run_id=run_id or "", plan_id=prepared.plan.plan_id, state=RunState.CANCELLED, steps=steps
    )


class RunReports(msgspec.Struct, frozen=True):
    """The reports one ``run``/``resume`` writes at its end."""

    ci: CiMode = CiMode.NONE
    junit: Path | None = None
    #: stdout carries JSON (``--json``): workflow commands go to stderr, which GitHub
    #: reads for them too.
    json_stdout: bool = False

    @classmethod
    def from_options(cls, ci: CiChoice, junit: Path | None, *, json_stdout: bool) -> RunReports:
        """From ``--ci`` and ``--junit``; a ``UsageError`` for a path no report can be
        written to."""
        path = None
        if junit is not None:
            from .junit import check_junit_path  # the report writers load only if asked

            path = check_junit_path(junit)
        return cls(detect_ci(ci), path, json_stdout)

    def finish(self, view: RunView, prepared: PreparedRun, wall: float) -> None:
        """Write every report for the finished run ``view``. A report that cannot be
        written is a warning on stderr: the run's exit code stays the run's."""
        masker = prepared.masker
        if self.ci is CiMode.GITHUB:
            from .github import error_commands, summary_markdown, write_summary

            out = sys.stderr if self.json_stdout else sys.stdout
            out.writelines(error_commands(view, masker))
            out.flush()
            warning = write_summary(summary_markdown(view, masker, wall))
            if warning:
                err_console().print(warning, markup=False, style="yellow")
        if self.junit is not None:
            from .junit import junit_xml, write_junit

            try:
                write_junit(self.junit, junit_xml(view, masker, wall))
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
                err_console().print(
                    f"planrun: warning: cannot write the JUnit report to {self.junit}: {why}",
                    markup=False,
                    style="yellow",
                )
