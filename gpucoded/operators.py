r"""Coded operators: encode a matrix once, multiply it many times.

A coded deployment stores an encoded matrix on its workers once and streams the
other operand through it (gradient descent on a fixed data matrix, inference with
fixed weights, power iterations). :class:`CodedMatrix` does that: for ``A @ cm``
(:math:`AM`, M the B operand) worker w keeps
:math:`\tilde M_w=\sum_b G_B[w,b]M_b`, for ``cm @ X`` (:math:`MX`, M the A operand)
:math:`\tilde M_w=\sum_a G_A[w,a]M_a`; each side is encoded when first used and
placed where the worker runs (:meth:`gpucoded.executors.base.Executor.place`: host
memory for threads and serial workers, the device for CuPy stacks, scattered once to
the Dask worker that computes with it). A call encodes and ships only the other
operand, then runs the one pipeline of :mod:`gpucoded.pipeline`, so it has the call
options, answer checks, accuracy guard and :class:`~gpucoded.pipeline.CallInfo` of
:func:`gpucoded.coded_matmul`.

>>> import numpy as np, gpucoded
>>> M = np.random.default_rng(0).standard_normal((60, 40))
>>> cm = gpucoded.CodedMatrix(M)                  # exact Chebyshev code, m=2, P=4
>>> x = np.ones(40)
>>> bool(np.allclose(cm @ x, M @ x))              # M·x, the encoded M is reused
True
>>> y = np.ones(60)
>>> bool(np.allclose(cm.rmatmul(y, failed=2), y @ M))
True
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .backend import array_module
from .callsetup import CALL_OPTIONS, check_call, check_feasible, default_answers, deliver, set_up
from .codes import Code
from .pipeline import check_out, col_norm, matmul_plan, operands, row_norm, run_product
from .validate import _as_array, check_operands, inputs_finite

__all__ = ["CodedMatrix", "encode_side"]


def encode_side(
    code: Code,
    X: Any,
    side: str,
    dims: tuple[int, int, int],
    workers: Any = None,
    *,
    G: Any = None,
) -> Any:
    r"""One operand's encoded stack: side ``"A"`` (P, rb, cb) or ``"B"`` (P, cb, db).

    :math:`\tilde X_w=\sum_j G[w,j]X_j` over the blocks of X in the code's grid (A:
    p×s blocks with ``GA``; B: s×t blocks with ``GB``), ``dims = (rb, cb, db)``;
    computed in ``code.work_dtype(X.dtype)``, in X's array namespace, as one GEMM of
    the encoding rows with the stacked blocks, so every entry is the same length-
    ``n_a`` (``n_b``) sum whichever workers are encoded.

    Parameters
    ----------
    workers : sequence of int, optional
        Encode only these workers' blocks, in this order (the rows ``G[workers]``).
    G : array (r, n_a or n_b), optional
        The encoding rows themselves, e.g. ``code.GB[S]`` taken once for an answer
        set S that a loop encodes for again and again (overrides ``workers``).
    """
    g = code.grid
    rb, cb, db = dims
    if G is None:
        G = code.GA if side == "A" else code.GB
        if workers is not None:
            G = G[np.asarray(workers, dtype=np.intp)]
    if X.dtype != G.dtype:  # the work dtype: the inputs' result type, complex if the code is
        dt = code.work_dtype(X.dtype)
        X, G = X.astype(dt, copy=False), G.astype(dt, copy=False)
    if side == "A":
        blocks, shape = g.split(X, g.p, g.s, rb, cb).reshape(g.n_a, rb * cb), (rb, cb)
    else:
        blocks, shape = g.split(X, g.s, g.t, cb, db).reshape(g.n_b, cb * db), (cb, db)
    if type(X) is not np.ndarray:
        G = array_module(X).asarray(G)
    return (G @ blocks).reshape(G.shape[0], *shape)


class CodedMatrix:
    r"""A matrix M encoded once for coded products :math:`AM` and :math:`MX`.

    Parameters
    ----------
    M : array (n, k)
        NumPy or CuPy matrix (float32, float64, complex).
    code : str, Code or None
        As in :func:`gpucoded.coded_matmul` (default: the exact Chebyshev code,
        m=2, P=4; ``"auto"`` with ``P=``, ``stragglers=``, ``rtol=`` among the
        ``code_options``, predicted for M times a vector: the most conservative scale).
    m, P : int
        Storage fraction and workers, for a code name.
    executor : Executor, str or None
        Where the workers run; fixed for the operator's lifetime (its encoded blocks
        live there).
    nonfinite : {"raise", "propagate"}
        NaN/Inf in M.
    allow_inaccurate : bool
        Keep a code that no answer set can decode accurately in the executor's
        worker format (refused with a ``ValueError`` otherwise); the code is fitted
        to that format once, here (:func:`gpucoded.pipeline.fit_code`).
    **code_options
        Options of the code constructor.

    Notes
    -----
    ``A @ cm`` and ``cm.rmatmul(A, **call)`` give A·M; ``cm @ X`` and
    ``cm.matmul(X, **call)`` give M·X, with ``np.matmul`` semantics for the other
    operand (a vector, or a stack: one coded product for the whole stack). The call
    options are those of :func:`gpucoded.coded_matmul` except ``executor``:
    ``failed``, ``delays``, ``deadline``, ``answers``, ``verify``, ``nonfinite``,
    ``on_inaccurate``, ``allow_inaccurate``, ``wait_for_accuracy``,
    ``return_info``, ``out``. The encoded side is cached per result dtype; the
    bound's :math:`\rho_M` is computed once. :meth:`gather` gives chosen workers'
    encoded blocks for a subset of M's rows or columns as array work only (no
    executor): what a simulation of fixed answer sets over batches of a fixed data
    matrix needs (the logistic-regression study's ``CodedSGD`` takes Z's B blocks
    from it).
    """

    #: NumPy defers ``ndarray @ CodedMatrix`` to :meth:`__rmatmul__`.
    __array_ufunc__ = None

    def __init__(
        self,
        M: Any,
        code: str | Code | None = None,
        *,
        m: int | None = None,
        P: int | None = None,
        executor: Any = None,
        nonfinite: str = "raise",
        allow_inaccurate: bool = False,
        **code_options: Any,
    ) -> None:
        M = _as_array("M", M)
        if M.ndim != 2:
            raise ValueError(f"M must be a 2-D matrix, got shape {M.shape}")
        self.M, _ = check_operands(M, M[:1].T, nonfinite=nonfinite)
        n, k = M.shape
        setup = set_up(
            code, m, P, dict(code_options), executor=executor, like=M, dtype=M.dtype,
            shape=(n, k, 1), call_options={"allow_inaccurate": allow_inaccurate},
        )  # fmt: skip
        self.executor, self.code, self.fmt = setup.executor, setup.code, setup.fmt
        self.allow_inaccurate = allow_inaccurate
        self.finite = nonfinite == "raise" or inputs_finite(M, M[:1])
        self._encoded: dict[tuple, Any] = {}
        self._rows: dict[tuple, Any] = {}
        self._grows: dict[tuple, np.ndarray] = {}
        self._rho: dict[str, float] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.M.shape)

    @property
    def dtype(self) -> Any:
        return self.M.dtype

    def __repr__(self) -> str:
        return f"CodedMatrix(shape={self.shape}, dtype={self.dtype}, code={self.code!r})"

    def __matmul__(self, X: Any) -> Any:
        return self._product(X, "A", {})

    def __rmatmul__(self, A: Any) -> Any:
        return self._product(A, "B", {})

    def matmul(self, X: Any, **call: Any) -> Any:
        """M·X through the code; ``call``: the call options of ``coded_matmul``."""
        return self._product(X, "A", call)

    def rmatmul(self, A: Any, **call: Any) -> Any:
        """A·M through the code; ``call``: the call options of ``coded_matmul``."""
        return self._product(A, "B", call)

    def encoded(self, side: str, dtype: Any, dims: tuple[int, int, int]) -> Any:
        """M's encoded stack as side ``side`` in ``dtype``, placed on the workers (cached)."""
        key = (side, np.dtype(dtype))
        if key not in self._encoded:
            M = self.M.astype(dtype, copy=False)
            self._encoded[key] = self.executor.place(encode_side(self.code, M, side, dims))
        return self._encoded[key]

    def gather(
        self,
        side: str,
        workers: Any,
        index: Any,
        dtype: Any = None,
        *,
        source: str = "encode",
        raw: Any = None,
    ) -> Any:
        r"""Encoded blocks of some workers for a subset of M's rows or columns.

        Array work only (no executor, no checks of answers): what a simulation of a
        fixed answer set needs, e.g. a training loop over batches of a fixed data
        matrix (the logistic-regression study's ``CodedSGD``).

        * side ``"B"`` (M the right operand, grid with t = 1): slab i of the result is
          :math:`\tilde M_w[:,J]^\top` for ``w = workers[i]``, ``J = index``, i.e.
          the transposed B block of worker w for the product with :math:`M[:,J]`
          (:math:`G_B` mixes only M's row blocks, so selecting columns commutes
          with encoding);
        * side ``"A"`` (M the left operand, p = 1): slab i is
          :math:`\tilde M_w[J,:]`, worker w's A block for :math:`M[J,:]`.

        Two sources give the same numbers bit for bit (each entry is the same
        length-s sum :math:`\sum_j G[w,j]M_j`, by the same GEMM; tested):

        * ``"encode"`` (default): M's rows/columns J (or ``raw``) encoded for these
          workers only. Reads s·|J|·cb numbers of M (none, given ``raw``) plus a
          small GEMM.
        * ``"stored"``: M encoded once for all P workers per (side, dtype), in a
          layout whose gather is one row ``take`` -- what a deployment holds. Reads
          r·|J|·cb numbers from a copy P/s times the size of M.

        On a CPU ``"encode"`` is the faster: in the logistic-regression study
        (ε-MatDot m=5, P=7, MNIST subset; ``python bench/bench_studies.py``) the
        training loop runs at about 0.75× the speed with ``"stored"``: the encoded
        copy (44 MB) does not stay in the cache the raw data (31 MB) stays in, and
        its gather reads from memory what the encode computes from rows in cache.
        On a GPU the two have not been measured.

        Parameters
        ----------
        side : {"A", "B"}
        workers : sequence of int
            Worker indices (r of them, each in ``0 .. P-1``).
        index : sequence of int
            Columns (side B) or rows (side A) of M, each in range (no wrap-around).
        dtype : dtype, optional
            Result dtype of the products (default M's); the encoding is in
            ``code.work_dtype(dtype)``.
        source : {"encode", "stored"}
        raw : array, optional
            ``M[:, index]`` (side B, (inner, len(index))) or ``M[index, :]`` (side A,
            (len(index), inner)), any strides, for ``"encode"`` when the caller
            already holds those columns/rows (the study gathers its batch for the
            other product anyway): encoded as given, not gathered again; ``index``
            may then be None (it is not read, only its length checked). ``inner``
            is M's inner dimension, or that zero padded to s·cb. Its entries are
            the caller's promise (checking them would cost the gather it saves).

        Returns
        -------
        array (r, len(index), cb)
            cb = ⌈(inner dimension)/s⌉, zero padded like the code's blocks; the
            entries are those of :meth:`encoded`. May be a transposed view (source
            ``"encode"``, side B: the (r, cb, len(index)) stack the GEMM wrote).
        """
        g = self.code.grid
        if side not in ("A", "B") or (g.p if side == "A" else g.t) != 1:
            raise ValueError(
                f"gather needs side 'A' with p = 1 or side 'B' with t = 1; got side "
                f"{side!r} on {g}"
            )
        xp = np if type(self.M) is np.ndarray else array_module(self.M)
        if source not in ("encode", "stored"):
            raise ValueError(f"source must be 'encode' or 'stored', got {source!r}")
        n, k = self.M.shape
        nfree, inner = (n, k) if side == "A" else (k, n)  # ``index`` selects from nfree
        dt = self.M.dtype if dtype is None else np.dtype(dtype)
        w = np.asarray(workers, dtype=np.intp)
        wl = w.tolist() if w.ndim == 1 else w.reshape(-1).tolist()
        if wl and (min(wl) < 0 or max(wl) >= self.code.P):
            raise IndexError(f"workers must lie in 0..{self.code.P - 1}, got {wl}")
        if raw is not None:
            if source != "encode":
                raise ValueError("raw rows are encoded by source='encode' only")
            return self._encode_rows(side, w.reshape(-1), raw, dt, inner, index)
        J = xp.asarray(index).reshape(-1)
        if J.size and (int(J.min()) < 0 or int(J.max()) >= nfree):
            raise IndexError(f"index must lie in 0..{nfree - 1} (M is {n}×{k}, side {side})")
        if source == "encode":
            raw = self.M[J, :] if side == "A" else self.M[:, J]
            return self._encode_rows(side, w.reshape(-1), raw, dt, inner, None)
        flat = (xp.asarray(w.reshape(-1))[:, None] * nfree + J[None, :]).reshape(-1)
        rows = self._stored_rows(side, dt, nfree)
        return rows.take(flat, axis=0).reshape(len(wl), J.size, -1)

    def _stored_rows(self, side: str, dt: np.dtype, nfree: int) -> Any:
        """M encoded for all workers as (P·nfree, cb) rows (cached per side and dtype)."""
        key = (side, dt)
        if key not in self._rows:
            g = self.code.grid
            n, k = self.M.shape
            dims = g.block_dims(n, k, 1) if side == "A" else g.block_dims(1, n, k)
            enc = encode_side(self.code, self.M.astype(dt, copy=False), side, dims)
            enc = enc if side == "A" else enc.transpose(0, 2, 1)  # (P, nfree, cb)
            xp = array_module(self.M)
            self._rows[key] = xp.ascontiguousarray(enc).reshape(self.code.P * nfree, -1)
        return self._rows[key]

    def _encode_rows(
        self, side: str, w: np.ndarray, raw: Any, dt: np.dtype, inner: int, index: Any
    ) -> Any:
        """Source ``"encode"`` of :meth:`gather`: ``raw`` (rows J of M for side A,
        columns J for side B) split into the s inner blocks and encoded with ``G[w]``."""
        g = self.code.grid
        cb = -(-inner // g.s)
        ax = 1 if side == "A" else 0  # raw's inner axis
        nJ = raw.shape[1 - ax] if raw.ndim == 2 else -1
        if (
            raw.ndim != 2
            or raw.shape[ax] not in (inner, g.s * cb)
            or (index is not None and len(index) != nJ)
        ):
            want = (f"({nJ if index is None else len(index)}, {inner})" if side == "A"
                    else f"({inner}, {nJ if index is None else len(index)})")  # fmt: skip
            raise ValueError(
                f"raw must be M's {'rows' if side == 'A' else 'columns'} that index selects, "
                f"shape {want} (the inner dimension may be zero padded to {g.s * cb}), "
                f"got {raw.shape}"
            )
        G = self._rows_of(side, w)
        X = raw.astype(dt if dt == G.dtype else self.code.work_dtype(dt), copy=False)
        if X.shape[ax] != g.s * cb:
            xp = array_module(X)
            pad = xp.zeros((nJ, g.s * cb - inner) if ax else (g.s * cb - inner, nJ), X.dtype)
            X = xp.concatenate([X, pad], axis=ax)
        if side == "A":  # A blocks: column blocks of the rows, (r, |J|, cb)
            return encode_side(self.code, X, "A", (nJ, cb, 1), G=G)
        return encode_side(self.code, X, "B", (1, cb, nJ), G=G).transpose(0, 2, 1)

    def _rows_of(self, side: str, w: np.ndarray) -> np.ndarray:
        """``G[w]`` of a side (cached per worker set: a loop asks for the same few)."""
        key = (side, w.tobytes())
        G = self._grows.get(key)
        if G is None:
            if len(self._grows) >= 1024:  # bounded: many distinct sets are computed anew
                self._grows.clear()
            G = self._grows[key] = (self.code.GA if side == "A" else self.code.GB)[w]
        return G

    def rho(self, side: str) -> float:
        r""":math:`\rho_M` of the bound: √p·max row norm (side A), √t·max column norm (B)."""
        if side not in self._rho:
            f = row_norm if side == "A" else col_norm
            self._rho[side] = f(self.code, self.M)
        return self._rho[side]

    def _product(self, X: Any, side: str, opts: dict[str, Any]) -> Any:
        """The product with M as operand ``side`` ("A": M·X, "B": X·M) and X the other."""
        t_start = time.perf_counter()
        if "executor" in opts:
            raise TypeError(
                "a CodedMatrix's executor is fixed at construction (its encoded blocks live "
                f"there); call options: {', '.join(o for o in CALL_OPTIONS if o != 'executor')}"
            )
        call = default_answers(self.code, check_call(self.code, **opts))
        plan = matmul_plan(self.M, X) if side == "A" else matmul_plan(X, self.M)
        ((A2, B2),) = plan.pairs  # M is 2-D: a stack on the other side folds into one
        if side == "A":  # M[:1] / M[:, :1]: the other operand is checked against M's shape
            other = check_operands(self.M[:1], B2, nonfinite=call.nonfinite)[1]
        else:
            other = check_operands(A2, self.M[:, :1], nonfinite=call.nonfinite)[0]
        dtype = np.result_type(self.M.dtype, other.dtype)
        check_out(call.out, plan.shape, dtype, self.M)
        fmt = self.executor.compute_format(dtype)
        check_feasible(self.code, fmt, self.allow_inaccurate)  # once per format
        finite = self.finite and (call.nonfinite == "raise" or inputs_finite(other, other[:1]))
        A, B = (self.M, other) if side == "A" else (other, self.M)
        dims = self.code.grid.block_dims(A.shape[0], A.shape[1], B.shape[1])
        stack = self.encoded(side, dtype, dims)
        if side == "A":
            norms = (self.rho("A"), col_norm(self.code, other))
        else:
            norms = (row_norm(self.code, other), self.rho("B"))
        ops = operands(self.code, A, B, finite, norms)
        C, info = run_product(
            self.code, _Encoder(self.code, other, side, stack, dtype, dims), ops,
            self.executor, call, fmt, t_start,
        )  # fmt: skip
        return deliver(plan.assemble([C]), call, info)


class _Encoder:
    """Encodes the streamed operand; pairs it with M's placed stack (side ``side``)."""

    def __init__(self, code: Code, X: Any, side: str, stack: Any, dtype: Any, dims: tuple) -> None:
        self.code, self.X, self.side, self.stack, self.dtype, self.dims = (
            code, X, side, stack, dtype, dims
        )  # fmt: skip

    def __call__(self) -> tuple[Any, Any]:
        other = "B" if self.side == "A" else "A"
        Xt = encode_side(self.code, self.X.astype(self.dtype, copy=False), other, self.dims)
        return (self.stack, Xt) if self.side == "A" else (Xt, self.stack)
