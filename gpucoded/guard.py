r"""The accuracy guard: no decoded product leaves the library silently wrong.

Every decode (``coded_matmul``, progressive decoding, operators, the GPU path) ends
here. The true product is unknown at run time, so the guard works with what is known:
the code, the worker number format (:mod:`gpucoded.formats`), the decode weights and
the a-priori error analysis of :mod:`gpucoded.weights`.

After the decode (:func:`check_accuracy`)
    **Measured (default, ``check="probes"``).** The error of the returned product is
    measured with a few random probes (:mod:`gpucoded.probes`):
    :math:`\hat e=\kappa\max_i\hat\sigma_i`, an upper estimate of
    :math:`\max|\hat C-AB|` that holds with probability
    :data:`~gpucoded.probes.CONFIDENCE` (99.58 %) for any data and any error, and
    the scale :math:`s_{\rm low}\le\max|AB|` from the probes and
    :math:`\max|\hat C|-\hat e` (never :math:`\max|\hat C|` alone).

    **Rule (max norm).** The result is flagged when :math:`\hat e>10^{-2}s_{\rm low}`
    or when :math:`\hat C` is not finite. An unflagged result therefore has
    :math:`\max|\hat C-AB|\le10^{-2}\max|AB|` with that probability. The decode's
    rigorous a-priori bound (:attr:`DecodeInfo.error_bound`: interpolation defect +
    first-order worst-case rounding in the worker format) and its typical-case model
    estimate (:attr:`DecodeInfo.estimate`, root-sum-squares, which assumes centred
    operands and underestimates on non-negative data) stay reported; they decide
    nothing after the decode when the product is measured.

    **Unmeasured (``check=None``).** :math:`e=\min(\text{bound},\text{typical})`
    against :math:`s=\max|\hat C|`, flagged when :math:`e>10^{-2}s`: the model's
    word only (the scale from :math:`\hat C` itself and, on non-centred data, a
    typical estimate that can be 2–15× low: issue 20's cases).

    ``on_inaccurate`` then decides: ``"warn"`` (default) emits
    :class:`~gpucoded.errors.InaccurateResultWarning`, ``"raise"`` raises
    :class:`~gpucoded.errors.InaccurateResultError`, ``"ignore"`` does nothing (the
    estimate is still reported).

Before any worker runs (:func:`check_feasible`, :func:`check_code_format`)
    A polynomial code in the monomial basis with real points of radius R decodes
    block c with weights :math:`w` that satisfy :math:`w^\top V_S=t_c^\top` for
    *every* answer set S. For any polynomial q of degree < (coefficients solved for),
    :math:`|t_c^\top\mathrm{coef}(q)|\le\|w\|_1\max_{|x|\le R}|q(x)|`; with
    :math:`q=T_d(x/R)` (Chebyshev, :math:`|q|\le1`) this gives the lower bound
    :math:`\|w\|_1\ge|t_{d,j}|/R^{j}` for a target coefficient j (no solve, O(1)).
    The rounding of the answers (relative u each, random signs) reaches the result
    amplified by at least :math:`u\|w\|_2\ge u\|w\|_1/\sqrt{P}`, and an answer is
    about :math:`1/\sqrt{s}` of C's scale (s inner blocks), so the *rounding floor*
    :math:`\phi=u\,\|w\|_1^{\rm low}/\sqrt{Ps}` is a typical-case lower estimate of
    the relative error of every interpolating decode. Weights smaller than the bound
    (a regularised decoder) do not escape: for the input whose product polynomial is
    that q, :math:`|\hat C-C|\ge|t_{cj}\,\mathrm{coef}_j(q)|-\|w\|_1`, so such a
    decode misses C by about its own size for some inputs and its bound says so. The
    code is refused when :math:`\phi\ge1` (the result would carry no correct digit
    whatever answers arrive; the condition number of every decode system then exceeds
    1/u) or when interpolation weights must overflow the storage dtype
    (:math:`\|w\|_1^{\rm low}/P` above its largest number), unless
    ``allow_inaccurate=True``.

Which answers to decode (:func:`choose_answers`, :func:`accurate_enough`)
    A set S is predicted accurate when
    :math:`\pi_S=I_S+u\,F_S\le10^{-2}` (``DecodeWeights.interp_factor`` and
    ``fp_factor``: the interpolation defect and the rounding amplification of its
    weights, relative to :math:`\rho_A\rho_B`; the auto-γ error model of
    :mod:`gpucoded.points`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .codes import Code, EvaluationCode
from .errors import InaccurateResultError, InaccurateResultWarning, warn_user
from .formats import Format, FormatSpec, get_format
from .probes import RTOL_FLAG

__all__ = [
    "ON_INACCURATE",
    "RTOL_GUARD",
    "accurate_enough",
    "bound_exceeds_result",
    "flag",
    "check_accuracy",
    "check_code_format",
    "check_feasible",
    "check_weights",
    "choose_answers",
    "predicted_error",
    "relative_estimate",
    "rounding_floor",
    "suggest_fix",
    "weight_floor",
]

#: Relative error above which a result is flagged (about two correct digits).
RTOL_GUARD = RTOL_FLAG
ON_INACCURATE = ("warn", "raise", "ignore")
#: choose_answers leaves the arrival order only for a predicted error this much smaller
SWITCH_GAIN = 0.5
_LN10 = math.log(10.0)


def check_mode(on_inaccurate: str) -> str:
    """Validate ``on_inaccurate`` before any work is done."""
    if on_inaccurate not in ON_INACCURATE:
        raise ValueError(
            f"on_inaccurate must be one of {', '.join(map(repr, ON_INACCURATE))}; "
            f"got {on_inaccurate!r}"
        )
    return on_inaccurate


# --------------------------------------------------------------- after the decode
def relative_estimate(info: Any, scale: float) -> float:
    """The decode's model estimate e = min(bound, typical) relative to ``scale``.

    NaN when the decode reported no estimate, inf when the scale is 0 or NaN.
    """
    cands = [x for x in (info.error_bound, getattr(info, "estimate", None)) if x is not None]
    if not cands:
        return math.nan
    e = min(cands)
    if e == 0:
        return 0.0
    if not scale > 0 or not math.isfinite(scale):
        return math.inf
    return e / scale


def check_accuracy(
    info: Any,
    scale: float,
    *,
    code: Any,
    fmt: Format,
    on_inaccurate: str = "warn",
    measured: Any = None,
) -> float:
    r"""Apply the rule of this module to one decode; return the relative estimate.

    With ``measured`` (the probes' :class:`~gpucoded.probes.Measured`): flags when
    :math:`\hat e>10^{-2}s_{\rm low}`; otherwise when
    :math:`\min(\text{bound},\text{typical})>10^{-2}\max|\hat C|`; always
    when :math:`\hat C` is not finite.

    Parameters
    ----------
    info : DecodeInfo
        The decode's report (``error_bound``, ``estimate``, ``cond``, ``workers``).
    scale : float
        :math:`\max|\hat C|` (NaN if the result is not finite).
    code : Code
        The code that decoded (named in the message).
    fmt : Format
        The worker format the answers were computed in.
    on_inaccurate : {"warn", "raise", "ignore"}
        A warning points at the user's line (:func:`gpucoded.errors.warn_user`).
    measured : Measured, optional
        The measured error (:func:`gpucoded.probes.measure`).

    Returns
    -------
    float
        The relative estimate (measured :math:`\hat e/s_{\rm low}`, or the model's;
        NaN when there is neither).

    Raises
    ------
    InaccurateResultError
        ``on_inaccurate="raise"`` and the result is flagged.
    """
    fmt = get_format(fmt)
    if measured is not None:
        scale = measured.result_max
        rel = measured.relative if math.isfinite(measured.error) else math.inf
    else:
        rel = relative_estimate(info, scale)
    finite = math.isfinite(scale)
    if on_inaccurate == "ignore" or (finite and not rel > RTOL_GUARD):
        return rel
    if not finite:
        what = "the result is not finite (NaN/Inf)"
    elif measured is not None:
        how = (
            f"checked column by column ({measured.probes} columns, exact)"
            if measured.exact
            else f"{measured.probes} random probes, {measured.confidence:.2%} confidence"
        )
        what = (
            f"measured error {measured.error:.3g} ({how}) = {rel:.2g} x max|AB| "
            f"(max|AB| >= {measured.scale:.3g}, max|C| = {scale:.3g})"
        )
    else:
        what = f"estimated error {rel:.2g} relative to max|C| = {scale:.3g} (error model)"
    est = getattr(info, "estimate", None)
    kinds = f"a-priori bound {info.error_bound:.3g}" if info.error_bound is not None else "no bound"
    if est is not None:
        kinds += f", model estimate {est:.3g}"
    msg = (
        f"{code!r} (m={code.m}) decoded from {len(info.workers)} answers "
        f"(workers {list(info.workers)}) in {fmt.name}: cond {info.cond:.2g}, {what} "
        f"({kinds}); the result may have fewer than two correct digits. "
        f"{suggest_fix(code, fmt, info)}"
    )
    flag(msg, on_inaccurate, estimate=rel)
    return rel


def flag(message: str, on_inaccurate: str, *, estimate: float) -> None:
    """Report an inaccurate result as ``on_inaccurate`` says (warn, raise or ignore)."""
    if on_inaccurate == "raise":
        raise InaccurateResultError(message, estimate=estimate)
    if on_inaccurate == "warn":
        warn_user(message, InaccurateResultWarning)


def bound_exceeds_result(error_bound: float | None, scale: float) -> bool:
    r"""Whether a (verified) error bound admits that no digit of the result is right.

    True when ``error_bound`` :math:`\ge\max|\hat C|` (or the result is not finite):
    the bound then says nothing about the product. ``verify`` uses it to flag its
    verified bound (``CorruptionWarning`` / the integrity report).
    """
    if error_bound is None:
        return False
    if not math.isfinite(scale):
        return True
    return bool(error_bound >= scale)


def suggest_fix(code: Code, fmt: Format, info: Any = None) -> str:
    """A concrete way out for an inaccurate decode of ``code`` in format ``fmt``.

    Names, as applicable: more answers (approximate codes, with the number of workers
    left), ``gamma='auto'`` tuned for ``fmt`` (unless the points already are), a
    Chebyshev code with the same m, the largest m the format allows for the code's
    family, float64 workers.
    """
    fmt = get_format(fmt)
    fixes = []
    used = len(info.workers) if info is not None else code.recovery_threshold
    if code.approximate:
        if used < code.P:
            lo = min(used + 1, code.P)
            more = f"answers={lo}" if lo == code.P else f"answers={lo}..{code.P}"
            fixes.append(f"more answers ({more})")
        if not (code.gamma_choice == "auto" and code.worker_dtype == fmt.name):
            fixes.append(f"gamma='auto' (points tuned for {fmt.name} workers)")
    if code.basis == "monomial" and not code.is_complex:
        fixes.append(f"a Chebyshev code (code='chebyshev', m={code.m}: well conditioned)")
        mmax = _largest_feasible_m(code, fmt)
        if mmax is not None and mmax < code.m:
            fixes.append(f"a smaller m (m <= {mmax} for {type(code).__name__} in {fmt.name})")
    if not fixes or fixes[-1].startswith("a Chebyshev"):
        fixes.append(f"a smaller m than {code.m}")
    if fmt.name != "float64":
        fixes.append("float64 workers (float64 inputs)")
    return "Fix: use " + ", or ".join(fixes) + "; on_inaccurate='ignore' silences this."


# ----------------------------------------------------------- before any worker runs
def _log10_cheb_coef(d: int, j: int) -> float:
    r""":math:`\log_{10}|t_{d,j}|`, the coefficient of :math:`x^j` in :math:`T_d(x)`.

    :math:`T_d(x)=\frac d2\sum_k(-1)^k\frac{(d-k-1)!}{k!(d-2k)!}(2x)^{d-2k}` (d ≥ 1);
    ``-inf`` when the coefficient is zero (parity, or j > d).
    """
    if j > d or (d - j) % 2:
        return -math.inf
    if d == 0:
        return 0.0
    k = (d - j) // 2
    ln = math.log(d / 2) + math.lgamma(d - k) - math.lgamma(k + 1) - math.lgamma(j + 1)
    return (ln + j * math.log(2.0)) / _LN10


def _monomial_real(code: Code) -> bool:
    """A polynomial code in the monomial basis with real evaluation points."""
    return (
        isinstance(code, EvaluationCode)
        and code.basis == "monomial"
        and not np.iscomplexobj(code.points)
    )


def _floor_log10(targets: np.ndarray, ncoef: int, radius: float) -> float:
    r""":math:`\log_{10}` of :math:`\max_c|t_{cj}|\,|t_{d,j}|/R^j` (see module docstring).

    Rows with several nonzero coefficients contribute their largest single term's
    bound only when they have exactly one nonzero (all the library's codes).
    """
    best = -math.inf
    for row in np.asarray(targets):
        nz = np.nonzero(row[:ncoef])[0]
        if nz.size != 1:
            continue
        j = int(nz[0])
        d = ncoef - 1 if (ncoef - 1 - j) % 2 == 0 else ncoef - 2
        if d < j:
            continue
        lb = math.log10(abs(row[j])) + _log10_cheb_coef(d, j) - j * math.log10(radius)
        best = max(best, lb)
    return best


def weight_floor(code: Code) -> float | None:
    r""":math:`\log_{10}` of a lower bound on :math:`\max_c\|w_c\|_1` over every decode.

    Valid for every answer set the code can decode (at least its recovery threshold
    of answers, so at least :math:`\min(\text{threshold},K)` coefficients solved for).
    ``None`` when the bound does not apply (Chebyshev basis, complex points, codes
    that are not polynomial codes): those are not refused.
    """
    if not _monomial_real(code):
        return None
    ncoef = min(int(code.recovery_threshold), int(code.K))
    radius = float(np.abs(code.points).max())
    if not radius > 0:
        return None
    return _floor_log10(code.targets, ncoef, radius)


def rounding_floor(code: Code, fmt: FormatSpec) -> float:
    r"""The rounding floor :math:`\phi=u\,\|w\|_1^{\rm low}/\sqrt{Ps}` (module docstring).

    A typical-case *lower* estimate of the relative error of every decode of ``code``
    with workers in format ``fmt`` (0 where :func:`weight_floor` does not apply;
    ``inf`` past the float range).
    """
    lb = weight_floor(code)
    if lb is None or lb == -math.inf:
        return 0.0
    u = get_format(fmt).u
    lg = math.log10(u) + lb - 0.5 * math.log10(code.P * code.grid.s)
    return math.inf if lg > 300 else 10.0**lg


def _weights_overflow(code: Code, fmt: Format) -> bool:
    """Whether the decode weights must exceed the storage dtype's largest number."""
    lb = weight_floor(code)
    if lb is None:
        return False
    return lb - math.log10(code.P) > math.log10(float(np.finfo(fmt.storage).max))


def _largest_feasible_m(code: Code, fmt: Format) -> int | None:
    """Largest m with rounding floor < RTOL_GUARD for the code's family at its radius.

    MatDot-like codes (one C block, target coefficient m−1, 2m−1 coefficients at the
    exact threshold, m at the approximate one); ``None`` for other codes.
    """
    if not _monomial_real(code) or code.grid.n_c != 1:
        return None
    radius = float(np.abs(code.points).max())
    u, best = fmt.u, 0
    for m in range(1, 400):
        ncoef = m if code.approximate else 2 * m - 1
        t = np.zeros((1, ncoef))
        t[0, m - 1] = 1.0
        lg = math.log10(u) + _floor_log10(t, ncoef, radius) - 0.5 * math.log10(2 * m * m)
        if lg >= math.log10(RTOL_GUARD):
            break
        best = m
    return best


def check_feasible(code: Code, fmt: FormatSpec, *, allow_inaccurate: bool = False) -> None:
    r"""Refuse a code that cannot give a usable product in ``fmt``, before any work.

    Raises when the rounding floor :math:`\phi\ge1` (every decode system is beyond the
    working precision: no answer set can give a correct digit) or when the decode
    weights must overflow the storage dtype. O(#C blocks) arithmetic: ``matdot`` with
    m = 200 answers in microseconds.

    Parameters
    ----------
    code : Code
    fmt : Format, format name or dtype
        The workers' number format (``Executor.compute_format``).
    allow_inaccurate : bool
        Run a hopeless code anyway (the guard still flags the result). Weights that
        overflow are refused regardless: they can only give NaN.

    Raises
    ------
    ValueError
        Naming the floor, the condition number it implies and what would work.
    """
    fmt = get_format(fmt)
    lb = weight_floor(code)
    if lb is None or lb == -math.inf:
        return
    overflow = _weights_overflow(code, fmt)
    phi = rounding_floor(code, fmt)
    if not overflow and (phi < 1.0 or allow_inaccurate):
        return
    why = (
        f"its interpolation weights reach at least 1e{lb - math.log10(code.P):.0f}, beyond "
        f"the largest {fmt.storage.name} (they would overflow to inf/NaN; weights small "
        "enough to fit miss C by about its own size for some inputs)"
        if overflow
        else f"every decode system has condition number >= 1e{lb:.0f} (cond*u = "
        f"1e{lb + math.log10(fmt.u):.0f} >= 1): rounding alone makes the error about "
        f"{phi:.2g} x the result or more, whatever answers arrive"
    )
    opt = "" if overflow else " Pass allow_inaccurate=True to run it anyway."
    raise ValueError(
        f"{code!r} cannot compute a usable product with {fmt.name} workers: {why}. "
        f"{suggest_fix(code, fmt)}{opt}"
    )


#: Largest finite value per storage dtype (``np.finfo`` is slow to ask per call).
_STORAGE_MAX: dict[Any, float] = {}


def check_weights(code: Any, dw: Any, fmt: Any) -> None:
    """Raise ``ValueError`` before a decode whose weights overflow the storage dtype.

    ``dw`` is the :class:`~gpucoded.codes.DecodeWeights` about to be applied.
    """
    fmt = get_format(fmt)
    wmax = dw.abs_max
    lim = _STORAGE_MAX.get(fmt.storage)
    if lim is None:
        lim = _STORAGE_MAX.setdefault(fmt.storage, float(np.finfo(fmt.storage).max))
    if wmax <= lim:  # false for NaN and for inf
        return
    raise ValueError(
        f"{code!r}: the decode weights for workers {list(dw.workers)} reach {wmax:.3g}, "
        f"beyond the largest {fmt.storage.name}; the decode would give inf/NaN. "
        f"{suggest_fix(code, fmt)}"
    )


def check_code_format(code: Code, fmt: FormatSpec) -> Code:
    """The code to use for workers in ``fmt``: ``code`` itself, or a retuned copy.

    An ε-approximate code (:class:`~gpucoded.codes.ApproxPolyDot`,
    :class:`~gpucoded.codes.ApproxMatDot`) whose points were chosen automatically for
    another format (``dtype=`` at construction) is rebuilt for ``fmt`` with the same
    parameters (the best γ differs by orders of magnitude between float64 and
    float32). One with user-chosen points, ``gamma`` or ``eps`` is kept if
    :func:`check_feasible` passes in ``fmt`` and its ``eps`` still holds, else refused
    with how to build it. Other codes are returned unchanged (after
    :func:`check_feasible`).

    Raises
    ------
    ValueError
        The code cannot serve ``fmt`` workers; the message says how to build one.
    """
    fmt = get_format(fmt)
    tuned = code.worker_dtype
    if tuned is None or tuned == fmt.name:
        check_feasible(code, fmt)
        return code
    retuned = code.retuned(fmt)  # the family's own hook (automatic points: re-chosen)
    if retuned is not code:
        return retuned
    try:
        check_feasible(code, fmt)
        code.check_promise(fmt)  # e.g. an eps= code's promise in this format
    except ValueError as exc:
        raise ValueError(
            f"{code!r} was built for {tuned} workers with a fixed {code.gamma_choice}; it "
            f"cannot serve {fmt.name} workers ({exc}). Build it for them: "
            f"{code.rebuild_hint(fmt)}"
        ) from None
    return code


# ------------------------------------------------------------ which answers to decode
def predicted_error(code: Code, S: Sequence[int], fmt: FormatSpec) -> float:
    r""":math:`\pi_S=I_S+u\,F_S` for decoding from the workers ``S`` (relative to ρ_Aρ_B).

    Uses the cached weights of the set for ``fmt`` (``code.decode_weights(S, fmt=fmt)``,
    the ones the decode will apply); :math:`I_S=0` for an exact decode.
    """
    fmt = get_format(fmt)
    dw = code.decode_weights(S, fmt=fmt)
    interp = 0.0 if dw.exact else float(dw.interp_factor)
    return interp + fmt.u * float(dw.fp_factor)


def accurate_enough(code: Code, S: Sequence[int], fmt: FormatSpec) -> bool:
    r"""Whether decoding from ``S`` is predicted accurate: :math:`\pi_S\le10^{-2}`.

    The pipeline waits for further answers (``wait_for_accuracy=``) while this is
    False. Codes that are not polynomial codes are always accurate enough (their
    decode is a selection or a well-conditioned combination).
    """
    if not isinstance(code, EvaluationCode):
        return True  # a selection or a well-conditioned combination
    return bool(predicted_error(code, S, fmt) <= RTOL_GUARD)


def _basis_matrix(code: EvaluationCode, S: Sequence[int], ncoef: int) -> np.ndarray:
    """Basis functions 0..ncoef−1 at the points of S, scaled per column (float64)."""
    x = np.asarray(code.points)[list(S)]
    if code.basis == "chebyshev":
        V = np.cos(np.arange(ncoef)[None, :] * np.arccos(np.clip(x.real, -1, 1))[:, None])
    else:
        radius = float(np.abs(code.points).max()) or 1.0
        V = (x[:, None] / radius) ** np.arange(ncoef)[None, :]
    return V


def best_conditioned(code: EvaluationCode, got: Sequence[int], k: int) -> list[int]:
    """k of the workers ``got`` chosen greedily for a well-conditioned system.

    Pivoted Gram–Schmidt on the rows of the basis matrix at their points (the
    maximum-volume greedy choice, i.e. approximate Fekete points); returned in the
    order of ``got``.
    """
    got = list(got)
    ncoef = min(k, int(code.K))
    R = _basis_matrix(code, got, ncoef).astype(complex).T.copy()  # columns = workers
    chosen: list[int] = []
    for _ in range(min(k, len(got))):
        norms = np.linalg.norm(R, axis=0)
        norms[chosen] = -1.0
        i = int(np.argmax(norms))
        chosen.append(i)
        if norms[i] <= 0:
            continue
        q = R[:, i] / norms[i]
        R = R - np.outer(q, q.conj() @ R)
    if len(chosen) < k:
        chosen += [i for i in range(len(got)) if i not in chosen][: k - len(chosen)]
    keep = set(chosen)
    return [w for i, w in enumerate(got) if i in keep]


def choose_answers(
    code: Code, got: Sequence[int], fmt: FormatSpec, *, needed: int
) -> list[int]:
    r"""The workers to decode from, given the usable answers ``got`` (arrival order).

    The first ``needed`` answers if :func:`accurate_enough`; otherwise the candidate
    with the smallest :func:`predicted_error` among: all answers in hand (least
    squares / more coefficients) and the best-conditioned ``needed`` of them
    (:func:`best_conditioned`), if it predicts less than :data:`SWITCH_GAIN` times
    the first ``needed``'s error; else the first ``needed``. Weights are cached per set, so the
    chosen set's weights are not computed twice.

    Parameters
    ----------
    code : Code
    got : sequence of int
        Usable answers, in arrival order.
    fmt : Format, name or dtype
        Worker format.
    needed : int
        Answers the pipeline decodes by default (the threshold or ``answers=``);
        ``needed <= 0`` or ``>= len(got)`` means all of ``got``.

    Returns
    -------
    list of int
        A subset of ``got`` in arrival order.
    """
    got = list(got)
    if needed <= 0 or needed >= len(got):
        return got
    fmt = get_format(fmt)  # once: the predictions below take the Format as it is
    first = got[:needed]
    if not isinstance(code, EvaluationCode) or accurate_enough(code, first, fmt):
        return first
    cands = [first, got, best_conditioned(code, got, needed)]
    scores = []
    for S in cands:
        try:
            scores.append(predicted_error(code, S, fmt))
        except (ValueError, ArithmeticError):
            scores.append(math.inf)
    best = int(np.argmin(scores))
    # the prediction is a model (1-50x above the measured error): leave the arrival
    # order only for a clear gain
    return cands[best] if scores[best] < SWITCH_GAIN * scores[0] else first
