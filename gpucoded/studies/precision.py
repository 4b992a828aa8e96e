r"""Worker GEMMs in a chosen worker format, for the precision studies.

The formats themselves (storage dtype, unit roundoff, mantissa bits) are the rows of
:data:`gpucoded.formats.FORMATS`. On the GPU a TF32/BF16 GEMM runs with cuBLAS's
compute type; on the CPU the operands are rounded to the format
(:func:`gpucoded.formats.round_operands`) and multiplied with float32 accumulation,
which is what a tensor core does (products exact, float32 sums), so CPU and GPU
numbers agree to within the accumulation order.
"""

from __future__ import annotations

import contextlib
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
        from ..gpu import gemm_precision

        # explicit compute type: float32 stays IEEE even if CUPY_TF32 is set
        ctx = gemm_precision(fmt.name if fmt.emulated else "ieee")
    elif not fmt.emulated:
        return At @ Bt
    else:
        ctx = contextlib.nullcontext()
        At, Bt = round_operands(At, fmt), round_operands(Bt, fmt)
    with ctx:
        return At @ Bt
