"""The plan page and the paged log view over HTTP (httpx's ASGI transport), on a REAL
store made by real runs: statistics checked against values computed here from the
records, log windows checked byte for byte against the log file."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from planrun import monitor, run_plan
from planrun.model import RunState
from planrun.ui import log_view
from planrun.ui.app import create_app
from planrun.ui.plan_page import percentile

from .helpers import make_plan, py_step, sh_step, unique_run_id

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8765"
#: Which of the five runs of plan "flaky" fail (its "check" step exits 1).
FAILING = {1, 3}


@dataclass(frozen=True)
class Store:
    state_dir: Path
    #: The runs of plan "flaky", oldest first.
    run_ids: list[str]
    other_id: str


def _flaky_plan(fail: bool, sleep: float) -> dict[str, Any]:
    return make_plan(
        [
            sh_step("setup", "true"),
            sh_step("work", 'sleep "$1"', f"{sleep:g}", depends_on=["setup"]),
            sh_step("check", "exit 1" if fail else "true", depends_on=["work"]),
        ],
        plan_id="flaky",
    )


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    state_dir = tmp_path / "state"
    run_ids = []
    for i in range(5):
        plan = tmp_path / f"flaky{i}.json"
        plan.write_text(json.dumps(_flaky_plan(i in FAILING, 0.05 * i)))
        run_id = unique_run_id(f"flaky{i}")
        result = await run_plan(plan, state_dir=state_dir, run_id=run_id)
        assert result.state is (RunState.FAILED if i in FAILING else RunState.SUCCEEDED)
        run_ids.append(run_id)
    other = tmp_path / "other.json"
    other.write_text(json.dumps(make_plan([sh_step("only", "true")], plan_id="other")))
    other_id = unique_run_id("other")
    assert (await run_plan(other, state_dir=state_dir, run_id=other_id)).ok
    return Store(state_dir, run_ids, other_id)


class _client:
    """An httpx client on the dashboard app, its lifespan running."""

    def __init__(self, state_dir: Path) -> None:
        self.app = create_app(state_dir)

    async def __aenter__(self) -> httpx.AsyncClient:
        self._life = self.app.lifespan()
        await self._life.__aenter__()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._life.__aexit__(None, None, None)


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(store.state_dir) as c:
        yield c


def _nearest_rank(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(pct / 100 * len(ordered)) - 1]


async def test_plan_stats_match_the_records(client: httpx.AsyncClient, store: Store) -> None:
    got = (await client.get("/api/plans/flaky")).json()
    assert [r["run_id"] for r in got["runs"]] == store.run_ids[::-1]  # newest first
    assert [r["state"] for r in got["runs"]] == [
        "failed" if i in FAILING else "succeeded" for i in reversed(range(5))
    ]
    assert got["success_rate"] == pytest.approx(3 / 5)
    assert (got["finished"], got["succeeded"]) == (5, 3)
    expected: dict[str, list[float]] = {}
    for run_id in store.run_ids:
        for step in await monitor.get_steps(run_id, state_dir=store.state_dir):
            assert step.duration_sec is not None
            expected.setdefault(step.step_id, []).append(step.duration_sec)
    steps = {s["step_id"]: s for s in got["steps"]}
    assert list(steps) == ["setup", "work", "check"]
    for sid, durations in expected.items():
        assert steps[sid]["median_sec"] == pytest.approx(statistics.median(durations))
        assert steps[sid]["p95_sec"] == pytest.approx(_nearest_rank(durations, 95))
        assert steps[sid]["runs"] == 5
    assert {sid: s["failures"] for sid, s in steps.items()} == {"setup": 0, "work": 0, "check": 2}
    # "work" sleeps 0.05 * i s: its p95 is the slowest run's, not the median's.
    assert steps["work"]["p95_sec"] > steps["work"]["median_sec"]


async def test_plan_page_shows_chart_rate_and_history(
    client: httpx.AsyncClient, store: Store
) -> None:
    page = await client.get("/plans/flaky")
    assert page.status_code == 200
    html = page.text
    assert '<b id="success-rate">60%</b>' in html
    assert html.count('class="pt ok"') == 3
    assert html.count('class="pt bad state-failed"') == 2
    for run_id in store.run_ids:
        assert f'href="/runs/{run_id}"' in html
    table = html[html.index('id="plan-runs"') :]
    assert table.index(store.run_ids[-1]) < table.index(store.run_ids[0])  # newest first
    assert store.other_id not in html
    assert '<td class="failures bad">2</td>' in html
    assert (await client.get("/static/views.css")).status_code == 200


async def test_a_plan_that_never_ran_is_404(client: httpx.AsyncClient) -> None:
    api = await client.get("/api/plans/nope")
    assert api.status_code == 404
    assert "no runs of plan 'nope'" in api.json()["error"]
    page = await client.get("/plans/%3Cb%20onmouseover%3Dalert(1)%3E")
    assert page.status_code == 404
    assert "<b onmouseover" not in page.text
    assert "&lt;b onmouseover=alert(1)&gt;" in page.text
    assert "Traceback" not in page.text


async def test_a_missing_store_is_404_not_a_traceback(tmp_path: Path) -> None:
    async with _client(tmp_path / "nothing") as c:
        assert (await c.get("/api/plans/flaky")).status_code == 404
        page = await c.get("/runs/r1/steps/a/log")
        assert page.status_code == 404
        assert "Traceback" not in page.text


async def test_plan_page_is_linked_from_runs_list_and_run_page(
    client: httpx.AsyncClient, store: Store
) -> None:
    assert 'href="/plans/flaky"' in (await client.get("/")).text
    run_page = (await client.get(f"/runs/{store.run_ids[0]}")).text
    assert 'href="/plans/flaky"' in run_page
    assert f'href="/runs/{store.run_ids[0]}/steps/check/log"' in run_page


async def test_monitor_plan_history_is_bounded_and_newest_first(
    store: Store, tmp_path: Path
) -> None:
    two = await monitor.plan_history("flaky", limit=2, state_dir=store.state_dir)
    assert [h.run.run_id for h in two] == store.run_ids[:-3:-1]
    assert [s.step_id for s in two[0].steps] == ["setup", "work", "check"]
    assert await monitor.plan_history("nope", state_dir=store.state_dir) == []
    assert await monitor.plan_history("flaky", state_dir=tmp_path / "none") == []


# --- the log view ---------------------------------------------------------------

#: What the logged step writes: varied lengths, a CRLF line, invalid UTF-8, a URL,
#: and an unterminated last line.
LOG_BYTES = b"".join(
    [f"line {i} {'x' * (i % 11)}\n".encode() for i in range(40)]
    + [b"bad \xff\xfe bytes\n", b"crlf line\r\n", b"see https://example.com/a?b=1&c=2.\n"]
    + [b"no newline at the end"]
)
WRITE = "import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))"


@dataclass(frozen=True)
class Logged:
    client: httpx.AsyncClient
    run_id: str
    log_path: Path

    def api(self, path: str) -> str:
        return f"/api/runs/{self.run_id}/steps/write/log/{path}"


async def _logged(tmp_path: Path, content: bytes) -> AsyncIterator[Logged]:
    plan = tmp_path / "logged.json"
    plan.write_text(json.dumps(make_plan([py_step("write", WRITE, content.hex())], "logged")))
    run_id = unique_run_id("logged")
    state_dir = tmp_path / "state"
    assert (await run_plan(plan, state_dir=state_dir, run_id=run_id)).ok
    steps = await monitor.get_steps(run_id, state_dir=state_dir)
    log_path = Path(steps[0].attempts[-1].log_path or "")
    assert await anyio.Path(log_path).read_bytes() == content
    async with _client(state_dir) as c:
        yield Logged(c, run_id, log_path)


@pytest.fixture
async def logged(tmp_path: Path) -> AsyncIterator[Logged]:
    async for found in _logged(tmp_path, LOG_BYTES):
        yield found


def _expected_lines(content: bytes) -> list[tuple[int, str]]:
    """(offset, text) of each line, computed independently of the module."""
    out, offset = [], 0
    for raw in content.splitlines(keepends=True):
        text = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
        out.append((offset, text))
        offset += len(raw)
    return out


async def _page_backwards(logged: Logged, lines: int) -> list[tuple[int, str]]:
    got: list[tuple[int, str]] = []
    window = (await logged.client.get(logged.api("window"), params={"lines": lines})).json()
    while True:
        assert len(window["lines"]) <= lines
        got = [(line["offset"], line["text"]) for line in window["lines"]] + got
        if window["at_start"]:
            return got
        assert window["start"] < window["end"]  # each window moves back (no endless paging)
        before = window["start"]
        window = (
            await logged.client.get(logged.api("window"), params={"before": before, "lines": lines})
        ).json()
        assert window["end"] == before


@pytest.mark.parametrize("chunk", [5, 13, 64 * 1024])
async def test_paging_backwards_returns_every_line_exactly_once(
    logged: Logged, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Small read chunks: lines fall across the chunks the file is read in.
    monkeypatch.setattr(log_view, "READ_CHUNK", chunk)
    expected = _expected_lines(LOG_BYTES)
    assert expected[-1][1] == "no newline at the end"  # the unterminated last line
    assert expected[-4][1] == "bad \ufffd\ufffd bytes"  # invalid UTF-8, replaced
    for lines in (1, 3, 7, 100):
        assert await _page_backwards(logged, lines) == expected


async def test_the_first_window_is_the_tail(logged: Logged) -> None:
    window = (await logged.client.get(logged.api("window"), params={"lines": 2})).json()
    assert [line["text"] for line in window["lines"]] == [
        "see https://example.com/a?b=1&c=2.",
        "no newline at the end",
    ]
    assert window["end"] == window["size"] == len(LOG_BYTES)
    assert window["start"] == len(LOG_BYTES) - len(b"see https://example.com/a?b=1&c=2.\n") - 21
    assert window["at_start"] is False


async def test_before_inside_a_line_shows_its_first_part(logged: Logged) -> None:
    offset = LOG_BYTES.index(b"crlf line")
    window = (
        await logged.client.get(logged.api("window"), params={"before": offset + 4, "lines": 2})
    ).json()
    assert [line["text"] for line in window["lines"]] == ["bad \ufffd\ufffd bytes", "crlf"]


async def test_paging_forward_from_an_offset(logged: Logged) -> None:
    offset = LOG_BYTES.index(b"bad ")
    window = (
        await logged.client.get(logged.api("window"), params={"after": offset, "lines": 10})
    ).json()
    texts = [line["text"] for line in window["lines"]]
    assert texts == [t for _, t in _expected_lines(LOG_BYTES)[-4:]]
    assert window["end"] == len(LOG_BYTES)


@pytest.mark.parametrize("chunk", [5, 64 * 1024])
async def test_paging_forward_returns_every_line_exactly_once(
    logged: Logged, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(log_view, "READ_CHUNK", chunk)
    got: list[tuple[int, str]] = []
    after = 0
    while after < len(LOG_BYTES):
        window = (
            await logged.client.get(logged.api("window"), params={"after": after, "lines": 4})
        ).json()
        assert 0 < len(window["lines"]) <= 4
        got += [(line["offset"], line["text"]) for line in window["lines"]]
        after = window["end"]
    assert got == _expected_lines(LOG_BYTES)


async def test_a_line_longer_than_the_window_comes_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"short\n" + b"L" * 100 + b"\nend\n"
    monkeypatch.setattr(log_view, "MAX_WINDOW_BYTES", 30)
    monkeypatch.setattr(log_view, "READ_CHUNK", 7)
    async for logged in _logged(tmp_path, content):
        got: list[str] = []
        before, cuts = None, 0
        while True:
            params: dict[str, Any] = {"lines": 5} | ({} if before is None else {"before": before})
            window = (await logged.client.get(logged.api("window"), params=params)).json()
            assert window["end"] - window["start"] <= 30
            cuts += window["cut"]
            got = [line["text"] for line in window["lines"]] + got
            if window["at_start"]:
                break
            assert window["start"] < window["end"]
            before = window["start"]
        assert cuts >= 3  # the long line took several windows
        assert "".join(got) == "short" + "L" * 100 + "end"


async def test_search_finds_lines_across_chunk_boundaries(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_view, "SEARCH_CHUNK", 5)  # every line spans chunks
    found = (await logged.client.get(logged.api("search"), params={"q": "LINE 3"})).json()
    expected = [
        (n + 1, off, text)
        for n, (off, text) in enumerate(_expected_lines(LOG_BYTES))
        if "line 3" in text.lower()
    ]
    assert len(expected) == 11  # line 3, line 30..39 (and not "crlf line")
    assert [(m["line"], m["offset"], m["text"]) for m in found["matches"]] == expected
    assert found["truncated"] is False
    last = (await logged.client.get(logged.api("search"), params={"q": "at the end"})).json()
    assert [m["line"] for m in last["matches"]] == [
        len(expected_lines := _expected_lines(LOG_BYTES))
    ]
    assert last["matches"][0]["end"] == len(LOG_BYTES) == expected_lines[-1][0] + 21


async def test_search_stops_at_its_cap(logged: Logged, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_view, "MAX_MATCHES", 4)
    found = (await logged.client.get(logged.api("search"), params={"q": "line"})).json()
    assert [m["line"] for m in found["matches"]] == [1, 2, 3, 4]
    assert found["truncated"] is True


async def test_bad_log_requests_are_refused(logged: Logged) -> None:
    c = logged.client
    assert (await c.get(logged.api("window"), params={"before": "x"})).status_code == 400
    assert (await c.get(logged.api("window"), params={"lines": "-1"})).status_code == 400
    assert (await c.get(logged.api("search"), params={"q": ""})).status_code == 400
    assert (await c.get(logged.api("search"), params={"q": "x" * 201})).status_code == 400
    assert (await c.get(logged.api("window"), params={"attempt": "9"})).status_code == 404
    missing = await c.get(f"/api/runs/{logged.run_id}/steps/nope/log/window")
    assert missing.status_code == 404
    page = await c.get(f"/runs/{logged.run_id}/steps/nope/log")
    assert page.status_code == 404
    assert "Traceback" not in page.text


async def test_log_page_links_only_http_urls_and_escapes(tmp_path: Path) -> None:
    content = (
        b'a https://ok.example/p?q="onmouseover=alert(1) b\n'
        b"javascript:alert(2) data:text/html,<script>alert(3)</script>\n"
        b"<img src=x onerror=alert(4)> http://plain.example/x'y\n"
    )
    async for logged in _logged(tmp_path, content):
        page = await logged.client.get(f"/runs/{logged.run_id}/steps/write/log")
        assert page.status_code == 200
        html = page.text
        links = [
            part.split('"', 1)[0] for part in html.split('<a href="')[1:] if "noopener" in part
        ]
        assert links == ["https://ok.example/p?q=", "http://plain.example/x"]
        assert "javascript:alert(2)" in html  # shown as text...
        assert 'href="javascript' not in html  # ...never a link
        assert "<script>alert(3)" not in html
        assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html
        assert "<img src=x" not in html
        assert "&quot;onmouseover=alert(1)" in html
        assert 'src="/static/logs.js"' in html
        assert (await logged.client.get("/static/logs.js")).status_code == 200


def test_linkify_unit() -> None:
    assert log_view.linkify("x <b> https://a.b/c). y") == (
        'x &lt;b&gt; <a href="https://a.b/c" rel="noopener noreferrer nofollow" '
        'target="_blank">https://a.b/c</a>). y'
    )
    assert log_view.linkify("ftp://a.b javascript:x HTTPS://a.b") == (
        "ftp://a.b javascript:x HTTPS://a.b"
    )


async def test_log_page_renders_only_the_tail(tmp_path: Path) -> None:
    content = b"".join(f"row {i:05d}\n".encode() for i in range(5000))
    async for logged in _logged(tmp_path, content):
        html = (await logged.client.get(f"/runs/{logged.run_id}/steps/write/log")).text
        assert "row 04999" in html
        assert "row 04800" in html
        assert "row 04799" not in html  # the first page is 200 lines
        assert html.count('class="ln"') == log_view.FIRST_PAGE_LINES
        assert "older lines" in html


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # unsorted on purpose
    assert percentile(values, 95) == 19.0  # not the max: 95 % of 20 values is 19 of them
    assert percentile(values, 50) == 10.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 95) is None
