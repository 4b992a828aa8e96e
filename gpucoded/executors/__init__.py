"""Executors: where the worker multiplies run (see :mod:`.base` for the interface).

========================  ==========================================================
``executor=``             executor
========================  ==========================================================
None                      the default :class:`ThreadExecutor` for NumPy inputs, the
                          default :class:`~.cuda.CudaStreamExecutor` of the input's
                          device for CuPy inputs
``"threads"``             the default :class:`ThreadExecutor`
``"serial"``              the default :class:`SerialExecutor` (deterministic, virtual
                          clock)
``"cuda"``                the default :class:`~.cuda.CudaStreamExecutor` of the
                          input's device (the current device for NumPy inputs)
``"dask"``                :class:`~.dask.DaskExecutor` on an embedded ``LocalCluster``
a ``distributed.Client``  :class:`~.dask.DaskExecutor` on that client's cluster
``"tcp://host:port"``     :class:`~.dask.DaskExecutor` on the scheduler at that address
an :class:`Executor`      used as is
========================  ==========================================================

Named executors are **long-lived**: :func:`get_executor` builds one per kind (and per
device for ``"cuda"``) on first use and returns that instance afterwards (one table,
:data:`KINDS`). A call therefore creates no thread pool, stream, event or cuBLAS
handle of its own, and work a call abandons (a straggler's GEMM still queued on a
CUDA stream) stays owned by an executor that outlives the call: the CUDA executor
keeps every input, output and cancel flag such work may touch until its completion
has been observed (:mod:`.cuda`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import gpu
from .base import Answer, Executor, Run
from .local import SerialExecutor, ThreadExecutor

# CUDA reads its hardware-queue count once, when a context is created: ask for 32 now,
# while no context can exist (only if unset and CuPy is not imported; see gpucoded.gpu)
gpu.request_connections()

__all__ = [
    "KINDS",
    "Answer",
    "Executor",
    "Run",
    "SerialExecutor",
    "ThreadExecutor",
    "get_executor",
    "reset_defaults",
]


def _cuda() -> Executor:
    from .cuda import CudaStreamExecutor

    return CudaStreamExecutor()


def _dask() -> Executor:
    from .dask import local_executor

    return local_executor()


#: executor kind -> (factory, one instance per device?); the one table of named kinds
KINDS: dict[str, tuple[Callable[[], Executor], bool]] = {
    "threads": (ThreadExecutor, False),
    "serial": (SerialExecutor, False),
    "cuda": (_cuda, True),
    "dask": (_dask, False),
}
#: (kind, device or None) -> the long-lived default executor of that kind
_DEFAULTS: dict[tuple[str, int | None], Executor] = {}
_LOCK = threading.Lock()


def _is_dask_client(obj: object) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


def _device_of(like: Any) -> int:
    """The CUDA device of ``like`` (a CuPy array), else the current device."""
    from ..backend import is_cupy_array

    if like is not None and is_cupy_array(like):
        return int(like.device.id)
    import cupy as cp

    return int(cp.cuda.Device().id)


def _default(kind: str, like: Any = None) -> Executor:
    factory, per_device = KINDS[kind]
    if kind == "dask":  # local_executor() keeps its own cluster
        return factory()
    if per_device:
        from .cuda import _require_device

        _require_device()
    key = (kind, _device_of(like) if per_device else None)
    with _LOCK:
        ex = _DEFAULTS.get(key)
        if ex is None:
            ex = _DEFAULTS[key] = factory()
            if per_device:
                ex.devices = [key[1]]  # type: ignore[attr-defined]
    return ex


def reset_defaults() -> None:
    """Close and forget the long-lived default executors (e.g. after a device reset).

    Waits for the CUDA executors' streams (abandoned work included) before dropping them.
    """
    with _LOCK:
        exs = list(_DEFAULTS.values())
        _DEFAULTS.clear()
    for ex in exs:
        close = getattr(ex, "close", None)
        if close is not None:
            close()


def get_executor(executor: object = None, *, like: Any = None) -> Executor:
    """Resolve ``coded_matmul``'s ``executor=`` argument to an :class:`Executor`.

    Parameters
    ----------
    executor : None, str, distributed.Client or Executor
        See the table in the module docstring; a named kind returns its long-lived
        default instance (the same object on every call).
    like : array, optional
        An input of the call: with ``executor=None`` a CuPy array selects the CUDA
        stream executor of its device, anything else the thread executor.
    """
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        from ..backend import is_cupy_array

        kind = "cuda" if like is not None and is_cupy_array(like) else "threads"
        return _default(kind, like)
    if _is_dask_client(executor):
        from .dask import DaskExecutor

        return DaskExecutor(executor)
    if isinstance(executor, str):
        if executor in KINDS:
            return _default(executor, like)
        if "://" in executor or ":" in executor:
            from .dask import DaskExecutor

            return DaskExecutor(executor)
    raise ValueError(
        f"unknown executor {executor!r}; use one of {', '.join(map(repr, KINDS))}, a "
        "dask scheduler address ('tcp://host:port'), a distributed.Client or an "
        "Executor instance"
    )
