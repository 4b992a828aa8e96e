r"""γ selection for the ε-approximate codes: the error model, the best γ, ``gamma="auto"``.

For points :math:`\lambda(\gamma)=c/\gamma` (c: Chebyshev nodes on (−1, 1)) and a set
S of r answers, the decode of a monomial code is a column scaling of the γ = 1
problem: with :math:`V_S` the (truncated) Vandermonde matrix of the nodes
:math:`c_S`, the weights are :math:`W(\gamma)_{ck}=\sum_j T_{cj}\gamma^j(V_S^{+})_{jk}`
and the defect tensor (:mod:`gpucoded.weights`) has the entries

.. math:: D_{c,a,b}(\gamma)=\sum_{j<r} T_{cj}\,\gamma^{\,j-d_{ab}}\,
          \bigl(V_S^{-1}c_S^{\,d_{ab}}\bigr)_j ,\qquad d_{ab}=\alpha_a+\beta_b\ge r

(zero for :math:`d_{ab}<r`, exact interpolation; zero for all when r ≥ K). So one
float solve per subset at γ = 1 gives, for every γ at once,

* :math:`I_S(\gamma)=\max_c\||D_c(\gamma)|\|_2` = ``DecodeWeights.interp_factor``
  (:math:`\epsilon_1\le I_S\|A\|_F\|B\|_F`), falling like :math:`\gamma^{-1}` or faster;
* :math:`F_S(\gamma)=\max_c\sum_k|W_{ck}|\,\|G_A[s_k]\|_2\|G_B[s_k]\|_2` =
  ``DecodeWeights.fp_factor`` (rounding error :math:`\epsilon_2\approx u\,F_S`
  times the same input scale), growing like :math:`\gamma^{K_{\rm top}}`.

The predicted worst-case error is :math:`\max_S\,[I_S(\gamma)+u\,F_S(\gamma)]` relative
to :math:`\|A\|_F\|B\|_F`; ``auto`` γ minimises it. Both terms overestimate the
measured :math:`\epsilon_1,\epsilon_2` by about the same factor (the ratio of the
largest entry of the block products to :math:`\|A\|_F\|B\|_F`, ≈ 2.5e-3 for the
paper's 100×100 Gaussians), so the minimiser is right although the level is a bound;
:func:`typical_scale` gives that factor for Gaussian inputs of a given shape.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..formats import unit_roundoff
from ..points import chebyshev
from .evaluation import EvaluationCode
from .polyparts import polydot_parts

__all__ = ["MAX_SUBSETS", "ErrorModel", "Prediction", "auto_gamma", "best_gamma", "typical_scale"]

#: Subsets evaluated at most (a deterministic sample beyond that).
MAX_SUBSETS = 400


def typical_scale(n: int, k: int, l: int, grid_s: int) -> float:
    r"""Typical :math:`\max|A_aB_b|/(\|A\|_F\|B\|_F)` for Gaussian A (n×k), B (k×l).

    Entries of a block product are sums of :math:`k/s` products of entries of
    variance :math:`1/(nk)` and :math:`1/(kl)`; the maximum of :math:`nl` such
    Gaussians is about :math:`\sqrt{2\ln(nl)}` standard deviations.
    """
    cb = math.ceil(k / grid_s)
    return math.sqrt(2 * math.log(max(n * l, 2))) * math.sqrt(cb / (n * k * k * l))


@dataclass
class Prediction:
    """Predicted worst-case errors on a γ grid (relative to ‖A‖_F‖B‖_F).

    Attributes
    ----------
    gammas : ndarray (G,)
    eps1, eps2, total : ndarray (G,)
        Interpolation bound, rounding estimate and their sum, for the subset that
        maximises the sum at each γ.
    gamma : float
        The γ with the smallest ``total``.
    error : float
        ``total`` at ``gamma``.
    """

    gammas: np.ndarray
    eps1: np.ndarray
    eps2: np.ndarray
    total: np.ndarray
    gamma: float
    error: float


def _template(family: str, p: int, q: int, P: int) -> EvaluationCode:
    """The ε-MatDot/ε-PolyDot code at γ = 1 (Chebyshev nodes on (−1, 1)).

    Built from :func:`.polyparts.polydot_parts` exactly as
    ``ApproxPolyDot(p, q, P, gamma=1.0)`` (``ApproxMatDot(q, P, gamma=1.0)`` for
    ``family="matdot"``) builds itself, without importing those classes (they call
    :func:`auto_gamma`).
    """
    if family == "matdot":
        if p != 1:
            raise ValueError(f"family 'matdot' needs p=1, got p={p}")
        if q < 1:
            raise ValueError(f"m must be >= 1, got {q}")
    elif family != "polydot":
        raise ValueError(f"family must be 'matdot' or 'polydot', got {family!r}")
    grid, ai, bi, targets = polydot_parts(p, q)
    if P < p * p * q:
        raise ValueError(
            f"P={P} workers is below the recovery threshold {p * p * q} of ε-{family} "
            f"(p={p}, q={q}): use P >= {p * p * q}"
        )
    return EvaluationCode(
        grid, chebyshev(P, 1.0), ai, bi, targets, threshold=p * p * q, approximate=True
    )


class ErrorModel:
    """The γ-scaling model of one ε-approximate code family for ``answers`` answers.

    Parameters
    ----------
    family : {"matdot", "polydot"}
    p, q : int
        Block split (MatDot: p = 1, q = m).
    P : int
        Workers.
    answers : int, optional
        Answers decoded (default: the ε-approximate recovery threshold p²q).
    """

    def __init__(self, family: str, p: int, q: int, P: int, answers: int | None = None) -> None:
        code = _template(family, p, q, P)
        r = code.recovery_threshold if answers is None else int(answers)
        need = int(code.block_need().max())
        if not need <= r <= P:
            raise ValueError(
                f"answers must be in [{need}, P={P}] for ε-{family} (p={p}, q={q}, P={P}); "
                f"got {r}"
            )
        self.code, self.r = code, r
        subs = list(itertools.combinations(range(P), r))
        if len(subs) > MAX_SUBSETS:
            idx = np.random.default_rng(0).choice(len(subs), MAX_SUBSETS, replace=False)
            subs = [subs[i] for i in sorted(idx)]
        self.subsets = np.array(subs, dtype=int)
        c = code.points[self.subsets]  # (N, r) nodes at gamma = 1
        K = code.K
        self.ncoef = n = min(r, K)
        V = c[:, :, None] ** np.arange(n)[None, None, :]
        self.Vinv = np.linalg.pinv(V)  # (N, n, r)
        self.T = np.asarray(code.targets)[:, :n]  # (n_c, n)
        self.d = code.a_index[:, None] + code.b_index[None, :]  # (n_a, n_b)
        self.Y = {}
        if r < K:
            for d in np.unique(self.d[self.d >= n]):
                self.Y[int(d)] = np.einsum("njk,nk->nj", self.Vinv, c ** int(d))  # (N, n)
        self.c = c

    def factors(self, gammas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(I, F): interpolation and rounding factors, arrays (N subsets, G)."""
        g = np.asarray(gammas, dtype=float)
        code, n = self.code, self.ncoef
        N, G = self.c.shape[0], g.size
        n_c, (n_a, n_b) = self.T.shape[0], self.d.shape
        with np.errstate(over="ignore", invalid="ignore"):
            I = np.zeros((N, G))
            if self.Y:
                D = np.zeros((N, G, n_c, n_a, n_b))
                j = np.arange(n)
                for a in range(n_a):
                    for b in range(n_b):
                        d = int(self.d[a, b])
                        if d < n:
                            continue
                        gp = g[:, None] ** (j[None, :] - d)  # (G, n)
                        D[:, :, :, a, b] = np.einsum("cj,gj,nj->ngc", self.T, gp, self.Y[d])
                Da = np.abs(D)  # ‖|D_c|‖_2 = sqrt(λ_max(|D_c|ᵀ|D_c|))
                lam = np.linalg.eigvalsh(np.swapaxes(Da, -1, -2) @ Da)[..., -1]
                I = np.sqrt(np.maximum(lam, 0.0)).max(axis=-1)
            gp = g[:, None] ** np.arange(n)[None, :]  # (G, n)
            W = np.einsum("cj,gj,njk->ngck", self.T, gp, self.Vinv)  # (N, G, n_c, r)
            x = self.c[:, None, :] / g[None, :, None]  # (N, G, r)
            ga = np.sqrt(
                ((x[..., None] ** code.a_index) ** 2 * code.a_scale**2).sum(axis=-1)
            )  # (N, G, r)
            gb = np.sqrt(((x[..., None] ** code.b_index) ** 2 * code.b_scale**2).sum(axis=-1))
            F = (np.abs(W) * (ga * gb)[:, :, None, :]).sum(axis=-1).max(axis=-1)
        F = np.where(np.isfinite(F), F, np.inf)
        I = np.where(np.isfinite(I), I, np.inf)
        return I, F

    def predict(self, gammas: np.ndarray, dtype: str = "float64") -> Prediction:
        """Worst-case predicted error over the subsets, on the grid ``gammas``."""
        u = unit_roundoff(dtype)
        I, F = self.factors(gammas)
        tot = I + u * F
        worst = np.argmax(tot, axis=0)
        cols = np.arange(tot.shape[1])
        t = tot[worst, cols]
        i = int(np.argmin(t))
        return Prediction(
            np.asarray(gammas, float),
            I[worst, cols],
            u * F[worst, cols],
            t,
            float(np.asarray(gammas, float)[i]),
            float(t[i]),
        )


@functools.lru_cache(maxsize=256)
def best_gamma(
    family: str,
    p: int,
    q: int,
    P: int,
    answers: int | None = None,
    dtype: str = "float64",
) -> Prediction:
    r"""γ minimising the predicted worst-case error (γ in [1, 1e16]).

    Searches :math:`\gamma\ge1` (points inside (−1, 1)): a 10-per-decade grid, then
    a 4-per-decade grid, then a 41-point grid over the two neighbouring cells of the
    best grid point (resolution 1.03×). Cached per argument tuple.
    """
    model = ErrorModel(family, p, q, P, answers)
    coarse = np.logspace(0, 16, 65)
    pc = model.predict(coarse, dtype)
    i = int(np.argmin(pc.total))
    lo, hi = coarse[max(i - 1, 0)], coarse[min(i + 1, coarse.size - 1)]
    fine = np.geomspace(lo, hi, 41)
    pf = model.predict(fine, dtype)
    return pf if pf.error <= pc.error else pc


def auto_gamma(
    family: str,
    p: int,
    q: int,
    P: int,
    answers: int | None = None,
    dtype: str = "float64",
) -> float:
    r"""γ minimising the predicted worst-case error of ε-MatDot/ε-PolyDot (``gamma="auto"``).

    The prediction is :math:`\max_S[I_S(\gamma)+u\,F_S(\gamma)]` over the subsets S of
    ``answers`` workers: the interpolation factor and the rounding factor of the decode
    (``DecodeWeights.interp_factor`` / ``fp_factor``) obtained for all γ at once from the
    γ = 1 problem (:class:`ErrorModel`), and the unit roundoff u of the worker format
    ``dtype`` (a key of :data:`gpucoded.formats.FORMATS`).

    Parameters
    ----------
    family : {"matdot", "polydot"}
    p, q : int
        Block split (MatDot: p = 1, q = m).
    P : int
        Workers.
    answers : int, optional
        Answers expected at decode time (default: the recovery threshold p²q).
    dtype : str
        Worker arithmetic.
    """
    return best_gamma(family, int(p), int(q), int(P), answers, str(dtype)).gamma
