r"""Decode weights, solved accurately, and what they imply about the error.

Polynomial codes evaluate a product polynomial
:math:`p_C(x)=\sum_{d=0}^{K-1} c_d\,\phi_d(x)` (basis :math:`\phi_d`: monomials
:math:`x^d` or Chebyshev polynomials :math:`T_d`) at the points of the workers
that answered, :math:`S=\{\lambda_{s_1},\dots,\lambda_{s_r}\}`. A block of C is a
linear functional :math:`t^\top c` of the coefficients. With
:math:`V_{kj}=\phi_j(\lambda_{s_k})`, the *interpolation* weights solve
:math:`W V = T`:

* :math:`r\ge K` (exact decoding): the (weighted) minimum-norm solution
  :math:`W=T(V^H\Omega^{-2}V)^{-1}V^H\Omega^{-2}` (Ω = I: today's least squares);
* :math:`r<K` (truncated interpolation, Theorem 4 of the paper): keep the first
  :math:`r` basis functions, :math:`W=T_{:,0:r}V_{:,0:r}^{-1}`. This needs
  :math:`t_j=0` for :math:`j\ge r`.

How they are solved (fast for thresholds up to 512, accurate for any):

1. **In the code's own basis, in floating point** (:func:`_float_weights`): for
   monomials the points are scaled by a power of two, :math:`c=s\lambda`, so that
   :math:`V(\lambda)=V(c)\,\mathrm{diag}(s^{-j})` (exact); Chebyshev bases are used as
   they are (the Chebyshev–Vandermonde matrix at Chebyshev nodes is well
   conditioned for any K). A float64 QR solve gives the weights (above K answers: an
   exact solution within a few ulps of the minimum-norm one); iterative refinement
   with the residual :math:`T-WV` formed in double-double (106 bits, basis values by
   their recurrence in double-double) brings them to about 1e-27 relative. **A
   posteriori check**: the last correction must be below :math:`2^{-80}` of the
   weights (it estimates the remaining error), and :math:`\sum_k|W_{ck}|\le10^7` (so
   the defect, a sum that cancels, is known to ~1e-20); otherwise
2. **mpmath with a structured O(K²) solver** (:func:`_mp_dual_weights`): the dual
   Vandermonde system :math:`w^\top V=t^\top` of the square (truncated) system is
   solved through the Lagrange basis, :math:`w_k=t^\top\mathrm{coef}(\ell_k)`,
   :math:`\ell_k=L(x)/((x-\lambda_k)L'(\lambda_k))`, :math:`L=\prod_j(x-\lambda_j)`
   (one synthetic division per point; Björck–Pereyra's operation count, no inverse),
   at a precision raised until two successive precisions agree to 1e-30. Chebyshev
   targets are first mapped to the monomial functional :math:`t'=B^\top t`
   (:math:`x^j=\sum_iB_{ij}T_i`, exact). Above K answers the dense mpmath
   least-squares solve is kept for K ≤ 80 (beyond, the square solve on K spread-out
   answers, an exact decode too).

Because decoding is linear, everything the decode does to the true blocks is
captured by the *defect tensor*

.. math:: D[c,a,b] = \sum_k W[c,k]\,G_A[s_k,a]\,G_B[s_k,b] - [a=(i,j),\,b=(j,u),\,c=(i,u)],

computed in high precision from the exact encoding coefficients. In exact
arithmetic :math:`\hat C_c - C_c = \sum_{a,b} D[c,a,b]\,A_aB_b`, which gives both the
mpmath reference split (:mod:`gpucoded.reference`) and the rigorous a-priori bound
:math:`\|\hat C-C\|_{\max}\le \max_c \||D_c|\|_2\,\|A\|_F\|B\|_F`. For polynomial codes
D depends only on the K moments :math:`\mu_d=\sum_kW_{ck}\phi_d(\lambda_{s_k})`
(:func:`moment_defect`, O(rK) high-precision operations).

The *regularised* weights of the ``"auto"`` decoder (:func:`ridge_weights`) minimise
:math:`\|D_c(w)\|_F^2+\rho^2\sum_k|w_k|^2c_k^2` (:math:`c_k=\|G_A[s_k]\|\|G_B[s_k]\|`):
the interpolation defect plus the rounding the weights amplify, the smooth (ℓ2) form of
the a-priori bound; its normal equations are r×r,
:math:`((\bar G_AG_A^\top)\circ(\bar G_BG_B^\top)+\rho^2C^2)\,w=b`, solved in mpmath.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import mpmath
import numpy as np
from threadpoolctl import threadpool_limits

from .progress import step

__all__ = [
    "MpContext",
    "basis_values",
    "defect_tensor",
    "interpolation_weights",
    "moment_defect",
    "mp_context",
    "ridge_weights",
    "to_numpy_matrix",
]

MpContext = mpmath.ctx_mp.MPContext

_local = threading.local()

#: Relative agreement required between the weights at two successive precisions.
_AGREE = 1e-30
_MAX_DPS = 3200
#: Largest K for which an over-determined (r > K) fallback uses the dense mpmath solve.
_DENSE_MAX = 80
#: The float path accepts weights whose last refinement step is below this (relative).
_REFINE_TOL = 2.0**-80
#: Largest Σ_k|W_ck| accepted from the float path: its weights carry ~1e-27 relative
#: error, so the defect (a sum that cancels to ~0) is known to ~1e-27 × this (≤ 1e-20;
#: the ε-codes' weights, up to 1e30, go to the high-precision solve).
_FLOAT_MAX_WSUM = 1e7
#: The same for truncated (r < K) decodes, whose defect is the interpolation bound.
_FLOAT_MAX_WSUM_TRUNC = 1e3
#: Digits the float (double-double refined) weights are reported to carry.
_FLOAT_DPS = 32


def mp_context(dps: int) -> MpContext:
    """A thread-local mpmath context at ``dps`` decimal digits (thread safe)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = _local.ctx = mpmath.MPContext()
    ctx.dps = dps
    return ctx


def _is_mp(x: object) -> bool:
    """An mpmath number of any context (each context has its own mpf/mpc classes)."""
    return hasattr(x, "_mpf_") or hasattr(x, "_mpc_")


def _mp_scalar(ctx: MpContext, x: complex | float):
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
    xs = [_mp_scalar(ctx, x) for x in points]
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


# ----------------------------------------------------------- double-double helpers
_SPLIT = 134217729.0  # 2**27 + 1 (Dekker)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    c = _SPLIT * b
    bh = c - (c - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _dd_add(x: tuple, y: tuple) -> tuple[np.ndarray, np.ndarray]:
    s, e = _two_sum(x[0], y[0])
    t, f = _two_sum(x[1], y[1])
    e = e + t
    hi = s + e
    e = e - (hi - s)
    e = e + f
    s = hi + e
    return s, e - (s - hi)


def _dd_mul(x: tuple, y: tuple) -> tuple[np.ndarray, np.ndarray]:
    p, e = _two_prod(x[0], y[0])
    e = e + (x[0] * y[1] + x[1] * y[0])
    hi = p + e
    return hi, e - (hi - p)


def _dd_basis(c: np.ndarray, ncols: int, basis: str) -> tuple[np.ndarray, np.ndarray]:
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
            t = _dd_mul((2.0 * c, z), prev)
            hi[:, j], lo[:, j] = _dd_add(t, (-hi[:, j - 2], -lo[:, j - 2]))
        else:
            hi[:, j], lo[:, j] = _dd_mul(prev, (c, z))
    return hi, lo


def _dd_residual(T: np.ndarray, W: tuple, V: tuple) -> np.ndarray:
    """T − W V in double-double, rounded to float64; W (n_c, r), V (r, n)."""
    ph, pl = _dd_mul(
        (W[0][:, :, None], W[1][:, :, None]), (V[0][None, :, :], V[1][None, :, :])
    )  # (n_c, r, n)
    while ph.shape[1] > 1:  # pairwise dd sum over k
        h = ph.shape[1] // 2
        sh, sl = _dd_add((ph[:, :h], pl[:, :h]), (ph[:, h : 2 * h], pl[:, h : 2 * h]))
        if ph.shape[1] % 2:
            sh = np.concatenate([sh, ph[:, 2 * h :]], axis=1)
            sl = np.concatenate([sl, pl[:, 2 * h :]], axis=1)
        ph, pl = sh, sl
    res = _dd_add((T, np.zeros_like(T)), (-ph[:, 0], -pl[:, 0]))
    return res[0] + res[1]


# ------------------------------------------------------------------ float path
def _scale_power2(points: np.ndarray, basis: str) -> float:
    """Power of two s with s·max|λ| in [0.5, 1) for monomials (exact scaling); 1 else."""
    big = float(np.abs(points).max(initial=0.0))
    if basis != "monomial" or big == 0.0:
        return 1.0
    return 2.0 ** (-math.frexp(big)[1])


def _float_weights(
    points: np.ndarray, T: np.ndarray, basis: str, omega: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, float] | None:
    r"""Weights (hi, lo) and :math:`\kappa_\infty(V)` by a refined float solve, or None.

    ``T`` (n_c, n) are the targets of the n = min(r, K) basis functions solved for.
    None when the points are complex, the scaled system is singular in float64, or
    the refinement does not reach :data:`_REFINE_TOL` (the caller then uses mpmath).
    """
    if np.iscomplexobj(points) or not np.all(np.isfinite(points)):
        return None
    x = np.asarray(points, dtype=np.float64)
    r, n = x.size, T.shape[1]
    s = _scale_power2(x, basis)
    c = x * s  # exact
    with np.errstate(over="ignore", under="ignore"):
        Ts = T * s ** np.arange(n)[None, :]  # W V(c) = T diag(s^j), exact powers of two
    if not np.all(np.isfinite(Ts)):
        return None
    Vh, Vl = _dd_basis(c, n, basis)
    om = np.ones(r) if omega is None else np.asarray(omega, dtype=np.float64)
    Q, R = np.linalg.qr(Vh / om[:, None])  # Ω^{-1}V = QR, R (n, n)
    if not np.all(np.isfinite(R)) or np.min(np.abs(np.diag(R))) <= 1e-300:
        return None

    def apply(B: np.ndarray) -> np.ndarray:  # B R^{-1} Q^T Ω^{-1}
        return (np.linalg.solve(R.T, B.T).T @ Q.T) / om[None, :]

    Wh = apply(Ts)
    Wl = np.zeros_like(Wh)
    scale = np.abs(Wh).max(axis=1)  # per block: their sizes differ by up to γ^K
    scale[scale == 0] = 1.0
    last = math.inf
    for _ in range(5):
        d = apply(_dd_residual(Ts, (Wh, Wl), (Vh, Vl)))
        Wh, Wl = _dd_add((Wh, Wl), (d, np.zeros_like(d)))
        step = float((np.abs(d).max(axis=1) / scale).max())
        if not math.isfinite(step) or step > 0.5 * last and step > _REFINE_TOL:
            return None  # not contracting: beyond float64's reach
        last = step
        if step <= _REFINE_TOL**1.2:
            break
    if last > _REFINE_TOL:
        return None
    return Wh, Wl, _float_cond(x, c, s, Vh, basis)


def _float_cond(x: np.ndarray, c: np.ndarray, s: float, Vc: np.ndarray, basis: str) -> float:
    r""":math:`\kappa_\infty(V(\lambda))`, from :math:`V(\lambda)^+=\mathrm{diag}(s^j)V(c)^+`."""
    n = Vc.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):
        if basis == "monomial":
            V = np.abs(x)[:, None] ** np.arange(n)[None, :]
        else:
            V = np.abs(Vc)
        pinv = np.linalg.pinv(Vc) if Vc.shape[0] != n else np.linalg.inv(Vc)
        rows = np.abs(pinv).sum(axis=1) * s ** np.arange(n)
        val = float(V.sum(axis=1).max()) * float(rows.max())
    return val if math.isfinite(val) else math.inf


# ---------------------------------------------------------- structured mpmath path
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


def _rows_agree(W: list, prev: list, tol: float) -> bool:
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


def _mp_dual_weights(points: Sequence, T: np.ndarray, basis: str, dps: int) -> tuple:
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
        xs = [_mp_scalar(ctx, x) for x in points]
        tps = (
            _cheb_to_mono_functional(ctx, T)
            if basis == "chebyshev"
            else [[ctx.mpf(float(v)) for v in row] for row in T]
        )
        try:
            W, inv_norm = _mp_dual_once(ctx, xs, tps)
        except ZeroDivisionError:
            raise ValueError("evaluation points must be distinct") from None
        if prev is not None and _rows_agree(W, prev, _AGREE) and _rows_agree_abs(W, prev):
            break
        _check_precision(d)
        prev, d = W, d * 2
    return W, _dual_cond(points, n, basis, inv_norm), d


def _check_precision(d: int, what: str = "decode weights") -> None:
    """The doubling-precision solves stop at :data:`_MAX_DPS` digits."""
    if d >= _MAX_DPS:
        raise ArithmeticError(
            f"{what} did not converge up to {_MAX_DPS} digits; "
            "the evaluation points are too close together"
        )


def _dual_cond(points: Sequence, n: int, basis: str, inv_norm: float) -> float:
    """κ_∞(V) from ‖V⁻¹‖_∞ of the structured solve (monomials), else a float estimate."""
    if basis == "monomial":
        vnorm = max(float(sum(abs(complex(x)) ** j for j in range(n))) for x in points)
        return vnorm * inv_norm
    return float(np.linalg.cond(basis_float(np.asarray(points, float), n, basis), np.inf))


def basis_float(points: np.ndarray, ncols: int, basis: str) -> np.ndarray:
    """Basis values in float64 (monomial powers, or cos(j·arccos x))."""
    x = np.asarray(points)[:, None]
    j = np.arange(ncols)[None, :]
    if basis == "monomial":
        return x**j
    return np.cos(j * np.arccos(np.clip(x.real, -1, 1)))


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


def _dense_mp_weights(points, T, basis, dps, omega) -> tuple:
    """The dense mpmath solve at doubling precision (small over-determined systems)."""
    prev = None
    d = dps
    while True:
        step(f"interpolation weights, {d} digits")
        ctx = mp_context(d)
        V = basis_values(ctx, points, T.shape[1], basis)
        Tm = ctx.matrix([[_mp_scalar(ctx, v) for v in row] for row in T])
        try:
            W, Vi = _weights_dense(ctx, V, Tm, omega)
        except ZeroDivisionError:  # singular at this precision: raise the precision
            W = None
        if W is not None and prev is not None:
            if _max_abs(ctx, W - prev) <= _AGREE * max(_max_abs(ctx, W), 1e-300):
                break
        _check_precision(d)
        prev, d = W, d * 2
    cond = _inf_norm(ctx, V) * _inf_norm(ctx, Vi)
    return [[W[i, j] for j in range(W.cols)] for i in range(W.rows)], cond, d


def interpolation_weights(
    points: Sequence,
    targets: np.ndarray,
    basis: str = "monomial",
    *,
    dps: int = 40,
    omega: np.ndarray | None = None,
) -> tuple[np.ndarray, float, int, list]:
    r"""Interpolation decode weights :math:`W` (blocks × r) for evaluations at ``points``.

    Parameters
    ----------
    points : sequence of float or complex, length r
        Evaluation points of the answering workers, in answer order.
    targets : array (nblocks, K)
        Row c holds the coefficients :math:`t` of the functional :math:`t^\top c`
        that gives block c of the product (K = number of product coefficients).
    basis : {"monomial", "chebyshev"}
    dps : int
        Starting mpmath precision of the fallback (doubled until two successive
        precisions agree to 1e-30 relative).
    omega : array (r,), optional
        Weights Ω of the minimum-norm solution when r > K (default: ones, the plain
        least-squares / pseudo-inverse solution).

    Returns
    -------
    W : ndarray (nblocks, r), float64 or complex128
        The weights rounded once (correctly up to the refinement's 1e-24).
    cond : float
        :math:`\kappa_\infty(V)=\|V\|_\infty\|V^{+}\|_\infty` of the (possibly
        truncated) system that was solved, in the original (unscaled) basis.
    dps : int
        Digits of the high-precision weights (32 for the refined float path).
    W_mp : list of lists
        The high-precision weights as mpmath numbers (for the defect and the
        infinite-precision reference).

    Raises
    ------
    ValueError
        If fewer than ``max target index + 1`` points are given (the functional
        is not determined even approximately).
    ArithmeticError
        If the mpmath fallback does not converge within 3200 digits.
    """
    targets = np.asarray(targets)
    r = len(points)
    ncoef = min(r, targets.shape[1])
    nz = np.nonzero(np.any(targets != 0, axis=0))[0]
    need = int(nz.max()) + 1 if nz.size else 1
    if r < need:
        raise ValueError(
            f"{r} evaluation(s) cannot determine coefficient {need - 1}: at least {need} needed"
        )
    T = np.asarray(targets[:, :ncoef], dtype=np.float64)
    pts = np.asarray(points)
    with threadpool_limits(1, user_api="blas"):  # small solves: threads only contend
        fast = _float_weights(pts, T, basis, omega)
    limit = _FLOAT_MAX_WSUM if r >= targets.shape[1] else _FLOAT_MAX_WSUM_TRUNC
    if fast is not None and float(np.abs(fast[0]).sum(axis=1).max()) > limit:
        fast = None  # the defect would cancel below the refined weights' accuracy
    if fast is not None:
        Wh, Wl, cond = fast
        ctx = mp_context(_FLOAT_DPS + 8)
        W_mp = [[ctx.mpf(float(h)) + ctx.mpf(float(lo)) for h, lo in zip(rh, rl, strict=True)]
                for rh, rl in zip(Wh, Wl, strict=True)]
        return Wh + Wl, cond, _FLOAT_DPS, W_mp
    if r == ncoef:
        W_mp, cond, d = _mp_dual_weights(list(points), T, basis, dps)
    elif ncoef <= _DENSE_MAX:
        W_mp, cond, d = _dense_mp_weights(list(points), T, basis, dps, omega)
    else:  # square solve on ncoef spread-out answers: exact, the others get weight 0
        idx = np.unique(np.round(np.linspace(0, r - 1, ncoef)).astype(int))
        sub, cond, d = _mp_dual_weights([points[i] for i in idx], T, basis, dps)
        W_mp = [[0] * r for _ in sub]
        for c, row in enumerate(sub):
            for i, w in zip(idx, row, strict=True):
                W_mp[c][i] = w
    return _round_rows(W_mp), cond, d, W_mp


def _round_rows(W_mp: list) -> np.ndarray:
    """Round mpmath rows to float64, or complex128 if any entry is complex."""
    if any(hasattr(v, "_mpc_") for row in W_mp for v in row):
        return np.array([[complex(v) for v in row] for row in W_mp], dtype=np.complex128)
    return np.array([[float(v) for v in row] for row in W_mp], dtype=np.float64).reshape(
        len(W_mp), -1
    )


def to_numpy_matrix(M) -> np.ndarray:
    """Round an mpmath matrix to float64, or complex128 if any entry is complex."""
    return _round_rows([[M[i, j] for j in range(M.cols)] for i in range(M.rows)])


# ------------------------------------------------------------- regularised weights
def ridge_weights(
    encoding_rows: Callable[[MpContext], tuple],
    target: np.ndarray,
    rho: float,
    c: np.ndarray,
    *,
    dps: int = 60,
) -> tuple[list, list, int]:
    r"""Weights minimising :math:`\|D_c(w)\|_F^2+\rho^2\sum_k|w_k|^2c_k^2` per block.

    Parameters
    ----------
    encoding_rows : callable
        ``encoding_rows(ctx) -> (GA_S, GB_S)``, exact encoding rows (mpmath, r × n_a,
        r × n_b) of the answering workers.
    target : ndarray (n_c, n_a, n_b)
        The 0/1 target tensor.
    rho : float
        Regularisation (> 0): the rounding level of the worker format.
    c : ndarray (r,)
        :math:`\|G_A[s_k]\|_2\|G_B[s_k]\|_2`.
    dps : int
        Starting precision; doubled until two solves agree to 1e-25 relative.

    Returns
    -------
    W_mp : list of rows (mpmath)
    J2 : list of mpmath numbers
        :math:`\|D_c\|_F^2+\rho^2\sum_k|w_k|^2c_k^2` at the solution, per block.
    dps : int
    """
    prev, d = None, dps
    while True:
        step(f"regularised weights, {d} digits")
        ctx = mp_context(d)
        GA, GB = encoding_rows(ctx)
        H, rhs, tt = _ridge_system(ctx, GA, GB, target)
        r = GA.rows
        pen = [ctx.mpf(rho) ** 2 * ctx.mpf(float(ck)) ** 2 for ck in c]
        M = H.copy()
        for k in range(r):
            M[k, k] += pen[k]
        W, J2 = [], []
        for b, t2, w in zip(rhs, tt, _lu_solve_many(ctx, M, rhs), strict=True):
            W.append([w[k] for k in range(r)])
            # J² = ‖T‖² − Re(w^H b) at the optimum (normal equations)
            J2.append(t2 - ctx.re(ctx.fsum(ctx.conj(w[k]) * b[k] for k in range(r))))
        if prev is not None and _rows_agree(W, prev, 1e-25):
            return W, J2, d
        _check_precision(d, "regularised decode weights")
        prev, d = W, d * 2


def _lu_solve_many(ctx: MpContext, M: mpmath.matrix, rhs: list) -> list:
    """``[ctx.lu_solve(M, b) for b in rhs]`` with one LU decomposition of M.

    The same operations at the same precision as mpmath's ``lu_solve`` (10 guard
    bits, partial pivoting, then the two triangular solves), so the same numbers; the
    decomposition, O(r³) in multiprecision, is done once instead of once per block
    (p² right-hand sides for PolyDot: the first ``coded_matmul`` with PolyDot p=3,
    q=4, P=60 took 2.5 s before, 0.7 s after)."""
    prec = ctx.prec
    try:
        ctx.prec += 10
        LU, piv = ctx.LU_decomp(ctx.matrix(M).copy())
        return [ctx.U_solve(LU, ctx.L_solve(LU, ctx.matrix(b).copy(), piv)) for b in rhs]
    finally:
        ctx.prec = prec


def _ridge_system(ctx: MpContext, GA, GB, target: np.ndarray) -> tuple:
    r"""Gram :math:`H=(\bar G_AG_A^\top)\circ(\bar G_BG_B^\top)`, right-hand sides, ‖T_c‖²."""
    r = GA.rows
    HA = ctx.matrix(r, r)
    HB = ctx.matrix(r, r)
    for k in range(r):
        for q in range(r):
            HA[k, q] = ctx.fsum(ctx.conj(GA[k, a]) * GA[q, a] for a in range(GA.cols))
            HB[k, q] = ctx.fsum(ctx.conj(GB[k, b]) * GB[q, b] for b in range(GB.cols))
    H = ctx.matrix(r, r)
    for k in range(r):
        for q in range(r):
            H[k, q] = HA[k, q] * HB[k, q]
    rhs, tt = [], []
    for Tc in target:
        nz = list(zip(*np.nonzero(Tc), strict=True))
        b = ctx.matrix(r, 1)
        for k in range(r):
            b[k] = ctx.fsum(
                ctx.conj(GA[k, int(a)] * GB[k, int(bb)]) * int(Tc[a, bb]) for a, bb in nz
            )
        rhs.append(b)
        tt.append(ctx.mpf(int((Tc.astype(np.int64) ** 2).sum())))
    return H, rhs, tt


# -------------------------------------------------------------------- defects
def defect_tensor(
    W: list,
    encoding_rows: Callable[[MpContext], tuple],
    target: np.ndarray,
    dps: int,
) -> np.ndarray:
    r"""Defect tensor :math:`D[c,a,b]` of a decode (see module docstring), any code.

    Parameters
    ----------
    W : list of lists (nblocks × r)
        The exact (mpmath) weights: the defect measures interpolation alone, the
        rounding of the weights to the working dtype belongs to :math:`\epsilon_2`.
    encoding_rows : callable
        ``encoding_rows(ctx) -> (GA_S, GB_S)``: the exact encoding coefficients of
        the r answering workers as mpmath matrices (r × blocks of A / of B).
    target : ndarray (nblocks, nA, nB)
        0/1 tensor: which products :math:`A_aB_b` make block c of C.
    dps : int
        Working precision (use the one the weights converged at).

    Returns
    -------
    ndarray (nblocks, nA, nB), float64 (complex128 for complex codes).
    """
    ctx = mp_context(max(dps, 50))
    GA, GB = encoding_rows(ctx)
    nblk, r = len(W), len(W[0])
    nA, nB = GA.cols, GB.cols
    Wm = [[w if _is_mp(w) else _mp_scalar(ctx, w) for w in row] for row in W]
    ga = [[GA[k, a] for a in range(nA)] for k in range(r)]
    gb = [[GB[k, b] for b in range(nB)] for k in range(r)]
    out = np.zeros((nblk, nA, nB), dtype=np.complex128)
    for c in range(nblk):
        for a in range(nA):
            wa = [Wm[c][k] * ga[k][a] for k in range(r)]
            for b in range(nB):
                s = ctx.fsum(wa[k] * gb[k][b] for k in range(r)) - int(target[c, a, b])
                out[c, a, b] = complex(s)
    return _real_if_possible(out)


def _real_if_possible(out: np.ndarray) -> np.ndarray:
    if not np.any(out.imag):
        return out.real.copy()
    return out


def moment_defect(
    W: list,
    points: Sequence,
    basis: str,
    a_index: np.ndarray,
    b_index: np.ndarray,
    a_scale: np.ndarray,
    b_scale: np.ndarray,
    target: np.ndarray,
    dps: int,
) -> np.ndarray:
    r"""Defect tensor of a polynomial code from the K moments of the weights.

    :math:`\mu_{cd}=\sum_kW_{ck}\phi_d(\lambda_{s_k})` (mpmath, O(rK)); then
    :math:`D[c,a,b]=\sigma_a\tau_b\,\mu_{c,\alpha_a+\beta_b}-T[c,a,b]` for monomials
    and :math:`\sigma_a\tau_b(\mu_{c,\alpha+\beta}+\mu_{c,|\alpha-\beta|})/2-T[c,a,b]`
    for Chebyshev bases (:math:`T_\alpha T_\beta=(T_{\alpha+\beta}+T_{|\alpha-\beta|})/2`).
    Same values as :func:`defect_tensor`, without its O(n_c n_a n_b r) cost.
    """
    ctx = mp_context(max(dps, 50))
    K = int(a_index.max() + b_index.max() + 1)
    V = basis_values(ctx, points, K, basis)
    r = len(points)
    mom = []
    for row in W:
        wr = [w if _is_mp(w) else _mp_scalar(ctx, w) for w in row]
        mom.append([complex(ctx.fdot([wr[k] for k in range(r)], [V[k, d] for k in range(r)]))
                    for d in range(K)])
    # entries with a target term cancel (1 + tiny − 1): those are formed in mpmath below
    mu = np.array(mom, dtype=np.complex128)
    s = np.outer(a_scale, b_scale)
    apb = a_index[:, None] + b_index[None, :]
    if basis == "monomial":
        D = s[None] * mu[:, apb]
    else:
        amb = np.abs(a_index[:, None] - b_index[None, :])
        D = s[None] * (mu[:, apb] + mu[:, amb]) / 2
    D = D - target
    for c, a, b in zip(*np.nonzero(target), strict=True):
        D[c, a, b] = _exact_target_entry(ctx, W[c], V, r, basis, a_index[a], b_index[b],
                                         a_scale[a] * b_scale[b], int(target[c, a, b]))
    return _real_if_possible(D.astype(np.complex128))


def _exact_target_entry(ctx, w, V, r, basis, al, be, sc, t) -> complex:
    """D entry of a target pair, formed in mpmath (no float cancellation)."""
    wr = [x if _is_mp(x) else _mp_scalar(ctx, x) for x in w]
    m1 = ctx.fdot(wr, [V[k, int(al + be)] for k in range(r)])
    if basis == "chebyshev":
        m2 = ctx.fdot(wr, [V[k, int(abs(al - be))] for k in range(r)])
        m1 = (m1 + m2) / 2
    return complex(ctx.mpf(float(sc)) * m1 - t)


def spectral_abs_norms(D: np.ndarray) -> np.ndarray:
    r""":math:`\||D_c|\|_2` for each block c (bounds the bilinear form entrywise)."""
    if D.size == 0:
        return np.zeros(D.shape[0])
    return np.array([np.linalg.norm(np.abs(Dc), 2) for Dc in D])


def binom_tail(r: int, K: int, delta: float) -> float:
    r"""Theorem 4's factor :math:`\sum_{l=1}^{K-r}\binom{r+l-1}{l}\delta^l`."""
    return float(sum(math.comb(r + l - 1, l) * delta**l for l in range(1, K - r + 1)))
