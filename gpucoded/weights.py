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
2. **mpmath with a structured O(K²) solver** (:func:`gpucoded.dualsolve.mp_dual_weights`): the dual
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
(:func:`gpucoded.defects.moment_defect`, O(rK) high-precision operations).

The *regularised* weights of the ``"auto"`` decoder (:func:`ridge_weights`) minimise
:math:`\|D_c(w)\|_F^2+\rho^2\sum_k|w_k|^2c_k^2` (:math:`c_k=\|G_A[s_k]\|\|G_B[s_k]\|`):
the interpolation defect plus the rounding the weights amplify, the smooth (ℓ2) form of
the a-priori bound; its normal equations are r×r,
:math:`((\bar G_AG_A^\top)\circ(\bar G_BG_B^\top)+\rho^2C^2)\,w=b`, solved in mpmath.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mpmath
import numpy as np
from threadpoolctl import threadpool_limits

from .basis import MpContext, basis_float, basis_values, dd_basis, mp_context
from .ddarith import dd_add, dd_mul
from .defects import binom_tail, defect_tensor, moment_defect, spectral_abs_norms
from .dualsolve import check_precision, dense_mp_weights, mp_dual_weights, rows_agree
from .progress import step

__all__ = [
    "MpContext",
    "basis_float",
    "basis_values",
    "binom_tail",
    "defect_tensor",
    "interpolation_weights",
    "moment_defect",
    "mp_context",
    "ridge_weights",
    "round_rows",
    "unit_gain_weights",
    "spectral_abs_norms",
    "to_numpy_matrix",
]

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
#: Smallest ridge gain :func:`unit_gain_weights` undoes (a model-error price ≤ 15 %).
UNIT_GAIN_MIN = 0.75
#: Digits the float (double-double refined) weights are reported to carry.
_FLOAT_DPS = 32


def _dd_residual(T: np.ndarray, W: tuple, V: tuple) -> np.ndarray:
    """T − W V in double-double, rounded to float64; W (n_c, r), V (r, n)."""
    ph, pl = dd_mul(
        (W[0][:, :, None], W[1][:, :, None]), (V[0][None, :, :], V[1][None, :, :])
    )  # (n_c, r, n)
    while ph.shape[1] > 1:  # pairwise dd sum over k
        h = ph.shape[1] // 2
        sh, sl = dd_add((ph[:, :h], pl[:, :h]), (ph[:, h : 2 * h], pl[:, h : 2 * h]))
        if ph.shape[1] % 2:
            sh = np.concatenate([sh, ph[:, 2 * h :]], axis=1)
            sl = np.concatenate([sl, pl[:, 2 * h :]], axis=1)
        ph, pl = sh, sl
    res = dd_add((T, np.zeros_like(T)), (-ph[:, 0], -pl[:, 0]))
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
    Vh, Vl = dd_basis(c, n, basis)
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
        Wh, Wl = dd_add((Wh, Wl), (d, np.zeros_like(d)))
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
        W_mp, cond, d = mp_dual_weights(list(points), T, basis, dps)
    elif ncoef <= _DENSE_MAX:
        W_mp, cond, d = dense_mp_weights(list(points), T, basis, dps, omega)
    else:  # square solve on ncoef spread-out answers: exact, the others get weight 0
        idx = np.unique(np.round(np.linspace(0, r - 1, ncoef)).astype(int))
        sub, cond, d = mp_dual_weights([points[i] for i in idx], T, basis, dps)
        W_mp = [[0] * r for _ in sub]
        for c, row in enumerate(sub):
            for i, w in zip(idx, row, strict=True):
                W_mp[c][i] = w
    return round_rows(W_mp), cond, d, W_mp


def round_rows(W_mp: list) -> np.ndarray:
    """Round mpmath rows to float64, or complex128 if any entry is complex."""
    if any(hasattr(v, "_mpc_") for row in W_mp for v in row):
        return np.array([[complex(v) for v in row] for row in W_mp], dtype=np.complex128)
    return np.array([[float(v) for v in row] for row in W_mp], dtype=np.float64).reshape(
        len(W_mp), -1
    )


def to_numpy_matrix(M) -> np.ndarray:
    """Round an mpmath matrix to float64, or complex128 if any entry is complex."""
    return round_rows([[M[i, j] for j in range(M.cols)] for i in range(M.rows)])


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
        if prev is not None and rows_agree(W, prev, 1e-25):
            return W, J2, d
        check_precision(d, "regularised decode weights")
        prev, d = W, d * 2


def unit_gain_weights(W_mp: list, J2: list, target: np.ndarray) -> tuple[list, list] | None:
    r"""The :func:`ridge_weights` rows rescaled to unit gain on their targets.

    The ridge solution shrinks: its decode of block c carries :math:`g_c\,C_c`
    instead of :math:`C_c` (plus the rest of the defect), with the gain
    :math:`g_c=1+\langle T_c,D_c\rangle/\|T_c\|^2=1-J_c^2/\|T_c\|^2` (at the optimum
    :math:`Mw=b`, so :math:`w^Hb=w^HMw=\|T_c\|^2-J_c^2`, real). Over many products
    that bias adds up where zero-mean errors average out (an SGD step :math:`g_c`
    times too short on every iteration). Minimising the same J subject to unit gain,
    :math:`\langle T_c,D_c\rangle=0`, gives by the Lagrange condition
    :math:`Mw=(1+\nu)b` the ridge solution scaled, :math:`w/g_c`, at
    :math:`J'^2=J_c^2/g_c`: a model error larger by :math:`g_c^{-1/2}`. Rows with
    :math:`g_c<` :data:`UNIT_GAIN_MIN` = 0.75 (a price above 15 %) are kept as they
    are. That bound was set after the MNIST study (docs/RESULTS.md): with 1/2, the
    ε-MatDot m = 20 rows (gain 0.53) lost 1.5 points of accuracy to the noise the
    rescaling amplifies, while MatDot (5, 8, 10) (gain 0.78) gained 0.4.

    Parameters
    ----------
    W_mp, J2 : as returned by :func:`ridge_weights`
    target : ndarray (n_c, n_a, n_b)
        The 0/1 target tensor.

    Returns
    -------
    (rows, J2) or None
        None when no row changes by more than 1e-12 (the gains are 1 already).
    """
    rows, js, moved = [], [], False
    for row, j2, Tc in zip(W_mp, J2, target, strict=True):
        t2 = int((Tc.astype(np.int64) ** 2).sum())
        g = 1 - j2 / t2 if t2 > 0 else 1
        if g >= UNIT_GAIN_MIN and abs(g - 1) > 1e-12:
            row, j2, moved = [w / g for w in row], j2 / g, True
        rows.append(row)
        js.append(j2)
    return (rows, js) if moved else None


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

