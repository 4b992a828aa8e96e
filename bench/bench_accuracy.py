r"""Accuracy each code family delivers, float64 and float32 (the README's table).

For each family (built by name with m = 4 and its default P, as ``coded_matmul``
builds it) and each worker dtype: Gaussian A (200×300), B (300×200), every pattern of
one failed worker (the first threshold answers of the rest are decoded, serial
executor, guard silenced), and the worst relative error
:math:`\max|\hat C-AB|/\max|AB|` against the extended-precision product. The first
row is plain ``A @ B`` in the same dtype: working precision.

Usage::

    python -m bench.bench_accuracy            # markdown table
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

import gpucoded
from gpucoded.reference import exact_product

FAMILIES = [
    ("chebyshev (default, m=2)", "chebyshev", {"m": 2}),
    ("chebyshev", "chebyshev", {"m": 4}),
    ("matdot", "matdot", {"m": 4}),
    ("polydot", "polydot", {"m": 4}),
    ("polynomial", "polynomial", {"m": 4}),
    ("circle (complex points)", "circle", {"m": 4}),
    ("replication", "replication", {"m": 4}),
    ("approx_matdot (ε-MatDot)", "approx_matdot", {"m": 4}),
    ("approx_polydot (ε-PolyDot)", "approx_polydot", {"m": 4}),
]


def worst_error(name: str, opts: dict, dtype: type, A: np.ndarray, B: np.ndarray) -> float:
    """Worst relative error over the patterns of one failed worker."""
    E = exact_product(A, B)
    scale = float(np.abs(E).max())
    code = gpucoded.make_code(name, **opts, **({"dtype": dtype} if "approx" in name else {}))
    worst = 0.0
    for f in range(code.P):
        C = gpucoded.coded_matmul(
            A, B, code, failed=[f], executor="serial", on_inaccurate="ignore"
        )
        worst = max(worst, float(np.abs(C - E).max()) / scale)
    return worst


def table(n: int = 200, k: int = 300) -> str:
    rng = np.random.default_rng(0)
    A0, B0 = rng.standard_normal((n, k)), rng.standard_normal((k, n))
    lines = ["| code family | float64 | float32 |", "|---|---:|---:|"]
    cells = []
    for dt in (np.float64, np.float32):
        A, B = A0.astype(dt), B0.astype(dt)
        E = exact_product(A, B)
        cells.append(float(np.abs(A @ B - E).max() / np.abs(E).max()))
    lines.append(f"| plain `A @ B` (working precision) | {cells[0]:.1e} | {cells[1]:.1e} |")
    for label, name, opts in FAMILIES:
        errs = [
            worst_error(name, opts, dt, A0.astype(dt), B0.astype(dt))
            for dt in (np.float64, np.float32)
        ]
        lines.append(f"| {label} | {errs[0]:.1e} | {errs[1]:.1e} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--k", type=int, default=300)
    a = p.parse_args(argv)
    print(table(a.n, a.k))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
