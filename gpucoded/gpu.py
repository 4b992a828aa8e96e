"""GPU-side helpers: kernel-backed encode/decode, GEMM precision control, placement.

Importing this module does not import CuPy; the functions that need it import it
lazily. The pure-Python pieces (placement, precision modes) are tested on CPU.

GEMM precision
--------------
A worker's float32 GEMM runs in one of four modes; each is a worker number format of
:mod:`gpucoded.formats` (unit roundoff, CuPy compute-type code), which the executor
reports so that the decode's bounds use the precision the GEMMs really had:

======== ================================================ ========== ==============
mode     how the GEMM is issued (CuPy 14.2)               format     use
======== ================================================ ========== ==============
ieee     ``cupy.matmul``, CuPy code 1 → ``COMPUTE_32F``   float32    default
pedantic ``cupy.matmul``, code 2 → ``COMPUTE_32F_PEDANTIC`` float32  reproducibility
tf32     ``cupy.matmul``, code 7 → ``COMPUTE_32F_FAST_TF32`` tf32    precision studies
bf16     ``cublas.gemmEx`` with ``COMPUTE_32F_FAST_16BF``  bf16       precision studies
======== ================================================ ========== ==============

CuPy's ``tensordot_core_v11`` maps only PEDANTIC and TF32 for float32: any other code
(BF16 included) becomes ``CUBLAS_COMPUTE_32F``, so :func:`gemm` calls cuBLAS
``gemmEx`` itself for ``bf16`` (cuBLAS may then round the operands to bfloat16 or
TF32; the bf16 format's unit roundoff bounds both). Batched (3-D) ``cupy.matmul``
calls ``gemmStridedBatchedEx`` with the data type as compute type and ignores the
setting: workers multiply 2-D slices. Every mode is set explicitly
(:func:`gemm_precision`), so ``CUPY_TF32=1`` can never switch float32 workers to TF32
silently. float64 GEMMs always use ``CUBLAS_COMPUTE_64F``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import kernels
from .formats import FORMATS, Format, get_format

__all__ = [
    "PRECISIONS",
    "PRECISION_MODES",
    "decode_products",
    "encode_pair",
    "gemm",
    "gemm_precision",
    "place_workers",
    "precision_format",
    "tf32_env_warning",
]

#: precision mode -> worker format of its float32 GEMMs (:data:`gpucoded.formats.FORMATS`)
PRECISION_MODES = {"ieee": "float32", "pedantic": "float32", "tf32": "tf32", "bf16": "bf16"}
_CT_PEDANTIC = 2  # CuPy's COMPUTE_TYPE_PEDANTIC (IEEE arithmetic, no reordering)
_CT_DEFAULT = FORMATS["float32"].cupy_compute_type
#: precision mode -> the CuPy compute type set for float32 ``cupy.matmul`` inside
#: :func:`gemm_precision` (bf16: the default, since CuPy does not map BF16; :func:`gemm`
#: issues those GEMMs itself)
PRECISIONS = {
    m: _CT_PEDANTIC
    if m == "pedantic"
    else (_CT_DEFAULT if f == "bf16" else FORMATS[f].cupy_compute_type)
    for m, f in PRECISION_MODES.items()
}


def _check_mode(mode: str) -> None:
    if mode not in PRECISION_MODES:
        raise ValueError(f"precision must be one of {sorted(PRECISION_MODES)}, got {mode!r}")


def precision_format(mode: str, dtype: Any) -> Format:
    """The format a worker GEMM on ``dtype`` operands computes in under ``mode``.

    float32: the mode's format (tf32, bf16, else float32); complex64: tf32 under
    ``"tf32"`` (CuPy maps complex TF32 too), else float32; float64/complex128: float64.
    """
    _check_mode(mode)
    fmt = get_format(dtype)
    if fmt.storage != np.dtype(np.float32):
        return fmt
    name = PRECISION_MODES[mode]
    if np.dtype(dtype).kind == "c" and name == "bf16":
        return fmt  # gemm() issues BF16 GEMMs for real data only
    return FORMATS[name]


def tf32_env_warning() -> str | None:
    """A message if the environment asks for TF32 behind the library's back."""
    v = os.environ.get("CUPY_TF32")
    if v not in (None, "", "0"):
        return f"CUPY_TF32={v} is set; gpucoded overrides it (precision='ieee')"
    return None


@contextlib.contextmanager
def gemm_precision(mode: str = "ieee") -> Iterator[None]:
    """Set the cuBLAS compute type of float32 ``cupy.matmul`` inside the block.

    Parameters
    ----------
    mode : {"ieee", "pedantic", "tf32", "bf16"}
        See the module docstring (``"bf16"`` sets the IEEE default: only :func:`gemm`
        issues BF16 GEMMs). The previous setting is restored on exit.
    """
    _check_mode(mode)
    from cupy._core import _routines_linalg as rl

    prev = rl.get_compute_type(np.float32)
    rl.set_compute_type(np.float32, PRECISIONS[mode])
    try:
        yield
    finally:
        rl.set_compute_type(np.float32, prev)


def gemm(a: Any, b: Any, mode: str = "ieee", out: Any = None) -> Any:
    """``a @ b`` for 2-D CuPy arrays on the current stream, in the mode's format.

    ``out``: optional C-contiguous (n, l) destination (allocated on the caller's
    stream, so its lifetime is ordered there).

    ``"bf16"`` with real float32 operands calls cuBLAS ``gemmEx`` with
    ``CUBLAS_COMPUTE_32F_FAST_16BF`` (row-major C = A B computed as the column-major
    :math:`C^T = B^T A^T`); every other case is ``cupy.matmul`` under the compute type
    :func:`gemm_precision` set.
    """
    import cupy as cp

    if mode != "bf16" or a.dtype != np.float32 or b.dtype != np.float32:
        return cp.matmul(a, b, out=out)
    from cupy_backends.cuda.libs import cublas

    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm needs 2-D operands (n, k) @ (k, l); got {a.shape}, {b.shape}")
    a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
    n, k = a.shape
    l = b.shape[1]
    c = cp.empty((n, l), dtype=np.float32) if out is None else out
    if c.shape != (n, l) or c.dtype != np.float32 or not c.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 (n, l) array")
    if n * l == 0:
        return c
    if k == 0:
        c.fill(0)
        return c
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)  # host pointer mode
    r32 = cp.cuda.runtime.CUDA_R_32F
    cublas.gemmEx(
        cp.cuda.device.get_cublas_handle(),
        cublas.CUBLAS_OP_N,
        cublas.CUBLAS_OP_N,
        l,
        n,
        k,
        one.ctypes.data,
        b.data.ptr,
        r32,
        l,
        a.data.ptr,
        r32,
        k,
        zero.ctypes.data,
        c.data.ptr,
        r32,
        l,
        cublas.CUBLAS_COMPUTE_32F_FAST_16BF,
        cublas.CUBLAS_GEMM_DEFAULT_TENSOR_OP,
    )
    return c


def place_workers(
    workers: Sequence[int], devices: Sequence[int], placement: Any = "round_robin"
) -> dict[int, int]:
    """Map each worker to a device.

    Parameters
    ----------
    workers : sequence of int
        Worker indices to place.
    devices : sequence of int
        Device ids available (non-empty).
    placement : "round_robin", "block", mapping or sequence
        ``round_robin``: the i-th listed worker goes to ``devices[i % D]``;
        ``block``: contiguous chunks of ``ceil(len/D)`` workers per device;
        a mapping ``{worker: device}`` or a sequence indexed by worker: as given.

    Returns
    -------
    dict
        ``{worker: device}``.
    """
    devs = [int(d) for d in devices]
    if not devs:
        raise ValueError("need at least one device")
    ws = [int(w) for w in workers]
    if isinstance(placement, str):
        if placement == "round_robin":
            return {w: devs[i % len(devs)] for i, w in enumerate(ws)}
        if placement == "block":
            per = -(-len(ws) // len(devs)) if ws else 1
            return {w: devs[i // per] for i, w in enumerate(ws)}
        raise ValueError(f"unknown placement {placement!r}")
    # a mapping {worker: device} and a sequence indexed by worker read alike
    return {w: int(placement[w]) for w in ws}


def _can_use_kernels(*arrays: Any) -> bool:
    """Whether the fused kernels have an instantiation for every array's dtype."""
    try:
        for a in arrays:
            kernels.ctype(a.dtype)
    except TypeError:
        return False
    return True


def encode_pair(
    A: Any, B: Any, GA: Any, GB: Any, grid: tuple[int, int, int], stream: Any = None
) -> tuple[Any, Any]:
    """Encoded stacks of A and B with the fused kernels (one pass over each).

    Parameters
    ----------
    A : cupy.ndarray (n, k), B : cupy.ndarray (k, l)
        Same real dtype: float32/float64, or float16 (float32 accumulation).
    GA : (P, p*s), GB : (P, s*t)
        Encoding coefficients (host or device; cast to the data dtype).
    grid : (p, s, t)

    Returns
    -------
    At : (P, rb, cb), Bt : (P, cb, db)
        ``At[w] = sum_a GA[w,a] A_a``, ``Bt[w] = sum_b GB[w,b] B_b``.
    """
    if not _can_use_kernels(A, B) or A.dtype != B.dtype:
        raise TypeError("encode_pair needs A and B of one real dtype (float16/32/64)")
    p, s, t = grid
    At = kernels.encode(A, GA, (p, s), stream=stream)
    Bt = kernels.encode(B, GB, (s, t), stream=stream)
    return At, Bt


def decode_products(
    products: Any, W: Any, grid: tuple[int, int], shape: tuple[int, int], stream: Any = None
) -> Any:
    """C in its final layout from the answers (one pass over them, no stacked copy).

    ``C[i rb + r, u db + x] = sum_k W[i t + u, k] products[k][r, x]`` for the
    ``grid = (p, t)`` block grid of C, cropped to ``shape``. ``products``: a
    (R, rb, db) stack or a sequence of R (rb, db) answers.
    """
    arrays = list(products) if isinstance(products, list | tuple) else [products]
    if not arrays or not _can_use_kernels(*arrays):
        raise TypeError("decode_products needs float16, float32 or float64 products")
    return kernels.decode(products, W, grid, shape, stream=stream)
