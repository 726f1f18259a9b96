"""A log view that scales: one attempt's log, read a window at a time.

The page (``/runs/{id}/steps/{step}/log``) shows the tail; the script
(``static/logs.js``) loads older lines on scroll up (newer ones on scroll down, after a
search jumped into the middle) from
``/api/runs/{id}/steps/{step}/log/window?before=OFFSET&lines=N`` (newer ones with
``after=OFFSET``) and searches with ``.../log/search?q=TEXT``. Only the bytes of the
window are read (at most :data:`MAX_WINDOW_BYTES`), never the whole file; a search
streams the file in :data:`SEARCH_CHUNK` pieces and stops at :data:`MAX_MATCHES`.

A *line* is the bytes after a newline up to and including the next one (the last line
may be unterminated). Offsets are byte offsets into the file; a window's ``start`` is
the offset to pass as the next ``before``. Text is decoded as UTF-8 with replacement
(invalid bytes show as U+FFFD), escaped, and http/https URLs become links.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from html import escape
from typing import IO, Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import NoRunStore
from . import data, pages

__all__ = [
    "MAX_MATCHES",
    "MAX_WINDOW_BYTES",
    "ROUTES",
    "LogProblem",
    "linkify",
    "read_after",
    "read_before",
    "search",
]

#: Most bytes one window reads (a longer line is cut: its pieces come in two windows).
MAX_WINDOW_BYTES = 1024 * 1024
#: Most lines one window returns, and the lines of the first page.
MAX_WINDOW_LINES = 2000
FIRST_PAGE_LINES = 200
#: Bytes read at a time when scanning backwards or searching.
READ_CHUNK = 64 * 1024
SEARCH_CHUNK = 1024 * 1024
#: Matches a search returns at most, and characters of each matching line shown.
MAX_MATCHES = 200
MATCH_TEXT_CHARS = 300
MAX_QUERY_CHARS = 200

_URL = re.compile(r"https?://[^\s<>\"'`\x00-\x1f\x7f]+")
#: Trailing punctuation that ends a sentence rather than the URL.
_URL_TAIL = ".,;:!?)]}"


class LogProblem(Exception):
    """The log cannot be read (missing, a link, not a regular file): the message says
    why, for the page."""


def linkify(text: str) -> str:
    """``text`` escaped for HTML, with each http:// or https:// URL an ``<a>`` (href
    escaped too; no other scheme is ever linked)."""
    out, last = [], 0
    for found in _URL.finditer(text):
        url = found.group(0).rstrip(_URL_TAIL)
        end = found.start() + len(url)
        out.append(escape(text[last : found.start()]))
        href = escape(url, quote=True)
        out.append(
            f'<a href="{href}" rel="noopener noreferrer nofollow" target="_blank">{href}</a>'
        )
        last = end
    out.append(escape(text[last:]))
    return "".join(out)


def _open(path: str) -> IO[bytes]:
    """The log opened for reading; only a regular file (never a link or a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LogProblem("no log yet") from None
    except OSError as exc:
        why = "a symbolic link: not read" if exc.errno == errno.ELOOP else exc.strerror
        raise LogProblem(f"the log cannot be read: {why}") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise LogProblem("the log is not a regular file: not read")
    return f


def _lines(blob: bytes, base: int) -> list[dict[str, Any]]:
    """``blob`` (read at offset ``base``) split into lines with their offsets."""
    out, pos = [], 0
    while pos < len(blob):
        nl = blob.find(b"\n", pos)
        end = len(blob) if nl < 0 else nl + 1
        text = blob[pos:end].rstrip(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
        out.append({"offset": base + pos, "end": base + end, "text": text, "html": linkify(text)})
        pos = end
    return out


def read_before(path: str, before: int | None, lines: int) -> dict[str, Any]:
    """The last ``lines`` lines that end at or before offset ``before`` (the end of the
    file if None): reads backwards from there, at most :data:`MAX_WINDOW_BYTES`.
    ``start`` is the first returned line's offset (the next ``before``); ``cut``: that
    line is only the end of a line longer than the window."""
    lines = max(1, min(lines, MAX_WINDOW_LINES))
    with _open(path) as f:
        size = f.seek(0, os.SEEK_END)
        end = size if before is None else max(0, min(before, size))
        start, blob = end, b""
        # Enough once the bytes hold ``lines`` newlines before the window's last byte
        # (the newline that ends the line before the first one returned).
        while start > 0 and blob.count(b"\n", 0, max(0, len(blob) - 1)) < lines:
            take = min(READ_CHUNK, start, MAX_WINDOW_BYTES - (end - start))
            if take <= 0:
                break
            start -= take
            f.seek(start)
            blob = f.read(take) + blob
    cut = _start_of_last(blob, lines) if start > 0 else 0
    kept = _lines(blob[cut:], start + cut)[-lines:]
    first = kept[0]["offset"] if kept else end
    return {
        "lines": kept,
        "start": first,
        "end": end,
        "size": size,
        "at_start": first == 0,
        "cut": start > 0 and cut == 0,
    }


def _start_of_last(blob: bytes, lines: int) -> int:
    """Where in ``blob`` the last ``lines`` lines begin; 0 if it holds no start of a
    line (one longer than the window: its piece is shown as it is)."""
    pos = len(blob) - 1 if blob.endswith(b"\n") else len(blob)
    for _ in range(lines):
        nl = blob.rfind(b"\n", 0, pos)
        if nl < 0:
            return 0
        pos = nl
    return pos + 1


def read_after(path: str, after: int, lines: int) -> dict[str, Any]:
    """The first ``lines`` lines from offset ``after`` on (at most
    :data:`MAX_WINDOW_BYTES` read); ``end`` is the next ``after``."""
    lines = max(1, min(lines, MAX_WINDOW_LINES))
    with _open(path) as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, min(after, size))
        f.seek(start)
        blob = b""
        # Read on only until the bytes hold ``lines`` newlines (or the window is full).
        while blob.count(b"\n") < lines and len(blob) < MAX_WINDOW_BYTES:
            piece = f.read(min(READ_CHUNK, MAX_WINDOW_BYTES - len(blob)))
            if not piece:
                break
            blob += piece
    kept = _lines(blob, start)[:lines]
    end = kept[-1]["end"] if kept else start
    return {"lines": kept, "start": start, "end": end, "size": size, "at_start": start == 0}


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(SEARCH_CHUNK):
        yield chunk


def search(path: str, query: str, cap: int | None = None) -> dict[str, Any]:
    """Lines containing ``query`` (ASCII case-insensitive), in file order: their line
    number (1-based), offsets and text. Streams the file in chunks, carrying a chunk's
    last partial line into the next (a line across two chunks is still found); stops
    after ``cap`` (default :data:`MAX_MATCHES`) matches (``truncated``)."""
    cap = MAX_MATCHES if cap is None else cap
    needle = query.encode("utf-8").lower()
    matches: list[dict[str, Any]] = []
    line_no, offset, carry = 0, 0, b""
    with _open(path) as f:
        for chunk in _chunks(f):
            blob = carry + chunk
            cut = blob.rfind(b"\n") + 1
            carry = blob[cut:]
            for raw in blob[:cut].splitlines(keepends=True):
                line_no += 1
                if needle in raw.lower():
                    matches.append(_match(raw, line_no, offset))
                    if len(matches) >= cap:
                        return {"query": query, "matches": matches, "truncated": True}
                offset += len(raw)
        if carry and needle in carry.lower():
            matches.append(_match(carry, line_no + 1, offset))
    return {"query": query, "matches": matches, "truncated": False}


def _match(raw: bytes, line_no: int, offset: int) -> dict[str, Any]:
    text = raw.rstrip(b"\n").decode("utf-8", "replace")[:MATCH_TEXT_CHARS]
    return {"line": line_no, "offset": offset, "end": offset + len(raw), "text": text}


async def _log_path(request: Request) -> tuple[str | None, dict[str, Any], Response | None]:
    """The chosen attempt's log path (last attempt unless ``?attempt=N``) and what
    the page shows about it; or an error response (400/404)."""
    ctx = request.app.state.ctx
    run_id, step_id = request.path_params["run_id"], request.path_params["step_id"]
    raw_attempt = request.query_params.get("attempt") or ""
    if raw_attempt and not raw_attempt.isdigit():
        return None, {}, _error(request, 400, "attempt must be a whole number")
    try:
        step = await data.step_record(ctx.state_dir, run_id, step_id)
    except NoRunStore:
        step = None
    if step is None:
        return None, {}, _error(request, 404, f"no step '{step_id}' in run '{run_id}'")
    chosen = step.attempts[-1] if step.attempts and not raw_attempt else None
    chosen = next((a for a in step.attempts if str(a.attempt) == raw_attempt), chosen)
    if chosen is None and (raw_attempt or step.attempts):
        return None, {}, _error(request, 404, f"no attempt {raw_attempt} of step '{step_id}'")
    info = {"run_id": run_id, "step_id": step_id, "attempt": chosen and chosen.attempt}
    info["attempts"] = [a.attempt for a in step.attempts]
    return (chosen.log_path if chosen else None), info, None


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    page = pages.error_page(status, message, csrf=request.app.state.ctx.guard.csrf)
    return HTMLResponse(page, status_code=status)


def _int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(name)
    return int(raw)


async def api_window(request: Request) -> Response:
    path, info, error = await _log_path(request)
    if error is not None:
        return error
    try:
        before, after = _int(request, "before"), _int(request, "after")
        lines = _int(request, "lines") or FIRST_PAGE_LINES
    except ValueError as exc:
        return _error(request, 400, f"{exc} must be a whole number of bytes or lines")
    if path is None:
        return JSONResponse(info | {"problem": "no log yet", "lines": []})
    try:
        if after is not None:
            window = await anyio.to_thread.run_sync(read_after, path, after, lines)
        else:
            window = await anyio.to_thread.run_sync(read_before, path, before, lines)
    except LogProblem as exc:
        return JSONResponse(info | {"problem": str(exc), "lines": []})
    return JSONResponse(info | window)


async def api_search(request: Request) -> Response:
    path, info, error = await _log_path(request)
    if error is not None:
        return error
    query = request.query_params.get("q", "")
    if not query or len(query) > MAX_QUERY_CHARS:
        return _error(request, 400, f"q must be 1 to {MAX_QUERY_CHARS} characters")
    if path is None:
        return JSONResponse(info | {"query": query, "matches": [], "truncated": False})
    try:
        found = await anyio.to_thread.run_sync(search, path, query)
    except LogProblem as exc:
        return JSONResponse(info | {"problem": str(exc), "matches": []})
    return JSONResponse(info | found)


def _line_html(line: dict[str, Any]) -> str:
    return f'<div class="ln" data-offset="{line["offset"]}">{line["html"]}</div>'


async def log_page(request: Request) -> Response:
    """The attempt's log: the tail rendered on the server, the rest on demand."""
    path, info, error = await _log_path(request)
    if error is not None:
        return error
    window: dict[str, Any] = {"lines": [], "start": 0, "size": 0, "at_start": True}
    problem = "no log yet" if path is None else ""
    if path is not None:
        try:
            window = await anyio.to_thread.run_sync(read_before, path, None, FIRST_PAGE_LINES)
        except LogProblem as exc:
            problem = str(exc)
    html = _page_html(info, window, problem)
    return HTMLResponse(
        pages.layout(f"log {info['step_id']}", html, request.app.state.ctx.guard.csrf)
    )


def _page_html(info: dict[str, Any], window: dict[str, Any], problem: str) -> str:
    rid, sid = quote(info["run_id"]), quote(info["step_id"])
    api = f"/api/runs/{rid}/steps/{sid}/log"
    attempts = " ".join(
        f'<a href="?attempt={a}"{" class=current" if a == info["attempt"] else ""}>#{a}</a>'
        for a in info["attempts"]
    )
    lines = "".join(_line_html(line) for line in window["lines"])
    return (
        f'<section class="log-head"><h1>{escape(info["step_id"])} · attempt '
        f'{escape(str(info["attempt"]))}</h1><p>run <a href="/runs/{rid}">'
        f"{escape(info['run_id'])}</a> · attempts {attempts} · "
        f'<span id="log-size">{window["size"]}</span> bytes</p>'
        '<form id="log-search" class="filters"><input type="search" name="q" '
        f'maxlength="{MAX_QUERY_CHARS}" placeholder="search this log">'
        '<button type="submit">search</button> <button type="button" id="log-copy">copy '
        'loaded text</button> <span id="log-status"></span></form>'
        '<ol id="log-matches" class="matches"></ol></section>'
        f'<p class="problem">{escape(problem)}</p>'
        f'<div id="log" class="log-view" data-api="{escape(api)}" '
        f'data-attempt="{escape(str(info["attempt"] or ""))}" data-start="{window["start"]}" '
        f'data-end="{window.get("end", 0)}" '
        f'data-at-start="{"1" if window["at_start"] else "0"}">'
        f'<div id="log-older" class="older">{"" if window["at_start"] else "older lines…"}'
        f'</div><div id="log-lines">{lines}</div></div>'
        '<script src="/static/logs.js" defer></script>'
        + '<link rel="stylesheet" href="/static/views.css">'
    )


ROUTES = [
    Route("/runs/{run_id}/steps/{step_id}/log", log_page),
    Route("/api/runs/{run_id}/steps/{step_id}/log/window", api_window),
    Route("/api/runs/{run_id}/steps/{step_id}/log/search", api_search),
]
