"""A big run's page in pieces: the step table paged, the graph and its levels on request.

A 10,000-step run page drawn whole was 9 MB of HTML and 195,000 DOM elements (3.6 s
to ``DOMContentLoaded`` in Chromium). So the page holds the first :data:`FIRST_ROWS`
steps plus every failed or running one further down (what an incident needs first),
and a ``tr#steps-more`` row the script watches: scrolled into view, it fetches the next
:data:`PAGE_ROWS` rows (``/runs/ID/steps?offset=N``, :func:`rows_page`) as HTML drawn
here, by the same :func:`planrun.ui.pages.step_row` as the first ones.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from .. import monitor
from ..errors import NoRunStore
from ..events import event_type
from .data import plan_deps, step_summary

__all__ = [
    "EVENTS_PAGE",
    "FIRST_ROWS",
    "PAGE_ROWS",
    "event_items",
    "events_before",
    "first_rows",
    "graph_inputs",
    "rows_page",
    "step_rows",
]

#: Steps in the table as the page loads (plus the failed and running ones after them).
FIRST_ROWS = 200
#: Steps fetched per scroll.
PAGE_ROWS = 500
#: Events listed per "show more" of a run page's event list.
EVENTS_PAGE = 200
#: Steps pinned into the first page wherever they are in the plan.
PINNED = frozenset({"failed", "timed_out", "crashed", "running"})
COLUMNS = 7
#: Draws one step's row (:func:`planrun.ui.pages.step_row`, passed in: pages imports this).
RowFn = Callable[[dict[str, Any]], str]


def _more(offset: int, total: int) -> str:
    """The row that asks for the rows from ``offset`` (none when all are shown)."""
    if offset >= total:
        return ""
    return (
        f'<tr class="more" id="steps-more" data-next="{offset}" data-total="{total}">'
        f'<td colspan="{COLUMNS}">{offset} of {total} steps shown · more load as you scroll'
        "</td></tr>"
    )


def first_rows(steps: list[dict[str, Any]], step_row: RowFn) -> str:
    """The step table's first rows: the first :data:`FIRST_ROWS` steps, then the failed
    and running steps after them (``tr.pinned``), then the "more" row."""
    head = "".join(step_row(s) for s in steps[:FIRST_ROWS])
    pinned = "".join(
        step_row(s).replace('class="step"', 'class="step pinned"', 1)
        for s in steps[FIRST_ROWS:]
        if s["state"] in PINNED
    )
    return head + pinned + _more(min(FIRST_ROWS, len(steps)), len(steps))


def rows_page(
    steps: list[dict[str, Any]], offset: int, step_row: RowFn, limit: int = PAGE_ROWS
) -> str:
    """The rows of ``steps[offset:offset + limit]`` and the "more" row after them."""
    offset = max(0, offset)
    chunk = steps[offset : offset + max(1, min(limit, PAGE_ROWS))]
    return "".join(step_row(s) for s in chunk) + _more(offset + len(chunk), len(steps))


async def step_rows(state_dir: Path, run_id: str) -> list[dict[str, Any]] | None:
    """A run's steps as the table shows them, or None (no such run or store)."""
    try:
        async with monitor.open_session(state_dir) as session:
            if await session.get_run(run_id, check_owner=False) is None:
                return None
            return [step_summary(s) for s in await session.get_steps(run_id)]
    except NoRunStore:
        return None


async def graph_inputs(
    state_dir: Path, run_id: str
) -> tuple[dict[str, list[str]], dict[str, str]] | None:
    """(step id -> its dependencies, step id -> state) of a run, or None."""
    try:
        async with monitor.open_session(state_dir) as session:
            if await session.get_run(run_id, check_owner=False) is None:
                return None
            steps = await session.get_steps(run_id)
            plan = await session.get_plan(run_id)
    except NoRunStore:
        return None
    return plan_deps(plan, steps), {s.step_id: s.state.value for s in steps}


def event_items(events: list[dict[str, Any]]) -> str:
    """``<li>`` items of the event list (``seq``, ``ts``, ``type``, ``step_id``)."""
    return "".join(
        f'<li data-seq="{int(e["seq"])}"><code>{escape(str(e["ts"]))}</code> '
        f"{escape(str(e['type']))}"
        f"{' <b>' + escape(str(e['step_id'])) + '</b>' if e.get('step_id') else ''}</li>"
        for e in events
    )


async def events_before(state_dir: Path, run_id: str, before: int) -> list[dict[str, Any]] | None:
    """The :data:`EVENTS_PAGE` events of a run just before ``seq`` ``before``, or None."""
    try:
        async with monitor.open_session(state_dir) as session:
            if await session.get_run(run_id, check_owner=False) is None:
                return None
            # (seqs count up from 1 in a run: start just before the page wanted, and
            # read no further than ``before``: a negative limit would mean "no limit")
            start = max(0, before - 1 - EVENTS_PAGE)
            events = await session.get_events(run_id, start, max(0, before - 1 - start))
    except NoRunStore:
        return None
    return [
        {"seq": e.seq, "ts": e.ts, "type": event_type(e), "step_id": getattr(e, "step_id", None)}
        for e in events
        if e.seq < before
    ][-EVENTS_PAGE:]
