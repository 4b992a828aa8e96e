r"""Beyond the paper: which scheme reaches threshold m with the smallest error.

For each storage fraction m, number of workers P (m+2 and 2m) and worker format
(float64, float32; tf32/bf16 on a GPU), every scheme decodes from the answers of
subsets S of workers and we record the **worst** max-norm error
:math:`\max_S\|\hat C_S-C\|_{\max}` on unit-Frobenius Gaussian inputs, the ε₁/ε₂ split
of the worst subset (:func:`gpucoded.reference.error_split`, mpmath defect tensor) and
the a-priori bound of :meth:`~gpucoded.codes.DecodeWeights.bounds`.

Subsets: all :math:`\binom{P}{r}` of them when there are at most ``max_subsets``;
otherwise every contiguous window (clustered points: the ill-conditioned case) plus a
seeded random sample, and the row says ``sampled`` — the worst case is then a lower
estimate of the true one, while the ``bound`` column is still an a-priori bound for
the subsets evaluated. Schemes whose decode weights need an mpmath solve per subset
(``heavy``: the circle codes) evaluate at most :data:`HEAVY_SUBSETS` from
m = :data:`HEAVY_FROM_M` (the full study then takes ~4 minutes on 2 cores instead of 16).

Schemes (their per-worker costs are columns of the table, counted in real numbers and
real flops relative to one ε-MatDot worker, whose GEMM is :math:`n\,(k/m)\,l`):

=================  ========  ========  =======  ==================================
scheme             answers   storage   flops    what
=================  ========  ========  =======  ==================================
``eps_matdot``     m         1/m       1        ε-MatDot, γ tuned per case (best)
``circle``         m         2/m       4 (3M)   :class:`CircleMatDot`, real decoder
``circle_complex`` m         2/m       4 (3M)   :class:`CircleMatDot`, complex, best γ
``chebyshev_half`` m         1/⌈m/2⌉   m/⌈m/2⌉  exact Chebyshev MatDot, ⌈m/2⌉ blocks
``matdot``         2m−1      1/m       1        exact MatDot (needs 2m−1 ≥ P: P'=2m−1)
``replication``    m         1/m       1        r=2 copies of workers 0..P−1, m answers
=================  ========  ========  =======  ==================================

Further schemes (optimised points, mixed precision) register themselves in
:data:`SCHEMES` from their modules.

Run: ``gpucoded beyond --out build/beyond`` (or ``python -m gpucoded.studies.beyond``;
``--quick`` for a seconds-long smoke run): CSV, PNG, Markdown.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..codes import ApproxMatDot, ChebyshevMatDot, CircleMatDot, Code, MatDot, Replication
from ..formats import get_format, unit_roundoff
from ..mixed import mixed_bounds, slice_bits, sliced_matmul
from ..points import default_gamma
from ..progress import Progress
from ..reference import error_split, exact_product
from .plotting import error_label, plots_or_note
from .precision import worker_matmul

__all__ = [
    "COLUMNS",
    "QUICK",
    "SCHEMES",
    "Scheme",
    "add_arguments",
    "evaluate",
    "main",
    "markdown",
    "plot",
    "run",
    "run_study",
    "subset_sample",
]

COLUMNS = [
    "scheme",
    "m",
    "P",
    "dtype",
    "answers",
    "storage",
    "flops",
    "gamma",
    "n_subsets",
    "sampled",
    "max_err",
    "eps1",
    "eps2",
    "bound",
    "worst_subset",
]


def default_run(code: Code, A: np.ndarray, B: np.ndarray, dtype: str) -> np.ndarray:
    """Worker answers of every worker: encode in the worker storage format, GEMM in it."""
    sd = get_format(dtype).storage
    At, Bt = code.encode(A.astype(sd), B.astype(sd))
    if np.iscomplexobj(At) and dtype not in ("float64", "float32"):
        raise ValueError(f"complex workers are only emulated for float64/float32, not {dtype}")
    return At @ Bt if np.iscomplexobj(At) else worker_matmul(At, Bt, dtype)


@dataclass(frozen=True)
class Scheme:
    """A scheme of the study: how to build its code and what a worker costs.

    Attributes
    ----------
    label : str
        Legend text.
    build : callable (m, P, gamma) -> Code
        ``gamma`` is None for schemes without a radius.
    answers : callable m -> int
        Answers decoded (the threshold the row reports).
    storage : callable m -> float
        Real numbers of A (and of B) stored per worker, as a fraction of A.
    flops : callable m -> float
        Real flops of one worker relative to an ε-MatDot worker's GEMM.
    tuned : bool
        Search γ per case (``build`` then takes a number).
    run : callable (code, A, B, dtype) -> answers (P, rb, db)
        Worker computation (default: encode + :func:`worker_matmul`).
    workers : callable (m, P) -> int, optional
        Workers the code uses (default P).
    adversarial : callable (code, r) -> list of subsets, optional
        Subsets known to be worst, always evaluated.
    dtypes : tuple of str, optional
        Worker formats the scheme applies to (default all).
    bound : callable (code, S, dtype, inner) -> float, optional
        A-priori error bound for unit-norm inputs (default :func:`_bound`).
    unit : callable dtype -> float, optional
        Effective unit roundoff, centre of the γ search (default the format's).
    heavy : bool
        Decode weights cost an mpmath solve per subset, growing fast with m: from
        m = :data:`HEAVY_FROM_M` the study evaluates fewer subsets (``heavy_subsets``)
        and probes γ on :data:`HEAVY_PROBES` of them.
    """

    label: str
    build: Callable[[int, int, float | None], Code]
    answers: Callable[[int], int]
    storage: Callable[[int], float]
    flops: Callable[[int], float]
    tuned: bool = False
    run: Callable[..., np.ndarray] = default_run
    workers: Callable[[int, int], int] | None = None
    adversarial: Callable[[Code, int, int], list[tuple[int, ...]]] | None = None
    dtypes: tuple[str, ...] | None = None
    bound: Callable[[Code, tuple[int, ...], str, int], float] | None = None
    unit: Callable[[str], float] | None = None
    heavy: bool = False


def _half(m: int) -> int:
    return -(-m // 2)


def _replication_worst(code: Code, r: int, P: int) -> list[tuple[int, ...]]:
    """Answers from workers 0..P−1 covering the fewest blocks: fail whole blocks first."""
    m = code.m
    copies: dict[int, list[int]] = {}
    for w in range(P):
        copies.setdefault(w % m, []).append(w)
    failed: list[int] = []
    for blk in sorted(copies, key=lambda b: len(copies[b])):
        if len(failed) + len(copies[blk]) <= P - r:
            failed += copies[blk]
    alive = [w for w in range(P) if w not in failed]
    return [tuple(sorted(alive[:r]))]


#: scheme name -> Scheme (other modules add theirs)
SCHEMES: dict[str, Scheme] = {
    "eps_matdot": Scheme(
        "ε-MatDot, best γ",
        lambda m, P, g: ApproxMatDot(m, P, gamma=g),
        lambda m: m,
        lambda m: 1 / m,
        lambda m: 1.0,
        tuned=True,
    ),
    "circle": Scheme(
        "circle, real decode (2× storage)",
        lambda m, P, g: CircleMatDot(m, P),
        lambda m: m,
        lambda m: 2 / m,
        lambda m: 4.0,
        heavy=True,
    ),
    "circle_complex": Scheme(
        "circle, complex decode, best γ (2× storage)",
        lambda m, P, g: CircleMatDot(m, P, gamma=g, decoder="complex"),
        lambda m: m,
        lambda m: 2 / m,
        lambda m: 4.0,
        tuned=True,
        heavy=True,
    ),
    "chebyshev_half": Scheme(
        "exact Chebyshev MatDot, ⌈m/2⌉ blocks (≤ 2/m storage)",
        lambda m, P, g: ChebyshevMatDot(_half(m), P),
        lambda m: m,
        lambda m: 1 / _half(m),
        lambda m: m / _half(m),
    ),
    "matdot": Scheme(
        "exact MatDot (2m−1 answers)",
        lambda m, P, g: MatDot(m, max(P, 2 * m - 1)),
        lambda m: 2 * m - 1,
        lambda m: 1 / m,
        lambda m: 1.0,
        workers=lambda m, P: max(P, 2 * m - 1),
    ),
    "replication": Scheme(
        "replication (same storage)",
        lambda m, P, g: Replication(m, 2),
        lambda m: m,
        lambda m: 1 / m,
        lambda m: 1.0,
        workers=lambda m, P: min(P, 2 * m),
        adversarial=_replication_worst,
    ),
}


#: from this m, ``heavy`` schemes (mpmath weights per subset) evaluate fewer subsets
HEAVY_FROM_M = 9
#: subsets of a heavy scheme from HEAVY_FROM_M on (windows + sample; 0: no cap)
HEAVY_SUBSETS = 8
#: probe subsets of the γ search of a heavy scheme from HEAVY_FROM_M on
HEAVY_PROBES = 3

#: slices of the mixed-precision workers (float32 slice GEMMs; 15 per worker)
MIXED_SLICES = 5


def _mixed_run(code: Code, A: np.ndarray, B: np.ndarray, dtype: str) -> np.ndarray:
    """float64 master encode, exact float32 slice GEMMs, float64 sums."""
    if dtype != "float32":
        raise ValueError(f"the mixed scheme emulates float32 workers, not {dtype}")
    At, Bt = code.encode(A.astype(np.float64), B.astype(np.float64))
    return sliced_matmul(At, Bt, MIXED_SLICES)


def _mixed_bound(code: Code, S: tuple[int, ...], dtype: str, inner: int) -> float:
    dw = code.decode_weights(S, partial=True)
    i, f = mixed_bounds(dw, 1.0, 1.0, inner, MIXED_SLICES, slice_bits(inner))
    return i + f


SCHEMES["mixed"] = Scheme(
    f"ε-MatDot, best γ, fp32 slice workers ({MIXED_SLICES * (MIXED_SLICES + 1) // 2} GEMMs)",
    lambda m, P, g: ApproxMatDot(m, P, gamma=g),
    lambda m: m,
    lambda m: MIXED_SLICES / m,  # s float32 slices of Ã (and of B̃)
    lambda m: float(MIXED_SLICES * (MIXED_SLICES + 1) // 2),
    tuned=True,
    run=_mixed_run,
    dtypes=("float32",),
    bound=_mixed_bound,
    unit=lambda dt: max(unit_roundoff("float64"), 2.0 ** (-MIXED_SLICES * slice_bits(16))),
)


def subset_sample(
    P: int, r: int, max_subsets: int, seed: int = 0
) -> tuple[list[tuple[int, ...]], bool]:
    """Subsets of r of P workers: all, or windows + a seeded random sample.

    Returns
    -------
    subsets : list of sorted tuples
    sampled : bool
        True when not every subset is included.
    """
    if not 1 <= r <= P:
        raise ValueError(f"need 1 <= r <= P, got r={r}, P={P}")
    if max_subsets < 1:
        raise ValueError(f"max_subsets must be >= 1, got {max_subsets}")
    if math.comb(P, r) <= max_subsets:
        return list(itertools.combinations(range(P), r)), False
    out = [tuple(range(i, i + r)) for i in range(P - r + 1)]
    step = max(1, len(out) // max(1, max_subsets // 2))
    out = out[::step]
    seen = set(out)
    rng = np.random.default_rng(seed)
    while len(out) < max_subsets:
        S = tuple(sorted(int(x) for x in rng.choice(P, r, replace=False)))
        if S not in seen:
            seen.add(S)
            out.append(S)
    return out, True


def _inputs(m: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = 16 * m
    A = rng.standard_normal((n, k))
    B = rng.standard_normal((k, n))
    A /= np.linalg.norm(A)
    B /= np.linalg.norm(B)
    return A, B, exact_product(A, B)


def _errors(
    code: Code, prods: np.ndarray, subsets: Sequence[tuple[int, ...]], C: np.ndarray
) -> np.ndarray:
    """Max-norm error of the decode of each subset (through ``Code.decode``)."""
    errs = np.empty(len(subsets))
    real = not np.iscomplexobj(C)
    for i, S in enumerate(subsets):
        Ch = code.decode(prods[list(S)], S, shape=C.shape, partial=True, real=real)
        errs[i] = float(np.abs(np.asarray(Ch, dtype=C.dtype) - C).max())
    return errs


def _bound(code: Code, S: tuple[int, ...], dtype: str, inner: int) -> float:
    """A-priori bound for unit-norm inputs at the worker format's unit roundoff."""
    dw = code.decode_weights(S, partial=True)
    base = get_format(dtype).storage
    interp, fp = dw.bounds(1.0, 1.0, base, inner)
    return interp + fp * unit_roundoff(dtype) / unit_roundoff(base)


def _tune(
    scheme: Scheme,
    m: int,
    P: int,
    dtype: str,
    A: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    probe: Sequence[tuple[int, ...]],
    cache: dict,
) -> float:
    """γ minimising the worst probe error: half-decade grid around u^{-1/m}, refined."""

    def worst(g: float) -> float:
        key = (id(scheme), m, P, g)
        if key not in cache:
            cache[key] = scheme.build(m, P, g)
        code = cache[key]
        try:
            v = float(_errors(code, scheme.run(code, A, B, dtype), probe, C).max())
        except ArithmeticError:  # weights did not converge: points too close
            return math.inf
        return v if math.isfinite(v) else math.inf  # overflow in the worker format

    g0 = default_gamma(m, 2 * (scheme.unit or unit_roundoff)(dtype))
    grid = {g0 * 10 ** (k / 2): None for k in range(-4, 4)}
    for g in grid:
        grid[g] = worst(g)
    best = min(grid, key=grid.get)
    for g in (best * 10**-0.25, best * 10**0.25):
        grid[g] = worst(g)
    return min(grid, key=grid.get)


def evaluate(
    name: str,
    m: int,
    P: int,
    dtype: str,
    *,
    n: int = 24,
    max_subsets: int = 24,
    probe_subsets: int = 6,
    seed: int = 0,
    split: bool = True,
    cache: dict | None = None,
    heavy_subsets: int = HEAVY_SUBSETS,
) -> dict:
    """One row of the table: scheme ``name`` at (m, P, dtype).

    ``max_subsets`` answer subsets (the first ``probe_subsets`` of them, contiguous
    windows, for the γ search); for a ``heavy`` scheme at m ≥ :data:`HEAVY_FROM_M`
    at most ``heavy_subsets`` (0: no cap) and :data:`HEAVY_PROBES` probes.

    Returns a dict with the keys of :data:`COLUMNS`.
    """
    if name not in SCHEMES:
        raise ValueError(f"unknown scheme {name!r}; valid: {', '.join(SCHEMES)}")
    sch = SCHEMES[name]
    cache = {} if cache is None else cache
    A, B, C = _inputs(m, n, seed)
    Pw = sch.workers(m, P) if sch.workers else P
    r = sch.answers(m)
    if sch.heavy and m >= HEAVY_FROM_M and heavy_subsets > 0:
        max_subsets = min(max_subsets, heavy_subsets)
        probe_subsets = min(probe_subsets, HEAVY_PROBES)
    subsets, sampled = subset_sample(Pw, r, max_subsets, seed)
    gamma = None
    if sch.tuned:
        gamma = _tune(sch, m, Pw, dtype, A, B, C, subsets[:probe_subsets], cache)
    key = (id(sch), m, Pw, gamma)
    if key not in cache:
        cache[key] = sch.build(m, Pw, gamma)
    code = cache[key]
    if sch.adversarial is not None:
        extra = [S for S in sch.adversarial(code, r, Pw) if S not in subsets]
        subsets = extra + list(subsets)
    prods = sch.run(code, A, B, dtype)
    inner = code.grid.block_dims(*A.shape, B.shape[1])[1]
    errs = np.nan_to_num(_errors(code, prods, subsets, C), nan=math.inf)
    j = int(np.argmax(errs))
    S = subsets[j]
    row = {
        "scheme": name,
        "m": m,
        "P": Pw,
        "dtype": dtype,
        "answers": r,
        "storage": sch.storage(m),
        "flops": sch.flops(m),
        "gamma": math.nan if gamma is None else gamma,
        "n_subsets": len(subsets),
        "sampled": f"{len(subsets)} of {math.comb(Pw, r)}" if sampled else "all",
        "max_err": float(errs[j]),
        "eps1": math.nan,
        "eps2": math.nan,
        "bound": max((sch.bound or _bound)(code, T, dtype, inner) for T in subsets),
        "worst_subset": " ".join(map(str, S)),
    }
    if split:
        Ch = code.decode(prods[list(S)], S, shape=C.shape, partial=True, real=True)
        sp = error_split(code, A, B, S, Ch, partial=True)
        row["eps1"], row["eps2"] = sp.eps1, sp.eps2
    return row


def run_study(
    ms: Sequence[int] = tuple(range(2, 17)),
    dtypes: Sequence[str] = ("float64", "float32"),
    schemes: Sequence[str] | None = None,
    *,
    max_subsets: int = 24,
    split: bool = True,
    verbose: bool = False,
    heavy_subsets: int = HEAVY_SUBSETS,
) -> list[dict]:
    """Every row: schemes × m × P ∈ {m+2, 2m} × worker formats."""
    schemes = list(SCHEMES) if schemes is None else list(schemes)
    rows, cache = [], {}
    total = sum(len({m + 2, 2 * m}) for m in ms) * len(dtypes) * len(schemes)
    bar = Progress(total, "beyond")
    for m in ms:
        for P in sorted({m + 2, 2 * m}):
            for dtype in dtypes:
                for name in schemes:
                    bar.update(1, f"m={m} P={P} {dtype} {name}")
                    if SCHEMES[name].dtypes and dtype not in SCHEMES[name].dtypes:
                        continue
                    t0 = time.perf_counter()
                    row = evaluate(
                        name,
                        m,
                        P,
                        dtype,
                        max_subsets=max_subsets,
                        split=split,
                        cache=cache,
                        heavy_subsets=heavy_subsets,
                    )
                    row["P_case"] = "m+2" if P == m + 2 else "2m"
                    rows.append(row)
                    if verbose:
                        print(
                            f"m={m:2d} P={P:2d} {dtype:8s} {name:16s} err={row['max_err']:.2e} "
                            f"eps1={row['eps1']:.1e} eps2={row['eps2']:.1e} "
                            f"({time.perf_counter() - t0:.1f}s)",
                            flush=True,
                        )
            cache.clear()
    bar.close()
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    cols = COLUMNS + ["P_case"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def plot(rows: list[dict], path: Path) -> Path:
    """Error vs m, one line per scheme; panels P ∈ {m+2, 2m} × worker format."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cases = sorted({r["P_case"] for r in rows}, reverse=True)
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    n_leg = len({r["scheme"] for r in rows})
    fig, axes = plt.subplots(
        len(cases),
        len(dtypes),
        figsize=(5.6 * len(dtypes), 3.8 * len(cases) + 0.22 * (math.ceil(n_leg / 2) + 1)),
        squeeze=False,
    )
    names = list(dict.fromkeys(r["scheme"] for r in rows))
    all_ms = sorted({r["m"] for r in rows})
    # every panel spans all m: a scheme measured at one m shows one marker on a sane axis
    xlim = (all_ms[0] - 0.5, all_ms[-1] + 0.5)
    for i, case in enumerate(cases):
        for j, dt in enumerate(dtypes):
            ax = axes[i][j]
            for name in names:
                key = (name, case, dt)
                sel = [r for r in rows if (r["scheme"], r["P_case"], r["dtype"]) == key]
                if not sel:
                    continue
                ms = [r["m"] for r in sel]
                err = [max(r["max_err"], 1e-18) for r in sel]
                ax.semilogy(ms, err, marker="o", ms=3, label=SCHEMES[name].label)
            ax.set_title(f"P = {case} workers, {dt} workers, decoded from m answers", fontsize=9)
            ax.set_xlabel("m (each worker stores 1/m of A and of B)")
            ax.set_xlim(*xlim)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # m is an integer
            ax.set_ylabel(error_label("worst-case"), fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    rows_legend = math.ceil(len(handles) / 2) + 1  # + the legend's title
    frac = min(0.45, 0.24 * rows_legend / fig.get_figheight())  # ~0.24 in per legend row
    fig.tight_layout(rect=(0, frac, 1, 1))
    fig.legend(
        list(handles.values()), list(handles), loc="lower center", ncol=2, fontsize=8,
        title="each curve: worst case over the answer sets of m, for the scheme",
        title_fontsize=8,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "–" if math.isnan(x) else f"{x:.1e}"
    return str(x)


def markdown(rows: list[dict]) -> str:
    """Table: one line per (m, P, dtype), worst error (ε₁/ε₂) per scheme."""
    names = list(dict.fromkeys(r["scheme"] for r in rows))
    head = "| m | P | dtype | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (3 + len(names))]
    keys = list(dict.fromkeys((r["m"], r["P_case"], r["dtype"]) for r in rows))
    for m, case, dt in keys:
        cells = []
        for name in names:
            sel = [
                r
                for r in rows
                if (r["m"], r["P_case"], r["dtype"], r["scheme"]) == (m, case, dt, name)
            ]
            if not sel:
                cells.append("")
                continue
            r = sel[0]
            cell = f"{r['max_err']:.1e} ({_fmt(r['eps1'])}/{_fmt(r['eps2'])})"
            if r["sampled"] != "all":
                cell += "*"
            cells.append(cell)
        lines.append(f"| {m} | {case} | {dt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: ``--quick``: m = 2..4, float64 and float32, 4 subsets per case, every scheme (m = 2
#: has P = m + 2 = 2m: at least two m values on every panel of the plot)
QUICK = {"m": "2-4", "max_subsets": 4}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``gpucoded beyond`` / ``python -m gpucoded.studies.beyond``."""
    p.add_argument("--out", type=Path, required=True, help="folder for CSV, Markdown, PNG")
    p.add_argument("--m", default="2-16", help="range a-b or comma list")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--schemes", default=None, help="comma list (default all)")
    p.add_argument("--max-subsets", type=int, default=24)
    p.add_argument(
        "--heavy-subsets",
        type=int,
        default=HEAVY_SUBSETS,
        help=f"subsets of the circle schemes from m={HEAVY_FROM_M} (mpmath weights; 0: no cap)",
    )
    p.add_argument("--no-split", action="store_true")
    p.add_argument("--plot", type=Path, default=None, help="PNG path (default OUT/beyond.png)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: m={QUICK['m']}, {QUICK['max_subsets']} subsets per case (seconds)",
    )


def _ms(text: str) -> list[int]:
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            ms = list(range(lo, hi + 1))
        else:
            ms = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--m must be a range a-b or a comma list of integers, got {text!r}"
        ) from None
    if not ms or min(ms) < 2:
        raise ValueError(f"--m needs values >= 2, got {text!r}")
    return ms


def run(a: argparse.Namespace) -> int:
    """Run the study for parsed arguments (see :func:`add_arguments`)."""
    if a.quick:
        a.m, a.max_subsets = QUICK["m"], QUICK["max_subsets"]
    try:
        ms = _ms(a.m)
        schemes = None if a.schemes is None else [s.strip() for s in a.schemes.split(",")]
        bad = [s for s in schemes or () if s not in SCHEMES]
        if bad:
            raise ValueError(f"unknown scheme(s) {bad}; valid: {', '.join(SCHEMES)}")
        if a.heavy_subsets < 0:
            raise ValueError(f"--heavy-subsets must be >= 0, got {a.heavy_subsets}")
        if a.max_subsets < 1:
            raise ValueError(f"--max-subsets must be >= 1, got {a.max_subsets}")
    except ValueError as e:
        raise SystemExit(f"gpucoded beyond: {e}") from None
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = run_study(
        ms,
        [d.strip() for d in a.dtypes.split(",")],
        schemes,
        max_subsets=a.max_subsets,
        split=not a.no_split,
        verbose=True,
        heavy_subsets=a.heavy_subsets,
    )
    write_csv(rows, a.out / "beyond.csv")
    (a.out / "beyond.md").write_text(markdown(rows) + "\n")
    print(f"{len(rows)} rows in {time.perf_counter() - t0:.1f} s -> {a.out}")
    data = [a.out / "beyond.csv", a.out / "beyond.md"]
    for png in plots_or_note(lambda: [plot(rows, a.plot or a.out / "beyond.png")], "beyond", data):
        print(f"wrote {png}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpucoded.studies.beyond`` (same options as ``gpucoded beyond``)."""
    p = argparse.ArgumentParser(prog="python -m gpucoded.studies.beyond", description=__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
