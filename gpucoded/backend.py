"""The one place that knows NumPy from CuPy.

Every array routine in the library takes its namespace from :func:`array_module`
(``numpy`` or ``cupy``) so that the same code runs on the host and on a device.
CuPy is imported lazily and counted as usable only when
``cupy.cuda.is_available()`` is true: importing CuPy on a machine without a
GPU succeeds, but nothing can run there.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_module", "cupy_or_none", "gpu_available", "is_cupy_array", "to_numpy"]


@functools.cache
def cupy_or_none() -> ModuleType | None:
    """Return the ``cupy`` module if it imports and a CUDA device is usable, else None."""
    try:
        import cupy
    except Exception:  # ImportError, or a broken CUDA install raising at import
        return None
    try:
        if not cupy.cuda.is_available():
            return None
    except Exception:
        return None
    return cupy


def gpu_available() -> bool:
    """True when CuPy is installed and at least one CUDA device can be used."""
    return cupy_or_none() is not None


def is_cupy_array(x: Any) -> bool:
    """True for a ``cupy.ndarray`` (checked without importing CuPy)."""
    t = type(x)
    if t is np.ndarray:  # the common case, on every call's hot path
        return False
    return t.__module__.split(".")[0] == "cupy"


def array_module(*arrays: Any) -> ModuleType:
    """Namespace (``numpy`` or ``cupy``) for the given arrays.

    Raises
    ------
    TypeError
        If NumPy and CuPy arrays are mixed: the caller must move them to one side
        first (an implicit transfer would hide a host/device round-trip).
    """
    for a in arrays:  # the common case, every call's hot path: NumPy arrays only
        if type(a) is not np.ndarray and a is not None:
            break
    else:
        return np
    kinds = {is_cupy_array(a) for a in arrays if a is not None}
    if kinds == {True, False}:
        raise TypeError(
            "mixed NumPy and CuPy arrays: move all inputs to the host (cupy.asnumpy) "
            "or to the device (cupy.asarray) before calling"
        )
    if True in kinds:
        import cupy

        return cupy
    return np


def to_numpy(x: Any) -> np.ndarray:
    """Host copy of an array from either backend."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)
