"""Executors: where the worker multiplies run (see :mod:`.base` for the interface)."""

from __future__ import annotations

from .base import Answer, Executor, Run
from .local import SerialExecutor

__all__ = ["Answer", "Executor", "Run", "SerialExecutor", "get_executor"]


def get_executor(executor: object = None) -> Executor:
    """Resolve ``coded_matmul``'s ``executor=`` argument to an :class:`Executor`.

    None -> the default local executor; an :class:`Executor` instance is used as is;
    the name ``"serial"`` selects :class:`SerialExecutor`.
    """
    if executor is None or executor == "serial":
        return SerialExecutor()
    if isinstance(executor, Executor):
        return executor
    raise ValueError(f"unknown executor {executor!r}; use 'serial' or an Executor instance")
