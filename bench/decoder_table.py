"""Issue 12's table: worst max-norm error over all subsets of N answers, per decoder.

A, B: 99×99 Gaussian with unit Frobenius norm (seeds 1, 2), C in extended precision,
float64 workers; every subset of N of the P workers; the three decoders of the codes
(``"interpolation"``: the library's earlier default decoder, ``"minnorm"``: the paper's reference
implementation, ``"auto"``: the new default). ``python -m bench.decoder_table``.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

from gpucoded import codes, reference

CASES = [
    ("Chebyshev m=3, P=6", lambda d: codes.ChebyshevMatDot(3, 6, decoder=d), (2, 3, 4, 5)),
    ("Chebyshev m=5, P=9", lambda d: codes.ChebyshevMatDot(5, 9, decoder=d), (5, 6, 7, 8, 9)),
    ("Chebyshev m=5, P=10", lambda d: codes.ChebyshevMatDot(5, 10, decoder=d), (5, 6, 7, 9)),
    ("MatDot λ(1) m=3, P=6", lambda d: codes.MatDot(3, 6, decoder=d), (3, 4, 5)),
    (
        "ε-MatDot γ=7e4 m=3, P=6",
        lambda d: codes.ApproxMatDot(3, 6, gamma=7e4, decoder=d),
        (3, 4, 5, 6),
    ),
]
DECODERS = ("interpolation", "minnorm", "auto")


def unit_gaussian(n: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, n))
    return X / np.linalg.norm(X)


def worst(code: codes.Code, A: np.ndarray, B: np.ndarray, C: np.ndarray, r: int) -> float:
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    out = 0.0
    for S in itertools.combinations(range(code.P), r):
        Ch = code.decode(prods[list(S)], S, shape=C.shape, partial=True)
        out = max(out, float(np.abs(Ch - C).max()))
    return out


def main() -> int:
    A, B = unit_gaussian(99, 1), unit_gaussian(99, 2)
    C = np.asarray(reference.exact_product(A, B))
    print("| code | N | interpolation (before) | minnorm (reference) | auto (new) |")
    print("|---|---|---|---|---|")
    for label, make, Ns in CASES:
        made = {d: make(d) for d in DECODERS}
        for r in Ns:
            e = [worst(made[d], A, B, C, r) for d in DECODERS]
            print(f"| {label} | {r} | " + " | ".join(f"{x:.2g}" for x in e) + " |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
