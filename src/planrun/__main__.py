"""``python -m planrun`` is the ``planrun`` command."""

from .cli.app import main

main()
