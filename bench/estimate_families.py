"""Issue 20, item 2: the decode's model estimate against the measured error, per data family.

500×784 · 784×200 operands (MNIST shape), seeds 0–2, serial executor; per case and
seed the measured max|Ĉ − AB|, ``info.decode.estimate`` and the a-priori bound, all
relative to max|AB| (AB in float64). ``python -m bench.estimate_families``.
"""

from __future__ import annotations

import warnings

import numpy as np

import gpucoded

CASES = [
    ("approx_polydot", {"p": 2, "q": 2, "P": 10}, np.float64),
    ("matdot", {"m": 10, "P": 20}, np.float32),
    ("approx_matdot", {"m": 4, "P": 8}, np.float64),
]
FAMILIES = ("uniform", "pixel", "shifted", "gaussian")


def data(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One operand of a family: uniform [0, 1), uint8/255, N(5, 1) or N(0, 1)."""
    if kind == "uniform":
        return rng.uniform(size=shape)
    if kind == "pixel":
        return rng.integers(0, 256, shape) / 255.0
    if kind == "shifted":
        return rng.standard_normal(shape) + 5.0
    return rng.standard_normal(shape)


def main() -> None:
    """Print one row per family and case: error / estimate / bound for each seed."""
    warnings.simplefilter("ignore")
    print("| family | code | dtype | error / estimate / bound (seeds 0, 1, 2) |")
    print("|---|---|---|---|")
    for kind in FAMILIES:
        for code, kw, dtype in CASES:
            cells = []
            for seed in range(3):
                rng = np.random.default_rng(seed)
                A = data(kind, (500, 784), rng).astype(dtype)
                B = data(kind, (784, 200), rng).astype(dtype)
                C, info = gpucoded.coded_matmul(
                    A, B, code, executor="serial", return_info=True, **kw
                )
                ref = A.astype(np.float64) @ B.astype(np.float64)
                s = float(np.abs(ref).max())
                d = info.decode
                err = float(np.abs(C - ref).max())
                cells.append(f"{err / s:.1e} / {d.estimate / s:.1e} / {d.error_bound / s:.1e}")
            print(f"| {kind} | {code} {kw} | {np.dtype(dtype).name} | {'; '.join(cells)} |")


if __name__ == "__main__":
    main()
