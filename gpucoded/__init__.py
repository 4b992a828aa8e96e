"""gpucoded: straggler-tolerant coded matrix multiplication on CPUs and GPUs.

>>> import numpy as np, gpucoded
>>> A, B = np.random.rand(64, 48), np.random.rand(48, 32)
>>> C = gpucoded.coded_matmul(A, B, "matdot", m=3, P=6, failed=[0])
>>> bool(np.allclose(C, A @ B))
True
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from . import codes, points
from .api import CallInfo, coded_matmul
from .backend import gpu_available
from .codes import make_code
from .errors import (
    CorruptAnswerError,
    CorruptionWarning,
    InaccurateResultError,
    InaccurateResultWarning,
    NotEnoughAnswersError,
)
from .operators import CodedMatrix

__all__ = [
    "CallInfo",
    "CodedMatrix",
    "CorruptAnswerError",
    "CorruptionWarning",
    "InaccurateResultError",
    "InaccurateResultWarning",
    "NotEnoughAnswersError",
    "codes",
    "coded_matmul",
    "gpu_available",
    "make_code",
    "points",
]
__version__ = "0.1.0"


def _submodules() -> list[str]:
    """The public submodules and subpackages (no leading underscore)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name: str) -> Any:
    """``gpucoded.stragglers`` etc.: every public submodule, imported on first use.

    Importing them all eagerly would make ``import gpucoded`` pay for Dask, CuPy
    and the studies; this keeps ``import gpucoded`` light and still makes
    ``gpucoded.<submodule>`` work without a separate import.
    """
    if name in _submodules():
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gpucoded' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_submodules()})
