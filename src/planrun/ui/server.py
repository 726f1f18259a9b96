"""Serving the dashboard: check the binding is safe, listen, run uvicorn.

:func:`check_binding` is the security default (``UsageError`` for a non-loopback
address without a token); :func:`listen` opens the socket first, so a port in use is a
clear error and ``--port 0`` reports the port it got; :func:`serve` runs until SIGINT
or SIGTERM (uvicorn's handlers), then cancels the runs this server owns.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import webbrowser
from collections.abc import Iterator
from pathlib import Path

import anyio
import uvicorn

from ..errors import UsageError
from .app import Guarded, create_app
from .security import TOKEN_ENV, is_loopback
from .triggers_view import TriggerSource

__all__ = ["check_binding", "listen", "serve", "serve_until"]

#: Seconds uvicorn waits for open streams (live pages) before closing them at exit.
GRACEFUL_SEC = 3


def check_binding(host: str, token: str | None) -> None:
    """``UsageError`` unless ``host`` is loopback or a token protects the dashboard."""
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} would serve the dashboard beyond this machine without a "
            f"token: pass --token (or set {TOKEN_ENV}), or bind to 127.0.0.1",
            field="host",
        )
    if token is not None and len(token) < 16:
        raise UsageError("--token must be at least 16 characters", field="token")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (``UsageError`` if it cannot be had)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}", field="port") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, ending the app's live streams as it begins to stop (else it
    waits :data:`GRACEFUL_SEC` for them, then cancels them with a traceback)."""

    def __init__(self, config: uvicorn.Config, app: Guarded) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._app.stop_streams()
        await super().shutdown(sockets)


def _prepared(
    state_dir: Path,
    host: str,
    port: int,
    token: str | None,
    who: str,
    triggers: TriggerSource | None = None,
) -> tuple[socket.socket, Guarded, uvicorn.Config, str]:
    """The socket, app and uvicorn config of a dashboard (its URL announced)."""
    check_binding(host, token)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    loopback_only = token is None and is_loopback(host)
    app = create_app(state_dir, token=token, loopback_only=loopback_only, triggers=triggers)
    sys.stderr.write(
        f"{who}: serving {state_dir} at {url}"
        + (" (open it with ?token=... once)" if token else "")
        + " - Ctrl-C to stop\n"
    )
    sys.stderr.flush()
    config = uvicorn.Config(
        app,
        loop="asyncio",  # uvloop is slower at spawning step processes (design.md §7)
        http="h11",
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SEC,
    )
    return sock, app, config, url


def serve(state_dir: Path, host: str, port: int, token: str | None, open_browser: bool) -> None:
    """Serve the dashboard over ``state_dir`` until interrupted."""
    sock, app, config, url = _prepared(state_dir, host, port, token, "planrun ui")
    if open_browser:
        webbrowser.open(url)
    with sock:
        _Server(config, app).run(sockets=[sock])


class _Embedded(_Server):
    """A dashboard inside another service's event loop: that service owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_until(
    state_dir: Path,
    host: str,
    port: int,
    token: str | None,
    stop: anyio.Event,
    triggers: TriggerSource | None = None,
) -> None:
    """Serve the dashboard in the running event loop until ``stop`` is set
    (``planrun serve --ui``: its SIGTERM handling sets it); ``triggers``: the served
    plans, for ``/triggers``."""
    who = "planrun serve --ui"
    sock, app, config, _ = _prepared(state_dir, host, port, token, who, triggers)
    server = _Embedded(config, app)

    async def stopper() -> None:
        await stop.wait()
        server.should_exit = True

    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stopper)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
