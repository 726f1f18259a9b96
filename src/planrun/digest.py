"""SHA-256 digests without loading OpenSSL.

Importing :mod:`hashlib` loads OpenSSL's libcrypto (about 2 ms and 200 page faults of
a one-step run's start-up) for the few short digests a run takes: its run key's scope,
lock file names, child run ids. CPython's own SHA-256 (``_sha2``, ``_sha256`` before
3.12) gives the same digest; :mod:`hashlib` is the fallback where it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

__all__ = ["sha256_hex"]


def _constructor() -> Callable[[bytes], Any]:
    for name in ("_sha2", "_sha256"):  # CPython 3.12+, 3.11
        sha256 = getattr(_optional(name), "sha256", None)
        if sha256 is not None:
            return sha256  # type: ignore[no-any-return]
    import hashlib

    return hashlib.sha256


def _optional(name: str) -> object:
    try:
        return import_module(name)
    except ImportError:
        return None


_SHA256 = _constructor()


def sha256_hex(data: bytes) -> str:
    """The SHA-256 digest of ``data``, as 64 hex digits (``hashlib.sha256(data).hexdigest()``)."""
    return str(_SHA256(data).hexdigest())
