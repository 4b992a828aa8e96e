r"""Orthogonal-basis (Chebyshev) MatDot codes (Fahim & Cadambe).

:math:`p_A(x)=\tfrac12A_1T_0(x)+\sum_{i\ge2}A_iT_{i-1}(x)`,
:math:`p_B(x)=\sum_jB_jT_{j-1}(x)`. From
:math:`T_iT_j=\tfrac12(T_{i+j}+T_{|i-j|})` the :math:`T_0` coefficient of
:math:`p_Ap_B` is :math:`\tfrac12\sum_iA_iB_i`, so :math:`C=2c_0`: threshold 2m−1,
evaluated at Chebyshev nodes, where the Chebyshev–Vandermonde system is well
conditioned for any m. :math:`T_k(x)` is evaluated as :math:`\cos(k\arccos x)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..points import chebyshev, validate_points
from .evaluation import EvaluationCode
from .grid import BlockGrid
from .registry import register

__all__ = ["ChebyshevMatDot"]


@register("chebyshev")
class ChebyshevMatDot(EvaluationCode):
    """Chebyshev-basis MatDot: exact, threshold 2m−1, well conditioned.

    Parameters
    ----------
    m, P : int
    points : array (P,), optional
        Points in [−1, 1]; default the Chebyshev nodes λ(1).
    decoder : {"auto", "interpolation", "minnorm"}
        How the weights of an answer set are chosen
        (:class:`~gpucoded.codes.evaluation.EvaluationCode`).
    """

    name = "chebyshev"

    @classmethod
    def default_P(cls, m: int) -> int:
        return 2 * m  # threshold 2m−1, one straggler

    def __init__(
        self, m: int, P: int, points: Sequence[float] | None = None, *, decoder: str = "auto"
    ) -> None:
        if m < 1:
            raise ValueError(f"m must be >= 1, got {m}")
        pts = chebyshev(P, 1.0) if points is None else validate_points(points, P)
        targets = np.zeros((1, 2 * m - 1))
        targets[0, 0] = 2.0
        a_scale = np.ones(m)
        a_scale[0] = 0.5
        super().__init__(
            BlockGrid(1, m, 1),
            pts,
            list(range(m)),
            list(range(m)),
            targets,
            basis="chebyshev",
            threshold=2 * m - 1,
            a_scale=a_scale,
            decoder=decoder,
        )

    def _params(self) -> str:
        return f"m={self.m}, P={self.P}"
