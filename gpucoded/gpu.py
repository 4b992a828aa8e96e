"""GPU-side helpers: kernel-backed encode/decode, GEMM precision control, placement.

Importing this module does not import CuPy; the functions that need it import it
lazily. The pure-Python pieces (placement, precision table) are tested on CPU.

GEMM precision
--------------
CuPy picks the cuBLAS compute type of ``matmul`` per dtype through
``cupy._core._routines_linalg.set_compute_type``; float32 uses
``CUBLAS_COMPUTE_32F`` (IEEE, no TF32) unless ``CUPY_TF32=1`` was set. Workers
run inside :func:`gemm_precision`, which sets the compute type explicitly, so an
environment variable can never switch float32 workers to TF32 silently:

======== ========================================= ====================
mode     cuBLAS compute type (float32 GEMMs)        use
======== ========================================= ====================
ieee     ``CUBLAS_COMPUTE_32F`` (CuPy "DEFAULT")     default
pedantic ``CUBLAS_COMPUTE_32F_PEDANTIC``             reproducibility
tf32     ``CUBLAS_COMPUTE_32F_FAST_TF32``            precision studies
bf16     ``CUBLAS_COMPUTE_32F_FAST_16BF``            precision studies
======== ========================================= ====================

float64 GEMMs always use ``CUBLAS_COMPUTE_64F``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import kernels

__all__ = [
    "PRECISIONS",
    "decode_products",
    "encode_pair",
    "gemm_precision",
    "place_workers",
    "tf32_env_warning",
]

# CuPy's compute-type enum (cupy/_core/_routines_linalg.pxd).
_CT_DEFAULT, _CT_PEDANTIC, _CT_BF16, _CT_TF32 = 1, 2, 6, 7
#: precision mode -> CuPy compute type for float32 GEMMs
PRECISIONS = {"ieee": _CT_DEFAULT, "pedantic": _CT_PEDANTIC, "tf32": _CT_TF32, "bf16": _CT_BF16}


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
        See the module docstring. The previous setting is restored on exit.
    """
    if mode not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {mode!r}")
    from cupy._core import _routines_linalg as rl

    prev = rl.get_compute_type(np.float32)
    rl.set_compute_type(np.float32, PRECISIONS[mode])
    try:
        yield
    finally:
        rl.set_compute_type(np.float32, prev)


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
    if isinstance(placement, dict):
        out = {w: int(placement[w]) for w in ws}
    else:
        out = {w: int(placement[w]) for w in ws}
    return out


def _can_use_kernels(*arrays: Any) -> bool:
    ok = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
    return all(np.dtype(a.dtype) in ok for a in arrays)


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
    """C in its final layout from the stacked answers (one pass over them).

    ``C[i rb + r, u db + x] = sum_k W[i t + u, k] products[k, r, x]`` for the
    ``grid = (p, t)`` block grid of C, cropped to ``shape``.
    """
    if not _can_use_kernels(products):
        raise TypeError("decode_products needs float16, float32 or float64 products")
    return kernels.decode(products, W, grid, shape, stream=stream)
