r"""Figure 1 of the paper, with the true worst case over all failure patterns.

Setting: m = 3, P = 6, A and B 100×100 Gaussian, normalised to
:math:`\|A\|_F=\|B\|_F=1`. For each code and each number of answers
:math:`N_{\rm succ}` the decoded :math:`\hat C_S` of **every** subset S of
:math:`N_{\rm succ}` workers is compared with C (computed in extended precision):

* ``max_err`` :math:`=\max_S\|\hat C_S-C\|_{\max}` (the paper's ε, the true worst case),
  ``mean_err`` and ``median_err`` over the :math:`\binom{P}{N_{\rm succ}}` subsets;
* ``eps1``/``eps2``: the worst subset's error split into the interpolation error
  :math:`\epsilon_1=\hat C_\infty-C` (exact arithmetic, from the decode's defect tensor,
  :mod:`gpucoded.reference`) and the floating-point error :math:`\epsilon_2`;
* ``bound``: the a-priori bound of :meth:`~gpucoded.codes.DecodeWeights.bounds`.

Batched evaluation: the decode of subset S is :math:`\hat C_S = W_S\,\tilde C_S`; with
:math:`W_S` scattered into a row of length P (zeros for the missing workers) the
decodes of all subsets are one GEMM :math:`[W_{S_1};\dots;W_{S_n}]\,[\tilde C_1;\dots;
\tilde C_P]` over the stacked worker outputs (on the GPU when the inputs live there).
Below the recovery threshold the codes decode with ``partial=True`` (truncated
interpolation), exact codes included, as in the paper.

Panels: (a) error vs :math:`N_{\rm succ}` for MatDot λ(1), Chebyshev and ε-MatDot
λ(70000); (b) ε-MatDot error vs γ for each :math:`N_{\rm succ}`; (c) error vs
:math:`N_{\rm succ}` for several γ (a view of (b)).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import cupy_or_none
from ..codes import ApproxMatDot, ChebyshevMatDot, Code, EvaluationCode, MatDot
from ..formats import FORMATS
from ..progress import Progress
from ..reference import exact_product
from .plotting import ANSWERS, error_label, plots_or_note
from .sweep import (
    SweepResult,
    all_subsets,
    min_answers,
    stacked_weights_many,
    subset_sweep,
    unit_gaussian_pair,
)

#: Worker formats the study runs (the keys of :data:`gpucoded.formats.FORMATS`).
WORKER_DTYPES = tuple(FORMATS)

__all__ = [
    "CSV_COLUMNS",
    "Figure1Config",
    "figure1",
    "main",
    "naive_sweep",
]

CSV_COLUMNS = [
    "panel",
    "code",
    "m",
    "P",
    "gamma",
    "dtype",
    "n_succ",
    "n_subsets",
    "max_err",
    "mean_err",
    "median_err",
    "eps1",
    "eps2",
    "bound",
    "worst_subset",
]

@dataclass
class Figure1Config:
    """Parameters of the Figure 1 study (defaults: the paper's full setting)."""

    m: int = 3
    P: int = 6
    n: int = 100
    seed: int = 0
    dtypes: tuple[str, ...] = ("float64", "float32")
    gammas: np.ndarray = field(default_factory=lambda: np.logspace(0, 8, 201))
    approx_gamma: float = 70000.0
    split: bool = True
    device: str = "cpu"
    decoder: str = "interpolation"  # the codes' decoder ("auto", "minnorm" too)

    @classmethod
    def quick(cls) -> Figure1Config:
        """Small variant for CI: 25 γ values, float64 and float32 workers."""
        return cls(gammas=np.logspace(0, 8, 25))


class _Splitter:
    r"""ε₁/ε₂ split of a decode with block products :math:`A_aB_b` computed once.

    Uses the decode's defect tensor D (``DecodeWeights.defect``, mpmath):
    :math:`\epsilon_1 = \sum_{a,b} D[c,a,b]\,A_aB_b` in ``longdouble`` (as
    :func:`gpucoded.reference.interpolation_error`, which recomputes the products on
    every call), :math:`\epsilon_2 = (\hat C - C) - \epsilon_1`.
    """

    def __init__(self, code: Code, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
        g = code.grid
        rb, cb, db = g.block_dims(A.shape[0], A.shape[1], B.shape[1])
        ld = np.longdouble
        self.Ab = g.split(np.asarray(A, dtype=ld), g.p, g.s, rb, cb)
        self.Bb = g.split(np.asarray(B, dtype=ld), g.s, g.t, cb, db)
        self.Cb = g.split(np.asarray(C, dtype=ld), g.p, g.t, rb, db).reshape(g.n_c, rb * db)
        self.products: dict[tuple[int, int], np.ndarray] = {}

    def _prod(self, a: int, b: int) -> np.ndarray:
        key = (a, b)
        if key not in self.products:
            self.products[key] = (self.Ab[a] @ self.Bb[b]).ravel()
        return self.products[key]

    def split(self, code: Code, S: tuple[int, ...], Chat: np.ndarray) -> tuple[float, float]:
        D = code.decode_weights(S, partial=True).defect
        if np.iscomplexobj(D):
            D = D.real
        E1 = np.zeros_like(self.Cb)
        for c in range(D.shape[0]):
            for a, b in zip(*np.nonzero(D[c]), strict=True):
                E1[c] += np.longdouble(D[c, a, b]) * self._prod(int(a), int(b))
        tot = np.asarray(Chat, dtype=np.longdouble) - self.Cb
        return float(np.abs(E1).max()), float(np.abs(tot - E1).max())


def _bound(code: Code, S: tuple[int, ...], dtype: str, inner: int) -> float:
    """A-priori bound for unit-norm inputs in the worker format (its roundoffs)."""
    dw = code.decode_weights(S, partial=True, fmt=dtype)
    interp, fp = dw.bounds(1.0, 1.0, dtype, inner)
    return interp + fp


def _rows(
    panel: str,
    label: str,
    code: Code,
    gamma: float,
    dtype: str,
    res: SweepResult,
    splitter: _Splitter | None,
    inner: int,
    stats: dict | None = None,
) -> list[dict]:
    rows = []
    stats = stats or _size_stats([res.errors], [res.subsets])[0]
    for r, (j, Chat) in res.worst.items():
        count, mx, mean, med = stats[r]
        S = res.subsets[j]
        row = {
            "panel": panel,
            "code": label,
            "m": code.m,
            "P": code.P,
            "gamma": gamma,
            "dtype": dtype,
            "n_succ": r,
            "n_subsets": count,
            "max_err": mx,
            "mean_err": mean,
            "median_err": med,
            "eps1": math.nan,
            "eps2": math.nan,
            "bound": math.nan,
            "worst_subset": " ".join(map(str, S)),
        }
        if splitter is not None:
            row["eps1"], row["eps2"] = splitter.split(code, S, Chat)
            row["bound"] = _bound(code, S, dtype, inner)
        rows.append(row)
    return rows


def panel_a_codes(
    m: int, P: int, approx_gamma: float, decoder: str = "interpolation"
) -> list[tuple[str, float, Code]]:
    """(label, γ, code) of Figure 1(a): MatDot λ(1), Chebyshev, ε-MatDot λ(γ)."""
    return [
        ("matdot", 1.0, MatDot(m, P, decoder=decoder)),
        ("chebyshev", 1.0, ChebyshevMatDot(m, P, decoder=decoder)),
        ("approx_matdot", approx_gamma, ApproxMatDot(m, P, gamma=approx_gamma, decoder=decoder)),
    ]


def _array_module(device: str) -> Any:
    if device == "cpu":
        return np
    if device == "gpu":
        cp = cupy_or_none()
        if cp is None:
            raise RuntimeError("device='gpu' but no usable CuPy/CUDA device was found")
        return cp
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")


def figure1(
    config: Figure1Config | None = None,
    *,
    progress: bool = False,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run panels (a) and (b) (panel (c) is a view of (b)); return the CSV rows.

    Parameters
    ----------
    config : Figure1Config, optional
        Default: the full study (201 γ values, float64 and float32 workers).
    progress : bool
        Draw a progress bar on stderr.
    on_row : callable, optional
        Called with each row as it is produced.
    """
    cfg = config or Figure1Config()
    for d in cfg.dtypes:
        if d not in WORKER_DTYPES:
            raise ValueError(f"unknown worker dtype {d!r}; choose from {WORKER_DTYPES}")
    xp = _array_module(cfg.device)
    A, B = unit_gaussian_pair(cfg.n, cfg.seed)
    C = np.asarray(exact_product(A, B))
    C64 = C.astype(np.float64)
    codes_a = panel_a_codes(cfg.m, cfg.P, cfg.approx_gamma, cfg.decoder)
    codes_b = [
        (float(g), ApproxMatDot(cfg.m, cfg.P, gamma=float(g), decoder=cfg.decoder))
        for g in cfg.gammas
    ]
    inner = -(-cfg.n // cfg.m)
    splitters: dict[int, _Splitter] = {}
    rows: list[dict] = []
    jobs = [("a", lab, g, c) for lab, g, c in codes_a]
    jobs += [("b", "approx_matdot", g, c) for g, c in codes_b]
    subs: list = []
    weights: list = []
    if cfg.decoder == "interpolation":  # the others depend on the format: per dtype below
        subs, weights = _weights_for([c for *_, c in jobs])
    total = len(cfg.dtypes) * len(jobs)
    with Progress(total, "figure1", enabled=progress) as bar:
        for dtype in cfg.dtypes:
            if cfg.decoder != "interpolation":
                subs, weights = _weights_for([c for *_, c in jobs], fmt=dtype)
            results = []
            for (_, label, g, code), S, w in zip(jobs, subs, weights, strict=True):
                results.append(subset_sweep(code, A, B, C64, dtype, weights=w, subsets=S, xp=xp))
                bar.update(1, f"{dtype} {label} γ={g:.3g}")
            stats = _size_stats([res.errors for res in results], subs)
            for (panel, label, g, code), res, st in zip(jobs, results, stats, strict=True):
                sp = None
                if cfg.split:
                    key = id(code.grid)
                    sp = splitters.get(key) or splitters.setdefault(key, _Splitter(code, A, B, C))
                new = _rows(panel, label, code, g, dtype, res, sp, inner, st)
                rows += new
                if on_row is not None:
                    for r in new:
                        on_row(r)
    return rows


def _weights_for(codes: Sequence[Code], fmt: Any = None) -> tuple[list[list], list[np.ndarray]]:
    """All subsets and their stacked weights for each code; codes that share P, grid,
    basis, K, targets and subsets get theirs in one vectorised call (a γ sweep)."""
    groups: dict[tuple, list[int]] = {}
    subs = [all_subsets(c) for c in codes]
    for i, c in enumerate(codes):
        key: tuple = (i,)
        if isinstance(c, EvaluationCode):
            targets = np.asarray(c.targets).tobytes()
            key = (type(c.grid), c.grid, c.P, c.K, c.basis, targets, tuple(subs[i]))
        groups.setdefault(key, []).append(i)
    weights: list[np.ndarray] = [np.empty(0)] * len(codes)
    for idx in groups.values():
        shared = subs[idx[0]]
        ws = stacked_weights_many([codes[i] for i in idx], shared, fmt=fmt)
        for i, w in zip(idx, ws, strict=True):
            weights[i], subs[i] = w, shared
    return subs, weights


def _size_stats(errors: list[np.ndarray], subs: list[list]) -> list[dict]:
    """Per code: n_succ -> (count, max, mean, median) of the subset errors; vectorised
    over the codes that share one subset list (the γ sweep)."""
    out: list[dict] = [{} for _ in errors]
    groups: dict[int, list[int]] = {}
    for i, S in enumerate(subs):
        groups.setdefault(id(S), []).append(i)
    for idx in groups.values():
        E = np.stack([errors[i] for i in idx])
        sizes = np.array([len(S) for S in subs[idx[0]]])
        for r in np.unique(sizes):
            loc = np.flatnonzero(sizes == r)
            e = E[:, loc[0] : loc[-1] + 1]  # subsets of one size are contiguous
            mx, mean, med = e.max(axis=1), e.mean(axis=1), np.median(e, axis=1)
            for k, i in enumerate(idx):
                out[i][int(r)] = (e.shape[1], float(mx[k]), float(mean[k]), float(med[k]))
    return out


def naive_sweep(code: Code, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> dict[int, float]:
    """Reference implementation for the benchmark: a Python loop over the subsets.

    Each subset is decoded separately, its weights from a least-squares solve
    (``np.linalg.lstsq``) on the float (Chebyshev-)Vandermonde system of the code's
    basis at the subset's points, truncated to min(|S|, K) coefficients. Returns
    n_succ -> max error. Polynomial (evaluation) codes only.
    """
    if not isinstance(code, EvaluationCode):
        raise ValueError("naive_sweep handles polynomial (evaluation) codes only")
    vander = {
        "monomial": lambda x, n: np.vander(x, n, increasing=True),
        "chebyshev": lambda x, n: np.polynomial.chebyshev.chebvander(x, n - 1),
    }[code.basis]
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    out: dict[int, float] = {}
    C = np.asarray(C, dtype=np.float64)
    for r in range(min_answers(code), code.P + 1):
        worst = 0.0
        for S in itertools.combinations(range(code.P), r):
            ncoef = min(r, code.K)
            V = vander(code.points[list(S)], ncoef)
            w = np.linalg.lstsq(V.T, code.targets[:, :ncoef].T, rcond=None)[0]
            Chat = np.einsum("kc,kij->cij", w, prods[list(S)])
            Chat = code.grid.assemble(Chat, C.shape[0], C.shape[1])
            worst = max(worst, float(np.abs(Chat - C).max()))
        out[r] = worst
    return out


# ---------------------------------------------------------------------- output
def write_csv(rows: list[dict], path: Path) -> None:
    """Rows to CSV with :data:`CSV_COLUMNS`."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in CSV_COLUMNS})


def read_csv(path: Path) -> list[dict]:
    """Rows written by :func:`write_csv`, numbers parsed."""
    ints = {"m", "P", "n_succ", "n_subsets"}
    strs = {"panel", "code", "dtype", "worst_subset"}
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.append(
                {k: (v if k in strs else int(v) if k in ints else float(v)) for k, v in r.items()}
            )
    return out


def plot(rows: list[dict], outdir: Path) -> list[Path]:
    """Figure 1 (a), (b), (c) per worker dtype as PNGs; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    paths = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        rs = [r for r in rows if r["dtype"] == dtype]
        m = rs[0]["m"]
        # (a)
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        names = ("matdot", "chebyshev", "approx_matdot")
        for code, col in zip(names, ("C0", "C1", "C2"), strict=True):
            pts = sorted((r["n_succ"], r) for r in rs if r["panel"] == "a" and r["code"] == code)
            if not pts:
                continue
            x = [p for p, _ in pts]
            g = pts[0][1]["gamma"]
            lab = {"matdot": "MatDot λ(1)", "chebyshev": "Chebyshev"}.get(code)
            lab = lab or f"ε-MatDot λ({g:g})"
            worst = [r["max_err"] for _, r in pts]
            ax.semilogy(x, worst, "o-", color=col, label=f"{lab}: worst case")
            mean = [r["mean_err"] for _, r in pts]
            ax.semilogy(x, mean, "x--", color=col, alpha=0.6, label=f"{lab}: mean")
        ax.axvline(2 * m - 1, color="red", ls=":", label=f"2m−1 = {2 * m - 1}: exact codes exact")
        title = f"Fig. 1(a) m={m}, P={rs[0]['P']} workers, {dtype} workers"
        ax.set(xlabel=f"{ANSWERS} (of P = {rs[0]['P']})", ylabel=error_label(""))
        ax.set_title(title + "\nworst case and mean over the answer patterns", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        paths.append(_save(fig, outdir / f"fig1a_{dtype}.png"))
        # (b)
        rb = [r for r in rs if r["panel"] == "b"]
        fig, ax = plt.subplots(figsize=(6.8, 4.8))
        split = False
        for i, ns in enumerate(sorted({r["n_succ"] for r in rb})):
            pts = sorted((r["gamma"], r) for r in rb if r["n_succ"] == ns)
            g = [p for p, _ in pts]
            ax.loglog(
                g, [r["max_err"] for _, r in pts], "-", color=f"C{i}",
                label=f"{ns} {ANSWERS}: worst case",
            )  # fmt: skip
            if any(np.isfinite(r["eps1"]) for _, r in pts):
                split = True
                ax.loglog(g, [max(r["eps1"], 1e-20) for _, r in pts], ":", color=f"C{i}")
                ax.loglog(g, [r["eps2"] for _, r in pts], "-.", color=f"C{i}", alpha=0.6)
        handles, labels = ax.get_legend_handles_labels()
        if split:  # one legend entry per line style, in grey: the colours are the answers
            for ls, lab in ((":", "ε₁ interpolation (its worst pattern)"),
                            ("-.", "ε₂ rounding (its worst pattern)")):  # fmt: skip
                handles.append(Line2D([], [], color="0.4", ls=ls))
                labels.append(lab)
        ax.set(
            xlabel="γ (ε-MatDot points λ(γ) in (−1/γ, 1/γ))",
            ylabel=error_label("worst-case"),
            ylim=(1e-18, None),
        )
        ax.set_title(f"Fig. 1(b) ε-MatDot m={m}, P={rs[0]['P']}, {dtype} workers", fontsize=10)
        ax.legend(handles, labels, fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        paths.append(_save(fig, outdir / f"fig1b_{dtype}.png"))
        # (c)
        fig, ax = plt.subplots(figsize=(6, 4.2))
        gams = np.array(sorted({r["gamma"] for r in rb}))
        for target in (1.0, 1e2, 1e4, 7e4, 1e6):
            if gams.size == 0:
                break
            g = gams[np.argmin(np.abs(np.log(gams / target)))]
            pts = sorted((r["n_succ"], r) for r in rb if r["gamma"] == g)
            errs = [r["max_err"] for _, r in pts]
            ax.semilogy([p for p, _ in pts], errs, "o-", label=f"γ = {g:.3g}: worst case")
        ax.axvline(2 * m - 1, color="red", ls=":", label=f"2m−1 = {2 * m - 1}")
        ax.set(xlabel=f"{ANSWERS} (of P = {rs[0]['P']})", ylabel=error_label("worst-case"))
        ax.set_title(f"Fig. 1(c) ε-MatDot m={m}, P={rs[0]['P']}, {dtype} workers", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # answers are counted
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        paths.append(_save(fig, outdir / f"fig1c_{dtype}.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# ------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``gpucoded figure1``."""
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--quick", action="store_true", help="25 γ values (CI; < 1 min)")
    p.add_argument("--m", type=int, default=3)
    p.add_argument("--P", type=int, default=6)
    p.add_argument("--n", type=int, default=100, help="matrix size n×n")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gammas", type=int, default=None, help="number of γ values in [1, 1e8]")
    p.add_argument("--approx-gamma", type=float, default=70000.0)
    p.add_argument(
        "--dtypes",
        default=None,
        help=f"comma list of {','.join(WORKER_DTYPES)} (default float64,float32)",
    )
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--no-split", action="store_true", help="skip the ε₁/ε₂ split")
    p.add_argument(
        "--decoder",
        choices=("interpolation", "auto", "minnorm"),
        default="interpolation",
        help="decoder of the codes (default: interpolation, as the published figure)",
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--auto-gamma-check",
        action="store_true",
        help="also validate gamma='auto' (measured vs predicted, m=2..5, all dtypes)",
    )


def main(args: argparse.Namespace) -> int:
    """Entry point of ``gpucoded figure1``: CSV + PNGs in ``args.out``."""
    cfg = Figure1Config.quick() if args.quick else Figure1Config()
    cfg.m, cfg.P, cfg.n, cfg.seed, cfg.device = args.m, args.P, args.n, args.seed, args.device
    cfg.approx_gamma = args.approx_gamma
    cfg.split = not args.no_split
    cfg.decoder = getattr(args, "decoder", "interpolation")
    if args.gammas is not None:
        cfg.gammas = np.logspace(0, 8, args.gammas)
    if args.dtypes:
        cfg.dtypes = tuple(s.strip() for s in args.dtypes.split(",") if s.strip())
    bad = [d for d in cfg.dtypes if d not in WORKER_DTYPES]
    if bad:
        raise SystemExit(f"gpucoded figure1: unknown --dtypes {bad}; choose from {WORKER_DTYPES}")
    if cfg.m < 1 or cfg.P < cfg.m or cfg.n < cfg.m:
        raise SystemExit(
            f"gpucoded figure1: need 1 <= --m <= --P and --n >= --m; "
            f"got --m {cfg.m}, --P {cfg.P}, --n {cfg.n}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = figure1(cfg, progress=True)
    write_csv(rows, out / "figure1.csv")
    print(f"wrote {out / 'figure1.csv'} ({len(rows)} rows) in {time.perf_counter() - t0:.1f} s")
    data = [out / "figure1.csv"]
    grows: list[dict] = []
    curves: dict = {}
    if getattr(args, "auto_gamma_check", False):
        from .gamma_check import gamma_check, write_gamma_check

        grows, curves = gamma_check()
        data.append(write_gamma_check(grows, out))
        print(f"wrote {data[-1]}")

    def make() -> list[Path]:
        paths = plot(rows, out)
        if grows:
            from .gamma_check import plot_gamma_check

            paths.append(plot_gamma_check(grows, curves, out))
        return paths

    paths = [] if args.no_plots else plots_or_note(make, "figure1", data)
    for p in paths:
        print(f"wrote {p}")
    return 0
