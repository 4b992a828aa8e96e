r"""The data-aware choice among an answer set's cached decode weights.

The ``"auto"`` decoder caches, per answer set S, the weights its data-free error model
prefers (:meth:`~gpucoded.codes.evaluation.EvaluationCode._solve_auto`) together with
the other candidates it weighed: the
:attr:`~gpucoded.codes.decoding.DecodeWeights.alternatives`. The data-free model
assumes block products :math:`A_aB_b` of equal size and no structure. Real operands
break it: in the MNIST study (MatDot, m = 5, 8 of 10 answers) truncated interpolation
leaves a single defect entry, :math:`0.52\,A_4B_0`, where :math:`A_4` holds the
weights of the last pixel rows and :math:`B_0` the first pixel rows of the images
(blank in MNIST); the regularised weights spread a smaller defect over products of
ink pixels and err 10–400× more. No model of the block norms sees this (the pixel
blocks paired in :math:`A_4B_0` have disjoint ink, a fact about the joint structure
of A and B; a model with each block's mean part and centred norm, tried, missed most
of the gap). So the candidates' errors are *measured*.

**The measurement** (:func:`measured_scores`). The decode is linear in the answers,
so with probes :math:`X_u\in\mathbb R^{d_b\times s}` (iid N(0, 1), one set per block
column u of C, drawn once from a fixed seed, s = :data:`CHOICE_PROBES`):

.. math:: y_{k,u}=\tilde C_{s_k}X_u\ \ (\text{each answer once}),\qquad
          \hat C_c^{(W)}X_u=\sum_kW_{ck}\,y_{k,u},\qquad
          R_c^{(W)}=\sum_kW_{ck}\,y_{k,u}-A_i(B_uX_u)

for block c = (i, u), every candidate W, with the reference :math:`A(B_uX_u)` in
float64 (complex128). :math:`E[\|R_c\|_F^2]/s=\|\hat C_c-C_c\|_F^2`
(:math:`E[XX^\top]=sI`), whatever the data's structure, the interpolation defect
and the workers' rounding included; the score of W is
:math:`\max_c\|R_c^{(W)}\|_F/\sqrt s`. When :math:`d_b\le s` the columns are checked
one by one (:math:`X_u=I`, exact). Small products
(:math:`nkl\le` :data:`gpucoded.probes.EXACT_BELOW`, host operands) are scored
exactly instead, against the float64 product :math:`AB`
(:func:`gpucoded.probes.exact_reference`, shared with the call's accuracy check):
:math:`\max_c\|\sum_kW_{ck}\tilde C_{s_k}-C_c\|_F`, one batched product of the
candidates' weights with the answers. Cost: the reference, :math:`s\,t\,(nk)+s\,kl`
flops (like :mod:`gpucoded.probes`' check), one pass over the answers
(:math:`2s\,t\,|S|\,r_bd_b`) and :math:`O(\#\text{candidates}\cdot n_c|S|r_bs)` for
the combinations: next to the worker GEMMs (:math:`2|S|r_bc_bd_b`), a fraction
:math:`\approx s(1/d_b+t/c_b)`.

**The candidates.** Interpolation, the regularised (ridge) weights, and the ridge
weights rescaled to unit gain (:func:`gpucoded.weights.unit_gain_weights`, rule
``"unbiased"``). Ridge shrinks: its decode of block c carries
:math:`g_c=1+\langle T_c,D_c\rangle/\|T_c\|^2<1` times the target products, a bias
that adds up over many products (a training loop's every step :math:`g_c` times too
short) where zero-mean errors average out. Where the ridge defect is the same on
every target entry (monomial codes: all targets of a block are one product
coefficient), the rescaled weights are exact on every target product: the shrink is
gone, at a price of :math:`g_c^{-1/2}` in the model's error, taken only for
:math:`g_c\ge` :data:`gpucoded.weights.UNIT_GAIN_MIN` = 0.75. Elsewhere (Chebyshev:
:math:`T_\alpha T_\beta` mixes two coefficients) the rescaling only moves the
targets' weights around their mean and is not used.

**The rule.** (1) The data-free choice is kept unless interpolation or ridge measures
smaller by more than :data:`DATA_MARGIN`. (2) If that leaves the ridge weights and
their exact-on-targets rescaling measures within DATA_MARGIN of them, the rescaling
is applied. So the applied weights err at most DATA_MARGIN × the ridge's measured
error more than the (1) choice, and (1) errs at most DATA_MARGIN × the better of
interpolation and ridge, in measured terms. Probe noise:
:math:`s\,\hat e_c^2/e_c^2\sim\chi^2_{s\rho}` for an error of rank ρ with equal
singular values (between :math:`\chi^2_s` and that otherwise). For ρ = 10 rows (the
study's) a score is within [0.67, 1.35] of the error with probability 0.998, so (1)
errs at most :math:`1.5\cdot1.35/0.67=3.0` × the better of the two, and a switch away
from the data-free choice means at most :math:`1.35/(1.5\cdot0.67)=1.34` × its error;
(2) multiplies by at most 3.0 (``tests/test_decoder_data.py``). A rank-one error (the
mean part of non-centred data) has :math:`\chi^2_4`: wider, but the candidates are
measured on the same probes, and where that matters here their errors differ by
10–100×. Why (2) is limited to the rescaled ridge: with a preference for any
exact-on-targets candidate (tried), the Chebyshev rows of the MNIST study took
interpolation where ridge measured up to 1.5× better, and lost accuracy.

**What it measures.** The size of this product's error, and each candidate's gain
(from its defect, data-free). In the MNIST study (MatDot (5, 8, 10), worst answer set)
interpolation errs 10–400× less than the ridge weights on Z = WX (blank pixel blocks),
and the ridge weights about half as much as interpolation on the gradient
:math:`HX^\top`, but with gain 0.78 there: SGD with them ends 0.4 points below
interpolation; with the unit-gain ridge weights it does not (docs/RESULTS.md,
``gpucoded.studies.logreg.candidate_errors``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import array_module, to_numpy

if TYPE_CHECKING:
    from .decoding import DecodeWeights

__all__ = [
    "CHOICE_PROBES", "DATA_MARGIN", "GAIN_TOL", "PROBE_SEED", "DataChoice", "measured_scores",
]

#: A candidate replaces the data-free choice only if its measured error is smaller by
#: more than this factor.
DATA_MARGIN = 1.5
#: |D| on the target entries below which a candidate counts as exact on them.
GAIN_TOL = 1e-9
#: Probe vectors per block column of C for the choice.
CHOICE_PROBES = 4
#: Seed of the choice's probes (fixed: a choice is reproducible; the error of a
#: product does not depend on the probes, drawn apart from any data).
PROBE_SEED = 20_2026
#: Rows of A widened to float64 at a time for the reference (bounded temporaries).
_CHUNK = 512


class DataChoice:
    """The candidate weights of one answer set (the data-free choice first), stacked
    for :func:`measured_scores`; built once per set and cached on its
    :class:`~gpucoded.codes.decoding.DecodeWeights` (:attr:`data_choice`)."""

    def __init__(self, candidates: Sequence[DecodeWeights]) -> None:
        self.candidates = tuple(candidates)
        self.rules = tuple(dw.rule for dw in candidates)
        self.code = candidates[0].code
        self.workers = candidates[0].workers
        self.W = np.stack([dw.W for dw in candidates])  # (ncand, n_c, |S|), sorted set
        self.gains = np.stack([_gains(dw) for dw in candidates])  # (ncand, n_c)
        #: Candidates exact on every target product (defect 0 there: no shrink)
        self.unit = np.array([_exact_on_targets(dw) for dw in candidates])

    def pick(self, scores: np.ndarray) -> int:
        """Index of the weights to apply (the module's rule): the data-free choice (0)
        unless another candidate measures smaller by more than :data:`DATA_MARGIN`;
        then, if that is the ridge weights, their unit-gain rescaling where it exists
        (exact on every target) and measures within DATA_MARGIN of them."""
        s = np.where(np.isnan(scores), np.inf, scores)
        base = [k for k, r in enumerate(self.rules) if r != "unbiased"]
        best = min(base, key=lambda k: s[k])
        i = best if math.isfinite(s[best]) and s[best] * DATA_MARGIN < s[0] else 0
        if self.rules[i] == "regularised":
            for k, r in enumerate(self.rules):
                if r == "unbiased" and self.unit[k] and s[k] <= DATA_MARGIN * s[i] < math.inf:
                    return k
        return i


def _gains(dw: DecodeWeights) -> np.ndarray:
    r"""Per block :math:`g_c=1+\langle T_c,D_c\rangle/\|T_c\|^2` (1 for exact decodes)."""
    g = dw.code.grid
    if dw.exact:
        return np.ones(g.n_c)
    T = g.target_tensor().astype(float)
    D = np.asarray(dw.defect)
    return 1 + np.real((T * D).sum(axis=(1, 2))) / (T**2).sum(axis=(1, 2))


def _exact_on_targets(dw: DecodeWeights) -> bool:
    """Whether the defect vanishes (|D| ≤ :data:`GAIN_TOL`) on every target entry."""
    if dw.exact:
        return True
    T = dw.code.grid.target_tensor() != 0
    return bool(np.all(np.abs(np.asarray(dw.defect)[T]) <= GAIN_TOL))


@functools.lru_cache(maxsize=32)
def _probes(db: int, t: int, s: int) -> np.ndarray:
    """Probe blocks (t, db, s'): Gaussian from :data:`PROBE_SEED`, or the identity
    (s' = db, exact) when ``db <= s``. Block u's first rows do not depend on db (a
    product padded with zero columns is probed as the unpadded one). Kept (read-only,
    32 shapes at most): seeding a generator per call was a third of a small call's
    measured choice."""
    if db <= s:
        return np.broadcast_to(np.eye(db), (t, db, db))
    X = np.stack(
        [np.random.default_rng([PROBE_SEED, u, s]).standard_normal((db, s)) for u in range(t)]
    )
    X.flags.writeable = False
    return X


def _wide(M: Any, xp: Any) -> Any:
    dt = xp.complex128 if M.dtype.kind == "c" else xp.float64
    return M if M.dtype == dt else M.astype(dt)


def measured_scores(
    dc: DataChoice,
    products: Any,
    returned: Sequence[int],
    A: Any,
    B: Any,
    *,
    real: bool = True,
    probes: int = CHOICE_PROBES,
    reference: Any = None,
) -> np.ndarray:
    r"""Measured :math:`\max_c\|\hat C_c-C_c\|_F` of each candidate (see the module).

    Parameters
    ----------
    dc : DataChoice
    products : array (|S|, rb, db) or sequence of (rb, db) arrays
        The answers, ``products[k]`` from worker ``returned[k]``.
    returned : sequence of int
    A, B : arrays (n, k), (k, l)
        The operands (NumPy or CuPy, like the answers).
    real : bool
        The decode keeps the real part (real data through a complex code).
    probes : int
        Probe vectors per block column.
    reference : ndarray (n, l), optional
        The exact product :math:`AB` in float64 (:func:`gpucoded.probes.exact_reference`)
        when the caller has it; small host products are scored exactly against it
        (computed here when not given), larger ones with the probes.

    Returns
    -------
    ndarray (#candidates,)
        One transfer of these few numbers from the device.
    """
    from ..probes import exact_reference

    if reference is None:
        reference = exact_reference(A, B)
    if reference is not None and all(type(products[pos]) is np.ndarray for pos in (0, -1)):
        return _exact_scores(dc, products, returned, reference, real)
    code = dc.code
    g = code.grid
    xp = array_module(A, B)
    n, k = A.shape
    l = B.shape[1]
    rb, _, db = g.block_dims(n, k, l)
    Xh = _probes(db, g.t, probes)  # (t, db, s)
    s = Xh.shape[2]
    X = xp.asarray(Xh)
    # the reference A (B_u X_u), float64, each block column of C
    V = xp.concatenate(
        [_wide(B[:, u * db : (u + 1) * db], xp) @ X[u, : min(db, l - u * db)] for u in range(g.t)],
        axis=1,
    )  # (k, t·s)
    Y = xp.concatenate([_wide(A[i : i + _CHUNK], xp) @ V for i in range(0, n, _CHUNK)])
    ref = xp.zeros((g.p * rb, g.t * s), dtype=Y.dtype)
    ref[:n] = Y
    ref = ref.reshape(g.p, rb, g.t, s)
    # each answer times the probes, once: y[k] (rb, t, s)
    Xcat = X.transpose(1, 0, 2).reshape(db, g.t * s)
    pos = {int(w): j for j, w in enumerate(returned)}
    y = xp.stack([_wide(products[pos[int(w)]], xp) @ Xcat for w in dc.workers])
    y = y.reshape(len(dc.workers), rb, g.t, s)
    W = xp.asarray(dc.W)
    out = xp.zeros((W.shape[0], g.n_c), dtype=xp.float64)
    for c in range(g.n_c):
        i, u = divmod(c, g.t)
        est = xp.tensordot(W[:, c, :], y[:, :, u, :], axes=(1, 0))  # (ncand, rb, s)
        if real:
            est = est.real
        R = est - ref[i, :, u, :][None]
        out[:, c] = (xp.abs(R) ** 2).sum(axis=(1, 2))
    return np.sqrt(to_numpy(out).max(axis=1) / s)


def _exact_scores(
    dc: DataChoice, products: Any, returned: Sequence[int], ref: np.ndarray, real: bool
) -> np.ndarray:
    r"""Exact :math:`\max_c\|\hat C_c^{(W)}-C_c\|_F` of each candidate against the float64
    product ``ref`` (small host products: one batched product of every candidate's
    weights with the answers, widened to float64)."""
    g = dc.code.grid
    order = [int(w) for w in returned]
    Z = np.stack([products[order.index(w)] for w in dc.workers])  # (|S|, rb, db)
    S, rb, db = Z.shape
    est = dc.W @ Z.reshape(S, rb * db)  # (ncand, n_c, rb·db), float64 (the weights')
    if real and est.dtype.kind == "c":
        est = est.real
    n, l = ref.shape
    if (n, l) != (g.p * rb, g.t * db):
        T = np.zeros((g.p * rb, g.t * db), dtype=ref.dtype)
        T[:n, :l] = ref
    else:
        T = ref
    if g.n_c > 1:
        T = T.reshape(g.p, rb, g.t, db).transpose(0, 2, 1, 3).reshape(g.n_c, rb * db)
    else:
        T = T.reshape(1, rb * db)
    R = est - T
    with np.errstate(invalid="ignore", over="ignore"):
        if R.dtype.kind == "c":
            R2 = (R * R.conj()).real.sum(axis=2)
        else:
            R2 = np.einsum("acx,acx->ac", R, R)
        return np.sqrt(R2.max(axis=1))
