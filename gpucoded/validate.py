"""Input checks done once, before any worker runs. Each error names the argument and the fix.

What is accepted
----------------
* Operands: 2-D, non-empty NumPy or CuPy arrays (or Python sequences, converted with
  :func:`numpy.asarray`) of dtype float32, float64, complex64 or complex128, with
  ``A.shape[1] == B.shape[0]``. Integer, bool, float16 and object arrays are refused
  (convert explicitly: an implicit cast would hide a precision choice). Both operands
  live on the same side (host or device) and, on the device, on the same GPU.
* Any memory layout: transposed, Fortran-ordered and strided views work; the encode
  copies each operand once into the contiguous blocks the workers use.
* NaN/Inf: ``nonfinite="raise"`` refuses them; ``"propagate"`` computes anyway, sets
  ``CallInfo.nonfinite_input`` and stops treating NaN answers as worker faults.
* Splits finer than the matrix (m or p·q larger than the dimension it splits, e.g. a
  1×1 product with m = 3) are **allowed**: the blocks are zero padded, the padding
  blocks are zero and the result is exact up to the reported bound. It is wasteful,
  never wrong.
* Integer parameters (m, P, p, q, r, answers) must be Python/NumPy integers ≥ 1.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .backend import array_module, is_cupy_array
from .formats import FORMATS

__all__ = [
    "SUPPORTED_DTYPES",
    "check_count",
    "check_operands",
    "check_same_device",
    "inputs_finite",
]

_REAL = sorted({f.storage for f in FORMATS.values()}, key=lambda d: d.itemsize)
#: dtypes the codes compute in: the storage dtypes of :data:`gpucoded.formats.FORMATS`
#: and their complex types (float32, float64, complex64, complex128); inputs of other
#: kinds (float16, integers, ...) are refused, not cast.
SUPPORTED_DTYPES: tuple[type, ...] = tuple(
    d.type for d in [*_REAL, *(np.result_type(d, np.complex64) for d in _REAL)]
)
_SUPPORTED_NAMES = ", ".join(np.dtype(t).name for t in SUPPORTED_DTYPES)


def check_count(name: str, value: Any, minimum: int = 1) -> int | None:
    """An integer parameter (``m``, ``P``, ``p``, ``q``, ``r``, ``answers``), or None.

    Raises
    ------
    TypeError
        ``value`` is not an integer (bools and floats such as 2.0 are refused).
    ValueError
        ``value < minimum``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_same_device(A: Any, B: Any) -> None:
    """Refuse CuPy operands on different GPUs (an implicit peer copy would be hidden).

    Raises
    ------
    ValueError
        ``A.device != B.device``.
    """
    da, db = getattr(A, "device", None), getattr(B, "device", None)
    ida, idb = getattr(da, "id", da), getattr(db, "id", db)
    if ida is not None and idb is not None and ida != idb:
        raise ValueError(
            f"A is on GPU {ida} and B on GPU {idb}: put both on one device first "
            f"(e.g. with cupy.cuda.Device({ida}): B = cupy.asarray(B))"
        )


def _as_array(name: str, X: Any) -> Any:
    if is_cupy_array(X) or isinstance(X, np.ndarray):
        return X
    try:
        return np.asarray(X)
    except (ValueError, TypeError) as e:  # ragged nested sequences
        raise TypeError(
            f"{name} cannot be converted to a matrix ({e}); pass a 2-D numpy or cupy array"
        ) from e


def check_operands(A: Any, B: Any, *, nonfinite: str = "raise") -> tuple[Any, Any]:
    """Validate the operands of ``coded_matmul``.

    Parameters
    ----------
    A, B : array-like
        2-D, non-empty, ``A.shape[1] == B.shape[0]``, float32/float64/complex.
        Python sequences are converted to NumPy arrays.
    nonfinite : {"raise", "propagate"}
        What to do with NaN/Inf in the inputs.

    Returns
    -------
    A, B as arrays of one namespace (NumPy or CuPy).

    Raises
    ------
    TypeError
        Unsupported dtype, mixed NumPy/CuPy operands, non-array input.
    ValueError
        Wrong dimensionality, empty operand, inner dimensions differ, operands on
        different GPUs, NaN/Inf with ``nonfinite="raise"``, unknown ``nonfinite``.
    """
    if nonfinite not in ("raise", "propagate"):
        raise ValueError(f"nonfinite must be 'raise' or 'propagate', got {nonfinite!r}")
    A, B = _as_array("A", A), _as_array("B", B)
    xp = array_module(A, B)
    for name, X in (("A", A), ("B", B)):
        if X.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D matrix; got {X.ndim}-D array of shape {X.shape} "
                f"(reshape it, e.g. {name}.reshape(-1, 1) for a column)"
            )
        if X.size == 0:
            raise ValueError(
                f"{name} is empty (shape {X.shape}); both operands need at least 1 entry"
            )
        if X.dtype.type not in SUPPORTED_DTYPES:
            raise TypeError(
                f"{name} has dtype {X.dtype}; supported: {_SUPPORTED_NAMES} "
                f"(convert with {name}.astype(numpy.float64))"
            )
    if A.shape[1] != B.shape[0]:
        raise ValueError(
            f"inner dimensions differ: A is {A.shape[0]}x{A.shape[1]}, B is "
            f"{B.shape[0]}x{B.shape[1]} (need A.shape[1] == B.shape[0])"
        )
    if xp is not np:
        check_same_device(A, B)
    if nonfinite == "raise":
        for name, X in (("A", A), ("B", B)):
            if not bool(xp.isfinite(X).all()):
                raise ValueError(
                    f"{name} contains NaN or Inf; clean the input or pass nonfinite='propagate'"
                )
    return A, B


def inputs_finite(A: Any, B: Any) -> bool:
    """Whether both operands are free of NaN and Inf (one reduction each)."""
    xp = array_module(A, B)
    return bool(xp.isfinite(A).all()) and bool(xp.isfinite(B).all())
