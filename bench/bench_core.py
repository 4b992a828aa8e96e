r"""CPU benchmarks of the core machinery, one class per code configuration.

Every class is one pytest-benchmark *group* (``"MatDot m=4 P=8 n=2048 float64"``)
holding one test per stage, so the group reads as ratios:

=================  ===========================================================
stage              timed callable
=================  ===========================================================
``plain``          ``A @ B`` (the reference)
``uncoded``        ``coded_matmul`` with ``Uncoded(m)``: the m-way split, no
                   redundancy, same storage fraction 1/m
``encode``         ``code.encode(A, B)``: :math:`\tilde A = G_A A`, O(P·n²)
``workers``        ``At[w] @ Bt[w]`` for all P workers, O(P·n³/m) (what the
                   serial executor computes)
``decode``         ``code.decode(products, S)`` for the K = threshold answers S,
                   weights cached, O(K·n²)
``coded_matmul``   end to end, serial executor, weights cached
=================  ===========================================================

Decode weights (mpmath) are timed in their own groups (``"weights MatDot m=4
P=8"``): the first call for a subset (cache cleared before each round) and the
second call for the same subset (a cache hit: microseconds).

Each benchmark stores its parameters and the bytes it moves in ``extra_info``
(``suite="core"``); :mod:`bench.report` turns the JSON into ``BENCHMARKS.md``.

Rounds are calibrated: one warm-up call is timed and the number of rounds chosen so a
test takes about :data:`BUDGET_S` seconds (between :data:`MIN_ROUNDS` and
:data:`MAX_ROUNDS`). Quick mode (``--bench-quick``) uses tiny sizes and one round.
"""

from __future__ import annotations

import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from gpucoded import coded_matmul
from gpucoded.codes import Code, Uncoded, make_code
from gpucoded.executors.local import multiply

try:
    from .conftest import loadavg, quick_mode
except ImportError:  # collected as a top-level module
    from conftest import loadavg, quick_mode  # type: ignore[no-redef]

QUICK = quick_mode()
BUDGET_S = 0.05 if QUICK else 0.6
MIN_ROUNDS = 1 if QUICK else 3
MAX_ROUNDS = 1 if QUICK else 25

#: Display names of the code families.
LABELS = {
    "matdot": "MatDot",
    "approx_matdot": "ApproxMatDot",
    "polydot": "PolyDot",
    "chebyshev": "ChebyshevMatDot",
    "polynomial": "Polynomial",
}


@dataclass(frozen=True)
class Config:
    """One benchmark group: a code, its parameters, a size and a dtype."""

    code: str
    m: int
    P: int
    n: int
    dtype: str

    @property
    def label(self) -> str:
        return LABELS.get(self.code, self.code)

    @property
    def group(self) -> str:
        return f"{self.label} m={self.m} P={self.P} n={self.n} {self.dtype}"

    @property
    def seed(self) -> int:
        return zlib.crc32(self.group.encode())

    def make(self) -> Code:
        return make_code(self.code, m=self.m, P=self.P)


def configs(quick: bool) -> list[Config]:
    """The CPU suite: time vs n (MatDot m=4, P=8) and vs m, P and the code at n=2048."""
    if quick:
        return [
            Config("matdot", 4, 8, 128, "float64"),
            Config("matdot", 4, 8, 256, "float32"),
            Config("approx_matdot", 2, 3, 128, "float64"),
            Config("polydot", 4, 10, 128, "float64"),
        ]
    out = [
        Config("matdot", 4, 8, n, dt)
        for dt in ("float64", "float32")
        for n in (512, 1024, 2048, 4096)
    ]
    out += [Config("matdot", m, 2 * m, 2048, "float64") for m in (2, 8)]  # vs m (P = 2m)
    out += [Config("matdot", 4, 12, 2048, "float64")]  # vs P at m = 4
    out += [Config("approx_matdot", 4, 5, 2048, "float64")]  # threshold m
    out += [Config("polydot", 4, 10, 2048, "float64")]  # p = q = 2
    return out


def weight_configs(quick: bool) -> list[tuple[str, int, int]]:
    """(code, m, P) of the decode-weight groups."""
    if quick:
        return [("matdot", 4, 8), ("approx_matdot", 2, 3)]
    return [
        ("matdot", 2, 4),
        ("matdot", 4, 8),
        ("matdot", 8, 16),
        ("approx_matdot", 4, 5),
        ("polydot", 4, 10),
    ]


def run(
    benchmark: Any,
    fn: Callable[[], Any],
    setup: Callable[[], Any] | None = None,
    budget: float = 1.0,
) -> Any:
    """Time ``fn`` with calibrated rounds (one timed warm-up call picks the count).

    ``budget`` scales :data:`BUDGET_S` and :data:`MAX_ROUNDS` (the target group's
    interleaved benchmark gets more rounds).
    """
    if setup is not None:
        setup()
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-9)
    rounds = int(min(MAX_ROUNDS * budget, max(MIN_ROUNDS, budget * BUDGET_S // dt)))
    if setup is None:
        return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)

    def setup_noargs() -> None:
        setup()

    return benchmark.pedantic(fn, setup=setup_noargs, rounds=rounds, iterations=1, warmup_rounds=0)


@dataclass
class Case:
    """Seeded inputs and precomputed intermediate results of one group."""

    cfg: Config
    code: Code
    A: np.ndarray
    B: np.ndarray
    At: np.ndarray
    Bt: np.ndarray
    S: list[int]
    products: np.ndarray

    def info(self, stage: str) -> dict[str, Any]:
        """extra_info of a stage: parameters, flops and bytes moved."""
        c, g = self.cfg, self.code.grid
        n = k = l = c.n
        rb, cb, db = g.block_dims(n, k, l)
        item = np.dtype(c.dtype).itemsize
        P, K = self.code.P, len(self.S)
        moved = {
            "encode": (n * k + k * l + P * (rb * cb + cb * db)) * item,
            "decode": (K * rb * db + n * l) * item,
        }
        flops = {
            "plain": 2 * n * k * l,
            "uncoded": 2 * n * k * l,
            "workers": 2 * P * rb * cb * db,
            "encode": 2 * P * (g.n_a * rb * cb + g.n_b * cb * db),
            "decode": 2 * g.n_c * K * rb * db,
        }
        return {
            "suite": "core",
            "stage": stage,
            "code": c.code,
            "label": c.label,
            "m": c.m,
            "P": P,
            "K": K,
            "n": n,
            "dtype": c.dtype,
            "grid": [g.p, g.s, g.t],
            "flops": flops.get(stage),
            "bytes": moved.get(stage),
        }


def make_case(cfg: Config) -> Case:
    """Seeded Gaussian inputs, the code, its encoded stacks and K answers."""
    rng = np.random.default_rng(cfg.seed)
    A = rng.standard_normal((cfg.n, cfg.n)).astype(cfg.dtype)
    B = rng.standard_normal((cfg.n, cfg.n)).astype(cfg.dtype)
    code = cfg.make()
    At, Bt = code.encode(A, B)
    S = list(range(code.recovery_threshold))
    products = np.stack([multiply(At, Bt, w) for w in S])
    code.decode_weights(S)  # cached for the decode and end-to-end stages
    return Case(cfg, code, A, B, At, Bt, S, products)


class _Stages:
    """The stages of one group; subclasses set ``cfg`` and the benchmark group."""

    cfg: Config

    @pytest.fixture(scope="class")
    def case(self) -> Case:
        return make_case(self.cfg)

    def _record(self, benchmark: Any, case: Case, stage: str) -> None:
        benchmark.extra_info.update(case.info(stage))
        benchmark.extra_info["loadavg_1min"] = loadavg()[0] if loadavg() else None

    def test_plain(self, benchmark: Any, case: Case) -> None:
        self._record(benchmark, case, "plain")
        run(benchmark, lambda: case.A @ case.B)

    def test_uncoded(self, benchmark: Any, case: Case) -> None:
        self._record(benchmark, case, "uncoded")
        ref = Uncoded(case.cfg.m)
        run(benchmark, lambda: coded_matmul(case.A, case.B, code=ref, executor="serial"))

    def test_encode(self, benchmark: Any, case: Case) -> None:
        self._record(benchmark, case, "encode")
        run(benchmark, lambda: case.code.encode(case.A, case.B))

    def test_workers(self, benchmark: Any, case: Case) -> None:
        self._record(benchmark, case, "workers")
        P = case.code.P
        run(benchmark, lambda: [multiply(case.At, case.Bt, w) for w in range(P)])

    def test_decode(self, benchmark: Any, case: Case) -> None:
        self._record(benchmark, case, "decode")
        n = case.cfg.n
        run(benchmark, lambda: case.code.decode(case.products, case.S, shape=(n, n)))

    def test_pipeline(self, benchmark: Any, case: Case) -> None:
        """encode -> all P workers -> decode in one round, each part timed inside.

        The stages above are timed in separate tests, minutes apart on a busy machine;
        here the three parts of every round share the same load, so the per-round
        ratio (encode + decode) / workers is robust to other jobs. Stored in
        ``extra_info``: the median of each part and of the ratio over rounds.
        """
        self._record(benchmark, case, "pipeline")
        code, A, B, K = case.code, case.A, case.B, len(case.S)
        n = case.cfg.n
        parts: dict[str, list[float]] = {"encode": [], "workers": [], "decode": []}

        def pipeline() -> Any:
            t0 = time.perf_counter()
            At, Bt = code.encode(A, B)
            t1 = time.perf_counter()
            prods = [multiply(At, Bt, w) for w in range(code.P)]
            t2 = time.perf_counter()
            Z = np.stack(prods[:K])  # the answers as one array: not part of the decode
            t3 = time.perf_counter()
            C = code.decode(Z, case.S, shape=(n, n))
            t4 = time.perf_counter()
            parts["encode"].append(t1 - t0)
            parts["workers"].append(t2 - t1)
            parts["decode"].append(t4 - t3)
            return C

        target = (case.cfg.code, case.cfg.m, case.cfg.P, case.cfg.n) == ("matdot", 4, 8, 2048)
        run(benchmark, pipeline, budget=4.0 if target and not QUICK else 1.0)
        parts = {k: v[1:] or v for k, v in parts.items()}  # drop run()'s calibration call
        ratios = [
            (e + d) / w
            for e, w, d in zip(parts["encode"], parts["workers"], parts["decode"], strict=True)
        ]
        med = statistics.median
        benchmark.extra_info.update({f"{k}_median": med(v) for k, v in parts.items()})
        benchmark.extra_info["encdec_over_workers_median"] = med(ratios)
        benchmark.extra_info["encdec_over_workers_rounds"] = len(ratios)
        # each part's minimum over rounds: its cost when no other job interfered
        lo = {k: min(v) for k, v in parts.items()}
        benchmark.extra_info["encdec_over_workers_of_min"] = (lo["encode"] + lo["decode"]) / lo[
            "workers"
        ]

    def test_coded_matmul(self, benchmark: Any, case: Case) -> None:
        self._record(benchmark, case, "coded_matmul")
        C, info = run(
            benchmark,
            lambda: coded_matmul(
                case.A, case.B, code=case.code, executor="serial", return_info=True
            ),
        )
        # a benchmark of a wrong answer is worthless: check the result against A @ B
        # with the a-priori bound the library reports for this call (rounding only for
        # the exact codes, plus the interpolation error for the approximate ones)
        err = float(np.abs(C - case.A @ case.B).max())
        benchmark.extra_info["max_abs_error"] = err
        benchmark.extra_info["error_bound"] = info.error_bound
        assert info.error_bound is None or err <= info.error_bound


class _Weights:
    """Decode-weight computation (mpmath) for the first K workers: uncached vs cached."""

    code_name: str
    m: int
    P: int

    def _code(self) -> tuple[Code, list[int]]:
        code = make_code(self.code_name, m=self.m, P=self.P)
        return code, list(range(code.recovery_threshold))

    def _info(self, code: Code, S: list[int], stage: str) -> dict[str, Any]:
        return {
            "suite": "core",
            "stage": stage,
            "code": self.code_name,
            "label": LABELS.get(self.code_name, self.code_name),
            "m": self.m,
            "P": self.P,
            "K": len(S),
        }

    def test_weights_first(self, benchmark: Any) -> None:
        code, S = self._code()
        benchmark.extra_info.update(self._info(code, S, "weights_first"))
        run(benchmark, lambda: code.decode_weights(S), setup=code._cache.clear)

    def test_weights_cached(self, benchmark: Any) -> None:
        code, S = self._code()
        benchmark.extra_info.update(self._info(code, S, "weights_cached"))
        first = code.decode_weights(S)
        hit = run(benchmark, lambda: code.decode_weights(S))
        assert hit is first  # the second call returns the cached object


def _register() -> None:
    """One class per configuration, each its own benchmark group."""
    for cfg in configs(QUICK):
        name = f"Test{cfg.label}_m{cfg.m}_P{cfg.P}_n{cfg.n}_{cfg.dtype}"
        globals()[name] = type(
            name,
            (_Stages,),
            {"cfg": cfg, "pytestmark": [pytest.mark.benchmark(group=cfg.group)]},
        )
    for code, m, P in weight_configs(QUICK):
        label = LABELS.get(code, code)
        name = f"TestWeights{label}_m{m}_P{P}"
        globals()[name] = type(
            name,
            (_Weights,),
            {
                "code_name": code,
                "m": m,
                "P": P,
                "pytestmark": [pytest.mark.benchmark(group=f"weights {label} m={m} P={P}")],
            },
        )


_register()
