r"""Decode weights in high precision (mpmath), and what they imply about the error.

Polynomial codes evaluate a product polynomial
:math:`p_C(x)=\sum_{d=0}^{K-1} c_d\,\phi_d(x)` (basis :math:`\phi_d`: monomials
:math:`x^d` or Chebyshev polynomials :math:`T_d`) at the points of the workers
that answered, :math:`S=\{\lambda_{s_1},\dots,\lambda_{s_r}\}`. A block of C is a
linear functional :math:`t^\top c` of the coefficients. With
:math:`V_{kj}=\phi_j(\lambda_{s_k})`:

* :math:`r\ge K` (exact decoding): :math:`w^\top = t^\top V^{+}`
  (least squares; consistent, so exact in exact arithmetic);
* :math:`r<K` (truncated interpolation, Theorem 4 of the paper): keep the first
  :math:`r` basis functions, :math:`w^\top = t_{0:r}^\top V_{:,0:r}^{-1}`. This needs
  :math:`t_j=0` for :math:`j\ge r`. The neglected terms give the interpolation error
  :math:`\epsilon_1`; with points of radius :math:`\delta` it is
  :math:`O(\delta^{r-K_{\rm target}+1})`.

The systems are ill-conditioned by design (points near 0), so they are solved in
mpmath at a working precision raised until two successive precisions agree; no
floating-point inverse of a Vandermonde matrix is ever formed. The weights are then
rounded to float64 (complex128) once and applied in the working dtype.

Because decoding is linear, everything the decode does to the true blocks is
captured by the *defect tensor*

.. math:: D[c,a,b] = \sum_k W[c,k]\,G_A[s_k,a]\,G_B[s_k,b] - [a=(i,j),\,b=(j,u),\,c=(i,u)],

computed in high precision from the exact encoding coefficients. In exact
arithmetic :math:`\hat C_c - C_c = \sum_{a,b} D[c,a,b]\,A_aB_b`, which gives both the
mpmath reference split (:mod:`gpucoded.reference`) and the rigorous a-priori bound
:math:`\|\hat C-C\|_{\max}\le \max_c \||D_c|\|_2\,\|A\|_F\|B\|_F`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import mpmath
import numpy as np

__all__ = [
    "MpContext",
    "basis_values",
    "defect_tensor",
    "interpolation_weights",
    "mp_context",
    "to_numpy_matrix",
]

MpContext = mpmath.ctx_mp.MPContext

_local = threading.local()

#: Relative agreement required between the weights at two successive precisions.
_AGREE = 1e-30
_MAX_DPS = 3200


def mp_context(dps: int) -> MpContext:
    """A thread-local mpmath context at ``dps`` decimal digits (thread safe)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = _local.ctx = mpmath.MPContext()
    ctx.dps = dps
    return ctx


def _is_mp(x: object) -> bool:
    """An mpmath number of any context (each context has its own mpf/mpc classes)."""
    return hasattr(x, "_mpf_") or hasattr(x, "_mpc_")


def _mp_scalar(ctx: MpContext, x: complex | float):
    """Exact conversion of a float/complex (its binary value) to mpmath."""
    if isinstance(x, complex | np.complexfloating):
        x = complex(x)
        if x.imag == 0.0:
            return ctx.mpf(x.real)
        return ctx.mpc(x.real, x.imag)
    return ctx.mpf(float(x))


def basis_values(ctx: MpContext, points: Sequence, ncols: int, basis: str):
    r"""Matrix :math:`V_{kj}=\phi_j(x_k)`, :math:`j<` ``ncols``, in ``ctx`` precision.

    ``basis`` is ``"monomial"`` (:math:`x^j`) or ``"chebyshev"``
    (:math:`T_j`, by the three-term recurrence, exact to working precision).
    """
    xs = [_mp_scalar(ctx, x) for x in points]
    V = ctx.matrix(len(xs), ncols)
    for k, x in enumerate(xs):
        if ncols == 0:
            continue
        V[k, 0] = ctx.mpf(1)
        if ncols > 1:
            V[k, 1] = x
        for j in range(2, ncols):
            if basis == "monomial":
                V[k, j] = V[k, j - 1] * x
            elif basis == "chebyshev":
                V[k, j] = 2 * x * V[k, j - 1] - V[k, j - 2]
            else:
                raise ValueError(f"unknown basis {basis!r}")
    return V


def _weights_at(ctx: MpContext, V, T):
    """W = T V^+ (square: T V^{-1}); returns (W, pinv)."""
    r, n = V.rows, V.cols
    if r == n:
        Vi = ctx.inverse(V)
    else:
        VH = V.H
        Vi = ctx.inverse(VH * V) * VH
    return T * Vi, Vi


def _max_abs(ctx: MpContext, M) -> float:
    return float(max((abs(M[i, j]) for i in range(M.rows) for j in range(M.cols)), default=0))


def _inf_norm(ctx: MpContext, M) -> float:
    return float(max((sum(abs(M[i, j]) for j in range(M.cols)) for i in range(M.rows)), default=0))


def interpolation_weights(
    points: Sequence,
    targets: np.ndarray,
    basis: str = "monomial",
    *,
    dps: int = 40,
) -> tuple[np.ndarray, float, int, list]:
    r"""Decode weights :math:`W` (blocks × r) for evaluations at ``points``.

    Parameters
    ----------
    points : sequence of float or complex, length r
        Evaluation points of the answering workers, in answer order.
    targets : array (nblocks, K)
        Row c holds the coefficients :math:`t` of the functional :math:`t^\top c`
        that gives block c of the product (K = number of product coefficients).
    basis : {"monomial", "chebyshev"}
    dps : int
        Starting mpmath precision (decimal digits); doubled until two successive
        precisions agree to 1e-30 relative.

    Returns
    -------
    W : ndarray (nblocks, r), float64 or complex128
    cond : float
        :math:`\kappa_\infty(V)=\|V\|_\infty\|V^{+}\|_\infty` of the (possibly
        truncated) system that was solved.
    dps : int
        Precision at which the weights converged.
    W_mp : list of lists
        The same weights as mpmath numbers (for the infinite-precision reference).

    Raises
    ------
    ValueError
        If fewer than ``max target index + 1`` points are given (the functional
        is not determined even approximately).
    """
    targets = np.asarray(targets)
    r = len(points)
    K = targets.shape[1]
    ncoef = min(r, K)
    nz = np.nonzero(np.any(targets != 0, axis=0))[0]
    need = int(nz.max()) + 1 if nz.size else 1
    if r < need:
        raise ValueError(
            f"{r} evaluation(s) cannot determine coefficient {need - 1}: at least {need} needed"
        )
    prev = None
    d = dps
    while True:
        ctx = mp_context(d)
        V = basis_values(ctx, points, ncoef, basis)
        T = ctx.matrix([[_mp_scalar(ctx, v) for v in row[:ncoef]] for row in targets])
        try:
            W, Vi = _weights_at(ctx, V, T)
        except ZeroDivisionError:  # singular at this precision: raise the precision
            W = None
        if W is not None and prev is not None:
            diff = _max_abs(ctx, W - prev)
            scale = _max_abs(ctx, W)
            if diff <= _AGREE * max(scale, 1e-300):
                break
        if d >= _MAX_DPS:
            raise ArithmeticError(
                f"decode weights did not converge up to {_MAX_DPS} digits; "
                "the evaluation points are too close together"
            )
        prev = W
        d *= 2
    cond = _inf_norm(ctx, V) * _inf_norm(ctx, Vi)
    W_mp = [[W[i, j] for j in range(W.cols)] for i in range(W.rows)]
    return to_numpy_matrix(W), cond, d, W_mp


def to_numpy_matrix(M) -> np.ndarray:
    """Round an mpmath matrix to float64, or complex128 if any entry is complex."""
    vals = [[M[i, j] for j in range(M.cols)] for i in range(M.rows)]
    if any(hasattr(v, "_mpc_") for row in vals for v in row):
        return np.array([[complex(v) for v in row] for row in vals], dtype=np.complex128)
    return np.array([[float(v) for v in row] for row in vals], dtype=np.float64).reshape(
        M.rows, M.cols
    )


def defect_tensor(
    W: list,
    encoding_rows: Callable[[MpContext], tuple],
    target: np.ndarray,
    dps: int,
) -> np.ndarray:
    r"""Defect tensor :math:`D[c,a,b]` of a decode (see module docstring).

    Parameters
    ----------
    W : list of lists (nblocks × r)
        The exact (mpmath) weights: the defect measures interpolation alone, the
        rounding of the weights to the working dtype belongs to :math:`\epsilon_2`.
    encoding_rows : callable
        ``encoding_rows(ctx) -> (GA_S, GB_S)``: the exact encoding coefficients of
        the r answering workers as mpmath matrices (r × blocks of A / of B).
    target : ndarray (nblocks, nA, nB)
        0/1 tensor: which products :math:`A_aB_b` make block c of C.
    dps : int
        Working precision (use the one the weights converged at).

    Returns
    -------
    ndarray (nblocks, nA, nB), float64 (complex128 for complex codes).
    """
    ctx = mp_context(max(dps, 50))
    GA, GB = encoding_rows(ctx)
    nblk, r = len(W), len(W[0])
    nA, nB = GA.cols, GB.cols
    Wm = [[w if _is_mp(w) else _mp_scalar(ctx, w) for w in row] for row in W]
    ga = [[GA[k, a] for a in range(nA)] for k in range(r)]
    gb = [[GB[k, b] for b in range(nB)] for k in range(r)]
    out = np.zeros((nblk, nA, nB), dtype=np.complex128)
    for c in range(nblk):
        for a in range(nA):
            wa = [Wm[c][k] * ga[k][a] for k in range(r)]
            for b in range(nB):
                s = ctx.fsum(wa[k] * gb[k][b] for k in range(r)) - int(target[c, a, b])
                out[c, a, b] = complex(s)
    if not np.any(out.imag):
        return out.real.copy()
    return out


def spectral_abs_norms(D: np.ndarray) -> np.ndarray:
    r""":math:`\||D_c|\|_2` for each block c (bounds the bilinear form entrywise)."""
    if D.size == 0:
        return np.zeros(D.shape[0])
    return np.array([np.linalg.norm(np.abs(Dc), 2) for Dc in D])


def binom_tail(r: int, K: int, delta: float) -> float:
    r"""Theorem 4's factor :math:`\sum_{l=1}^{K-r}\binom{r+l-1}{l}\delta^l`."""
    return float(sum(math.comb(r + l - 1, l) * delta**l for l in range(1, K - r + 1)))
