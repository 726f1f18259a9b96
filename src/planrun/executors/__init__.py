"""Executors: adapters that run one attempt of a step (see ``planrun.ports.Executor``)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .local import LocalExecutor

__all__ = ["LocalExecutor"]


def __getattr__(name: str) -> Any:
    """``LocalExecutor`` on first use: ``executors.watchdog`` alone stays light (the CLI
    starts the watchdog before it loads the rest)."""
    if name == "LocalExecutor":
        from .local import LocalExecutor

        return LocalExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
