r"""Where encode and decode run: one table of paths for NumPy / compiled host / CUDA.

Every code encodes and decodes with the same two linear maps (:mod:`gpucoded.codes.base`):
:math:`\tilde A_w=\sum_aG_A[w,a]A_a` and :math:`\hat C_c=\sum_kW[c,k]\tilde C_{s_k}`.
Which implementation runs depends only on where the data lives and its dtype
(:func:`path_of`), looked up in :data:`ENCODERS` and :data:`COMBINERS` (as opt_einsum
keeps one backend table):

``"host"``
    NumPy arrays: the compiled CPU loops of :mod:`gpucoded.hostops` (real
    float32/float64, OpenMP) into pooled workspaces, else NumPy matmuls into the same
    buffers; separate answers are summed in place (:meth:`BlockGrid.combine`), a stack
    by one GEMM. Small stacks (fewer than :data:`HOST_LOOPS_FROM` entries) take the
    ``"array"`` path's batched matmuls instead: there the loops' fixed cost per call
    is more than the arithmetic.
``"cuda"``
    Real CuPy arrays: the fused CUDA kernels of :mod:`gpucoded.gpu` (one pass over A
    and B; the decode writes C in place from the answers, no stack).
``"array"``
    Other device arrays (complex CuPy): one GEMM per side on the array namespace.

All paths compute the same sums in the storage dtype; they differ in memory traffic,
not in rounding beyond the order of the sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import hostops
from ..backend import array_module
from .grid import BlockGrid

__all__ = ["COMBINERS", "ENCODERS", "HOST_LOOPS_FROM", "combine", "encode", "path_of"]

#: Entries of a stack (both encoded sides, or the answers to decode) from which the host
#: path runs the compiled loops into pooled workspaces. Below, NumPy's batched matmuls
#: are as fast or faster: a loop's call costs 10–15 µs before any arithmetic (argument
#: marshalling, the pool's look-up) and an OpenMP team's wake-up above
#: :data:`gpucoded.hostops.SERIAL_BELOW` outputs. Measured with BLAS on one thread
#: (``python -m bench.bench_overhead --only paths``, polydot P = 12 and chebyshev P = 8):
#: encode at n = 32 in 10–11 µs against 30–32 µs, n = 128 in 33–44 µs against
#: 160–171 µs; decode at n = 32 in 26–28 µs against 43–49 µs; from n ≈ 384 (10⁶
#: entries) the loops win, by 2–5× at n = 512.
HOST_LOOPS_FROM = 1 << 16


def path_of(xp: Any, dtype: Any) -> str:
    """``"host"`` (NumPy), ``"cuda"`` (real device arrays) or ``"array"`` (other device)."""
    if xp is np:
        return "host"
    return "cuda" if np.dtype(dtype).kind == "f" else "array"


# ------------------------------------------------------------------------ encode
def _encode_cuda(grid: BlockGrid, GA: np.ndarray, GB: np.ndarray, A: Any, B: Any) -> tuple:
    from .. import gpu  # fused CUDA kernels: one pass over A and B

    return gpu.encode_pair(A, B, GA, GB, (grid.p, grid.s, grid.t))


def _encode_array(grid: BlockGrid, GA: np.ndarray, GB: np.ndarray, A: Any, B: Any) -> tuple:
    xp = array_module(A, B)
    (n, k), l, P = A.shape, B.shape[1], GA.shape[0]
    rb, cb, db = grid.block_dims(n, k, l)
    GAd = xp.asarray(GA.astype(A.dtype, copy=False))
    GBd = xp.asarray(GB.astype(B.dtype, copy=False))
    Ab = grid.split(A, grid.p, grid.s, rb, cb).reshape(grid.n_a, rb * cb)
    Bb = grid.split(B, grid.s, grid.t, cb, db).reshape(grid.n_b, cb * db)
    return (GAd @ Ab).reshape(P, rb, cb), (GBd @ Bb).reshape(P, cb, db)


def _encode_host(grid: BlockGrid, GA: np.ndarray, GB: np.ndarray, A: Any, B: Any) -> tuple:
    """NumPy encode into pooled workspaces (:mod:`gpucoded.hostops`).

    The stacks come from the workspace pool: a buffer is reused only when no view of it
    is alive (not the caller's, not an abandoned straggler's), so reuse never writes
    under a reader. The compiled CPU kernels read each input once and write each stack
    once; without them one batched matmul per side writes straight into the stack.
    """
    g = grid
    (n, k), l, P = A.shape, B.shape[1], GA.shape[0]
    rb, cb, db = g.block_dims(n, k, l)
    if P * cb * (rb + db) < HOST_LOOPS_FROM:  # small: batched matmuls, no workspaces
        return _encode_array(grid, GA, GB, A, B)
    GA = GA.astype(A.dtype, copy=False)
    GB = GB.astype(B.dtype, copy=False)
    pool = hostops.pool()
    At = pool.empty((P, rb, cb), A.dtype)
    Bt = pool.empty((P, cb, db), B.dtype)
    if not hostops.encode_into(A, GA, (g.p, g.s), (rb, cb), At):
        if g.p == 1 and A.shape == (rb, g.s * cb):
            # one block row: At[w][r] = GA[w] @ A[r].reshape(s, cb), into At's rows
            np.matmul(GA, A.reshape(rb, g.s, cb), out=At.transpose(1, 0, 2))
        else:
            Ab = g.split(A, g.p, g.s, rb, cb).reshape(g.n_a, rb * cb)
            np.matmul(GA, Ab, out=At.reshape(P, rb * cb))
    if not hostops.encode_into(B, GB, (g.s, g.t), (cb, db), Bt):
        Bb = g.split(B, g.s, g.t, cb, db).reshape(g.n_b, cb * db)
        np.matmul(GB, Bb, out=Bt.reshape(P, cb * db))
    return At, Bt


#: path -> encode(grid, GA, GB, A, B) -> (At, Bt); A and B already in the work dtype.
ENCODERS: dict[str, Callable[..., tuple]] = {
    "host": _encode_host,
    "cuda": _encode_cuda,
    "array": _encode_array,
}


def encode(grid: BlockGrid, GA: np.ndarray, GB: np.ndarray, A: Any, B: Any) -> tuple[Any, Any]:
    """Encoded stacks (P, rb, cb), (P, cb, db) on the path of A's namespace and dtype."""
    return ENCODERS[path_of(array_module(A, B), A.dtype)](grid, GA, GB, A, B)


# ------------------------------------------------------------------------ decode
def _gemm(grid: BlockGrid, W: np.ndarray, stack: Any, n: int, l: int, real: bool) -> Any:
    """One GEMM over a stack (R, rb, db): a single pass at memory speed."""
    xp = array_module(stack)
    R, rb, db = stack.shape
    blocks = (xp.asarray(W) @ stack.reshape(R, rb * db)).reshape(grid.n_c, rb, db)
    if real and blocks.dtype.kind == "c":
        blocks = blocks.real
    return grid.assemble(blocks, n, l)


def _combine_host(grid, W, products, n, l, real, *, order=None, W_set=None) -> Any:
    if isinstance(products, list | tuple):
        R, (rb, db) = len(products), products[0].shape
        if R * rb * db < HOST_LOOPS_FROM:  # small: stack and one GEMM
            return _gemm(grid, W, np.stack(products), n, l, real)
        # separate answers (coded_matmul): summed in place, no stacked copy
        return grid.combine(W, products, n, l, real=real)
    return _gemm(grid, W, products, n, l, real)


def _combine_array(grid, W, products, n, l, real, *, order=None, W_set=None) -> Any:
    if isinstance(products, list | tuple):
        products = array_module(*products).stack(products)  # complex answers: one GEMM
    return _gemm(grid, W, products, n, l, real)


def _combine_cuda(grid, W, products, n, l, real, *, order=None, W_set=None) -> Any:
    from .. import gpu  # fused CUDA kernel: writes C in place

    # the answers in the order of the set's cached weights (one device copy of W per
    # answer *set*, whatever the arrival order); read in place, no stack
    answers = [products[k] for k in order]
    return gpu.decode_products(answers, W_set, (grid.p, grid.t), (n, l))


#: path -> combine(grid, W, products, n, l, real, order=, W_set=) -> C (n, l).
COMBINERS: dict[str, Callable[..., Any]] = {
    "host": _combine_host,
    "cuda": _combine_cuda,
    "array": _combine_array,
}


def combine(
    grid: BlockGrid,
    W: np.ndarray,
    products: Any,
    shape: tuple[int, int],
    *,
    dtype: np.dtype,
    real: bool,
    order: Sequence[int],
    W_set: np.ndarray,
) -> Any:
    r"""C from the answers: :math:`C_c=\sum_kW[c,k]\,\tilde C_k`, on the answers' path.

    ``W``: the weights in the order of ``products`` (already in ``dtype``); ``W_set``
    and ``order``: the weights in the answer set's sorted order and, for each of its
    workers, the position of its answer in ``products`` (the CUDA kernel keeps one
    device copy of ``W_set`` per set, whatever the arrival order).
    """
    xp = array_module(products[0])
    n, l = shape
    return COMBINERS[path_of(xp, dtype)](
        grid, W.astype(dtype, copy=False), products, n, l, real, order=order, W_set=W_set
    )
