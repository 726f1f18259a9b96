"""``python -m planrun`` is the ``planrun`` command."""

from .cli.entry import main

main()
