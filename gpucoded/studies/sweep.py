r"""Batched worst-case sweeps over subsets of answers: the machinery of the studies.

The decode of subset S is :math:`\hat C_S = W_S\,\tilde C_S`; with :math:`W_S`
scattered into a row of length P (zeros for the missing workers) the decodes of all
subsets are one GEMM :math:`[W_{S_1};\dots;W_{S_n}]\,[\tilde C_1;\dots;\tilde C_P]`
over the stacked worker outputs (on the GPU when the inputs live there). Below the
recovery threshold the codes decode with ``partial=True`` (truncated interpolation).

Used by the Figure 1 study (:mod:`.figure1`), the γ check (:mod:`.gamma_check`), the
advice (:mod:`.advise`), logistic regression (:mod:`.logreg`) and the progressive
study (:mod:`.progressive_gain`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..codes import Code, EvaluationCode
from ..formats import get_format
from .fastweights import fast_weights_sizes
from .precision import worker_matmul

__all__ = [
    "SweepResult",
    "all_subsets",
    "min_answers",
    "stacked_weights",
    "stacked_weights_many",
    "subset_sweep",
    "unit_gaussian_pair",
]

#: Elements of the stacked decode output processed per GEMM chunk on the GPU (memory cap).
_CHUNK_ELEMS = 2**24
#: Bytes of the stacked decode output per chunk on the host (fits the L2 cache).
_CHUNK_BYTES = 2**20


@dataclass
class SweepResult:
    """Errors of every subset of answers for one code and worker format.

    Attributes
    ----------
    subsets : list of tuple
        All evaluated subsets (sorted worker indices), grouped by size.
    errors : ndarray (len(subsets),)
        :math:`\\|\\hat C_S - C\\|_{\\max}` of each subset.
    worst : dict
        n_succ -> (index into ``subsets``, decoded blocks of that subset, float64
        host array (n_c, rb*db)).
    weights_time, gemm_time : float
        Seconds spent on the decode weights and on the stacked GEMM + reduction.
    """

    subsets: list[tuple[int, ...]]
    errors: np.ndarray
    worst: dict[int, tuple[int, np.ndarray]]
    weights_time: float = 0.0
    gemm_time: float = 0.0


def unit_gaussian_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two n×n N(0,1) matrices, each normalised to unit Frobenius norm (the paper's inputs)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    B = rng.standard_normal((n, n))
    return A / np.linalg.norm(A), B / np.linalg.norm(B)


def min_answers(code: Code) -> int:
    """Fewest answers from which ``code`` gives any estimate (partial decode)."""
    if isinstance(code, EvaluationCode):
        return int(code.block_need().max())
    return 1


def stacked_weights(
    code: Code, subsets: Sequence[tuple[int, ...]], *, fast: bool = True, fmt: Any = None
) -> np.ndarray:
    r"""Decode weights of all ``subsets`` scattered into one (len, n_c, P) array.

    Row s holds :math:`W_{S_s}` in the columns of the workers of :math:`S_s`, zeros
    elsewhere. Weights come from ``code.decode_weights(S, partial=True)`` (mpmath,
    cached per code), or with ``fast=True`` from
    :func:`~gpucoded.studies.fastweights.fast_weights` where that applies
    (real monomial codes; it falls back to the mpmath path otherwise).
    """
    return stacked_weights_many([code], subsets, fast=fast, fmt=fmt)[0]


def stacked_weights_many(
    codes: Sequence[Code],
    subsets: Sequence[tuple[int, ...]],
    *,
    fast: bool = True,
    fmt: Any = None,
) -> list[np.ndarray]:
    """:func:`stacked_weights` for several codes with the same P and grid, vectorised
    over the codes (one double-double call per subset size for a whole γ sweep)."""
    if len({(c.P, c.grid) for c in codes}) > 1:
        raise ValueError("stacked_weights_many needs codes with the same P and grid")
    n_c, P = codes[0].grid.n_c, codes[0].P
    outs = np.zeros((len(codes), len(subsets), n_c, P))
    by_size: dict[int, list[int]] = {}
    for i, S in enumerate(subsets):
        by_size.setdefault(len(S), []).append(i)
    S_arrs = [
        np.array([subsets[i] for i in idx], dtype=int).reshape(len(idx), r)
        for r, idx in by_size.items()
    ]
    Walls = fast_weights_sizes(list(codes), S_arrs) if fast else [None] * len(S_arrs)
    for (r, idx), S_arr, Wall in zip(by_size.items(), S_arrs, Walls, strict=True):
        rows = np.asarray(idx)[:, None, None]
        cols = np.arange(n_c)[None, :, None]
        if Wall is not None:  # real by construction; all codes at once
            W = Wall.reshape(len(codes), len(idx), n_c, r).transpose(1, 2, 3, 0)
            outs.transpose(1, 2, 3, 0)[rows, cols, S_arr[:, None, :]] = W
            continue
        for ci, code in enumerate(codes):
            W = np.stack([code.decode_weights(subsets[i], partial=True, fmt=fmt).W for i in idx])
            if np.iscomplexobj(W):
                raise ValueError(f"{code!r} has complex weights; the Figure 1 study is real-only")
            outs[ci][rows, cols, S_arr[:, None, :]] = W
    return list(outs)


def all_subsets(code: Code, n_succ: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """Every subset of answering workers with a feasible size, grouped by size."""
    lo = min_answers(code)
    sizes = [r for r in (n_succ or range(lo, code.P + 1)) if lo <= r <= code.P]
    return [S for r in sizes for S in itertools.combinations(range(code.P), r)]


def _c_blocks(code: Code, C: np.ndarray, rb: int, db: int) -> np.ndarray:
    g = code.grid
    return g.split(C, g.p, g.t, rb, db).reshape(g.n_c, rb * db)


def subset_sweep(
    code: Code,
    A: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    dtype: str = "float64",
    *,
    n_succ: Sequence[int] | None = None,
    fast: bool = True,
    weights: np.ndarray | None = None,
    subsets: Sequence[tuple[int, ...]] | None = None,
    xp: Any = np,
) -> SweepResult:
    r"""Errors of every subset of answers, batched into one GEMM per memory chunk.

    Parameters
    ----------
    code : Code
        Real code (its ``decode_weights(S, partial=True)`` defines the decode).
    A, B : ndarray
        float64 inputs (host).
    C : ndarray
        Reference product (extended precision, e.g. :func:`~gpucoded.reference.exact_product`).
    dtype : str
        Worker format, a key of :data:`gpucoded.formats.FORMATS`.
    n_succ : sequence of int, optional
        Numbers of answers to evaluate; default every feasible one.
    fast : bool
        Use the closed-form weights where possible (see :func:`stacked_weights`).
    weights : ndarray (len(subsets), n_c, P), optional
        Precomputed :func:`stacked_weights` of the subsets.
    subsets : list of tuple, optional
        Subsets to evaluate (sorted, grouped by size); default :func:`all_subsets`
        (``code``, ``n_succ``).
    xp : module
        ``numpy`` or ``cupy`` (where the worker GEMMs and the stacked decode run).
    """
    sd = get_format(dtype).storage
    subsets = list(subsets) if subsets is not None else all_subsets(code, n_succ)
    t0 = time.perf_counter()
    Wst = stacked_weights(code, subsets, fast=fast) if weights is None else weights
    t1 = time.perf_counter()
    At, Bt = code.encode(xp.asarray(A, dtype=sd), xp.asarray(B, dtype=sd))
    prods = worker_matmul(At, Bt, dtype)
    _, rb, db = prods.shape
    prods = prods.reshape(code.P, rb * db)
    Cb = xp.asarray(_c_blocks(code, np.asarray(C, dtype=np.float64), rb, db))
    n_c = code.grid.n_c
    nsub = len(subsets)
    with np.errstate(over="ignore"):  # weights beyond the format's range: inf errors
        Wd = xp.asarray(Wst.reshape(nsub * n_c, code.P).astype(sd, copy=False))
    errors = _max_errors(Wd, prods, Cb, xp)
    sizes_arr = np.array([len(S) for S in subsets])
    # the worst subset of each size, decoded again: one GEMM over their stacked rows
    # (a GEMM like the batched one, not a GEMV, so the rows are bit-identical to it)
    sizes = np.unique(sizes_arr)  # ascending
    locs = [np.flatnonzero(sizes_arr == r) for r in sizes]
    picks = [int(loc[np.argmax(errors[loc])]) for loc in locs]  # first worst of each size
    rows = np.concatenate([np.arange(i * n_c, (i + 1) * n_c) for i in picks])
    rows = np.concatenate([rows, rows[: max(0, 2 - rows.size)]])
    with np.errstate(over="ignore", invalid="ignore"):
        dec = to_numpy(Wd[xp.asarray(rows)] @ prods).astype(np.float64)
    worst = {
        int(r): (i, dec[k * n_c : (k + 1) * n_c])
        for k, (r, i) in enumerate(zip(sizes, picks, strict=True))
    }
    t2 = time.perf_counter()
    return SweepResult(subsets, errors, worst, t1 - t0, t2 - t1)


def _max_errors(Wd: Any, prods: Any, Cb: Any, xp: Any = np) -> np.ndarray:
    r""":math:`\max_{c,j}|(W_S\tilde C)_{c,j} - C_{c,j}|` for every subset S.

    ``Wd`` (n_sub·n_c, P) stacked weights in the worker format, ``prods`` (P, L) the
    worker outputs, ``Cb`` (n_c, L) float64 reference blocks. The decode is the GEMM
    ``Wd @ prods`` in the worker format, the error is measured in float64 (a float32
    decode is widened exactly before the subtraction). On the host the columns are
    processed in chunks of :data:`_CHUNK_BYTES` of output, reusing one buffer: the
    GEMM, the subtraction, |·| and the row maxima then run on cache-resident data (the
    reduction over n_sub × L values is memory-bound otherwise). NaN counts as ∞.
    """
    rows, L = Wd.shape[0], prods.shape[1]
    n_c = Cb.shape[0]
    nsub = rows // n_c
    if xp is np:
        ch = max(256, _CHUNK_BYTES // (8 * rows))
    else:
        ch = max(1, _CHUNK_ELEMS // rows)
    nchunks = -(-L // min(ch, L))
    ch = -(-L // nchunks)  # equal chunks (no small, inefficient last one)
    wide = Wd.dtype == np.float64
    R = xp.empty((rows, ch), dtype=Wd.dtype)
    E = R if wide else xp.empty((rows, ch), dtype=np.float64)
    acc = xp.empty((nchunks, nsub), dtype=np.float64)
    C1 = Cb[0] if n_c == 1 else None
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(nchunks):
            c0 = k * ch
            w = min(ch, L - c0)
            Rk, Ek = (R, E) if w == ch else (R[:, :w], E[:, :w])
            xp.matmul(Wd, prods[:, c0 : c0 + w], out=Rk)
            if C1 is not None:  # one block per subset: plain 2-D passes
                xp.subtract(Rk, C1[c0 : c0 + w], out=Ek)
                xp.abs(Ek, out=Ek)
                Ek.max(axis=1, out=acc[k])
                continue
            E3 = Ek.reshape(nsub, n_c, w)
            xp.subtract(Rk.reshape(nsub, n_c, w), Cb[None, :, c0 : c0 + w], out=E3)
            xp.abs(E3, out=E3)
            E3.max(axis=(1, 2), out=acc[k])
    err = to_numpy(acc.max(axis=0))
    err[np.isnan(err)] = np.inf
    return err
