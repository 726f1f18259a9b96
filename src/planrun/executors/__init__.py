"""Executors: adapters that run one attempt of a step (see ``planrun.ports.Executor``)."""

from .local import LocalExecutor

__all__ = ["LocalExecutor"]
