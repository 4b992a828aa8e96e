r"""The one call pipeline: validate → encode → execute & collect → decode → guard → report.

Every coded product of the library runs through this module:
:func:`gpucoded.coded_matmul`, :func:`gpucoded.progressive.progressive_matmul` and
:class:`gpucoded.CodedMatrix`. Each step is one function:

1. **validate** (the one call set-up of :mod:`gpucoded.callsetup`: code, default,
   options, worker format and shape, resolved once per call and cached): every option
   is checked before any work; an unknown keyword is a ``TypeError`` listing the valid
   ones; the code is refused if no set of its answers can be decoded accurately in
   the worker format (:func:`gpucoded.guard.check_feasible`, unless
   ``allow_inaccurate=True``);
2. **encode**: :math:`\tilde A_w=\sum_a G_A[w,a]A_a`, :math:`\tilde B_w=\sum_b
   G_B[w,b]B_b` (an operator supplies the side it keeps encoded);
3. **execute & collect** (:func:`collect`): the executor runs the P worker GEMMs;
   each answer is checked (shape, dtype, finiteness) and a bad one is an erasure;
   collection stops when the decode rule is met — or, with ``wait_for_accuracy``,
   when the chosen answer set is predicted accurate or the waiting budget is spent;
4. **decode** (:func:`decode`): the code's weights for the chosen set S, with the
   a-priori bound in the worker format (the executor's
   :meth:`~gpucoded.executors.base.Executor.compute_format`) and the tight
   :math:`\rho_A=\sqrt p\max_v\|A_{v,:}\|_2`, :math:`\rho_B=\sqrt t\max_w\|B_{:,w}\|_2`;
5. **guard** (:func:`gpucoded.guard.check_accuracy`): the product's measured error
   (``check="probes"``, :mod:`gpucoded.probes`) against a lower bound on
   :math:`\max|AB|`, or the decode's model estimate against :math:`\max|\hat C|`
   (``check=None``), warn / raise / ignore;
6. **report**: a :class:`CallInfo`.

On the device (CuPy operands, no ``verify``/``wait_for_accuracy``) a call synchronises
the host once: the operands' norms and means (:func:`device_norms`), the answers'
finiteness sums and the probes' statistics are reduced on the device and come back in
one transfer after the decode is queued (:func:`decode_on_device`, :func:`resolve`);
the decisions that need them — NaN/Inf operands refused, a non-finite answer erased
(then collection goes on as on the host), the bounds and the guard — follow it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import guard, probes
from .backend import array_module, is_cupy_array
from .callsetup import CALL_OPTIONS, Call, check_call, fit_code, resolve_code
from .codes import Code, DecodeInfo
from .errors import NotEnoughAnswersError
from .executors.base import Executor, Run
from .formats import Format
from .hedging import HedgePolicy, HedgeReport, run_tasks, task_stacks
from .integrity import (
    IntegrityReport,
    answer_problem,
    drop_nonfinite,
    verify_decode,
    verify_ready,
)

__all__ = [
    "CALL_OPTIONS",
    "Call",
    "CallInfo",
    "check_call",
    "collect",
    "decode",
    "fit_code",
    "operand_means",
    "operand_norms",
    "resolve_code",
    "run_product",
]



@dataclass
class CallInfo:
    """Diagnostics of one coded product.

    Attributes
    ----------
    code : Code
    answered : list of int
        Workers whose answers arrived, in arrival order (including unused late ones
        that arrived before the decode started).
    used : tuple of int
        Workers whose answers were decoded.
    erased : dict
        Worker -> reason (failed, raised, lost, never answered).
    abandoned : list of int
        Workers not waited for: the decode started without their answers.
    worker_times : dict
        Worker -> (start, end) seconds since the run started.
    encode_time, time_to_decode, decode_time, total_time : float
        Seconds. ``time_to_decode``: from the start of the run until enough answers
        were in.
    decode : DecodeInfo
        Condition number and a-priori error bound of the decode.
    format : str
        Worker number format the bounds and the guard assume.
    accuracy : float or None
        The guard's relative error estimate :math:`e/\\max|\\hat C|`
        (:mod:`gpucoded.guard`).
    selection : str
        How the decoded answer set was chosen (first arrivals, best-conditioned
        subset of those in hand, after waiting for more, ...).
    """

    code: Code
    answered: list[int] = field(default_factory=list)
    used: tuple[int, ...] = ()
    erased: dict[int, str] = field(default_factory=dict)
    abandoned: list[int] = field(default_factory=list)
    worker_times: dict[int, tuple[float, float]] = field(default_factory=dict)
    encode_time: float = 0.0
    time_to_decode: float = 0.0
    decode_time: float = 0.0
    total_time: float = 0.0
    decode: DecodeInfo | None = None
    #: NaN/Inf in the inputs (``nonfinite="propagate"``): the result is not meaningful.
    nonfinite_input: bool = False
    #: ``verify=...``: the consistency check (:mod:`gpucoded.integrity`).
    integrity: IntegrityReport | None = None
    format: str = ""
    accuracy: float | None = None
    selection: str = ""
    #: ``code="hedged"``: which tasks were re-issued to which spare and when, the
    #: winners, the cancelled copies and the bytes handed to spares
    #: (:class:`gpucoded.hedging.HedgeReport`); None for codes.
    hedge: HedgeReport | None = None
    #: ``check="probes"``: the measured error (:class:`gpucoded.probes.Measured`)
    measured: probes.Measured | None = None

    @property
    def error_bound(self) -> float | None:
        """A-priori bound on ``max|C - AB|``; with ``verify``, the verified bound."""
        if self.integrity is not None and self.integrity.error_bound is not None:
            return self.integrity.error_bound
        return None if self.decode is None else self.decode.error_bound

    @property
    def cond(self) -> float | None:
        return None if self.decode is None else self.decode.cond


def operand_norms(code: Code, A: Any, B: Any) -> tuple[float, float]:
    r"""(ρ_A, ρ_B) for the a-priori bound.

    :math:`\rho_A=\sqrt p\max_v\|A_{v,:}\|_2`, :math:`\rho_B=\sqrt t\max_w\|B_{:,w}\|_2`.

    Every entry of a worker product and of the interpolation error is a bilinear form
    in :math:`x_a=\|A_a[v,:]\|` and :math:`y_b=\|B_b[:,w]\|`, and
    :math:`\sum_a x_a^2` sums p pieces of rows of A (at most :math:`p\max_v\|A_{v,:}\|^2`),
    so these replace :math:`\|A\|_F\|B\|_F` in the bounds; for an n×n matrix
    with balanced rows they are about :math:`\sqrt{p/n}` times smaller.
    """
    return row_norm(code, A), col_norm(code, B)


def operand_means(A: Any, B: Any) -> tuple[float, float]:
    r"""(μ_A, μ_B): the largest absolute row mean of A and column mean of B.

    The mean part of the block products (:meth:`DecodeWeights.estimate
    <gpucoded.codes.decoding.DecodeWeights.estimate>`): non-centred operands
    (pixels, counts, probabilities) give every block product an entry of about
    :math:`c_b\mu_A\mu_B`, which adds coherently through the decode.

    Real NumPy operands: the sums' largest and smallest over the dimension, no |·|
    temporary and no ``mean`` wrapper (8.6 µs against 18.6 µs at 32×32); NaN/Inf
    propagate.
    """
    if type(A) is np.ndarray and type(B) is np.ndarray and A.dtype.kind == B.dtype.kind == "f":
        return (
            _abs_extreme(A.sum(axis=1)) / max(A.shape[1], 1),
            _abs_extreme(B.sum(axis=0)) / max(B.shape[0], 1),
        )
    xp = array_module(A)
    return float(xp.abs(A.mean(axis=1)).max()), float(xp.abs(B.mean(axis=0)).max())


def _abs_extreme(v: np.ndarray) -> float:
    """max|v| of a real vector from its max and min (NaN if v has one; 0 when empty)."""
    if v.size == 0:
        return 0.0
    hi = float(v.max())
    return max(hi, -float(v.min())) if hi == hi else hi


def row_norm(code: Code, A: Any) -> float:
    r""":math:`\rho_A=\sqrt p\max_v\|A_{v,:}\|_2` (the A side of :func:`operand_norms`)."""
    return max_norm(A, 1) * code.grid.p**0.5


def col_norm(code: Code, B: Any) -> float:
    r""":math:`\rho_B=\sqrt t\max_w\|B_{:,w}\|_2` (the B side of :func:`operand_norms`)."""
    return max_norm(B, 0) * code.grid.t**0.5


def max_norm(X: Any, axis: int) -> float:
    """The largest 2-norm of X's rows (``axis=1``) or columns (``axis=0``); NaN or inf
    when X has a NaN or an inf.

    A real NumPy matrix takes one pass (``einsum`` of X with itself: no |X|² temporary,
    as ``numpy.linalg.norm`` makes); the sum of squares is the same unscaled one.
    """
    if type(X) is np.ndarray and X.dtype.kind == "f":
        sq = np.einsum("ij,ij->i" if axis == 1 else "ij,ij->j", X, X)
        return math.sqrt(float(sq.max()))
    return float(array_module(X).linalg.norm(X, axis=axis).max())


# ------------------------------------------------------------ 3. execute & collect
def erasure_reason(error: BaseException) -> str:
    """Why a worker's answer is missing, from the exception its run delivered."""
    kind = type(error).__name__
    if kind in ("FutureCancelledError", "CancelledError", "KilledWorker"):
        return f"worker lost ({kind}: its Dask worker died or left the cluster)"
    return f"raised {error!r}"


def answers_in(
    run: Run,
    info: CallInfo,
    shape: tuple[int, int],
    dtype: Any,
    finite: bool,
    *,
    defer_device: bool = False,
    defer_host: bool = False,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(worker, product)`` for every usable answer of ``run``, in arrival order.

    Each answer is recorded in ``info``; one that raised, has the wrong shape or dtype,
    or is not finite while the inputs were, is an erasure (``info.erased``). With
    ``defer_device`` the finiteness of device answers is left to
    :func:`~gpucoded.integrity.drop_nonfinite` (one host sync for all of them, called
    by :func:`collect`), not checked here with a sync per answer. With ``defer_host``
    the finiteness of host answers is left to the decode (:func:`decode` with
    ``recheck``): a NaN/Inf answer makes the decoded C non-finite, and only then are
    the answers looked at, so a call does not read every answer once more.
    """
    for ans in run:
        info.answered.append(ans.worker)
        info.worker_times[ans.worker] = (ans.start, ans.end)
        if not ans.ok:
            info.erased[ans.worker] = erasure_reason(ans.error)
            continue
        host = defer_host and type(ans.product) is np.ndarray
        bad = answer_problem(
            ans.product, shape, dtype, check_finite=finite and not host, defer_device=defer_device
        )
        if bad:
            info.erased[ans.worker] = bad
            continue
        yield ans.worker, ans.product


def collect(
    stream: Iterator[tuple[int, Any]],
    run: Run,
    code: Code,
    call: Call,
    fmt: Format,
    t_run: float,
    erased: dict[int, str] | None = None,
) -> tuple[list[int], list[Any], str]:
    """Gather answers until the decode rule is met; returns (workers, products, note).

    The rule: ``call.answers`` answers (default: as soon as the code can decode), and
    as many as ``call.verify`` needs. With ``call.wait_for_accuracy`` = τ seconds, when
    the best decodable set in hand is predicted inaccurate
    (:func:`gpucoded.guard.accurate_enough` false for
    :func:`gpucoded.guard.choose_answers`), collection goes on until such a set is in
    hand or τ seconds have passed since the rule was first met.

    ``erased`` given: the stream deferred the finiteness check of device answers;
    they are checked here, all at once, each time the rule is met (and at the end),
    and non-finite ones become erasures.
    """
    need = call.answers or 0
    got: list[int] = []
    prods: list[Any] = []
    until = None
    for w, p in stream:
        got.append(w)
        prods.append(p)
        if len(got) < need or not verify_ready(call.verify, code, got):
            continue
        if erased is not None and not drop_nonfinite(got, prods, erased):
            continue  # a device answer was not finite: the rule is no longer met
        if call.wait_for_accuracy is None:
            return got, prods, ""
        S = guard.choose_answers(code, got, fmt, needed=need or code.recovery_threshold)
        if guard.accurate_enough(code, S, fmt):
            return got, prods, "" if until is None else "waited for an accurate set"
        now = time.perf_counter() - t_run
        if until is None:
            until = now + call.wait_for_accuracy
            run.limit(until if call.deadline is None else min(until, call.deadline))
        if now >= until:
            break
    else:
        if erased is not None:
            drop_nonfinite(got, prods, erased)
    note = "" if until is None else (
        f"waited up to {call.wait_for_accuracy} s: no set predicted accurate arrived"
    )
    return got, prods, note


def not_enough(
    code: Code, got: list[int], info: CallInfo, call: Call, pending: list[int]
) -> NotEnoughAnswersError:
    """The error for a run that ended below the code's recovery threshold."""
    for w in pending:
        info.erased.setdefault(w, "no answer")
    late = "" if call.deadline is None else f" by the deadline of {call.deadline} s"
    return NotEnoughAnswersError(
        f"{code!r} needs {code.recovery_threshold} answers; only {len(got)} "
        f"usable arrived{late} (workers {sorted(got)}); erased: {info.erased}",
        needed=code.recovery_threshold,
        answered=got,
        erased=info.erased,
    )


# ------------------------------------------------------------------- 4. decode
@dataclass
class Operands:
    """What the decode needs to know about the operands of one product."""

    shape: tuple[int, int]  # of C
    norms: tuple[float, ...]  # ρ_A, ρ_B (then μ_A, μ_B of operand_means where computed)
    inner: int  # worker inner dimension cb
    real: bool
    finite: bool
    dtype: Any  # of the result
    A: Any = None  # the operands themselves, for the measured check (gpucoded.probes)
    B: Any = None
    #: device operands with ``nonfinite="raise"``: ``finite`` is confirmed by the norms
    #: once they arrive (:func:`resolve`), and NaN/Inf are refused then
    confirm: bool = False
    #: probes already multiplied by a shared operand (:class:`gpucoded.probes.FixedSide`,
    #: a CodedMatrix's): the measured check then reads only the other operand and C
    fixed: Any = None

    @functools.cached_property
    def reference(self) -> Any:
        """The exact product AB in float64 of small host operands
        (:func:`gpucoded.probes.exact_reference`; None otherwise), computed once per call
        and shared by the decoder's measured choice and the accuracy check. None with
        ``fixed`` probes: the check of a shared operand's products does not read it."""
        if self.A is None or self.fixed is not None:
            return None
        return probes.exact_reference(self.A, self.B)

    @property
    def pending(self) -> bool:
        """Some of ``norms`` are still device scalars (not yet transferred)."""
        return any(is_cupy_array(v) for v in self.norms)


def select(code: Code, got: list[int], fmt: Format, call: Call, note: str) -> tuple[list, str]:
    """The answer set to decode among ``got`` and a sentence saying how it was chosen."""
    if call.verify is not None:
        return list(got), "all answers in hand (verify cross-checks them)"
    need = call.answers or code.recovery_threshold
    S = list(guard.choose_answers(code, got, fmt, needed=need))
    if len(S) == len(got) and len(got) > need:
        how = f"all {len(S)} answers in hand"
    elif sorted(S) == sorted(got[: len(S)]):
        how = f"first {len(S)} arrivals"
    else:
        how = f"{len(S)} of {len(got)} answers in hand (predicted most accurate)"
    return S, how + (f"; {note}" if note else "")


def decode(
    code: Code,
    got: list[int],
    prods: list[Any],
    ops: Operands,
    call: Call,
    fmt: Format,
    info: CallInfo,
    *,
    recheck: tuple[list[int], list[Any]] | None = None,
) -> Any | None:
    """Decode the chosen answers, then apply the accuracy guard; fills ``info``.

    ``recheck``: the caller's (workers, products) lists, whose finiteness was not checked
    on arrival (:func:`answers_in` with ``defer_host``). A NaN/Inf answer makes C
    non-finite, which the guard's pass over C sees (the measured check's max|Ĉ|, or
    max|Ĉ| itself); only then are the decoded answers looked at, and the non-finite ones
    erased (``info.erased``) and dropped from those lists: None is returned and the
    caller collects on. A non-finite C from finite answers (an overflow in the decode)
    goes to the guard as before.
    """
    if ops.pending:
        resolve(ops)
    t1 = time.perf_counter()
    kw = {"shape": ops.shape, "norms": ops.norms, "inner": ops.inner, "real": ops.real}
    if call.verify is not None and ops.finite:
        xp = array_module(prods[0])
        C, dinfo, info.integrity, used = verify_decode(
            code, xp.stack(prods), got, mode=call.verify, fmt=fmt, **kw
        )
        info.erased.update({w: "corrupt answer (excluded)" for w in info.integrity.excluded})
    else:
        if call.verify is not None:
            info.integrity = IntegrityReport(mode=call.verify, reason="inputs are not finite")
        cached = code.weights_cached(got, fmt=fmt)  # before the look-up below solves
        dw = code.decode_weights(got, fmt=fmt)
        guard.check_weights(code, dw, fmt)  # overflow: refuse
        # decoder "auto": the cached candidates are measured on the operands (check="probes")
        measure = call.check == "probes" and ops.finite and ops.A is not None
        data = (ops.A, ops.B, ops.reference) if measure else None
        # unchecked answers (recheck): a NaN/Inf one is found from C below, not warned of
        # by NumPy here; a decode that overflows is the guard's to flag
        with np.errstate(invalid="ignore", over="ignore") if recheck else _NO_CONTEXT:
            C, dinfo = code.decode(
                prods, got, return_info=True, fmt=fmt, weights=dw, data=data, **kw
            )  # fmt: skip
        dinfo.cached = cached
        used = tuple(got)
    if C.dtype != ops.dtype:
        C = C.astype(ops.dtype)
    info.decode_time = time.perf_counter() - t1
    measured = scale = None
    if ops.finite:  # the guard's pass over C, here so that recheck can read it first
        if call.check == "probes" and ops.A is not None:
            measured = probes.measure(C, ops.A, ops.B, fixed=ops.fixed, reference=ops.reference)
        else:
            scale = absmax(C)
    if recheck is not None:
        top = measured.result_max if measured is not None else scale
        if top is not None and not math.isfinite(top):
            if _drop_nonfinite(got, prods, info, recheck):
                return None
    info.used, info.decode, info.format = tuple(used), dinfo, fmt.name
    info.accuracy = apply_guard(
        C, dinfo, code, fmt, call, ops.finite, info.integrity, ops=ops, info=info,
        measured=measured, scale=scale,
    )  # fmt: skip
    return C


def _drop_nonfinite(
    S: list[int], used: list[Any], info: CallInfo, lists: tuple[list[int], list[Any]]
) -> bool:
    """Erase the non-finite answers among ``used`` (from workers S), dropping them from the
    caller's (workers, products) ``lists``; True if there was one."""
    workers, products = lists
    bad = [w for w, p in zip(S, used, strict=True) if not bool(np.isfinite(p).all())]
    for w in bad:
        info.erased[w] = "non-finite answer (NaN/Inf) from finite inputs"
        i = workers.index(w)
        del workers[i], products[i]
    return bool(bad)


def apply_guard(
    C: Any, dinfo: DecodeInfo, code: Code, fmt: Format, call: Call, finite: bool,
    integrity: IntegrityReport | None = None, *, ops: Operands | None = None,
    info: CallInfo | None = None, measured: probes.Measured | None = None,
    scale: float | None = None,
) -> float | None:  # fmt: skip
    """:func:`gpucoded.guard.check_accuracy` on the measured error, or the model's.

    With ``call.check == "probes"`` and the operands in ``ops``, the error of C is
    measured (:func:`gpucoded.probes.measure`: a few probes, the scale from them and
    :math:`\\max|\\hat C|`, one transfer of four numbers on the GPU) and recorded in
    ``info.measured``; otherwise the scale is :math:`\\max|\\hat C|` (one reduction).
    With non-finite inputs (``nonfinite="propagate"``) there is nothing to guard.
    With ``verify``, a verified bound at least as large as :math:`\\max|\\hat C|`
    (:func:`gpucoded.guard.bound_exceeds_result`: the check vouches for no digit) is
    flagged too, through the same ``on_inaccurate`` channel, and recorded in the
    integrity report (``bound_exceeds_result``). ``measured`` given: the check was
    made already (the device path's one transfer, :func:`decode_on_device`); ``scale``
    given: :math:`\\max|\\hat C|` was taken already (:func:`decode`).
    """
    if not finite:
        return None
    if measured is None and call.check == "probes" and ops is not None and ops.A is not None:
        measured = probes.measure(C, ops.A, ops.B, fixed=ops.fixed, reference=ops.reference)
    if measured is not None:
        scale = measured.result_max
        if info is not None:
            info.measured = measured
    elif scale is None:
        scale = absmax(C)
    rel = guard.check_accuracy(
        dinfo, scale, code=code, fmt=fmt, on_inaccurate=call.on_inaccurate,
        measured=measured,
    )  # fmt: skip
    if integrity is not None and guard.bound_exceeds_result(integrity.error_bound, scale):
        integrity.bound_exceeds_result = True
        guard.flag(
            f"verify={integrity.mode!r}: the verified error bound {integrity.error_bound:.3g} "
            f"is not below max|C| = {scale:.3g}, so the check vouches for no digit of the "
            f"result ({code!r}, answers {list(dinfo.workers)}). "
            + guard.suggest_fix(code, fmt, dinfo),
            call.on_inaccurate, estimate=rel,
        )  # fmt: skip
    return rel


def operands(
    code: Code, A: Any, B: Any, finite: bool, norms: tuple | None = None, *,
    confirm: bool = False,
) -> Operands:  # fmt: skip
    """The :class:`Operands` of the 2-D product A·B (ρ norms unless given; the means of
    :func:`operand_means` unless given, an O(nk + kl) pass like the norms).

    Device operands: the norms and means not given are reduced on the device and
    left there (:func:`device_norms`; given ones may be device scalars too) until
    :func:`resolve` brings them back with the call's other scalars in one transfer.
    ``confirm``: ``finite`` is an assumption (``nonfinite="raise"``) that
    :func:`resolve` checks on the norms, refusing NaN/Inf then.
    """
    if is_cupy_array(A):
        norms = device_norms(code, A, B, norms)
    means = operand_means(A, B) if norms is None or len(norms) < 4 else tuple(norms[2:4])
    n, k = A.shape
    l = B.shape[1]
    return Operands(
        shape=(n, l),
        norms=(*(operand_norms(code, A, B) if norms is None else norms[:2]), *means),
        inner=code.grid.block_dims(n, k, l)[1],
        real=A.dtype.kind != "c" and B.dtype.kind != "c",
        finite=finite,
        dtype=np.result_type(A.dtype, B.dtype),
        A=A,
        B=B,
        confirm=confirm,
    )


def device_norms(code: Code, A: Any, B: Any, given: tuple | None = None) -> tuple:
    r"""(ρ_A, ρ_B, μ_A, μ_B) of device operands as device scalars (no transfer).

    The same quantities as :func:`operand_norms` and :func:`operand_means` (NaN or
    inf when an operand has a NaN or an inf); entries of ``given`` (host floats or
    device scalars) are kept, the others reduced on the current stream.
    """
    xp = array_module(A, B)
    given = tuple(given or ())
    make = (
        lambda: xp.linalg.norm(A, axis=1).max() * code.grid.p**0.5,
        lambda: xp.linalg.norm(B, axis=0).max() * code.grid.t**0.5,
        lambda: xp.abs(A.mean(axis=1)).max(),
        lambda: xp.abs(B.mean(axis=0)).max(),
    )
    return tuple(
        given[i] if i < len(given) and given[i] is not None else f() for i, f in enumerate(make)
    )


def resolve(ops: Operands, *extra: Any) -> list[np.ndarray]:
    """Bring ``ops``'s device norms and the device arrays ``extra`` to the host in one
    transfer (:func:`gpucoded.gpu.fetch_together`); returns the host values of
    ``extra``. With ``ops.confirm``, operands whose norms are not finite are looked
    at entrywise (a sum of squares may overflow) and NaN/Inf refused with the error
    :func:`gpucoded.validate.check_operands` gives.
    """
    from .gpu import fetch_together

    dev = [i for i, v in enumerate(ops.norms) if is_cupy_array(v)]
    host = fetch_together([ops.norms[i] for i in dev] + list(extra))
    norms = list(ops.norms)
    for i, h in zip(dev, host, strict=False):
        norms[i] = float(h[0])
    ops.norms = tuple(norms)
    if ops.confirm:
        ops.confirm = False
        if not math.isfinite(sum(ops.norms[:2])):
            from .validate import check_operands

            check_operands(ops.A, ops.B, nonfinite="raise")  # names the operand
    return host[len(dev) :]


absmax = probes.absmax  # max|C| (NaN if C has one): the guard's scale without probes


_NO_CONTEXT = contextlib.nullcontext()

# ------------------------------------------------------------------ the pipeline
Encoder = Callable[[], tuple[Any, Any]]


def refuse_unreachable(code: Code, call: Call) -> None:
    """Raise :class:`NotEnoughAnswersError` when the answers that can still arrive (not
    ``failed``, no infinite delay) cannot satisfy the code or ``answers=``."""
    never = {w for w in range(code.P) if call.delays is not None and math.isinf(call.delays[w])}
    gone = set(call.failed) | never
    live = [w for w in range(code.P) if w not in gone]
    if code.can_decode(live) and len(live) >= (call.answers or 0):
        return
    need = max(call.answers or 0, code.recovery_threshold)
    raise NotEnoughAnswersError(
        f"{code!r} needs {need} answers, but only {len(live)} of its P={code.P} workers "
        f"can answer ({len(call.failed)} failed, {len(never)} never answer); nothing was "
        "started: use more workers (P=...), a smaller m, or fewer failures",
        needed=need,
        answered=[],
        erased={w: "failed" if w in call.failed else "never answers" for w in sorted(gone)},
    )


def start(
    code: Code, encode: Encoder, executor: Executor, call: Call, fmt: Format, info: CallInfo
) -> tuple[Run, Any, Any]:
    """Encode, and start the workers that are not ``failed``.

    A run that cannot reach the decode rule even if every other worker answers (too
    many ``failed`` or never-answering workers, ``answers=`` above what can arrive) is
    refused here, before anything is encoded or started.
    """
    refuse_unreachable(code, call)
    t0 = time.perf_counter()
    At, Bt = encode()
    info.encode_time = time.perf_counter() - t0
    info.erased.update({w: "failed" for w in sorted(call.failed)})
    workers = [w for w in range(code.P) if w not in call.failed]
    info.time_to_decode = time.perf_counter()  # the run's start; a duration once collected
    run = executor.start(At, Bt, workers=workers, delays=call.delays, timeout=call.deadline)
    return run, At, Bt


def run_product(
    code: Code,
    encode: Encoder,
    ops: Operands,
    executor: Executor,
    call: Call,
    fmt: Format,
    t_start: float | None = None,
) -> tuple[Any, CallInfo]:
    """One coded product through every step of the pipeline; returns (C, CallInfo).

    ``code`` and ``fmt`` come from :func:`fit_code`. ``encode()`` returns the encoded
    stacks (P, rb, cb), (P, cb, db), or an executor's placed blocks for a side an
    operator keeps encoded.
    """
    t_start = time.perf_counter() if t_start is None else t_start
    if code.hedged:  # trait of codes.Hedged: tasks, not a decode rule
        return run_hedged(code, encode, ops, executor, call, fmt, t_start)
    # device operands, plain call: every per-call scalar comes back in one transfer at
    # the end (decode_on_device); other calls decide on the norms before any worker runs
    deferred = ops.pending and call.verify is None and call.wait_for_accuracy is None
    if ops.pending and not deferred:
        resolve(ops)
    info = CallInfo(code=code, nonfinite_input=not ops.finite)
    run, At, Bt = start(code, encode, executor, call, fmt, info)
    # host answers of a run with nothing in flight between reads (serial, inline), plain
    # call: their finiteness is read from the decoded C (decode's recheck), not from a
    # pass over each answer; the decode runs before the run ends, so that a non-finite
    # answer found then can be replaced by a later one. A run with workers in the
    # background is cancelled first and checks each answer as it arrives, as before.
    host_defer = (
        not run.background and not ops.pending and ops.finite and call.verify is None
        and call.wait_for_accuracy is None
    )  # fmt: skip
    shape = (At.shape[1], Bt.shape[2])
    t_run = info.time_to_decode
    C = None
    with run:
        stream = answers_in(
            run, info, shape, stack_dtype(code, ops.dtype), ops.finite, defer_device=True,
            defer_host=host_defer,
        )  # fmt: skip
        erased = info.erased if ops.finite and not deferred and not host_defer else None
        got, prods, note = collect(stream, run, code, call, fmt, t_run, erased)
        info.time_to_decode = time.perf_counter() - t_run
        if host_defer and code.can_decode(got):
            S, info.selection = select(code, got, fmt, call, note)
            pos = {w: i for i, w in enumerate(got)}
            used = [prods[pos[w]] for w in S]
            C = decode(code, S, used, ops, call, fmt, info, recheck=(got, prods))
            if C is None:  # an answer was not finite (dropped): collect on, checking each
                again = zip(list(got), list(prods), strict=True)
                got, prods, note = collect(
                    itertools.chain(again, stream), run, code, call, fmt, t_run, info.erased
                )
                info.time_to_decode = time.perf_counter() - t_run
        elif deferred and code.can_decode(got):
            S, info.selection = select(code, got, fmt, call, note)
            C = decode_on_device(code, S, got, prods, ops, call, fmt, info)
            if C is None:  # an answer was not finite (dropped): collect on as before
                again = zip(list(got), list(prods), strict=True)
                got, prods, note = collect(
                    itertools.chain(again, stream), run, code, call, fmt, t_run, info.erased
                )
                info.time_to_decode = time.perf_counter() - t_run
    pending = [w for w in range(code.P) if w not in call.failed and w not in info.answered]
    if C is None:
        if not code.can_decode(got):
            if ops.pending:
                resolve(ops)  # NaN/Inf inputs are refused as such, not as lost answers
            raise not_enough(code, got, info, call, pending)
        S, info.selection = select(code, got, fmt, call, note)
        pos = {w: i for i, w in enumerate(got)}
        C = decode(code, S, [prods[pos[w]] for w in S], ops, call, fmt, info)
    info.abandoned = pending
    info.total_time = time.perf_counter() - t_start
    return C, info


def decode_on_device(
    code: Code, S: list[int], got: list[int], prods: list[Any], ops: Operands, call: Call,
    fmt: Format, info: CallInfo,
) -> Any | None:  # fmt: skip
    """:func:`decode` for device answers whose checks were deferred: one host sync.

    The decode and the probes are queued, the answers' finiteness sums reduced on the
    device, and all of it comes back with the operands' norms in one transfer
    (:func:`resolve`); the decisions follow: NaN/Inf inputs refused (``confirm``), a
    non-finite answer from finite inputs erased — then None is returned, ``got`` and
    ``prods`` have lost it and the caller collects on — else the bounds, the guard and
    ``info`` as :func:`decode` fills them. Returns C.
    """
    pos = {w: i for i, w in enumerate(got)}
    used = [prods[pos[w]] for w in S]
    xp = array_module(used[0])
    t1 = time.perf_counter()
    cached = code.weights_cached(S, fmt=fmt)
    dw = code.decode_weights(S, fmt=fmt)
    guard.check_weights(code, dw, fmt)  # overflow: refuse
    kw = {"shape": ops.shape, "inner": ops.inner, "real": ops.real}
    # the bounds need the norms: after the transfer (DecodeInfo.of below); decoder
    # "auto" with candidate weights measures them on the operands (one more transfer,
    # only for such sets: gpucoded.codes.datachoice)
    measure = call.check == "probes" and ops.finite and ops.A is not None
    data = (ops.A, ops.B) if measure and dw.alternatives else None
    C, d0 = code.decode(used, S, return_info=True, fmt=fmt, weights=dw, data=data, **kw)
    if C.dtype != ops.dtype:
        C = C.astype(ops.dtype)
    decode_time = time.perf_counter() - t1
    sums = xp.stack([p.sum() for p in used])  # NaN/Inf in an answer make its sum non-finite
    sums = xp.abs(sums) if sums.dtype.kind == "c" else sums  # NaN/Inf in either part
    probing = None
    if ops.finite and call.check == "probes" and ops.A is not None:
        probing = probes.start(C, ops.A, ops.B)
    extra = [sums] if probing is None else [sums, probing.stats]
    host = resolve(ops, *extra)  # the call's one host synchronisation
    if ops.finite:
        bad = [k for k, v in enumerate(host[0]) if not math.isfinite(v)]
        bad = [k for k in bad if not bool(xp.isfinite(used[k]).all())]  # overflowed sums
        if bad:
            for w in (S[k] for k in bad):
                info.erased[w] = "non-finite answer (NaN/Inf) from finite inputs"
                i = got.index(w)
                del got[i], prods[i]
            return None
    applied = next((c for c in (dw, *dw.alternatives) if c.rule == d0.rule), dw)
    dinfo = DecodeInfo.of(
        applied, workers=S, dtype=used[0].dtype, shape=C.shape,
        norms=ops.norms, inner=ops.inner, cached=cached, weights_time=d0.weights_time,
        decode_time=d0.decode_time,
    )  # fmt: skip
    dinfo.scores, dinfo.choice = d0.scores, d0.choice
    info.decode_time = decode_time
    info.used, info.decode, info.format = tuple(S), dinfo, fmt.name
    measured = None if probing is None else probing.finish(host[1])
    if measured is not None:
        info.measured = measured
    info.accuracy = apply_guard(
        C, dinfo, code, fmt, call, ops.finite, ops=ops, info=info, measured=measured
    )
    return C


def run_hedged(
    code: Code, encode: Encoder, ops: Operands, executor: Executor, call: Call, fmt: Format,
    t_start: float,
) -> tuple[Any, CallInfo]:  # fmt: skip
    """:func:`run_product` for ``code="hedged"``: the m tasks through
    :func:`gpucoded.hedging.run_tasks`, then the sum of the winners (``Uncoded``'s
    decode, bounds and guard). ``answers``/``verify`` need a code's redundant
    answers and are refused; ``wait_for_accuracy`` has nothing to wait for (exact)."""
    for opt in ("answers", "verify"):
        if getattr(call, opt) not in (None, code.m):
            raise TypeError(f"{opt}= does not apply to code='hedged' (one answer per task)")
    if ops.pending:
        resolve(ops)
    info = CallInfo(code=code, nonfinite_input=not ops.finite)
    t0 = time.perf_counter()
    At, Bt = encode()
    info.encode_time = time.perf_counter() - t0
    info.erased.update({w: "failed" for w in sorted(call.failed)})
    shape, dt = (At.shape[1], Bt.shape[2]), stack_dtype(code, ops.dtype)
    m = code.m  # rows m..P-1 (the static view's spare copies) are not sent up front
    out = run_tasks(
        executor, *task_stacks(At, Bt, m), code.P, policy=HedgePolicy(code.hedge_after),
        delays=call.delays, failed=call.failed, deadline=call.deadline,
        check=lambda p: answer_problem(p, shape, dt, check_finite=ops.finite),
    )  # fmt: skip
    info.time_to_decode = out.report.task_time
    info.answered, info.worker_times, info.hedge = out.answered, out.worker_times, out.report
    info.erased.update(out.erased)
    if not out.complete:
        missing = [j for j, p in enumerate(out.products) if p is None]
        late = "" if call.deadline is None else f" by the deadline of {call.deadline} s"
        raise NotEnoughAnswersError(
            f"{code!r}: task(s) {missing} had no usable answer{late} and no spare was left "
            f"(re-issued: {out.report.reissued}); erased: {info.erased}. Use more spares "
            "(P=...), a later deadline or hedge_after=",
            needed=code.m, answered=sorted(out.report.winners), erased=info.erased,
        )  # fmt: skip
    winners = out.report.winners
    info.abandoned = sorted(
        w for w in range(code.P) if w not in call.failed and w not in info.answered
        and (w < code.m or any(r.worker == w for r in out.report.reissued))
    )  # fmt: skip
    C = decode(code.tasks, list(range(code.m)), out.products, ops, call, fmt, info)
    info.used = tuple(winners[j] for j in range(code.m))
    n_re = len(out.report.reissued)
    info.selection = f"one answer per task ({n_re} task cop{'y' if n_re == 1 else 'ies'} re-issued)"
    info.total_time = time.perf_counter() - t_start
    return C, info


def stack_dtype(code: Code, dtype: Any) -> np.dtype:
    """Dtype of the encoded stacks and answers for operands of result dtype ``dtype``."""
    return code.work_dtype(dtype)


def progressive(
    code: Code,
    encode: Encoder,
    ops: Operands,
    executor: Executor,
    call: Call,
    fmt: Format,
    until_exact: bool = True,
) -> Iterator[tuple[Any, DecodeInfo]]:
    """The pipeline with a decode (and guard) after the threshold and every later answer.

    Yields ``(C, DecodeInfo)``; stops at the first exact decode when ``until_exact``.
    Never worse with an answer: a decode can ignore answers, so when the set of all
    answers so far has a larger a-priori bound than the best set decoded before, the
    best one is yielded again (the reported bound is non-increasing).
    """
    if code.hedged:
        raise TypeError("code='hedged' gives one exact result: use coded_matmul, not progressive")
    import dataclasses

    quiet = dataclasses.replace(call, on_inaccurate="ignore", check=None)
    if ops.pending:
        resolve(ops)
    best: tuple[Any, DecodeInfo, float] | None = None
    info = CallInfo(code=code, nonfinite_input=not ops.finite)
    run, At, Bt = start(code, encode, executor, call, fmt, info)
    shape = (At.shape[1], Bt.shape[2])
    got: list[int] = []
    prods: list[Any] = []
    t0 = time.perf_counter()
    with run:
        for w, p in answers_in(run, info, shape, stack_dtype(code, ops.dtype), ops.finite):
            got.append(w)
            prods.append(p)
            if not code.can_decode(got):
                continue
            C = decode(code, list(got), list(prods), ops, quiet, fmt, info)
            d = info.decode
            bound = math.inf if d.error_bound is None else d.error_bound
            if best is not None and not bound <= best[2]:
                C, d = best[0], best[1]  # this answer made it worse: keep the best set
            else:
                info.accuracy = apply_guard(C, d, code, fmt, call, ops.finite, ops=ops, info=info)
                best = (C, d, bound)
            yield C, d
            if until_exact and d.interp_bound == 0:
                return
    if not code.can_decode(got):
        err = not_enough(code, got, info, call, [])
        err.args = (f"{err.args[0]} after {time.perf_counter() - t0:.3g} s",)
        raise err
