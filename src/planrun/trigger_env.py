"""What the steps of a run a trigger started see: ``PLANRUN_TRIGGER`` and friends.

``planrun serve`` gives them to the runs it starts, and ``resume`` of such a run to the
steps it runs again (from the run's stored ``trigger``), so a rerun step sees what the
first attempt saw.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .prepare import PreparedRun

__all__ = ["trigger_env", "with_trigger_env"]


def trigger_env(info: Mapping[str, Any]) -> dict[str, str]:
    """What a triggered run's steps see: ``PLANRUN_TRIGGER`` (the whole record as
    JSON), ``PLANRUN_TRIGGER_KIND``, and as they apply ``PLANRUN_TRIGGER_SLOT``,
    ``PLANRUN_TRIGGER_SHA``/``PLANRUN_TRIGGER_OLD_SHA`` and ``PLANRUN_TRIGGER_PATHS``
    (one path a line)."""
    env = {
        "PLANRUN_TRIGGER": json.dumps(dict(info), sort_keys=True),
        "PLANRUN_TRIGGER_KIND": str(info.get("kind", "")),
    }
    if info.get("slot"):
        env["PLANRUN_TRIGGER_SLOT"] = str(info["slot"])
    if info.get("sha"):
        env["PLANRUN_TRIGGER_SHA"] = str(info["sha"])
        env["PLANRUN_TRIGGER_OLD_SHA"] = str(info.get("old_sha") or "")
    if info.get("paths"):
        env["PLANRUN_TRIGGER_PATHS"] = "\n".join(str(p) for p in info["paths"])
    return env


def with_trigger_env(prepared: PreparedRun, info: Mapping[str, Any]) -> PreparedRun:
    """``prepared`` whose steps, ``for_each`` instances and handlers also get
    :func:`trigger_env` of ``info``
    (the plan's own entries of the same names win: the plan says what its steps see).
    A ``uses`` step starts no process and its ``env`` holds the child plan's
    variables: it is left as it is (else the child refuses undeclared variables)."""

    env = trigger_env(info)

    def add(rs: Any) -> Any:
        if rs.step.uses is not None:  # its env is the child's variables: not for it
            return rs
        made = rs.instantiate
        if made is not None:  # a for_each step's instances are made at run time
            return dataclasses.replace(
                rs,
                env={**env, **rs.env},
                instantiate=lambda step_id, item: add(made(step_id, item)),
            )
        return dataclasses.replace(rs, env={**env, **rs.env})

    return dataclasses.replace(
        prepared,
        steps=[add(rs) for rs in prepared.steps],
        handlers=tuple((kind, add(rs)) for kind, rs in prepared.handlers),
    )
