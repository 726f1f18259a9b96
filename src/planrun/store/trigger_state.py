"""``trigger_state``: the last slot each trigger of a plan fired (or skipped), so a
restarted ``planrun serve`` never fires one slot twice (schema 8)."""

from __future__ import annotations

import anyio

from ..events import utc_now
from .connection import fetch_dicts, translated
from .sqlite import SqliteStore

__all__ = ["load_trigger_state", "save_trigger_state"]

_SELECT = "SELECT trigger_key, last_slot, state FROM trigger_state WHERE plan_key = ?"
_UPSERT = """
INSERT INTO trigger_state (plan_key, trigger_key, last_slot, state, updated_at)
VALUES (:plan_key, :trigger_key, :last_slot, :state, :updated_at)
ON CONFLICT (plan_key, trigger_key) DO UPDATE SET
    last_slot = excluded.last_slot, state = excluded.state, updated_at = excluded.updated_at
"""


async def load_trigger_state(
    store: SqliteStore, plan_key: str
) -> dict[str, tuple[str | None, str | None]]:
    """trigger key -> (last slot, state) of every trigger of ``plan_key`` stored."""
    with translated("reading trigger_state"):
        rows = await fetch_dicts(store._db, _SELECT, (plan_key,))
    return {row["trigger_key"]: (row["last_slot"], row["state"]) for row in rows}


async def save_trigger_state(
    store: SqliteStore, plan_key: str, trigger_key: str, last_slot: str | None, state: str
) -> None:
    """Store the trigger's last slot (committed before the run it starts is created).
    Shielded: a cancelled await would not undo the write anyway (pitfalls §6)."""
    params = {
        "plan_key": plan_key,
        "trigger_key": trigger_key,
        "last_slot": last_slot,
        "state": state,
        "updated_at": utc_now(),
    }
    with anyio.CancelScope(shield=True), translated("writing trigger_state"):
        async with store._transaction():
            await store._db.execute(_UPSERT, params)
