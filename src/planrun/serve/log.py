"""The serve process's own log: plain lines with a UTC timestamp, flushed at once
(journald and ``docker logs`` read them as they come; no colour, no live view)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["Log"]


class Log:
    """Writes ``2026-12-01T17:00:00.123Z planrun serve: MESSAGE`` lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def __call__(self, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        stream = self._stream or sys.stdout
        try:
            stream.write(f"{now} planrun serve: {message}\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed stdout must not stop the service
