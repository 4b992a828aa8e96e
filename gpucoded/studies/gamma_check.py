r"""Validation of ``gamma="auto"``: predicted vs measured worst case on a (m, dtype) grid.

For each m and worker format, ε-MatDot with P = m + 3 workers and N_succ = m answers
is measured (true worst case over all subsets, :func:`.sweep.subset_sweep`, 100×100
unit-Frobenius Gaussians) on a γ grid, next to the prediction of
:mod:`gpucoded.codes.gamma` scaled by :func:`~gpucoded.codes.gamma.typical_scale` (the
bound's common input factor). The table compares the measured error at the automatic γ with the best
γ of the grid, the library's previous default :func:`gpucoded.points.default_gamma`
and the paper's γ = 70000.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from ..codes import ApproxMatDot
from ..codes.gamma import ErrorModel, best_gamma, typical_scale
from ..formats import unit_roundoff
from ..points import default_gamma
from ..reference import exact_product
from .plotting import ANSWERS, error_label
from .sweep import stacked_weights_many, subset_sweep, unit_gaussian_pair

__all__ = ["gamma_check", "plot_gamma_check", "write_gamma_check"]


def gamma_check(
    ms: tuple[int, ...] = (2, 3, 4, 5),
    dtypes: tuple[str, ...] = ("float64", "float32", "tf32", "bf16"),
    n: int = 100,
    gammas: np.ndarray | None = None,
) -> tuple[list[dict], dict]:
    """Rows of the comparison table and the curves {(m, dtype): (γ, measured, predicted)}."""
    gs = np.logspace(0, 10, 61) if gammas is None else np.asarray(gammas, float)
    A, B = unit_gaussian_pair(n, 0)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    rows, curves = [], {}
    for m in ms:
        P = m + 3
        scale = typical_scale(n, n, n, m)
        model = ErrorModel("matdot", 1, m, P, m)
        for dtype in dtypes:
            ga = best_gamma("matdot", 1, m, P, m, dtype).gamma
            gd = default_gamma(m, 2 * unit_roundoff(dtype))
            extra = [ga, gd, 70000.0]
            allg = np.concatenate([gs, extra])
            codes = [ApproxMatDot(m, P, gamma=float(g)) for g in allg]
            subs = list(itertools.combinations(range(P), m))
            Ws = stacked_weights_many(codes, subs)  # all γ in one double-double call
            meas = np.array(
                [
                    subset_sweep(c, A, B, C, dtype, weights=W, subsets=subs).errors.max()
                    for c, W in zip(codes, Ws, strict=True)
                ]
            )
            pred = model.predict(allg, dtype).total * scale
            curves[(m, dtype)] = (gs, meas[: gs.size], pred[: gs.size], ga, meas[gs.size])
            ib = int(np.argmin(meas[: gs.size]))
            rows.append(
                {
                    "m": m,
                    "P": P,
                    "dtype": dtype,
                    "gamma_auto": ga,
                    "err_auto": meas[gs.size],
                    "pred_auto": pred[gs.size],
                    "gamma_best_grid": gs[ib],
                    "err_best_grid": meas[ib],
                    "gamma_default": gd,
                    "err_default": meas[gs.size + 1],
                    "err_70000": meas[gs.size + 2],
                }
            )
    return rows, curves


def write_gamma_check(rows: list[dict], outdir: Path) -> Path:
    """The rows of :func:`gamma_check` as ``outdir/autogamma.csv``; returns its path."""
    path = Path(outdir) / "autogamma.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def plot_gamma_check(rows: list[dict], curves: dict, outdir: Path) -> Path:
    """``outdir/autogamma.png``: one panel per (worker dtype, m); returns its path.

    Each panel: the measured worst case over all answer sets of m of P = m + 3 answers
    against γ, the model's prediction, and the γ that ``gamma="auto"`` picks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    ms = sorted({k[0] for k in curves})
    dts = list(dict.fromkeys(k[1] for k in curves))
    fig, axes = plt.subplots(
        len(dts), len(ms), figsize=(3.2 * len(ms), 2.6 * len(dts)), squeeze=False
    )
    for i, dt in enumerate(dts):
        for j, m in enumerate(ms):
            ax = axes[i][j]
            gs, meas, pred, ga, ea = curves[(m, dt)]
            ax.loglog(gs, meas, "-", label="ε-MatDot: measured worst case")
            ax.loglog(gs, pred, "--", label="ε-MatDot: predicted worst case × typical scale")
            ax.plot([ga], [ea], "r*", ms=10, label="γ = 'auto' (measured)")
            ax.set_title(f"m={m}, P={m + 3}, {m} {ANSWERS}, {dt}", fontsize=8)
            ax.tick_params(labelsize=7)
            fin = np.concatenate([meas[np.isfinite(meas)], pred[np.isfinite(pred)]])
            ax.set_ylim(max(fin.min() / 10, 1e-18), min(fin.max() * 10, 1e8))
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
    fig.supxlabel("γ (ε-MatDot points λ(γ) in (−1/γ, 1/γ))")
    fig.supylabel(error_label("worst-case"))
    fig.tight_layout()
    path = outdir / "autogamma.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
