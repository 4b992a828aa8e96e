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
to :math:`\|A\|_F\|B\|_F`; ``auto`` γ minimises it.

**Bounded cost.** The maximum runs over :func:`answer_sets`: every set of r answers
when there are at most :data:`MAX_SUBSETS` (the worst case is then *exact*), else a
*search* of at most :data:`MAX_SUBSETS` sets — every set whose missing workers form
one contiguous run of the ordered points (all offsets: the largest gaps between
points, where interpolation is worst), every split of the missing workers between
the two ends, and a seeded random sample — whose worst case is a lower estimate
(``ErrorModel.exact`` says which). No enumeration of :math:`\binom Pr` sets: memory
and time are bounded by :data:`MAX_SUBSETS`, the γ grid (processed in chunks of at
most :data:`CHUNK_ELEMENTS` numbers) and m. For large blocks (:math:`n_an_b>`
:data:`EXACT_NORM_MAX`) :math:`\||D_c|\|_2` is replaced by its upper bound
:math:`\sqrt{\||D_c|\|_1\||D_c|\|_\infty}` (the model stays an upper bound). Beyond
P = :data:`MAX_P` workers the model is refused with a ``ValueError``. Both terms overestimate the
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

__all__ = [
    "MAX_P",
    "MAX_SUBSETS",
    "ErrorModel",
    "Prediction",
    "answer_sets",
    "auto_gamma",
    "best_gamma",
    "typical_scale",
]

#: Answer sets evaluated at most: all of them up to this many, else a search (above).
MAX_SUBSETS = 400
#: Largest number of workers the error model (and so ``code="auto"``) accepts.
MAX_P = 512
#: Numbers per temporary array of :meth:`ErrorModel.factors` (8 bytes each: 32 MB).
CHUNK_ELEMENTS = 4_000_000
#: Numbers r·n_a·n_b·N (answers × block pairs × sets) above which :class:`ErrorModel`
#: takes fewer answer sets than asked (not below 16): bounds its time and memory for
#: large m (ε-MatDot m = 100: 16 sets; m ≤ 20 keeps all 400).
MODEL_ELEMENTS = 10_000_000
#: Blocks n_a·n_b up to which ‖|D_c|‖₂ is computed exactly (eigvalsh), else bounded.
EXACT_NORM_MAX = 256


def answer_sets(
    P: int, r: int, budget: int = MAX_SUBSETS, seed: int = 0
) -> tuple[np.ndarray, bool]:
    """Sets of r of the P workers to take a worst case over: (sets (N, r), exact).

    All :math:`\binom Pr` sets when there are at most ``budget`` (``exact`` True);
    else at most ``budget`` sets: every contiguous run of missing workers (P − r + 1
    offsets), every split of them between the two ends, then a seeded random sample
    (``exact`` False: the worst case found is a lower estimate). Never enumerates.
    """
    if not 1 <= r <= P:
        raise ValueError(f"need 1 <= r <= P answers, got r={r}, P={P}")
    if math.comb(P, r) <= budget:
        return np.array(list(itertools.combinations(range(P), r)), dtype=int).reshape(-1, r), True
    s = P - r
    miss: list[tuple[int, ...]] = [tuple(range(i, i + s)) for i in range(P - s + 1)]
    miss += [tuple(range(i)) + tuple(range(P - s + i, P)) for i in range(s + 1)]
    seen: dict[tuple[int, ...], None] = dict.fromkeys(tuple(sorted(x)) for x in miss)
    structured = list(seen)
    if len(structured) > budget // 2:  # evenly spaced among them, half the budget
        idx = np.linspace(0, len(structured) - 1, budget // 2).astype(int)
        structured = [structured[i] for i in idx]
    chosen = dict.fromkeys(structured)
    rng = np.random.default_rng(seed)
    tries = 0
    while len(chosen) < budget and tries < 20 * budget:
        tries += 1
        chosen.setdefault(tuple(sorted(rng.choice(P, s, replace=False).tolist())))
    everyone = np.arange(P)
    sets = np.array([np.setdiff1d(everyone, m) for m in chosen], dtype=int).reshape(-1, r)
    return sets, False


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
    budget : int
        Answer sets evaluated at most (:func:`answer_sets`; fewer, down to 16, where
        :math:`N r n_an_b` would pass :data:`MODEL_ELEMENTS`); ``exact`` says whether
        they were all of them.
    """

    def __init__(
        self,
        family: str,
        p: int,
        q: int,
        P: int,
        answers: int | None = None,
        budget: int = MAX_SUBSETS,
    ) -> None:
        code = _template(family, p, q, P)
        r = code.recovery_threshold if answers is None else int(answers)
        need = int(code.block_need().max())
        if not need <= r <= P:
            raise ValueError(
                f"answers must be in [{need}, P={P}] for ε-{family} (p={p}, q={q}, P={P}); "
                f"got {r}"
            )
        if P > MAX_P:
            raise ValueError(
                f"the error model of ε-{family} takes at most P={MAX_P} workers (its cost "
                f"grows with P and m); got P={P}: choose gamma= yourself, or use fewer workers"
            )
        self.code, self.r = code, r
        n_ab = len(code.a_index) * len(code.b_index)
        budget = min(budget, max(16, MODEL_ELEMENTS // (r * n_ab)))
        #: the answer sets of the worst case, and whether they are all of them
        self.subsets, self.exact = answer_sets(P, r, budget)
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
        self._ca2 = (c[..., None] ** code.a_index * code.a_scale) ** 2  # (N, r, n_a)
        self._cb2 = (c[..., None] ** code.b_index * code.b_scale) ** 2  # (N, r, n_b)

    def factors(self, gammas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(I, F): interpolation and rounding factors, arrays (N subsets, G).

        Computed a few γ at a time: no temporary holds more than
        :data:`CHUNK_ELEMENTS` numbers (plus the O(N·G) results).
        """
        g = np.atleast_1d(np.asarray(gammas, dtype=float))
        N, r = self.c.shape
        n_a, n_b = self.d.shape
        n_c = self.T.shape[0]
        per_g = N * max(r * max(n_a, n_b, n_c), n_c * n_a * n_b if self.Y else 1)
        step = max(1, CHUNK_ELEMENTS // max(per_g, 1))
        parts = [self._factors(g[i : i + step]) for i in range(0, g.size, step)]
        return np.concatenate([p[0] for p in parts], axis=1), np.concatenate(
            [p[1] for p in parts], axis=1
        )

    def _factors(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`factors` for one chunk of γ values."""
        code, n = self.code, self.ncoef
        N, G = self.c.shape[0], g.size
        n_c, (n_a, n_b) = self.T.shape[0], self.d.shape
        with np.errstate(over="ignore", invalid="ignore"):
            I = np.zeros((N, G))
            if self.Y:
                D = np.zeros((N, G, n_c, n_a, n_b))
                j = np.arange(n)
                for d, Yd in self.Y.items():  # entries depend on (a, b) only through d
                    gp = g[:, None] ** (j[None, :] - d)  # (G, n)
                    Z = np.abs(np.einsum("cj,gj,nj->ngc", self.T, gp, Yd))  # (N, G, n_c)
                    a, b = np.nonzero(self.d == d)
                    D[:, :, :, a, b] = Z[..., None]
                if n_a * n_b <= EXACT_NORM_MAX:  # ‖|D_c|‖_2 = sqrt(λ_max(|D_c|ᵀ|D_c|))
                    lam = np.linalg.eigvalsh(np.swapaxes(D, -1, -2) @ D)[..., -1]
                    I = np.sqrt(np.maximum(lam, 0.0)).max(axis=-1)
                else:  # the upper bound sqrt(‖·‖₁‖·‖_∞) of the 2-norm
                    I = np.sqrt(D.sum(axis=-2).max(axis=-1) * D.sum(axis=-1).max(axis=-1))
                    I = I.max(axis=-1)
            gp = g[:, None] ** np.arange(n)[None, :]  # (G, n)
            W = np.einsum("cj,gj,njk->ngck", self.T, gp, self.Vinv)  # (N, G, n_c, r)
            # ‖G_A[s]‖² = Σ_a (c_s^α_a s_a)² γ^(−2α_a): one product with the γ-free part
            ga = np.sqrt(np.einsum("nra,ga->ngr", self._ca2, g[:, None] ** (-2.0 * code.a_index)))
            gb = np.sqrt(np.einsum("nrb,gb->ngr", self._cb2, g[:, None] ** (-2.0 * code.b_index)))
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
    budget: int = MAX_SUBSETS,
) -> Prediction:
    r"""γ minimising the predicted worst-case error (γ in [1, 1e16]).

    Searches :math:`\gamma\ge1` (points inside (−1, 1)): a 4-per-decade grid, then
    a 41-point grid over the two neighbouring cells of the best grid point
    (resolution 1.03×). An exact decode (answers ≥ K: no interpolation error, a
    rounding factor growing with γ) is predicted at γ = 1 only. Cached per argument
    tuple; ``budget`` as for :class:`ErrorModel`.
    """
    model = ErrorModel(family, p, q, P, answers, budget)
    if model.r >= model.code.K:
        return model.predict(np.array([1.0]), dtype)
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
