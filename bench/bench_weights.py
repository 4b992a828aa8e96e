"""First-call decode-weight solve time for large recovery thresholds (issue 13, item 3).

One pytest-benchmark group, ``"weights first call"``: for Chebyshev and MatDot codes
with thresholds K = 31, 79, 127, 255, 511, the time of ``code.decode_weights(S)`` for
K answers with the cache cleared before every round (the "after": refined float solve
in the code's own basis, certified O(K²) Arb/mpmath solve where the float check fails).

``python -m bench.bench_weights`` prints the table of BENCHMARKS.md, with the "before"
column: the former algorithm, a dense mpmath inverse at doubling precision
(:func:`gpucoded.dualsolve.dense_mp_weights`, still the over-determined fallback), run
once where it finishes within ``--before-max`` seconds of its predicted time.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pytest

from gpucoded import codes, dualsolve

try:
    from bench.conftest import quick_mode
except ImportError:  # run as a script
    from conftest import quick_mode  # type: ignore[no-redef]

THRESHOLDS = (31, 79, 127, 255, 511)
QUICK = quick_mode()


def make(family: str, K: int) -> tuple[codes.Code, tuple[int, ...]]:
    """The code of threshold K (m = (K+1)/2, P = K + 1) and its answers 1..K."""
    m = (K + 1) // 2
    cls = codes.ChebyshevMatDot if family == "chebyshev" else codes.MatDot
    return cls(m, K + 1, decoder="interpolation"), tuple(range(1, K + 1))


CASES = [(f, K) for f in ("chebyshev", "matdot") for K in (THRESHOLDS[:1] if QUICK else THRESHOLDS)]


@pytest.mark.parametrize(("family", "K"), CASES, ids=[f"{f}-K{K}" for f, K in CASES])
def test_weights_first_call(benchmark: Any, family: str, K: int) -> None:
    code, S = make(family, K)
    code.decode_weights(S)  # imports and contexts warmed once
    benchmark.group = "weights first call"
    benchmark.extra_info.update({"suite": "weights", "code": family, "K": K})
    rounds = 1 if QUICK else (3 if K <= 255 else 1)
    benchmark.pedantic(
        lambda: code.decode_weights(S), setup=code._cache.clear, rounds=rounds, iterations=1
    )


def after_time(family: str, K: int) -> tuple[float, Any]:
    """Best of three first-call times (cache cleared), and the weights."""
    code, S = make(family, K)
    code.decode_weights(S)
    best = float("inf")
    for _ in range(3):
        code._cache.clear()
        t0 = time.perf_counter()
        dw = code.decode_weights(S)
        best = min(best, time.perf_counter() - t0)
    return best, dw


def before_time(family: str, K: int) -> float:
    """The former dense mpmath solve (one run)."""
    code, S = make(family, K)
    pts = [code.points[w] for w in S]
    t0 = time.perf_counter()
    dualsolve.dense_mp_weights(pts, code.targets, code.basis, 40, None)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Print the Markdown table of first-call weight times."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--before-max-K", type=int, default=127,
                   help="largest K for which the former dense solve is run (it is O(K³) mpmath)")
    args = p.parse_args(argv)
    print("| code | K | after (s) | path | digits | cond | before: dense mpmath (s) |")
    print("|---|---|---|---|---|---|---|")
    for family in ("chebyshev", "matdot"):
        for K in THRESHOLDS:
            t, dw = after_time(family, K)
            path = "float + dd refinement" if dw.dps == 32 else "Arb O(K²), certified"
            before = f"{before_time(family, K):.2f}" if K <= args.before_max_K else "not run"
            print(f"| {family} | {K} | {t:.3f} | {path} | {dw.dps} | {dw.cond:.2g} | {before} |",
                  flush=True)
    code = codes.MatDot(200, 400)
    t0 = time.perf_counter()
    dw = code.decode_weights(range(399))
    print(f"\nMatDot m=200 (K=399, cond {dw.cond:.2g}): {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
