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

The pieces live in modules named after what they hold: the block grid
(:mod:`~gpucoded.codes.grid`), the decode weights and their bounds
(:mod:`~gpucoded.codes.decoding`), the NumPy / compiled host / CUDA paths
(:mod:`~gpucoded.codes.dispatch`) and the evaluation codes
(:mod:`~gpucoded.codes.evaluation`); this module holds :class:`Code`, which ties them
together and caches the weights per answer set.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import weights as wt
from ..backend import array_module
from ..formats import Format, FormatSpec, get_format
from ..progress import solve_progress
from . import dispatch
from .decoding import DecodeInfo, DecodeWeights, WeightSolution, rounding_level
from .grid import BlockGrid, square_split

__all__ = [
    "BlockGrid",
    "Code",
    "DecodeInfo",
    "DecodeWeights",
    "WeightSolution",
    "build_m_P",
    "rounding_level",
]

#: Decode weights kept per code instance (least recently used are dropped).
WEIGHT_CACHE_SIZE = 4096


@functools.cache
def _option_names(cls: type[Code]) -> tuple[str, ...]:
    params = inspect.signature(cls.__init__).parameters
    own = {
        k
        for k, p in params.items()
        if k not in ("self", "m", "P") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    return tuple(sorted(own | (set(cls.grid_args) - {"m"})))


def build_m_P(cls: type[Code], m: int | None, P: int | None, options: dict[str, Any]) -> Code:
    """``cls(m, P, **options)``, P defaulting to ``cls.default_P(m)`` (:meth:`Code.build`)."""
    if m is None:
        raise ValueError(f"code {cls.name!r} needs m")
    if P is None:
        P = cls.default_P(m)
        if P is None:
            raise ValueError(f"code {cls.name!r} needs P= (the number of workers)")
    return cls(m, P, **options)  # type: ignore[call-arg]


class SplitPQ:
    """Build hooks of the families on a p×q split (PolyDot, ε-PolyDot, Polynomial codes).

    (p, q) comes from m by :func:`~gpucoded.codes.grid.square_split` unless given, and P
    from the family's ``_default_P(p, q)`` (its threshold plus one straggler). Listed
    first among the bases, so that it provides :meth:`Code.build` and
    :meth:`Code.default_P` for the family.
    """

    grid_args: tuple[str, ...] = ("m", "p", "q")

    @staticmethod
    def _default_P(p: int, q: int) -> int:
        raise NotImplementedError

    @classmethod
    def build(
        cls,
        *,
        m: int | None = None,
        P: int | None = None,
        p: int | None = None,
        q: int | None = None,
        **options: Any,
    ) -> Code:
        """``cls(p, q, P, **options)``; (p, q) from m by ``square_split``."""
        p, q = square_split(m, p, q)
        return cls(p, q, cls._default_P(p, q) if P is None else P, **options)  # type: ignore[call-arg]

    @classmethod
    def default_P(cls, m: int) -> int:
        return cls._default_P(*square_split(m))


class Code:
    """Base of all codes: the encode/decode machinery, parameterised by data.

    Subclasses set ``P``, ``grid``, ``GA``, ``GB``, ``recovery_threshold`` and
    implement :meth:`_solve`. A *family* also declares what it is, as the typed traits
    and hooks below; the pipeline, the accuracy guard and ``code="auto"`` read those and
    never probe attributes or compare class names. ``@gpucoded.codes.register(name)``
    makes it reachable by name (:mod:`gpucoded.codes.registry`).
    """

    # ------------------------------------------------------------- the traits
    #: The registered name (``coded_matmul(A, B, name, ...)``).
    name: str = "code"
    #: Whether decoding below the exact threshold (with an ε-error) is the guarantee.
    approximate: bool = False
    #: Basis of a polynomial (evaluation) code, ``"monomial"`` or ``"chebyshev"``;
    #: None for codes that are not polynomial codes (selection, searched encoders).
    basis: str | None = None
    #: Worker format the code's points were tuned for (its weights' default); None:
    #: not tuned for a format (float64 weights).
    worker_dtype: str | None = None
    #: How the points were chosen: ``"auto"``, ``"default"`` (both re-tunable for
    #: another format), ``"gamma"``, ``"eps"``, ``"points"`` (the user's: kept), or None.
    gamma_choice: str | None = None
    #: Whether the constructor takes ``dtype=`` (the worker format to tune its points
    #: for); a call building the code by name passes the inputs' dtype then.
    tunes_to_format: bool = False
    #: The grid/count arguments :meth:`build` takes among ``m``, ``p``, ``q``, ``r``.
    grid_args: tuple[str, ...] = ("m",)
    #: What ``code="auto"`` chose and why (:class:`gpucoded.autocode.AutoChoice`).
    auto_choice: Any = None
    #: Rounding error of the float encoding coefficients, in units of u.
    coef_ulps: float = 1.0
    #: Run as tasks re-issued to spares (:mod:`gpucoded.hedging`), not by a decode rule.
    hedged: bool = False

    P: int
    grid: BlockGrid
    GA: np.ndarray
    GB: np.ndarray
    recovery_threshold: int

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple, DecodeWeights] = OrderedDict()
        # named codes are shared by every thread of the process (gpucoded.callsetup):
        # the cache's reads and writes hold this lock; a solve runs outside it
        self._cache_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickling drops the cache's lock (a new one is made on unpickling)."""
        state = self.__dict__.copy()
        state.pop("_cache_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache_lock = threading.Lock()

    # -------------------------------------------------------------- the hooks
    @classmethod
    def default_P(cls, m: int) -> int | None:
        """Workers of a code built for storage 1/m without ``P=`` (None: ``P`` required)."""
        return None

    @classmethod
    def build(cls, *, m: int | None = None, P: int | None = None, **options: Any) -> Code:
        """The code from :func:`~gpucoded.codes.make_code`'s arguments: ``cls(m, P, **options)``.

        ``P`` defaults to :meth:`default_P`. Families whose constructor takes other
        grid arguments (``p``, ``q``, ``r``: :attr:`grid_args`) override this.
        """
        return build_m_P(cls, m, P, options)

    @classmethod
    def option_names(cls) -> list[str]:
        """Keyword options a code built by name accepts: the constructor's and grid's
        (read from the signature once per class: a call checks them every time)."""
        return list(_option_names(cls))

    def retuned(self, fmt: Format) -> Code:
        """This code for workers computing in ``fmt``: itself unless it re-tunes.

        A code whose points were chosen automatically for another format
        (:attr:`gamma_choice` ``"auto"``/``"default"``) returns a copy tuned for
        ``fmt`` (the best γ differs by orders of magnitude between float64 and
        float32)."""
        return self

    def check_promise(self, fmt: Format) -> None:
        """Raise ``ValueError`` if a promise the code was built with (``eps=``) cannot
        hold for workers in ``fmt``; nothing for codes that make none."""

    def rebuild_hint(self, fmt: Format) -> str:
        """How to build this code for ``fmt`` workers (quoted in error messages)."""
        return f"{type(self).__name__}(..., dtype={fmt.name!r})"

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
        array_module(A, B)  # refuses NumPy and CuPy operands mixed
        if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
            raise ValueError(
                f"A and B must be 2-D with A.shape[1] == B.shape[0]; got {A.shape} and {B.shape}"
            )
        g = self.grid
        dtype = self.work_dtype(A.dtype, B.dtype)
        A = A.astype(dtype, copy=False)
        B = B.astype(dtype, copy=False)
        return dispatch.encode(g, self.GA, self.GB, A, B)

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
        self, returned: Iterable[int], *, partial: bool = False, fmt: FormatSpec | None = None
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
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        t0 = time.perf_counter()
        with solve_progress(f"decode weights: {type(self).__name__}, {len(S)} answers"):
            sol = self._solve(S, partial, f)  # a bar only if it runs long (multiprecision)
        dw = self._weights_class.from_solution(self, S, sol, time.perf_counter() - t0, f.name)
        with self._cache_lock:  # two threads may solve the same set: both results agree
            dw = self._cache.setdefault(key, dw)
            self._cache.move_to_end(key)
            while len(self._cache) > WEIGHT_CACHE_SIZE:
                self._cache.popitem(last=False)
        return dw

    #: Class of the weights objects (a subclass may change how the defect acts).
    _weights_class: type[DecodeWeights] = DecodeWeights

    def _weights_format(self, fmt: FormatSpec | None) -> Format:
        """The worker format for the weights: ``fmt``, else the code's tuning, else float64."""
        if fmt is None:
            fmt = self.worker_dtype or "float64"
        return get_format(fmt)

    def _solve(self, S: tuple[int, ...], partial: bool, fmt: Format) -> WeightSolution:
        """The decode weights for the sorted answering workers S.

        ``fmt``: the worker format (for decoders whose weights depend on it)."""
        raise NotImplementedError

    def defect_of(self, dw: DecodeWeights) -> np.ndarray:
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
        fmt: FormatSpec | None = None,
        weights: DecodeWeights | None = None,
        data: Any = None,
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
        weights : DecodeWeights, optional
            The weights of :meth:`decode_weights` for ``returned`` (in ``fmt``), when the
            caller has looked them up already (the call pipeline): not looked up again.
        data : (A, B), optional
            The operands (NumPy or CuPy, like the answers). Where the answer set's
            cached weights come with alternatives (decoder ``"auto"``: interpolation
            and regularised), the weights applied are chosen on this data
            (:meth:`DecodeWeights.choose`: the data-free choice unless another
            candidate's error, measured with a few probes of the answers against
            :math:`A(BX)`, is smaller by more than
            :data:`~gpucoded.codes.datachoice.DATA_MARGIN`); the probes run only then.
            Without ``data`` (answers decoded on their own) the data-free choice is
            applied, as before, and ``DecodeInfo.scores`` is None.
            ``(A, B, AB)``: with the exact product :math:`AB` in float64 as well
            (:func:`gpucoded.probes.exact_reference`, when the caller has computed it:
            the candidates of a small product are scored exactly against it).

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
        fmt = get_format(fmt)
        if weights is not None:
            if weights.workers != tuple(sorted(returned)) or weights.fmt != fmt.name:
                raise ValueError(
                    f"weights are for workers {list(weights.workers)} in {weights.fmt}; the "
                    f"answers are from {sorted(returned)} in {fmt.name}"
                )
            was_cached, dw = True, weights
        else:
            was_cached = (tuple(sorted(returned)), partial, fmt.name) in self._cache
            dw = self.decode_weights(returned, partial=partial, fmt=fmt)
        t1 = time.perf_counter()
        order = {w: i for i, w in enumerate(dw.workers)}
        W = dw.W[:, [order[w] for w in returned]]
        first = products[0]
        R, (rb, db) = len(returned), first.shape
        pdtype = np.result_type(*[x.dtype for x in products]) if R else first.dtype
        dtype = pdtype
        if np.iscomplexobj(W) and dtype.kind != "c":
            dtype = np.result_type(dtype, np.complex64)
        if real is None:
            real = pdtype.kind != "c"
        scores = why = None
        if data is not None and dw.alternatives:  # measured choice among the candidates
            A_, B_, *ref = data
            dw, scores, why = dw.choose(
                products, returned, A_, B_, real=real, reference=ref[0] if ref else None
            )
            W = dw.W[:, [order[w] for w in returned]]
        n, l = shape if shape is not None else (self.grid.p * rb, self.grid.t * db)
        pos = {w: k for k, w in enumerate(returned)}
        C = dispatch.combine(
            self.grid, W, products, (n, l), dtype=dtype, real=real,
            order=[pos[w] for w in dw.workers], W_set=dw.W,
        )
        if not return_info:
            return C
        info = DecodeInfo.of(
            dw, workers=returned, dtype=pdtype, shape=C.shape, norms=norms, inner=inner,
            cached=was_cached, weights_time=t1 - t0, decode_time=time.perf_counter() - t1,
        )
        info.scores, info.choice = scores, why
        return C, info
