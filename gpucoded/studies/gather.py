r"""Chosen workers' encoded blocks of a fixed matrix, for subsets of its rows or columns.

A simulation of fixed answer sets over batches of a fixed data matrix (the
logistic-regression study's ``CodedSGD``, :mod:`.logreg`) needs, each step, the
encoded blocks of a few workers for a few rows or columns of the matrix, as array work
only (no executor, no answer checks). :class:`EncodedRows` gives them, from M encoded
for those workers only or from M encoded once for all P workers, bit for bit the
entries of :meth:`gpucoded.CodedMatrix.encoded` (each is the same length-s sum by the
same GEMM, :func:`gpucoded.operators.encode_side`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_module
from ..codes import Code
from ..operators import encode_side

__all__ = ["EncodedRows"]

#: Encoding-row sets kept per (side, workers) before the cache is cleared.
MAX_ROW_SETS = 1024


class EncodedRows:
    """Encoded blocks of M's rows or columns for chosen workers of ``code``.

    Parameters
    ----------
    M : array (n, k)
        NumPy or CuPy matrix (the data; not copied).
    code : Code
        The code whose encoding rows are used (side ``"A"`` needs p = 1, side
        ``"B"`` t = 1).

    Caches: the store of M encoded for all workers per (side, dtype) (source
    ``"stored"``) and the encoding rows ``G[w]`` per (side, workers).
    """

    def __init__(self, M: Any, code: Code) -> None:
        self.M, self.code = M, code
        self._rows: dict[tuple, Any] = {}
        self._grows: dict[tuple, np.ndarray] = {}

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
            entries are those of :meth:`gpucoded.CodedMatrix.encoded`. May be a
            transposed view (source ``"encode"``, side B: the (r, cb, len(index)) stack
            the GEMM wrote).
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
            if len(self._grows) >= MAX_ROW_SETS:  # bounded: many distinct sets are computed anew
                self._grows.clear()
            G = self._grows[key] = (self.code.GA if side == "A" else self.code.GB)[w]
        return G

