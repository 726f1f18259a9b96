"""Where runs are stored by default: the one place that decides it.

Both the store (which creates the directory) and the API, the monitor and the CLI
(which only pass a directory on) ask :func:`default_state_dir`; none works it out
itself. Pure: reads the environment, touches no file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STATE_DIR_ENV", "default_state_dir", "state_dir_or_default"]

#: The environment variable that selects the state dir when none is given.
STATE_DIR_ENV = "PLANRUN_STATE_DIR"


def default_state_dir() -> Path:
    """``$PLANRUN_STATE_DIR`` if set (and not empty), else ``.planrun`` in the working
    directory."""
    return Path(os.environ.get(STATE_DIR_ENV) or ".planrun")


def state_dir_or_default(state_dir: str | os.PathLike[str] | None) -> Path:
    """``state_dir`` as a path, or :func:`default_state_dir` when it is None."""
    return Path(state_dir) if state_dir is not None else default_state_dir()
