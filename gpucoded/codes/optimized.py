r"""Optimised MatDot-shaped codes: searched encoders and regularised decoders.

Setting (the MatDot split, :math:`C=\sum_aA_aB_a`): worker k computes
:math:`(\sum_a g_{ka}A_a)(\sum_b h_{kb}B_b)`; the answers S are decoded with weights
:math:`w\in\mathbb R^{|S|}`. The decode error is bilinear in the blocks with defect
:math:`D_S=\sum_{k\in S}w_kg_kh_k^\top-I` (interpolation, ε₁) plus rounding
:math:`\lesssim u\,n\sum_k|w_k|\,\|g_k\|\|h_k\|` (ε₂). We minimise the smooth,
**always well-posed** surrogate

.. math:: J(G,H,W)=\sum_S\Big(\|D_S\|_F^2+\rho^2|S|\sum_{k\in S}w_{S,k}^2\|g_k\|^2\|h_k\|^2\Big),
          \qquad \rho=u\,n,

by alternating minimisation (as in the paper's extended version): each of the W-,
G- and H-steps is a linear least-squares problem with a ridge term of weight ρ > 0,
solved by an SVD-based ``lstsq`` (no normal equations, no inverse, no singular
system: the ridge rows give full column rank), so J decreases monotonically and stays
≥ 0. The reference implementation of that idea solved unregularised systems (crashes
on singular matrices, negative objectives); here every step is a ridge problem.

The result is a :class:`OptimizedMatDot` code: fixed float64 ``GA``, ``GB`` and, for
*any* answering set S, the ridge decoder of S (the W-step), so it decodes every
subset, not only the ones it was trained on. Its error bounds come from the shared
machinery: the defect is computed in mpmath from the exact float64 coefficients
(:meth:`Code._encoding_rows`), so they are rigorous whatever the optimiser did.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from .base import Code
from .decoding import WeightSolution
from .grid import BlockGrid
from .matdot import ApproxMatDot

__all__ = ["OptimizedMatDot", "optimize_matdot", "ridge_weights"]


def ridge_weights(G: np.ndarray, H: np.ndarray, rho: float) -> np.ndarray:
    r"""W-step for one answering set (ridge least squares).

    :math:`\min_w\|\sum_kw_kg_kh_k^\top-I\|_F^2+\rho^2r\sum_kw_k^2c_k^2`,
    :math:`c_k=\|g_k\|\|h_k\|`.

    Parameters
    ----------
    G, H : arrays (r, m)
        Encoding rows of the answering workers.
    rho : float
        Ridge weight (> 0 makes the problem full rank).

    Returns
    -------
    w : ndarray (r,)
    """
    r, m = G.shape
    M = np.einsum("ka,kb->abk", G, H).reshape(m * m, r)
    c = np.linalg.norm(G, axis=1) * np.linalg.norm(H, axis=1)
    lhs = np.vstack([M, rho * math.sqrt(r) * np.diag(c)])
    rhs = np.concatenate([np.eye(m).ravel(), np.zeros(r)])
    s = np.abs(lhs).max(axis=0)
    s[s == 0] = 1.0
    return np.linalg.lstsq(lhs / s, rhs, rcond=None)[0] / s


def _design(X_other: np.ndarray, W: dict, P: int, m: int, left: bool) -> tuple:
    """Linear map vec(X) -> stacked vec(D_S + I) for all S, and the ridge weights.

    ``left=True``: X plays g (D[a,b] = Σ w_k X[k,a] Y[k,b]); else X plays h.
    """
    blocks = []
    lam = np.zeros(P)
    for S, w in W.items():
        blk = np.zeros((m, m, P, m))
        for k, wk in zip(S, w, strict=True):
            y = wk * X_other[k]
            if left:  # D[a, b] coefficient of X[k, a] is y[b]
                for a in range(m):
                    blk[a, :, k, a] += y
            else:  # D[a, b] coefficient of X[k, b] is y[a]
                for b in range(m):
                    blk[:, b, k, b] += y
            lam[k] += len(S) * wk**2 * float(X_other[k] @ X_other[k])
        blocks.append(blk.reshape(m * m, P * m))
    return np.vstack(blocks), lam


def _objective(G: np.ndarray, H: np.ndarray, W: dict, rho: float) -> float:
    m = G.shape[1]
    J = 0.0
    for S, w in W.items():
        S = list(S)
        D = np.einsum("k,ka,kb->ab", w, G[S], H[S]) - np.eye(m)
        c = np.linalg.norm(G[S], axis=1) * np.linalg.norm(H[S], axis=1)
        J += float((D**2).sum()) + rho**2 * len(S) * float(((w * c) ** 2).sum())
    return J


def _solve_encoder(X_other: np.ndarray, W: dict, rho: float, P: int, m: int, left: bool):
    M, lam = _design(X_other, W, P, m, left)
    rhs = np.tile(np.eye(m).ravel(), len(W))
    ridge = np.diag(np.repeat(rho * np.sqrt(lam), m))
    lhs = np.vstack([M, ridge])
    b = np.concatenate([rhs, np.zeros(P * m)])
    s = np.abs(lhs).max(axis=0)
    s[s == 0] = 1.0
    return (np.linalg.lstsq(lhs / s, b, rcond=None)[0] / s).reshape(P, m)


def optimize_matdot(
    m: int,
    P: int,
    rho: float,
    *,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    gamma: float | None = None,
    subsets: Sequence[Sequence[int]] | None = None,
    iters: int = 30,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Alternating ridge minimisation of J (module docstring).

    Parameters
    ----------
    m, P : int
    rho : float
        Ridge weight u·n (> 0).
    init : (G, H), optional
        Starting encoders; default ε-MatDot at ``gamma``.
    gamma : float, optional
        Radius of the default start (default ε-MatDot's).
    subsets : sequence of answering sets, optional
        Training sets (default every m-subset).
    iters : int
        Rounds of W-, G-, H-steps.

    Returns
    -------
    G, H : ndarrays (P, m)
    history : list of float
        J after each round (non-increasing).
    """
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho!r}")
    if P < m:
        raise ValueError(f"P={P} must be >= m={m}")
    if init is None:
        base = ApproxMatDot(m, P, gamma=gamma)
        G, H = base.GA.copy(), base.GB.copy()
    else:
        G, H = (np.array(x, dtype=float) for x in init)
        if G.shape != (P, m) or H.shape != (P, m):
            raise ValueError(f"init encoders must be ({P}, {m}); got {G.shape}, {H.shape}")
    subsets = (
        [tuple(S) for S in itertools.combinations(range(P), m)]
        if subsets is None
        else [tuple(sorted(S)) for S in subsets]
    )
    hist: list[float] = []
    best = (math.inf, G, H)
    for _ in range(iters):
        W = {S: ridge_weights(G[list(S)], H[list(S)], rho) for S in subsets}
        G = _solve_encoder(H, W, rho, P, m, left=True)
        W = {S: ridge_weights(G[list(S)], H[list(S)], rho) for S in subsets}
        H = _solve_encoder(G, W, rho, P, m, left=False)
        # balance the scale between g_k and h_k (J is invariant in D, ridge prefers balance)
        ng, nh = np.linalg.norm(G, axis=1), np.linalg.norm(H, axis=1)
        ok = (ng > 0) & (nh > 0)
        sc = np.ones(P)
        sc[ok] = np.sqrt(nh[ok] / ng[ok])
        G, H = G * sc[:, None], H / sc[:, None]
        W = {S: ridge_weights(G[list(S)], H[list(S)], rho) for S in subsets}
        J = _objective(G, H, W, rho)
        hist.append(J)
        if J < best[0]:
            best = (J, G.copy(), H.copy())
    return best[1], best[2], hist


class OptimizedMatDot(Code):
    """A MatDot-shaped code with given (optimised) encoders and ridge decoders.

    Parameters
    ----------
    GA, GB : arrays (P, m)
        Encoding coefficients (float64, used exactly).
    rho : float
        Ridge weight of the decoder (the W-step), > 0.
    threshold : int
        Answers the code is designed for (m).
    """

    name = "optimized"
    approximate = True

    def __init__(self, GA: np.ndarray, GB: np.ndarray, rho: float, threshold: int | None = None):
        super().__init__()
        GA = np.asarray(GA, dtype=np.float64)
        GB = np.asarray(GB, dtype=np.float64)
        if GA.ndim != 2 or GA.shape != GB.shape:
            raise ValueError(
                f"GA and GB must have the same (P, m) shape; got {GA.shape}, {GB.shape}"
            )
        if not (np.all(np.isfinite(GA)) and np.all(np.isfinite(GB))):
            raise ValueError("GA and GB must be finite")
        if not rho > 0:
            raise ValueError(f"rho must be > 0, got {rho!r}")
        self.P, m = GA.shape
        self.grid = BlockGrid(1, m, 1)
        self.GA, self.GB, self.rho = GA, GB, float(rho)
        self.coef_ulps = 0.0  # the float64 coefficients are the code (no rounding)
        self.recovery_threshold = m if threshold is None else int(threshold)

    @classmethod
    def search(cls, m: int, P: int, unit_roundoff: float, inner: int, **kw) -> OptimizedMatDot:
        """Optimise for workers of unit roundoff u with inner dimension ``inner``."""
        rho = unit_roundoff * (inner + 3 * m + 3)
        G, H, _ = optimize_matdot(m, P, rho, **kw)
        return cls(G, H, rho)

    def _solve(self, S: tuple[int, ...], partial: bool, fmt: object = None) -> WeightSolution:
        if len(S) == 0:
            raise ValueError("no answers to decode")
        w = ridge_weights(self.GA[list(S)], self.GB[list(S)], self.rho)
        W = w[None, :]
        return WeightSolution(W, float(np.abs(w).sum()), 50, False, [[float(x) for x in w]])

    def _params(self) -> str:
        return f"m={self.m}, P={self.P}, rho={self.rho:.3g}"
