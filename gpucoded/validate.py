"""Input checks done once, before any worker runs. Each error names the argument and the fix.

What is accepted
----------------
* Operands: 2-D NumPy or CuPy arrays (or Python sequences, converted with
  :func:`numpy.asarray`) with ``A.shape[1] == B.shape[0]``. Both live on the same side
  (host or device) and, on the device, on the same GPU.
* dtypes, one rule (:func:`working_dtype`): the product is computed in and returned
  as ``np.result_type(A, B)``, promoted where the workers have no such format:

  ============================  =======================  ============================
  ``np.result_type(A, B)``      workers and result       as
  ============================  =======================  ============================
  float32, float64, complex     the same                 NumPy
  bool, (u)int8 ... (u)int64    float64                  ``scipy.linalg``
  float16                       float32                  ``scipy.linalg``
  longdouble, object, str, ...  refused (``TypeError``)
  ============================  =======================  ============================

  So ``uint8 @ uint8`` (MNIST pixels as stored) gives the exact float64 product
  where NumPy's integer matmul wraps around modulo 256, and ``bool @ bool`` counts
  (NumPy's gives their logical OR of ANDs); integers up to :math:`2^{53}` are exact
  in float64. Only an operand whose own dtype the workers lack is converted (once);
  float32 with float64 stays mixed and computes in float64, as ``np.result_type``
  says.
* Empty operands are not an error: a product with a zero dimension is NumPy's
  (``(4, 0) @ (0, 3)`` is ``zeros((4, 3))``, ``(0, 5) @ (5, 3)`` is empty), returned
  by :func:`empty_product` before any code or worker is involved.
* Any memory layout: transposed, Fortran-ordered and strided views work; the encode
  copies each operand once into the contiguous blocks the workers use.
* NaN/Inf: ``nonfinite="raise"`` refuses them; ``"propagate"`` computes anyway, sets
  ``CallInfo.nonfinite_input`` and stops treating NaN answers as worker faults. Host
  operands are refused before any worker runs (the NaN/Inf look is folded into the
  norm pass the bound needs); device operands from the same norms, reduced on the
  device and brought back with the call's other scalars in its one host
  synchronisation (:func:`gpucoded.pipeline.resolve`): after the workers ran, with the
  same error, nothing returned — a refusal before them would cost every call one more
  synchronisation.
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
    "check_inner",
    "check_same_device",
    "empty_product",
    "inputs_finite",
    "working_dtype",
]

_REAL = sorted({f.storage for f in FORMATS.values()}, key=lambda d: d.itemsize)
#: dtypes the codes compute in: the storage dtypes of :data:`gpucoded.formats.FORMATS`
#: and their complex types (float32, float64, complex64, complex128); bool, integer and
#: float16 inputs are promoted (:func:`working_dtype`), others refused.
SUPPORTED_DTYPES: tuple[type, ...] = tuple(
    d.type for d in [*_REAL, *(np.result_type(d, np.complex64) for d in _REAL)]
)
_SUPPORTED_NAMES = ", ".join(np.dtype(t).name for t in SUPPORTED_DTYPES)


def working_dtype(*dtypes: Any) -> np.dtype:
    """The dtype a product of operands of these dtypes is computed in and returned as.

    ``np.result_type(*dtypes)``, with bool and integer types promoted to float64 and
    float16 to float32 (what ``scipy.linalg`` does: the workers have no integer or
    half-precision format); see the module docstring.

    Raises
    ------
    TypeError
        A dtype with no such promotion (longdouble, object, strings, ...).
    """
    try:
        rt = np.result_type(*dtypes)
    except TypeError:
        rt = np.dtype(object)
    if rt.kind in "biu":
        return np.dtype(np.float64)
    if rt == np.float16:
        return np.dtype(np.float32)
    if rt.type not in SUPPORTED_DTYPES:
        names = " and ".join(str(np.dtype(d)) for d in dtypes)
        raise TypeError(
            f"operands of dtype {names} have no coded product; supported: {_SUPPORTED_NAMES}"
            ", and bool/integers (computed in float64) and float16 (in float32): "
            "convert with .astype(numpy.float64)"
        )
    return rt


def check_inner(A: Any, B: Any, names: tuple[str, str] = ("A", "B")) -> None:
    """Refuse ``A @ B`` whose inner dimensions differ, naming the shapes as given.

    ``A`` and ``B`` are arrays as the user passed them (1-D, 2-D or stacks, with
    ``np.matmul`` semantics: a 1-D B is a column), so the message shows the user's
    shapes, not the 2-D products they are folded into.

    Raises
    ------
    ValueError
        ``A.shape[-1] != B.shape[-2]`` (``B.shape[0]`` for a 1-D B).
    """
    sa, sb = tuple(getattr(A, "shape", ())), tuple(getattr(B, "shape", ()))
    if not sa or not sb:
        return  # scalars: matmul_plan says it
    ka, kb = sa[-1], sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        where = "the length" if len(sb) == 1 else "the second-to-last axis"
        raise ValueError(
            f"inner dimensions differ: {names[0]} has shape {sa} and {names[1]} has shape "
            f"{sb}; the last axis of {names[0]} ({ka}) must match {where} of {names[1]} ({kb})"
        )


def empty_product(A: Any, B: Any) -> Any | None:
    """NumPy's result of ``A @ B`` when there is nothing to multiply, or None.

    When an operand has a zero dimension, ``np.matmul`` returns zeros of the result's
    shape (all zero when the inner dimension is 0, an empty array otherwise); so does
    this, in :func:`working_dtype`, on the operands' side (NumPy or CuPy), with the
    shape NumPy gives (1-D operands and stacks included). No code is needed and no
    worker runs.
    """
    A, B = _as_array("A", A), _as_array("B", B)
    if A.size and B.size:
        return None
    dt = working_dtype(A.dtype, B.dtype)
    # NumPy's own shape rules, on zero-stride stand-ins (no memory)
    shape = np.matmul(*(np.broadcast_to(np.int8(0), X.shape) for X in (A, B))).shape
    return array_module(A, B).zeros(shape, dtype=dt)


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
        2-D, ``A.shape[1] == B.shape[0]``; dtypes as :func:`working_dtype` says
        (bool, integer and float16 operands are converted). Python sequences are
        converted to NumPy arrays. Non-empty: callers answer empty products first
        (:func:`empty_product`).
    nonfinite : {"raise", "propagate"}
        What to do with NaN/Inf in the inputs.

    Returns
    -------
    A, B as arrays of one namespace (NumPy or CuPy), in dtypes the workers have.

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
    for name, X in (("A", A), ("B", B)):
        if X.size == 0:  # coded_matmul and CodedMatrix answer these before (empty_product)
            raise ValueError(
                f"{name} is empty (shape {X.shape}): nothing to encode; coded_matmul and "
                "CodedMatrix products return NumPy's (zero or empty) result for these"
            )
        try:
            working_dtype(X.dtype)
        except TypeError:
            raise TypeError(
                f"{name} has dtype {X.dtype}; supported: {_SUPPORTED_NAMES}, and bool/"
                f"integers (computed in float64) and float16 (in float32): convert with "
                f"{name}.astype(numpy.float64)"
            ) from None
    dt = working_dtype(A.dtype, B.dtype)
    # only an operand whose own dtype the workers lack is converted (once, here)
    A = A if A.dtype.type in SUPPORTED_DTYPES else A.astype(dt)
    B = B if B.dtype.type in SUPPORTED_DTYPES else B.astype(dt)
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
