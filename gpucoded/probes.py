r"""The measured error of one decoded product: random probes (Freivalds' check as an estimator).

The caller holds A and B, so the error :math:`E=\hat C-AB` (n × l) of *this* product
on *this* data can be measured instead of modelled, whatever the data's distribution
(non-negative, non-centred, sparse, heavy-tailed) and whatever went wrong (a model
that underestimates, a corrupt answer).

Probes
    :math:`X\in\mathbb R^{l\times s}` with iid :math:`N(0,1)` entries (s =
    :data:`PROBES` = 8), :math:`Y=A(BX)` and :math:`R=\hat CX-Y`, computed in float64
    (complex128) whatever the operands' dtype (float32 operands are widened a block of
    rows at a time), so the probes' own rounding, :math:`\le\gamma_k|A||B||X|`
    entrywise with :math:`\gamma_k\approx k\,2^{-53}`, stays far below what is
    flagged. Cost :math:`O(s(nk+kl+nl))` against :math:`O(nkl)` for the product:
    about :math:`3s/n` of it for square operands, less next to the P worker GEMMs.

Row norms and their confidence
    :math:`R_{it}=(EX)_{it}+\delta_{it}\sim N(0,\sigma_i^2)` with
    :math:`\sigma_i=\|E_{i,:}\|_2`, so :math:`\hat\sigma_i^2=\frac1s\sum_tR_{it}^2`
    has :math:`s\hat\sigma_i^2/\sigma_i^2\sim\chi^2_s`. For s = 8:
    :math:`P(\hat\sigma_i<\sigma_i/2)=P(\chi^2_8<2)=0.019` and
    :math:`P(\hat\sigma_i<\sigma_i/\kappa)=P(\chi^2_8<8/\kappa^2)=0.0042` for the
    inflation :math:`\kappa` = :data:`KAPPA` = 2.5 (:data:`MISS_PROBABILITY`).

The error estimate (max norm)
    :math:`\hat e=\kappa\max_i\hat\sigma_i`. Since
    :math:`\max_{ij}|E_{ij}|\le\max_i\sigma_i` and the row :math:`i^*` of the largest
    :math:`\sigma_i` alone gives :math:`P(\kappa\hat\sigma_{i^*}<\sigma_{i^*})\le
    0.0042`, :math:`\hat e\ge\max|E|` with probability at least 99.58 %
    (:data:`CONFIDENCE`), for any E. It is tight when the error sits in one entry
    of a row (a corrupt answer) and over-estimates by up to :math:`\sqrt l` when
    the error is spread over the row (the usual coded error, a sum of whole block
    products): the check errs on the side of warning.

The scale (a lower bound on :math:`\max|AB|`, never :math:`\max|\hat C|` alone)
    :math:`s_{\rm low}=\max\bigl(\max|\hat C|-\hat e,\ \max_t\max_i|Y_{it}|/
    \|X_{:,t}\|_1\bigr)`. The first term is below :math:`\max|AB|` whenever
    :math:`\hat e\ge\max|E|` (entrywise :math:`|AB|\ge|\hat C|-|E|`), so a wrong
    :math:`\hat C` with a large estimate cannot inflate its own scale; the second
    holds always (:math:`|(ABx)_i|\le\max|AB|\,\|x\|_1`).

The rule (in :mod:`gpucoded.guard`)
    Flag when :math:`\hat e>10^{-2}s_{\rm low}`. An unflagged result then has
    :math:`\max|\hat C-AB|\le10^{-2}\max|AB|` (max norm, relative to the largest
    entry of the exact product) with probability at least :data:`CONFIDENCE`.

Small products: the exact error
    Where the whole product costs less than the probes' passes (:math:`nkl\le`
    :data:`EXACT_BELOW` multiply-adds, host NumPy operands), the check computes
    :math:`AB` in float64 (complex128) instead (:func:`exact_reference`) and reads
    the exact :math:`\max|\hat C-AB|` and :math:`\max|AB|`: confidence 1, and cheaper
    (n = 32: 14 µs against 25 µs for the probes, BLAS on one thread; the two cost the
    same near n = 96, ``python -m bench.bench_overhead --only exact``). The call
    pipeline computes that product once and shares it with the decoder's measured
    choice (:mod:`gpucoded.codes.datachoice`).

Few columns (a matrix–vector product)
    When :math:`l\le s` a Gaussian probe costs as much as a column of the product,
    so the check multiplies by the unit vectors instead (:math:`X=I_l`): the exact
    error and the exact :math:`\max|AB|` (in float64), confidence 1, at the cost of
    one plain product on the caller (float64 GEMV). ``check=None`` turns the check
    off for calls where that is too much (and leaves the model's estimate to the
    guard).

A shared operand (a :class:`~gpucoded.CodedMatrix`)
    Products that share an operand M share its probes, multiplied by M once
    (:class:`FixedSide`): ``X @ M`` with right probes :math:`V=MW`, ``M @ x`` with
    left probes :math:`V=M^\top W` compared with :math:`W^\top\hat C` — the rows
    of the residual are then the columns of :math:`\hat C`, and the estimate bounds
    the largest column 2-norm of E, with the same confidence. A check then reads x
    and :math:`\hat C`, never M: O(s(n + k)) for a matrix–vector product instead of
    a GEMV. The left probes over-estimate an error spread down a column by up to
    :math:`\kappa\sqrt n`, so a result they would flag is measured again exactly
    (the unit vectors above) and flagged only on that.

On the CPU
    Three passes, one per operand, with the compiled loops
    (:func:`gpucoded.hostops.rowmul_wide`): :math:`V=BX`, :math:`Y=AV`, and
    :math:`\hat CX` together with :math:`\max|\hat C|`; float32 rows are widened as
    they are read (no float64 copy), each entry one float64 sum. Without the loops
    (not built, complex data, rows not contiguous) NumPy's GEMMs do the same in
    blocks of rows.

On the device
    The same code with CuPy: the probes are drawn on the host once per (l, device)
    and kept there (:data:`PROBE_CACHE_SIZE` sets at most, least recently used
    dropped), then two GEMMs, one subtraction and the reductions run on the current
    stream, and the numbers the rule needs come back in one transfer (:func:`start`
    queues them, :meth:`Started.finish` reads them: the call pipeline brings them back
    with its other per-call scalars, in the call's one host synchronisation); a warm
    call uploads nothing. Reusing X across calls keeps each call's confidence: the
    error of a product does not depend on X (drawn from fresh entropy, before and
    apart from any data), so for every call the probability over X is the one above.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import array_module, to_numpy

__all__ = [
    "CHECKS",
    "CONFIDENCE",
    "EXACT_BELOW",
    "KAPPA",
    "MISS_PROBABILITY",
    "PROBES",
    "FixedSide",
    "Measured",
    "absmax",
    "chi2_cdf",
    "check_mode",
    "exact_reference",
    "fixed_side",
    "measure",
    "start",
]

#: Number of Gaussian probe vectors.
PROBES = 8
#: Relative error above which the guard flags a result (:data:`gpucoded.guard.RTOL_GUARD`).
RTOL_FLAG = 1e-2
#: Inflation of the largest estimated row norm: the estimate is κ·max σ̂_i.
KAPPA = 2.5
#: Values of the call option ``check=``.
CHECKS = ("probes", None)
#: Rows of float32 operands widened to float64 at a time (bounded temporaries).
_CHUNK = 256
#: Multiply-adds n·k·l at or below which a host product is checked exactly
#: (:func:`exact_reference`): the float64 product costs less than the probes there
#: (about 80³; the two cost the same near 96³ with BLAS on one thread).
EXACT_BELOW = 1 << 19
#: Probe sets kept per (array module, device, l, s): drawn once, reused by later calls.
PROBE_CACHE_SIZE = 16
_PROBES: OrderedDict[tuple, tuple[Any, np.ndarray]] = OrderedDict()
_PROBES_LOCK = threading.Lock()


def overestimate(l: int, probes: int = PROBES) -> float:
    r"""The largest :math:`\hat e/\max|E|` to expect from :func:`measure` on a product
    with l columns: :math:`\kappa\sqrt l` for an error spread evenly over a row (the
    usual coded error), 1 for the exact check of a product with :math:`l\le s`.

    What a choice made in advance (``code="auto"``) must leave room for, so that the
    guard does not flag a result that meets its ``rtol``.
    """
    return 1.0 if l <= probes else KAPPA * math.sqrt(l)


def reset_device_state() -> None:
    """Forget the probe sets kept on devices (after a device reset; the tests' simulated
    device sets call it, as for :func:`gpucoded.kernels.reset_device_state`)."""
    with _PROBES_LOCK:
        for key in [k for k in _PROBES if k[0] != "numpy"]:
            del _PROBES[key]


def _probe_set(xp: Any, device: Any, l: int, s: int) -> tuple[Any, np.ndarray]:
    """The kept probes X (l × s, on ``device``) and their column 1-norms (host)."""
    key = (xp.__name__, device, l, s)
    with _PROBES_LOCK:
        hit = _PROBES.get(key)
        if hit is not None:
            _PROBES.move_to_end(key)
            return hit
    Xh = np.random.default_rng().standard_normal((l, s))
    hit = (xp.asarray(Xh), np.abs(Xh).sum(axis=0))
    with _PROBES_LOCK:
        _PROBES[key] = hit
        while len(_PROBES) > PROBE_CACHE_SIZE:
            _PROBES.popitem(last=False)
    return hit


def chi2_cdf(x: float, dof: int) -> float:
    r""":math:`P(\chi^2_{d}<x)` for an even number of degrees of freedom d.

    :math:`1-e^{-x/2}\sum_{j<d/2}(x/2)^j/j!` (closed form for even d).
    """
    if dof % 2 or dof <= 0:
        raise ValueError(f"dof must be a positive even integer, got {dof}")
    if x <= 0:
        return 0.0
    h = x / 2
    term, total = 1.0, 1.0
    for j in range(1, dof // 2):
        term *= h / j
        total += term
    return max(0.0, 1.0 - math.exp(-h) * total)


#: P(κ·σ̂_i < σ_i) = P(χ²_s < s/κ²): the chance the estimate misses a row's norm.
MISS_PROBABILITY = chi2_cdf(PROBES / KAPPA**2, PROBES)
#: Probability that the estimate is at least max|Ĉ − AB| (for any error E).
CONFIDENCE = 1.0 - MISS_PROBABILITY


def check_mode(check: Any) -> Any:
    """Validate the call option ``check`` (``"probes"`` or ``None``)."""
    if check not in CHECKS:
        raise ValueError(
            f"check must be 'probes' (measure each product's error with random probes, "
            f"the default) or None (no measurement: the guard uses the error model); "
            f"got {check!r}"
        )
    return check


@dataclass
class Measured:
    r"""The measured error of one product (see the module docstring).

    Attributes
    ----------
    error : float
        :math:`\hat e`: an upper estimate of :math:`\max|\hat C-AB|` holding with
        probability ``confidence`` (exact when ``exact``).
    scale : float
        :math:`s_{\rm low}`: a lower bound on :math:`\max|AB|` (exact when ``exact``).
    result_max : float
        :math:`\max|\hat C|` (NaN when :math:`\hat C` is not finite).
    probes : int
        Number of probe vectors (columns checked when ``exact``).
    exact : bool
        The columns were checked one by one (:math:`l\le` :data:`PROBES`).
    confidence : float
    """

    error: float
    scale: float
    result_max: float
    probes: int
    exact: bool
    confidence: float

    @property
    def relative(self) -> float:
        r""":math:`\hat e/s_{\rm low}` (inf when the scale is 0 and the error is not)."""
        if self.error == 0:
            return 0.0
        if not self.scale > 0 or not math.isfinite(self.scale):
            return math.inf
        return self.error / self.scale


def _wide(M: Any, xp: Any) -> Any:
    """M in float64 (complex128 when complex)."""
    dt = xp.complex128 if M.dtype.kind == "c" else xp.float64
    return M if M.dtype == dt else M.astype(dt)


def _times(M: Any, X: Any, xp: Any) -> Any:
    """M @ X in float64, widening M a block of rows at a time on the host."""
    if xp is not np or M.dtype in (np.float64, np.complex128) or M.shape[0] <= _CHUNK:
        return _wide(M, xp) @ X
    return xp.concatenate(
        [_wide(M[i : i + _CHUNK], xp) @ X for i in range(0, M.shape[0], _CHUNK)]
    )


def exact_reference(A: Any, B: Any) -> np.ndarray | None:
    r"""The exact product :math:`AB` in float64 (complex128) of small host operands:
    NumPy arrays with :math:`nkl\le` :data:`EXACT_BELOW`; None otherwise (device
    operands, larger products: they are measured with probes)."""
    if type(A) is not np.ndarray or type(B) is not np.ndarray or A.ndim != 2 or B.ndim != 2:
        return None
    n, k = A.shape
    if n * k * B.shape[1] > EXACT_BELOW or A.dtype.kind not in "fc" or B.dtype.kind not in "fc":
        return None
    return _wide(A, np) @ _wide(B, np)


def absmax(C: Any) -> float:
    """:math:`\\max|C|` (NaN if C has a NaN; 0 for an empty C): for real C, max and −min
    (two streaming reductions, no temporary |C|: 1.6 ms against 9.8 ms at 2048², NumPy);
    else |C|. NumPy or CuPy (a device C costs a transfer of each number)."""
    if C.size == 0:
        return 0.0
    if C.dtype.kind == "c":
        return float(array_module(C).abs(C).max())
    hi, lo = float(C.max()), float(C.min())
    return max(hi, -lo) if hi == hi else hi  # NaN propagates through max and min


def _exact_measure(C: np.ndarray, ref: np.ndarray) -> Measured:
    """The exact :class:`Measured` of C against the float64 product ``ref``."""
    with np.errstate(invalid="ignore", over="ignore"):
        err = absmax(C - ref)
    return Measured(err, absmax(ref), absmax(C), C.shape[1], True, 1.0)


def _host_stats(C: Any, A: Any, B: Any, X: Any, exact: bool) -> tuple | None:
    r"""The statistics of the probes from the compiled loops, or None where they cannot run.

    Three passes, one per operand (:func:`gpucoded.hostops.rowmul_wide`: float32 rows
    widened as they are read, float64 sums): :math:`V=BX`, :math:`Y=AV`,
    :math:`\hat CX` with :math:`\max|\hat C|` in the same pass over :math:`\hat C`.
    Returns (max row statistic of R, :math:`\max|\hat C|`, :math:`\max_i|Y_{it}|` per t).
    """
    from . import hostops

    got = hostops.rowmul_wide(B, X)
    if got is None:
        return None
    return _rows_stats(C, A, got[0], X, exact, host_only=True)


def _rows_stats(
    C: Any, A: Any, V: np.ndarray, X: Any, exact: bool, *, host_only: bool = False
) -> tuple | None:
    r"""(max row statistic of :math:`R=\hat CX-AV`, :math:`\max|\hat C|`, column maxima of
    :math:`|AV|`) on the host, V given: the compiled loops where they run, else NumPy
    (None instead with ``host_only``)."""
    from . import hostops

    got_y = hostops.rowmul_wide(A, V)
    got_c = hostops.rowmul_wide(C, X, absmax=True)
    if host_only and (got_y is None or got_c is None):
        return None
    Y = got_y[0] if got_y is not None else _wide(A, np) @ V
    if got_c is not None:
        CX, cmax = got_c
    else:
        CX = _wide(C, np) @ X
        cmax = float(np.abs(C).max(initial=0.0))
    R = CX - Y
    with np.errstate(invalid="ignore", over="ignore"):
        rmax = float(np.abs(R).max(initial=0.0) if exact else (R * R).sum(axis=1).max(initial=0.0))
        if not np.isfinite(CX).all():  # a NaN in C: its rows of CX (not seen by absmax)
            cmax = math.nan
        ylow = np.abs(Y).max(axis=0, initial=0.0)
    return rmax, cmax, ylow


@dataclass
class FixedSide:
    r"""Probes of an operand M that many products share (a :class:`~gpucoded.CodedMatrix`),
    multiplied by M once, so that checking a product reads M no more.

    ``side="B"`` (:math:`C=XM`, M k × l): right probes W (l × s) and
    :math:`V=MW` (k × s); a product's residual is :math:`R=\hat CW-XV` (rows of
    :math:`\hat C`, as in :func:`measure`). ``side="A"`` (:math:`C=MX`, M n × k): left
    probes W (n × s) and :math:`V=M^\top W` (k × s); the residual
    :math:`R=\hat C^\top W-X^\top V` has a row per *column* of :math:`\hat C`, so the
    estimate :math:`\kappa\max_j\hat\sigma_j` bounds the largest column 2-norm of E
    (:math:`\ge\max|E|`) with the same confidence, and over-estimates an error spread
    down a column by up to :math:`\kappa\sqrt n` (instead of :math:`\sqrt l`).
    """

    side: str
    W: np.ndarray
    V: np.ndarray
    l1: np.ndarray

    @property
    def s(self) -> int:
        return int(self.W.shape[1])


def fixed_side(M: Any, side: str, probes: int = PROBES) -> FixedSide | None:
    """The :class:`FixedSide` of a real NumPy operand M (None otherwise: the products
    are then measured by :func:`measure` alone). Costs one pass over M, once."""
    if type(M) is not np.ndarray or M.dtype.kind != "f" or M.ndim != 2 or side not in "AB":
        return None
    rows = M.shape[0] if side == "A" else M.shape[1]
    W = np.random.default_rng().standard_normal((rows, probes))
    Mw = _wide(M, np)
    V = Mw.T @ W if side == "A" else Mw @ W
    return FixedSide(side, W, np.ascontiguousarray(V), np.abs(W).sum(axis=0))


def _array_rows(C: Any, A: Any, B: Any, X: Any, exact: bool, xp: Any, s: int) -> Any:
    r"""The same statistics with the array module's GEMMs (CuPy, complex, strided rows),
    per block of rows, left where C is: a (blocks, 2 + s) float64 array of the largest
    residual statistic, :math:`\max|\hat C|` and the s column maxima of :math:`|Y|`
    (:meth:`Started.finish` reduces them after the one transfer)."""
    V = _times(B, X, xp)  # (k, s)
    n = C.shape[0]
    chunk = n if xp is not np else _CHUNK
    stats = []
    for i in range(0, n, chunk):
        Ci, Ai = C[i : i + chunk], A[i : i + chunk]
        Y = _wide(Ai, xp) @ V
        R = _wide(Ci, xp) @ X - Y
        if exact:
            rmax = xp.abs(R).max()
        else:
            R2 = (R * R.conj()).real if R.dtype.kind == "c" else R * R
            rmax = R2.sum(axis=1).max()
        ymax = xp.abs(Y).max(axis=0)  # (s,)
        cmax = xp.abs(Ci).max() if Ci.dtype.kind == "c" else xp.maximum(Ci.max(), -Ci.min())
        row = xp.empty(2 + s, dtype=xp.float64)
        row[0], row[1], row[2:] = rmax, cmax, ymax
        stats.append(row)
    return xp.stack(stats) if len(stats) > 1 else stats[0][None, :]


def _measured(rmax: float, cmax: float, ylow: float, s: int, exact: bool) -> Measured:
    """The :class:`Measured` from the reduced statistics (see the module docstring)."""
    if exact:
        err, conf = rmax, 1.0
        scale = ylow  # max|AB| itself (columns of AB exactly)
    else:
        err = KAPPA * math.sqrt(rmax / s) if rmax == rmax else math.nan
        conf = 1.0 - chi2_cdf(s / KAPPA**2, s) if s % 2 == 0 else math.nan
        scale = max(cmax - err, ylow) if err == err and cmax == cmax else ylow
    return Measured(err, scale, cmax, s, exact, conf)


def measure(
    C: Any,
    A: Any,
    B: Any,
    *,
    probes: int = PROBES,
    rng: np.random.Generator | None = None,
    fixed: FixedSide | None = None,
    reference: np.ndarray | None = None,
) -> Measured:
    r"""Measure the error of :math:`\hat C\approx AB` with ``probes`` random probes.

    Parameters
    ----------
    C : array (n, l)
        The decoded product :math:`\hat C` (NumPy or CuPy, like A and B).
    A, B : arrays (n, k), (k, l)
        The operands.
    probes : int
        Gaussian probe vectors s (even; the confidence is computed for it). When
        :math:`l\le s` the l columns are checked exactly instead.
    rng : numpy.random.Generator, optional
        Source of fresh probes for this call (default: the probes kept for this l and
        device, drawn once from fresh entropy; see "On the device" above).
    fixed : FixedSide, optional
        Probes already multiplied by A (``side="A"``) or B (``side="B"``), for
        products that share that operand: this product's check then reads only the
        other operand and C. With ``side="A"`` and at most ``probes`` columns (a
        matrix–vector product, whose check would otherwise be the exact one: a pass
        over A), a result the left probes would flag is measured again exactly
        before it is flagged, so their :math:`\sqrt n` over-estimate raises no false
        alarm.
    reference : ndarray, optional
        :func:`exact_reference` of A and B when the caller has it already (the call
        pipeline shares it with the decoder's choice). Without ``rng``, small host
        products (:data:`EXACT_BELOW`) are measured exactly against it, computed here
        when not given.

    Returns
    -------
    Measured
        :math:`\hat e=\kappa\max_i\hat\sigma_i`, the scale :math:`s_{\rm low}` and
        :math:`\max|\hat C|` (one device-to-host transfer of four numbers).
    """
    if fixed is not None and type(C) is np.ndarray and rng is None:
        got = _fixed_measure(C, A, B, fixed)
        if got is not None:
            return got
    if rng is None and type(C) is np.ndarray:
        ref = reference if reference is not None else exact_reference(A, B)
        if ref is not None:
            return _exact_measure(C, ref)
    xp, X, s, exact, l1 = _probes_for(C, A, B, probes, rng)
    host = _host_stats(C, A, B, X, exact) if xp is np else None
    if host is not None:
        rmax, cmax, ylow = host
        return _measured(rmax, cmax, float(np.max(ylow / l1)), s, exact)
    started = Started(_array_rows(C, A, B, X, exact, xp, s), s, exact, l1)
    return started.finish(to_numpy(started.stats))  # one transfer


def _fixed_measure(C: Any, A: Any, B: Any, fixed: FixedSide) -> Measured | None:
    """:func:`measure` with the probes of a shared operand (None: shapes do not fit)."""
    if (C.shape[1] > fixed.s) != (fixed.side == "B"):
        return None  # left probes only where the check would be exact, right ones elsewhere
    if fixed.side == "A":
        Cr, Xr = C.T, B.T  # a row of Cr per column of C
    else:
        Cr, Xr = C, A
    if fixed.W.shape[0] != Cr.shape[1] or fixed.V.shape[0] != Xr.shape[1]:
        return None
    rmax, cmax, ylow = _rows_stats(Cr, Xr, fixed.V, fixed.W, False)
    got = _measured(rmax, cmax, float(np.max(ylow / fixed.l1)), fixed.s, False)
    if fixed.side == "A" and C.shape[1] <= fixed.s and not got.relative <= RTOL_FLAG:
        return None  # would be flagged: the exact check decides (measure goes on)
    return got


@dataclass
class Started:
    r"""The probes of one product, queued: ``stats`` holds, per block of rows, the
    largest residual statistic, :math:`\max|\hat C|` and the s column maxima of
    :math:`|Y|` (on C's side; on the device nothing has been transferred yet), so a
    caller can bring them back together with its other per-call scalars
    (:func:`gpucoded.gpu.fetch_together`) and then :meth:`finish`."""

    stats: Any
    s: int
    exact: bool
    l1: np.ndarray

    def finish(self, stats: np.ndarray) -> Measured:
        """The :class:`Measured` from ``stats`` on the host (the values of
        :attr:`stats`, any shape with 2 + s entries per row block)."""
        allst = np.asarray(stats, dtype=np.float64).reshape(-1, 2 + self.s)
        s, exact = self.s, self.exact
        with np.errstate(invalid="ignore"):
            rmax = float(np.max(allst[:, 0]))
            cmax = float(np.max(allst[:, 1]))
            ylow = float(np.max(allst[:, 2:].max(axis=0) / self.l1))
        return _measured(rmax, cmax, ylow, s, exact)


def start(
    C: Any,
    A: Any,
    B: Any,
    *,
    probes: int = PROBES,
    rng: np.random.Generator | None = None,
) -> Started:
    """The probes of :func:`measure` queued on C's side (the array module's GEMMs),
    nothing transferred: the device path of the call pipeline brings
    :attr:`Started.stats` back with its other per-call scalars."""
    xp, X, s, exact, l1 = _probes_for(C, A, B, probes, rng)
    return Started(_array_rows(C, A, B, X, exact, xp, s), s, exact, l1)


def _probes_for(
    C: Any, A: Any, B: Any, probes: int, rng: np.random.Generator | None
) -> tuple[Any, Any, int, bool, np.ndarray]:
    """(array module, X, s, exact, column 1-norms of X) for the product C = AB."""
    xp = array_module(C, A, B)
    l = C.shape[1]
    exact = l <= probes
    if exact:
        return xp, xp.eye(l, dtype=xp.float64), l, True, np.ones(l)
    if rng is None:
        X, l1 = _probe_set(xp, getattr(getattr(C, "device", None), "id", None), l, probes)
        return xp, X, probes, False, l1
    Xh = rng.standard_normal((l, probes))
    return xp, xp.asarray(Xh), probes, False, np.abs(Xh).sum(axis=0)
