r"""What a coded product costs on one machine, against ``A @ B``.

A code with P workers and storage fraction 1/m gives each worker a GEMM of
:math:`1/m` of the inner dimension (MatDot-type codes: Chebyshev, MatDot), so the
workers together do :math:`P/m` times the multiply-adds of ``A @ B``, plus the encode
(a pass over A and B per worker) and the decode. On one machine, where the P worker
GEMMs share the cores ``A @ B`` would use alone, that is what the coded product pays;
coding pays off when workers are separate devices or machines and some are slow
(stragglers) or fail: then the result needs only the first ``threshold`` answers.

Timed: median seconds of ``coded_matmul`` (after a warm-up call that fills the
decode-weight cache) and of ``A @ B``, interleaved round by round, so both see the
same machine load; the ratio is per round, then the median. Data: float64 operands,
non-negative uniform [0, 1) (the README's example data), seed 0.

Usage::

    python -m bench.bench_single_machine                   # n = 1000 and 2000
    python -m bench.bench_single_machine --n 500 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import numpy as np

import gpucoded
from gpucoded import hostops

#: (code, m, P): the default code first, then larger P/m
CODES = (("chebyshev", 2, 4), ("chebyshev", 4, 8), ("matdot", 3, 8))


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(n: int, rounds: int, executor: str) -> list[dict]:
    """One row per code: median times and the median per-round ratio to ``A @ B``."""
    rng = np.random.default_rng(0)
    A, B = rng.random((n, n)), rng.random((n, n))
    rows = []
    for code, m, P in CODES:

        def coded(code=code, m=m, P=P):
            return gpucoded.coded_matmul(A, B, code, m=m, P=P, executor=executor)

        first = _time(coded)  # includes the weight solve for this code
        t_c, t_p, ratio = [], [], []
        for _ in range(rounds):
            tp = _time(lambda: A @ B)
            tc = _time(coded)
            t_c.append(tc)
            t_p.append(tp)
            ratio.append(tc / tp)
        rows.append({
            "n": n, "code": f"{code} m={m} P={P}", "P_over_m": P / m, "executor": executor,
            "plain_s": statistics.median(t_p), "coded_s": statistics.median(t_c),
            "ratio": statistics.median(ratio), "first_call_s": first,
        })  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    out = [
        "| n | code | P/m | executor | `A @ B` s | coded s | coded / `A @ B` | first call s |",
        "|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['n']} | {r['code']} | {r['P_over_m']:g} | {r['executor']} | "
            f"{r['plain_s']:.3f} | {r['coded_s']:.3f} | {r['ratio']:.2f} | "
            f"{r['first_call_s']:.2f} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[1000, 2000])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--executor", default="threads", choices=("threads", "serial"))
    a = p.parse_args(argv)
    rows = [r for n in a.n for r in measure(n, a.rounds, a.executor)]
    print(f"compiled host loops: {hostops.available()}; float64, uniform [0, 1), seed 0")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
