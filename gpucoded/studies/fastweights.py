r"""Fast, exactly rounded decode weights for polynomial codes, many subsets at once.

The library's decode weights (:func:`gpucoded.weights.interpolation_weights`) solve
the Vandermonde system of each subset in mpmath: ~1 ms per subset. A Figure 1 sweep
over 200 values of γ needs ~8,000 subsets, so this module computes the *same*
weights, vectorised over all subsets, in double-double arithmetic (~32 digits).

Why double-double suffices although :math:`\kappa(V)` reaches :math:`10^{30}`: the
ill-conditioning of points of radius :math:`\delta=1/\gamma` is a pure column scaling.
With :math:`s=1/\max_w|\lambda_w|` and :math:`c=s\lambda` (formed exactly, as a
double-double), :math:`V(\lambda)=V(c)\,\Delta`, :math:`\Delta=\mathrm{diag}(s^{-j})`,
and the weights of block c (the library's min-norm / square solution
:math:`w=V(V^\top V)^{-1}t`) are

.. math:: w = V(c)\,G^{-1}\,\Delta^{-1}t,\qquad G=V(c)^\top V(c),

where :math:`V(c)` has points in [−1, 1] and is well conditioned for the small
systems of the studies. The solve of :math:`G` loses :math:`\kappa(V(c))^2` relative
to the double-double unit :math:`2^{-104}`; the function refuses (returns None, so
the caller uses mpmath) when :math:`\kappa(V(c))^2\,2^{-100}>2^{-60}`, i.e. when the
result could differ from the correctly rounded weights by more than one ulp.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ddarith import dd_add, dd_div, dd_mul, dd_neg, two_prod

__all__ = ["fast_weights", "fast_weights_many", "fast_weights_sizes"]

_MAX_COND = 2.0**20


def _applies(code: Any) -> bool:
    from ..codes import EvaluationCode

    if not isinstance(code, EvaluationCode) or np.iscomplexobj(code.points):
        return False
    if code.decode_points != "all" or code.decoder != "interpolation":
        return False  # these are the interpolation decoder's weights
    return code.basis == "monomial" or (
        code.basis == "chebyshev" and float(np.abs(code.points).max()) <= 1.0
    )


def fast_weights(code: Any, subsets: np.ndarray) -> np.ndarray | None:
    r"""Decode weights of ``code`` for many subsets of equal size, or None.

    Parameters
    ----------
    code : Code
        Applies to real monomial or Chebyshev-basis (points in [−1, 1]) evaluation codes with
        ``decode_points="all"``; anything else returns None.
    subsets : int array (N, r)
        Sorted worker indices of each subset.

    Returns
    -------
    ndarray (N, n_c, r) or None
        ``code.decode_weights(S, partial=True).W`` for each subset, to within
        :math:`u|w|` (both are rounded once to float64) plus :math:`2^{-60}` of the
        largest weight of the row (the double-double error, see the module
        docstring). None when the code or the subsets are outside the cases above,
        when |S| is below what the code needs (the mpmath path then raises the
        library's error), or when the scaled system is too ill-conditioned.
    """
    return fast_weights_many([code], subsets)


def fast_weights_many(codes: list, subsets: np.ndarray) -> np.ndarray | None:
    r"""As :func:`fast_weights` for several codes sharing P, K and targets.

    Returns (len(codes) * N, n_c, r): the block of code i first (rows i*N ... ).
    This is what makes a sweep over hundreds of γ values one vectorised call.
    """
    return fast_weights_sizes(codes, [subsets])[0]


def fast_weights_sizes(codes: list, subsets: list[np.ndarray]) -> list[np.ndarray | None]:
    """:func:`fast_weights_many` for several subset arrays (one per size), the codes
    checked once."""
    if not _compatible(codes):
        return [None] * len(subsets)
    pts = np.stack([np.asarray(c.points) for c in codes])  # (n_codes, P)
    if codes[0].basis == "chebyshev":  # points already in [-1, 1]: no scaling
        scale = np.ones(len(codes))
    else:
        scale = 1.0 / np.abs(pts).max(axis=1)
    return [_fast_checked(codes[0], pts, scale, S) for S in subsets]


def _compatible(codes: list) -> bool:
    if not codes or not all(_applies(c) for c in codes):
        return False
    c0 = codes[0]
    return not any(
        c.P != c0.P
        or c.K != c0.K
        or c.basis != c0.basis
        or not np.array_equal(c.targets, c0.targets)
        for c in codes
    )


def _fast_checked(c0: Any, pts: np.ndarray, scale: np.ndarray, subsets: Any) -> np.ndarray | None:
    S = np.asarray(subsets, dtype=int)
    if S.ndim != 2 or S.shape[0] == 0:
        return None
    r = S.shape[1]
    if r < int(c0.block_need().max()):
        return None
    ncoef = min(r, c0.K)
    T = np.asarray(c0.targets, dtype=np.float64)
    if np.any(T[:, ncoef:] != 0):
        return None
    x = pts[:, S].reshape(-1, r)  # (n_codes * N, r), code-major
    s = np.repeat(scale, S.shape[0])
    return _dd_weights(x, s, T[:, :ncoef], c0.basis)


def _dd_weights(x: np.ndarray, s: np.ndarray, T: np.ndarray, basis: str) -> np.ndarray | None:
    """w = V(c) G^{-1} Δ^{-1} t for points x (N, r), scales s (N,), targets T (n_c, ncoef).

    Monomial basis: c = s x, Δ = diag(s^-j). Chebyshev basis: s must be 1 (Δ = I)."""
    N, r = x.shape
    n_c, ncoef = T.shape
    c = two_prod(s[:, None] * np.ones_like(x), x)  # exact: c = s*x
    # V(c) in double-double, (N, r, ncoef): c^j, or T_j(c) = 2c T_{j-1}(c) - T_{j-2}(c)
    Vh = np.zeros((N, r, ncoef))
    Vl = np.zeros((N, r, ncoef))
    Vh[..., 0] = 1.0
    for j in range(1, ncoef):
        if basis == "chebyshev" and j >= 2:
            t2 = dd_mul((2.0 * c[0], 2.0 * c[1]), (Vh[..., j - 1], Vl[..., j - 1]))
            Vh[..., j], Vl[..., j] = dd_add(t2, (-Vh[..., j - 2], -Vl[..., j - 2]))
        else:
            Vh[..., j], Vl[..., j] = dd_mul((Vh[..., j - 1], Vl[..., j - 1]), c)
    # Every loop below runs over the small dimensions (r, ncoef <= 2m-1) only and is
    # vectorised over the N subsets and the free indices; each element sees the same
    # sequence of double-double operations as the scalar algorithm.
    # G = V^T V, (N, ncoef, ncoef): upper triangle, accumulated over k in order
    iu, ju = np.triu_indices(ncoef)
    acc = (np.zeros((N, iu.size)), np.zeros((N, iu.size)))
    for k in range(r):
        vi = (Vh[:, k, iu], Vl[:, k, iu])
        vj = (Vh[:, k, ju], Vl[:, k, ju])
        acc = dd_add(acc, dd_mul(vi, vj))
    Gh = np.zeros((N, ncoef, ncoef))
    Gl = np.zeros((N, ncoef, ncoef))
    Gh[:, iu, ju] = Gh[:, ju, iu] = acc[0]
    Gl[:, iu, ju] = Gl[:, ju, iu] = acc[1]
    # κ(V(c))² = κ(G) = λ_max/λ_min (G is symmetric; eigvalsh is half the cost of an SVD)
    lam = np.linalg.eigvalsh(Gh)
    if np.any(lam[:, 0] <= 0) or np.any(lam[:, -1] > _MAX_COND**2 * lam[:, 0]):
        return None
    # right-hand side Δ^{-1} t: b[j, c] = t[c, j] s^j, (N, ncoef, n_c)
    sp = [(np.ones(N), np.zeros(N))]
    for _ in range(1, ncoef):
        sp.append(dd_mul(sp[-1], (s, np.zeros(N))))
    sph = np.stack([q[0] for q in sp], axis=1)[:, :, None]  # (N, ncoef, 1)
    spl = np.stack([q[1] for q in sp], axis=1)[:, :, None]
    Tt = np.broadcast_to(T.T[None], (N, ncoef, n_c))
    bh, bl = dd_mul((sph, spl), (Tt, np.zeros_like(Tt)))
    # Gaussian elimination without pivoting (G is symmetric positive definite)
    for k in range(ncoef - 1):
        piv = (Gh[:, k, k][:, None], Gl[:, k, k][:, None])
        f = dd_div((Gh[:, k + 1 :, k], Gl[:, k + 1 :, k]), piv)  # (N, rows)
        f3 = (f[0][:, :, None], f[1][:, :, None])
        rowk = (Gh[:, k, k:][:, None, :], Gl[:, k, k:][:, None, :])
        Gh[:, k + 1 :, k:], Gl[:, k + 1 :, k:] = dd_add(
            (Gh[:, k + 1 :, k:], Gl[:, k + 1 :, k:]), dd_neg(dd_mul(f3, rowk))
        )
        bk = (bh[:, k, :][:, None, :], bl[:, k, :][:, None, :])
        bh[:, k + 1 :], bl[:, k + 1 :] = dd_add(
            (bh[:, k + 1 :], bl[:, k + 1 :]), dd_neg(dd_mul(f3, bk))
        )
    yh = np.zeros_like(bh)
    yl = np.zeros_like(bl)
    for i in range(ncoef - 1, -1, -1):
        acc = (bh[:, i, :].copy(), bl[:, i, :].copy())  # (N, n_c)
        for j in range(i + 1, ncoef):
            g_ij = (Gh[:, i, j][:, None], Gl[:, i, j][:, None])
            acc = dd_add(acc, dd_neg(dd_mul(g_ij, (yh[:, j, :], yl[:, j, :]))))
        yh[:, i, :], yl[:, i, :] = dd_div(acc, (Gh[:, i, i][:, None], Gl[:, i, i][:, None]))
    # w = V(c) y, (N, r, n_c), accumulated over j in order
    acc = (np.zeros((N, r, n_c)), np.zeros((N, r, n_c)))
    for j in range(ncoef):
        vj = (Vh[:, :, j][:, :, None], Vl[:, :, j][:, :, None])
        acc = dd_add(acc, dd_mul(vj, (yh[:, j, :][:, None, :], yl[:, j, :][:, None, :])))
    return np.ascontiguousarray((acc[0] + acc[1]).transpose(0, 2, 1))
