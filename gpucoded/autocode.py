r"""``code="auto"``: the lightest code whose predicted worst-case error meets ``rtol``.

Given P workers of which ``stragglers`` may not answer (r = P − stragglers answers
decoded), the candidates are, for every storage fraction 1/m:

* the exact Chebyshev code (threshold 2m − 1 ≤ r): interpolation error 0, rounding
  :math:`u\,F_S` (``DecodeWeights.fp_factor`` of its weights);
* ε-MatDot at the automatic γ for r answers (threshold m ≤ r): the auto-γ error
  model :math:`\max_S[I_S+u\,F_S]` (:func:`gpucoded.codes.gamma.best_gamma`).

Both predictions are worst cases over the answer sets S
(:func:`gpucoded.codes.gamma.answer_sets`: all of them when there are at most
:data:`AUTO_SUBSETS`, else that many searched — every contiguous gap, the end splits
and a seeded sample — a lower estimate of the worst case; ``AutoChoice.exact`` says
which) *relative to* :math:`\rho_A\rho_B` (the ρ norms of
:func:`gpucoded.pipeline.operand_norms`), in the unit roundoff u of the worker
format. ``rtol`` is relative to the result's scale, :math:`\max|\hat C-AB|\le
\mathrm{rtol}\cdot\max|AB|` — the scale the accuracy guard uses — and the product
does not exist yet, so :math:`\max|AB|` is replaced by its typical value for inputs
in general position: an entry :math:`a_i\cdot b_j` of vectors of length k has size
about :math:`\|a_i\|\|b_j\|/\sqrt k`, and the largest of the n·l entries is about
:math:`\sqrt{2\ln(nl)}` times that, so

.. math:: \frac{\rho_A\rho_B}{\max|AB|}\approx\sqrt{pt}\,\sqrt{k/(2\ln nl)} .

**Tightness.** The error factors are worst cases over S and over inputs (typically
10–100× above the measured errors, so the choice is on the safe side); the scale is
typical, not guaranteed: for inputs whose product is much smaller than their norms
suggest (near-orthogonal rows and columns) the realised relative error is larger,
and the accuracy guard (:mod:`gpucoded.guard`) flags it. The chosen code is the one
with the largest m (smallest load per worker) that meets ``rtol``; between codes of
equal m the exact one. ``rtol=None`` asks for working precision,
:math:`10^3u` (float64: 1.1e-13, float32: 6e-5).

**Bounded cost.** The predicted error of each family grows with m, so the largest m
meeting ``rtol`` is found by galloping and bisection (about :math:`2\log_2 m`
predictions, none at more than twice the chosen m; not one per m),
each over at most :data:`AUTO_SUBSETS` answer sets (fewer, down to 16, where their
:math:`N r^2` numbers would pass :data:`AUTO_ELEMENTS`); the Chebyshev code's factors for
every m come from one QR per (P, r) (:func:`_chebyshev_factors`), and ε-MatDot is
only predicted above the largest Chebyshev m that meets ``rtol`` (a tie goes to the
exact code, so ``AutoChoice.candidates`` lists no ε-MatDot m at or below it); P above
:data:`gpucoded.codes.gamma.MAX_P` is refused with a ``ValueError``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .codes import ApproxMatDot, ChebyshevMatDot, Code
from .codes.gamma import MAX_P, answer_sets, best_gamma
from .formats import FormatSpec, get_format
from .probes import RTOL_FLAG, overestimate

__all__ = ["AutoChoice", "choose_code", "default_rtol", "scale_ratio"]

#: Answer sets per prediction of ``code="auto"`` (all of them up to this many).
AUTO_SUBSETS = 64
#: Numbers per (sets × answers × coefficients) array of one prediction: the
#: sets are cut below :data:`AUTO_SUBSETS` (not below 16) where r² would exceed it.
AUTO_ELEMENTS = 2_000_000
#: Working precision of ``rtol=None``, in unit roundoffs.
WORKING_PRECISION_ULPS = 1e3


def default_rtol(fmt: FormatSpec) -> float:
    """``rtol`` of working precision in ``fmt``: :data:`WORKING_PRECISION_ULPS` · u."""
    return WORKING_PRECISION_ULPS * get_format(fmt).u


def scale_ratio(n: int, k: int, l: int, p: int = 1, t: int = 1) -> float:
    r"""Typical :math:`\rho_A\rho_B/\max|AB|`: :math:`\sqrt{pt\,k/(2\ln nl)}`."""
    return math.sqrt(p * t * k / (2 * math.log(max(n * l, 2))))


@dataclass
class AutoChoice:
    r"""What ``code="auto"`` chose and why.

    Attributes
    ----------
    code : Code
    predicted : float
        Predicted worst-case relative error of the chosen code.
    rtol : float
        The ``rtol`` asked for.
    target : float
        What the choice was held to: :math:`\min(\mathrm{rtol},\ 10^{-2}/o_l)`, with
        :math:`o_l` = :func:`gpucoded.probes.overestimate` (l): the guard's measured
        check over-estimates a spread error by up to :math:`o_l`, so a code predicted
        just under 1e-2 would be flagged after the work was done.
    candidates : list of (name, m, predicted relative error)
        Every candidate considered, lightest load first.
    answers : int
        Answers the prediction assumes (P − stragglers): the call waits for them.
    """

    code: Code
    predicted: float
    rtol: float
    candidates: list[tuple[str, int, float]]
    answers: int = 0
    #: whether the worst cases were over every answer set (else a bounded search)
    exact: bool = True
    target: float = math.inf

    def __post_init__(self) -> None:
        self.target = min(self.target, self.rtol)

    def explain(self) -> list[str]:
        """Plain-language lines: the candidates and the choice."""
        lines = [f"{'code':14s} {'m':>3s} {'predicted rel. error':>21s}"]
        for name, m, e in self.candidates:
            mark = "  <- chosen" if (name, m) == (self.code.name, self.code.m) else ""
            ok = "meets" if e <= self.target else "misses"
            lines.append(f"{name:14s} {m:3d} {e:21.2e}  {ok} {self.target:.1e}{mark}")
        if self.target < self.rtol:
            lines.append(
                f"target {self.target:.1e} < rtol {self.rtol:.1e}: room for the accuracy "
                "guard's measured check, which over-estimates an error spread over a row "
                "(gpucoded.probes.overestimate), so that a result meeting rtol is not flagged"
            )
        return lines


@functools.lru_cache(maxsize=4)
def _chebyshev_factors(P: int, r: int, budget: int = AUTO_SUBSETS) -> np.ndarray:
    r"""Worst :math:`F_S` of the exact Chebyshev code for every m ≤ (r + 1)//2 at once.

    Entry m − 1 is :math:`\max_S\max_c\sum_k|W_{ck}|\,\|G_A[s_k]\|_2\|G_B[s_k]\|_2`
    over the sets of :func:`~gpucoded.codes.gamma.answer_sets` (at most ``budget``,
    the same sets for every m). The code for m uses the first K = 2m − 1 columns
    of the Chebyshev basis matrix :math:`V_S` (r × K_max), and the target row
    :math:`T=2e_0^\top`. One Householder QR :math:`V_S=QR` at :math:`K_{\max}`
    gives every K: the QR of the first K columns is :math:`(Q_{:,:K},R_{:K,:K})`,
    and the minimum-norm weights :math:`W_K=T R_K^{-1}Q_K^\top=\sum_{j<K}y_j\,q_j^\top` with
    :math:`R^\top y=T^\top` (forward substitution: :math:`y_{:K}` solves the
    leading K × K system). Cost: one batched QR, :math:`O(NrK_{\max}^2)`, instead
    of one per m; memory :math:`O(NrK_{\max})` (cached for 4 (P, r) pairs).
    """
    mmax = (r + 1) // 2
    Kmax = 2 * mmax - 1
    subs, _ = answer_sets(P, r, budget)
    x = np.clip(np.asarray(ChebyshevMatDot(1, P).points).real, -1, 1)
    Tx = np.cos(np.arange(Kmax)[None, :] * np.arccos(x)[:, None])  # (P, Kmax): T_j(x_k)
    Q, R = np.linalg.qr(Tx[subs])  # (N, r, Kmax), (N, Kmax, Kmax)
    e0 = np.zeros(Kmax)
    e0[0] = 2.0  # the target row T = 2e_0ᵀ: C = 2c_0
    y = np.linalg.solve(np.swapaxes(R, -1, -2), np.broadcast_to(e0[:, None], (len(subs), Kmax, 1)))
    y = y[..., 0]  # (N, Kmax)
    a2 = np.cumsum(Tx[:, :mmax] ** 2, axis=1) - 0.75  # ‖G_A[k]‖² for m = 1..mmax (A_1/2)
    b2 = np.cumsum(Tx[:, :mmax] ** 2, axis=1)  # ‖G_B[k]‖²
    gab = np.sqrt(a2 * b2)[subs]  # (N, r, mmax)
    out = np.empty(mmax)
    W = np.zeros(subs.shape)  # (N, r): W_K, built column by column
    for m in range(1, mmax + 1):
        for j in range(max(2 * m - 3, 0), 2 * m - 1):
            W += y[:, j, None] * Q[:, :, j]
        out[m - 1] = float((np.abs(W) * gab[:, :, m - 1]).sum(axis=-1).max())
    return out


def chebyshev_error(m: int, P: int, r: int, u: float, budget: int = AUTO_SUBSETS) -> float:
    r"""Worst :math:`u\,F_S` of the exact Chebyshev code over the sets of r answers
    (:func:`~gpucoded.codes.gamma.answer_sets`, at most ``budget``).

    :math:`F_S=\max_c\sum_k|W_{ck}|\,\|G_A[s_k]\|_2\|G_B[s_k]\|_2` with the
    minimum-norm interpolation weights :math:`W=T\,V_S^{+}=T R^{-1}Q^\top` of the
    Chebyshev basis matrix :math:`V_S=QR` (float64 QR: a model, agreeing with
    ``DecodeWeights.fp_factor`` to about cond·u relative, without its mpmath solves),
    from the table of :func:`_chebyshev_factors` (every m of one (P, r) in one QR).
    """
    if not 1 <= 2 * m - 1 <= r <= P:
        raise ValueError(f"need 2m - 1 <= r <= P for the Chebyshev code; got m={m}, r={r}, P={P}")
    return u * float(_chebyshev_factors(int(P), int(r), int(budget))[m - 1])


def _largest(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    r"""Largest m in [lo, hi] with ``ok(m)``, for ``ok`` true up to some m (lo − 1: none).

    Galloping from ``lo`` (lo, lo+1, lo+3, lo+7, ...) until ``ok`` fails, then
    bisection: about :math:`2\log_2` of the answer evaluations, the largest at most
    twice the answer (the cost of a prediction grows with m).
    """
    if hi < lo or not ok(lo):
        return lo - 1
    good, step = lo, 1
    while True:
        probe = min(good + step, hi)
        if probe == good:
            return good
        if not ok(probe):
            bad = probe
            break
        good, step = probe, 2 * step
    while bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def choose_code(
    P: int,
    stragglers: int,
    fmt: FormatSpec,
    *,
    rtol: float | None = None,
    shape: tuple[int, int, int] = (100, 100, 100),
) -> AutoChoice:
    """The lightest code for P workers, ``stragglers`` missing, meeting ``rtol``.

    Parameters
    ----------
    P : int
        Workers.
    stragglers : int
        Workers that may not answer (0 ≤ stragglers < P).
    fmt : Format or name
        Worker number format.
    rtol : float, optional
        Required max-norm error relative to max|AB| (default: :func:`default_rtol`).
    shape : (n, k, l)
        Product shape, for the typical scale (:func:`scale_ratio`).

    Raises
    ------
    ValueError
        Bad counts, P above :data:`~gpucoded.codes.gamma.MAX_P`, or no candidate
        meets ``rtol`` (names the best reachable).
    """
    fmt = get_format(fmt)
    if P < 1 or not 0 <= stragglers < P:
        raise ValueError(f"need P >= 1 and 0 <= stragglers < P; got P={P}, stragglers={stragglers}")
    if P > MAX_P:
        raise ValueError(
            f"code='auto' chooses among codes for at most P={MAX_P} workers (the error "
            f"model's cost grows with P); got P={P}: name a code (e.g. code='chebyshev', "
            f"m=...) or use fewer workers"
        )
    tol = default_rtol(fmt) if rtol is None else float(rtol)
    if not tol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    r = P - stragglers
    n, k, l = shape
    ratio = scale_ratio(n, k, l)
    asked = tol
    # held to what the guard will accept of it too (its check over-estimates a spread
    # error by up to overestimate(l)): a choice it would flag is no choice
    tol = min(tol, RTOL_FLAG / overestimate(l))
    cands: list[tuple[str, int, float]] = []
    exact = [True]

    budget = max(16, min(AUTO_SUBSETS, AUTO_ELEMENTS // (r * r)))

    def cheb_ok(m: int) -> bool:
        e = chebyshev_error(m, P, r, fmt.u, budget) * ratio
        cands.append(("chebyshev", m, e))
        exact[0] &= math.comb(P, r) <= budget
        return e <= tol

    def approx_ok(m: int) -> bool:
        pred = best_gamma("matdot", 1, m, P, r, fmt.name, budget)
        cands.append(("approx_matdot", m, pred.error * ratio))
        exact[0] &= math.comb(P, r) <= budget
        return pred.error * ratio <= tol

    m_cheb = _largest(cheb_ok, 1, (r + 1) // 2)
    # equal m goes to the exact code: ε-MatDot is only looked at above the Chebyshev m
    _largest(approx_ok, max(2, m_cheb + 1), r)
    cands.sort(key=lambda c: (-c[1], c[0]))
    ok = [c for c in cands if c[2] <= tol]
    if not ok:
        best = min(cands, key=lambda c: c[2])
        raise ValueError(
            f"no code on P={P} workers with {stragglers} stragglers meets rtol={asked:.2g} "
            f"(held to {tol:.2g} so that the accuracy guard accepts it) in "
            f"{fmt.name}: the most accurate, {best[0]} m={best[1]}, predicts {best[2]:.2g}; "
            "use fewer stragglers, more workers, float64 workers or a larger rtol"
        )
    name, m, e = max(ok, key=lambda c: (c[1], c[0] == "chebyshev"))
    if name == "chebyshev":
        code: Code = ChebyshevMatDot(m, P)
    else:
        g = best_gamma("matdot", 1, m, P, r, fmt.name, budget).gamma
        code = ApproxMatDot(m, P, gamma=g, dtype=fmt.name)
    code.auto_choice = AutoChoice(code, e, asked, cands, r, exact[0], target=tol)
    return code.auto_choice
