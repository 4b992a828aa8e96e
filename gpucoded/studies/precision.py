r"""Worker GEMMs in a chosen worker format, for the precision studies.

The formats themselves (storage dtype, unit roundoff, mantissa bits) are the rows of
:data:`gpucoded.formats.FORMATS`. On the GPU a TF32/BF16 GEMM runs with cuBLAS's
compute type; on the CPU the operands are rounded to the format
(:func:`gpucoded.formats.round_operands`) and multiplied with float32 accumulation,
which is what a tensor core does (products exact, float32 sums), so CPU and GPU
numbers agree to within the accumulation order.
"""

from __future__ import annotations

from typing import Any

from ..backend import is_cupy_array
from ..formats import get_format, round_operands

__all__ = ["worker_matmul"]


def worker_matmul(At: Any, Bt: Any, name: str) -> Any:
    """Batched worker products ``At @ Bt`` in the worker format ``name``.

    Parameters
    ----------
    At : array (P, rb, cb), Bt : array (P, cb, db)
        Encoded operands in the storage dtype of ``name``
        (``gpucoded.formats.get_format(name).storage``).
    name : str
        A key of :data:`gpucoded.formats.FORMATS`.
    """
    fmt = get_format(name)
    if is_cupy_array(At):
        import cupy as cp

        from ..gpu import gemm, gemm_precision

        # one 2-D GEMM per worker: CuPy's batched (3-D) matmul ignores the compute type;
        # explicit mode: float32 stays IEEE even if CUPY_TF32 is set
        mode = fmt.name if fmt.emulated else "ieee"
        out = cp.empty((At.shape[0], At.shape[1], Bt.shape[2]), dtype=At.dtype)
        with gemm_precision(mode):
            for w in range(At.shape[0]):
                gemm(At[w], Bt[w], mode, out=out[w])
        return out
    if not fmt.emulated:
        return At @ Bt
    return round_operands(At, fmt) @ round_operands(Bt, fmt)
