"""The command line: typer commands and the rich live view."""
