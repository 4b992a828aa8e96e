r"""The one encode/decode machinery shared by every code.

A code is data:

* a :class:`BlockGrid` ``(p, s, t)``: A (n×k) is split into p×s blocks, B (k×l)
  into s×t blocks, C into p×t blocks, :math:`C_{iu}=\sum_j A_{ij}B_{ju}`;
* encoding matrices ``GA`` (P × ps) and ``GB`` (P × st): worker w gets
  :math:`\tilde A_w=\sum_a G_A[w,a]A_a`, :math:`\tilde B_w=\sum_b G_B[w,b]B_b`
  and returns :math:`\tilde C_w=\tilde A_w\tilde B_w`;
* a decode rule: for the answering workers S a weight matrix :math:`W_S`
  (pt × |S|) with :math:`\hat C_c=\sum_k W_S[c,k]\,\tilde C_{s_k}`.

Block layout (shared with the CUDA kernels in ``kernels/``): block dims
``rb = ceil(n/p)``, ``cb = ceil(k/s)``, ``db = ceil(l/t)``, zero padding past the
edges; A block ``a = i*s + j``, B block ``b = j*t + u``, C block ``c = i*t + u``.
Encoded stacks ``At`` (P, rb, cb), ``Bt`` (P, cb, db); answers (|S|, rb, db).

Encode and decode are one GEMM each over the flattened stack, written against the
array namespace of the inputs (NumPy or CuPy).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .. import hostops
from .. import weights as wt
from ..backend import array_module
from ..formats import FORMATS, Format, get_format
from ..points import validate_points
from ..progress import solve_progress

__all__ = [
    "DECODERS",
    "BlockGrid",
    "Code",
    "DecodeInfo",
    "DecodeWeights",
    "EvaluationCode",
    "rounding_level",
]

#: Decode weights kept per code instance (least recently used are dropped).
WEIGHT_CACHE_SIZE = 4096

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


def _check_decoder(decoder: str) -> str:
    if decoder not in DECODERS:
        names = ", ".join(map(repr, DECODERS))
        raise ValueError(f"decoder must be one of {names}; got {decoder!r}")
    return decoder


_DTYPE_FORMATS: dict[np.dtype, Format] = {}


def _format_of(spec: Any) -> Format:
    """:func:`get_format`, memoised for dtypes (it allocates on every dtype lookup)."""
    if isinstance(spec, np.dtype):
        f = _DTYPE_FORMATS.get(spec)
        if f is None:
            f = _DTYPE_FORMATS[spec] = get_format(spec)
        return f
    return get_format(spec)


def _complex_spec(spec: Any) -> bool:
    """Whether a format spec is a complex dtype (complex data doubles the rounding)."""
    if isinstance(spec, Format) or (isinstance(spec, str) and spec in FORMATS):
        return False
    try:
        return np.dtype(spec).kind == "c"
    except TypeError:
        return False


def rounding_level(fmt: Format, code: Code, answers: int, inner: int) -> float:
    r"""Typical relative rounding of one decoded answer, :math:`u_{
m eff}`.

    :math:`u_{
m eff}^2=u_s^2\,(n_{
m inner}/2+n_A+n_B+|S|+c_u)+4u_f^2`, with
    :math:`u_s` the unit roundoff of the storage (accumulation, encode and decode sums),
    :math:`u_f` that of the GEMM operands (TF32/BF16 round them) and :math:`c_u` the
    encoding coefficients' rounding in ulps: root-sum-square of independent roundings
    (a recursive sum of n random terms errs by about :math:`u\sqrt{n/2}` of its size).
    """
    u_s = _format_of(fmt.storage).u
    g = code.grid
    terms = inner / 2 + g.n_a + g.n_b + answers + code.coef_ulps
    val = math.sqrt(u_s**2 * terms + 4 * fmt.u**2)
    return 2 * val if code.is_complex else val


@dataclass(frozen=True)
class BlockGrid:
    """Split of A into p×s blocks and of B into s×t blocks."""

    p: int
    s: int
    t: int

    @property
    def n_a(self) -> int:
        return self.p * self.s

    @property
    def n_b(self) -> int:
        return self.s * self.t

    @property
    def n_c(self) -> int:
        return self.p * self.t

    def block_dims(self, n: int, k: int, l: int) -> tuple[int, int, int]:
        """(rb, cb, db) for A n×k and B k×l."""
        return -(-n // self.p), -(-k // self.s), -(-l // self.t)

    def target_tensor(self) -> np.ndarray:
        """0/1 tensor T[c, a, b] = 1 iff A_a B_b is a term of C_c."""
        T = np.zeros((self.n_c, self.n_a, self.n_b), dtype=np.int8)
        for i in range(self.p):
            for u in range(self.t):
                for j in range(self.s):
                    T[i * self.t + u, i * self.s + j, j * self.t + u] = 1
        return T

    def split(self, X: Any, rows: int, cols: int, rblk: int, cblk: int) -> Any:
        """Stack of the rows×cols blocks of X, zero padded: (rows*cols, rblk, cblk)."""
        n, k = X.shape
        if n == rows * rblk and k == cols * cblk:
            return (
                X.reshape(rows, rblk, cols, cblk)
                .transpose(0, 2, 1, 3)
                .reshape(rows * cols, rblk, cblk)
            )
        xp = array_module(X)
        padded = xp.empty((rows * rblk, cols * cblk), dtype=X.dtype)
        padded[:n, :k] = X  # and zeros in the padding only (no pass over the whole buffer)
        padded[n:, :] = 0
        padded[:n, k:] = 0
        return (
            padded.reshape(rows, rblk, cols, cblk)
            .transpose(0, 2, 1, 3)
            .reshape(rows * cols, rblk, cblk)
        )

    def combine(
        self,
        W: np.ndarray,
        answers: Any,
        n: int,
        l: int,
        *,
        real: bool = True,
        chunk_bytes: int = 1 << 18,
    ) -> np.ndarray:
        r"""C (n×l) from the answers on the host: :math:`C_c=\sum_k W[c,k]\,\tilde C_k`.

        ``answers`` is a (R, rb, db) array or a sequence of R (rb, db) arrays. The sum is
        formed a few rows at a time (``chunk_bytes`` per answer slice, so the running
        sum stays in cache) and written straight into C's final layout: each answer is
        read once from memory, C written once, with no stacked copy of the answers and
        no separate assembly pass (measured 33 ms against 70 ms for stack + GEMM at
        n=2048, K=7; a GEMM over an existing stack takes 15 ms, so stacks keep the GEMM).
        With the compiled CPU kernels (:mod:`gpucoded.hostops`; real float32/float64)
        the same pass runs in C++ with OpenMP over row chunks.
        Rounding: a sum of R products per entry, as in the GEMM.
        """
        R = len(answers)
        rb, db = answers[0].shape
        dt = np.result_type(W.dtype, *[a.dtype for a in answers])
        out_dt = np.empty(0, dt).real.dtype if (real and dt.kind == "c") else dt
        if out_dt == dt and W.dtype == dt and all(a.dtype == dt for a in answers):
            # pooled: reused only once the caller has dropped an earlier result
            C = hostops.pool().empty((n, l), dt)
            if hostops.combine_into(W, answers, (self.p, self.t), C):
                return C
        C = np.empty((n, l), dtype=out_dt)
        rows = max(1, min(rb, chunk_bytes // max(1, db * dt.itemsize)))
        tmp = np.empty((rows, db), dtype=dt)
        acc = np.empty((rows, db), dtype=dt)
        for r0 in range(0, rb, rows):
            h = min(rows, rb - r0)
            for i in range(self.p):
                top = i * rb + r0
                if top >= n:
                    break
                hh = min(h, n - top)
                for u in range(self.t):
                    left = u * db
                    if left >= l:
                        break
                    ww = min(db, l - left)
                    c = i * self.t + u
                    direct = out_dt == dt and ww == db
                    dst = C[top : top + hh, left : left + ww] if direct else acc[:hh]
                    np.multiply(answers[0][r0 : r0 + hh], W[c, 0], out=dst)
                    tv = tmp[:hh]
                    for k in range(1, R):
                        np.multiply(answers[k][r0 : r0 + hh], W[c, k], out=tv)
                        np.add(dst, tv, out=dst)
                    if not direct:
                        src = dst.real if out_dt != dt else dst
                        C[top : top + hh, left : left + ww] = src[:, :ww]
        return C

    def assemble(self, blocks: Any, n: int, l: int) -> Any:
        """C (n×l) from its p×t blocks (n_c, rb, db), padding dropped."""
        _, rb, db = blocks.shape
        C = blocks.reshape(self.p, self.t, rb, db).transpose(0, 2, 1, 3)
        C = C.reshape(self.p * rb, self.t * db)
        if C.shape != (n, l):
            C = C[:n, :l]
        xp = array_module(C)
        return xp.ascontiguousarray(C)


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

    @cached_property
    def defect(self) -> np.ndarray:
        """Defect tensor D[c, a, b] (see :mod:`gpucoded.weights`)."""
        return self.code._defect(self)

    @cached_property
    def interp_factor(self) -> float:
        r""":math:`\max_c \||D_c|\|_2`: :math:`\epsilon_1\le` this × ‖A‖_F‖B‖_F."""
        return float(wt.spectral_abs_norms(self.defect).max(initial=0.0))

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
        f = _format_of(fmt)
        u_s = _format_of(f.storage).u
        g = self.code.grid
        terms = u_s * (inner + g.n_a + g.n_b + len(self.workers) + self.code.coef_ulps)
        terms += 2 * f.u
        if self.code.is_complex or _complex_spec(fmt):
            terms *= 2  # a complex product/sum costs up to twice the real rounding
        fp = terms * self.fp_factor * norm_a * norm_b
        interp = 0.0 if self.exact else self.interp_factor * norm_a * norm_b
        return interp, fp

    def estimate(
        self, norm_a: float, norm_b: float, fmt: Any, inner: int, shape: tuple[int, int]
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
        """
        f = _format_of(fmt)
        n, l = shape
        g = self.code.grid
        cb = max(int(inner), 1)
        kappa = math.sqrt(2 * math.log(2 * max(n * l, 1))) + 1
        ue = rounding_level(f, self.code, len(self.workers), cb)
        per = np.sqrt(self.defect_fro**2 + (ue * self.rss_factors) ** 2)
        est = kappa * norm_a * norm_b * float(per.max(initial=0.0)) / math.sqrt(g.n_a * g.n_b * cb)
        return min(est, sum(self.bounds(norm_a, norm_b, f, inner)))


class Code:
    """Base of all codes: the encode/decode machinery, parameterised by data.

    Subclasses set ``name``, ``P``, ``grid``, ``GA``, ``GB``,
    ``recovery_threshold``, ``approximate`` and implement :meth:`_solve`.
    """

    name: str = "code"
    P: int
    grid: BlockGrid
    GA: np.ndarray
    GB: np.ndarray
    recovery_threshold: int
    approximate: bool = False
    #: Rounding error of the float encoding coefficients, in units of u.
    coef_ulps: float = 1.0

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple, DecodeWeights] = OrderedDict()

    # ------------------------------------------------------------------ info
    @property
    def m(self) -> int:
        """Storage fraction: each worker holds 1/m of A and of B."""
        return self.grid.p * self.grid.s

    @property
    def is_complex(self) -> bool:
        return np.iscomplexobj(self.GA) or np.iscomplexobj(self.GB)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()})"

    def _params(self) -> str:
        return f"P={self.P}"

    # ---------------------------------------------------------------- encode
    def encode(self, A: Any, B: Any) -> tuple[Any, Any]:
        """Encoded stacks for all P workers.

        Parameters
        ----------
        A : array (n, k), B : array (k, l)
            NumPy or CuPy, same namespace.

        Returns
        -------
        At : array (P, rb, cb), Bt : array (P, cb, db)
            ``At[w] = sum_a GA[w, a] A_a``, ``Bt[w] = sum_b GB[w, b] B_b``.
        """
        xp = array_module(A, B)
        if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
            raise ValueError(
                f"A and B must be 2-D with A.shape[1] == B.shape[0]; got {A.shape} and {B.shape}"
            )
        g = self.grid
        n, k = A.shape
        l = B.shape[1]
        rb, cb, db = g.block_dims(n, k, l)
        dtype = self.work_dtype(A.dtype, B.dtype)
        A = A.astype(dtype, copy=False)
        B = B.astype(dtype, copy=False)
        if xp is not np and dtype.kind == "f":
            from .. import gpu  # fused CUDA kernels: one pass over A and B

            return gpu.encode_pair(A, B, self.GA, self.GB, (g.p, g.s, g.t))
        GA = xp.asarray(self.GA.astype(dtype, copy=False))
        GB = xp.asarray(self.GB.astype(dtype, copy=False))
        if xp is np:
            return self._encode_host(A, B, GA, GB, (rb, cb, db))
        Ab = g.split(A, g.p, g.s, rb, cb).reshape(g.n_a, rb * cb)
        Bb = g.split(B, g.s, g.t, cb, db).reshape(g.n_b, cb * db)
        return (GA @ Ab).reshape(self.P, rb, cb), (GB @ Bb).reshape(self.P, cb, db)

    def _encode_host(
        self, A: np.ndarray, B: np.ndarray, GA: np.ndarray, GB: np.ndarray, dims: tuple
    ) -> tuple[np.ndarray, np.ndarray]:
        """NumPy encode into pooled workspaces (:mod:`gpucoded.hostops`).

        The stacks come from the workspace pool: a buffer is reused only when no view
        of it is alive (not the caller's, not an abandoned straggler's), so reuse never
        writes under a reader. The compiled CPU kernels read each input once and write
        each stack once; without them one batched matmul per side writes straight
        into the stack.
        """
        g = self.grid
        rb, cb, db = dims
        pool = hostops.pool()
        At = pool.empty((self.P, rb, cb), A.dtype)
        Bt = pool.empty((self.P, cb, db), B.dtype)
        if not hostops.encode_into(A, GA, (g.p, g.s), (rb, cb), At):
            if g.p == 1 and A.shape == (rb, g.s * cb):
                # one block row: At[w][r] = GA[w] @ A[r].reshape(s, cb), into At's rows
                np.matmul(GA, A.reshape(rb, g.s, cb), out=At.transpose(1, 0, 2))
            else:
                Ab = g.split(A, g.p, g.s, rb, cb).reshape(g.n_a, rb * cb)
                np.matmul(GA, Ab, out=At.reshape(self.P, rb * cb))
        if not hostops.encode_into(B, GB, (g.s, g.t), (cb, db), Bt):
            Bb = g.split(B, g.s, g.t, cb, db).reshape(g.n_b, cb * db)
            np.matmul(GB, Bb, out=Bt.reshape(self.P, cb * db))
        return At, Bt

    def work_dtype(self, *dtypes: Any) -> np.dtype:
        """Dtype of the encoded data: the inputs' result type, complex if the code is."""
        dt = np.result_type(*dtypes)
        if self.is_complex and dt.kind != "c":
            dt = np.result_type(dt, np.complex64)
        return dt

    # ---------------------------------------------------------------- decode
    def can_decode(self, returned: Sequence[int]) -> bool:
        """Whether these answers meet the code's recovery guarantee."""
        return len(set(returned)) >= self.recovery_threshold

    def weights_cached(
        self, returned: Iterable[int], *, partial: bool = False, fmt: Any = None
    ) -> bool:
        """Whether :meth:`decode_weights` has these weights cached (it would not solve)."""
        S = tuple(sorted(int(w) for w in returned))
        return (S, partial, self._weights_format(fmt).name) in self._cache

    def decode_weights(
        self, returned: Iterable[int], *, partial: bool = False, fmt: Any = None
    ) -> DecodeWeights:
        """Cached high-precision weights for the answering workers ``returned``.

        ``partial=True`` allows fewer answers than the recovery threshold where the
        code can still produce an estimate (truncated interpolation for the
        polynomial codes, missing blocks dropped for uncoded/replication); it is
        what the precision studies use below threshold.

        ``fmt``: the worker format the answers are computed in (a
        :class:`~gpucoded.formats.Format`, its name or a dtype; default the format the
        code was tuned for, else float64). The ``"auto"`` decoder's weights depend on
        it, so the cache key is (sorted workers, partial, format).
        """
        S = tuple(sorted(int(w) for w in returned))
        if len(set(S)) != len(S):
            raise ValueError(f"returned has duplicate worker indices: {list(returned)}")
        if S and (S[0] < 0 or S[-1] >= self.P):
            raise ValueError(f"worker indices must be in [0, {self.P}); got {list(S)}")
        if not partial and not self.can_decode(S):
            raise ValueError(
                f"{self!r} needs {self.recovery_threshold} answers to decode; got {len(S)} "
                f"(workers {list(S)})"
            )
        f = self._weights_format(fmt)
        key = (S, partial, f.name)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        t0 = time.perf_counter()
        with solve_progress(f"decode weights: {type(self).__name__}, {len(S)} answers"):
            out = self._solve(S, partial, f)  # a bar only if it runs long (multiprecision)
        W, cond, dps, exact, W_mp = out[:5]
        rule = out[5] if len(out) > 5 else "interpolation"
        dw = self._weights_class(
            self, S, W, cond, dps, exact, W_mp, time.perf_counter() - t0, f.name, rule
        )
        self._cache[key] = dw
        if len(self._cache) > WEIGHT_CACHE_SIZE:
            self._cache.popitem(last=False)
        return dw

    #: Class of the weights objects (a subclass may change how the defect acts).
    _weights_class: type = DecodeWeights

    def _weights_format(self, fmt: Any) -> Format:
        """The worker format for the weights: ``fmt``, else the code's tuning, else float64."""
        if fmt is None:
            fmt = getattr(self, "worker_dtype", None) or "float64"
        return _format_of(fmt)

    def _solve(self, S: tuple[int, ...], partial: bool, fmt: Format) -> tuple:
        """(W, cond, dps, exact, W_mp[, rule]) for sorted answering workers S.

        ``W_mp``: the weights as exact/mpmath numbers (list of rows); ``fmt``: the
        worker format (for decoders whose weights depend on it)."""
        raise NotImplementedError

    def _defect(self, dw: DecodeWeights) -> np.ndarray:
        """Defect tensor of the weights ``dw`` (generic high-precision evaluation)."""
        return wt.defect_tensor(
            dw.W_mp,
            lambda ctx: self._encoding_rows(ctx, dw.workers),
            self.grid.target_tensor(),
            dw.dps,
        )

    def _encoding_rows(self, ctx: wt.MpContext, S: Sequence[int]) -> tuple[Any, Any]:
        """Exact encoding coefficients of workers S as mpmath matrices."""
        return ctx.matrix(self.GA[list(S)].tolist()), ctx.matrix(self.GB[list(S)].tolist())

    def decode(
        self,
        products: Any,
        returned: Sequence[int],
        shape: tuple[int, int] | None = None,
        *,
        partial: bool = False,
        norms: tuple[float, float] | None = None,
        inner: int | None = None,
        real: bool | None = None,
        return_info: bool = False,
        fmt: Any = None,
    ) -> Any:
        r"""Recover C from the answers of the workers ``returned``.

        Parameters
        ----------
        products : array (|S|, rb, db)
            Worker outputs, ``products[k]`` from worker ``returned[k]``.
        returned : sequence of int
            Worker indices, in the order of ``products``.
        shape : (n, l), optional
            Shape of C; crops the zero padding (default: no cropping).
        partial : bool
            Decode below the recovery threshold when possible (see
            :meth:`decode_weights`).
        norms : (ρ_A, ρ_B), optional
            Enables the a-priori error bound and the typical-case estimate in the info
            (then ``inner`` is required). Any ρ_A with
            :math:`\sum_a\|A_a[v,:]\|_2^2\le\rho_A^2` for every row v of the blocks
            (and likewise ρ_B for the columns of B) is valid: ‖A‖_F, ‖B‖_F always
            are; ``coded_matmul`` passes the tighter √p·max row norm (√t·max column
            norm).
        inner : int, optional
            Inner dimension of each worker product (cb), for the rounding bound;
            required with ``norms`` (the answers do not show it).
        real : bool, optional
            Return the real part (real inputs through a complex code).
            Default: True when ``products`` is real.
        return_info : bool
            Also return a :class:`DecodeInfo`.
        fmt : Format, str or dtype, optional
            Worker number format the answers were computed in (default: the
            products' dtype). The weights (decoder ``"auto"``) and the bounds use it;
            reported as ``DecodeInfo.format``.

        Raises
        ------
        ValueError
            Malformed products, too few answers, or ``norms`` without ``inner``.
        """
        if norms is not None and inner is None:
            raise ValueError(
                "norms=... needs inner= (the inner dimension of the worker products, cb): "
                "without it the bound would drop the GEMM rounding term"
            )
        returned = [int(w) for w in returned]
        if isinstance(products, list | tuple):
            shapes = {tuple(x.shape) for x in products}
            if len(products) != len(returned) or len(shapes) != 1 or len(next(iter(shapes))) != 2:
                raise ValueError(
                    f"products must be {len(returned)} answers of one 2-D shape (rb, db); "
                    f"got {len(products)} of shapes {sorted(shapes)}"
                )
            array_module(*products)  # refuses NumPy and CuPy answers mixed
        if not isinstance(products, list | tuple) and (
            products.ndim != 3 or products.shape[0] != len(returned)
        ):
            raise ValueError(
                f"products must have shape (len(returned), rb, db) = ({len(returned)}, ...); "
                f"got {products.shape}"
            )
        t0 = time.perf_counter()
        if fmt is None:
            fmt = np.result_type(*[x.dtype for x in products]) if len(returned) else "float64"
        fmt = _format_of(fmt)
        was_cached = (tuple(sorted(returned)), partial, fmt.name) in self._cache
        dw = self.decode_weights(returned, partial=partial, fmt=fmt)
        t1 = time.perf_counter()
        order = {w: i for i, w in enumerate(dw.workers)}
        W = dw.W[:, [order[w] for w in returned]]
        first = products[0]
        xp = array_module(first)
        R, (rb, db) = len(returned), first.shape
        pdtype = np.result_type(*[x.dtype for x in products]) if R else first.dtype
        dtype = pdtype
        if np.iscomplexobj(W) and dtype.kind != "c":
            dtype = np.result_type(dtype, np.complex64)
        if real is None:
            real = pdtype.kind != "c"
        n, l = shape if shape is not None else (self.grid.p * rb, self.grid.t * db)
        if xp is not np and dtype.kind == "f":
            from .. import gpu  # fused CUDA kernel: writes C in place

            # the answers in the order of the set's cached weights (one device copy of W
            # per answer *set*, whatever the arrival order); read in place, no stack
            pos = {w: k for k, w in enumerate(returned)}
            answers = [products[pos[w]] for w in dw.workers]
            C = gpu.decode_products(answers, dw.W, (self.grid.p, self.grid.t), (n, l))
            return self._finish(
                C, dw, returned, pdtype, norms, inner, was_cached, t0, t1, return_info
            )
        if isinstance(products, list | tuple) and xp is not np:
            products = xp.stack(products)  # complex answers on a device: one GEMM
        if isinstance(products, list | tuple):
            # separate answers (coded_matmul): summed in place, no stacked copy
            C = self.grid.combine(W.astype(dtype, copy=False), products, n, l, real=real)
        else:  # one stack: a single GEMM streams it at memory speed
            Wd = xp.asarray(W.astype(dtype, copy=False))
            blocks = (Wd @ products.reshape(R, rb * db)).reshape(self.grid.n_c, rb, db)
            if real and blocks.dtype.kind == "c":
                blocks = blocks.real
            C = self.grid.assemble(blocks, n, l)
        return self._finish(C, dw, returned, pdtype, norms, inner, was_cached, t0, t1, return_info)

    @staticmethod
    def _finish(C, dw, returned, dtype, norms, inner, was_cached, t0, t1, return_info):
        """Attach the DecodeInfo (timings, condition number, a-priori bounds)."""
        t2 = time.perf_counter()
        if not return_info:
            return C
        info = DecodeInfo(
            workers=tuple(returned),
            cond=dw.cond,
            weights_time=t1 - t0,
            decode_time=t2 - t1,
            cached=was_cached,
        )
        info.format = dw.fmt
        if norms is not None:
            spec = dtype if np.dtype(dtype).kind == "c" else dw.fmt  # complex data: 2x
            ib, fb = dw.bounds(norms[0], norms[1], spec, inner)
            info.interp_bound, info.fp_bound, info.error_bound = ib, fb, ib + fb
            info.estimate = dw.estimate(norms[0], norms[1], spec, inner, C.shape)
        return C, info


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
            exact) and for sets of more than :data:`RIDGE_MAX_ANSWERS` answers.
    """

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
        self.decoder = _check_decoder(decoder)
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

    def _block_need(self) -> np.ndarray:
        """For each C block, 1 + the index of its highest nonzero target coefficient."""
        return np.array([np.nonzero(row)[0].max() + 1 for row in self.targets])

    def _solve(self, S: tuple[int, ...], partial: bool, fmt: Format) -> tuple:
        r = len(S)
        need = int(self._block_need().max())
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
            return W, cond, dps, r >= self.K, W_mp, "interpolation"
        return self._solve_auto(S, fmt)

    def _solve_paper(self, S: tuple[int, ...]) -> tuple:
        """Block c from the first (top coefficient + 1) answers (Theorem 2's proof)."""
        pts = [self.points[w] for w in S]
        r = len(S)
        rows, conds, dpss, mp_rows = [], [], [], []
        for c, d in enumerate(self._block_need()):
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
        return W, max(conds), max(dpss), False, mp_rows, "interpolation"

    def _solve_minnorm(self, S: tuple[int, ...]) -> tuple:
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
        return W, cond, 50, False, W_mp, "minnorm"

    def _solve_auto(self, S: tuple[int, ...], fmt: Format) -> tuple:
        """Exact/interpolation weights, or the regularised ones when they predict better."""
        r, Sl = len(S), list(S)
        pts = [self.points[w] for w in S]
        c = np.linalg.norm(self.GA[Sl], axis=1) * np.linalg.norm(self.GB[Sl], axis=1)
        W, cond, dps, W_mp = wt.interpolation_weights(pts, self.targets, self.basis)
        exact = r >= self.K
        if r > RIDGE_MAX_ANSWERS:
            return W, cond, dps, exact, W_mp, "interpolation"
        rho = RIDGE_RHO_FACTOR * rounding_level(fmt, self, r, NOMINAL_INNER)
        if exact and rho * float(np.abs(W).max()) * float(c.max()) < 1e-8:
            return W, cond, dps, True, W_mp, "interpolation"  # nothing to trade
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
        if J_int <= margin * J_reg:
            return W, cond, dps, exact, W_mp, "interpolation"
        return wt._round_rows(Wr), cond, dps_r, False, Wr, "regularised"

    def _defect(self, dw: DecodeWeights) -> np.ndarray:
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
        need = self._block_need()
        return norm_bound**2 * max(wt.binom_tail(int(d), self.K, self.delta) for d in need)

    def _params(self) -> str:
        return f"P={self.P}, threshold={self.recovery_threshold}, delta={self.delta:.3g}"
