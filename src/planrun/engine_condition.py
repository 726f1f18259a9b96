"""A step's ``if``, for the engine: evaluated once its trigger rule lets it run.

Kept out of ``planrun.engine`` (which only asks :func:`condition_false`): the values a
condition reads of other steps come from the scheduler's nodes, as ``${steps...}``
references do (``engine_attempts.lookup``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .engine_nodes import Node
from .model import StepState
from .plan import ResolvedStep

if TYPE_CHECKING:
    from .expr import Value

__all__ = ["condition_false"]


def condition_false(
    nodes: Sequence[Node], index: Mapping[str, int], rs: ResolvedStep
) -> str | None:
    """The skip reason (``condition false: <expr>``) when ``rs`` has an ``if`` that
    does not hold now, else None (no condition, or it holds)."""
    condition = rs.condition
    if condition is None:
        return None

    def step_value(step_id: str, what: str, key: str | None) -> Value:
        at = index.get(step_id)
        if at is None:  # validation allows only ancestors; never fail the run on it
            return None
        node = nodes[at]
        if what == "state":
            return node.state.value
        if what == "exit_code":
            return node.exit_code
        if node.state is not StepState.SUCCEEDED or key is None:
            return None  # a missing output is null
        return node.outputs.get(key) if node.outputs else None

    return None if condition.holds(step_value) else f"condition false: {condition.text}"
