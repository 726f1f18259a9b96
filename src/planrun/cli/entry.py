"""The ``planrun`` console script and ``python -m planrun``: :func:`main` imports the
CLI with Python's cyclic garbage collector paused.

Importing planrun's CLI allocates tens of thousands of objects (modules, classes,
functions) and frees almost none: each allocation threshold crossed started a
collection that found nothing, ~30 of them before ``cli.app`` was even in, and ~80 in
all before a one-step run starts (10 to 20 ms of CPU). This module imports nothing but
:mod:`planrun.gcpause`, so the pause covers everything the CLI loads; the commands
pause it again around their own imports (``cli/app.py``), and it runs as usual while
a command acts.
"""

from __future__ import annotations

from ..gcpause import paused_gc

__all__ = ["main"]


def main() -> None:
    """Run the ``planrun`` command (``cli.app.main``), its modules imported GC-paused."""
    with paused_gc():
        from .app import main as app_main

    app_main()
