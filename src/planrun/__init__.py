"""planrun: run plans — DAGs of subprocess steps — with timeouts, retries and failure
policies, every run recorded in SQLite and observable from anywhere.

The public API is what this module exports; everything else is private.
"""

from __future__ import annotations

#: Not ``typing.TYPE_CHECKING``: the CLI's entry point pauses the garbage collector
#: while it imports (cli/entry.py), and this module runs before it; ``typing`` would be
#: loaded, collected over and again, before the pause (type checkers know the name).
TYPE_CHECKING = False
if TYPE_CHECKING:  # what the type checker sees; at run time, __getattr__ imports
    from typing import Any

    from . import monitor
    from .api import AttemptResult, OutputLine, RunResult, StepResult, cancel_run, run_plan
    from .errors import (
        CancelError,
        ClusterError,
        HelperError,
        LockConflict,
        PlanError,
        PlanrunError,
        Problem,
        StoreError,
        UsageError,
    )
    from .events import (
        AttemptFinished,
        AttemptStarted,
        ConcurrencyCapped,
        Event,
        LockAcquired,
        RetryScheduled,
        RunAborting,
        RunBegan,
        RunCrashed,
        RunFinished,
        RunResumed,
        RunStarted,
        StepFinished,
    )
    from .exitcodes import ExitCode
    from .model import AttemptState, OnFailure, Plan, RunState, Step, StepState, When
    from .options import RunOptions
    from .plan import load_plan, validate

#: Where each public name lives: imported on first use (PEP 562), so that
#: ``import planrun.cli.app`` or ``planrun --version`` does not load the engine, the
#: store and the monitor it does not need (issue 16: start-up).
_LAZY = {
    "monitor": ".monitor",
    "AttemptResult": ".api",
    "OutputLine": ".api",
    "RunResult": ".api",
    "StepResult": ".api",
    "cancel_run": ".api",
    "run_plan": ".api",
    "CancelError": ".errors",
    "ClusterError": ".errors",
    "HelperError": ".errors",
    "LockConflict": ".errors",
    "PlanError": ".errors",
    "PlanrunError": ".errors",
    "Problem": ".errors",
    "StoreError": ".errors",
    "UsageError": ".errors",
    "AttemptFinished": ".events",
    "AttemptStarted": ".events",
    "ConcurrencyCapped": ".events",
    "Event": ".events",
    "LockAcquired": ".events",
    "RetryScheduled": ".events",
    "RunAborting": ".events",
    "RunBegan": ".events",
    "RunCrashed": ".events",
    "RunFinished": ".events",
    "RunResumed": ".events",
    "RunStarted": ".events",
    "StepFinished": ".events",
    "ExitCode": ".exitcodes",
    "AttemptState": ".model",
    "OnFailure": ".model",
    "Plan": ".model",
    "RunState": ".model",
    "Step": ".model",
    "StepState": ".model",
    "When": ".model",
    "RunOptions": ".options",
    "load_plan": ".plan",
    "validate": ".plan",
}


def __getattr__(name: str) -> Any:
    """Import a public name of :data:`_LAZY` when first asked for, and keep it."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = import_module(module, __name__)
    if name != module[1:]:  # a submodule (``monitor``) is the value itself
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0.dev0"

__all__ = [
    "AttemptFinished",
    "AttemptResult",
    "AttemptStarted",
    "AttemptState",
    "CancelError",
    "ClusterError",
    "ConcurrencyCapped",
    "Event",
    "ExitCode",
    "HelperError",
    "LockAcquired",
    "LockConflict",
    "OnFailure",
    "OutputLine",
    "Plan",
    "PlanError",
    "PlanrunError",
    "Problem",
    "RetryScheduled",
    "RunAborting",
    "RunBegan",
    "RunCrashed",
    "RunFinished",
    "RunOptions",
    "RunResult",
    "RunResumed",
    "RunStarted",
    "RunState",
    "Step",
    "StepFinished",
    "StepResult",
    "StepState",
    "StoreError",
    "UsageError",
    "When",
    "__version__",
    "cancel_run",
    "load_plan",
    "monitor",
    "run_plan",
    "validate",
]
