"""Run handlers, the pure parts: which lists apply to which outcome, their validation
(every problem located), their resolution, and the run summary (masked as events are)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from planrun.engine_handlers import applicable
from planrun.events import RunStarted, StepFinished, StepInfo, decode_event, encode_event
from planrun.masking import Masker, mask_event
from planrun.model import OnFailure, RunState, StepState
from planrun.plan import validate
from planrun.plan.handlers import resolve_handlers
from planrun.state import RunView, apply
from planrun.summary import summary_document

SECRET = "s3cr3t-value-42"  # noqa: S105 (a test value)


@pytest.mark.parametrize(
    ("state", "lists"),
    [
        (RunState.SUCCEEDED, ("on_success", "on_exit")),
        (RunState.FAILED, ("on_failure", "on_exit")),
        (RunState.CANCELLED, ("on_cancel", "on_exit")),
        (RunState.CRASHED, ("on_exit",)),
    ],
)
def test_which_lists_run_after_each_outcome(state: RunState, lists: tuple[str, ...]) -> None:
    assert applicable(state) == lists


def _step(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "command": "true", **fields}


def _problems(handlers: Any, steps: list[dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    doc = {"plan_id": "p", "steps": steps or [_step("a")], "handlers": handlers}
    return [(p.path, p.message) for p in validate(doc).errors]


def test_a_valid_plan_decodes_its_handlers() -> None:
    doc = {
        "plan_id": "p",
        "steps": [_step("a"), _step("b", depends_on=["a"])],
        "handlers": {
            "on_failure": [
                _step("n1", args=["${steps.b.exit_code}"]),
                _step("n2", depends_on=["n1"], args=["${steps.n1.exit_code}"]),
            ],
            "on_exit": [_step("bye")],
        },
    }
    checked = validate(doc)
    assert checked.errors == ()
    assert checked.plan is not None
    assert [s.id for s in checked.plan.handlers.on_failure] == ["n1", "n2"]
    assert [s.id for s in checked.plan.handlers.on_exit] == ["bye"]


@pytest.mark.parametrize(
    ("handlers", "steps", "expected"),
    [
        ([], None, ("$.handlers", "expected an object")),
        ({"on_exit": {}}, None, ("$.handlers.on_exit", "expected an array of steps")),
        ({"on_exit": [3]}, None, ("$.handlers.on_exit[0]", "expected an object (a step)")),
        (
            {"on_exit": [{"id": "x"}]},
            None,
            ("$.handlers.on_exit[0]", "missing required field 'command'"),
        ),
        ({"on_exit": [_step("x", when="bad")]}, None, ("$.handlers.on_exit[0].when", None)),
        ({"on_exit": [_step("a")]}, None, ("$.handlers.on_exit[0].id", "duplicate step id 'a'")),
        (
            {"on_exit": [_step("x")], "on_cancel": [_step("x")]},
            None,
            ("$.handlers.on_exit[0].id", "duplicate step id 'x'"),
        ),
        (
            {"on_exit": [_step("x", depends_on=["a"])]},
            None,
            ("$.handlers.on_exit[0].depends_on[0]", "a handler cannot depend on step 'a'"),
        ),
        (
            {"on_exit": [_step("x", depends_on=["x"])]},
            None,
            ("$.handlers.on_exit[0].depends_on[0]", "a step cannot depend on itself"),
        ),
        (
            {"on_exit": [_step("x", depends_on=["zz"])]},
            None,
            ("$.handlers.on_exit[0].depends_on[0]", "unknown dependency 'zz'"),
        ),
        (
            {"on_exit": [_step("x", depends_on=["y"]), _step("y", depends_on=["x"])]},
            None,
            ("$.handlers.on_exit[0].depends_on", "dependency cycle: x -> y -> x"),
        ),
        (
            {"on_exit": [_step("x", matrix={"v": [1]})]},
            None,
            ("$.handlers.on_exit[0].matrix", "a run handler cannot use 'matrix'"),
        ),
        (
            {"on_exit": [_step("x", args=["${NOPE}"])]},
            None,
            ("$.handlers.on_exit[0].args[0]", "variable 'NOPE' is not defined"),
        ),
        (
            {"on_exit": [_step("x", args=["${steps.zz.exit_code}"])]},
            None,
            ("$.handlers.on_exit[0].args[0]", "names an unknown step 'zz'"),
        ),
        (
            {"on_exit": [_step("x", command="${steps.a.exit_code}")]},
            None,
            ("$.handlers.on_exit[0].command", "a step's results can be used only"),
        ),
        (
            {"on_exit": [_step("x")]},
            [_step("a", depends_on=["x"])],
            ("$.steps[0].depends_on[0]", "'x' is a run handler (on_exit)"),
        ),
        (
            {"on_exit": [_step("x")]},
            [_step("a", args=["${steps.x.exit_code}"])],
            ("$.steps[0].args[0]", "'x' is a run handler"),
        ),
    ],
)
def test_handler_problems_are_located(
    handlers: Any, steps: list[dict[str, Any]] | None, expected: tuple[str, str | None]
) -> None:
    found = _problems(handlers, steps)
    path, message = expected
    assert any(p == path and (message is None or message in m) for p, m in found), found


def test_a_handler_may_not_depend_on_another_lists_handler() -> None:
    found = _problems({"on_failure": [_step("n")], "on_exit": [_step("x", depends_on=["n"])]})
    assert (
        "$.handlers.on_exit[0].depends_on[0]",
        "'n' is a handler of on_failure; a handler "
        "can depend only on handlers of its own list (on_exit)",
    ) in found


def test_handlers_never_abort_when_resolved() -> None:
    plan = validate({"plan_id": "p", "steps": [_step("a")], "handlers": {"on_exit": [_step("x")]}})
    assert plan.plan is not None
    ((kind, rs),) = resolve_handlers(plan.plan, {}, Path("/tmp"))
    assert kind == "on_exit"
    assert rs.step.on_failure is OnFailure.SKIP_DEPENDENTS
    assert rs.index == 1


def test_a_run_started_without_handler_fields_still_decodes() -> None:
    """Events written before handlers existed: every step is a step of the DAG."""
    body = (
        b'{"type":"run_started","run_id":"r","seq":1,"ts":"t","plan_id":"p","plan_path":null,'
        b'"variables":{},"max_concurrency":1,"steps":[{"id":"a","name":"a","depends_on":[],'
        b'"retries":0,"critical":true,"first_attempt":1}],"pid":1}'
    )
    event = decode_event(body)
    assert isinstance(event, RunStarted)
    assert event.steps[0].handler is None


def _view(masker: Masker) -> RunView:
    started = RunStarted(
        run_id="r",
        seq=1,
        ts="t1",
        plan_id="p",
        plan_path=None,
        variables={},
        max_concurrency=1,
        steps=[
            StepInfo("build", "build", [], 0, True),
            StepInfo("notify", "notify", [], 0, True, handler="on_failure"),
        ],
        pid=1,
    )
    finished = StepFinished(
        run_id="r",
        seq=2,
        ts="t2",
        step_id="build",
        state=StepState.FAILED,
        attempts=1,
        exit_code=2,
        reason=f"wrote {SECRET}",
        outputs={"token": f"x{SECRET}y", "plain": "ok"},
    )
    view = None
    for event in (started, finished):
        # As the run's sink does: masked first, then folded (and recorded).
        masked = mask_event(event, masker)
        assert decode_event(encode_event(masked)) == masked
        view = apply(view, masked)
    assert view is not None
    return view


def test_the_summary_is_masked_as_events_are() -> None:
    view = _view(Masker([SECRET]))
    doc = summary_document(view, RunState.FAILED, 1, "step 'build' failed", ["build"])
    text = msgspec.json.encode(doc).decode()
    assert SECRET not in text
    assert doc["steps"]["build"]["outputs"] == {"token": "x***y", "plain": "ok"}
    assert doc["steps"]["build"]["reason"] == "wrote ***"


def test_the_summary_lists_steps_and_handlers_apart() -> None:
    view = _view(Masker([]))
    doc = summary_document(view, RunState.FAILED, 1, "a critical step failed", ["build"])
    assert doc["run_id"] == "r"
    assert doc["plan_id"] == "p"
    assert (doc["state"], doc["exit_code"], doc["reason"]) == (
        "failed",
        1,
        "a critical step failed",
    )
    assert doc["failed_steps"] == ["build"]
    assert list(doc["steps"]) == ["build"]
    assert doc["steps"]["build"]["state"] == "failed"
    assert doc["steps"]["build"]["exit_code"] == 2
    assert doc["steps"]["build"]["attempts"] == 0  # no attempt events in this view
    assert doc["handlers"] == {
        "notify": {
            "name": "notify",
            "state": "pending",
            "exit_code": None,
            "reason": None,
            "outputs": {},
            "attempts": 0,
            "started_at": None,
            "ended_at": None,
            "handler": "on_failure",
        }
    }
