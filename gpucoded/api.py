r"""``coded_matmul``: :math:`C = AB` from the first answers of P coded workers.

The work is done by the one call pipeline of :mod:`gpucoded.pipeline`
(validate → encode → execute & collect → decode → guard → report).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .backend import is_cupy_array
from .callsetup import deliver, set_up
from .codes import Code
from .matmulplan import check_out, matmul_plan
from .pipeline import CallInfo, operand_norms, operands, run_product
from .validate import _as_array, check_inner, check_operands, empty_product, inputs_finite

__all__ = ["CallInfo", "coded_matmul", "operand_norms"]


def coded_matmul(
    A: Any,
    B: Any,
    code: str | Code | None = None,
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
    check: str | None = "probes",
    return_info: bool = False,
    out: Any = None,
    on_inaccurate: str = "warn",
    allow_inaccurate: bool = False,
    wait_for_accuracy: float | None = None,
    stragglers: int | None = None,
    rtol: float | None = None,
    **code_options: Any,
) -> Any:
    r"""Straggler-tolerant :math:`C = AB` with a coded computation.

    Parameters
    ----------
    A : array (..., n, k) or (k,), B : array (..., k, l) or (k,)
        NumPy or CuPy arrays (float32, float64, complex; bool and integers compute
        in float64, float16 in float32: :func:`gpucoded.validate.working_dtype`;
        an empty operand gives NumPy's zero or empty product), with ``np.matmul``
        semantics: a 1-D operand is a vector (its added axis is dropped from the
        result), stacks broadcast their leading axes (one coded product when one side
        is a single matrix, else one per broadcast pair; see
        :func:`gpucoded.matmulplan.matmul_plan`). The result has the same array type
        and that dtype.
    code : str, Code or None
        A code instance, or a name from :data:`gpucoded.codes.CODES`. Default
        (None): the exact Chebyshev code ``"chebyshev"`` with m=2, P=4 (any one
        worker may fail), which returns A·B to working precision in float32 and
        float64; approximate codes (``"approx_matdot"``, ...) are opt-in.
        ``"auto"``: the code and m with the smallest load per worker whose predicted
        worst-case error meets ``rtol`` with ``stragglers`` of ``P`` workers missing
        (:mod:`gpucoded.autocode`); ``CallInfo.code`` is the choice and
        ``CallInfo.code.auto_choice.explain()`` lists the candidates.
    m, P : int
        Storage fraction 1/m and number of workers, when ``code`` is a name. ``m``
        defaults to 2.
    failed : int or iterable of int
        Workers that never answer (one index or several).
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
        the wrong shape or dtype, makes its worker an erasure. Device (CuPy) operands
        are refused from their norms, which come back with the call's other scalars in
        its one host synchronisation: after the workers ran, nothing returned.
    verify : {None, "warn", "raise", "correct"}
        Cross-check the answers for silent corruption (:mod:`gpucoded.integrity`);
        waits for one answer more than the threshold (``"correct"``: two, to locate
        and exclude a corrupt worker). On an inconsistency: warn
        (:class:`~gpucoded.errors.CorruptionWarning`), raise
        :class:`~gpucoded.errors.CorruptAnswerError`, or exclude the corrupt worker
        and decode from the rest. ``CallInfo.error_bound`` is then the verified bound.
    check : {"probes", None}
        Measure the error of the returned product (:mod:`gpucoded.probes`: 8 random
        probes :math:`\hat Cx-A(Bx)` in float64, or the exact columns when l ≤ 8)
        and let the accuracy guard judge it by that measurement (default); ``None``:
        no measurement, the guard uses the decode's error model.
    return_info : bool
        Also return a :class:`CallInfo` (for a stack computed as several products:
        the one with the largest estimated error).
    out : array, optional
        Filled in place with the result and returned; must have the result's shape
        and dtype and live with the operands (host or the same GPU).
    on_inaccurate : {"warn", "raise", "ignore"}
        What the accuracy guard (:mod:`gpucoded.guard`) does when the measured error
        (``check``) exceeds 1e-2·max|AB| (with ``check=None``: the decode's error
        estimate exceeds 1e-2·max|C|): warn
        (:class:`~gpucoded.errors.InaccurateResultWarning`), raise
        :class:`~gpucoded.errors.InaccurateResultError`, or only report it
        (``CallInfo.accuracy``).
    allow_inaccurate : bool
        Run a code even when no set of its answers can be decoded accurately in the
        worker format (refused with a ``ValueError`` before any worker runs
        otherwise: :func:`gpucoded.guard.check_feasible`).
    wait_for_accuracy : float, optional
        Seconds: when the decodable answers in hand are predicted inaccurate, wait up
        to this long for answers that give an accurate set
        (:func:`gpucoded.guard.choose_answers`); ``CallInfo.selection`` says what
        was decoded.
    stragglers : int, optional
        ``code="auto"``: workers that may not answer (default 1).
    rtol : float, optional
        ``code="auto"``: required :math:`\max|\hat C-AB|/\max|AB|`, predicted from
        the error model and a typical scale of max|AB| (see
        :mod:`gpucoded.autocode` for how, and how tight); default: working precision
        (1000 unit roundoffs of the worker format).
    **code_options
        Options of the code constructor (``gamma``, ``eps``, ``norm_bound``, ...).

    Returns
    -------
    C : array (n, l), or (C, CallInfo) with ``return_info=True``.

    Raises
    ------
    NotEnoughAnswersError
        Fewer usable answers than the code's recovery threshold.
    TypeError
        An unknown keyword (the message lists the valid ones), a non-integer worker
        index.
    InaccurateResultError
        ``on_inaccurate="raise"`` and the result may have fewer than two correct
        digits.

    Examples
    --------
    >>> import numpy as np
    >>> import gpucoded
    >>> rng = np.random.default_rng(0)
    >>> A, B = rng.random((60, 40)), rng.random((40, 30))  # non-negative, not centred
    >>> C = gpucoded.coded_matmul(A, B)  # exact Chebyshev code, m=2, P=4
    >>> bool(np.allclose(C, A @ B))
    True

    Workers 0 and 3 fail; the serial executor makes the arrival order reproducible:

    >>> C, info = gpucoded.coded_matmul(
    ...     A, B, "chebyshev", m=3, P=8, failed=[0, 3], executor="serial", return_info=True
    ... )
    >>> info.used  # the first 2m - 1 = 5 answers
    (1, 2, 4, 5, 6)
    >>> bool(np.allclose(C, A @ B)), bool(info.accuracy < 1e-12)
    (True, True)

    ``code="auto"``: the lightest code whose predicted error meets ``rtol`` when 3 of
    the 8 workers straggle:

    >>> C, info = gpucoded.coded_matmul(
    ...     A, B, "auto", P=8, stragglers=3, rtol=1e-2, executor="serial", return_info=True
    ... )
    >>> info.code.recovery_threshold <= 8 - 3
    True
    >>> bool(np.abs(C - A @ B).max() <= 1e-2 * np.abs(A @ B).max())
    True
    """
    t_start = time.perf_counter()
    check_inner(*(_as_array(n, X) for n, X in (("A", A), ("B", B))))
    if (Z := empty_product(A, B)) is not None:  # NumPy's product, no worker
        check_out(out, Z.shape, Z.dtype, Z)
        Z = Z if out is None else _fill(out, Z)
        info = CallInfo(None, accuracy=0.0, selection="empty product: no worker ran")
        return (Z, info) if return_info else Z
    plan = matmul_plan(A, B)
    # NaN/Inf are looked for in the norms the bound needs anyway (below): one pass
    scan = "propagate" if nonfinite == "raise" else nonfinite
    pairs = [check_operands(A2, B2, nonfinite=scan) for A2, B2 in plan.pairs]
    A0, B0 = pairs[0]
    dtype = np.result_type(A0.dtype, B0.dtype)
    code_options.update(stragglers=stragglers, rtol=rtol)
    setup = set_up(
        code, m, P, code_options, executor=executor, like=A0, dtype=dtype,
        shape=(A0.shape[0], A0.shape[1], B0.shape[1]),
        call_options=dict(
            failed=failed, delays=delays, deadline=deadline, answers=answers,
            nonfinite=nonfinite, verify=verify, check=check, on_inaccurate=on_inaccurate,
            allow_inaccurate=allow_inaccurate, wait_for_accuracy=wait_for_accuracy,
            return_info=return_info, out=out,
        ),
    )  # fmt: skip
    check_out(out, plan.shape, dtype, A0)
    c, call = setup.code, setup.call
    Cs, infos = [], []
    for A2, B2 in pairs:
        if is_cupy_array(A2):  # the norms stay on the device; NaN/Inf refused from them
            ops = operands(c, A2, B2, nonfinite == "raise" or inputs_finite(A2, B2),
                           confirm=nonfinite == "raise")  # fmt: skip
        else:
            norms = operand_norms(c, A2, B2)
            if nonfinite == "raise" and not math.isfinite(norms[0] + norms[1]):
                check_operands(A2, B2, nonfinite="raise")  # names the operand with NaN/Inf
            ops = operands(c, A2, B2, nonfinite == "raise" or inputs_finite(A2, B2), norms)
        C2, info = run_product(
            c, lambda A2=A2, B2=B2: c.encode(A2, B2), ops, setup.executor, call, setup.fmt,
            t_start,
        )  # fmt: skip
        Cs.append(C2)
        infos.append(info)
    return deliver(plan.assemble(Cs), call, worst(infos))


def _fill(out: Any, C: Any) -> Any:
    out[...] = C
    return out


def worst(infos: list[CallInfo]) -> CallInfo:
    """The CallInfo of a stack of products: the one with the largest relative estimate."""
    return max(infos, key=lambda i: -1.0 if i.accuracy is None else i.accuracy)


def np_result_dtype(A: Any, B: Any) -> Any:
    """The result dtype of A·B."""
    return np.result_type(A.dtype, B.dtype)
