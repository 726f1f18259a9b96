"""Placement: can some worker satisfy each step's ``resources``? (pure)

A Dask task that asks for a resource no worker has stays pending for ever without an
error, so a run on a cluster checks every request against the workers it found before
anything runs. A request is satisfiable when ONE worker has every resource of it in
the amount asked (Dask places a task on a single worker).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .model import Plan, Step

__all__ = ["placement_problems", "unsatisfied"]

Resources = Mapping[str, float]


def placement_problems(
    plan: Plan, workers: Mapping[str, Resources]
) -> list[tuple[str, str, str, Resources]]:
    """``(json_path, step_id, message, resources)`` for every step (and run handler) of ``plan``
    (as written: a matrix step once) whose ``resources`` no worker in ``workers``
    (worker address -> its resources) can satisfy, in plan order."""
    found: list[tuple[str, str, str, Resources]] = []
    for path, step in _steps(plan):
        if step.resources and (message := unsatisfied(step.resources, workers)) is not None:
            found.append((f"{path}.resources", step.id, message, step.resources))
    return found


def _steps(plan: Plan) -> Iterator[tuple[str, Step]]:
    for index, step in enumerate(plan.steps):
        yield f"$.steps[{index}]", step
    handlers = plan.handlers
    for name in ("on_success", "on_failure", "on_cancel", "on_exit"):
        for index, step in enumerate(getattr(handlers, name)):
            yield f"$.handlers.{name}[{index}]", step


def _show(resources: Resources) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items())) or "none"


def unsatisfied(wanted: Resources, workers: Mapping[str, Resources]) -> str | None:
    """None if one worker has all of ``wanted``; else why not, naming the resource."""
    if any(all(have.get(k, 0) >= v for k, v in wanted.items()) for have in workers.values()):
        return None
    for name, amount in sorted(wanted.items()):
        most = max((have.get(name, 0.0) for have in workers.values()), default=0.0)
        if most == 0:
            return (
                f"asks for resource '{name}' ({name}={amount:g}), which no worker has "
                f"(workers offer: {_offers(workers)})"
            )
        if most < amount:
            return f"asks for {name}={amount:g}, but the most any worker has is {name}={most:g}"
    return f"asks for {_show(wanted)} together, which no single worker has"


def _offers(workers: Mapping[str, Resources]) -> str:
    names = sorted({k for have in workers.values() for k in have})
    return ", ".join(names) if names else "no resources"
