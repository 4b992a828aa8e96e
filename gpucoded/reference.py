r"""High-precision reference: separate interpolation error from floating-point error.

For a decode from the answering workers S, the observed error splits as

.. math:: \hat C - C = \underbrace{(\hat C_\infty - C)}_{\epsilon_1}
          + \underbrace{(\hat C - \hat C_\infty)}_{\epsilon_2},

where :math:`\hat C_\infty` is the decode in exact arithmetic: ε₁ is the
interpolation error that remains with infinite precision (zero for exact codes at or
above threshold), ε₂ the floating-point error.

Because decoding is linear, :math:`\hat C_{\infty,c}-C_c=\sum_{a,b}D[c,a,b]A_aB_b`
with the defect tensor D computed in mpmath (:func:`gpucoded.weights.defect_tensor`):
:func:`error_split` needs only float GEMMs of the blocks (done in ``longdouble``) and
no mpmath matrix products. :func:`exact_decode` does the whole computation in mpmath
(encode, worker products, decode) for small matrices, as an independent check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import to_numpy
from .weights import mp_context

if TYPE_CHECKING:  # annotations only: the reference sits below the codes it checks
    from .codes import Code

__all__ = ["ErrorSplit", "error_split", "exact_decode", "exact_product"]


@dataclass
class ErrorSplit:
    """Max-norm errors of one decode.

    Attributes
    ----------
    total : float
        :math:`\\|\\hat C - C\\|_{\\max}` (C computed in extended precision).
    eps1 : float
        Interpolation error :math:`\\|\\hat C_\\infty - C\\|_{\\max}`.
    eps2 : float
        Floating-point error :math:`\\|\\hat C - \\hat C_\\infty\\|_{\\max}`.
    """

    total: float
    eps1: float
    eps2: float


def _blocks(code: Code, A: np.ndarray, B: np.ndarray, dtype: Any) -> tuple:
    g = code.grid
    n, k = A.shape
    l = B.shape[1]
    rb, cb, db = g.block_dims(n, k, l)
    Ab = g.split(np.asarray(A, dtype=dtype), g.p, g.s, rb, cb)
    Bb = g.split(np.asarray(B, dtype=dtype), g.s, g.t, cb, db)
    return Ab, Bb


def exact_product(A: Any, B: Any) -> np.ndarray:
    """A @ B in extended precision (``longdouble``; complex inputs in ``clongdouble``)."""
    A, B = to_numpy(A), to_numpy(B)
    dt = np.clongdouble if (A.dtype.kind == "c" or B.dtype.kind == "c") else np.longdouble
    return np.asarray(A, dtype=dt) @ np.asarray(B, dtype=dt)


def _weights(code: Code, A: np.ndarray, B: np.ndarray, returned, partial: bool, fmt: Any):
    """The weights the decode used: those for ``fmt``, by default the inputs' format
    (what :meth:`Code.decode` defaults to for answers of that dtype)."""
    if fmt is None:
        fmt = np.result_type(A.dtype, B.dtype)
    return code.decode_weights(returned, partial=partial, fmt=fmt)


def interpolation_error(
    code: Code,
    A: Any,
    B: Any,
    returned: Sequence[int],
    *,
    partial: bool = True,
    fmt: Any = None,
) -> np.ndarray:
    r"""The matrix :math:`\epsilon_1=\hat C_\infty - C` (n×l) for workers ``returned``.

    ``fmt``: the worker format whose weights the decode used (default: the inputs')."""
    A, B = to_numpy(A), to_numpy(B)
    dw = _weights(code, A, B, returned, partial, fmt)
    D = dw.defect
    complex_ = np.iscomplexobj(D) or A.dtype.kind == "c" or B.dtype.kind == "c"
    dt = np.clongdouble if complex_ else np.longdouble
    Ab, Bb = _blocks(code, A, B, dt)
    g = code.grid
    _, rb, cb = Ab.shape
    db = Bb.shape[2]
    E = np.zeros((g.n_c, rb, db), dtype=dt)
    for c in range(g.n_c):
        for a, b in zip(*np.nonzero(D[c]), strict=True):
            E[c] += D[c, a, b].astype(dt) * (Ab[a] @ Bb[b])
    return g.assemble(E, A.shape[0], B.shape[1])


def error_split(
    code: Code,
    A: Any,
    B: Any,
    returned: Sequence[int],
    C_hat: Any,
    *,
    partial: bool = True,
    fmt: Any = None,
) -> ErrorSplit:
    """Split the error of a decoded ``C_hat`` into ε₁ (interpolation) and ε₂ (rounding).

    Parameters
    ----------
    code : Code
    A, B : arrays
        The inputs (converted to the host).
    returned : sequence of int
        The workers whose answers produced ``C_hat``.
    C_hat : array
        The floating-point decode to analyse.
    partial : bool
        Allow subsets below the recovery threshold (studies).
    fmt : Format, str or dtype, optional
        Worker format of the decode (its weights depend on it for ``decoder="auto"``);
        default ``C_hat``'s dtype, as :meth:`Code.decode` defaults to the answers'.
    """
    C = exact_product(A, B)
    if fmt is None:
        fmt = to_numpy(C_hat).dtype
    E1 = interpolation_error(code, A, B, returned, partial=partial, fmt=fmt)
    Ch = to_numpy(C_hat).astype(C.dtype)
    if np.iscomplexobj(E1) and not np.iscomplexobj(C):
        E1 = E1.real
    total = Ch - C
    return ErrorSplit(
        total=float(np.abs(total).max()),
        eps1=float(np.abs(E1).max()),
        eps2=float(np.abs(total - E1).max()),
    )


def exact_decode(
    code: Code,
    A: Any,
    B: Any,
    returned: Sequence[int],
    *,
    partial: bool = True,
    dps: int = 60,
    fmt: Any = None,
) -> np.ndarray:
    r"""The infinite-precision decode :math:`\hat C_\infty` computed entirely in mpmath.

    Encodes with the exact basis values, multiplies the encoded blocks of the workers
    ``returned`` exactly (at ``dps`` digits, ≥50) and applies the mpmath decode
    weights (those for the worker format ``fmt``, default the inputs'). Cost
    O(|S| n³) mpmath operations: for small matrices (n ≲ 30) only.

    Returns
    -------
    ndarray (n, l), ``longdouble`` (``clongdouble`` for complex results), rounded once
    at the end.
    """
    A, B = to_numpy(A), to_numpy(B)
    dw = _weights(code, A, B, returned, partial, fmt)
    S = dw.workers
    ctx = mp_context(max(dps, dw.dps, 50))
    GA, GB = code._encoding_rows(ctx, S)
    Ab, Bb = _blocks(code, A, B, A.dtype if A.dtype.kind == "c" else np.float64)
    g = code.grid
    _, rb, cb = Ab.shape
    db = Bb.shape[2]
    Am = [ctx.matrix(Ab[a].tolist()) for a in range(g.n_a)]
    Bm = [ctx.matrix(Bb[b].tolist()) for b in range(g.n_b)]
    prods = []
    for k in range(len(S)):
        At = ctx.matrix(rb, cb)
        for a in range(g.n_a):
            At += GA[k, a] * Am[a]
        Bt = ctx.matrix(cb, db)
        for b in range(g.n_b):
            Bt += GB[k, b] * Bm[b]
        prods.append(At * Bt)
    re = np.zeros((g.n_c, rb, db), dtype=np.longdouble)
    im = np.zeros((g.n_c, rb, db), dtype=np.longdouble)
    for c in range(g.n_c):
        acc = ctx.matrix(rb, db)
        for k in range(len(S)):
            acc += dw.W_mp[c][k] * prods[k]
        for i in range(rb):
            for j in range(db):
                z = ctx.mpc(acc[i, j])
                re[c, i, j] = np.longdouble(ctx.nstr(z.real, 30, strip_zeros=False))
                im[c, i, j] = np.longdouble(ctx.nstr(z.imag, 30, strip_zeros=False))
    if np.any(im):
        return g.assemble(re + 1j * im.astype(np.clongdouble), A.shape[0], B.shape[1])
    return g.assemble(re, A.shape[0], B.shape[1])
