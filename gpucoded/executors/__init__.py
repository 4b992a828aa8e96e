"""Executors: where the worker multiplies run (see :mod:`.base` for the interface).

========================  ==========================================================
``executor=``             executor
========================  ==========================================================
None                      :class:`ThreadExecutor` for NumPy inputs,
                          :class:`~.cuda.CudaStreamExecutor` for CuPy inputs
``"threads"``             :class:`ThreadExecutor`
``"serial"``              :class:`SerialExecutor` (deterministic, virtual clock)
``"cuda"``                :class:`~.cuda.CudaStreamExecutor`
``"dask"``                :class:`~.dask.DaskExecutor` on an embedded ``LocalCluster``
a ``distributed.Client``  :class:`~.dask.DaskExecutor` on that client's cluster
``"tcp://host:port"``     :class:`~.dask.DaskExecutor` on the scheduler at that address
an :class:`Executor`      used as is
========================  ==========================================================
"""

from __future__ import annotations

from typing import Any

from .base import Answer, Executor, Run
from .local import SerialExecutor, ThreadExecutor

__all__ = ["Answer", "Executor", "Run", "SerialExecutor", "ThreadExecutor", "get_executor"]

_NAMES = ("threads", "serial", "cuda", "dask")


def _is_dask_client(obj: object) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


def get_executor(executor: object = None, *, like: Any = None) -> Executor:
    """Resolve ``coded_matmul``'s ``executor=`` argument to an :class:`Executor`.

    Parameters
    ----------
    executor : None, str, distributed.Client or Executor
        See the table in the module docstring.
    like : array, optional
        An input of the call: with ``executor=None`` a CuPy array selects the CUDA
        stream executor, anything else the thread executor.
    """
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        from ..backend import is_cupy_array

        if like is not None and is_cupy_array(like):
            from .cuda import CudaStreamExecutor

            return CudaStreamExecutor()
        return ThreadExecutor()
    if _is_dask_client(executor):
        from .dask import DaskExecutor

        return DaskExecutor(executor)
    if isinstance(executor, str):
        if executor == "threads":
            return ThreadExecutor()
        if executor == "serial":
            return SerialExecutor()
        if executor == "cuda":
            from .cuda import CudaStreamExecutor

            return CudaStreamExecutor()
        if executor == "dask":
            from .dask import local_executor

            return local_executor()
        if "://" in executor or ":" in executor:
            from .dask import DaskExecutor

            return DaskExecutor(executor)
    raise ValueError(
        f"unknown executor {executor!r}; use one of {', '.join(map(repr, _NAMES))}, a "
        "dask scheduler address ('tcp://host:port'), a distributed.Client or an "
        "Executor instance"
    )
