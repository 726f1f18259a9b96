"""Dynamic fan-out in the engine: a ``for_each`` step is a *group* node.

When its trigger rule lets it start, its template is rendered (or, on a resume whose
producers are kept, its recorded items are used again) and parsed as a JSON array
(:mod:`planrun.fanout`); one instance node per item joins the scheduler's nodes —
each a step like any other, started through the same path (concurrency, retries,
timeouts, outputs, logs) — and ``steps_expanded`` records the items and the
instances. The group ends when its last instance does: ``succeeded`` if none failed,
``failed`` otherwise ("2 of 5 instances failed"); its dependents wait for it. The
instances' own ``on_failure``/``critical`` decide an abort, as for any step, so the
group's end never aborts the run itself.

Called by the scheduler task only (like every mutation of the engine's nodes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import fanout, policy
from .engine_attempts import Unbound
from .engine_nodes import Node
from .engine_outcome import step_info
from .events import StepInfo, StepsExpanded
from .model import StepState
from .subst import StepRef, render

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["expand", "instance_done"]


def expand(engine: Engine, index: int) -> None:
    """The for_each step ``index`` may start: add its instances, or fail it."""
    node = engine._nodes[index]
    items = _items(engine, node)
    if isinstance(items, str):
        engine._fail_step(index, StepState.FAILED, None, items)
        return
    recorded = node.rs.step.id in engine._cfg.expanded and _producers_kept(engine, node)
    node.state = StepState.RUNNING
    infos: list[StepInfo] = []
    kept: dict[str, StepState] = {}
    failing: list[tuple[int, str]] = []
    names = fanout.item_names(node.rs.step)
    masker = engine._cfg.masker
    secret = (lambda text: masker.text(text) != text) if masker else None
    ids = fanout.instance_ids(node.rs.step.id, items, secret)
    for position, (iid, item) in enumerate(zip(ids, items, strict=True)):
        values = fanout.item_values(item)
        child = Node(node.rs.instance(iid, values), list(node.deps), group=index)
        child_index = len(engine._nodes)
        engine._nodes.append(child)
        engine._index[iid] = child_index
        if node.instances is None:
            node.instances = []
        node.instances.append(child_index)
        if _restore(engine, child, keep=recorded):
            kept[iid] = child.state
        else:
            node.left += 1
            engine._unfinished += 1
            missing = fanout.missing_keys(names, values)
            if missing:
                key = missing[0].partition(".")[2]
                failing.append((child_index, _no_key(position, item, key)))
            else:
                engine._check.append(child_index)
        infos.append(step_info(child))
    engine._emit(StepsExpanded, step_id=node.rs.step.id, items=items, steps=infos, kept=kept)
    for child_index, reason in failing:
        engine._fail_step(child_index, StepState.FAILED, None, reason)
    if node.left == 0 and not node.state.terminal:
        _finish_group(engine, index)


def instance_done(engine: Engine, group: int) -> None:
    """An instance of the for_each step ``group`` ended: end the step after the last."""
    node = engine._nodes[group]
    node.left -= 1
    if node.left == 0 and not node.state.terminal:
        _finish_group(engine, group)


def _finish_group(engine: Engine, index: int) -> None:
    node = engine._nodes[index]
    states = [engine._nodes[i].state for i in node.instances or ()]
    failed = sum(1 for s in states if s.failed)
    if failed:
        reason = f"{failed} of {len(states)} instances failed"
        engine._finish_step(index, StepState.FAILED, reason=reason)
    elif StepState.CANCELLED in states:
        reason = engine._aborting or engine._cancel_reason
        engine._finish_step(index, StepState.CANCELLED, reason=reason)
    else:
        engine._finish_step(
            index, StepState.SUCCEEDED, reason=None if states else "no items", outputs={}
        )


def _items(engine: Engine, node: Node) -> list[Any] | str:
    """The step's items, or why there are none (the reason it fails with)."""
    step = node.rs.step
    recorded = engine._cfg.expanded.get(step.id)
    if recorded is not None and _producers_kept(engine, node):
        return list(recorded)  # a resume: the items it ran with, not a rerun producer's
    assert node.rs.for_each is not None
    try:
        text = render(node.rs.for_each, engine._lookup)
    except Unbound as exc:
        return f"for_each: {exc}"
    try:
        return fanout.parse_items(text, _what(node.rs.for_each), step.max_items)
    except fanout.FanoutError as exc:
        return str(exc)


def _producers_kept(engine: Engine, node: Node) -> bool:
    """Every step the for_each template refers to kept its result (a resume)."""
    refs = [p for p in node.rs.for_each or () if isinstance(p, StepRef)]
    return all(engine._nodes[engine._index[r.step_id]].kept for r in refs)


def _what(pieces: tuple[str | StepRef, ...]) -> str:
    """Where a for_each value comes from, for its errors."""
    if len(pieces) == 1 and isinstance(pieces[0], StepRef) and pieces[0].key is not None:
        return f"output '{pieces[0].key}' of step '{pieces[0].step_id}'"
    return "the value"


def _no_key(position: int, item: Any, key: str) -> str:
    shown = fanout.item_text(item)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    kind = "an object" if isinstance(item, dict) else "not an object"
    what = f"has no key '{key}'" if isinstance(item, dict) else f"is {kind}"
    return f"item {position} {what}, but the step uses ${{item.{key}}}: {shown}"


def _restore(engine: Engine, child: Node, *, keep: bool) -> bool:
    """A resume: number the instance's attempts after its earlier ones and, if the
    items are the recorded ones and it is not to rerun, keep its result. True if kept."""
    prior = engine._cfg.prior.get(child.rs.step.id)
    if prior is None:
        return False
    child.base = child.attempts = prior.attempts
    rerun = engine._cfg.rerun
    if not keep or rerun is None or child.rs.step.id in rerun:
        return False
    child.kept = True
    child.state = prior.state
    child.exit_code = prior.exit_code
    child.outputs = dict(prior.outputs)
    child.outcome = policy.dep_outcome(child.rs.step, prior.state)
    return True
