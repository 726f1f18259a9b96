"""Where runs are stored by default: the one place that decides it.

Both the store (which creates the directory) and the API, the monitor and the CLI
(which only pass a directory on) ask :func:`default_state_dir`; none works it out
itself. It reads the environment and looks for directories (the way git finds
``.git``); it creates nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "STATE_DIR_ENV",
    "STATE_DIR_NAME",
    "default_state_dir",
    "state_dir_or_default",
    "state_dir_to_name",
]

#: The environment variable that selects the state dir when none is given.
STATE_DIR_ENV = "PLANRUN_STATE_DIR"
#: The state dir's name, looked for in the working directory and its parents.
STATE_DIR_NAME = ".planrun"


def default_state_dir(cwd: str | os.PathLike[str] | None = None, *, env: bool = True) -> Path:
    """The state dir to use when none is given.

    ``$PLANRUN_STATE_DIR`` if set (and not empty; ``env=False`` skips it); else the
    nearest ``.planrun`` directory in ``cwd`` (default: the working directory) or one
    of its parents, up to the filesystem root, as an absolute path; else ``.planrun``
    in ``cwd``, to be created by the first run. So a run started in a subdirectory of a
    project that has runs is recorded with them, and ``watch``/``show``/``list`` find
    it from anywhere below.
    """
    if env and (given := os.environ.get(STATE_DIR_ENV)):
        return Path(given)
    try:
        start = Path(cwd).absolute() if cwd is not None else Path.cwd()
    except OSError:  # the working directory was removed
        return Path(STATE_DIR_NAME)
    for directory in (start, *start.parents):
        if (directory / STATE_DIR_NAME).is_dir():
            # Relative when it is here: messages keep showing ``.planrun/...``.
            here = cwd is None and directory == start
            return Path(STATE_DIR_NAME) if here else directory / STATE_DIR_NAME
    return Path(STATE_DIR_NAME) if cwd is None else start / STATE_DIR_NAME


def state_dir_or_default(state_dir: str | os.PathLike[str] | None) -> Path:
    """``state_dir`` as a path, or :func:`default_state_dir` when it is None."""
    return Path(state_dir) if state_dir is not None else default_state_dir()


def state_dir_to_name(state_dir: str | os.PathLike[str] | None) -> Path | None:
    """The state dir a command printed here must name (``--state-dir``) to reach
    ``state_dir``: None when the discovery of :func:`default_state_dir` from the
    working directory, without ``$PLANRUN_STATE_DIR``, finds it anyway (so a hint
    works in another shell too)."""
    used = state_dir_or_default(state_dir)
    try:
        same = used.resolve() == default_state_dir(env=False).resolve()
    except OSError:
        same = False
    return None if same else used
