"""Placement (issue 17): a step's ``resources`` checked against the workers' before a
Dask run starts; each unsatisfiable request named with its JSON path, step and
resource."""

from __future__ import annotations

from typing import Any

import msgspec

from planrun.model import Plan
from planrun.placement import placement_problems


def _plan(**extra: Any) -> Plan:
    steps = [
        {"id": "prep", "command": "true"},
        {"id": "train", "command": "true", "resources": {"gpu": 1}},
        {"id": "big", "command": "true", "resources": {"gpu": 1, "mem": 64}},
    ]
    return msgspec.convert({"plan_id": "p", "steps": steps, **extra}, Plan)


def test_a_worker_with_everything_a_step_asks_for_satisfies_it() -> None:
    workers = {"tcp://a:1": {"gpu": 2.0, "mem": 128.0}, "tcp://b:1": {}}
    assert placement_problems(_plan(), workers) == []


def test_a_resource_no_worker_has_is_named_with_its_path_and_step() -> None:
    found = placement_problems(_plan(), {"tcp://a:1": {"mem": 128.0}})
    assert [(path, step) for path, step, _, _ in found] == [
        ("$.steps[1].resources", "train"),
        ("$.steps[2].resources", "big"),
    ]
    assert "resource 'gpu' (gpu=1), which no worker has (workers offer: mem)" in found[0][2]


def test_too_little_of_a_resource_says_the_most_there_is() -> None:
    found = placement_problems(_plan(), {"tcp://a:1": {"gpu": 1.0, "mem": 32.0}})
    assert [(p, s, m) for p, s, m, _ in found] == [
        ("$.steps[2].resources", "big", "asks for mem=64, but the most any worker has is mem=32")
    ]


def test_resources_split_across_workers_do_not_satisfy_one_step() -> None:
    """Dask places a task on one worker: gpu on one and mem on another is not enough."""
    found = placement_problems(_plan(), {"tcp://a:1": {"gpu": 1.0}, "tcp://b:1": {"mem": 64.0}})
    assert [(p, m) for p, _, m, _ in found] == [
        ("$.steps[2].resources", "asks for gpu=1, mem=64 together, which no single worker has")
    ]


def test_run_handlers_are_checked_too() -> None:
    handler = {"id": "notify", "command": "true", "resources": {"slack": 1}}
    found = placement_problems(_plan(handlers={"on_failure": [handler]}), {"w": {"gpu": 9.0}})
    paths = [path for path, *_ in found]
    assert "$.handlers.on_failure[0].resources" in paths
