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

What a matrix–vector product costs: the workers read P/m times M's bytes (the encoded
stack); the bounds' :math:`\rho_M` and the estimate's :math:`\mu_M` are computed once
per side. The default measured check (``check="probes"``) does not read M again
either: 8 probe vectors are multiplied by M once per side
(:meth:`CodedMatrix.probes`), so checking ``cm @ x`` costs O(8(n + k)) — for a
matrix–vector product left probes :math:`w^\top\hat y` against :math:`(w^\top M)x`,
and a result they would flag is checked again exactly (the product recomputed in
float64, one read of M) before it is flagged; see BENCHMARKS.md, "Matrix–vector".

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

from . import probes as probes_mod
from .backend import array_module, is_cupy_array
from .callsetup import CALL_OPTIONS, check_call, check_feasible, default_answers, deliver, set_up
from .codes import Code
from .matmulplan import check_out, matmul_plan
from .pipeline import CallInfo, col_norm, operands, row_norm, run_product
from .validate import _as_array, check_inner, check_operands, empty_product, inputs_finite

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
        NumPy or CuPy matrix, non-empty (float32, float64, complex; bool and
        integers are stored as float64, float16 as float32:
        :func:`gpucoded.validate.working_dtype`). ``np.dot``, ``np.matmul`` and
        ``@`` take the operator on either side.
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
    bound's :math:`\rho_M` is computed once. (Chosen workers' encoded blocks for a
    subset of M's rows or columns, as array work only, for simulations of fixed answer
    sets: :class:`gpucoded.studies.gather.EncodedRows`.)

    Examples
    --------
    >>> import numpy as np
    >>> from gpucoded import CodedMatrix
    >>> rng = np.random.default_rng(1)
    >>> M = rng.random((60, 40))
    >>> cm = CodedMatrix(M, "chebyshev", m=4, P=8)  # M encoded once, kept by the workers
    >>> x = np.arange(40.0)
    >>> bool(np.allclose(cm @ x, M @ x))  # M·x: only x travels
    True
    >>> bool(np.allclose(np.ones(60) @ cm, np.ones(60) @ M))  # x·M
    True
    >>> y = cm.matmul(x, failed=[2])  # any 8 - (2m - 1) = 1 worker may fail
    >>> bool(np.allclose(y, M @ x))
    True
    """

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """``np.matmul(cm, X)``, ``np.matmul(A, cm)`` and ``A @ cm`` for an ndarray A."""
        # by name: CuPy's matmul dispatches here too
        named = getattr(ufunc, "__name__", "") == "matmul"
        if not named or method != "__call__" or set(kwargs) - {"out"}:
            return NotImplemented
        out = kwargs.get("out")
        return _np_product(self, *inputs, {} if out is None else {"out": out[0]})

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        """``np.dot`` and ``np.matmul`` (``np.dot`` with a 1-D or 2-D other operand)."""
        if func not in (np.dot, np.matmul) or len(args) != 2 or set(kwargs) - {"out"}:
            return NotImplemented
        if func is np.dot and max((np.ndim(a) for a in args if a is not self), default=0) > 2:
            raise ValueError(
                "np.dot with a stacked operand sums over other axes than np.matmul; "
                "use np.matmul (or @) with a CodedMatrix"
            )
        out = kwargs.get("out")
        return _np_product(self, *args, {} if out is None else {"out": out})

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
        if M.ndim != 2 or not M.size:
            raise ValueError(
                f"M must be a non-empty 2-D matrix, got shape {M.shape} (products with an "
                "empty matrix need no code: use numpy, or coded_matmul, which returns them)"
            )
        self.M, _ = check_operands(M, M[:1].T, nonfinite=nonfinite)
        M = self.M  # in the dtype the workers compute in (validate.working_dtype)
        n, k = M.shape
        setup = set_up(
            code, m, P, dict(code_options), executor=executor, like=M, dtype=M.dtype,
            shape=(n, k, 1), call_options={"allow_inaccurate": allow_inaccurate},
        )  # fmt: skip
        self.executor, self.code, self.fmt = setup.executor, setup.code, setup.fmt
        self.allow_inaccurate = allow_inaccurate
        self.finite = nonfinite == "raise" or inputs_finite(M, M[:1])
        self._encoded: dict[tuple, Any] = {}
        self._rows: dict[tuple, Any] = {}  # the streamed side's encoding rows on a device
        self._rho: dict[str, float] = {}
        self._probes: dict[str, Any] = {}

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

    def rho(self, side: str) -> float:
        r""":math:`\rho_M` of the bound: √p·max row norm (side A), √t·max column norm (B)."""
        if side not in self._rho:
            f = row_norm if side == "A" else col_norm
            self._rho[side] = f(self.code, self.M)
        return self._rho[side]

    def rows(self, side: str, X: Any) -> Any:
        """The encoding rows of the streamed operand X (``GB`` when M is side A, else
        ``GA``) in its work dtype, on X's device: kept, so a warm device call uploads
        nothing for its encode. None for host operands (``encode_side`` takes the
        code's own rows)."""
        if type(X) is np.ndarray:
            return None
        dt = self.code.work_dtype(np.result_type(self.M.dtype, X.dtype))
        dev = getattr(getattr(X, "device", None), "id", None)
        key = (side, np.dtype(dt), dev)
        if key not in self._rows:
            G = self.code.GB if side == "A" else self.code.GA
            self._rows[key] = array_module(X).asarray(G.astype(dt, copy=False))
        return self._rows[key]

    def mu(self, side: str) -> float:
        r""":math:`\mu_M` of the estimate (:func:`gpucoded.pipeline.operand_means`): the
        largest absolute row mean (side A) or column mean (side B) of M, computed once
        (a pass over M per call would cost a matrix–vector product as much as its GEMVs)."""
        key = "mu" + side
        if key not in self._rho:
            self._rho[key] = _absmax_mean(self.M, 1 if side == "A" else 0)
        return self._rho[key]

    def probes(self, side: str) -> probes_mod.FixedSide | None:
        r"""Probes multiplied by M once (:func:`gpucoded.probes.fixed_side`), so that the
        measured check of a product reads X and C only, not M again: left probes for
        ``M @ X`` (used where X has at most 8 columns, the matrix–vector case, whose
        check would otherwise be the exact one, a pass over M), right probes for
        ``X @ M`` (where M has more than 8 columns). None for device or complex M."""
        if side not in self._probes:
            dim = self.M.shape[0] if side == "A" else self.M.shape[1]
            useful = dim > probes_mod.PROBES
            self._probes[side] = probes_mod.fixed_side(self.M, side) if useful else None
        return self._probes[side]

    def _product(self, X: Any, side: str, opts: dict[str, Any]) -> Any:
        """The product with M as operand ``side`` ("A": M·X, "B": X·M) and X the other."""
        t_start = time.perf_counter()
        if "executor" in opts:
            raise TypeError(
                "a CodedMatrix's executor is fixed at construction (its encoded blocks live "
                f"there); call options: {', '.join(o for o in CALL_OPTIONS if o != 'executor')}"
            )
        call = default_answers(self.code, check_call(self.code, **opts))
        if isinstance(X, CodedMatrix):
            raise TypeError(
                "CodedMatrix @ CodedMatrix: only one operand can be encoded; multiply by "
                "the other's matrix, e.g. cm1 @ cm2.M"
            )
        X = _as_array("X" if side == "A" else "A", X)
        names = ("the CodedMatrix", "X") if side == "A" else ("A", "the CodedMatrix")
        AB = (self.M, X) if side == "A" else (X, self.M)
        check_inner(*AB, names=names)
        if (Z := empty_product(*AB)) is not None:  # NumPy's, no worker
            check_out(call.out, Z.shape, Z.dtype, Z)
            if call.out is not None:
                call.out[...], Z = Z, call.out
            info = CallInfo(self.code, accuracy=0.0, selection="empty product: no worker ran")
            return (Z, info) if call.return_info else Z
        plan = matmul_plan(self.M, X) if side == "A" else matmul_plan(X, self.M)
        ((A2, B2),) = plan.pairs  # M is 2-D: a stack on the other side folds into one
        # device operands: NaN/Inf in X are looked for in its norms, which come back with
        # the call's other scalars in its one transfer (pipeline.resolve refuses them then)
        confirm = is_cupy_array(X) and call.nonfinite == "raise" and self.finite
        scan = "propagate" if confirm else call.nonfinite
        if side == "A":  # M[:1] / M[:, :1]: the other operand is checked against M's shape
            other = check_operands(self.M[:1], B2, nonfinite=scan)[1]
        else:
            other = check_operands(A2, self.M[:, :1], nonfinite=scan)[0]
        dtype = np.result_type(self.M.dtype, other.dtype)
        check_out(call.out, plan.shape, dtype, self.M)
        fmt = self.executor.compute_format(dtype)
        check_feasible(self.code, fmt, self.allow_inaccurate)  # once per format
        finite = self.finite and (call.nonfinite == "raise" or inputs_finite(other, other[:1]))
        A, B = (self.M, other) if side == "A" else (other, self.M)
        dims = self.code.grid.block_dims(A.shape[0], A.shape[1], B.shape[1])
        stack = self.encoded(side, dtype, dims)
        host = not is_cupy_array(other)  # on the device, pipeline.device_norms fills None
        if side == "A":
            norms = (self.rho("A"), col_norm(self.code, other) if host else None,
                     self.mu("A"), _absmax_mean(other, 0) if host else None)  # fmt: skip
        else:
            norms = (row_norm(self.code, other) if host else None, self.rho("B"),
                     _absmax_mean(other, 1) if host else None, self.mu("B"))  # fmt: skip
        ops = operands(self.code, A, B, finite, norms, confirm=confirm)
        if host and call.check == "probes":
            ops.fixed = self.probes(side)
        C, info = run_product(
            self.code, _Encoder(self.code, other, side, stack, dtype, dims, self.rows(side, other)),
            ops,
            self.executor, call, fmt, t_start,
        )  # fmt: skip
        return deliver(plan.assemble([C]), call, info)


def _absmax_mean(X: Any, axis: int) -> float:
    """max |mean of X along ``axis``| (axis 1: row means, 0: column means), as a float."""
    return float(array_module(X).abs(X.mean(axis=axis)).max())


def _np_product(cm: CodedMatrix, A: Any, B: Any, call: dict[str, Any]) -> Any:
    """A NumPy protocol's matmul with ``cm`` as one (or both) of A and B."""
    return cm._product(B, "A", call) if A is cm else cm._product(A, "B", call)


class _Encoder:
    """Encodes the streamed operand; pairs it with M's placed stack (side ``side``)."""

    def __init__(
        self, code: Code, X: Any, side: str, stack: Any, dtype: Any, dims: tuple, G: Any = None
    ) -> None:
        self.code, self.X, self.side, self.stack, self.dtype, self.dims, self.G = (
            code, X, side, stack, dtype, dims, G
        )  # fmt: skip

    def __call__(self) -> tuple[Any, Any]:
        other = "B" if self.side == "A" else "A"
        X = self.X.astype(self.dtype, copy=False)
        Xt = encode_side(self.code, X, other, self.dims, G=self.G)
        return (self.stack, Xt) if self.side == "A" else (Xt, self.stack)
