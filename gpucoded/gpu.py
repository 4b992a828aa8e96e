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

Reproducibility and cuBLAS handles
----------------------------------
cuBLAS gives bitwise identical results run to run only for the same GPU model (same
SM count), the same cuBLAS version, the same compute type and the same handle setup;
several streams sharing one handle share its workspace, and concurrent GEMMs on them
are then not reproducible (nor safe). CuPy keeps one handle per thread and device and
moves it to the current stream on each call, so concurrent worker GEMMs issued through
``cupy.matmul`` share it. The CUDA executor therefore gives every worker stream its own
handle (:func:`new_handle`, created once with the stream) and issues the GEMMs of real
float32/float64 workers with ``gemmEx`` on it (:func:`gemm` with ``handle=``), in
the mode's compute type:

========== ============================== ================================================
mode       compute type                   reproducible (same GPU, cuBLAS, handle setup)
========== ============================== ================================================
ieee       ``CUBLAS_COMPUTE_32F``         yes, no TF32 (a new handle has default math)
pedantic   ``CUBLAS_COMPUTE_32F_PEDANTIC`` yes; also no reduced-precision reductions
tf32       ``CUBLAS_COMPUTE_32F_FAST_TF32`` yes (TF32 operand rounding)
bf16       ``CUBLAS_COMPUTE_32F_FAST_16BF`` yes (BF16 operand rounding)
float64    ``CUBLAS_COMPUTE_64F``         yes
complex    CuPy's shared handle           no claim: concurrent workers share a workspace
========== ============================== ================================================

Not reproducible in any mode: results across GPU models, SM counts or cuBLAS versions
(another kernel may be chosen), and ``NVIDIA_TF32_OVERRIDE=1`` set in the environment.

Hardware queues
---------------
A CUDA context has ``CUDA_DEVICE_MAX_CONNECTIONS`` hardware work queues (default 8,
at most 32), read when the context is created; streams beyond that share queues round
robin, and an operation that waits (a delayed worker's spin, the GEMM behind it)
blocks every later operation of every stream on its queue. :func:`request_connections`
(called when :mod:`gpucoded.executors` is imported) sets 32 when the variable is unset
and CuPy is not imported yet, so no context exists; :func:`hardware_queues` is the
count the executor plans with (:func:`worker_stream_slots`).
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
    "COMPUTE_TYPES",
    "PRECISIONS",
    "PRECISION_MODES",
    "decode_products",
    "encode_pair",
    "gemm",
    "gemm_precision",
    "hardware_queues",
    "new_handle",
    "request_connections",
    "worker_stream_slots",
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


#: precision mode -> cuBLAS compute type of float32 gemmEx (cublasComputeType_t values)
COMPUTE_TYPES = {"ieee": 68, "pedantic": 69, "tf32": 77, "bf16": 75}
_COMPUTE_64F = 70
_CONNECTIONS_ENV = "CUDA_DEVICE_MAX_CONNECTIONS"
_DEFAULT_CONNECTIONS = 8
_MAX_CONNECTIONS = 32
#: whether :func:`request_connections` set the variable (before any CUDA context)
CONNECTIONS_SET = False


def request_connections(n: int = _MAX_CONNECTIONS) -> bool:
    """Ask for ``n`` hardware queues per device if no CUDA context can exist yet.

    Sets ``CUDA_DEVICE_MAX_CONNECTIONS`` only when it is unset and CuPy has not been
    imported (the driver reads it once, when a context is created). Returns whether
    it set it.
    """
    global CONNECTIONS_SET
    import sys

    if _CONNECTIONS_ENV in os.environ or "cupy" in sys.modules:
        return False
    os.environ[_CONNECTIONS_ENV] = str(int(n))
    CONNECTIONS_SET = True
    return True


def hardware_queues() -> int:
    """Hardware work queues per device: ``CUDA_DEVICE_MAX_CONNECTIONS`` (default 8, 1..32)."""
    try:
        n = int(os.environ.get(_CONNECTIONS_ENV, _DEFAULT_CONNECTIONS))
    except ValueError:
        n = _DEFAULT_CONNECTIONS
    return max(1, min(_MAX_CONNECTIONS, n))


def worker_stream_slots() -> int:
    """Worker streams per device that get hardware queues of their own.

    Two queues are left to the legacy default stream (encode, decode) and the
    executor's control stream (cancel writes): ``hardware_queues() - 2``, at least 1.
    """
    return max(1, hardware_queues() - 2)


def new_handle(stream: Any) -> int:
    """A new cuBLAS handle bound to ``stream`` (one per worker stream; destroy when done)."""
    from cupy_backends.cuda.libs import cublas

    h = cublas.create()
    cublas.setStream(h, stream.ptr)
    return h


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


_ONE = {np.dtype(np.float32): np.ones(1, np.float32), np.dtype(np.float64): np.ones(1)}
_ZERO = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1)}


def gemm(a: Any, b: Any, mode: str = "ieee", out: Any = None, handle: int | None = None) -> Any:
    """``a @ b`` for 2-D CuPy arrays on the current stream, in the mode's format.

    ``out``: optional C-contiguous (n, l) destination (allocated on the caller's
    stream, so its lifetime is ordered there).

    ``handle``: a cuBLAS handle of this caller's own (:func:`new_handle`, bound to
    the current stream); real float32/float64 operands then go through cuBLAS
    ``gemmEx`` on it with the mode's compute type (:data:`COMPUTE_TYPES`,
    ``CUBLAS_COMPUTE_64F``), the row-major C = A B computed as the column-major
    :math:`C^T = B^T A^T`. Without a handle, ``"bf16"`` with real float32 operands
    calls ``gemmEx`` on CuPy's handle (moved to the current stream first) with
    ``CUBLAS_COMPUTE_32F_FAST_16BF``; every other case is ``cupy.matmul`` under the
    compute type :func:`gemm_precision` set.
    """
    import cupy as cp

    real = a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
    bf16 = mode == "bf16" and a.dtype == np.float32 and b.dtype == np.float32
    if not real or (handle is None and not bf16):
        return cp.matmul(a, b, out=out)
    _check_mode(mode)
    from cupy_backends.cuda.libs import cublas

    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm needs 2-D operands (n, k) @ (k, l); got {a.shape}, {b.shape}")
    dt = np.dtype(a.dtype)
    a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
    n, k = a.shape
    l = b.shape[1]
    c = cp.empty((n, l), dtype=dt) if out is None else out
    if c.shape != (n, l) or c.dtype != dt or not c.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {dt} (n, l) array")
    if n * l == 0:
        return c
    if k == 0:
        c.fill(0)
        return c
    if handle is None:  # CuPy's handle: its stream is whatever the last CuPy call set
        handle = cp.cuda.device.get_cublas_handle()
        cublas.setStream(handle, cp.cuda.get_current_stream().ptr)
    if dt == np.float64:
        rt, ct = cp.cuda.runtime.CUDA_R_64F, _COMPUTE_64F
    else:
        rt, ct = cp.cuda.runtime.CUDA_R_32F, COMPUTE_TYPES[mode]
    cublas.gemmEx(
        handle,
        cublas.CUBLAS_OP_N,
        cublas.CUBLAS_OP_N,
        l,
        n,
        k,
        _ONE[dt].ctypes.data,  # host pointer mode
        b.data.ptr,
        rt,
        l,
        a.data.ptr,
        rt,
        k,
        _ZERO[dt].ctypes.data,
        c.data.ptr,
        rt,
        l,
        ct,
        cublas.CUBLAS_GEMM_DEFAULT if ct in (68, 69, _COMPUTE_64F) else
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


def fetch_together(parts: Sequence[Any]) -> list[np.ndarray]:
    """Device arrays (0-d or small) brought to the host in one transfer, as float64.

    The per-call scalars of a device product (the operands' norms, the answers'
    finiteness sums, the probes' statistics) are reduced on the device and come back
    together: they are raveled into one float64 device buffer and fetched with one
    ``.get()`` — the call's one host synchronisation. Returns one host array per part
    (its raveled values; complex parts are not accepted: pass their real statistics).
    """
    import cupy as cp

    flat = [cp.asarray(p).astype(cp.float64, copy=False).ravel() for p in parts]
    host = cp.concatenate(flat).get()
    cuts = np.cumsum([f.size for f in flat])[:-1]
    return np.split(host, cuts)
