r"""Worker answers that are wrong: erasures, and silent corruption found by redundancy.

Two kinds of bad answer are handled:

* **Detectable on arrival** (:func:`answer_problem`): wrong shape, wrong dtype, or
  NaN/Inf when the inputs are finite. ``coded_matmul`` treats such a worker as an
  erasure, like one that raised or never answered.
* **Silent corruption**: a finite answer of the right shape with wrong values. It is
  found with the code's own decode rule (:meth:`~gpucoded.codes.Code.decode`,
  cached :class:`~gpucoded.codes.DecodeWeights` and their a-priori bounds).

Leave-one-out consistency
-------------------------
Let :math:`S` be the answering workers and :math:`\hat C_T` the decode from a subset
:math:`T` with a-priori bound :math:`e_T` (``DecodeInfo.error_bound``:
interpolation + rounding), so honest answers give
:math:`\|\hat C_T-C\|_{\max}\le e_T`. For every :math:`w\in S` whose removal leaves a
decodable set,

.. math:: r_w = \frac{\|\hat C_S-\hat C_{S\setminus w}\|_{\max}}{e_S+e_{S\setminus w}}

is at most 1 when all answers are honest (triangle inequality). :math:`r_w>1` for some
w proves that an answer is corrupt: the check has no false alarms as long as the
bounds hold. This is the syndrome of the code restricted to what the decode sees: a
corruption that moves no leave-one-out decode does not change :math:`\hat C_S`
either.

*Guarantee under the single-fault model* (at most one corrupt answer in S, every
worker of S checked): if all :math:`r_w\le1`, let c be the corrupt worker; then
:math:`\hat C_{S\setminus c}` is honest and

.. math:: \|\hat C_S-C\|_{\max}\le e_S+2\max_w e_{S\setminus w},

which is the bound reported for a verified result.

*Location*: with one more answer (exact codes: threshold + 2), every
:math:`S\setminus c` is itself checkable; the sets that pass identify the corrupt
worker, and the decode without it is returned. More than one corrupt worker is
located by excluding pairs, triples, ... while enough answers remain.

For approximate codes :math:`e_T` contains the rigorous interpolation bound, so an
answer is flagged when its effect is far above what truncation can explain.
"""

from __future__ import annotations

import cmath
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import array_module, is_cupy_array, to_numpy
from .codes import Code, DecodeInfo
from .errors import CorruptAnswerError, CorruptionWarning, NotEnoughAnswersError, warn_user

__all__ = [
    "VERIFY_MODES",
    "IntegrityReport",
    "answer_problem",
    "can_check",
    "drop_nonfinite",
    "can_locate",
    "verify_decode",
    "verify_ready",
]

#: ``coded_matmul(verify=...)`` values: report by warning, refuse, or exclude-and-decode.
VERIFY_MODES = ("warn", "raise", "correct")

#: Most exclusion sets tried when locating corrupt workers (bounds the work).
MAX_LOCATE_SETS = 256


@dataclass
class IntegrityReport:
    """Outcome of the consistency check of one decode.

    Attributes
    ----------
    mode : str
        The ``verify`` mode.
    checked : bool
        Every used answer took part in a leave-one-out comparison.
    consistent : bool or None
        No comparison exceeded its bound (None: nothing could be compared).
    unchecked : tuple of int
        Workers whose answer could not be cross-checked (removing it leaves an
        undecodable set).
    excluded : tuple of int
        Workers located as corrupt and left out of the returned decode.
    suspects : tuple of int
        Workers in the inconsistent comparisons (all of S when not located).
    max_ratio : float
        Largest :math:`r_w` of the initial check (≤ 1: consistent).
    comparisons : int
        Leave-one-out decodes compared, including those of the location search.
    error_bound : float or None
        Bound on the returned C under the single-fault model (see module docstring);
        ``inf`` when the result is known to be inconsistent, None when unchecked.
    reason : str
        Why the check was skipped or failed, for messages.
    bound_exceeds_result : bool
        The verified bound is at least :math:`\\max|\\hat C|` (set by the call's
        accuracy guard, which then warns or raises as ``on_inaccurate`` says).
    """

    mode: str
    checked: bool = False
    consistent: bool | None = None
    unchecked: tuple[int, ...] = ()
    excluded: tuple[int, ...] = ()
    suspects: tuple[int, ...] = ()
    max_ratio: float = 0.0
    comparisons: int = 0
    error_bound: float | None = None
    reason: str = ""
    bound_exceeds_result: bool = False


def answer_problem(
    product: Any,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    check_finite: bool = True,
    defer_device: bool = False,
) -> str | None:
    """Why a worker's answer cannot be used, or None when it can.

    Parameters
    ----------
    product : array
        The worker's answer.
    shape, dtype
        What ``At[w] @ Bt[w]`` has: ``(rb, db)`` and the encoded data's dtype.
    check_finite : bool
        Refuse NaN/Inf (set False when the inputs themselves are not finite).
    defer_device : bool
        For a device (CuPy) answer, leave the finiteness check to
        :func:`drop_nonfinite`, which checks all answers with one host
        synchronisation: checking here would synchronise once per answer inside the
        collection loop.
    """
    got_shape = tuple(getattr(product, "shape", ()))
    if got_shape != tuple(shape):
        return f"wrong shape {got_shape} (expected {tuple(shape)})"
    got_dtype = getattr(product, "dtype", None)
    if got_dtype != np.dtype(dtype):
        return f"wrong dtype {got_dtype} (expected {np.dtype(dtype)})"
    if check_finite and type(product) is np.ndarray:  # the host's hot path: no ufunc
        total = product.sum()
        ok = cmath.isfinite(total) if product.dtype.kind == "c" else math.isfinite(total)
        if not ok and not bool(np.isfinite(product).all()):
            return "non-finite answer (NaN/Inf) from finite inputs"
    elif check_finite and not (defer_device and is_cupy_array(product)):
        xp = array_module(product)
        # a NaN/Inf entry makes the sum non-finite (one streaming pass, no mask array);
        # a finite answer whose sum overflows is confirmed entrywise before refusing it
        if not bool(xp.isfinite(product.sum())) and not bool(xp.isfinite(product).all()):
            return "non-finite answer (NaN/Inf) from finite inputs"
    return None


def drop_nonfinite(workers: list[int], products: list, erased: dict[int, str]) -> bool:
    """Drop the answers with NaN/Inf whose check :func:`answer_problem` deferred.

    Device answers: one reduction per answer is queued and all their results come back
    with a single host synchronisation (a non-finite sum is confirmed entrywise, as in
    :func:`answer_problem`). Host answers (deferred to the decode, which found a
    non-finite one and collects on): :func:`answer_problem`'s check, each.
    ``workers`` and ``products`` (parallel lists) lose the non-finite answers, which
    are recorded in ``erased``. Returns True when every answer was finite.
    """
    bad = [
        k for k, p in enumerate(products)
        if type(p) is np.ndarray and answer_problem(p, p.shape, p.dtype) is not None
    ]  # fmt: skip
    dev = [k for k, p in enumerate(products) if is_cupy_array(p)]
    if dev:
        xp = array_module(products[dev[0]])
        finite = to_numpy(xp.isfinite(xp.stack([products[k].sum() for k in dev])))
        suspect = [k for k, ok in zip(dev, finite, strict=True) if not ok]
        bad += [k for k in suspect if not bool(xp.isfinite(products[k]).all())]
    for k in sorted(bad, reverse=True):
        erased[workers[k]] = "non-finite answer (NaN/Inf) from finite inputs"
        del workers[k], products[k]
    return not bad


def can_check(code: Code, workers: Sequence[int]) -> bool:
    """Every answer of ``workers`` can be cross-checked (each leave-one-out decodes)."""
    S = list(workers)
    return bool(S) and all(code.can_decode(S[:k] + S[k + 1 :]) for k in range(len(S)))


def can_locate(code: Code, workers: Sequence[int]) -> bool:
    """One corrupt answer among ``workers`` can be located (each leave-one-out is checkable)."""
    S = list(workers)
    return can_check(code, S) and all(can_check(code, S[:k] + S[k + 1 :]) for k in range(len(S)))


def verify_ready(mode: str | None, code: Code | None, workers: Sequence[int]) -> bool:
    """Whether the answers ``workers`` suffice to decode and to ``verify=mode``.

    ``None``: the code can decode. ``"warn"``/``"raise"``: also every answer is
    cross-checkable (:func:`can_check`); ``"correct"``: also one corrupt answer is
    locatable (:func:`can_locate`). With ``code=None`` only the mode is validated.
    """
    if mode is not None and mode not in VERIFY_MODES:
        raise ValueError(f"verify must be None or one of {VERIFY_MODES}, got {mode!r}")
    if code is None:
        return True
    if not code.can_decode(workers):
        return False
    if mode is None:
        return True
    return can_locate(code, workers) if mode == "correct" else can_check(code, workers)


@dataclass
class _Check:
    """Leave-one-out check of one subset (positions into the answer stack)."""

    idx: tuple[int, ...]
    C: Any
    info: DecodeInfo
    ratios: dict[int, float] = field(default_factory=dict)  # position -> r_w
    loo_bounds: dict[int, float] = field(default_factory=dict)
    unchecked: tuple[int, ...] = ()

    @property
    def max_ratio(self) -> float:
        return max(self.ratios.values(), default=0.0)

    @property
    def consistent(self) -> bool:
        # written so that NaN ratios count as inconsistent
        return all(r <= 1.0 for r in self.ratios.values())

    @property
    def bound(self) -> float:
        """e_S + 2 max_w e_{S\\w}: the verified bound of the module docstring."""
        return self.info.error_bound + 2.0 * max(self.loo_bounds.values(), default=0.0)


class _Checker:
    def __init__(self, code: Code, products: Any, workers: Sequence[int], kw: dict) -> None:
        self.code = code
        self.products = products
        self.workers = [int(w) for w in workers]
        self.kw = kw
        self.xp = array_module(products)
        self._dec: dict[tuple[int, ...], tuple[Any, DecodeInfo]] = {}
        self.comparisons = 0

    def decode(self, idx: tuple[int, ...]) -> tuple[Any, DecodeInfo]:
        hit = self._dec.get(idx)
        if hit is None:
            sel = list(idx)
            hit = self.code.decode(
                self.products[sel], [self.workers[i] for i in sel], return_info=True, **self.kw
            )
            self._dec[idx] = hit
        return hit

    def decodable(self, idx: Sequence[int]) -> bool:
        return self.code.can_decode([self.workers[i] for i in idx])

    def check(self, idx: tuple[int, ...]) -> _Check:
        C, info = self.decode(idx)
        out = _Check(idx, C, info)
        unchecked = []
        for k in idx:
            sub = tuple(i for i in idx if i != k)
            if not sub or not self.decodable(sub):
                unchecked.append(self.workers[k])
                continue
            Ck, ik = self.decode(sub)
            self.comparisons += 1
            dev = float(self.xp.abs(C - Ck).max())
            tol = info.error_bound + ik.error_bound
            out.ratios[k] = dev / tol if tol > 0 else (0.0 if dev == 0 else math.inf)
            if not dev == dev:  # NaN deviation: inconsistent
                out.ratios[k] = math.inf
            out.loo_bounds[k] = ik.error_bound
        out.unchecked = tuple(unchecked)
        return out


def verify_decode(
    code: Code,
    products: Any,
    workers: Sequence[int],
    *,
    mode: str,
    shape: tuple[int, int],
    norms: tuple[float, float],
    inner: int,
    real: bool,
    fmt: Any = None,
) -> tuple[Any, DecodeInfo, IntegrityReport, tuple[int, ...]]:
    """Decode with a leave-one-out consistency check (see the module docstring).

    Parameters
    ----------
    code : Code
    products : array (|S|, rb, db)
        Answers, ``products[k]`` from ``workers[k]``.
    workers : sequence of int
    mode : {"warn", "raise", "correct"}
        On an inconsistency: warn (and return the unverified decode, bound ``inf``),
        raise :class:`~gpucoded.errors.CorruptAnswerError`, or locate the corrupt
        worker(s), exclude them and decode from the rest.
    shape, norms, inner, real
        As for :meth:`Code.decode` (``norms`` is required: the check needs bounds).
    fmt : Format, format name or dtype, optional
        The format the workers computed in (``Executor.compute_format``): every decode
        and bound of the check is in it, like the unverified decode's (a TF32 or BF16
        worker's rounding is not flagged as corruption). Default: the answers' dtype.

    Returns
    -------
    C, DecodeInfo, IntegrityReport, used workers (after exclusions).

    Raises
    ------
    CorruptAnswerError
        ``mode="raise"`` and inconsistent; ``mode="correct"`` and inconsistent but
        not locatable.
    NotEnoughAnswersError
        ``mode`` is "raise" or "correct" and some answer could not be cross-checked.
    """
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify must be None or one of {VERIFY_MODES}, got {mode!r}")
    kw = {"shape": shape, "norms": norms, "inner": inner, "real": real}
    if fmt is not None:
        kw["fmt"] = fmt
    ck = _Checker(code, products, workers, kw)
    W = ck.workers
    full = ck.check(tuple(range(len(W))))
    report = IntegrityReport(mode=mode, max_ratio=full.max_ratio, unchecked=full.unchecked)
    report.checked = not full.unchecked
    report.consistent = full.consistent if full.ratios else None

    def finish(chk: _Check) -> tuple[Any, DecodeInfo, IntegrityReport, tuple[int, ...]]:
        report.comparisons = ck.comparisons
        return chk.C, chk.info, report, tuple(W[i] for i in chk.idx)

    if full.consistent and report.checked:
        report.error_bound = full.bound
        return finish(full)
    if full.consistent:  # nothing wrong seen, but some answers were not cross-checked
        report.reason = (
            f"answers of workers {list(full.unchecked)} could not be cross-checked: "
            f"removing one leaves fewer answers than {code!r} needs"
        )
        if mode == "warn":
            warn_user(f"unverified result: {report.reason}", CorruptionWarning)
            return finish(full)
        raise NotEnoughAnswersError(
            f"verify={mode!r}: {report.reason}; wait for more answers (answers=...)",
            needed=code.recovery_threshold + 1,
            answered=W,
        )
    report.suspects = tuple(W)
    msg = (
        f"inconsistent answers from workers {W} of {code!r}: leave-one-out decodes differ "
        f"by up to {full.max_ratio:.3g}x their error bounds"
    )
    if mode == "warn":
        report.error_bound = math.inf
        report.reason = msg
        warn_user(msg, CorruptionWarning)
        return finish(full)
    if mode == "raise":
        report.reason = msg
        report.comparisons = ck.comparisons
        raise CorruptAnswerError(msg, suspects=report.suspects, report=report)
    located = _locate(ck, full)
    if located is None:
        report.reason = (
            f"{msg}; too few answers to locate the corrupt worker (an exact code needs "
            f"its threshold + 2 = {code.recovery_threshold + 2})"
        )
        report.comparisons = ck.comparisons
        raise CorruptAnswerError(report.reason, suspects=report.suspects, report=report)
    report.excluded = tuple(sorted(W[i] for i in full.idx if i not in located.idx))
    report.error_bound = located.bound
    report.reason = f"{msg}; excluded workers {list(report.excluded)}"
    return finish(located)


def _locate(ck: _Checker, full: _Check) -> _Check | None:
    """Smallest exclusion set whose complement passes a full check (fewest ratio wins)."""
    n = len(full.idx)
    tried = 0
    for f in range(1, n):
        best: _Check | None = None
        for excl in itertools.combinations(full.idx, f):
            rest = tuple(i for i in full.idx if i not in excl)
            if not ck.decodable(rest):
                continue
            tried += 1
            if tried > MAX_LOCATE_SETS:
                return best
            chk = ck.check(rest)
            if chk.unchecked or not chk.ratios or not chk.consistent:
                continue
            if best is None or chk.max_ratio < best.max_ratio:
                best = chk
        if best is not None:
            return best
    return None
