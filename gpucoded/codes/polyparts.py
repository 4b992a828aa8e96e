r"""The block structure of the PolyDot family (PolyDot, MatDot and their ε-versions).

A is split p×q, B q×p (m = pq). Block :math:`A_{ij}` is the coefficient of
:math:`y^{qi+j}` in :math:`p_A`, block :math:`B_{kl}` that of :math:`y^{q-1-k+pql}`
(0-based), and :math:`C_{il}` is the coefficient of :math:`y^{iq+q-1+pql}` of
:math:`p_Ap_B` (degree :math:`p^2q+q-2`, so :math:`K=p^2q+q-1` coefficients).

This is data only: the codes (:mod:`.polydot`, :mod:`.matdot`) and the γ error model
(:mod:`.gamma`) both read it, so neither imports the other's module.
"""

from __future__ import annotations

import numpy as np

from .grid import BlockGrid

__all__ = ["polydot_parts"]


def polydot_parts(p: int, q: int) -> tuple[BlockGrid, list[int], list[int], np.ndarray]:
    """Grid, basis exponents of the A and B blocks, and targets (p², K) of PolyDot(p, q)."""
    if p < 1 or q < 1:
        raise ValueError(f"p and q must be >= 1, got p={p}, q={q}")
    a_index = [q * i + j for i in range(p) for j in range(q)]  # block a = i*q + j
    b_index = [q - 1 - k + p * q * l for k in range(q) for l in range(p)]  # b = k*p + l
    K = p * p * q + q - 1
    targets = np.zeros((p * p, K))
    for i in range(p):
        for l in range(p):
            targets[i * p + l, i * q + q - 1 + p * q * l] = 1.0
    return BlockGrid(p, q, p), a_index, b_index, targets
