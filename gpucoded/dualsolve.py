r"""High-precision solves of the Vandermonde systems (where float64 refinement fails).

The square (truncated) system's dual :math:`w^\top V=t^\top` is solved through the
Lagrange basis (one synthetic division per point, O(K²), no inverse): in Arb ball
arithmetic when python-flint is there (certified, :func:`mp_dual_weights`), else in
mpmath at a precision doubled until two solves agree. Small over-determined systems use
the dense mpmath least-squares solve (:func:`dense_mp_weights`). See
:mod:`gpucoded.weights` for when each runs.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from .basis import MpContext, basis_float, basis_values, mp_context, mp_scalar
from .progress import step

__all__ = ["AGREE", "MAX_DPS", "check_precision", "dense_mp_weights", "mp_dual_weights",
           "rows_agree"]

#: Relative agreement required between the weights at two successive precisions.
AGREE = 1e-30
#: Most digits the doubling-precision solves go to.
MAX_DPS = 3200


def _cheb_to_mono_functional(ctx: MpContext, T: np.ndarray) -> list:
    r"""Monomial functional :math:`t'=B^\top t` of Chebyshev targets (exact).

    :math:`x^j=2^{1-j}\sum_{i\equiv j\,(2)}\binom{j}{(j-i)/2}T_i`, the :math:`T_0`
    term halved."""
    n_c, n = T.shape
    out = []
    for row in T:
        tp = []
        for j in range(n):
            acc = ctx.mpf(0)
            for i in range(j % 2, j + 1, 2):
                if row[i] != 0:
                    b = ctx.mpf(math.comb(j, (j - i) // 2)) * ctx.ldexp(1, 1 - j)
                    acc += (b / 2 if i == 0 else b) * ctx.mpf(float(row[i]))
            tp.append(acc)
        out.append(tp)
    return out


def _mp_dual_once(ctx: MpContext, xs: list, tps: list) -> tuple[list, float]:
    """Square dual Vandermonde solve at one precision: weights rows, ‖V⁻¹‖_∞ (monomial)."""
    n = len(xs)
    L = [ctx.mpf(1)]  # coefficients of prod (x - x_j), low to high
    for xj in xs:
        L = [(L[i - 1] if i else 0) - xj * (L[i] if i < len(L) else 0) for i in range(len(L) + 1)]
    W = [[None] * n for _ in tps]
    inv_rows = [ctx.mpf(0)] * n
    for k, xk in enumerate(xs):
        q = [ctx.mpf(0)] * n  # L / (x - x_k): synthetic division from the top
        acc = L[n]
        for j in range(n - 1, -1, -1):
            q[j] = acc
            acc = L[j] + xk * acc
        den = ctx.fprod(xk - xj for j, xj in enumerate(xs) if j != k)
        for c, tp in enumerate(tps):
            W[c][k] = ctx.fdot(tp, q) / den
        aden = abs(den)
        inv_rows = [a + abs(qj) / aden for a, qj in zip(inv_rows, q, strict=True)]
    return W, float(max(inv_rows, default=0))


def rows_agree(W: list, prev: list, tol: float) -> bool:
    """Whether each row of W agrees with prev's to ``tol`` of the row's largest entry."""
    for ra, rb in zip(W, prev, strict=True):
        big = max(abs(a) for a in ra)
        if max(abs(a - b) for a, b in zip(ra, rb, strict=True)) > tol * big:
            return False
    return True


_FLINT_LOCK = threading.Lock()  # FLINT's working precision is process-global
_MAX_BITS = 1 << 14


def _flint_dual_weights(points: Sequence, T: np.ndarray, basis: str) -> tuple | None:
    r"""The structured solve of :func:`_mp_dual_once` in Arb ball arithmetic (python-flint).

    Certified: the precision is doubled from 128 bits until every weight's ball radius
    is below :math:`2^{-110}` of the largest weight (a rigorous enclosure of the exact
    weights of the binary points), so no second agreeing solve is needed. Returns
    (W_mp, ‖V⁻¹‖_∞, digits) with the balls' midpoints as mpmath numbers, or None when
    python-flint is not installed (mpmath then does the same computation).
    """
    try:
        from flint import acb, arb
        from flint import ctx as fctx
    except ImportError:  # pragma: no cover - python-flint is a dependency
        return None
    cplx = bool(np.iscomplexobj(np.asarray(points)))
    grow = max(1.0, float(np.abs(np.asarray(points)).max())) ** max(T.shape[1] - 1, 0)
    with _FLINT_LOCK:
        old = fctx.prec
        try:
            bits = 128
            while True:
                fctx.prec = bits
                xs = [acb(complex(x)) if cplx else arb(float(x)) for x in points]
                tps = _flint_functional(arb, T, basis)
                W, inv = _flint_dual_once(arb(0), xs, tps)
                # certified to 2^-110 of each block's largest weight (blocks differ by
                # up to γ^K in size) and to 2^-100 absolute in Σ_k|ΔW_ck|·max|φ(λ_k)|:
                # the defect Σ_k W_ck φ_d(λ_k) − t_d cancels from |W| down to ~0
                ok = all(w.is_finite() for row in W for w in row) and all(
                    max(float(w.rad()) for w in row)
                    <= 2.0**-110 * max(float(abs(w.mid())) for w in row)
                    and sum(float(w.rad()) for w in row) * grow <= 2.0**-100
                    for row in W
                )
                if ok:
                    break
                if bits >= _MAX_BITS:
                    raise ArithmeticError(
                        f"decode weights not certified at {_MAX_BITS} bits; "
                        "the evaluation points are too close together"
                    )
                bits *= 2
        finally:
            fctx.prec = old
    ctx = mp_context(int(bits * 0.30103) + 1)
    W_mp = [[_flint_to_mp(ctx, w, cplx) for w in row] for row in W]
    return W_mp, inv, int(bits * 0.30103)


def _flint_to_mp(ctx: MpContext, w, cplx: bool):
    """The midpoint of an Arb/Acb ball as an exact mpmath number."""
    from mpmath.libmp import from_man_exp

    def one(x):
        man, exp = x.mid().man_exp()
        return ctx.make_mpf(from_man_exp(int(man), int(exp)))

    return ctx.mpc(one(w.real), one(w.imag)) if cplx else one(w)


def _flint_functional(arb, T: np.ndarray, basis: str) -> list:
    """Targets as a monomial functional (Chebyshev: t' = Bᵀt, exact integers × 2^k)."""
    n = T.shape[1]
    out = []
    for row in T:
        if basis != "chebyshev":
            out.append([arb(float(v)) for v in row])
            continue
        tp = []
        for j in range(n):
            acc = arb(0)
            for i in range(j % 2, j + 1, 2):
                if row[i] != 0:
                    b = arb(math.comb(j, (j - i) // 2)) * arb(2) ** (1 - j)
                    acc += (b / 2 if i == 0 else b) * arb(float(row[i]))
            tp.append(acc)
        out.append(tp)
    return out


def _flint_dual_once(zero, xs: list, tps: list) -> tuple[list, float]:
    """:func:`_mp_dual_once` with Arb/Acb balls."""
    n = len(xs)
    L = [zero + 1]
    for xj in xs:
        L = [(L[i - 1] if i else zero) - xj * (L[i] if i < len(L) else zero)
             for i in range(len(L) + 1)]
    W = [[zero] * n for _ in tps]
    inv_rows = [0.0] * n
    for k, xk in enumerate(xs):
        q = [zero] * n
        acc = L[n]
        for j in range(n - 1, -1, -1):
            q[j] = acc
            acc = L[j] + xk * acc
        den = zero + 1
        for j, xj in enumerate(xs):
            if j != k:
                den *= xk - xj
        for c, tp in enumerate(tps):
            s = zero
            for tj, qj in zip(tp, q, strict=True):
                if tj != 0:
                    s += tj * qj
            W[c][k] = s / den
        aden = float(abs(den).mid())
        inv_rows = [a + float(abs(qj).mid()) / aden for a, qj in zip(inv_rows, q, strict=True)]
    return W, max(inv_rows, default=0.0)


def _rows_agree_abs(W: list, prev: list) -> bool:
    """Σ_k|ΔW_ck| ≤ 1e-30 in every row (the defect cancels from |W| to ~0)."""
    return all(
        sum(abs(a - b) for a, b in zip(ra, rb, strict=True)) <= 1e-30
        for ra, rb in zip(W, prev, strict=True)
    )


def mp_dual_weights(points: Sequence, T: np.ndarray, basis: str, dps: int) -> tuple:
    """Square system: Arb (certified) if available, else mpmath at doubling precision.

    Returns (W_mp, cond, dps)."""
    n = len(points)
    fl = _flint_dual_weights(points, T, basis)
    if fl is not None:
        W, inv_norm, d = fl
        return W, _dual_cond(points, n, basis, inv_norm), d
    prev = None
    d = dps
    while True:
        step(f"interpolation weights (dual), {d} digits")
        ctx = mp_context(d)
        xs = [mp_scalar(ctx, x) for x in points]
        tps = (
            _cheb_to_mono_functional(ctx, T)
            if basis == "chebyshev"
            else [[ctx.mpf(float(v)) for v in row] for row in T]
        )
        try:
            W, inv_norm = _mp_dual_once(ctx, xs, tps)
        except ZeroDivisionError:
            raise ValueError("evaluation points must be distinct") from None
        if prev is not None and rows_agree(W, prev, AGREE) and _rows_agree_abs(W, prev):
            break
        check_precision(d)
        prev, d = W, d * 2
    return W, _dual_cond(points, n, basis, inv_norm), d


def check_precision(d: int, what: str = "decode weights") -> None:
    """The doubling-precision solves stop at :data:`MAX_DPS` digits."""
    if d >= MAX_DPS:
        raise ArithmeticError(
            f"{what} did not converge up to {MAX_DPS} digits; "
            "the evaluation points are too close together"
        )


def _dual_cond(points: Sequence, n: int, basis: str, inv_norm: float) -> float:
    """κ_∞(V) from ‖V⁻¹‖_∞ of the structured solve (monomials), else a float estimate."""
    if basis == "monomial":
        vnorm = max(float(sum(abs(complex(x)) ** j for j in range(n))) for x in points)
        return vnorm * inv_norm
    return float(np.linalg.cond(basis_float(np.asarray(points, float), n, basis), np.inf))



def _weights_dense(ctx: MpContext, V, T, omega: np.ndarray | None):
    """W = T (V^H Ω^-2 V)^{-1} V^H Ω^-2 (square: T V^{-1}); returns (W, V^+)."""
    r, n = V.rows, V.cols
    if r == n:
        Vi = ctx.inverse(V)
    else:
        Om = ctx.diag([1 / ctx.mpf(float(o)) ** 2 for o in omega]) if omega is not None else None
        VH = V.H if Om is None else V.H * Om
        Vi = ctx.inverse(VH * V) * VH
    return T * Vi, Vi


def _max_abs(ctx: MpContext, M) -> float:
    return float(max((abs(M[i, j]) for i in range(M.rows) for j in range(M.cols)), default=0))


def _inf_norm(ctx: MpContext, M) -> float:
    return float(max((sum(abs(M[i, j]) for j in range(M.cols)) for i in range(M.rows)), default=0))


def dense_mp_weights(points, T, basis, dps, omega) -> tuple:
    """The dense mpmath solve at doubling precision (small over-determined systems)."""
    prev = None
    d = dps
    while True:
        step(f"interpolation weights, {d} digits")
        ctx = mp_context(d)
        V = basis_values(ctx, points, T.shape[1], basis)
        Tm = ctx.matrix([[mp_scalar(ctx, v) for v in row] for row in T])
        try:
            W, Vi = _weights_dense(ctx, V, Tm, omega)
        except ZeroDivisionError:  # singular at this precision: raise the precision
            W = None
        if W is not None and prev is not None:
            if _max_abs(ctx, W - prev) <= AGREE * max(_max_abs(ctx, W), 1e-300):
                break
        check_precision(d)
        prev, d = W, d * 2
    cond = _inf_norm(ctx, V) * _inf_norm(ctx, Vi)
    return [[W[i, j] for j in range(W.cols)] for i in range(W.rows)], cond, d

