"""How a run begins and ends, as the engine records it: the fields of its first event
and its :class:`Outcome` (state, exit code, reason) from the steps' final states.

Pure functions over the engine's nodes; ``planrun.engine`` re-exports :class:`Outcome`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import msgspec

from .engine_nodes import EngineConfig, Node
from .events import StepInfo
from .exitcodes import ExitCode
from .model import RunState, StepState

__all__ = ["Outcome", "failed_steps", "run_outcome", "start_fields", "step_info"]

_DONE_OK = (StepState.SUCCEEDED, StepState.SKIPPED)


class Outcome(msgspec.Struct, frozen=True):
    """How the run ended (the last event also says so)."""

    state: RunState
    exit_code: int
    reason: str | None


def step_info(node: Node) -> StepInfo:
    """How ``run_started`` (or ``steps_expanded``) announces ``node``'s step."""
    step = node.rs.step
    return StepInfo(
        step.id,
        step.display_name,
        list(step.depends_on),
        step.retries,
        step.critical,
        node.base + 1,
        node.handler,
    )


def start_fields(cfg: EngineConfig, nodes: Sequence[Node]) -> dict[str, Any]:
    """The fields ``run_started`` and ``run_resumed`` share."""
    return {
        "plan_id": cfg.plan_id,
        "plan_path": cfg.plan_path,
        "variables": cfg.variables,
        "max_concurrency": cfg.max_concurrency,
        "steps": [step_info(n) for n in nodes],
        "pid": os.getpid(),
        "executor": cfg.executor_name,
    }


def failed_steps(nodes: Sequence[Node]) -> list[str]:
    """The ids of the steps that ended failed or timed out, in plan order (run
    handlers never count)."""
    return [n.rs.step.id for n in nodes if n.state.failed and n.handler is None]


def run_outcome(nodes: Sequence[Node], *, deadline_hit: bool, aborting: str | None) -> Outcome:
    """The outcome of a run whose every step is terminal (it was not cancelled).

    The deadline wins (exit 124); then a failed critical step; then a critical step a
    resume left unsuccessful (``--only``: the run is not a success); else success.
    """
    failed = [n for n in nodes if n.state.failed and n.handler is None]
    # --only leaves other unsuccessful steps as they were: the run is not a success.
    left = [
        n
        for n in nodes
        if n.kept and n.rs.step.critical and n.state not in _DONE_OK and not n.state.failed
    ]
    if deadline_hit:
        return Outcome(RunState.FAILED, ExitCode.DEADLINE, aborting)
    if any(n.rs.step.critical for n in failed):
        return Outcome(RunState.FAILED, ExitCode.FAILED, aborting or "a critical step failed")
    if left:
        step = left[0].rs.step.id
        return Outcome(
            RunState.FAILED, ExitCode.FAILED, f"step '{step}' is {left[0].state.value} (not rerun)"
        )
    return Outcome(RunState.SUCCEEDED, ExitCode.OK, None)
