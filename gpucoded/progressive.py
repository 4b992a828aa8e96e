r"""Progressive (anytime) decoding: a first estimate after the threshold, refined after.

For an ε-approximate code (threshold m, exact from K answers) the interpolation
error of a decode from r answers falls by one power of the point radius δ per
extra answer (:math:`O(\delta^{r-m+1})` for ε-MatDot, Corollary 1 of the paper),
and is zero once r ≥ K. :func:`progressive_matmul` yields an estimate as soon as
the code can decode and a refined one after every further answer, each with its
:class:`~gpucoded.codes.DecodeInfo` (condition number and a-priori error bound,
from the one decode machinery: :meth:`~gpucoded.codes.Code.decode`). It stops at
the first exact decode, or when every worker has answered, or at ``deadline``.

>>> import numpy as np
>>> from gpucoded.progressive import progressive_matmul
>>> A, B = np.random.rand(40, 30), np.random.rand(30, 20)
>>> for C, info in progressive_matmul(A, B, "approx_matdot", m=3, P=5):
...     pass  # C improves as answers arrive; info.error_bound shrinks
>>> bool(np.allclose(C, A @ B))
True

Leaving the loop early (``break``) closes the generator, which cancels the
remaining workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .api import _resolve_code, np_result_dtype
from .backend import array_module
from .codes import Code, DecodeInfo
from .errors import NotEnoughAnswersError
from .executors import get_executor
from .executors.base import check_delays
from .validate import check_operands

__all__ = ["progressive_matmul"]


def progressive_matmul(
    A: Any,
    B: Any,
    code: str | Code = "approx_matdot",
    *,
    m: int | None = None,
    P: int | None = None,
    failed: Iterable[int] | None = None,
    delays: Sequence[float] | None = None,
    executor: Any = None,
    deadline: float | None = None,
    until_exact: bool = True,
    nonfinite: str = "raise",
    **code_options: Any,
) -> Iterator[tuple[Any, DecodeInfo]]:
    r"""Yield ``(C_estimate, DecodeInfo)`` after the threshold and after every later answer.

    Parameters
    ----------
    A, B, code, m, P, failed, delays, executor, nonfinite, **code_options
        As in :func:`gpucoded.coded_matmul`.
    deadline : float, optional
        Seconds after the start of the run after which no more answers are waited for.
    until_exact : bool
        Stop after the first decode that is exact in exact arithmetic (r ≥ K for
        polynomial codes: ``info.interp_bound == 0``); otherwise go on until every
        worker has answered.

    Yields
    ------
    C : array (n, l)
        The estimate from the answers so far (``info.workers``, in arrival order).
    info : DecodeInfo
        ``cond``, ``interp_bound`` (ε₁ bound, 0 once exact), ``fp_bound``,
        ``error_bound``.

    Raises
    ------
    NotEnoughAnswersError
        When the answers run out (failures, deadline) before the threshold.
    """
    A, B = check_operands(A, B, nonfinite=nonfinite)
    if isinstance(code, str) and m is None and "p" not in code_options:
        m = 2
    c = _resolve_code(code, m, P, code_options, np_result_dtype(A, B))
    failed_set = {int(w) for w in failed or ()}
    if any(not 0 <= w < c.P for w in failed_set):
        raise ValueError(f"failed worker indices must be in [0, {c.P}); got {sorted(failed_set)}")
    d = check_delays(delays, c.P)
    ex = get_executor(executor, like=A)
    workers = [w for w in range(c.P) if w not in failed_set]
    At, Bt = c.encode(A, B)
    xp = array_module(At)
    n, l = A.shape[0], B.shape[1]
    norms = (float(xp.linalg.norm(A)), float(xp.linalg.norm(B)))
    real = A.dtype.kind != "c" and B.dtype.kind != "c"
    out_dtype = np_result_dtype(A, B)
    got: list[int] = []
    prods: list[Any] = []
    t0 = time.perf_counter()
    with ex.start(At, Bt, workers=workers, delays=d, timeout=deadline) as run:
        for ans in run:
            if not ans.ok:
                continue
            got.append(ans.worker)
            prods.append(ans.product)
            if not c.can_decode(got):
                continue
            C, info = c.decode(
                xp.stack(prods),
                got,
                shape=(n, l),
                norms=norms,
                inner=At.shape[2],
                real=real,
                return_info=True,
            )
            yield C.astype(out_dtype, copy=False), info
            if until_exact and info.interp_bound == 0:
                return
    if not c.can_decode(got):
        raise NotEnoughAnswersError(
            f"{c!r} needs {c.recovery_threshold} answers; only {len(got)} usable arrived "
            f"in {time.perf_counter() - t0:.3g} s (workers {sorted(got)})",
            needed=c.recovery_threshold,
            answered=got,
        )
