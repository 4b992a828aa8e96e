r"""MatDot codes (Dutta et al.) and ε-approximate MatDot (Construction 4).

:math:`p_A(x)=\sum_{i=1}^m A_i x^{i-1}`, :math:`p_B(x)=\sum_{j=1}^m B_j x^{m-j}`;
:math:`C=\sum_i A_iB_i` is the coefficient of :math:`x^{m-1}` in
:math:`p_Ap_B` (degree 2m−2). Exact decoding needs 2m−1 answers; with points of
radius δ near 0, m answers give C up to :math:`O(\delta)` (Corollary 1), and each
further answer gains one power of δ.

MatDot is PolyDot with p = 1, q = m (the paper's own reduction), so both classes are
the PolyDot construction with that split; only their parameters and names differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..formats import Format
from .base import Code
from .grid import BlockGrid
from .polydot import ApproxPolyDot, PolyDot
from .polyparts import polydot_parts
from .registry import register

__all__ = ["ApproxMatDot", "MatDot"]


def _matdot_parts(m: int) -> tuple[BlockGrid, list[int], list[int], np.ndarray]:
    """MatDot's grid, basis indices of the A and B blocks, and target: PolyDot's at p=1."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    return polydot_parts(1, m)


@register("matdot")
class MatDot(PolyDot):
    """Exact MatDot code: threshold 2m−1.

    Parameters
    ----------
    m : int
        Each worker stores 1/m of A (column blocks) and of B (row blocks).
    P : int
        Number of workers (≥ 2m−1).
    points : array (P,), optional
        Distinct evaluation points; default the Chebyshev nodes λ(1) on (−1, 1).
    decoder : {"auto", "interpolation", "minnorm"}
        How the weights of an answer set are chosen
        (:class:`~gpucoded.codes.evaluation.EvaluationCode`).
    """

    name = "matdot"
    grid_args = ("m",)

    #: MatDot's grid is fixed by m: ``cls(m, P, **options)``, as every m-family builds
    build = classmethod(Code.build.__func__)

    @classmethod
    def default_P(cls, m: int) -> int:
        return 2 * m  # threshold 2m−1, one straggler

    def __init__(
        self, m: int, P: int, points: Sequence[float] | None = None, *, decoder: str = "auto"
    ) -> None:
        super().__init__(1, m, P, points=points, decoder=decoder)

    def _params(self) -> str:
        return f"m={self.m}, P={self.P}"


@register("approx_matdot")
class ApproxMatDot(ApproxPolyDot):
    r"""ε-approximate MatDot: threshold m.

    Parameters
    ----------
    m, P : int
        Storage fraction 1/m, number of workers (≥ m).
    gamma : float or "auto", optional
        Points λ(γ) = cos((2i−1)π/(2P))/γ. ``"auto"``
        (:func:`gpucoded.codes.gamma.auto_gamma`): the γ minimising the predicted worst-case
        error for ``dtype`` workers and m answers (float64: 9.2e4 at m=3, P=5, error
        ≈1e-7 on unit-norm inputs). Default: ``"auto"`` for m ≤ 10, else
        :func:`gpucoded.points.default_gamma` (``u**(-1/m)``).
    eps, norm_bound : float, optional
        Target max-norm error ε and bound η on ‖A‖_F, ‖B‖_F: the points are scaled to
        satisfy Eq. (16), :math:`|\lambda_i|<\min(\epsilon/(\eta^2m(m-1)),1/(m-1))`,
        which guarantees error ≤ ε from any m answers (in exact arithmetic).
        ``norm_bound`` defaults to 1 (then ε bounds the error relative to
        ‖A‖_F‖B‖_F, Remark 1).
    points : array (P,), optional
        Explicit evaluation points (instead of gamma/eps).
    decode_points : {"all", "paper"}
        See :class:`~gpucoded.codes.evaluation.EvaluationCode`.
    dtype : {"float64", "float32", "tf32", "bf16"} or NumPy dtype
        Worker arithmetic the default/``"auto"`` γ is tuned for (the best γ depends
        on it strongly: about 9e4 for float64 and 110 for float32 at m = 3).
        ``coded_matmul`` passes the inputs' dtype when it builds the code from its name.
    decoder : {"auto", "interpolation", "minnorm"}
        How the weights of an answer set are chosen
        (:class:`~gpucoded.codes.evaluation.EvaluationCode`).
    """

    name = "approx_matdot"
    grid_args = ("m",)

    #: MatDot's grid is fixed by m: ``cls(m, P, **options)``, as every m-family builds
    build = classmethod(Code.build.__func__)

    @classmethod
    def default_P(cls, m: int) -> int:
        return m + 1  # threshold m, one straggler

    def __init__(
        self,
        m: int,
        P: int,
        gamma: float | str | None = None,
        eps: float | None = None,
        norm_bound: float | None = None,
        *,
        points: Sequence[float] | None = None,
        decode_points: str = "all",
        dtype: object = "float64",
        decoder: str = "auto",
    ) -> None:
        super().__init__(
            1, m, P, gamma, eps, norm_bound, points=points, decode_points=decode_points,
            dtype=dtype, decoder=decoder,
        )

    def _params(self) -> str:
        return f"m={self.m}, P={self.P}, gamma={self.gamma:.4g}"

    def _rebuilt(self, **options: Any) -> ApproxMatDot:
        return ApproxMatDot(self.m, self.P, **options)

    def rebuild_hint(self, fmt: Format) -> str:
        return f"ApproxMatDot({self.m}, {self.P}, dtype={fmt.name!r})"
