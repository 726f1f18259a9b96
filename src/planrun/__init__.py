"""planrun: run plans — DAGs of subprocess steps — with timeouts, retries and failure
policies, every run recorded in SQLite and observable from anywhere.

The public API is what this module exports; everything else is private.
"""

from . import monitor
from .api import AttemptResult, OutputLine, RunResult, StepResult, cancel_run, run_plan
from .errors import (
    CancelError,
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

__version__ = "0.1.0.dev0"

__all__ = [
    "AttemptFinished",
    "AttemptResult",
    "AttemptStarted",
    "AttemptState",
    "CancelError",
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
