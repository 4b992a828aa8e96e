r"""What each answer beyond the threshold buys: progressive decoding of ε-MatDot, measured.

ε-MatDot (storage 1/m, points :math:`\lambda_i=c_i/\gamma`) decodes from any r ≥ m
answers by truncated interpolation (:mod:`gpucoded.progressive` yields one estimate per
answer). For MatDot the product is the coefficient :math:`m-1` of
:math:`p(x)=\sum_{a,b}A_aB_b\,x^{a+b}`, so with r answers the interpolation defect is

.. math:: \epsilon_1(r,\gamma)=\Bigl|\sum_{d=r}^{2m-2}\gamma^{\,m-1-d}\,Y_d\Bigr|
          = O(\gamma^{-(r-m+1)}),

one power of :math:`1/\gamma` per extra answer (zero at r = 2m−1), while the rounding
error of the decode, :math:`\epsilon_2\approx u\,\gamma^{m-1}F`, does not fall with r
(the weights of coefficient m−1 scale like :math:`\gamma^{m-1}` whatever r is). Hence:

* **γ tuned for m answers** (:func:`~gpucoded.codes.gamma.auto_gamma` with ``answers=m``)
  balances ε₁ and ε₂ at r = m; extra answers remove ε₁ but ε₂ keeps its
  :math:`\gamma^{m-1}` (only the node constant F improves with more, better spread
  points) — measured: 1.35–730× in float64, 1.3–11× in float32 for all m−1 extra
  answers together (m = 2..8; docs/RESULTS.md);
* **γ tuned for r answers** (``answers=r``) balances :math:`\gamma^{-(r-m+1)}` with
  :math:`u\gamma^{m-1}`: :math:`\gamma\approx u^{-1/r}`, error :math:`\approx u^{(r-m+1)/r}`
  — many more bits, but if only m answers come the error is :math:`\approx u^{1/r}`,
  worse than tuning for m.

:func:`ladder` measures the worst case over answer subsets of both (the batched
:func:`~gpucoded.studies.sweep.subset_sweep`, worker arithmetic ``dtype``), for
r = m, …, 2m−1 and P = 2m workers.

Run: ``gpucoded progressive --out DIR`` (or ``python -m gpucoded.studies.progressive_gain``;
``--quick``: m = 2..4): CSV, Markdown, PNG.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..codes import ApproxMatDot
from ..codes.gamma import auto_gamma
from ..progress import Progress
from ..reference import exact_product
from .beyond import subset_sample
from .plotting import ANSWERS, error_label, plots_or_note
from .sweep import subset_sweep, unit_gaussian_pair

__all__ = [
    "COLUMNS",
    "add_arguments",
    "ladder",
    "main",
    "markdown",
    "plot",
    "run",
    "run_study",
    "worst_errors",
]

COLUMNS = [
    "m",
    "P",
    "dtype",
    "answers",
    "gamma_m",
    "err_gamma_m",
    "gamma_r",
    "err_gamma_r",
    "err_gamma_r_at_m",
    "n_subsets",
]


def worst_errors(
    code: ApproxMatDot,
    sizes: Sequence[int],
    A: np.ndarray,
    B: np.ndarray,
    C: np.ndarray,
    dtype: str,
    max_subsets: int,
) -> tuple[dict[int, float], dict[int, int]]:
    """Worst max-norm error over (sampled) subsets of each size, one batched sweep."""
    subs: list[tuple[int, ...]] = []
    count: dict[int, int] = {}
    for r in sorted(set(sizes)):
        s, _ = subset_sample(code.P, r, max_subsets)
        subs += s
        count[r] = len(s)
    res = subset_sweep(code, A, B, C, dtype, subsets=subs)
    lens = np.array([len(S) for S in subs])
    return {r: float(res.errors[lens == r].max()) for r in count}, count


def ladder(
    m: int,
    dtype: str = "float64",
    *,
    P: int | None = None,
    n: int = 48,
    max_subsets: int = 120,
    seed: int = 0,
) -> list[dict]:
    r"""Worst-case error of ε-MatDot from r = m, …, min(P, 2m−1) answers.

    Parameters
    ----------
    m : int
        Storage 1/m (threshold m), m ≥ 2.
    dtype : str
        Worker format (encode, GEMM and decode in it).
    P : int, optional
        Workers (default 2m); must be ≥ m + 1.
    n : int
        Inputs: unit-Frobenius Gaussian n×n A and B.
    max_subsets : int
        Subsets per answer count: all when C(P, r) ≤ this, else contiguous windows
        plus a seeded sample (:func:`~gpucoded.studies.beyond.subset_sample`).

    Returns
    -------
    list of dict, one per r, keys :data:`COLUMNS`: ``err_gamma_m`` (γ tuned for m
    answers, r arrived), ``err_gamma_r`` (γ tuned for r, r arrived) and
    ``err_gamma_r_at_m`` (γ tuned for r, only m arrived).
    """
    P = 2 * m if P is None else int(P)
    if m < 2 or P < m + 1:
        raise ValueError(f"need m >= 2 and P >= m + 1, got m={m}, P={P}")
    A, B = unit_gaussian_pair(n, seed)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    rs = list(range(m, min(P, 2 * m - 1) + 1))
    g_m = auto_gamma("matdot", 1, m, P, answers=m, dtype=dtype)
    fixed, count = worst_errors(ApproxMatDot(m, P, gamma=g_m), rs, A, B, C, dtype, max_subsets)
    rows = []
    for r in rs:
        g_r = auto_gamma("matdot", 1, m, P, answers=r, dtype=dtype)
        if r == m:
            tuned = {m: fixed[m]}
        else:
            tuned, _ = worst_errors(
                ApproxMatDot(m, P, gamma=g_r), [m, r], A, B, C, dtype, max_subsets
            )
        rows.append(
            {
                "m": m,
                "P": P,
                "dtype": dtype,
                "answers": r,
                "gamma_m": g_m,
                "err_gamma_m": fixed[r],
                "gamma_r": g_r,
                "err_gamma_r": tuned[r],
                "err_gamma_r_at_m": tuned[m],
                "n_subsets": count[r],
            }
        )
    return rows


def run_study(
    ms: Sequence[int] = tuple(range(2, 9)),
    dtypes: Sequence[str] = ("float64", "float32"),
    *,
    max_subsets: int = 120,
    verbose: bool = False,
) -> list[dict]:
    """:func:`ladder` for every m and worker format."""
    rows = []
    with Progress(len(ms) * len(dtypes), "progressive") as bar:
        for m in ms:
            for dt in dtypes:
                t0 = time.perf_counter()
                rows += ladder(m, dt, max_subsets=max_subsets)
                bar.update(1, f"m={m} {dt}")
                if verbose:
                    print(f"m={m} {dt}: {time.perf_counter() - t0:.1f} s", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    """One line per (m, format); cell at m+k answers: "γ_m / γ_r (γ_r, only m)".

    γ_m: tuned for m answers; γ_r: tuned for the r = m+k answers of the column; the
    third number is the error of the γ_r code when only m answers arrive (the risk).
    """
    extra = max(r["answers"] - r["m"] for r in rows)
    head = "| m | dtype | " + " | ".join(f"m+{k}" for k in range(extra + 1)) + " |"
    lines = [head, "|" + "---|" * (extra + 3)]
    keys = list(dict.fromkeys((r["m"], r["dtype"]) for r in rows))
    for m, dt in keys:
        sel = {r["answers"] - m: r for r in rows if (r["m"], r["dtype"]) == (m, dt)}
        cells = []
        for k in range(extra + 1):
            r = sel.get(k)
            if r is None:
                cells.append("")
            elif k == 0:
                cells.append(f"{r['err_gamma_m']:.1e}")
            else:
                cells.append(
                    f"{r['err_gamma_m']:.1e} / {r['err_gamma_r']:.1e} ({r['err_gamma_r_at_m']:.0e})"
                )
        lines.append(f"| {m} | {dt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> Path:
    """Worst error vs extra answers r − m; solid: γ tuned for m, dashed: γ tuned for r."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    fig, axes = plt.subplots(1, len(dtypes), figsize=(5.4 * len(dtypes) + 1.9, 4.0), squeeze=False)
    ms = list(dict.fromkeys(r["m"] for r in rows))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(ms)))
    for ax, dt in zip(axes[0], dtypes, strict=True):
        for col, m in zip(colors, ms, strict=True):
            sel = [r for r in rows if (r["m"], r["dtype"]) == (m, dt)]
            x = [r["answers"] - m for r in sel]
            ax.semilogy(
                x,
                [max(r["err_gamma_m"], 1e-18) for r in sel],
                "-o",
                ms=3,
                color=col,
                label=f"m={m}",
            )
            ax.semilogy(x, [max(r["err_gamma_r"], 1e-18) for r in sel], "--", color=col)
        ax.set_title(f"ε-MatDot, P = 2m workers, {dt} workers: worst case", fontsize=10)
        ax.set_xlabel(f"extra {ANSWERS} beyond the m needed (r − m)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # answers are counted
        ax.set_ylabel(error_label("worst-case"), fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    # one legend beside the panels (inside, it hides the steep dashed curves)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ls, lab in (("-", "γ tuned for m answers"), ("--", "γ tuned for the r received")):
        handles.append(Line2D([], [], color="0.3", ls=ls))
        labels.append(lab)
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 1.9 / fig.get_figwidth(), 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``gpucoded progressive`` / ``python -m gpucoded.studies.progressive_gain``."""
    p.add_argument("--out", type=Path, required=True, help="folder for CSV, Markdown, PNG")
    p.add_argument("--m", default="2-8", help="range a-b, a >= 2")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--max-subsets", type=int, default=120, help="subsets per answer count")
    p.add_argument("--plot", type=Path, default=None, help="PNG (default OUT/progressive.png)")
    p.add_argument("--quick", action="store_true", help="smoke run: m = 2..4 (seconds)")


def run(a: argparse.Namespace) -> int:
    """Run the study for parsed arguments (see :func:`add_arguments`)."""
    if a.quick:
        a.m = "2-4"
    try:
        lo, hi = (int(x) for x in a.m.split("-"))
        if lo < 2 or hi < lo or a.max_subsets < 1:
            raise ValueError
    except ValueError:
        raise SystemExit(
            f"gpucoded progressive: --m must be a range a-b with 2 <= a <= b and --max-subsets "
            f">= 1; got --m {a.m!r}, --max-subsets {a.max_subsets}"
        ) from None
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = run_study(
        list(range(lo, hi + 1)),
        [d.strip() for d in a.dtypes.split(",")],
        max_subsets=a.max_subsets,
        verbose=True,
    )
    with open(a.out / "progressive.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (a.out / "progressive.md").write_text(markdown(rows) + "\n")
    print(f"{len(rows)} rows in {time.perf_counter() - t0:.1f} s -> {a.out}")
    data = [a.out / "progressive.csv", a.out / "progressive.md"]
    make = lambda: [plot(rows, a.plot or a.out / "progressive.png")]  # noqa: E731
    for png in plots_or_note(make, "progressive", data):
        print(f"wrote {png}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpucoded.studies.progressive_gain`` (same options as the subcommand)."""
    p = argparse.ArgumentParser(
        prog="python -m gpucoded.studies.progressive_gain", description=__doc__
    )
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
