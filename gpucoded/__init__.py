"""gpucoded: straggler-tolerant coded matrix multiplication on CPUs and GPUs.

>>> import numpy as np, gpucoded
>>> A, B = np.random.rand(64, 48), np.random.rand(48, 32)
>>> C = gpucoded.coded_matmul(A, B, "matdot", m=3, P=6, failed=[0])
>>> bool(np.allclose(C, A @ B))
True
"""

from __future__ import annotations

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
