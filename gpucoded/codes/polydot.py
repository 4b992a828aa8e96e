r"""PolyDot / Entangled-Poly codes and ε-approximate PolyDot (Construction 3).

A is split p×q, B q×p (m = pq).
:math:`p_A(y)=\sum_{i,j}A_{ij}y^{q(i-1)+(j-1)}`,
:math:`p_B(y)=\sum_{k,l}B_{kl}y^{q-k+pq(l-1)}`; :math:`C_{il}` is the coefficient
of :math:`y^{iq+pq(l-1)-1}` (1-based i, l). The product has degree
:math:`p^2q+q-2`: exact threshold :math:`p^2q+q-1`, ε-approximate threshold
:math:`p^2q` (Theorem 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..formats import Format, get_format
from ..points import chebyshev, default_gamma, polydot_radius, validate_points
from .base import SplitPQ
from .evaluation import EvaluationCode
from .gamma import auto_gamma
from .polyparts import polydot_parts
from .registry import register

__all__ = ["AUTO_DEFAULT_MAX", "ApproxPolyDot", "PolyDot", "check_eps_rounding", "resolve_gamma"]

#: Largest recovery threshold for which an unspecified gamma means gamma="auto".
AUTO_DEFAULT_MAX = 10


def resolve_gamma(
    gamma: float | str | None,
    eps: float | None,
    norm_bound: float | None,
    *,
    radius: Callable[[float, float], float],
    default: Callable[[], float],
    auto_args: dict[str, Any],
) -> float:
    """γ from the user's choice: a number, ``"auto"``, ``eps`` (+``norm_bound``), or default.

    Unspecified (None): ``"auto"`` (float64 workers, threshold answers) when the
    recovery threshold is at most :data:`AUTO_DEFAULT_MAX`, else ``default()``.
    """
    if eps is not None:
        if gamma is not None:
            raise ValueError("give either gamma or eps (with norm_bound), not both")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        r = radius(eps, 1.0 if norm_bound is None else norm_bound)
        return 1.0 if math.isinf(r) else 1.0 / r
    if norm_bound is not None:
        raise ValueError("norm_bound is only used together with eps")
    if gamma is None:
        # "auto" where it is cheap (threshold ≤ AUTO_DEFAULT_MAX: ≤ 0.2 s once, cached),
        # else the closed-form u^(-1/K) balance
        p, q = auto_args["p"], auto_args["q"]
        gamma = "auto" if p * p * q <= AUTO_DEFAULT_MAX else None
        if gamma is None:
            return default()
    if isinstance(gamma, str):
        if gamma != "auto":
            raise ValueError(f"gamma must be a number > 0 or 'auto', got {gamma!r}")
        return float(auto_gamma(**auto_args))
    gamma = float(gamma)
    if not (gamma > 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
    return gamma


@register("polydot")
class PolyDot(SplitPQ, EvaluationCode):
    """Exact PolyDot (Entangled-Poly) code: threshold p²q+q−1.

    Parameters
    ----------
    p, q : int
        A is split p×q and B q×p (each worker stores 1/(pq) of each).
    P : int
        Workers (≥ p²q+q−1).
    points : array (P,), optional
        Default Chebyshev nodes λ(1).
    decoder : {"auto", "interpolation", "minnorm"}
        How the weights of an answer set are chosen
        (:class:`~gpucoded.codes.evaluation.EvaluationCode`).
    """

    name = "polydot"

    @staticmethod
    def _default_P(p: int, q: int) -> int:
        return p * p * q + q  # threshold p²q+q−1, one straggler

    def __init__(
        self,
        p: int,
        q: int,
        P: int,
        points: Sequence[float] | None = None,
        *,
        decoder: str = "auto",
    ) -> None:
        grid, ai, bi, targets = polydot_parts(p, q)
        pts = chebyshev(P, 1.0) if points is None else validate_points(points, P)
        super().__init__(
            grid, pts, ai, bi, targets, threshold=p * p * q + q - 1, decoder=decoder
        )
        self.p, self.q = p, q

    def _params(self) -> str:
        return f"p={self.p}, q={self.q}, P={self.P}"


@register("approx_polydot")
class ApproxPolyDot(SplitPQ, EvaluationCode):
    r"""ε-approximate PolyDot: threshold p²q.

    Parameters as :class:`~gpucoded.codes.ApproxMatDot` (default γ: ``"auto"`` for
    p²q ≤ 10, else ``u**(-1/(p²q))``, both for the worker arithmetic ``dtype``), with
    Eq. (14):
    :math:`|\lambda_i|<\min(\epsilon/(\eta^2q(p^2q-1)),1/(p^2q-1))`. With
    ``decode_points="paper"`` block :math:`C_{il}` is decoded from
    :math:`d_{il}=iq+pq(l-1)` answers exactly as in the proof of Theorem 2.
    ``decoder``: see :class:`~gpucoded.codes.evaluation.EvaluationCode`.
    """

    name = "approx_polydot"
    tunes_to_format = True

    @staticmethod
    def _default_P(p: int, q: int) -> int:
        return p * p * q + 1  # threshold p²q, one straggler

    def __init__(
        self,
        p: int,
        q: int,
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
        grid, ai, bi, targets = polydot_parts(p, q)
        self.p, self.q = p, q
        self.eps, self.norm_bound = eps, norm_bound
        self.worker_dtype = fmt = get_format(dtype).name
        thr = p * p * q
        if points is not None:
            if gamma is not None or eps is not None:
                raise ValueError("give either points, gamma, or eps (with norm_bound), not several")
            pts = validate_points(points, P)
            self.gamma = float(1.0 / np.abs(pts).max())
            self.gamma_choice = "points"
        else:
            self.gamma_choice = _gamma_choice(gamma, eps, thr)
            self.gamma = resolve_gamma(
                gamma,
                eps,
                norm_bound,
                radius=lambda e, eta: polydot_radius(p, q, e, eta),
                default=lambda: default_gamma(thr, 2 * get_format(fmt).u),
                auto_args={
                    "family": "matdot" if p == 1 else "polydot",
                    "p": p,
                    "q": q,
                    "P": P,
                    "dtype": fmt,
                },
            )
            pts = chebyshev(P, self.gamma)
        super().__init__(
            grid,
            pts,
            ai,
            bi,
            targets,
            threshold=thr,
            approximate=True,
            decode_points=decode_points,
            decoder=decoder,
        )
        if eps is not None:
            check_eps_rounding(self, fmt)

    def _params(self) -> str:
        return f"p={self.p}, q={self.q}, P={self.P}, gamma={self.gamma:.4g}"

    def retuned(self, fmt: Format) -> ApproxPolyDot:
        """Automatic points (``gamma_choice`` "auto"/"default") re-tuned for ``fmt``."""
        if self.worker_dtype == fmt.name or self.gamma_choice not in ("auto", "default"):
            return self
        return self._rebuilt(dtype=fmt.name, decode_points=self.decode_points, decoder=self.decoder)

    def _rebuilt(self, **options: Any) -> ApproxPolyDot:
        """The same grid and workers with other options."""
        return ApproxPolyDot(self.p, self.q, self.P, **options)

    def check_promise(self, fmt: Format) -> None:
        """An ``eps=`` code's promise in ``fmt`` (:func:`check_eps_rounding`)."""
        if self.gamma_choice == "eps":
            check_eps_rounding(self, fmt.name)

    def rebuild_hint(self, fmt: Format) -> str:
        return f"ApproxPolyDot({self.p}, {self.q}, {self.P}, dtype={fmt.name!r})"


def _gamma_choice(gamma: float | str | None, eps: float | None, threshold: int) -> str:
    """How γ was chosen: "eps", "gamma" (a number), "auto" or "default" (u^(-1/K))."""
    if eps is not None:
        return "eps"
    if gamma is None:
        return "auto" if threshold <= AUTO_DEFAULT_MAX else "default"
    return "auto" if isinstance(gamma, str) else "gamma"


def check_eps_rounding(code: ApproxPolyDot, fmt: str) -> None:
    r"""Refuse an ``eps=`` code whose rounding in ``fmt`` alone exceeds ε.

    Eq. (14)/(16) bound the interpolation error only. At the chosen points the decode
    of the worst answer set amplifies one rounding per answer by
    :math:`F_S` (``DecodeWeights.fp_factor``, relative to :math:`\eta^2`), so
    :math:`u\,\eta^2\max_S F_S<\epsilon` is necessary for the promise to hold.
    Raises ``ValueError`` with the achievable ε otherwise: the smallest ε on a
    20-per-decade grid whose Eq. (14) points pass the same test.
    """
    from .gamma import ErrorModel

    eta = 1.0 if code.norm_bound is None else code.norm_bound
    fam = "matdot" if code.p == 1 else "polydot"
    u = get_format(fmt).u
    model = ErrorModel(fam, code.p, code.q, code.P)
    rounding = u * float(model.factors(np.array([code.gamma]))[1].max()) * eta**2
    if rounding < code.eps:
        return
    grid = np.logspace(-16, 4, 401)
    gammas = np.array([1.0 / polydot_radius(code.p, code.q, e, eta) for e in grid])
    ok = u * model.factors(gammas)[1].max(axis=0) * eta**2 < grid
    best = f"{grid[np.argmax(ok)]:.2g}" if ok.any() else "none"
    wider = "" if fmt == "float64" else " float64 workers,"
    raise ValueError(
        f"{type(code).__name__}(eps={code.eps:g}) with {fmt} workers: at the points "
        f"Eq. (14)/(16) choose (gamma={code.gamma:.3g}) the decode amplifies rounding "
        f"to about {rounding:.2g} > eps. The smallest eps {fmt} workers allow here is "
        f"about {best}: use eps >= {best},{wider} a smaller m, or "
        "gamma='auto' (the most accurate points, without the eps promise)."
    )
