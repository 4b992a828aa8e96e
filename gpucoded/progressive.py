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

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .callsetup import set_up
from .codes import Code, DecodeInfo
from .pipeline import operands, progressive
from .validate import check_operands, inputs_finite

__all__ = ["progressive_matmul"]


def progressive_matmul(
    A: Any,
    B: Any,
    code: str | Code | None = None,
    *,
    m: int | None = None,
    P: int | None = None,
    failed: Iterable[int] | None = None,
    delays: Sequence[float] | None = None,
    executor: Any = None,
    deadline: float | None = None,
    until_exact: bool = True,
    nonfinite: str = "raise",
    on_inaccurate: str = "warn",
    allow_inaccurate: bool = False,
    check: str | None = "probes",
    **code_options: Any,
) -> Iterator[tuple[Any, DecodeInfo]]:
    r"""Yield ``(C_estimate, DecodeInfo)`` after the threshold and after every later answer.

    The call runs through the one pipeline of :mod:`gpucoded.pipeline`: the same
    validation, answer checks (a NaN, wrong-shape or raising answer is an erasure),
    ρ-norm bounds in the executor's worker format and accuracy guard as
    :func:`gpucoded.coded_matmul`; every estimate is guarded.

    Parameters
    ----------
    A, B, code, m, P, failed, delays, executor, nonfinite, **code_options
        As in :func:`gpucoded.coded_matmul` (2-D operands), set up by the same
        :func:`gpucoded.callsetup.set_up`: the same default code (exact, so one
        estimate that is already exact; the refinement is what an approximate code
        such as ``"approx_matdot"`` gains), ``code="auto"`` chosen for the
        executor's worker format and this product's shape.
    on_inaccurate, allow_inaccurate, check
        As in :func:`gpucoded.coded_matmul`, applied to every estimate.
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

    Examples
    --------
    ε-MatDot with m = 3 gives its first estimate from 3 of the 6 answers, then one
    per further answer, each with its error bound (an answer that would raise the bound
    is left out, and the best estimate so far is given again):

    >>> import numpy as np
    >>> from gpucoded.progressive import progressive_matmul
    >>> rng = np.random.default_rng(2)
    >>> A, B = rng.random((40, 30)), rng.random((30, 20))
    >>> steps = list(progressive_matmul(A, B, "approx_matdot", m=3, P=6, executor="serial"))
    >>> len(steps)  # after answers 3, 4, 5 and 6
    4
    >>> bounds = [info.error_bound for _, info in steps]
    >>> all(b <= a for a, b in zip(bounds, bounds[1:]))  # an answer never makes it worse
    True
    >>> all(np.abs(C - A @ B).max() <= info.error_bound for C, info in steps)
    True
    """
    A, B = check_operands(A, B, nonfinite=nonfinite)
    setup = set_up(
        code, m, P, code_options, executor=executor, like=A,
        dtype=np.result_type(A.dtype, B.dtype), shape=(A.shape[0], A.shape[1], B.shape[1]),
        call_options=dict(
            failed=failed, delays=delays, deadline=deadline, nonfinite=nonfinite,
            on_inaccurate=on_inaccurate, allow_inaccurate=allow_inaccurate, check=check,
        ),
    )  # fmt: skip
    c = setup.code
    ops = operands(c, A, B, nonfinite == "raise" or inputs_finite(A, B))
    yield from progressive(
        c, lambda: c.encode(A, B), ops, setup.executor, setup.call, setup.fmt, until_exact
    )
