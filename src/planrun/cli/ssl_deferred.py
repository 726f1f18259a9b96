"""Importing asyncio without loading OpenSSL, for a run that never uses TLS.

``asyncio`` and anyio's asyncio backend import :mod:`ssl` when they load, for the TLS
transports a local run never opens; that import loads OpenSSL (libssl and libcrypto:
about 3 ms of a one-step run's start-up and 450 page faults). :func:`ssl_deferred`
hands them a stand-in module instead, for the time of the block that imports them.
The first time anything reads an attribute of the stand-in other than the three names
their modules read when they load, it imports the real :mod:`ssl`, takes on all of its
contents, and puts the real classes where those modules keep them
(``asyncio.sslproto.SSLAgainErrors``, ``anyio.streams.tls.SSLContext``). After the
block, ``import ssl`` gives the real module as always (the Dask executor's and the
dashboard's libraries load it themselves).

Nothing TLS can happen before the stand-in turns real: every TLS transport of asyncio
and anyio starts by creating an ``SSLContext`` or a ``MemoryBIO`` through it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from importlib.util import find_spec
from typing import Any

__all__ = ["ssl_deferred"]

#: What asyncio (``sslproto``: its ``except`` tuple) and anyio (``streams.tls``: an
#: annotation) read from :mod:`ssl` while they load.
READ_AT_IMPORT = ("SSLWantReadError", "SSLSyscallError", "SSLContext")


class _Placeholder(Exception):
    """Stands for one of :data:`READ_AT_IMPORT` until the real module is loaded (an
    exception class, as ``except`` needs; no ssl code raises it)."""


class _StandIn(types.ModuleType):
    """``sys.modules["ssl"]`` while :func:`ssl_deferred`'s block runs."""

    def __init__(self) -> None:
        super().__init__("ssl", "Stand-in for the ssl module until it is used.")
        self._placeholders = {name: type(name, (_Placeholder,), {}) for name in READ_AT_IMPORT}
        self._lock = threading.Lock()
        self._real: types.ModuleType | None = None

    def __getattr__(self, name: str) -> Any:
        # Only names this instance does not hold: the real module's (or dunders).
        if name.startswith("__"):
            raise AttributeError(name)
        if self._real is None and sys.modules.get("ssl") is self and name in READ_AT_IMPORT:
            return self._placeholders[name]  # asyncio or anyio loading: see READ_AT_IMPORT
        return getattr(self._load(), name)

    def _load(self) -> types.ModuleType:
        """The real :mod:`ssl`, imported once; every placeholder handed out replaced."""
        with self._lock:
            if self._real is None:
                if sys.modules.get("ssl") is self:
                    del sys.modules["ssl"]  # (still inside the block: the real one now)
                real = import_module("ssl")
                _replace_placeholders(self._placeholders, real)
                self.__dict__.update(vars(real))
                self._real = real
            return self._real


def _replace_placeholders(placeholders: dict[str, type], real: types.ModuleType) -> None:
    """Wherever a loaded module kept a placeholder (or a tuple of them) as a global,
    put the real class."""
    fake = {id(cls): getattr(real, name) for name, cls in placeholders.items()}
    for module in list(sys.modules.values()):
        namespace: object = None
        with contextlib.suppress(Exception):  # (anything may sit in sys.modules)
            namespace = module.__dict__
        if type(namespace) is not dict:
            continue
        # By identity and exact type only: no attribute of an arbitrary object is read
        # (a lazy proxy kept as a global could raise on it).
        for key, value in list(namespace.items()):
            if id(value) in fake:
                namespace[key] = fake[id(value)]
            elif type(value) is tuple and any(id(v) in fake for v in value):
                namespace[key] = tuple(fake.get(id(v), v) for v in value)


@contextmanager
def ssl_deferred() -> Iterator[None]:
    """Inside the block, ``import ssl`` gives the stand-in (see the module's doc);
    nothing changes when :mod:`ssl` or :mod:`asyncio` is loaded already, or when this
    Python has no ssl (asyncio then sees none, as always)."""
    if "ssl" in sys.modules or "asyncio" in sys.modules or find_spec("_ssl") is None:
        yield
        return
    stand_in = _StandIn()
    sys.modules["ssl"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("ssl") is stand_in:
            del sys.modules["ssl"]
