r"""Decode weights of one answer set and what they guarantee.

:class:`WeightSolution` is what a family's ``_solve`` returns for a set S of answering
workers; :class:`DecodeWeights` holds it (cached per set by :class:`~.base.Code`) with
the a-priori bounds and the typical-case estimate it implies; :class:`DecodeInfo` is
what one decode reports. :func:`rounding_level` is the rounding model both use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ..formats import FORMATS, Format, get_format
from ..weights import spectral_abs_norms

if TYPE_CHECKING:
    from .base import Code
    from .datachoice import DataChoice

__all__ = ["DecodeInfo", "DecodeWeights", "WeightSolution", "rounding_level"]


@dataclass(frozen=True)
class WeightSolution:
    """Decode weights for one sorted answer set, as a family's ``_solve`` finds them.

    Attributes
    ----------
    W : ndarray (n_c, |S|)
        The weights rounded to float64 (complex128 for complex codes).
    cond : float
        Condition number of the system solved.
    dps : int
        Decimal digits the high-precision weights carry.
    exact : bool
        Whether the decode is exact in exact arithmetic (zero defect).
    W_mp : list of rows
        The weights as exact / mpmath numbers (for the defect).
    rule : str
        ``"interpolation"``, ``"regularised"`` or ``"minnorm"``: which weights.
    alternatives : tuple of WeightSolution
        Other candidates the decoder weighed for this set (the ``"auto"`` decoder:
        interpolation or regularised, whichever it did not pick); a decode with the
        operands at hand chooses among all of them on the data
        (:mod:`gpucoded.codes.datachoice`).
    """

    W: np.ndarray
    cond: float
    dps: int
    exact: bool
    W_mp: list
    rule: str = "interpolation"
    alternatives: tuple[WeightSolution, ...] = ()


def _complex_spec(spec: Any) -> bool:
    """Whether a format spec is a complex dtype (complex data doubles the rounding)."""
    if isinstance(spec, Format) or (isinstance(spec, str) and spec in FORMATS):
        return False
    try:
        return np.dtype(spec).kind == "c"
    except TypeError:
        return False


def rounding_level(fmt: Format, code: Code, answers: int, inner: int) -> float:
    r"""Typical relative rounding of one decoded answer, :math:`u_{\mathrm{eff}}`.

    :math:`u_{\mathrm{eff}}^2=u_s^2\,(n_{\mathrm{inner}}/2+n_A+n_B+|S|+c_u)+4u_f^2`, with
    :math:`u_s` the unit roundoff of the storage (accumulation, encode and decode sums),
    :math:`u_f` that of the GEMM operands (TF32/BF16 round them) and :math:`c_u` the
    encoding coefficients' rounding in ulps: root-sum-square of independent roundings
    (a recursive sum of n random terms errs by about :math:`u\sqrt{n/2}` of its size).
    """
    u_s = fmt.storage_format.u
    g = code.grid
    terms = inner / 2 + g.n_a + g.n_b + answers + code.coef_ulps
    val = math.sqrt(u_s**2 * terms + 4 * fmt.u**2)
    return 2 * val if code.is_complex else val


@dataclass
class DecodeInfo:
    """What a decode used and what it guarantees.

    Attributes
    ----------
    workers : tuple of int
        Workers whose answers were combined, in the order of ``products``.
    cond : float
        :math:`\\kappa_\\infty` of the interpolation system solved for these workers.
    interp_bound : float or None
        Rigorous bound on the interpolation error :math:`\\epsilon_1` (max norm,
        infinite precision) given the inputs' Frobenius norms; 0 for exact decodes.
    fp_bound : float or None
        First-order worst-case bound on the floating-point error :math:`\\epsilon_2`.
    error_bound : float or None
        ``interp_bound + fp_bound``: a-priori bound on :math:`\\|\\hat C-C\\|_{\\max}`.
    weights_time : float
        Seconds spent computing weights (≈0 when cached).
    decode_time : float
        Seconds spent applying the weights.
    cached : bool
        Whether the weights came from the cache.
    estimate : float or None
        Typical-case error estimate (max norm, ≤ ``error_bound``;
        :meth:`DecodeWeights.estimate`), used with ``error_bound`` by the accuracy
        guard (:mod:`gpucoded.guard`).
    format : str or None
        Worker number format the bounds assume (:mod:`gpucoded.formats`).
    rule : str or None
        Which weights were applied (``"interpolation"``, ``"regularised"``,
        ``"minnorm"``).
    scores : dict or None
        The data-aware choice (:mod:`gpucoded.codes.datachoice`), where the set had
        several candidate weights and the operands were at hand: each candidate's
        measured :math:`\\max_c\\|\\hat C_c-C_c\\|_F` on this data, by rule. None:
        the weights were chosen without the data (one candidate, or no operands).
    choice : str or None
        Why ``rule`` was applied, in words.
    """

    workers: tuple[int, ...]
    cond: float
    interp_bound: float | None = None
    fp_bound: float | None = None
    error_bound: float | None = None
    weights_time: float = 0.0
    decode_time: float = 0.0
    cached: bool = False
    estimate: float | None = None
    format: str | None = None
    rule: str | None = None
    scores: dict[str, float] | None = None
    choice: str | None = None

    @classmethod
    def of(
        cls,
        dw: DecodeWeights,
        *,
        workers: Sequence[int],
        dtype: np.dtype,
        shape: tuple[int, int],
        norms: tuple[float, float] | None,
        inner: int | None,
        cached: bool,
        weights_time: float,
        decode_time: float,
    ) -> DecodeInfo:
        """What a decode with the weights ``dw`` of the answers ``workers`` reports.

        ``dtype``: the answers' dtype (complex data doubles the rounding terms);
        ``shape``: C's; ``norms`` (ρ_A, ρ_B) and ``inner`` enable the bounds and the
        estimate (:meth:`DecodeWeights.bounds`, :meth:`DecodeWeights.estimate`).
        """
        info = cls(
            workers=tuple(workers),
            cond=dw.cond,
            weights_time=weights_time,
            decode_time=decode_time,
            cached=cached,
            format=dw.fmt,
            rule=dw.rule,
        )
        if norms is not None:
            if inner is None:
                raise ValueError("norms=... needs inner= (the worker products' inner dimension)")
            spec: Any = dtype if np.dtype(dtype).kind == "c" else dw.fmt  # complex data: 2x
            ib, fb = dw.bounds(norms[0], norms[1], spec, inner)
            info.interp_bound, info.fp_bound, info.error_bound = ib, fb, ib + fb
            means = tuple(norms[2:4]) if len(norms) >= 4 else None  # operand_means
            info.estimate = dw.estimate(norms[0], norms[1], spec, inner, shape, means)
        return info


@dataclass
class DecodeWeights:
    """High-precision decode weights for one set of answering workers (sorted).

    ``fmt``: the worker format the weights were chosen for (the ``"auto"`` decoder's
    regularisation depends on it); ``rule``: ``"interpolation"``, ``"regularised"`` or
    ``"minnorm"`` (which weights the decoder chose for this set).
    """

    code: Code = field(repr=False)
    workers: tuple[int, ...]
    W: np.ndarray
    cond: float
    dps: int
    exact: bool
    W_mp: list = field(repr=False, default_factory=list)
    compute_time: float = 0.0
    fmt: str = "float64"
    rule: str = "interpolation"
    alternatives: tuple[DecodeWeights, ...] = field(repr=False, default=())
    #: :meth:`estimate`'s data-free parts per (format spec, inner dimension)
    _parts: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_solution(
        cls, code: Code, workers: tuple[int, ...], sol: WeightSolution, seconds: float, fmt: str
    ) -> DecodeWeights:
        """The weights object of a family's :class:`WeightSolution` for ``workers``."""
        alts = tuple(cls.from_solution(code, workers, a, 0.0, fmt) for a in sol.alternatives)
        return cls(
            code, workers, sol.W, sol.cond, sol.dps, sol.exact, sol.W_mp, seconds, fmt,
            sol.rule, alts,
        )  # fmt: skip

    @cached_property
    def data_choice(self) -> DataChoice:
        """These weights and their :attr:`alternatives`, stacked for the measured
        choice (:class:`~gpucoded.codes.datachoice.DataChoice`)."""
        from .datachoice import DataChoice

        return DataChoice((self, *self.alternatives))

    def choose(
        self, products: Any, returned: Sequence[int], A: Any, B: Any, *, real: bool = True,
        reference: Any = None,
    ) -> tuple[DecodeWeights, dict[str, float], str]:
        r"""The weights to apply to these answers of the product A·B.

        Returns (weights, measured score per rule, reason). The candidates (these
        weights, the data-free choice, and their :attr:`alternatives`) are measured
        on the data (:func:`~gpucoded.codes.datachoice.measured_scores`: each one's
        :math:`\max_c\|\hat C_c-C_c\|_F` from a few probes of the answers against
        :math:`A(BX)`); the data-free choice is kept unless interpolation or ridge
        measures smaller by more than :data:`~gpucoded.codes.datachoice.DATA_MARGIN`,
        and ridge weights give way to their unit-gain rescaling where it is exact on
        the targets and measures within that margin (:meth:`DataChoice.pick
        <gpucoded.codes.datachoice.DataChoice.pick>`). Without alternatives: these
        weights, no scores. ``reference``: the exact float64 product AB when the
        caller has it (small products are scored exactly against it).
        """
        from .datachoice import measured_scores

        if not self.alternatives:
            return self, {}, f"{self.rule}: the only candidate for this answer set"
        dc = self.data_choice
        s = measured_scores(dc, products, returned, A, B, real=real, reference=reference)
        idx = dc.pick(s)
        scores = {rule: float(v) for rule, v in zip(dc.rules, s, strict=True)}
        chosen = dc.candidates[idx]
        why = f"{chosen.rule}: measured error {s[idx]:.3g} on these operands"
        if idx == 0:
            why += " (the data-free choice, not beaten by more than the margin)"
        elif chosen.rule == "unbiased":
            why += " (ridge rescaled to unit gain, exact on the targets; ridge's gain " + (
                ", ".join(f"{g:.3g}" for g in dc.gains[dc.rules.index("regularised")]) + ")"
            )
        else:
            why += f" ({s[0] / s[idx]:.3g}x less than the data-free choice, {self.rule})"
        return chosen, scores, why

    @cached_property
    def defect(self) -> np.ndarray:
        """Defect tensor D[c, a, b] (see :mod:`gpucoded.weights`)."""
        return self.code.defect_of(self)

    @cached_property
    def abs_max(self) -> float:
        r""":math:`\max|W_{ck}|` (NaN/inf if a weight is; what the overflow check reads)."""
        return float(np.max(np.abs(self.W), initial=0.0))

    @cached_property
    def interp_factor(self) -> float:
        r""":math:`\max_c \||D_c|\|_2`: :math:`\epsilon_1\le` this × ‖A‖_F‖B‖_F."""
        return float(spectral_abs_norms(self.defect).max(initial=0.0))

    @cached_property
    def _enc_norms(self) -> np.ndarray:
        S = list(self.workers)
        return np.linalg.norm(self.code.GA[S], axis=1) * np.linalg.norm(self.code.GB[S], axis=1)

    @cached_property
    def fp_factor(self) -> float:
        r""":math:`\max_c\sum_k |W_{ck}|\,\|G_A[s_k]\|_2\|G_B[s_k]\|_2`."""
        return float((np.abs(self.W) @ self._enc_norms).max(initial=0.0))

    @cached_property
    def rss_factors(self) -> np.ndarray:
        r"""Per block :math:`F_{2,c}=(\sum_k|W_{ck}|^2\|G_A[s_k]\|^2\|G_B[s_k]\|^2)^{1/2}`."""
        return np.sqrt((np.abs(self.W) ** 2) @ self._enc_norms**2)

    @cached_property
    def defect_fro(self) -> np.ndarray:
        """Per block ‖D_c‖_F (zeros for exact decodes, whose defect is not formed)."""
        if self.exact:
            return np.zeros(self.code.grid.n_c)
        return np.sqrt((np.abs(self.defect) ** 2).sum(axis=(1, 2)))

    def bounds(self, norm_a: float, norm_b: float, fmt: Any, inner: int) -> tuple[float, float]:
        r"""(interp_bound, fp_bound) for inputs with norm measures ``norm_a``, ``norm_b``.

        ``norm_a``, ``norm_b``: ‖A‖_F and ‖B‖_F, or the tighter ρ_A, ρ_B of
        :meth:`Code.decode`. ``fmt``: the worker format (a
        :class:`~gpucoded.formats.Format`, its name or a dtype).

        The floating-point bound is first order in the unit roundoffs:
        :math:`[u_s(n_{\rm inner}+n_A+n_B+|S|+c_u)+2u_f]\,F\,\|A\|_F\|B\|_F`,
        with F = :attr:`fp_factor`, :math:`u_s` the storage's unit roundoff (encode
        sums, accumulation of each worker's inner products of length ``inner``, decode
        sum, rounding of the c_u-ulp encoding coefficients) and :math:`u_f` the
        format's (its GEMM operands, rounded to 10 bits for TF32, 7 for BF16; Higham's
        :math:`\gamma_n` argument, entrywise). Complex arithmetic doubles it.
        """
        f = get_format(fmt)
        u_s = f.storage_format.u
        g = self.code.grid
        terms = u_s * (inner + g.n_a + g.n_b + len(self.workers) + self.code.coef_ulps)
        terms += 2 * f.u
        if self.code.is_complex or _complex_spec(fmt):
            terms *= 2  # a complex product/sum costs up to twice the real rounding
        fp = terms * self.fp_factor * norm_a * norm_b
        interp = 0.0 if self.exact else self.interp_factor * norm_a * norm_b
        return interp, fp

    def estimate(
        self,
        norm_a: float,
        norm_b: float,
        fmt: Any,
        inner: int,
        shape: tuple[int, int],
        means: tuple[float, float] | None = None,
    ) -> float:
        r"""Typical-case max-norm error for Gaussian-like inputs (≤ the bound's sum).

        An entry of block c errs by :math:`\sum_{a,b}D_{cab}\,a_v^a\cdot b_w^b`
        (interpolation) plus :math:`\sum_kW_{ck}e_k` (rounding :math:`e_k` of answer
        k). For inputs whose block rows/columns are unstructured (random orientation),
        :math:`a\cdot b\approx\|a\|\|b\|/\sqrt{c_b}` instead of Cauchy–Schwarz's
        :math:`\|a\|\|b\|`, the terms add in root-sum-square, and a recursive GEMM sum
        of random terms errs by :math:`u\sqrt{n/2}` of its size instead of :math:`nu`
        (:func:`rounding_level`). With :math:`\|a_v^a\|\approx\rho_A/\sqrt{n_A}`:

        .. math:: e_c=\kappa\,\frac{\rho_A\rho_B}{\sqrt{n_An_Bc_b}}
                  \sqrt{\|D_c\|_F^2+u_{\rm eff}^2F_{2,c}^2},\qquad
                  \kappa=\sqrt{2\ln(2nl)}+1,

        κ: the largest of nl roughly Gaussian entries (plus one standard deviation of
        margin). Returned: :math:`\min(\max_c e_c,` the a-priori bound). How tight:
        on Gaussian inputs it is 1–10× the measured worst error (see
        ``tests/test_decoder.py``), where the bound is 10³–10⁵× (Cauchy–Schwarz over the
        inner dimension and worst-case rounding sums). Structured inputs (aligned rows
        and columns) can exceed it by up to :math:`\sqrt{c_b}`; the bound holds always.

        **Non-centred operands** (``means`` = :math:`(\mu_A,\mu_B)`, the largest
        absolute row mean of A and column mean of B, :func:`gpucoded.pipeline.operand_means`):
        the block products then share a mean part, an entry of about
        :math:`c_b\mu_A\mu_B` in every :math:`A_aB_b`, which adds *coherently*
        through the defect (its signed sum, not its root-sum-square) and through the
        encoding sums :math:`\sigma_k=\sum_aG_A[k,a]\sum_bG_B[k,b]`:

        .. math:: e_c^{\rm mean}=c_b\mu_A\mu_B\sqrt{\Bigl(\sum_{a,b}D_{cab}\Bigr)^2
                  +u_{\rm eff}^2\sum_kW_{ck}^2\sigma_k^2},

        added to :math:`e_c` (whose ρ norms include the mean part, so it stays an
        over-estimate of the centred part).
        """
        n, l = shape
        cb = max(int(inner), 1)
        per, mf, bound = self._estimate_parts(fmt, cb)
        kappa = math.sqrt(2 * math.log(2 * max(n * l, 1))) + 1
        g = self.code.grid
        e = (kappa * norm_a * norm_b / math.sqrt(g.n_a * g.n_b * cb)) * per
        if means is not None and means[0] * means[1] > 0:
            e = e + (cb * means[0] * means[1]) * mf
        est = float(np.max(e, initial=0.0))
        return min(est, bound * norm_a * norm_b)

    def _estimate_parts(self, fmt: Any, cb: int) -> tuple[np.ndarray, np.ndarray, float]:
        r"""The data-free parts of :meth:`estimate` for (fmt, cb), kept per weights:
        per block :math:`\sqrt{\|D_c\|_F^2+u_{\rm eff}^2F_{2,c}^2}`, the mean part's
        factors and the bound per unit :math:`\rho_A\rho_B` (at most 16 (fmt, cb) kept)."""
        try:
            key = (fmt, cb)
            hit = self._parts.get(key)
        except TypeError:  # an unhashable spec: nothing kept
            key, hit = None, None
        if hit is not None:
            return hit
        f = get_format(fmt)
        ue = rounding_level(f, self.code, len(self.workers), cb)
        per = np.sqrt(self.defect_fro**2 + (ue * self.rss_factors) ** 2)
        # bounds() of the same format spec (a complex dtype spec doubles the rounding)
        parts = (per, self._mean_factors(ue), sum(self.bounds(1.0, 1.0, fmt, cb)))
        if key is not None:
            if len(self._parts) >= 16:  # many shapes through one answer set: start over
                self._parts.clear()
            self._parts[key] = parts
        return parts

    @cached_property
    def _mean_parts(self) -> tuple[np.ndarray, np.ndarray]:
        r"""Per block :math:`|\sum_{ab}D_{cab}|` and :math:`(\sum_kW_{ck}^2\sigma_k^2)^{1/2}`:
        the data-free parts of :meth:`_mean_factors`, formed once per weights."""
        S = list(self.workers)
        sig = np.abs(self.code.GA[S].sum(axis=1) * self.code.GB[S].sum(axis=1))
        fp = np.sqrt((np.abs(self.W) ** 2) @ sig**2)
        if self.exact:
            return np.zeros_like(fp), fp
        return np.abs(np.asarray(self.defect).sum(axis=(1, 2))).astype(float), fp

    def _mean_factors(self, ue: float) -> np.ndarray:
        r"""Per block :math:`\sqrt{(\sum_{ab}D_{cab})^2+u_{\rm eff}^2\sum_kW_{ck}^2\sigma_k^2}`
        (:meth:`estimate`'s mean part, per unit :math:`c_b\mu_A\mu_B`)."""
        dsum, fp = self._mean_parts
        if self.exact:
            return ue * fp
        return np.sqrt(dsum**2 + (ue * fp) ** 2)

