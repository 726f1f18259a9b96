"""``cli/ssl_deferred.py``: asyncio and anyio's backend imported without OpenSSL, and
TLS still working through them afterwards. Each case runs in a fresh interpreter (the
test process has loaded ssl long ago)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = """
import sys
from planrun.cli.ssl_deferred import ssl_deferred
with ssl_deferred():
    import asyncio, asyncio.sslproto
    import anyio, anyio._backends._asyncio, anyio.streams.tls
assert "ssl" not in sys.modules and "_ssl" not in sys.modules, "ssl was loaded"
"""

#: A TCP server that answers a TLS client hello with plain text: the client's handshake
#: must fail with ssl's own error after reading it, not with SSLWantReadError at once
#: (what asyncio raises when its ``except SSLAgainErrors`` does not catch the real one).
HANDSHAKE = """
import asyncio

async def handshake_error(client):
    async def answer(reader, writer):
        await reader.read(1)
        writer.write(b"HTTP/1.0 400 not TLS\\r\\n\\r\\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await client(port)
    except Exception as exc:
        return type(exc)
    finally:
        server.close()
    return None

async def with_asyncio(port):
    await asyncio.open_connection("127.0.0.1", port, ssl=True, server_hostname="localhost")

async def with_anyio(port):
    await anyio.connect_tcp("127.0.0.1", port, tls=True, tls_hostname="localhost")
"""


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_asyncio_tls_handshake_gets_the_real_ssl_error() -> None:
    out = _run(
        HANDSHAKE
        + """
error = asyncio.run(handshake_error(with_asyncio))
import ssl
print(error.__module__, error.__name__, error is ssl.SSLError or issubclass(error, ssl.SSLError))
print(asyncio.sslproto.SSLAgainErrors == (ssl.SSLWantReadError, ssl.SSLSyscallError))
"""
    )
    first, second = out.splitlines()
    assert first.startswith("ssl "), out
    assert "SSLWantReadError" not in first, out
    assert first.endswith(" True"), out
    assert second == "True", out


def test_anyio_tls_handshake_gets_the_real_ssl_error() -> None:
    out = _run(
        HANDSHAKE
        + """
error = anyio.run(handshake_error, with_anyio)
import ssl
print(issubclass(error, ssl.SSLError), error is not ssl.SSLWantReadError)
print(anyio.streams.tls.SSLContext is ssl.SSLContext)
"""
    )
    assert out.split() == ["True", "True", "True"], out


def test_the_stand_in_becomes_the_real_module_on_first_use() -> None:
    out = _run(
        """
stand_in = asyncio.base_events.ssl
context = stand_in.create_default_context()  # the first use: loads ssl
import ssl
print(stand_in is not ssl, isinstance(context, ssl.SSLContext))
print(stand_in.SSLContext is ssl.SSLContext, stand_in.SSLWantReadError is ssl.SSLWantReadError)
print(sys.modules["ssl"] is ssl)
"""
    )
    assert out.split() == ["True"] * 5, out


def test_an_import_of_ssl_after_the_block_is_the_real_module() -> None:
    out = _run(
        """
import ssl
print(type(ssl).__name__, ssl.SSLContext.__module__, ssl.SSLWantReadError.__module__)
print(asyncio.sslproto.ssl.MemoryBIO is ssl.MemoryBIO)
"""
    )
    assert out.split() == ["module", "ssl", "ssl", "True"], out


def test_nothing_changes_when_ssl_is_loaded_already() -> None:
    code = """
import ssl, sys
from planrun.cli.ssl_deferred import ssl_deferred
with ssl_deferred():
    import asyncio.sslproto
print(asyncio.sslproto.ssl is ssl, sys.modules["ssl"] is ssl)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.split() == ["True", "True"], result.stderr
