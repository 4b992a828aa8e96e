r"""MatDot on a circle: complex evaluation points :math:`\lambda_w=\rho\,e^{i\theta_w}`.

MatDot's product :math:`p_C(x)=p_A(x)p_B(x)=\sum_{d=0}^{2m-2}c_dx^d` has
:math:`C=c_{m-1}`. With real evaluation points near 0 (ε-MatDot) the Vandermonde
systems are ill-conditioned; on a circle they are as well conditioned as a
Vandermonde system can be. Two decoders share the same encoding
``GA[w, i] = λ_w^i``, ``GB[w, j] = λ_w^{m-1-j}``:

``decoder="real"`` (default; real inputs only)
    For real A, B the coefficients :math:`c_d` are real matrices, so one complex
    answer :math:`p_C(\lambda)` carries two real equations: it is the pair of
    evaluations at :math:`\lambda` and :math:`\bar\lambda`. The points lie in the upper
    half plane, :math:`\theta_w=\pi(w+\tfrac12)/P`, so the *virtual* points
    :math:`\{\lambda_w,\bar\lambda_w\}` are 2P equally spaced points of the circle.
    The decode is :math:`\hat C=\mathrm{Re}\sum_kw_k\tilde C_{s_k}` with
    :math:`(w_k/2,\bar w_k/2)` the (least-squares) interpolation weights at the 2r
    virtual points. r ≥ m answers give 2r ≥ 2m−1 real equations: **exact** decoding
    at threshold m, with ρ = 1 (no small radius). Fewer answers
    (r ≥ ⌈m/2⌉, ``partial=True``) give a truncated (ε-approximate) estimate whose
    interpolation error falls with ρ.
``decoder="complex"``
    The plain truncated complex interpolation of the core machinery (valid for
    complex inputs too): points on the full circle :math:`\theta_w=2\pi(w+\tfrac12)/P`,
    radius :math:`\rho=1/\gamma`, m answers give C up to O(ρ) like ε-MatDot.

Worker cost, honestly counted. A worker stores the complex :math:`\tilde A_w` and
:math:`\tilde B_w`: **twice** the storage of a real MatDot worker (2/m of A and of B),
does one complex GEMM (4 real GEMMs, 3 with the 3M/Gauss trick) and returns a
complex answer (twice the data). The real 2×2 rotation embedding (Ramamoorthy–Tang)
is the same algebra in real arithmetic (:math:`e^{i\theta}\mapsto` a rotation matrix)
with the same costs. At *equal* storage 2/m a real MatDot code with ⌈m/2⌉ blocks is
exact from 2⌈m/2⌉−1 ≤ m answers with cheaper workers: the circle code buys
conditioning, not a better threshold per stored byte.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from .. import weights as wt
from ..points import default_gamma
from .decoding import DecodeWeights, WeightSolution
from .evaluation import EvaluationCode
from .matdot import _matdot_parts
from .registry import register

__all__ = ["CircleMatDot", "RealPartWeights", "circle_points"]

DECODERS = ("real", "complex")


def circle_points(P: int, radius: float = 1.0, *, half: bool = True) -> np.ndarray:
    r"""P equally spaced points on a circle, none real.

    Parameters
    ----------
    P : int
        Number of points.
    radius : float
        :math:`\rho>0`.
    half : bool
        True: :math:`\theta_w=\pi(w+\tfrac12)/P` (upper half plane, so that the points
        and their conjugates are 2P equally spaced points); False:
        :math:`\theta_w=2\pi(w+\tfrac12)/P` (full circle).

    Returns
    -------
    ndarray (P,), complex128.
    """
    if P < 1:
        raise ValueError(f"P must be >= 1, got {P}")
    if not (radius > 0 and np.isfinite(radius)):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    span = np.pi if half else 2 * np.pi
    return radius * np.exp(1j * span * (np.arange(P) + 0.5) / P)


class RealPartWeights(DecodeWeights):
    r"""Decode weights applied as :math:`\mathrm{Re}\sum_kw_k\tilde C_k` (real inputs).

    Only the real part of the defect tensor acts on real inputs:
    :math:`\mathrm{Re}\,\hat C_\infty-C=\sum_{a,b}\mathrm{Re}(D_{cab})A_aB_b`.
    """

    @cached_property
    def defect(self) -> np.ndarray:
        return np.ascontiguousarray(np.real(DecodeWeights.defect.func(self)))


@register("circle")
class CircleMatDot(EvaluationCode):
    """MatDot with complex points on a circle (see the module docstring).

    Parameters
    ----------
    m : int
        Storage fraction 1/m (in complex numbers; 2/m in real numbers).
    P : int
        Workers (≥ m).
    gamma : float, optional
        Radius 1/γ. Default 1 for ``decoder="real"`` (exact at m answers),
        :func:`gpucoded.points.default_gamma` (``u**(-1/m)``) for ``"complex"``.
    decoder : {"real", "complex"}
        Real-part decoding (real inputs, exact from m answers) or truncated complex
        interpolation (any inputs, O(1/γ) error from m answers). The generic names
        ``"auto"`` and ``"interpolation"`` (what ``coded_matmul(..., decoder=...)``
        passes) select ``"real"``; ``"minnorm"`` is not defined for this code.
    """

    name = "circle"
    decoders = DECODERS

    @classmethod
    def default_P(cls, m: int) -> int:
        return m + 1  # threshold m, one straggler

    def __init__(self, m: int, P: int, gamma: float | None = None, decoder: str = "real") -> None:
        if decoder in ("auto", "interpolation"):
            decoder = "real"
        if decoder not in DECODERS:
            raise ValueError(
                f"CircleMatDot's decoder must be one of {DECODERS} (or 'auto'), got "
                f"{decoder!r}; the reference 'minnorm' decoder is defined for the real-point codes"
            )
        grid, ai, bi, targets = _matdot_parts(m)
        if gamma is None:
            gamma = 1.0 if decoder == "real" else default_gamma(m)
        gamma = float(gamma)
        if not (gamma > 0 and np.isfinite(gamma)):
            raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
        self.gamma = gamma
        pts = circle_points(P, 1.0 / gamma, half=decoder == "real")
        super().__init__(
            grid, pts, ai, bi, targets, threshold=m, approximate=decoder == "complex",
            decoder=decoder,
        )

    def _params(self) -> str:
        return f"m={self.m}, P={self.P}, gamma={self.gamma:.4g}, decoder={self.decoder!r}"

    @property
    def storage_factor(self) -> int:
        """Real numbers stored per worker relative to a real MatDot worker (2)."""
        return 2

    @property
    def _weights_class(self) -> type[DecodeWeights]:  # type: ignore[override]
        """Real-part decoding: only the defect's real part acts on real inputs."""
        return RealPartWeights if self.decoder == "real" else DecodeWeights

    def _solve(self, S: tuple[int, ...], partial: bool, fmt=None) -> WeightSolution:
        if self.decoder == "complex":
            return super()._solve(S, partial, fmt)
        r = len(S)
        if 2 * r < self.m:
            raise ValueError(
                f"{self!r} cannot estimate C from {r} answers: at least {-(-self.m // 2)} "
                f"are needed even approximately (recovery threshold {self.recovery_threshold})"
            )
        pts = [complex(self.points[w]) for w in S]
        virtual = pts + [z.conjugate() for z in pts]
        W, cond, dps, W_mp = wt.interpolation_weights(virtual, self.targets, "monomial")
        # conjugate-symmetric solution: Re(sum_k 2 w_k p(λ_k)) = sum over both halves
        W2 = 2 * W[:, :r]
        W2_mp = [[2 * x for x in row[:r]] for row in W_mp]
        return WeightSolution(W2, cond, dps, 2 * r >= self.K, W2_mp)

    def decode(self, products: Any, returned, shape=None, *, real: bool | None = None, **kw):
        """As :meth:`Code.decode`; the real-part decoder needs real inputs (``real=True``).

        With ``decoder="real"``, ``real=None`` is taken as True (the decoder is only
        defined for real A and B); ``real=False`` is an error.
        """
        if self.decoder == "real":
            if real is False:
                raise ValueError(
                    "CircleMatDot(decoder='real') decodes real inputs only; use "
                    "decoder='complex' for complex A or B"
                )
            real = True
        return super().decode(products, returned, shape, real=real, **kw)
