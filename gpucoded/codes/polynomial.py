r"""Polynomial codes (Yu, Maddah-Ali, Avestimehr).

A is split into p row blocks, B into q column blocks (each worker stores 1/p of A and
1/q of B). :math:`p_A(x)=\sum_iA_ix^{i}`, :math:`p_B(x)=\sum_jB_jx^{jp}`; the
product's coefficient of :math:`x^{i+jp}` is exactly :math:`C_{ij}=A_iB_j`:
threshold pq.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..points import chebyshev, validate_points
from .base import SplitPQ
from .evaluation import EvaluationCode
from .grid import BlockGrid
from .registry import register

__all__ = ["PolynomialCode"]


@register("polynomial")
class PolynomialCode(SplitPQ, EvaluationCode):
    """Polynomial code: exact, threshold pq.

    Parameters
    ----------
    p, q : int
        Row blocks of A, column blocks of B.
    P : int
        Workers (≥ pq).
    points : array (P,), optional
        Default Chebyshev nodes λ(1).
    decoder : {"auto", "interpolation", "minnorm"}
        How the weights of an answer set are chosen
        (:class:`~gpucoded.codes.evaluation.EvaluationCode`).
    """

    name = "polynomial"

    @staticmethod
    def _default_P(p: int, q: int) -> int:
        return p * q + 1  # threshold pq, one straggler

    def __init__(
        self,
        p: int,
        q: int,
        P: int,
        points: Sequence[float] | None = None,
        *,
        decoder: str = "auto",
    ) -> None:
        if p < 1 or q < 1:
            raise ValueError(f"p and q must be >= 1, got p={p}, q={q}")
        pts = chebyshev(P, 1.0) if points is None else validate_points(points, P)
        targets = np.zeros((p * q, p * q))
        for i in range(p):
            for j in range(q):
                targets[i * q + j, i + j * p] = 1.0
        super().__init__(
            BlockGrid(p, 1, q),
            pts,
            list(range(p)),
            [j * p for j in range(q)],
            targets,
            threshold=p * q,
            decoder=decoder,
        )
        self.p, self.q = p, q

    @property
    def m(self) -> int:
        """m = p·q, as in ``make_code("polynomial", m=...)``, which splits m into p·q.

        C has pq blocks and each worker computes one block-sized product (1/(pq) of
        the work of C). A worker stores 1/p of A and 1/q of B, so unlike MatDot and
        PolyDot, 1/m is not the storage of each operand.
        """
        return self.p * self.q

    def _params(self) -> str:
        return f"p={self.p}, q={self.q}, P={self.P}"
