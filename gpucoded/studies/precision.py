r"""Worker arithmetic formats for the precision studies.

=========  ==================  ================================  ===========================
name       storage             unit roundoff :math:`u`           how the worker GEMM runs
=========  ==================  ================================  ===========================
float64    float64             :math:`2^{-53}`                   IEEE float64
float32    float32             :math:`2^{-24}`                   IEEE float32
tf32       float32             :math:`2^{-11}` (10-bit mantissa)  GPU: cuBLAS TF32 tensor cores;
                                                                  CPU: operands rounded to TF32,
                                                                  float32 accumulation
bf16       float32             :math:`2^{-8}` (7-bit mantissa)    GPU: cuBLAS BF16 compute type;
                                                                  CPU: emulated as for tf32
=========  ==================  ================================  ===========================

The CPU emulation is what a tensor core does (operands in the short format, products
exact, accumulation in float32), so CPU and GPU numbers agree to within the
accumulation order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_module, is_cupy_array

__all__ = ["WORKER_DTYPES", "round_mantissa", "storage_dtype", "unit_roundoff", "worker_matmul"]

#: worker format -> (storage dtype, mantissa bits kept (None: all), unit roundoff)
_FORMATS: dict[str, tuple[type, int | None, float]] = {
    "float64": (np.float64, None, 2.0**-53),
    "float32": (np.float32, None, 2.0**-24),
    "tf32": (np.float32, 10, 2.0**-11),
    "bf16": (np.float32, 7, 2.0**-8),
}
WORKER_DTYPES = tuple(_FORMATS)


def _check(name: str) -> tuple[type, int | None, float]:
    try:
        return _FORMATS[str(name)]
    except KeyError:
        raise ValueError(
            f"unknown worker dtype {name!r}; choose one of {', '.join(WORKER_DTYPES)}"
        ) from None


def storage_dtype(name: str) -> np.dtype:
    """Array dtype the encoded data and the answers are stored in."""
    return np.dtype(_check(name)[0])


def unit_roundoff(name: str) -> float:
    """Unit roundoff :math:`u` of the worker format (half a unit in the last place)."""
    return _check(name)[2]


def round_mantissa(X: Any, bits: int) -> Any:
    """Round float32 values to ``bits`` explicit mantissa bits (round to nearest even).

    Works on NumPy and CuPy arrays; exponent range is that of float32 (as TF32/BF16).
    """
    xp = array_module(X)
    if X.dtype != np.float32:
        raise TypeError(f"round_mantissa expects float32, got {X.dtype}")
    if not 0 <= bits <= 23:
        raise ValueError(f"bits must be in [0, 23], got {bits}")
    drop = 23 - bits
    if drop == 0:
        return X
    u = X.view(xp.uint32)
    lsb = (u >> drop) & xp.uint32(1)
    bias = lsb + xp.uint32((1 << (drop - 1)) - 1)
    mask = xp.uint32((0xFFFFFFFF >> drop) << drop)
    return ((u + bias) & mask).view(xp.float32)


def worker_matmul(At: Any, Bt: Any, name: str) -> Any:
    """Batched worker products ``At @ Bt`` in the worker format ``name``.

    Parameters
    ----------
    At : array (P, rb, cb), Bt : array (P, cb, db)
        Encoded operands in :func:`storage_dtype` of ``name``.
    """
    _, bits, _ = _check(name)
    if is_cupy_array(At):
        import cupy as cp

        from ..gpu import gemm, gemm_precision

        # one 2-D GEMM per worker: CuPy's batched (3-D) matmul ignores the compute type;
        # explicit mode: float32 stays IEEE even if CUPY_TF32 is set
        mode = name if bits is not None else "ieee"
        out = cp.empty((At.shape[0], At.shape[1], Bt.shape[2]), dtype=At.dtype)
        with gemm_precision(mode):
            for w in range(At.shape[0]):
                gemm(At[w], Bt[w], mode, out=out[w])
        return out
    if bits is None:
        return At @ Bt
    return round_mantissa(At, bits) @ round_mantissa(Bt, bits)
