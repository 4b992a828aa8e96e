r"""``code="auto"``: the lightest code whose predicted worst-case error meets ``rtol``.

Given P workers of which ``stragglers`` = s may not answer (r = P − s answers), the
candidates are, for every storage fraction 1/m (each worker holds 1/m of A and of B
and computes one GEMM of 1/m of the inner dimension, whichever family):

* **replication** (:class:`~gpucoded.codes.Replication`, the library's class): m
  blocks, each computed by :math:`P/m` workers. That class builds P = m·r exactly
  (worker w holds block :math:`w \bmod m`; it refuses a P that m does not divide),
  and it decodes once every block has a copy, so it survives *any* s missing workers
  iff every block has at least s + 1 copies: the candidates are the divisors m of P
  with :math:`m\le\lfloor P/(s+1)\rfloor`. No decode: :math:`\hat C=\sum_jA_jB_j`,
  one answer per block, so its rounding is predicted as the Chebyshev code's is,
  :math:`u\,F` with F = ``DecodeWeights.fp_factor`` of its (identity) weights, F = m
  for every answer set;
* the exact **Chebyshev** code (threshold 2m − 1 ≤ r): interpolation error 0, rounding
  :math:`u\,F_S` (``DecodeWeights.fp_factor`` of its weights);
* **ε-MatDot** at the automatic γ for r answers (threshold m ≤ r): the auto-γ error
  model :math:`\max_S[I_S+u\,F_S]` (:func:`gpucoded.codes.gamma.best_gamma`);
* **hedging** (:class:`~gpucoded.codes.Hedged`: m exact tasks, P − m spares, a late
  task re-issued; :mod:`gpucoded.hedging`) only when the caller gives a latency
  model (``latency=``, below): its rounding is replication's, u·m, but its time
  depends on the latency — with s stragglers its worst case is "wait for the
  re-issue" — so without a model it is never chosen.

The predictions are worst cases over the answer sets S
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
and the accuracy guard (:mod:`gpucoded.guard`) flags it. ``rtol=None`` asks for
working precision, :math:`10^3u` (float64: 1.1e-13, float32: 6e-5).

**The rule.** The chosen code is the one with the largest m (least work and storage
per worker) that meets ``rtol``. Between codes of equal m (equal work per worker):
replication, then Chebyshev, then ε-MatDot (:data:`PREFERENCE`). Replication first
because it has no decode: no amplification of the workers' rounding (F = m against
the Chebyshev code's :math:`F_S\ge m`), no weights to solve, and it decodes from the
first answer of each block rather than from r answers. Counted as Wang, Jia and
Jafar count it ("Price of Precision in Coded Distributed Matrix Multiplication",
arXiv 2105.07567), a worker's result is worth its accurate bits
:math:`b=-\log_2(\text{predicted relative error})`, so at equal work per worker the
candidate with the smallest amplification delivers the most bits per worker
(``AutoChoice.explain`` lists b and b·m, bits per unit of load, for every candidate).

**With a latency model** (``latency=`` a :class:`gpucoded.stragglers.LatencyModel`
of each worker's time for its piece of work): the candidates at the chosen work per
worker 1/m* — the m-choice above, replication and Chebyshev at m* where they exist
and meet ``rtol``, and hedging at m* (m* tasks, P − m* spares) — are ranked by their
expected time to result, the mean over :func:`latency_draws` seeded draws of P
times, the same draws for each (common random numbers): replication when every block
has a copy; Chebyshev and ε-MatDot when their r answers are in (what the call waits
for); hedging by the event simulation :func:`gpucoded.stragglers.hedged_time` of its
default re-issue rule, which the serial executor's virtual clock reproduces exactly.
A draw's times are each worker's whole time for a piece of 1/m* of the work, so the
comparison is at equal work per worker only: a hedged split into more tasks (less
work each, fewer spares) or a code at another m would need a model of how the time
scales with the load, which a latency model does not give. A candidate displaces the
m-choice only when it is faster beyond the Monte Carlo noise (its paired differences
over the common draws average more than two standard errors, :func:`fastest`);
otherwise, and at equal times, :data:`PREFERENCE` decides. ``AutoChoice.expected_time``
records every mean. A hedged choice runs with ``coded_matmul`` and ``CodedMatrix``
(blocks held as arrays); ``progressive_matmul`` refuses it with a ``TypeError`` (one
exact result, nothing to refine): leave ``latency=`` out there.

**Bounded cost.** The predicted error of each family grows with m, so the largest m
meeting ``rtol`` is found by galloping and bisection (about :math:`2\log_2 m`
predictions, none at more than twice the chosen m; not one per m),
each over at most :data:`AUTO_SUBSETS` answer sets (fewer, down to 16, where their
:math:`N r^2` numbers would pass :data:`AUTO_ELEMENTS`); the Chebyshev code's factors for
every m come from one QR per (P, r) (:func:`_chebyshev_factors`), replication's from
its weights for one answer set per divisor tried (largest first, until one meets
``rtol``), and ε-MatDot is only predicted above the largest exact m that meets
``rtol`` (a tie goes to the exact code, so ``AutoChoice.candidates`` lists no
ε-MatDot m at or below it); the latency draws are bounded by
:data:`LATENCY_WORK` (the hedged simulation costs about m² per draw); P above
:data:`gpucoded.codes.gamma.MAX_P` is refused with a ``ValueError``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .codes import ApproxMatDot, ChebyshevMatDot, Code, Hedged, Replication
from .codes.gamma import MAX_P, answer_sets, best_gamma
from .formats import FormatSpec, get_format
from .probes import RTOL_FLAG, overestimate
from .stragglers import LatencyModel, hedged_time

__all__ = [
    "AutoChoice",
    "PREFERENCE",
    "choose_code",
    "default_rtol",
    "draw_times",
    "expected_times",
    "fastest",
    "latency_draws",
    "replication_blocks",
    "scale_ratio",
]

#: Answer sets per prediction of ``code="auto"`` (all of them up to this many).
AUTO_SUBSETS = 64
#: Numbers per (sets × answers × coefficients) array of one prediction: the
#: sets are cut below :data:`AUTO_SUBSETS` (not below 16) where r² would exceed it.
AUTO_ELEMENTS = 2_000_000
#: Working precision of ``rtol=None``, in unit roundoffs.
WORKING_PRECISION_ULPS = 1e3
#: Order of preference at equal m (and, with a latency model, equal expected time):
#: no decode first, then the exact code, then the approximate one, then hedging
#: (whose time is the latency model's word only).
PREFERENCE = ("replication", "chebyshev", "approx_matdot", "hedged")
#: Latency draws of the expected times: at most this many ...
LATENCY_DRAWS = 256
#: ... at least this many ...
MIN_LATENCY_DRAWS = 4
#: ... and draws · m² at most this (the hedged event simulation's cost per draw grows
#: about as m²: 0.04 s per draw at m = 256 on one core), so the means cost < 0.2 s.
LATENCY_WORK = 60_000
#: Seed of the latency draws (the same draws for every candidate and every call).
LATENCY_SEED = 0


def default_rtol(fmt: FormatSpec) -> float:
    """``rtol`` of working precision in ``fmt``: :data:`WORKING_PRECISION_ULPS` · u."""
    return WORKING_PRECISION_ULPS * get_format(fmt).u


def scale_ratio(n: int, k: int, l: int, p: int = 1, t: int = 1) -> float:
    r"""Typical :math:`\rho_A\rho_B/\max|AB|`: :math:`\sqrt{pt\,k/(2\ln nl)}`."""
    return math.sqrt(p * t * k / (2 * math.log(max(n * l, 2))))


def _bits(e: float) -> float:
    """Accurate bits of a relative error e: −log2 e (inf for e = 0)."""
    return math.inf if e <= 0 else -math.log2(e)


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
    answers : int or None
        Answers the prediction assumes (P − stragglers): the call waits for them.
        None for replication and hedging: the call ends when every block (task) has
        an answer, whichever (their error is the same for every such set).
    factors : dict
        (name, m) -> (F, I): the decode's rounding amplification F
        (``DecodeWeights.fp_factor``: the predicted error is
        :math:`(I+u\,F)\cdot\rho_A\rho_B/\max|AB|`) and its interpolation part I
        (0 for the exact codes).
    latency : LatencyModel or None
        The latency model given, if any.
    expected_time : dict
        (name, m) -> mean time to result (seconds) under ``latency`` over ``draws``
        draws, for the candidates at the chosen m (empty without a model).
    """

    code: Code
    predicted: float
    rtol: float
    candidates: list[tuple[str, int, float]]
    answers: int | None = 0
    #: whether the worst cases were over every answer set (else a bounded search)
    exact: bool = True
    target: float = math.inf
    factors: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    latency: Any = None
    expected_time: dict[tuple[str, int], float] = field(default_factory=dict)
    draws: int = 0
    #: unit roundoff of the worker format the predictions are in
    u: float = 0.0
    #: answers the predictions of the codes are for (P − stragglers)
    r: int = 0

    def __post_init__(self) -> None:
        self.target = min(self.target, self.rtol)

    def explain(self) -> list[str]:
        """Plain-language lines: the candidates, the choice and why it was preferred.

        Per candidate: m and the work per worker (1/m of A and of B, one GEMM of 1/m
        of the inner dimension), the predicted relative error, its accurate bits b
        and b·m (bits per unit of load, Wang–Jia–Jafar), the decode amplification F
        and, with a latency model, the expected time to result.
        """
        timed = bool(self.expected_time)
        head = (
            f"{'code':14s} {'m':>3s} {'work/worker':>11s} {'predicted rel. error':>21s} "
            f"{'bits':>5s} {'bits*m':>6s} {'F':>9s}"
        )
        lines = [head + (f" {'E[time]':>9s}" if timed else "")]
        chosen = (self.code.name, self.code.m)
        for name, m, e in self.candidates:
            F = self.factors.get((name, m), (math.nan, 0.0))[0]
            row = (
                f"{name:14s} {m:3d} {'1/' + str(m):>11s} {e:21.2e} {_bits(e):5.1f} "
                f"{m * _bits(e):6.0f} {F:9.3g}"
            )
            if timed:
                t = self.expected_time.get((name, m))
                row += "          " if t is None else f" {1e3 * t:6.1f} ms"
            ok = "meets" if e <= self.target else "misses"
            mark = "  <- chosen" if (name, m) == chosen else ""
            lines.append(f"{row}  {ok} {self.target:.1e}{mark}")
        lines += self._why()
        if self.target < self.rtol:
            lines.append(
                f"target {self.target:.1e} < rtol {self.rtol:.1e}: room for the accuracy "
                "guard's measured check, which over-estimates an error spread over a row "
                "(gpucoded.probes.overestimate), so that a result meeting rtol is not flagged"
            )
        return lines

    def _why(self) -> list[str]:
        """Why the chosen candidate was preferred (lines of :meth:`explain`)."""
        name, m = self.code.name, self.code.m
        ok = [c for c in self.candidates if c[2] <= self.target]
        lines = []
        mmax = max((c[1] for c in ok), default=m)
        if m == mmax:
            lines.append(
                f"chosen {name} m={m}: the largest m meeting the target, i.e. the least "
                f"work per worker (1/{m} of A and of B, one GEMM of 1/{m} of the inner "
                "dimension)"
            )
        else:
            lines.append(
                f"chosen {name} m={m}: faster in expectation than the candidates at m={mmax} "
                "(see below)"
            )
        e0 = self.predicted
        F0 = self.factors.get((name, m), (math.nan, 0.0))[0]
        for other, mo, e in ok:
            if mo != m or other == name:
                continue
            Fo = self.factors.get((other, mo), (math.nan, 0.0))[0]
            lines.append(
                f"  over {other} m={mo} (equal work per worker): F {F0:.3g} vs {Fo:.3g}, "
                f"predicted {e0:.2e} vs {e:.2e}, {_bits(e0):.1f} vs {_bits(e):.1f} bits "
                f"per worker ({m * _bits(e0):.0f} vs {mo * _bits(e):.0f} bits x m)"
                + (
                    "; no decode: the first answer of each block is used"
                    if name == "replication" and not self.expected_time
                    else ""
                )
            )
        if self.expected_time:
            ts = sorted(self.expected_time.items(), key=lambda kv: kv[1])
            lines.append(
                f"expected time to result under {self.latency!r} (mean of {self.draws} "
                f"seeded draws, equal work per worker 1/{m}; the codes wait for the "
                f"{self.r} answers their predictions are for, replication for a copy of "
                "every block, hedging for every task): "
                + ", ".join(f"{k[0]} {1e3 * t:.1f} ms" for k, t in ts)
                + f"; chosen: {name} (a candidate displaces the choice by m only when "
                "faster by more than 2 standard errors of the paired differences; "
                f"else, and at equal times, by {', '.join(PREFERENCE)})"
            )
        else:
            lines.append(
                "hedged (m tasks, P - m spares, a late task re-issued) is not considered "
                "without latency=: its time depends on the latency, and with the stragglers "
                "missing its worst case waits for the re-issue"
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


def replication_blocks(P: int, stragglers: int) -> list[int]:
    r"""Block counts m of a :class:`~gpucoded.codes.Replication` on exactly P workers
    that survives any ``stragglers`` missing workers, largest first.

    ``Replication(m, r)`` runs on P = m·r workers (it refuses other P), worker w
    computing block :math:`w\bmod m`, and decodes once every block has an answer: any
    s missing workers leave a copy of every block iff r ≥ s + 1. So m divides P and
    :math:`m\le\lfloor P/(s+1)\rfloor`.
    """
    return [m for m in range(P // (stragglers + 1), 0, -1) if P % m == 0]


def replication_factor(code: Replication) -> float:
    r"""Rounding amplification F of replication's (and hedging's) decode:
    ``DecodeWeights.fp_factor`` of its weights for workers 0..m−1 (one copy of each
    block). The weights pick one
    answer per block with weight 1 and every encoding row is a unit vector, so
    :math:`F=m` for every set that covers the blocks."""
    return float(code.decode_weights(tuple(range(code.m))).fp_factor)


def latency_draws(P: int, m: int) -> int:
    """Draws of the expected times: :data:`LATENCY_WORK` // m², within
    [:data:`MIN_LATENCY_DRAWS`, :data:`LATENCY_DRAWS`]."""
    return max(MIN_LATENCY_DRAWS, min(LATENCY_DRAWS, LATENCY_WORK // max(m * m, 1)))


def _check_latency(latency: Any) -> LatencyModel | None:
    if latency is None or isinstance(latency, LatencyModel):
        return latency
    raise TypeError(
        f"latency must be a gpucoded.stragglers.LatencyModel (e.g. ShiftedExponential(0.1, "
        f"0.05), OneSlowDevice(...)) giving each worker's time for its piece, or None; got "
        f"{type(latency).__name__}"
    )


def expected_times(
    codes: dict[tuple[str, int], tuple[Code, int | None]],
    latency: LatencyModel,
    P: int,
    draws: int,
    seed: int = LATENCY_SEED,
) -> dict[tuple[str, int], float]:
    """Mean time to result of each code under ``latency`` (seconds): the means of
    :func:`draw_times`."""
    return {k: float(np.mean(t)) for k, t in draw_times(codes, latency, P, draws, seed).items()}


def draw_times(
    codes: dict[tuple[str, int], tuple[Code, int | None]],
    latency: LatencyModel,
    P: int,
    draws: int,
    seed: int = LATENCY_SEED,
) -> dict[tuple[str, int], np.ndarray]:
    r"""Time to result of each code in each of ``draws`` latency draws (seconds).

    ``draws`` draws of P worker times T (one seeded generator: the same draws for
    every code). Per draw: a code waiting for ``answers`` answers (an int) ends at the
    ``answers``-th smallest time; replication (answers None) when every block has a
    copy, :math:`\max_j\min_{w\to j}T_w` (the blocks of ``Replication.block_of``);
    hedging by :func:`gpucoded.stragglers.hedged_time` with the code's ``hedge_after``
    (default: its rule), a copy issued to worker w at t answering at t + T_w.

    Raises
    ------
    ValueError
        A latency model that draws NaN or negative times.
    """
    rng = np.random.default_rng(seed)
    T = np.stack([np.asarray(latency.sample(P, rng), dtype=float) for _ in range(draws)])
    if T.shape != (draws, P) or np.isnan(T).any() or (T < 0).any():
        raise ValueError(
            f"latency={latency!r} must draw P={P} times >= 0 (inf: never answers); got "
            f"shape {T.shape[1:]} with NaN or negative values"
        )
    out = {}
    srt = np.sort(T, axis=1)
    for key, (code, answers) in codes.items():
        if code.hedged:
            t = [hedged_time(row, code.m, code.hedge_after)[0] for row in T.tolist()]
        elif answers is None:
            lab = np.array([code.block_of(w) for w in range(code.P)])
            order = np.argsort(lab, kind="stable")
            starts = np.flatnonzero(np.r_[True, np.diff(lab[order]) != 0])
            t = np.minimum.reduceat(T[:, order], starts, axis=1).max(axis=1)
        else:
            t = srt[:, answers - 1]
        out[key] = np.asarray(t, dtype=float)
    return out


def fastest(
    times: dict[tuple[str, int], np.ndarray], default: tuple[str, int], z: float = 2.0
) -> tuple[str, int]:
    r"""The candidate to run: the smallest mean time among ``default`` and the
    candidates faster than it beyond the Monte Carlo noise.

    A candidate c displaces ``default`` d only when the paired differences
    :math:`\Delta=T_d-T_c` over the common draws have a mean above
    :math:`z\,\mathrm{sd}(\Delta)/\sqrt N` (z = 2): a mean lower by chance, with few
    draws, leaves the choice by :data:`PREFERENCE`. Infinite times (a worker that never
    answers) compare as such.
    """
    d = times[default]
    ok = [default]
    for key, t in times.items():
        if key == default:
            continue
        with np.errstate(invalid="ignore"):
            diff = d - t
        if np.isnan(diff).any():  # both never answer in some draw: no evidence there
            diff = diff[~np.isnan(diff)]
        if diff.size == 0:
            continue
        mean = float(np.mean(diff))
        if math.isinf(mean):
            if mean > 0:
                ok.append(key)
            continue
        noise = z * float(np.std(diff, ddof=1)) / math.sqrt(diff.size) if diff.size > 1 else 0.0
        if mean > noise:
            ok.append(key)
    return min(ok, key=lambda k: (float(np.mean(times[k])), PREFERENCE.index(k[0])))


def choose_code(
    P: int,
    stragglers: int,
    fmt: FormatSpec,
    *,
    rtol: float | None = None,
    shape: tuple[int, int, int] = (100, 100, 100),
    latency: LatencyModel | None = None,
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
    latency : LatencyModel, optional
        Each worker's time for its piece of work (:mod:`gpucoded.stragglers`): the
        candidates at the chosen work per worker, hedging among them, are ranked by
        expected time to result (module docstring). None: hedging is not a candidate.

    Raises
    ------
    ValueError
        Bad counts, P above :data:`~gpucoded.codes.gamma.MAX_P`, or no candidate
        meets ``rtol`` (names the best reachable).
    TypeError
        ``latency`` that is not a :class:`~gpucoded.stragglers.LatencyModel`.
    """
    fmt = get_format(fmt)
    latency = _check_latency(latency)
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
    factors: dict[tuple[str, int], tuple[float, float]] = {}
    exact = [True]

    budget = max(16, min(AUTO_SUBSETS, AUTO_ELEMENTS // (r * r)))

    def cheb_ok(m: int) -> bool:
        e = chebyshev_error(m, P, r, fmt.u, budget) * ratio
        cands.append(("chebyshev", m, e))
        factors["chebyshev", m] = (e / (ratio * fmt.u), 0.0)
        exact[0] &= math.comb(P, r) <= budget
        return e <= tol

    def approx_ok(m: int) -> bool:
        pred = best_gamma("matdot", 1, m, P, r, fmt.name, budget)
        i = int(np.argmin(pred.total))
        cands.append(("approx_matdot", m, pred.error * ratio))
        factors["approx_matdot", m] = (float(pred.eps2[i]) / fmt.u, float(pred.eps1[i]))
        exact[0] &= math.comb(P, r) <= budget
        return pred.error * ratio <= tol

    def plain_ok(name: str, m: int, F: float) -> bool:
        """Replication and hedging: no decode, rounding u·F with F of their weights."""
        cands.append((name, m, fmt.u * F * ratio))
        factors[name, m] = (F, 0.0)
        return fmt.u * F * ratio <= tol

    m_cheb = _largest(cheb_ok, 1, (r + 1) // 2)
    m_rep = next(
        (m for m in replication_blocks(P, stragglers)
         if plain_ok("replication", m, replication_factor(Replication(m, P // m)))),
        0,
    )  # fmt: skip
    # equal m goes to an exact code: ε-MatDot is only looked at above the exact m
    _largest(approx_ok, max(2, m_cheb + 1, m_rep + 1), r)
    ok = [c for c in cands if c[2] <= tol]
    if not ok:
        best = min(cands, key=lambda c: c[2])
        raise ValueError(
            f"no code on P={P} workers with {stragglers} stragglers meets rtol={asked:.2g} "
            f"(held to {tol:.2g} so that the accuracy guard accepts it) in "
            f"{fmt.name}: the most accurate, {best[0]} m={best[1]}, predicts {best[2]:.2g}; "
            "use fewer stragglers, more workers, float64 workers or a larger rtol"
        )
    # the largest m; at equal m, PREFERENCE
    name, m, e = max(ok, key=lambda c: (c[1], -PREFERENCE.index(c[0])))
    times: dict[tuple[str, int], float] = {}
    draws = 0
    if latency is not None:
        # the candidates at equal work per worker 1/m: the exact codes there, and hedging
        if (("chebyshev", m) not in factors) and 2 * m - 1 <= r:
            cheb_ok(m)
        if ("replication", m) not in factors and m in replication_blocks(P, stragglers):
            plain_ok("replication", m, replication_factor(Replication(m, P // m)))
        plain_ok("hedged", m, replication_factor(Hedged(m, P)))
        same = [c for c in cands if c[1] == m and c[2] <= tol]
        same = [c for c in same if c[0] != "approx_matdot" or c[0] == name]
        draws = latency_draws(P, m)
        runs = {(c[0], c[1]): _build(c[0], c[1], P, r, fmt, budget) for c in same}
        per_draw = draw_times(runs, latency, P, draws)
        times = {key: float(np.mean(t)) for key, t in per_draw.items()}
        name, m = fastest(per_draw, (name, m))
        e = next(c[2] for c in same if (c[0], c[1]) == (name, m))
    code, answers = _build(name, m, P, r, fmt, budget)
    cands.sort(key=lambda c: (-c[1], PREFERENCE.index(c[0])))
    code.auto_choice = AutoChoice(
        code, e, asked, cands, answers, exact[0], target=tol, factors=factors,
        latency=latency, expected_time=times, draws=draws, u=fmt.u, r=r,
    )  # fmt: skip
    return code.auto_choice


def _build(name: str, m: int, P: int, r: int, fmt: Any, budget: int) -> tuple[Code, int | None]:
    """The candidate's code and the answers its call waits for (None: every block)."""
    if name == "replication":
        return Replication(m, P // m), None
    if name == "hedged":
        return Hedged(m, P), None
    if name == "chebyshev":
        return ChebyshevMatDot(m, P), r
    g = best_gamma("matdot", 1, m, P, r, fmt.name, budget).gamma
    return ApproxMatDot(m, P, gamma=g, dtype=fmt.name), r
