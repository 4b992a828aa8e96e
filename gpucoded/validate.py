"""Input checks done once, before any worker runs. Each error names the argument and the fix."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import array_module, is_cupy_array

__all__ = ["SUPPORTED_DTYPES", "check_operands"]

#: dtypes the codes compute in (inputs of other float kinds are refused, not cast).
SUPPORTED_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


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
    """
    if not is_cupy_array(A) and not isinstance(A, np.ndarray):
        A = np.asarray(A)
    if not is_cupy_array(B) and not isinstance(B, np.ndarray):
        B = np.asarray(B)
    xp = array_module(A, B)
    for name, X in (("A", A), ("B", B)):
        if X.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D matrix; got {X.ndim}-D array of shape {X.shape}"
            )
        if X.size == 0:
            raise ValueError(
                f"{name} is empty (shape {X.shape}); both operands need at least 1 entry"
            )
        if X.dtype.type not in SUPPORTED_DTYPES:
            raise TypeError(
                f"{name} has dtype {X.dtype}; supported: float32, float64, complex64, "
                f"complex128 (convert with {name}.astype(numpy.float64))"
            )
    if A.shape[1] != B.shape[0]:
        raise ValueError(
            f"inner dimensions differ: A is {A.shape[0]}x{A.shape[1]}, B is "
            f"{B.shape[0]}x{B.shape[1]} (need A.shape[1] == B.shape[0])"
        )
    if nonfinite not in ("raise", "propagate"):
        raise ValueError(f"nonfinite must be 'raise' or 'propagate', got {nonfinite!r}")
    if nonfinite == "raise":
        for name, X in (("A", A), ("B", B)):
            if not bool(xp.isfinite(X).all()):
                raise ValueError(
                    f"{name} contains NaN or Inf; clean the input or pass nonfinite='propagate'"
                )
    return A, B
