r"""``gpucoded advise``: which code for m, P, stragglers and worker precision.

For P workers of which S may straggle (r = P − S answers), every candidate is
**measured**: the true worst case of :math:`\|\hat C-C\|_{\max}` over all
:math:`\binom{P}{r}` answer patterns (a random sample of 2,000 beyond that; for large r
fewer, :func:`pattern_budget`, searched: every contiguous gap, the end splits and a
sample — each note says whether its worst case is exact or a lower estimate) on
unit-Frobenius Gaussian inputs, with the batched search of :mod:`.sweep`, in the
worker arithmetic asked for. Candidates:

* ε-MatDot with storage 1/m and ``gamma="auto"`` (:mod:`gpucoded.codes.gamma`);
* MatDot λ(1) and Chebyshev MatDot with storage 1/m (exact only if r ≥ 2m − 1,
  otherwise truncated interpolation without guarantee);
* replication of m blocks (exact only if S < ⌊P/m⌋ copies);
* hedged execution of m exact tasks with P − m spares (:mod:`gpucoded.hedging`;
  always exact, late when stragglers outnumber the spares);
* the exact alternatives at the same P and S: MatDot/Chebyshev with the largest m′
  with 2m′ − 1 ≤ r, and replication with m″ = ⌊P/(S+1)⌋ blocks — each worker then
  stores and computes 1/m′ or 1/m″ instead of 1/m;
* every family registered outside the library (``@gpucoded.codes.register``) with
  storage 1/m on the P workers;
* for float32 workers, ε-MatDot on **mixed-precision** workers
  (:mod:`gpucoded.mixed`: float64 master encode, each operand split into 5 float32
  slices, 15 exact float32 slice GEMMs summed in float64): storage 5/m float32 numbers.

**Progressive decoding** (:mod:`.progressive_gain`): ε-MatDot decodes from any r ≥ m
answers, and each answer below 2m − 1 removes one power of 1/γ from the interpolation
error — but only up to the rounding floor u·γ^{m−1}, which does not fall. The tool
measures the worst error when more than the guaranteed P − S answers arrive, at the γ
tuned for P − S, and (``--typical-stragglers s``) compares it with γ tuned for the
P − s answers that usually arrive, including what that γ costs if only P − S arrive.

The circle code (:class:`~gpucoded.codes.CircleMatDot`, complex points, exact from m
answers) stores 2/m per worker: at equal storage the real exact code is "Chebyshev m′"
above (m′ = ⌈r/2⌉), which the beyond study found about as accurate with half the
flops, so it is not listed apart.

Accuracy is reported in bits, :math:`b=\log_2(\|C\|_{\max}/\text{error})`, and per
unit of worker load, :math:`b\cdot m` (bits per 1/m of the product each worker
computes): the accounting of Wang, Jia and Jafar, "Price of Precision in Coded
Distributed Matrix Multiplication" (2021), under which ε-MatDot's smaller recovery
threshold is paid for in precision and can lose to exact codes or replication with a
coarser split. The tool says so whenever it happens. It also lists replication and
hedging (what users do anyway) where they meet ``--tol`` at no more work per worker,
and says why the preferred option beat them: work per worker, bits per load and, with
``--latency``, the expected time to result under that model
(:func:`expected_times`). With ``--rtol`` it shows what ``code="auto"`` picks for
these P and stragglers (:mod:`gpucoded.autocode`: replication, Chebyshev and ε-MatDot,
and hedging when ``--latency`` is given, which it passes on as ``latency=``) and why.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..codes import (
    ApproxMatDot,
    ChebyshevMatDot,
    Code,
    Hedged,
    MatDot,
    Replication,
    Uncoded,
    make_code,
    registered_elsewhere,
)
from ..codes.gamma import MAX_SUBSETS, ErrorModel, answer_sets, auto_gamma
from ..formats import FORMATS, unit_roundoff
from ..reference import exact_product
from ..stragglers import LatencyModel
from .sweep import subset_sweep, unit_gaussian_pair

__all__ = ["Option", "Progressive", "advise", "main", "progressive", "progressive_lines", "verdict"]

MAX_PATTERNS = 2000
#: Work budget of one measurement, in answers³ summed over its patterns (the high-
#: precision weights of r answers cost about r³): beyond r ≈ 23 fewer than
#: :data:`MAX_PATTERNS`.
PATTERN_WORK = 25_000_000
#: Fewest patterns a measurement takes, whatever r.
MIN_PATTERNS = 20
#: Most answer counts the progressive ladder measures (evenly spaced, ends included).
PROGRESSIVE_COUNTS = 6
#: answer patterns of the mixed-precision candidate (a decode per pattern)
MIXED_PATTERNS = 200
#: worker formats the tool compares (the keys of :data:`gpucoded.formats.FORMATS`)
WORKER_DTYPES = tuple(FORMATS)


@dataclass
class Option:
    """One candidate scheme and its measured worst-case error."""

    name: str
    m: int
    workers: int
    answers_needed: int
    exact: bool
    error: float
    bits: float
    patterns: int
    note: str = ""
    load: float | None = None
    #: the scheme (for the expected time under a latency model; None: not modelled)
    code: Code | None = None
    #: mean time to result under ``--latency`` (:func:`expected_times`), seconds
    expected_time: float | None = None

    @property
    def storage(self) -> float:
        """Numbers stored per worker as a fraction of A (and of B); default 1/m."""
        return 1.0 / self.m if self.load is None else self.load

    @property
    def bits_per_load(self) -> float:
        """Accurate bits per unit of worker load (bits / storage; = bits·m at 1/m)."""
        return self.bits / self.storage


def pattern_budget(r: int) -> int:
    """Patterns one measurement with r answers takes at most.

    :data:`MAX_PATTERNS` while :math:`r^3` times it fits :data:`PATTERN_WORK`, else
    ``PATTERN_WORK // r³`` (not below :data:`MIN_PATTERNS`): the cost of a measurement
    stays bounded as m and P grow (``advise --m 100 --P 200``: 25 patterns).
    """
    return max(MIN_PATTERNS, min(MAX_PATTERNS, PATTERN_WORK // max(r**3, 1)))


def _patterns(P: int, r: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """All answer patterns up to the budget, else a search of :func:`pattern_budget`.

    Beyond :data:`MAX_PATTERNS` a random sample; beyond a budget cut by
    :data:`PATTERN_WORK` the searched sets of :func:`gpucoded.codes.gamma.answer_sets`
    (every contiguous gap of missing workers, the splits between the ends — where
    interpolation on ordered points is worst — and a seeded sample). Never enumerates.
    """
    n = math.comb(P, r)
    budget = pattern_budget(r)
    if n <= budget:
        return list(itertools.combinations(range(P), r))
    if budget < MAX_PATTERNS:
        sets, _ = answer_sets(P, r, budget)
        return sorted(tuple(int(w) for w in S) for S in sets)
    seen: set[tuple[int, ...]] = set()
    while len(seen) < MAX_PATTERNS:
        seen.add(tuple(sorted(rng.choice(P, r, replace=False).tolist())))
    return sorted(seen, key=lambda s: (len(s), s))


def _measure(
    code: Code, workers: int, r: int, A: np.ndarray, B: np.ndarray, C: np.ndarray, dtype: str
) -> tuple[float, int]:
    subs = _patterns(workers, r, np.random.default_rng(0))
    res = subset_sweep(code, A, B, C, dtype, subsets=subs)
    return float(res.errors.max()), len(subs)


def _bits(err: float, scale: float, dtype: str) -> float:
    full = -math.log2(unit_roundoff(dtype)) + 1
    if err <= 0:
        return full
    return float(min(full, max(0.0, math.log2(scale / err))))


def advise(m: int, P: int, stragglers: int, dtype: str = "float64", n: int = 100) -> list[Option]:
    """Measure every candidate (see the module docstring); returns the options.

    Raises
    ------
    ValueError
        For m < 1, P < m or a number of stragglers that leaves fewer than m answers.

    Examples
    --------
    Storage 1/2 per worker, 4 workers, 1 of them may straggle: 3 answers, enough for
    the exact codes (2m − 1 = 3), which then lose no digit in float64:

    >>> from gpucoded.studies.advise import advise
    >>> options = advise(m=2, P=4, stragglers=1, n=20)
    >>> exact = [o for o in options if o.exact and o.answers_needed <= 3]
    >>> len(exact) > 0 and all(o.error < 1e-15 for o in exact)
    True
    >>> all(o.bits <= 53 for o in options)  # bits: log2(max|C| / error), capped at float64's
    True
    """
    if dtype not in WORKER_DTYPES:
        raise ValueError(f"dtype must be one of {WORKER_DTYPES}, got {dtype!r}")
    if m < 1 or P < m:
        raise ValueError(f"need m >= 1 and P >= m; got m={m}, P={P}")
    r = P - stragglers
    if stragglers < 0 or r < m:
        raise ValueError(
            f"{stragglers} stragglers of P={P} leave {r} answers; every code with storage "
            f"1/m={m} needs at least m={m} (use fewer stragglers or a smaller m)"
        )
    A, B = unit_gaussian_pair(n, 0)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    scale = float(np.abs(C).max())
    opts: list[Option] = []

    def add(name: str, code: Code, mm: int, workers: int, need: int, exact: bool, note: str = ""):
        # stragglers may all hit the workers in use
        ans = max(workers - stragglers, 1)
        err, npat = _measure(code, workers, ans, A, B, C, dtype)
        if npat < math.comb(workers, ans):
            how = "searched" if npat < MAX_PATTERNS else "sampled"
            note = f"{note}; worst of {npat} {how} patterns (a lower estimate)".lstrip("; ")
        else:
            note = f"{note}; exact worst case (all {npat} patterns)".lstrip("; ")
        opts.append(
            Option(name, mm, workers, need, exact, err, _bits(err, scale, dtype), npat, note,
                   code=code)  # fmt: skip
        )

    g = auto_gamma("matdot", 1, m, P, answers=r, dtype=dtype)
    gnote = "" if math.comb(P, r) <= MAX_SUBSETS else "; γ from a searched worst case"
    add(f"ε-MatDot γ={g:.3g}", ApproxMatDot(m, P, gamma=g), m, P, m, False, "approximate" + gnote)
    below = r < 2 * m - 1
    if P >= 2 * m - 1:
        note = "below threshold: no guarantee" if below else ""
        add("MatDot λ(1)", MatDot(m, P), m, P, 2 * m - 1, not below, note)
        add("Chebyshev", ChebyshevMatDot(m, P), m, P, 2 * m - 1, not below, note)
    copies = P // m
    if copies >= 1:
        rep = Replication(m, copies)
        lost = stragglers >= copies
        note = f"{copies} copies; a block can be lost" if lost else f"{copies} copies"
        add(f"replication m={m}", rep, m, m * copies, rep.recovery_threshold, not lost, note)
    opts.append(_hedged_option(m, P, stragglers, A, B, C, scale, dtype))
    m1 = (r + 1) // 2
    if m1 >= 1 and m1 != m:
        add(f"Chebyshev m'={m1}", ChebyshevMatDot(m1, P), m1, P, 2 * m1 - 1, True, "exact")
    m2 = P // (stragglers + 1)
    if m2 >= 1 and m2 != m:
        rep = Replication(m2, stragglers + 1)
        add(f"replication m''={m2}", rep, m2, rep.P, rep.recovery_threshold, True, "exact")
    for name in registered_elsewhere():  # families registered by the user
        try:
            code = make_code(name, m=m, P=P)
        except (ValueError, TypeError):
            continue  # the family cannot be built with storage 1/m on P workers
        exact = not code.approximate and r >= code.recovery_threshold
        note = "registered" if exact or code.approximate else "registered; below threshold"
        try:
            add(name, code, m, code.P, code.recovery_threshold, exact, note)
        except (ValueError, ArithmeticError):
            continue  # it cannot decode from P - stragglers answers
    if dtype == "float32":
        opts.append(_mixed_option(m, P, r, A, B, C, scale))
    return opts


def _hedged_option(
    m: int, P: int, stragglers: int, A: np.ndarray, B: np.ndarray, C: np.ndarray, scale: float,
    dtype: str,
) -> Option:  # fmt: skip
    """Hedged execution (:mod:`gpucoded.hedging`): m exact tasks, P − m spares.

    Its result is the sum of one answer per task, whichever copy won, so its error is
    that of ``Uncoded(m)`` from all m answers (one pattern). It never loses a task:
    with more stragglers than spares a task waits for its own straggler (exact, late).
    """
    err, _ = _measure(Uncoded(m), m, m, A, B, C, dtype)
    spares = P - m
    note = f"exact; {spares} spare(s), a late task re-issued"
    if stragglers > spares:
        note += f"; {stragglers} stragglers > spares: waits for some"
    return Option(
        f"hedged m={m}", m, P, m, True, err, _bits(err, scale, dtype), 1, note,
        code=Hedged(m, P),
    )  # fmt: skip


def expected_times(
    opts: list[Option], model: LatencyModel, stragglers: int, draws: int = 400, seed: int = 0
) -> None:
    r"""Fill ``Option.expected_time``: the mean time to result over ``draws`` latency
    draws (the same draws for every option; a scheme with P′ workers uses the first
    P′). Exact options: when they can decode
    (:func:`~gpucoded.stragglers.decodable_time`); approximate or below-threshold
    ones: when the P′ − ``stragglers`` answers their error was measured with are in;
    hedging: :func:`~gpucoded.stragglers.hedged_time` (default rule). Injected
    latency only, no GEMM time (each option computes one GEMM of its load per
    worker)."""
    from ..stragglers import decodable_time, hedged_time

    P = max(o.workers for o in opts)
    T = [model.sample(P, seed=seed + i) for i in range(draws)]
    for o in opts:
        c = o.code
        if c is None:
            continue
        if c.hedged:
            ts = [hedged_time(list(t[: c.P]), c.m, c.hedge_after)[0] for t in T]
        else:
            need = None if o.exact else max(1, o.workers - stragglers)
            ts = [decodable_time(c, list(t[: c.P]), answers=need)[0] for t in T]
        o.expected_time = float(np.mean(ts))


def parse_latency(spec: str) -> LatencyModel:
    """``--latency``: ``shifted-exp:SHIFT,SCALE``, ``pareto:SCALE,ALPHA``,
    ``bimodal:BASE,FRACTION,SLOWDOWN`` or ``one-slow:BASE,SLOWDOWN`` (seconds)."""
    from ..stragglers import Bimodal, OneSlowDevice, Pareto, ShiftedExponential

    kinds = {
        "shifted-exp": ShiftedExponential, "pareto": Pareto, "bimodal": Bimodal,
        "one-slow": OneSlowDevice,
    }  # fmt: skip
    name, _, args = spec.partition(":")
    if name not in kinds:
        raise ValueError(f"--latency {spec!r}: use one of {', '.join(kinds)} (NAME:a,b[,c])")
    try:
        vals = [float(x) for x in args.split(",") if x]
        return kinds[name](*vals)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--latency {spec!r}: {e}") from None


def _mixed_option(
    m: int, P: int, r: int, A: np.ndarray, B: np.ndarray, C: np.ndarray, scale: float
) -> Option:
    r"""ε-MatDot on mixed-precision float32 workers.

    γ minimises the predicted worst error :math:`I_S(\gamma)+u_{\rm eff}F_S(\gamma)`
    (:class:`~gpucoded.codes.gamma.ErrorModel`) at the effective unit roundoff of the sliced
    products, :math:`u_{\rm eff}=\max(2^{-53}, 2^{-s\beta})` (s slices of β bits).
    """
    from ..mixed import slice_bits
    from .beyond import MIXED_SLICES, SCHEMES, subset_sample

    inner = ApproxMatDot(m, P, gamma=1.0).grid.block_dims(*A.shape, B.shape[1])[1]
    u_eff = max(unit_roundoff("float64"), 2.0 ** (-MIXED_SLICES * slice_bits(inner)))
    gs = np.logspace(0, 12, 97)
    I, F = ErrorModel("matdot", 1, m, P, r).factors(gs)
    g = float(gs[int(np.argmin((I + u_eff * F).max(axis=0)))])
    code = ApproxMatDot(m, P, gamma=g)
    prods = SCHEMES["mixed"].run(code, A, B, "float32")
    subs, sampled = subset_sample(P, r, MIXED_PATTERNS)
    err = 0.0
    for S in subs:
        Ch = code.decode(prods[list(S)], S, shape=C.shape, partial=True, real=True)
        err = max(err, float(np.abs(np.asarray(Ch, dtype=np.float64) - C).max()))
    gemms = MIXED_SLICES * (MIXED_SLICES + 1) // 2
    note = f"{MIXED_SLICES} fp32 slices, {gemms} fp32 GEMMs/worker"
    if sampled:
        note += f"; worst of {len(subs)} sampled patterns"
    return Option(
        f"mixed ε-MatDot γ={g:.3g}",
        m,
        P,
        m,
        False,
        err,
        _bits(err, scale, "float64"),
        len(subs),
        note,
        load=MIXED_SLICES / m,
    )


@dataclass
class Progressive:
    """ε-MatDot when more than the guaranteed answers arrive (progressive decoding).

    Attributes
    ----------
    guaranteed, usual : int
        Answers P − S (worst case) and P − s (usual).
    gamma_guard, gamma_usual : float
        γ tuned (``auto_gamma``) for ``guaranteed`` and for ``usual`` answers.
    ladder : dict int -> float
        Worst error at each answer count r ≥ ``guaranteed`` (up to min(P, 2m−1)) with
        ``gamma_guard``: what each extra answer buys.
    usual_tuned, usual_tuned_at_guaranteed : float
        Worst error of the ``gamma_usual`` code with ``usual`` answers, and with only
        ``guaranteed`` ones (the risk of tuning for the usual case).
    """

    guaranteed: int
    usual: int
    gamma_guard: float
    gamma_usual: float
    ladder: dict[int, float]
    usual_tuned: float
    usual_tuned_at_guaranteed: float
    #: answer patterns measured per count (a random sample where fewer than all)
    patterns: int = 0


def progressive(
    m: int, P: int, stragglers: int, usual_stragglers: int, dtype: str = "float64", n: int = 100
) -> Progressive:
    """Measure ε-MatDot's progressive decoding (see :class:`Progressive`)."""
    from .progressive_gain import worst_errors

    r, ru = P - stragglers, P - usual_stragglers
    if not 0 <= usual_stragglers <= stragglers:
        raise ValueError(
            f"usual stragglers must be in [0, stragglers={stragglers}], got {usual_stragglers}"
        )
    A, B = unit_gaussian_pair(n, 0)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    top = max(min(P, 2 * m - 1), r)
    rs = sorted({int(x) for x in np.linspace(r, top, min(PROGRESSIVE_COUNTS, top - r + 1))})
    npat = pattern_budget(top)  # the largest count costs most per pattern
    g = auto_gamma("matdot", 1, m, P, answers=r, dtype=dtype)
    lad, _ = worst_errors(ApproxMatDot(m, P, gamma=g), rs + [ru], A, B, C, dtype, npat)
    gu = auto_gamma("matdot", 1, m, P, answers=ru, dtype=dtype)
    tu, _ = worst_errors(ApproxMatDot(m, P, gamma=gu), [r, ru], A, B, C, dtype, npat)
    return Progressive(r, ru, g, gu, lad, tu[ru], tu[r], npat)


def verdict(opts: list[Option], m: int, tol: float | None) -> list[str]:
    """Plain-language conclusions from the measured options."""
    eps = opts[0]
    lines = []
    # codes that decode from the first answers (hedging waits for a re-issue: below)
    same = [o for o in opts[1:] if o.m == m and o.exact and not o.name.startswith("hedged")]
    if same:
        lines.append(
            f"At storage 1/{m} an exact code also tolerates these stragglers "
            f"({', '.join(o.name for o in same)}): ε-MatDot buys nothing here."
        )
    else:
        lines.append(
            f"At storage 1/{m} only ε-MatDot tolerates these stragglers with a guarantee: "
            f"worst case {eps.error:.2e} ({eps.bits:.1f} bits)."
        )
    better = [o for o in opts[1:] if o.exact and o.bits_per_load > eps.bits_per_load]
    if better:
        b = max(better, key=lambda o: o.bits_per_load)
        lines.append(
            f"Counted in bits (Wang-Jia-Jafar 2021) ε-MatDot LOSES: {eps.bits:.1f} bits x m={eps.m}"
            f" = {eps.bits_per_load:.0f} bit-loads vs {b.name}: {b.bits:.1f} bits x m={b.m} = "
            f"{b.bits_per_load:.0f} (exact; each worker computes 1/{b.m} of the product)."
        )
    else:
        lines.append(
            f"Counted in bits ε-MatDot wins: {eps.bits_per_load:.0f} bit-loads, more than every "
            "exact alternative at these P and stragglers."
        )
    mixed = [o for o in opts if o.name.startswith("mixed")]
    if mixed:
        mx = mixed[0]
        gain = eps.error / mx.error if mx.error > 0 else math.inf
        rival = [o for o in opts if o.exact and o.error <= mx.error and o.m >= m / 2]
        lines.append(
            f"Mixed precision: {mx.error:.2e} from m={m} answers, {gain:.0f}x below "
            f"float32 ε-MatDot, at {mx.note.split(';')[0]}: worth it only where float64 "
            "GEMMs are > 15x slower than float32 (else use float64 workers)"
            + (f"; {rival[0].name} is exact and as accurate." if rival else ".")
        )
    if tol is not None:
        ok = [o for o in opts if o.error <= tol and (o.exact or o is eps)]
        if ok:
            best = max(ok, key=lambda o: (o.m, o.bits))
            lines.append(
                f"Lightest load meeting error <= {tol:g}: {best.name} (1/{best.m} per worker)."
            )
        else:
            lines.append(f"No option meets error <= {tol:g} in this arithmetic.")
    return lines + baseline_lines(opts, m, tol)


def _why(o: Option, rival: Option) -> str:
    """How ``o`` compares with ``rival``: work per worker, bits per load, expected time."""
    parts = [f"work per worker {_load(o)} vs {_load(rival)}"]
    parts.append(f"bits x load {o.bits_per_load:.0f} vs {rival.bits_per_load:.0f}")
    if o.expected_time is not None and rival.expected_time is not None:
        parts.append(
            f"expected time {1e3 * o.expected_time:.0f} vs {1e3 * rival.expected_time:.0f} ms"
        )
    return ", ".join(parts)


def baseline_lines(opts: list[Option], m: int, tol: float | None) -> list[str]:
    """What users would do anyway (replication, hedging) against the codes.

    Lists the baselines that meet ``tol`` (every one, without ``tol``) at a work per
    worker no larger than 1/m, then the preferred option among all that do, ranked by
    work per worker, then expected time (when a latency model was given), then bits;
    and why it beat the best baseline (work, bits per load as in Wang-Jia-Jafar,
    expected time).
    """
    base = [o for o in opts if o.name.startswith(("replication", "hedged"))]
    fits = [o for o in base if o.exact and o.storage <= 1.0 / m and (tol is None or o.error <= tol)]
    if not fits:
        return []
    lines = [
        "What users do anyway, exact at work per worker <= 1/" + str(m)
        + (f" and error <= {tol:g}" if tol is not None else "") + ": "
        + "; ".join(f"{o.name} ({o.note})" for o in fits) + "."
    ]  # fmt: skip
    ok = [o for o in opts if o.error <= (math.inf if tol is None else tol) and o.exact]
    ok = [o for o in ok if o.storage <= 1.0 / m] or ok

    def key(o: Option) -> tuple:
        t = o.expected_time if o.expected_time is not None else 0.0
        return (o.storage, t, -o.bits)

    best = min(ok, key=key)
    rival = min(fits, key=key)
    if best is rival:
        lines.append(f"Preferred: {best.name}, a baseline: no code beats it here.")
    else:
        lines.append(f"Preferred: {best.name} over {rival.name}: {_why(best, rival)}.")
    timed = [o for o in opts if o.expected_time is not None and o.exact]
    if best.expected_time is None:
        timed = []
    faster = [o for o in timed if o.expected_time < best.expected_time]
    faster = [o for o in faster if tol is None or o.error <= tol]
    if faster:
        f = min(faster, key=lambda o: o.expected_time)
        lines.append(f"Faster at more work per worker: {f.name} ({_why(f, best)}).")
    return lines


def progressive_lines(pr: Progressive) -> list[str]:
    """Plain-language summary of :func:`progressive`."""
    r, lad = pr.guaranteed, pr.ladder
    steps = ", ".join(f"{k}: {v:.1e}" for k, v in sorted(lad.items()) if k >= r)
    lines = [
        f"Progressive decoding (ε-MatDot, γ={pr.gamma_guard:.3g} tuned for the {r} "
        f"guaranteed answers): worst error by answers received {steps}"
        + (f" (worst of at most {pr.patterns} sampled patterns per count)." if pr.patterns else ".")
    ]
    best = min(lad, key=lad.get)
    if best > r:
        gain = lad[r] / lad[best]
        lines.append(
            f"  Extra answers buy at best {gain:.1f}x ({best} answers) at this γ: only the "
            "interpolation part falls, by ~1/γ per answer; the rounding part u·γ^(m−1) stays"
            + ("; decode as answers arrive, but expect little." if gain < 10 else ".")
        )
    elif max(lad) > r:
        lines.append("  Extra answers buy nothing at this γ (rounding-limited).")
    if pr.usual > r:
        ru = pr.usual
        gain = lad[ru] / pr.usual_tuned if pr.usual_tuned > 0 else math.inf
        loss = pr.usual_tuned_at_guaranteed / lad[r] if lad[r] > 0 else math.inf
        lines.append(
            f"  If {ru} answers usually arrive, γ={pr.gamma_usual:.3g} tuned for {ru} gives "
            f"{pr.usual_tuned:.1e} then ({gain:.3g}x below {lad[ru]:.1e}) but "
            f"{pr.usual_tuned_at_guaranteed:.1e} when only {r} arrive ({loss:.3g}x above "
            f"{lad[r]:.1e}): "
            + (
                "tune for the usual case where that worst case is acceptable."
                if gain > loss
                else "keep γ tuned for the guaranteed answers."
            )
        )
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``gpucoded advise``."""
    p.add_argument("--m", type=int, required=True, help="storage fraction 1/m")
    p.add_argument("--P", type=int, required=True, help="workers")
    p.add_argument("--stragglers", type=int, default=None, help="default P - m")
    p.add_argument("--dtype", default="float64", choices=WORKER_DTYPES)
    p.add_argument("--n", type=int, default=100, help="size of the Gaussian test matrices")
    p.add_argument("--tol", type=float, default=None, help="required max-norm error")
    p.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="explain what code='auto' picks for this relative error (P, stragglers, dtype)",
    )
    p.add_argument(
        "--latency",
        default=None,
        help="expected time per option under a latency model: shifted-exp:SHIFT,SCALE | "
        "pareto:SCALE,ALPHA | bimodal:BASE,FRACTION,SLOWDOWN | one-slow:BASE,SLOWDOWN",
    )
    p.add_argument(
        "--usual-stragglers",
        type=int,
        default=None,
        help="stragglers in a typical run (<= --stragglers): compare γ tuned for it",
    )


def auto_lines(
    P: int, stragglers: int, dtype: str, rtol: float, n: int, latency: LatencyModel | None = None
) -> list[str]:
    """What ``coded_matmul(..., code="auto", P=P, stragglers=..., rtol=rtol,
    latency=latency)`` picks, and why: the candidates (replication, Chebyshev,
    ε-MatDot; hedging with a latency model) with their work per worker, predicted
    error, bits, bits × m, decode amplification F and expected time
    (:meth:`gpucoded.autocode.AutoChoice.explain`)."""
    from ..autocode import choose_code

    head = f"code='auto', P={P}, stragglers={stragglers}, rtol={rtol:g}, {dtype} workers"
    head += f", latency={latency!r}:" if latency is not None else ":"
    try:
        choice = choose_code(P, stragglers, dtype, rtol=rtol, shape=(n, n, n), latency=latency)
    except ValueError as e:
        return [head, str(e)]
    return [head, *choice.explain(), f"-> {choice.code!r} (1/{choice.code.m} per worker)"]


def _etime(o: Option) -> str:
    t = o.expected_time
    return "        –" if t is None else f" {1e3 * t:5.0f} ms"


def _load(o: Option) -> str:
    return f"1/{o.m}" if o.load is None else f"{o.load:.3g}"


def main(args: argparse.Namespace) -> int:
    """Entry point of ``gpucoded advise``."""
    S = args.P - args.m if args.stragglers is None else args.stragglers
    try:
        opts = advise(args.m, args.P, S, args.dtype, args.n)
        spec = getattr(args, "latency", None)
        if spec is not None:
            expected_times(opts, parse_latency(spec), S)
    except ValueError as e:
        raise SystemExit(f"gpucoded advise: {e}") from None
    print(
        f"m={args.m}, P={args.P}, stragglers={S} (answers {args.P - S}), workers in {args.dtype}; "
        f"worst case over answer patterns on {args.n}x{args.n} unit-norm Gaussians"
    )
    hdr = (
        f"{'scheme':24s} {'load':>6s} {'workers':>7s} {'needs':>5s} {'worst err':>10s} "
        f"{'bits':>5s} {'bits*m':>6s}" + (" E[time]" if spec is not None else "") + "  note"
    )
    print(hdr)
    print("-" * len(hdr))
    for o in opts:
        print(
            f"{o.name:24s} {_load(o):>6s} {o.workers:7d} {o.answers_needed:5d} "
            f"{o.error:10.2e} {o.bits:5.1f} {o.bits_per_load:6.0f}"
            + (_etime(o) if spec is not None else "")
            + f"  {o.note}"
        )
    print()
    for line in verdict(opts, args.m, args.tol):
        print(line)
    if getattr(args, "rtol", None) is not None:
        print()
        lat = None if spec is None else parse_latency(spec)
        for line in auto_lines(args.P, S, args.dtype, args.rtol, args.n, lat):
            print(line)
    usual = S if args.usual_stragglers is None else args.usual_stragglers
    if args.P - S < min(args.P, 2 * args.m - 1) or usual < S:
        try:
            pr = progressive(args.m, args.P, S, usual, args.dtype, args.n)
        except ValueError as e:
            raise SystemExit(f"gpucoded advise: {e}") from None
        print()
        for line in progressive_lines(pr):
            print(line)
    return 0
