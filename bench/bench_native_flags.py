r"""The compiled CPU loops: portable baseline, AVX2 variant, ``-march=native``, in one run.

``pip install .`` and ``cmake`` build ``gpucoded/_host/hostops.cpp`` with a portable
baseline (``-O3``, the compiler's default target: x86-64 with SSE2) and, on x86-64,
an ``-march=x86-64-v3`` (AVX2) variant that :func:`gpucoded.hostops.decode_library`
uses for decode on CPUs that have it (encode keeps the baseline: measured here),
and no ``-march=native``, because a wheel or a build directory can be copied to an
older CPU, where such code stops with "illegal instruction". This measures
what each costs: the builds are loaded in turn (``GPUCODED_HOSTLIB``) and timed
interleaved, round by round, on

* encode: MatDot m=4, P=8 of an n x n float64 A (8 planes of n x n/4), and
* decode: 7 answers of (n/2) x (n/2) combined into a 2x2 block grid (float64),

with the minimum over the rounds of each and the per-round ratio to the portable
build (median), and checks that all builds give bit-identical results (no FP
contraction, no reassociation). Data: uniform [0, 1), seed 0.

Usage::

    python -m bench.bench_native_flags [--n 2048] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gpucoded import hostops


def _use(path: Path) -> None:
    os.environ["GPUCODED_HOSTLIB"] = str(path)
    if hostops.library(reload=True) is None:
        raise SystemExit(f"{path} did not load")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=10)
    a = p.parse_args(argv)
    d = Path(tempfile.mkdtemp(prefix="gpucoded-flags-"))  # 0700, ours
    libs = {
        "portable": hostops.build(d / "portable.so"),
        "x86-64-v3": hostops.build(d / "v3.so", march="x86-64-v3"),
        "native": hostops.build(d / "native.so", march="native"),
    }
    n, m, P = a.n, 4, 8
    rng = np.random.default_rng(0)
    A = rng.random((n, n))
    G = rng.random((P, m))
    Y = np.empty((P, n, n // m))
    h = n // 2
    Z = [rng.random((h, h)) for _ in range(7)]
    W = rng.random((4, 7))
    C = np.empty((n, n))
    jobs = {
        "encode": lambda: hostops.encode_into(A, G, (1, m), (n, n // m), Y),
        "decode": lambda: hostops.combine_into(W, Z, (2, 2), C),
    }
    times: dict[tuple[str, str], list[float]] = {}
    first: dict[str, np.ndarray] = {}
    for _ in range(a.rounds):
        for flags, lib in libs.items():
            _use(lib)
            for job, fn in jobs.items():
                assert fn(), f"{job} did not run compiled"
                res = (Y if job == "encode" else C).copy()
                assert np.array_equal(first.setdefault(job, res), res), (job, flags)
                t0 = time.perf_counter()
                fn()
                times.setdefault((job, flags), []).append(time.perf_counter() - t0)
    print(
        f"n={n}, float64, {a.rounds} interleaved rounds, {hostops.threads()} threads; "
        f"results bit-identical across builds; CPU has x86-64-v3: {hostops.cpu_has_v3()}"
    )
    names = list(libs)
    print("| loop | " + " | ".join(f"{f} ms (min)" for f in names) + " | "
          + " | ".join(f"{f} / portable" for f in names[1:]) + " |")  # fmt: skip
    print("|---|" + "---:|" * (2 * len(names) - 1))
    for job in jobs:
        tp = times[(job, "portable")]
        mins = [f"{min(times[(job, f)]) * 1e3:.1f}" for f in names]
        ratios = [
            f"{statistics.median(x / y for x, y in zip(times[(job, f)], tp, strict=True)):.2f}"
            for f in names[1:]
        ]
        print(f"| {job} | " + " | ".join(mins + ratios) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
