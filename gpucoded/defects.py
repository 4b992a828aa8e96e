r"""Defect tensors of a decode and the factors of its a-priori bounds.

:math:`D[c,a,b]=\sum_kW[c,k]G_A[s_k,a]G_B[s_k,b]-[a=(i,j),b=(j,u),c=(i,u)]`, formed in
high precision from the exact encoding coefficients: in exact arithmetic
:math:`\hat C_c-C_c=\sum_{a,b}D[c,a,b]A_aB_b`, so
:math:`\|\hat C-C\|_{\max}\le\max_c\||D_c|\|_2\|A\|_F\|B\|_F`
(:func:`spectral_abs_norms`). :func:`defect_tensor` serves any code;
:func:`moment_defect` polynomial codes, from the K moments of the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .basis import MpContext, basis_values, is_mp, mp_context, mp_scalar

__all__ = ["binom_tail", "defect_tensor", "moment_defect", "spectral_abs_norms"]


def defect_tensor(
    W: list,
    encoding_rows: Callable[[MpContext], tuple],
    target: np.ndarray,
    dps: int,
) -> np.ndarray:
    r"""Defect tensor :math:`D[c,a,b]` of a decode (see module docstring), any code.

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
    Wm = [[w if is_mp(w) else mp_scalar(ctx, w) for w in row] for row in W]
    ga = [[GA[k, a] for a in range(nA)] for k in range(r)]
    gb = [[GB[k, b] for b in range(nB)] for k in range(r)]
    out = np.zeros((nblk, nA, nB), dtype=np.complex128)
    for c in range(nblk):
        for a in range(nA):
            wa = [Wm[c][k] * ga[k][a] for k in range(r)]
            for b in range(nB):
                s = ctx.fsum(wa[k] * gb[k][b] for k in range(r)) - int(target[c, a, b])
                out[c, a, b] = complex(s)
    return _real_if_possible(out)


def _real_if_possible(out: np.ndarray) -> np.ndarray:
    if not np.any(out.imag):
        return out.real.copy()
    return out


def moment_defect(
    W: list,
    points: Sequence,
    basis: str,
    a_index: np.ndarray,
    b_index: np.ndarray,
    a_scale: np.ndarray,
    b_scale: np.ndarray,
    target: np.ndarray,
    dps: int,
) -> np.ndarray:
    r"""Defect tensor of a polynomial code from the K moments of the weights.

    :math:`\mu_{cd}=\sum_kW_{ck}\phi_d(\lambda_{s_k})` (mpmath, O(rK)); then
    :math:`D[c,a,b]=\sigma_a\tau_b\,\mu_{c,\alpha_a+\beta_b}-T[c,a,b]` for monomials
    and :math:`\sigma_a\tau_b(\mu_{c,\alpha+\beta}+\mu_{c,|\alpha-\beta|})/2-T[c,a,b]`
    for Chebyshev bases (:math:`T_\alpha T_\beta=(T_{\alpha+\beta}+T_{|\alpha-\beta|})/2`).
    Same values as :func:`defect_tensor`, without its O(n_c n_a n_b r) cost.
    """
    ctx = mp_context(max(dps, 50))
    K = int(a_index.max() + b_index.max() + 1)
    V = basis_values(ctx, points, K, basis)
    r = len(points)
    mom = []
    for row in W:
        wr = [w if is_mp(w) else mp_scalar(ctx, w) for w in row]
        mom.append([complex(ctx.fdot([wr[k] for k in range(r)], [V[k, d] for k in range(r)]))
                    for d in range(K)])
    # entries with a target term cancel (1 + tiny − 1): those are formed in mpmath below
    mu = np.array(mom, dtype=np.complex128)
    s = np.outer(a_scale, b_scale)
    apb = a_index[:, None] + b_index[None, :]
    if basis == "monomial":
        D = s[None] * mu[:, apb]
    else:
        amb = np.abs(a_index[:, None] - b_index[None, :])
        D = s[None] * (mu[:, apb] + mu[:, amb]) / 2
    D = D - target
    for c, a, b in zip(*np.nonzero(target), strict=True):
        D[c, a, b] = _exact_target_entry(ctx, W[c], V, r, basis, a_index[a], b_index[b],
                                         a_scale[a] * b_scale[b], int(target[c, a, b]))
    return _real_if_possible(D.astype(np.complex128))


def _exact_target_entry(ctx, w, V, r, basis, al, be, sc, t) -> complex:
    """D entry of a target pair, formed in mpmath (no float cancellation)."""
    wr = [x if is_mp(x) else mp_scalar(ctx, x) for x in w]
    m1 = ctx.fdot(wr, [V[k, int(al + be)] for k in range(r)])
    if basis == "chebyshev":
        m2 = ctx.fdot(wr, [V[k, int(abs(al - be))] for k in range(r)])
        m1 = (m1 + m2) / 2
    return complex(ctx.mpf(float(sc)) * m1 - t)


def spectral_abs_norms(D: np.ndarray) -> np.ndarray:
    r""":math:`\||D_c|\|_2` for each block c (bounds the bilinear form entrywise)."""
    if D.size == 0:
        return np.zeros(D.shape[0])
    return np.array([np.linalg.norm(np.abs(Dc), 2) for Dc in D])


def binom_tail(r: int, K: int, delta: float) -> float:
    r"""Theorem 4's factor :math:`\sum_{l=1}^{K-r}\binom{r+l-1}{l}\delta^l`."""
    return float(sum(math.comb(r + l - 1, l) * delta**l for l in range(1, K - r + 1)))
