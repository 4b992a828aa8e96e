r"""Evaluation (polynomial) codes: the machinery of MatDot, PolyDot, Chebyshev, Polynomial.

Worker w evaluates the encoding polynomials at its point :math:`\lambda_w`; the decode
weights of an answer set are the (truncated, or regularised) interpolation weights of
the code's basis at the answering points (:mod:`gpucoded.weights`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .. import weights as wt
from ..formats import Format
from ..points import validate_points
from .base import Code
from .decoding import DecodeWeights, WeightSolution, rounding_level
from .grid import BlockGrid

__all__ = ["DECODERS", "EvaluationCode"]

#: Decoders of the evaluation codes (``decoder=`` option): see :class:`EvaluationCode`.
DECODERS = ("auto", "interpolation", "minnorm")

#: Inner dimension the ``"auto"`` weights are tuned for (they are cached per answer set
#: and format, not per inner dimension; the optimum depends on it only weakly).
NOMINAL_INNER = 64

#: Scale of the ``"auto"`` decoder's rounding term relative to :func:`rounding_level`.
RIDGE_RHO_FACTOR = 0.3

#: Most answers for which ``"auto"`` solves the regularised weights (r×r mpmath system);
#: larger sets use the interpolation weights.
RIDGE_MAX_ANSWERS = 64

#: ``"auto"`` keeps exact interpolation weights unless the regularised ones predict
#: an error smaller by more than this factor.
AUTO_MARGIN = 2.0




class EvaluationCode(Code):
    r"""Polynomial (evaluation) codes: MatDot, PolyDot, Chebyshev, Polynomial codes.

    Worker w evaluates :math:`p_A(\lambda_w)=\sum_a \sigma_a A_a\phi_{\alpha_a}(\lambda_w)`
    and :math:`p_B(\lambda_w)=\sum_b \tau_b B_b\phi_{\beta_b}(\lambda_w)`, so
    ``GA[w, a] = σ_a φ_{α_a}(λ_w)``. The product has K = max α + max β + 1
    coefficients; block c of C is :math:`t_c^\top` (coefficients).

    Parameters
    ----------
    grid : BlockGrid
    points : array (P,)
        Distinct evaluation points (real, or complex for monomial codes).
    a_index, b_index : int arrays
        Basis index α_a of each A block and β_b of each B block.
    targets : array (n_c, K)
        Coefficient functional of each C block.
    basis : {"monomial", "chebyshev"}
    threshold : int
        Recovery threshold (answers the guarantee needs).
    approximate : bool
        Whether decoding below K answers is part of the guarantee.
    a_scale, b_scale : arrays, optional
        σ and τ (default ones).
    decode_points : {"all", "paper"}
        ``"all"``: use every answer (truncating at min(|S|, K) coefficients).
        ``"paper"``: block c uses only the first (index of its top coefficient + 1)
        answers, as in the proof of Theorem 2 (Appendix A) (interpolation weights).
    decoder : {"auto", "interpolation", "minnorm"}
        How the weights for an answer set S are chosen:

        ``"interpolation"``
            The interpolation weights (:func:`gpucoded.weights.interpolation_weights`):
            truncated below K answers, least squares (minimum norm) above.
        ``"minnorm"``
            The paper's reference implementation: minimum-norm least squares with a
            float64 pseudo-inverse (NumPy's default cut-off 1e-15): for monomial codes
            :math:`W=T\,V_S^+` (:math:`V_S`: all K columns, unscaled); else
            :math:`W_c=\mathrm{vec}(T_c)^\top E_S^+`, the rows of :math:`E_S` the
            block products' coefficients :math:`\mathrm{kron}(G_A[s],G_B[s])` (for
            Chebyshev codes :math:`T_\alpha T_\beta` is not one basis function, so the
            m² products are not all distinguishable below threshold).
        ``"auto"`` (default)
            The weights minimising the decode's own error model (see
            :meth:`DecodeWeights.estimate`): per block,
            :math:`\|D_c(w)\|_F^2+u_{\rm eff}^2\sum_k|w_k|^2c_k^2` (interpolation defect
            + rounding the weights amplify in the worker format, :math:`u_{\rm eff}`
            from :func:`rounding_level` at an inner dimension of
            :data:`NOMINAL_INNER`), solved in mpmath
            (:func:`gpucoded.weights.ridge_weights`); this is the ℓ2 form of the a-priori
            bound and, below threshold, the least-squares fit of the m² block products
            (the kron formulation). The exact interpolation weights are kept when they
            predict an error within :data:`AUTO_MARGIN` of it (so exact decodes stay
            exact) and for sets of more than :data:`RIDGE_MAX_ANSWERS` answers. The
            weights not chosen are cached too (``DecodeWeights.alternatives``): a
            decode with the operands at hand (``coded_matmul``, ``CodedMatrix``, or
            ``Code.decode(..., data=(A, B))``) measures both on the data and applies
            the other where it errs clearly less (:mod:`gpucoded.codes.datachoice`).
    """

    #: The ``decoder=`` names this family accepts (a family with its own decoders, such
    #: as :class:`~gpucoded.codes.circle.CircleMatDot`, lists them and handles them in
    #: its ``_solve``; the generic names select the rules below).
    decoders: tuple[str, ...] = DECODERS

    def __init__(
        self,
        grid: BlockGrid,
        points: np.ndarray,
        a_index: Sequence[int],
        b_index: Sequence[int],
        targets: np.ndarray,
        *,
        basis: str = "monomial",
        threshold: int,
        approximate: bool = False,
        a_scale: Sequence[float] | None = None,
        b_scale: Sequence[float] | None = None,
        decode_points: str = "all",
        decoder: str = "auto",
    ) -> None:
        super().__init__()
        if decoder not in self.decoders:
            names = ", ".join(map(repr, self.decoders))
            raise ValueError(
                f"{type(self).__name__}'s decoder must be one of {names}; got {decoder!r}"
            )
        self.decoder = decoder
        if decode_points not in ("all", "paper"):
            raise ValueError(f"decode_points must be 'all' or 'paper', got {decode_points!r}")
        self.grid = grid
        self.points = np.asarray(points)
        self.P = int(self.points.shape[0])
        validate_points(self.points, self.P)  # e.g. a huge gamma can underflow them to 0
        self.basis = basis
        self.a_index = np.asarray(a_index, dtype=int)
        self.b_index = np.asarray(b_index, dtype=int)
        self.a_scale = np.ones(grid.n_a) if a_scale is None else np.asarray(a_scale, float)
        self.b_scale = np.ones(grid.n_b) if b_scale is None else np.asarray(b_scale, float)
        self.K = int(self.a_index.max() + self.b_index.max() + 1)
        self.targets = np.asarray(targets, dtype=float)
        if self.targets.shape != (grid.n_c, self.K):
            raise ValueError(f"targets must be ({grid.n_c}, {self.K}); got {self.targets.shape}")
        self.recovery_threshold = int(threshold)
        self.approximate = approximate
        self.decode_points = decode_points
        if self.P < self.recovery_threshold:
            raise ValueError(
                f"P={self.P} workers is below the recovery threshold {self.recovery_threshold} "
                f"of {type(self).__name__}: use P >= {self.recovery_threshold}"
            )
        self.GA = self._basis_float(self.a_index) * self.a_scale
        self.GB = self._basis_float(self.b_index) * self.b_scale
        if basis == "chebyshev":
            # cos(k arccos x): the angle's relative error u is amplified k times
            self.coef_ulps = 2.0 + 4.0 * self.K

    @property
    def delta(self) -> float:
        """Radius of the evaluation points, max |λ_w|."""
        return float(np.abs(self.points).max())

    def _basis_float(self, idx: np.ndarray) -> np.ndarray:
        x = self.points[:, None]
        if self.basis == "monomial":
            return x ** idx[None, :]
        if self.basis == "chebyshev":
            if np.iscomplexobj(x) or np.abs(x).max() > 1:
                raise ValueError("Chebyshev codes need real points in [-1, 1]")
            # cos(k arccos x): stable for any k, unlike a monomial expansion
            return np.cos(idx[None, :] * np.arccos(x))
        raise ValueError(f"unknown basis {self.basis!r}")

    def _encoding_rows(self, ctx: wt.MpContext, S: Sequence[int]) -> tuple[Any, Any]:
        pts = [self.points[w] for w in S]
        V = wt.basis_values(ctx, pts, self.K, self.basis)
        r = len(pts)
        GA = ctx.matrix(r, self.grid.n_a)
        GB = ctx.matrix(r, self.grid.n_b)
        for k in range(r):
            for a in range(self.grid.n_a):
                GA[k, a] = ctx.mpf(self.a_scale[a]) * V[k, int(self.a_index[a])]
            for b in range(self.grid.n_b):
                GB[k, b] = ctx.mpf(self.b_scale[b]) * V[k, int(self.b_index[b])]
        return GA, GB

    def block_need(self) -> np.ndarray:
        """For each C block, 1 + the index of its highest nonzero target coefficient."""
        return np.array([np.nonzero(row)[0].max() + 1 for row in self.targets])

    def _solve(self, S: tuple[int, ...], partial: bool, fmt: Format) -> WeightSolution:
        r = len(S)
        need = int(self.block_need().max())
        if r < need:
            raise ValueError(
                f"{type(self).__name__} cannot estimate C from {r} answers: at least "
                f"{need} are needed even approximately (recovery threshold "
                f"{self.recovery_threshold})"
            )
        rule = self.decoder if self.decoder in DECODERS else "interpolation"
        if rule == "minnorm":
            return self._solve_minnorm(S)
        if self.decode_points == "paper" and r < self.K:
            return self._solve_paper(S)
        if rule == "interpolation":
            pts = [self.points[w] for w in S]
            W, cond, dps, W_mp = wt.interpolation_weights(pts, self.targets, self.basis)
            return WeightSolution(W, cond, dps, r >= self.K, W_mp, "interpolation")
        return self._solve_auto(S, fmt)

    def _solve_paper(self, S: tuple[int, ...]) -> WeightSolution:
        """Block c from the first (top coefficient + 1) answers (Theorem 2's proof)."""
        pts = [self.points[w] for w in S]
        r = len(S)
        rows, conds, dpss, mp_rows = [], [], [], []
        for c, d in enumerate(self.block_need()):
            Wc, cond, dps, Wc_mp = wt.interpolation_weights(
                pts[:d], self.targets[c : c + 1, :], self.basis
            )
            row = np.zeros((1, r), dtype=Wc.dtype)
            row[0, :d] = Wc[0]
            rows.append(row)
            mp_rows.append(list(Wc_mp[0]) + [0] * (r - d))
            conds.append(cond)
            dpss.append(dps)
        W = np.concatenate(rows, axis=0)
        return WeightSolution(W, max(conds), max(dpss), False, mp_rows, "interpolation")

    def _solve_minnorm(self, S: tuple[int, ...]) -> WeightSolution:
        """The reference implementation's float64 pseudo-inverse weights."""
        Sl = list(S)
        if self.basis == "monomial":
            V = wt.basis_float(self.points[Sl], self.K, "monomial")
            Vp = np.linalg.pinv(V)
            W = self.targets.astype(V.dtype) @ Vp
        else:
            r = len(S)
            V = (self.GA[Sl][:, :, None] * self.GB[Sl][:, None, :]).reshape(r, -1)
            Vp = np.linalg.pinv(V)
            W = self.grid.target_tensor().reshape(self.grid.n_c, -1).astype(V.dtype) @ Vp
        with np.errstate(over="ignore", invalid="ignore"):
            cond = float(np.linalg.norm(V, np.inf) * np.linalg.norm(Vp, np.inf))
        W_mp = [[complex(x) if np.iscomplexobj(W) else float(x) for x in row] for row in W]
        return WeightSolution(W, cond, 50, False, W_mp, "minnorm")

    def _solve_auto(self, S: tuple[int, ...], fmt: Format) -> WeightSolution:
        """Exact/interpolation weights, or the regularised ones when they predict better."""
        r, Sl = len(S), list(S)
        pts = [self.points[w] for w in S]
        c = np.linalg.norm(self.GA[Sl], axis=1) * np.linalg.norm(self.GB[Sl], axis=1)
        W, cond, dps, W_mp = wt.interpolation_weights(pts, self.targets, self.basis)
        exact = r >= self.K
        if r > RIDGE_MAX_ANSWERS:
            return WeightSolution(W, cond, dps, exact, W_mp, "interpolation")
        rho = RIDGE_RHO_FACTOR * rounding_level(fmt, self, r, NOMINAL_INNER)
        if exact and rho * float(np.abs(W).max()) * float(c.max()) < 1e-8:
            return WeightSolution(W, cond, dps, True, W_mp, "interpolation")  # nothing to trade
        Wr, J2, dps_r = wt.ridge_weights(
            lambda ctx: self._encoding_rows(ctx, S), self.grid.target_tensor(), rho, c
        )
        dw = DecodeWeights(self, S, W, cond, dps, exact, W_mp)
        d_fro = dw.defect_fro
        fp_int = (rho * dw.rss_factors) ** 2
        J_int = float(np.sqrt(d_fro**2 + fp_int).max())
        J_reg = math.sqrt(max(float(max(J2)), 0.0))
        # a gain that rests on the rounding model (within a few × of the truth) must be
        # clear; one on the defect alone (exact arithmetic) is taken as it is
        rounding_driven = float(fp_int.max()) > 0.01 * J_int**2
        margin = AUTO_MARGIN if (exact or rounding_driven) else 1.0
        # both candidates are kept: a decode with the operands at hand chooses on the
        # data (gpucoded.codes.datachoice); this data-free choice is the default
        interp = WeightSolution(W, cond, dps, exact, W_mp, "interpolation")
        reg = WeightSolution(wt.round_rows(Wr), cond, dps_r, False, Wr, "regularised")
        unit = wt.unit_gain_weights(Wr, J2, self.grid.target_tensor())  # ridge, no shrink
        extra = () if unit is None else (
            WeightSolution(wt.round_rows(unit[0]), cond, dps_r, False, unit[0], "unbiased"),
        )  # fmt: skip
        if J_int <= margin * J_reg:
            return replace(interp, alternatives=_distinct(interp, (reg, *extra), fmt))
        return replace(reg, alternatives=_distinct(reg, (interp, *extra), fmt))

    def defect_of(self, dw: DecodeWeights) -> np.ndarray:
        """Defect from the weights' K moments (:func:`gpucoded.weights.moment_defect`)."""
        return wt.moment_defect(
            dw.W_mp,
            [self.points[w] for w in dw.workers],
            self.basis,
            self.a_index,
            self.b_index,
            self.a_scale,
            self.b_scale,
            self.grid.target_tensor(),
            dw.dps,
        )

    def theorem_bound(self, r: int | None = None, norm_bound: float = 1.0) -> float:
        r"""The paper's a-priori bound (Theorem 4 with Lemma 2) at radius δ.

        For a block whose top target coefficient is :math:`e` decoded from
        :math:`d=e+1` points (``decode_points="paper"``) the interpolation error is at
        most :math:`\eta^2\sum_{l=1}^{K-d}\binom{d+l-1}{l}\delta^l`; the maximum over
        blocks is returned. Valid for monomial codes with :math:`\delta<1/d`.
        ``r`` (answers) ≥ K gives 0.
        """
        if r is not None and r >= self.K:
            return 0.0
        need = self.block_need()
        return norm_bound**2 * max(wt.binom_tail(int(d), self.K, self.delta) for d in need)

    def _params(self) -> str:
        return f"P={self.P}, threshold={self.recovery_threshold}, delta={self.delta:.3g}"


def _distinct(
    chosen: WeightSolution, others: tuple[WeightSolution, ...], fmt: Format
) -> tuple[WeightSolution, ...]:
    r"""The candidates that differ from ``chosen`` by more than the worker format's unit
    roundoff u (relative to :math:`\max|W|`): one within it decodes to the same C up
    to :math:`u\max|W|\sum_k|Z_k|`, below the decode sum's own rounding, so measuring
    which of the two errs less on the data (:mod:`gpucoded.codes.datachoice`, a pass
    over the operands per call) cannot choose better. A well-conditioned set whose
    ridge weights equal its interpolation weights to rounding (the exact Chebyshev
    code in float32) keeps no alternative and pays no measured choice.
    """
    scale = float(np.abs(chosen.W).max(initial=0.0))
    tol = fmt.u * scale
    return tuple(
        a for a in others
        if a.W.shape != chosen.W.shape or not float(np.abs(a.W - chosen.W).max()) <= tol
    )  # fmt: skip
