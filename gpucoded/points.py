r"""Evaluation points of the polynomial codes.

The paper's points are scaled Chebyshev nodes

.. math:: \lambda_i(\gamma) = \frac{1}{\gamma}\cos\frac{(2i-1)\pi}{2P},\qquad i=1,\dots,P,

so that all points lie strictly inside :math:`(-1/\gamma, 1/\gamma)`. MatDot uses
:math:`\gamma=1`; the :math:`\epsilon`-approximate codes use a large
:math:`\gamma` (points near 0). Eq. (16) (ε-MatDot) and Eq. (14) (ε-PolyDot)
give the radius :math:`\delta` that guarantees a max-norm error :math:`\le\epsilon`
for inputs with :math:`\|A\|_F,\|B\|_F\le\eta`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "chebyshev",
    "default_gamma",
    "matdot_radius",
    "polydot_radius",
    "validate_points",
]


def chebyshev(P: int, gamma: float = 1.0) -> np.ndarray:
    r"""Scaled Chebyshev nodes :math:`\lambda(\gamma)` (the paper's Fig. 1 points).

    Parameters
    ----------
    P : int
        Number of points (workers).
    gamma : float
        Scale; the points lie in :math:`(-1/\gamma, 1/\gamma)`.

    Returns
    -------
    ndarray of shape (P,), float64, decreasing.
    """
    if P < 1:
        raise ValueError(f"P must be >= 1, got {P}")
    if not (gamma > 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
    i = np.arange(1, P + 1)
    return np.cos((2 * i - 1) * np.pi / (2 * P)) / gamma


def polydot_radius(p: int, q: int, eps: float, norm_bound: float) -> float:
    r"""Radius of Eq. (14): :math:`\min(\epsilon/(\eta^2 q(p^2q-1)), 1/(p^2q-1))`.

    Evaluation points with :math:`|\lambda_i|` strictly below this radius make the
    ε-PolyDot decoder's max-norm error at most ``eps`` from any :math:`p^2q`
    answers (Theorem 2), when :math:`\|A\|_F,\|B\|_F \le \eta` (``norm_bound``).
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if not norm_bound > 0:
        raise ValueError(f"norm_bound (eta) must be > 0, got {norm_bound!r}")
    k = p * p * q - 1
    if k == 0:  # p = q = 1: the product is a single block, any point is exact
        return math.inf
    return min(eps / (norm_bound**2 * q * k), 1.0 / k)


def matdot_radius(m: int, eps: float, norm_bound: float) -> float:
    r"""Radius of Eq. (16): :math:`\min(\epsilon/(\eta^2 m(m-1)), 1/(m-1))` (p=1, q=m)."""
    return polydot_radius(1, m, eps, norm_bound)


def default_gamma(threshold: int, unit_roundoff: float = np.finfo(np.float64).eps) -> float:
    r"""Closed-form :math:`\gamma=u^{-1/K}` for the ε-approximate codes.

    This is the codes' default only when their recovery threshold exceeds
    ``AUTO_DEFAULT_MAX`` (10, :mod:`gpucoded.codes.polydot`); below that the default
    is ``gamma="auto"`` (:func:`gpucoded.codes.gamma.auto_gamma`).

    The interpolation error falls like :math:`1/\gamma` while the rounding error of
    the decode grows like :math:`u\,\gamma^{K-1}` (the condition number of the
    :math:`K\times K` Vandermonde system, :math:`K` = ``threshold``); balancing the two
    gives :math:`\gamma = u^{-1/K}`. For float64 and :math:`K=3` this is
    :math:`\gamma\approx 1.65\times 10^5` (the paper uses 70000), error about 1e-7
    on unit-norm inputs.
    """
    return float(unit_roundoff ** (-1.0 / max(threshold, 1)))


def validate_points(points: np.ndarray, P: int) -> np.ndarray:
    """Check user-given evaluation points: P finite, pairwise distinct numbers."""
    pts = np.asarray(points)
    if pts.dtype.kind not in "fic":
        raise TypeError(f"points must be real or complex numbers, got dtype {pts.dtype}")
    pts = pts.astype(np.complex128 if pts.dtype.kind == "c" else np.float64).ravel()
    if pts.shape[0] != P:
        raise ValueError(f"points: expected P={P} evaluation points, got {pts.shape[0]}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points must be finite")
    diff = np.abs(pts[:, None] - pts[None, :])
    np.fill_diagonal(diff, np.inf)
    if P > 1 and diff.min() == 0.0:
        i, j = np.unravel_index(np.argmin(diff), diff.shape)
        raise ValueError(
            f"points must be pairwise distinct; points[{i}] == points[{j}] == {pts[i]!r} "
            "(duplicate or zero-spread points make the decode singular: use distinct points, "
            "or a smaller gamma)"
        )
    return pts
