"""The checks of the run-time knobs of a step: ``pool``, ``skip_exit_codes`` and
``stop_signal`` (and :func:`stop_signal`, the signal a step's name means).

Each check returns the problems it found (empty when none) and never raises. The
handlers' steps (``handlers.on_*``) are checked like the DAG's steps.
"""

from __future__ import annotations

import difflib
import re
import signal
from collections.abc import Iterator, Mapping

from ..errors import Problem
from ..model import Plan, Step
from .checks import Indexed

__all__ = ["check_rules", "signal_name", "stop_signal"]

#: Signals a process cannot catch: asking with them gives it no chance to stop.
_UNCATCHABLE = (signal.SIGKILL, signal.SIGSTOP)
_REALTIME = re.compile(r"^SIGRT(MIN|MAX)([+-]\d+)?\Z")


def _named(text: str) -> str:
    """``INT`` and ``SIGINT`` are the same name."""
    return text if text.startswith("SIG") else "SIG" + text


def signal_name(name: str | None) -> str:
    """How a step's ``stop_signal`` is shown: ``SIGINT`` for ``INT``, ``SIGTERM`` for
    None."""
    return "SIGTERM" if name is None else _named(name)


def stop_signal(name: str | None) -> int:
    """The number of the signal a step's ``stop_signal`` names (``SIGTERM`` when None;
    ``SIGRTMIN+N`` / ``SIGRTMAX-N`` too, which have no name of their own in
    ``signal.Signals``).

    ``ValueError`` for a name the ``signal`` module does not know (validation
    reports that first, with a location).
    """
    text = signal_name(name)
    found = _REALTIME.match(text)
    if found is not None:
        base = signal.SIGRTMIN if found[1] == "MIN" else signal.SIGRTMAX
        number = int(base) + int(found[2] or 0)
        if not signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            raise ValueError(f"{name} is outside SIGRTMIN..SIGRTMAX")
        return number
    if text not in signal.Signals.__members__:
        raise ValueError(f"unknown signal {name}")
    return int(signal.Signals[text])


def _steps(plan: Plan, indexed: Indexed) -> Iterator[tuple[str, Step]]:
    """Every step that can run, with its JSON path: the DAG's, then the handlers'."""
    for i, step in indexed:
        yield f"$.steps[{i}]", step
    for kind in ("on_success", "on_failure", "on_cancel", "on_exit"):
        for j, step in enumerate(getattr(plan.handlers, kind)):
            yield f"$.handlers.{kind}[{j}]", step


def check_rules(plan: Plan, indexed: Indexed) -> list[Problem]:
    """Unknown pools, exit codes both success and skip, bad stop signals."""
    problems: list[Problem] = []
    # Only the steps that have a field these rules look at (most have none).
    having = [
        (i, s)
        for i, s in indexed
        if s.pool is not None or s.skip_exit_codes or s.stop_signal is not None
    ]
    for path, step in _steps(plan, having):
        problems += _check_pool(path, step, plan.globals.pools)
        problems += _check_skip_codes(path, step)
        problems += _check_stop_signal(path, step)
    return problems


def _check_pool(path: str, step: Step, pools: Mapping[str, int]) -> list[Problem]:
    if step.pool is None or step.pool in pools:
        return []
    close = difflib.get_close_matches(step.pool, list(pools), n=1)
    if close:
        hint = f"did you mean '{close[0]}'?"
    else:
        hint = f'declare it in globals.pools, e.g. "pools": {{"{step.pool}": 2}}'
    return [Problem(f"{path}.pool", f"unknown pool '{step.pool}'", step.id, hint)]


def _check_skip_codes(path: str, step: Step) -> list[Problem]:
    problems: list[Problem] = []
    for j, code in enumerate(step.skip_exit_codes):
        where = f"{path}.skip_exit_codes[{j}]"
        if code in step.success_exit_codes:
            problems.append(
                Problem(
                    where,
                    f"exit code {code} is in both success_exit_codes and skip_exit_codes",
                    step.id,
                    "an exit code means either success or skip: remove it from one list",
                )
            )
        elif step.retry_on_exit_codes is not None and code in step.retry_on_exit_codes:
            problems.append(
                Problem(
                    where,
                    f"exit code {code} is in skip_exit_codes: it ends the step skipped and "
                    "is never retried",
                    step.id,
                    "remove it from retry_on_exit_codes",
                    warning=True,
                )
            )
    return problems


def _check_stop_signal(path: str, step: Step) -> list[Problem]:
    if step.stop_signal is None:
        return []
    where = f"{path}.stop_signal"
    try:
        sig = stop_signal(step.stop_signal)
    except ValueError as exc:
        names = [n for n in signal.Signals.__members__ if n.startswith("SIG")]
        close = difflib.get_close_matches(_named(step.stop_signal), names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "e.g. SIGINT, SIGQUIT or SIGHUP"
        return [Problem(where, str(exc), step.id, hint)]
    if sig in _UNCATCHABLE:
        return [
            Problem(
                where,
                f"{signal.Signals(sig).name} cannot be caught, so it gives the step no "
                "chance to stop",
                step.id,
                "use a signal the step can handle, e.g. SIGINT or SIGTERM; SIGKILL follows "
                "after kill_grace_sec anyway",
            )
        ]
    return []
