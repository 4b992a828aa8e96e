r"""Values of the codes' bases (monomials :math:`x^j`, Chebyshev :math:`T_j`) at points.

In float64 (:func:`basis_float`), double-double (:func:`dd_basis`, by the recurrence)
and mpmath (:func:`basis_values`, exact to working precision), with the thread-local
mpmath contexts every high-precision solve uses (:func:`mp_context`) and exact
conversion of binary floats to mpmath (:func:`mp_scalar`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import mpmath
import numpy as np

from .ddarith import dd_add, dd_mul

__all__ = [
    "MpContext",
    "basis_float",
    "basis_values",
    "dd_basis",
    "is_mp",
    "mp_context",
    "mp_scalar",
]

MpContext = mpmath.ctx_mp.MPContext

_local = threading.local()


def mp_context(dps: int) -> MpContext:
    """A thread-local mpmath context at ``dps`` decimal digits (thread safe)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = _local.ctx = mpmath.MPContext()
    ctx.dps = dps
    return ctx


def is_mp(x: object) -> bool:
    """An mpmath number of any context (each context has its own mpf/mpc classes)."""
    return hasattr(x, "_mpf_") or hasattr(x, "_mpc_")


def mp_scalar(ctx: MpContext, x: complex | float):
    """Exact conversion of a float/complex (its binary value) to mpmath."""
    if isinstance(x, complex | np.complexfloating):
        x = complex(x)
        if x.imag == 0.0:
            return ctx.mpf(x.real)
        return ctx.mpc(x.real, x.imag)
    return ctx.mpf(float(x))


def basis_values(ctx: MpContext, points: Sequence, ncols: int, basis: str):
    r"""Matrix :math:`V_{kj}=\phi_j(x_k)`, :math:`j<` ``ncols``, in ``ctx`` precision.

    ``basis`` is ``"monomial"`` (:math:`x^j`) or ``"chebyshev"``
    (:math:`T_j`, by the three-term recurrence, exact to working precision).
    """
    if basis not in ("monomial", "chebyshev"):
        raise ValueError(f"unknown basis {basis!r}")
    xs = [mp_scalar(ctx, x) for x in points]
    V = ctx.matrix(len(xs), ncols)
    for k, x in enumerate(xs):
        if ncols == 0:
            continue
        V[k, 0] = ctx.mpf(1)
        if ncols > 1:
            V[k, 1] = x
        for j in range(2, ncols):
            if basis == "monomial":
                V[k, j] = V[k, j - 1] * x
            else:
                V[k, j] = 2 * x * V[k, j - 1] - V[k, j - 2]
    return V



def basis_float(points: np.ndarray, ncols: int, basis: str) -> np.ndarray:
    """Basis values in float64 (monomial powers, or cos(j·arccos x))."""
    x = np.asarray(points)[:, None]
    j = np.arange(ncols)[None, :]
    if basis == "monomial":
        return x**j
    return np.cos(j * np.arccos(np.clip(x.real, -1, 1)))



def dd_basis(c: np.ndarray, ncols: int, basis: str) -> tuple[np.ndarray, np.ndarray]:
    """Basis values φ_j(c_k) (r, ncols) in double-double, by the recurrence."""
    r = c.shape[0]
    hi, lo = np.zeros((r, ncols)), np.zeros((r, ncols))
    if ncols == 0:
        return hi, lo
    hi[:, 0] = 1.0
    z = np.zeros(r)
    for j in range(1, ncols):
        prev = (hi[:, j - 1], lo[:, j - 1])
        if basis == "chebyshev" and j >= 2:
            t = dd_mul((2.0 * c, z), prev)
            hi[:, j], lo[:, j] = dd_add(t, (-hi[:, j - 2], -lo[:, j - 2]))
        else:
            hi[:, j], lo[:, j] = dd_mul(prev, (c, z))
    return hi, lo

