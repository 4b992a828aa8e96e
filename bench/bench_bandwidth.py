r"""CPU encode/decode bandwidth as a fraction of a copy measured in the same run.

Encode and decode are memory-bound, so their yardstick is the machine's streaming
bandwidth. Every benchmark here times one operation the way ``coded_matmul`` calls
it and, before each of its rounds (pytest-benchmark ``setup``, untimed), one
``np.copyto`` that moves the same number of bytes (an array of half the operation's
read + write bytes, copied into a preallocated destination). Interleaving the two
means both see the same load on a shared machine; each keeps its minimum over rounds.

* ``encode``: ``code.encode(A, B)``; bytes = read A and B + write the P encoded
  blocks of each, :math:`(nk + kl + P(r_b c_b + c_b d_b))\cdot` itemsize.
* ``decode``: ``code.decode(answers, S, shape=(n, l))`` with the K = threshold
  answers as *separate* arrays (as ``coded_matmul`` passes them), weights cached;
  bytes = read K answers + write C, :math:`(K r_b d_b + nl)\cdot` itemsize.

``extra_info``: ``suite="bandwidth"``, ``op``, ``bytes``, ``copy_min_s`` (the copy's
minimum over the same rounds), ``fraction`` (copy time / operation time, both
minima: the operation's bytes/s over the copy's), the code, n, dtype, grid, and
whether the compiled host loops (:mod:`gpucoded.hostops`) ran. One group per
(code, n, dtype): ``"bandwidth MatDot m=4 P=8 n=2048 float64"``.

Codes: MatDot (m=4, P=8), ε-MatDot (m=4, P=5), Chebyshev (m=4, P=8), PolyDot
(p=q=2, P=10), Polynomial (p=t=2, P=6); n ∈ {1024, 2048, 4096}, float32 and float64.
Quick mode (``--bench-quick``): n=128, one round.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from gpucoded import hostops
from gpucoded.codes import Code, make_code

try:
    from .conftest import loadavg, quick_mode
except ImportError:  # collected as a top-level module
    from conftest import loadavg, quick_mode  # type: ignore[no-redef]

QUICK = quick_mode()
BUDGET_S = 0.05 if QUICK else 1.0
MIN_ROUNDS = 1 if QUICK else 7
MAX_ROUNDS = 1 if QUICK else 40

#: (make_code name, display label, m, P).
CODES = [
    ("matdot", "MatDot", 4, 8),
    ("approx_matdot", "ApproxMatDot", 4, 5),
    ("chebyshev", "ChebyshevMatDot", 4, 8),
    ("polydot", "PolyDot", 4, 10),
    ("polynomial", "Polynomial", 4, 6),
]
#: The target configuration (issue 16): MatDot m=4, P=8, n=2048, fraction >= 0.80.
TARGET = {"code": "matdot", "m": 4, "P": 8, "n": 2048, "min_fraction": 0.80}


@dataclass(frozen=True)
class BwConfig:
    code: str
    label: str
    m: int
    P: int
    n: int
    dtype: str

    @property
    def group(self) -> str:
        return f"bandwidth {self.label} m={self.m} P={self.P} n={self.n} {self.dtype}"


def configs(quick: bool) -> list[BwConfig]:
    ns = (128,) if quick else (1024, 2048, 4096)
    return [  # grouped by (n, dtype): consecutive classes share the inputs
        BwConfig(code, label, m, P, n, dt)
        for n in ns
        for dt in ("float64", "float32")
        for code, label, m, P in CODES
    ]


@functools.lru_cache(maxsize=1)
def inputs(n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Gaussian A, B (n x n), kept for the next configuration of the same size."""
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    return A, B


@dataclass
class BwCase:
    cfg: BwConfig
    code: Code
    A: np.ndarray
    B: np.ndarray
    answers: list[np.ndarray]
    S: list[int]

    def nbytes(self, op: str) -> int:
        g = self.code.grid
        n = self.cfg.n
        rb, cb, db = g.block_dims(n, n, n)
        item = np.dtype(self.cfg.dtype).itemsize
        if op == "encode":
            return (2 * n * n + self.code.P * (rb * cb + cb * db)) * item
        return (len(self.S) * rb * db + n * n) * item


def make_case(cfg: BwConfig) -> BwCase:
    A, B = inputs(cfg.n, cfg.dtype)
    code = make_code(cfg.code, m=cfg.m, P=cfg.P)
    S = list(range(code.recovery_threshold))
    rb, _, db = code.grid.block_dims(cfg.n, cfg.n, cfg.n)
    # decode time does not depend on the values: cheap stand-ins for the products
    answers = [np.full((rb, db), 1.0 + k, dtype=cfg.dtype) for k in S]
    code.decode_weights(S)
    return BwCase(cfg, code, A, B, answers, S)


class Copier:
    """``np.copyto`` of ``nbytes / 2`` bytes into a preallocated destination, timed."""

    def __init__(self, nbytes: int, dtype: str) -> None:
        k = max(1, nbytes // 2 // np.dtype(dtype).itemsize)
        self.src = np.ones(k, dtype)
        self.dst = np.empty_like(self.src)
        np.copyto(self.dst, self.src)  # fault the pages in once
        self.times: list[float] = []

    def __call__(self) -> None:
        t0 = time.perf_counter()
        np.copyto(self.dst, self.src)
        self.times.append(time.perf_counter() - t0)


def measure(benchmark: Any, case: BwCase, op: str) -> None:
    """Time ``op`` with a same-size copy before every round (untimed setup)."""
    cfg, code = case.cfg, case.code
    nbytes = case.nbytes(op)
    if op == "encode":

        def fn() -> Any:
            return code.encode(case.A, case.B)
    else:

        def fn() -> Any:
            return code.decode(case.answers, case.S, shape=(cfg.n, cfg.n))

    copier = Copier(nbytes, cfg.dtype)
    fn()  # warm-up: pool buffers, weights
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-9)
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, BUDGET_S // dt)))
    benchmark.pedantic(fn, setup=copier, rounds=rounds, iterations=1, warmup_rounds=0)
    g = code.grid
    copy_min = min(copier.times)
    op_min = benchmark.stats.stats.min if benchmark.stats else float("nan")
    benchmark.extra_info.update(
        {
            "suite": "bandwidth",
            "op": op,
            "code": cfg.code,
            "label": cfg.label,
            "m": cfg.m,
            "P": code.P,
            "K": len(case.S),
            "n": cfg.n,
            "dtype": cfg.dtype,
            "grid": [g.p, g.s, g.t],
            "bytes": nbytes,
            "copy_min_s": copy_min,
            "copy_GBps": nbytes / copy_min / 1e9,
            "GBps": nbytes / op_min / 1e9,
            "fraction": copy_min / op_min,
            "compiled": hostops.available(),
            "host_threads": hostops.threads(),
            "loadavg_1min": loadavg()[0] if loadavg() else None,
        }
    )


class _Bandwidth:
    cfg: BwConfig

    @pytest.fixture(scope="class")
    def case(self) -> BwCase:
        return make_case(self.cfg)

    def test_encode(self, benchmark: Any, case: BwCase) -> None:
        measure(benchmark, case, "encode")

    def test_decode(self, benchmark: Any, case: BwCase) -> None:
        measure(benchmark, case, "decode")


def _register() -> None:
    for cfg in configs(QUICK):
        name = f"TestBandwidth{cfg.label}_n{cfg.n}_{cfg.dtype}"
        globals()[name] = type(
            name,
            (_Bandwidth,),
            {"cfg": cfg, "pytestmark": [pytest.mark.benchmark(group=cfg.group)]},
        )


_register()
