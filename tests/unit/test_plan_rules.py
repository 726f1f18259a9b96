"""The checks of ``pool``, ``skip_exit_codes`` and ``stop_signal``, and the signal a
``stop_signal`` name means."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from planrun.errors import Problem
from planrun.plan import validate
from planrun.plan.rules import stop_signal


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(None, signal.SIGTERM, id="default"),
        pytest.param("SIGINT", signal.SIGINT, id="full-name"),
        pytest.param("INT", signal.SIGINT, id="without-sig"),
        pytest.param("SIGQUIT", signal.SIGQUIT, id="quit"),
        pytest.param("HUP", signal.SIGHUP, id="hup"),
        pytest.param("SIGUSR1", signal.SIGUSR1, id="usr1"),
        pytest.param("SIGRTMIN", signal.SIGRTMIN, id="rtmin"),
        pytest.param("SIGRTMIN+2", signal.SIGRTMIN + 2, id="rtmin-plus"),
        pytest.param("RTMAX-1", signal.SIGRTMAX - 1, id="rtmax-minus"),
    ],
)
def test_stop_signal_names(name: str | None, expected: int) -> None:
    """A name with or without ``SIG``, real-time ones with an offset."""
    assert stop_signal(name) == expected


@pytest.mark.parametrize("name", ["SIGFOO", "SIGRTMAX+1", "SIGRTMIN-1", "SIG"])
def test_unknown_stop_signals_raise(name: str) -> None:
    """Names the signal module does not know (or out of the real-time range)."""
    with pytest.raises(ValueError, match=name.replace("+", r"\+")):
        stop_signal(name)


def _problems(step: dict[str, Any], **plan: Any) -> list[Problem]:
    doc = {"plan_id": "p", "steps": [{"id": "a", "command": "true", **step}], **plan}
    return list(validate(doc).problems)


def _one(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_knobs_have_no_problems() -> None:
    """A known pool, distinct skip codes and a catchable signal are fine."""
    step = {"pool": "db", "skip_exit_codes": [3], "stop_signal": "INT"}
    assert _problems(step, globals={"pools": {"db": 1}}) == []


def test_unknown_pool_without_pools_hints_to_declare_it() -> None:
    """No close pool: the hint shows how to declare one."""
    problem = _one(_problems({"pool": "db"}))
    assert (problem.path, problem.step_id) == ("$.steps[0].pool", "a")
    assert problem.hint == 'declare it in globals.pools, e.g. "pools": {"db": 2}'


def test_skip_code_also_retried_is_a_warning() -> None:
    """A skip code in retry_on_exit_codes: a warning, not an error."""
    problem = _one(_problems({"skip_exit_codes": [3], "retry_on_exit_codes": [3]}))
    assert problem.warning
    assert problem.path == "$.steps[0].skip_exit_codes[0]"


def test_skip_code_zero_clashes_with_the_default_success_code() -> None:
    """0 is a success code by default: listing it as a skip code is an error."""
    problem = _one(_problems({"skip_exit_codes": [0]}))
    assert not problem.warning
    assert "exit code 0 is in both" in problem.message


def test_handler_steps_are_checked_too() -> None:
    """A handler's step with a bad stop signal or pool is reported at its own path."""
    handlers = {"on_failure": [{"id": "h", "command": "true", "stop_signal": "KILL"}]}
    problem = _one(_problems({}, handlers=handlers))
    assert (problem.path, problem.step_id) == ("$.handlers.on_failure[0].stop_signal", "h")
    assert "SIGKILL cannot be caught" in problem.message
