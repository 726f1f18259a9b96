"""Rows of the run store (dicts by column name) as the records the library returns.

Rows carry extra columns (``run_id``, ``position``, ...): msgspec ignores what a
record does not have. The JSON columns are decoded here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..records import AttemptRecord, RunRecord, StepRecord, duration_between

__all__ = ["attempt_record", "run_record", "step_record"]


def run_record(row: dict[str, Any]) -> RunRecord:
    """A row of :data:`sql.SELECT_RUNS` as a record."""
    derived = {
        "variables": msgspec.json.decode(row["variables"]),
        "secret_names": msgspec.json.decode(row["secret_names"]),
        "trigger": _decode_json(row.get("trigger")),
        "duration_sec": duration_between(row["started_at"], row["ended_at"]),
    }
    return msgspec.convert(row | derived, RunRecord)


def attempt_record(row: dict[str, Any]) -> AttemptRecord:
    """A row of the ``attempts`` table as a record."""
    return msgspec.convert(row, AttemptRecord)


def step_record(
    row: dict[str, Any], attempts: list[AttemptRecord], handler: str | None = None
) -> StepRecord:
    """A row of the ``steps`` table, with its ``attempts`` (and its handler list, for a
    run handler), as a record."""
    derived = {
        "handler": handler,
        "duration_sec": duration_between(row["started_at"], row["ended_at"]),
        "attempts": attempts,
        "outputs": _decode_json(row["outputs"]),
        "masked_outputs": _decode_json(row["masked_outputs"]) or [],
    }
    return msgspec.convert(row | derived, StepRecord)


def _decode_json(text: str | None) -> Any:
    return msgspec.json.decode(text) if text is not None else None
