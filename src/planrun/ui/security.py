"""Who may read and act: the access token, the CSRF token, Host and Origin checks.

- Bound to a loopback address, the dashboard needs no token, but it answers only
  requests whose ``Host`` is a loopback name (a DNS-rebinding page cannot read it).
- With a token (required for any other address), every request must carry it: the
  ``planrun_ui`` cookie (set by opening ``/?token=T`` once), or ``Authorization:
  Bearer T``. Tokens are compared in constant time.
- Actions are POSTs that must come from the dashboard's own pages: a cross-site
  ``Origin`` (or ``Sec-Fetch-Site: cross-site``) is refused, and the form must carry
  the page's CSRF token (a random value per server, never in a cookie).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

from . import TOKEN_ENV

__all__ = ["COOKIE", "TOKEN_ENV", "Guard", "is_loopback"]

COOKIE = "planrun_ui"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a name) is this machine only."""
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8765`` -> ``::1``)."""
    return urlsplit(f"//{host_header}").hostname or ""


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Guard:
    """The access rules of one server. ``token`` None: loopback only, no token."""

    token: str | None
    loopback_only: bool
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def host_refusal(self, request: Request) -> str | None:
        """Why the request's ``Host`` is refused, or None."""
        if not self.loopback_only:
            return None
        name = _hostname(request.headers.get("host", ""))
        if is_loopback(name):
            return None
        return f"host '{name}' is not served: this dashboard answers on loopback names only"

    def presented_token(self, request: Request) -> str | None:
        """The token the request carries (header, then cookie, then ``?token=``)."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(COOKIE) or request.query_params.get("token")

    def authorized(self, request: Request) -> bool:
        """Whether the request may read (and, with the CSRF checks, act)."""
        return self.token is None or _same(self.presented_token(request), self.token)

    def cross_site_refusal(self, request: Request, form_csrf: str | None) -> str | None:
        """Why a POST is refused as possibly cross-site, or None: its ``Origin`` must be
        this server's, and its CSRF token the page's."""
        if request.headers.get("sec-fetch-site") == "cross-site":
            return "cross-site request refused"
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin != expected:
                return f"request from origin {origin} refused"
        elif origin == "null":
            return "request from an opaque origin refused"
        given = form_csrf or request.headers.get("x-csrf-token")
        if not _same(given, self.csrf):
            return "missing or wrong CSRF token: reload the page and try again"
        return None
