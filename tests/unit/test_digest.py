"""``planrun.digest``: the same SHA-256 as hashlib's, without loading OpenSSL."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from planrun.digest import sha256_hex


@pytest.mark.parametrize("data", [b"", b"abc", b"/tmp/state\xff", bytes(range(256)) * 300])
def test_same_digest_as_hashlib(data: bytes) -> None:
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_loads_no_openssl() -> None:
    code = (
        "import sys; from planrun.digest import sha256_hex; sha256_hex(b'x');"
        "print(sorted({'hashlib', '_hashlib', '_ssl'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "[]"
