r"""``coded_matmul``: validate → encode → execute → decode → result.

.. math:: C = AB \text{ from the first answers of } P \text{ coded workers.}
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backend import array_module
from .codes import Code, DecodeInfo, make_code
from .errors import NotEnoughAnswersError
from .executors import get_executor
from .executors.base import check_delays
from .integrity import (
    IntegrityReport,
    answer_problem,
    drop_nonfinite,
    verify_decode,
    verify_ready,
)
from .validate import check_count, check_operands, inputs_finite

__all__ = ["CallInfo", "coded_matmul"]


@dataclass
class CallInfo:
    """Diagnostics of one ``coded_matmul`` call.

    Attributes
    ----------
    code : Code
    answered : list of int
        Workers whose answers arrived, in arrival order (including unused late ones
        that arrived before the decode started).
    used : tuple of int
        Workers whose answers were decoded.
    erased : dict
        Worker -> reason (failed, raised, never answered).
    abandoned : list of int
        Workers not waited for: the decode started without their answers.
    worker_times : dict
        Worker -> (start, end) seconds since the run started.
    encode_time, time_to_decode, decode_time, total_time : float
        Seconds. ``time_to_decode``: from the start of the run until enough answers
        were in.
    decode : DecodeInfo
        Condition number and a-priori error bound of the decode.
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

    @property
    def error_bound(self) -> float | None:
        """A-priori bound on ``max|C - AB|``; with ``verify``, the verified bound."""
        if self.integrity is not None and self.integrity.error_bound is not None:
            return self.integrity.error_bound
        return None if self.decode is None else self.decode.error_bound

    @property
    def cond(self) -> float | None:
        return None if self.decode is None else self.decode.cond


def _resolve_code(
    code: str | Code, m: int | None, P: int | None, options: dict, dtype: Any = None
) -> Code:
    if isinstance(code, Code):
        if options:
            raise TypeError(
                f"code options {sorted(options)} are only accepted with a code name; "
                f"configure the {type(code).__name__} instance instead"
            )
        if m is not None and m != code.m:
            raise ValueError(f"m={m} conflicts with the code's m={code.m}")
        if P is not None and P != code.P:
            raise ValueError(f"P={P} conflicts with the code's P={code.P}")
        return code
    if not isinstance(code, str):
        raise TypeError(f"code must be a code name or a gpucoded.codes.Code, got {type(code)}")
    if code.lower().replace("-", "_") in ("approx_matdot", "approx_polydot") and dtype is not None:
        # tune the default/auto evaluation points for the arithmetic the workers will do
        options.setdefault("dtype", dtype)
    return make_code(code, m=m, P=P, **options)


def coded_matmul(
    A: Any,
    B: Any,
    code: str | Code = "approx_matdot",
    *,
    m: int | None = None,
    P: int | None = None,
    failed: Iterable[int] | None = None,
    delays: Sequence[float] | None = None,
    executor: Any = None,
    answers: int | None = None,
    deadline: float | None = None,
    nonfinite: str = "raise",
    verify: str | None = None,
    return_info: bool = False,
    **code_options: Any,
) -> Any:
    r"""Straggler-tolerant :math:`C = AB` with a coded computation.

    Parameters
    ----------
    A : array (n, k), B : array (k, l)
        NumPy or CuPy arrays (float32, float64, complex). The result has the same
        array type and the inputs' result dtype.
    code : str or Code
        A code instance, or a name from :data:`gpucoded.codes.CODES`
        (``"approx_matdot"`` by default).
    m, P : int
        Storage fraction 1/m and number of workers, when ``code`` is a name. ``m``
        defaults to 2.
    failed : iterable of int
        Workers that never answer.
    delays : sequence of float, length P
        Injected per-worker delay in seconds (``math.inf`` = never answers).
    executor : Executor, str or None
        Where the workers run (see :mod:`gpucoded.executors`).
    answers : int, optional
        Wait for this many answers before decoding (≥ the code's threshold; more
        answers reduce the error of approximate codes). Default: the threshold.
    deadline : float, optional
        Seconds to wait for answers; then decode with what arrived, or raise
        :class:`~gpucoded.errors.NotEnoughAnswersError`.
    nonfinite : {"raise", "propagate"}
        NaN/Inf in the inputs: refuse them, or compute anyway (sets
        ``CallInfo.nonfinite_input``). With finite inputs a NaN/Inf answer, like one of
        the wrong shape or dtype, makes its worker an erasure.
    verify : {None, "warn", "raise", "correct"}
        Cross-check the answers for silent corruption (:mod:`gpucoded.integrity`);
        waits for one answer more than the threshold (``"correct"``: two, to locate
        and exclude a corrupt worker). On an inconsistency: warn
        (:class:`~gpucoded.errors.CorruptionWarning`), raise
        :class:`~gpucoded.errors.CorruptAnswerError`, or exclude the corrupt worker
        and decode from the rest. ``CallInfo.error_bound`` is then the verified bound.
    return_info : bool
        Also return a :class:`CallInfo`.
    **code_options
        Options of the code constructor (``gamma``, ``eps``, ``norm_bound``, ...).

    Returns
    -------
    C : array (n, l), or (C, CallInfo) with ``return_info=True``.

    Raises
    ------
    NotEnoughAnswersError
        Fewer usable answers than the code's recovery threshold.
    """
    t_start = time.perf_counter()
    A, B = check_operands(A, B, nonfinite=nonfinite)
    finite_in = nonfinite == "raise" or inputs_finite(A, B)
    m, P, answers = check_count("m", m), check_count("P", P), check_count("answers", answers)
    for key in ("p", "q", "r"):
        code_options[key] = check_count(key, code_options.get(key))
    code_options = {k: v for k, v in code_options.items() if v is not None}
    verify_ready(verify, None, ())  # refuses an unknown mode before any work
    if isinstance(code, str) and m is None and "p" not in code_options:
        m = 2
    code_obj = _resolve_code(code, m, P, code_options, np_result_dtype(A, B))
    Pn = code_obj.P
    failed_set = set()
    for w in failed or ():
        w = int(w)
        if not 0 <= w < Pn:
            raise ValueError(f"failed worker index {w} out of range [0, {Pn})")
        failed_set.add(w)
    d = check_delays(delays, Pn)
    need = code_obj.recovery_threshold
    if answers is not None:
        if answers < need or answers > Pn:
            raise ValueError(
                f"answers={answers} must be between the recovery threshold {need} and P={Pn}"
            )
        need = answers
    else:
        need = 0  # decode as soon as the code can (replication: every block covered)
    ex = get_executor(executor, like=A)

    n, l = A.shape[0], B.shape[1]
    t0 = time.perf_counter()
    At, Bt = code_obj.encode(A, B)
    info = CallInfo(code=code_obj, encode_time=time.perf_counter() - t0)
    info.nonfinite_input = not finite_in
    info.erased.update({w: "failed" for w in failed_set})
    workers = [w for w in range(Pn) if w not in failed_set]

    got: list[int] = []
    prods: list[Any] = []
    t_run = time.perf_counter()
    with ex.start(At, Bt, workers=workers, delays=d, timeout=deadline) as run:
        for ans in run:
            info.answered.append(ans.worker)
            info.worker_times[ans.worker] = (ans.start, ans.end)
            if not ans.ok:
                info.erased[ans.worker] = f"raised {ans.error!r}"
                continue
            shape = (At.shape[1], Bt.shape[2])
            bad = answer_problem(
                ans.product, shape, At.dtype, check_finite=finite_in, defer_device=True
            )
            if bad:
                info.erased[ans.worker] = bad
                continue
            got.append(ans.worker)
            prods.append(ans.product)
            # device answers: finiteness checked here, all at once (one host sync)
            if len(got) >= need and verify_ready(verify, code_obj, got):
                if not finite_in or drop_nonfinite(got, prods, info.erased):
                    break
        else:
            if finite_in:
                drop_nonfinite(got, prods, info.erased)
    info.time_to_decode = time.perf_counter() - t_run
    pending = [w for w in workers if w not in info.answered]
    if not code_obj.can_decode(got):
        for w in pending:
            info.erased.setdefault(w, "no answer")
        late = "" if deadline is None else f" by the deadline of {deadline} s"
        raise NotEnoughAnswersError(
            f"{code_obj!r} needs {code_obj.recovery_threshold} answers; only {len(got)} "
            f"usable arrived{late} (workers {sorted(got)}); erased: {info.erased}",
            needed=code_obj.recovery_threshold,
            answered=got,
            erased=info.erased,
        )
    info.abandoned = pending
    xp = array_module(At)
    # the host decode reads the answers where they are (no stacked copy); the
    # integrity check indexes subsets of them, so it gets one stack
    products = xp.stack(prods) if verify is not None else prods
    norms = operand_norms(code_obj, A, B)
    t1 = time.perf_counter()
    dec_kw = {"shape": (n, l), "norms": norms, "inner": At.shape[2]}
    dec_kw["real"] = A.dtype.kind != "c" and B.dtype.kind != "c"
    if verify is not None and finite_in:
        out = verify_decode(code_obj, products, got, mode=verify, **dec_kw)
        C, dinfo, info.integrity, got = out
        info.erased.update({w: "corrupt answer (excluded)" for w in info.integrity.excluded})
    else:
        if verify is not None:
            info.integrity = IntegrityReport(mode=verify, reason="inputs are not finite")
        C, dinfo = code_obj.decode(products, got, return_info=True, **dec_kw)
    out_dtype = np_result_dtype(A, B)
    if C.dtype != out_dtype:
        C = C.astype(out_dtype)
    info.decode_time = time.perf_counter() - t1
    info.used = tuple(got)
    info.decode = dinfo
    info.total_time = time.perf_counter() - t_start
    return (C, info) if return_info else C


def operand_norms(code: Code, A: Any, B: Any) -> tuple[float, float]:
    r"""(ρ_A, ρ_B) for the a-priori bound.

    :math:`\rho_A=\sqrt p\max_v\|A_{v,:}\|_2`, :math:`\rho_B=\sqrt t\max_w\|B_{:,w}\|_2`.

    Every entry of a worker product and of the interpolation error is a bilinear form
    in :math:`x_a=\|A_a[v,:]\|` and :math:`y_b=\|B_b[:,w]\|`, and
    :math:`\sum_a x_a^2` sums p pieces of rows of A (at most :math:`p\max_v\|A_{v,:}\|^2`),
    so these replace :math:`\|A\|_F\|B\|_F` in the bounds; for an n×n matrix
    with balanced rows they are about :math:`\sqrt{p/n}` times smaller.
    """
    xp = array_module(A)
    g = code.grid
    ra = float(xp.linalg.norm(A, axis=1).max()) * g.p**0.5
    rb = float(xp.linalg.norm(B, axis=0).max()) * g.t**0.5
    return ra, rb


def np_result_dtype(A: Any, B: Any) -> Any:
    import numpy as np  # noqa: PLC0415

    return np.result_type(A.dtype, B.dtype)
