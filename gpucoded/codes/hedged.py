r"""``Hedged``: m exact uncoded tasks on P workers, a late task re-issued to a spare.

Not a code in the coding-theory sense: a description of the speculative-execution
baseline (:mod:`gpucoded.hedging` runs it). The product is split as
:class:`~gpucoded.codes.Uncoded` splits it, :math:`C=\sum_{j<m}A_jB_j` (A in m column
blocks, B in m row blocks); task j starts on worker j and workers m..P-1 are spares
that receive a task's blocks only when it is re-issued to them. The result is the sum
of one answer per task: exact, no decode weights (the bounds and the accuracy guard
are those of ``Uncoded(m)``).

Work per worker: one GEMM of :math:`1/m` of the inner dimension (as every MatDot-split
code); storage per worker: :math:`1/m` of A and of B on a worker that runs a copy,
nothing on an idle spare.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .base import Code
from .registry import register
from .replication import Replication, Uncoded

__all__ = ["Hedged"]


def check_hedge_after(value: Any) -> float | None:
    """``hedge_after``: None (the rule of :class:`gpucoded.hedging.HedgePolicy`) or
    seconds ≥ 0."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"hedge_after must be a number of seconds or None (the default rule: 2 x the "
            f"median finish so far, at least 20 ms), got {value!r}"
        )
    v = float(value)
    if math.isnan(v) or v < 0 or math.isinf(v):
        raise ValueError(f"hedge_after must be finite seconds >= 0 (or None), got {value!r}")
    return v


@register("hedged")
class Hedged(Replication):
    """m uncoded tasks on P workers (P − m spares), re-issued when late.

    Parameters
    ----------
    m : int
        Tasks; each worker running one holds 1/m of A and of B.
    P : int, optional
        Workers (default 2m: as many spares as tasks).
    hedge_after : float or None
        Seconds a copy may run before its task is re-issued; None (default): the
        rule of :class:`gpucoded.hedging.HedgePolicy` from the finishing times seen in
        the call.

    Notes
    -----
    As a code on the one machinery (encode, decode, bounds) it is the *static* view:
    worker w holds task :math:`w \bmod m` (rows m..P-1 of the encoded stacks are the
    spares' copies of the tasks' blocks, like :class:`Replication` with P not a
    multiple of m), so any set of answers covering every task decodes. A hedged call
    sends only rows 0..m-1 at the start and a task's blocks to a spare when it is
    re-issued; the decode sums the winners by task (:attr:`tasks`).
    """

    name = "hedged"
    grid_args = ("m",)
    #: trait read by the pipeline: run with :func:`gpucoded.hedging.run_tasks`
    hedged = True

    @classmethod
    def default_P(cls, m: int) -> int:
        return 2 * m

    @classmethod
    def build(cls, *, m: int | None = None, P: int | None = None, **options: Any) -> Code:
        """``Hedged(m, P, hedge_after=...)``; m defaults to 2, P to 2m."""
        return cls(2 if m is None else m, P, **options)

    def __init__(self, m: int, P: int | None = None, hedge_after: float | None = None) -> None:
        if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1:
            raise ValueError(f"hedged needs m >= 1 tasks, got m={m!r}")
        P = 2 * int(m) if P is None else P
        if isinstance(P, bool) or not isinstance(P, numbers.Integral) or P < m:
            raise ValueError(
                f"hedged needs P >= m workers (m tasks, P - m spares); got m={m}, P={P!r}"
            )
        super().__init__(int(m), 1)
        m, P = int(m), int(P)
        self.tasks = Uncoded(m)
        self.P = P
        self.r = -(-P // m)  # copies of the busiest task in the static view
        sel = np.zeros((P, m))
        sel[np.arange(P), np.arange(P) % m] = 1.0
        self.GA, self.GB = sel, sel.copy()
        self.recovery_threshold = m  # one answer per task
        self.hedge_after = check_hedge_after(hedge_after)

    @property
    def spares(self) -> int:
        """Workers that hold nothing until a task is re-issued to them."""
        return self.P - self.m

    def _params(self) -> str:
        h = "rule" if self.hedge_after is None else f"{self.hedge_after:g} s"
        return f"m={self.m}, P={self.P}, hedge_after={h}"
