r"""Uncoded and replicated baselines on the MatDot split.

A is split into m column blocks and B into m row blocks, :math:`C=\sum_iA_iB_i`.
Worker w computes :math:`A_{w\bmod m}B_{w\bmod m}`. Uncoded: P = m, every answer is
needed. Replication: P = mr, each block product computed by r workers; a block is
lost only when all r of its copies fail, so any :math:`(m-1)r+1` answers (at most
r−1 failures) cover every block: that is the recovery threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Code
from .decoding import WeightSolution
from .grid import BlockGrid
from .registry import register

__all__ = ["Replication", "Uncoded"]


@register("replication")
class Replication(Code):
    """Each of the m block products is computed by r workers (P = m·r).

    Decoding sums one answer per block; with ``partial=True`` missing blocks are
    dropped (contribute zero), which is what "uncoded with failures" means.
    """

    name = "replication"
    grid_args = ("m", "r")

    @classmethod
    def default_P(cls, m: int) -> int:
        return 2 * m

    @classmethod
    def build(
        cls, *, m: int | None = None, P: int | None = None, r: int | None = None, **options: Any
    ) -> Code:
        """``Replication(m, r)``; r = P/m, default 2 (P must be a multiple of m)."""
        if m is None:
            raise ValueError("replication needs m")
        if r is None:
            r = 2 if P is None else P // m
        if P is not None and P != m * r:
            raise ValueError(f"replication needs P = m*r; got P={P}, m={m} (use r=P/m)")
        return cls(m, r, **options)

    def __init__(self, m: int, r: int = 2) -> None:
        super().__init__()
        if m < 1 or r < 1:
            raise ValueError(f"m and r must be >= 1, got m={m}, r={r}")
        self.r = r
        self.P = m * r
        self.grid = BlockGrid(1, m, 1)
        self.recovery_threshold = (m - 1) * r + 1
        sel = np.zeros((self.P, m))
        sel[np.arange(self.P), np.arange(self.P) % m] = 1.0
        self.GA = sel
        self.GB = sel.copy()

    def block_of(self, worker: int) -> int:
        return worker % self.m

    def missing_blocks(self, returned) -> list[int]:
        have = {self.block_of(w) for w in returned}
        return [j for j in range(self.m) if j not in have]

    def can_decode(self, returned) -> bool:
        return not self.missing_blocks(returned)

    def _solve(self, S: tuple[int, ...], partial: bool, fmt: object = None) -> WeightSolution:
        missing = self.missing_blocks(S)
        if missing and not partial:
            raise ValueError(
                f"{self!r}: no answer for block(s) {missing}; workers that answered: {list(S)}"
            )
        W = np.zeros((1, len(S)))
        seen: set[int] = set()
        for k, w in enumerate(S):
            j = self.block_of(w)
            if j not in seen:
                W[0, k] = 1.0
                seen.add(j)
        return WeightSolution(W, 1.0, 50, not missing, W.astype(int).tolist())

    def _params(self) -> str:
        return f"m={self.m}, r={self.r}"


@register("uncoded")
class Uncoded(Replication):
    """No redundancy: P = m workers, all must answer."""

    name = "uncoded"
    grid_args = ("m",)

    @classmethod
    def default_P(cls, m: int) -> int:
        return m

    @classmethod
    def build(cls, *, m: int | None = None, P: int | None = None, **options: Any) -> Code:
        """``Uncoded(m)``: P = m workers."""
        if m is None:
            raise ValueError("uncoded needs m")
        if P is not None and P != m:
            raise ValueError(f"uncoded uses P = m = {m} workers, got P={P}")
        return cls(m, **options)

    def __init__(self, m: int) -> None:
        super().__init__(m, 1)

    def _params(self) -> str:
        return f"m={self.m}"
