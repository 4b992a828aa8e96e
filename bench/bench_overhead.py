r"""The fixed cost of one call, and a call against the same arithmetic by hand.

Three tables (markdown on stdout):

1. **Fixed cost per call** at n = 32 (float64, unit Gaussian operands, where the
   arithmetic takes microseconds): the median of ``--reps`` warm calls (after
   ``--warm`` calls that fill the caches and start the workers) of
   ``coded_matmul(A, B, code, ...)`` per executor (serial, threads, Dask in-process)
   and per code family: the default code, named codes (chebyshev, matdot,
   approx_matdot, polydot) and a code *instance*.
2. **End to end against by hand** at n ∈ ``--sizes``, BLAS on one thread for both
   (threadpoolctl): ``coded_matmul`` (chebyshev
   m=4, P=8, serial executor, decode weights cached) against the same arithmetic
   written out: ``code.encode(A, B)``, the K worker GEMMs ``At[w] @ Bt[w]`` the decode
   uses, one after another (a serial call computes no more: a worker is computed when
   its answer is read), ``code.decode`` of them. The two are timed alternately,
   one of each per round, and the ratio is the median of the per-round ratios (so
   a load change on a shared machine hits both).
3. **Matrix-vector**: ``CodedMatrix(M, "chebyshev", m=4, P=8) @ x`` against a plain
   ``M @ x`` at n = 2000 (threads and serial), timed alternately as in 2, with the
   default measured check and with ``check=None``; wall and process CPU time; the
   floors: the K and the P worker GEMVs by hand.
4. **Simulated device** (``--only gpusim``; needs the checkout's ``tests/_harness``):
   a warm call on device operands (n = 32, float64) with the simulated CUDA device of
   the test suite installed as ``cupy``: the host thread's CPU time per call
   (``time.thread_time``: its Python work; the simulated device runs on other threads
   and its modelled time is not counted), the wall time, and the host
   synchronisations and device allocations per call from the simulator's counters.
   The simulator's own bookkeeping of each array operation is in the host time (a
   real CuPy launch costs a few µs instead), so compare checkouts, not devices.

5. **Host paths of tiny stacks** (``--only paths``): ``code.encode`` and
   ``code.decode`` of the first K answers at n ∈ ``--tiny-sizes``, with the batched
   NumPy matmuls (stacks below ``gpucoded.codes.dispatch.HOST_LOOPS_FROM`` entries)
   and with the compiled loops (the threshold set to 0), µs medians, BLAS on one
   thread.
6. **Exact against probed check** (``--only exact``): ``gpucoded.probes.measure`` of a
   small product, exactly (``n·k·l`` at most ``gpucoded.probes.EXACT_BELOW``) and with
   the probes (the threshold set to 0), µs medians, BLAS on one thread.

7. **Where a warm call's time goes** (``--only steps``): the n = 32 call of table 1
   (serial executor) with each pipeline step timed (its functions wrapped with a
   timer, about 0.3 µs each): validation, code resolution and call set-up, operand
   norms and means, encode, starting the run, the workers' GEMMs and the collection
   with its answer checks, the decode (the weights' combination, the decoder's
   data-aware choice, the bounds and estimate), the measured check, the accuracy
   guard's rule, and the delivery; µs medians per call, steps nested as they run.

Tables 1–4 use only the public API, so they measure any checkout:
``PYTHONPATH=<checkout> python bench/bench_overhead.py``; 5 and 6 set this checkout's
thresholds, and 7 wraps this checkout's functions.

Usage::

    python -m bench.bench_overhead                       # all three tables
    python -m bench.bench_overhead --reps 50 --no-dask --sizes 256 768
    python -m bench.bench_overhead --only gpusim --reps 200   # simulated device
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import gpucoded
from gpucoded.codes import make_code

#: (label, code, options) of the fixed-cost table.
FAMILIES: list[tuple[str, Any, dict]] = [
    ("default (chebyshev m=2 P=4)", None, {}),
    ("chebyshev m=4 P=8", "chebyshev", {"m": 4, "P": 8}),
    ("matdot m=4 P=8", "matdot", {"m": 4, "P": 8}),
    ("approx_matdot m=4 P=6", "approx_matdot", {"m": 4, "P": 6}),
    ("polydot p=2 q=2 P=12", "polydot", {"p": 2, "q": 2, "P": 12}),
    ("instance chebyshev m=4 P=8", "instance", {}),
]


def unit(shape: tuple[int, ...], seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal(shape)
    return X / np.linalg.norm(X)


def median_ms(fn: Callable[[], Any], reps: int, warm: int) -> tuple[float, float]:
    """(median, 10th percentile) ms of ``reps`` calls after ``warm`` calls."""
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return statistics.median(ts) * 1e3, ts[len(ts) // 10] * 1e3


def executors(dask: bool) -> list[tuple[str, Any]]:
    """One long-lived instance per executor kind, as a program (or ``get_executor``'s
    defaults) keeps them; ``executor="threads"`` may make a new one per call."""
    from gpucoded.executors import SerialExecutor, ThreadExecutor

    out: list[tuple[str, Any]] = [("serial", SerialExecutor()), ("threads", ThreadExecutor())]
    if dask:
        from gpucoded.executors.dask import local_executor

        out.append(("dask (in-process)", local_executor()))
    return out


def fixed_cost(reps: int, warm: int, dask: bool) -> list[dict]:
    """Median ms of a warm n=32 call per executor and family."""
    A, B = unit((32, 32), 1), unit((32, 32), 2)
    inst = make_code("chebyshev", m=4, P=8)
    rows = []
    for ex_name, ex in executors(dask):
        r = reps if not ex_name.startswith("dask") else max(10, reps // 4)
        for label, code, opts in FAMILIES:
            if code == "instance":
                def fn(ex=ex):
                    return gpucoded.coded_matmul(A, B, inst, executor=ex)
            else:
                def fn(ex=ex, code=code, opts=opts):
                    return gpucoded.coded_matmul(A, B, code, executor=ex, **opts)
            med, p10 = median_ms(fn, r, warm)
            rows.append({"executor": ex_name, "code": label, "ms": med, "p10": p10})
    return rows


def by_hand(code: Any, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """encode, the K worker GEMMs the decode uses one after another, decode of them (the
    arithmetic of a serial call without stragglers: it computes a worker when it reads
    its answer, so the P − K after the decode rule is met are not computed)."""
    At, Bt = code.encode(A, B)
    K = code.recovery_threshold
    prods = [At[w] @ Bt[w] for w in range(K)]
    return code.decode(prods, list(range(K)), shape=(A.shape[0], B.shape[1]))


def alternate(
    f: Callable[[], Any], g: Callable[[], Any], rounds: int
) -> tuple[float, float, float]:
    """(median ms of f, median ms of g, median of the per-round ratios f/g)."""
    f(), g()  # warm: caches, workspaces, threads
    tf, tg, ratio = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f()
        t1 = time.perf_counter()
        g()
        t2 = time.perf_counter()
        tf.append(t1 - t0)
        tg.append(t2 - t1)
        ratio.append((t1 - t0) / (t2 - t1))
    return statistics.median(tf) * 1e3, statistics.median(tg) * 1e3, statistics.median(ratio)


def alternate_cpu(f: Callable[[], Any], g: Callable[[], Any], rounds: int) -> dict[str, float]:
    """:func:`alternate`, with the process's CPU time of each call too.

    On a shared machine a call that is preempted waits without using CPU time, so the
    CPU-time ratio (median of the per-round ratios) shows the work the two calls do
    when the wall-clock one is swamped by the load (the threads executor's CPU time
    is its workers' summed)."""
    f(), g()
    keys = ("tf", "tg", "ratio", "cf", "cg", "cpu_ratio")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(rounds):
        c0, t0 = time.process_time(), time.perf_counter()
        f()
        c1, t1 = time.process_time(), time.perf_counter()
        g()
        c2, t2 = time.process_time(), time.perf_counter()
        out["tf"].append((t1 - t0) * 1e3)
        out["tg"].append((t2 - t1) * 1e3)
        out["ratio"].append((t1 - t0) / (t2 - t1))
        out["cf"].append((c1 - c0) * 1e3)
        out["cg"].append((c2 - c1) * 1e3)
        out["cpu_ratio"].append((c1 - c0) / max(c2 - c1, 1e-9))
    return {k: statistics.median(v) for k, v in out.items()}


def end_to_end(sizes: Sequence[int], rounds: int) -> list[dict]:
    """coded_matmul (serial, chebyshev m=4 P=8) against the same arithmetic by hand."""
    code = make_code("chebyshev", m=4, P=8)
    rows = []
    try:  # both sides on one BLAS thread: on a shared machine a multi-threaded BLAS
        # waits for busy cores, and that noise, not the call, would set the ratio
        from threadpoolctl import threadpool_limits

        blas = threadpool_limits(1, user_api="blas")
    except ImportError:
        from contextlib import nullcontext

        blas = nullcontext()
    with blas:
        return _end_to_end(code, sizes, rounds, rows)


def _end_to_end(code: Any, sizes: Sequence[int], rounds: int, rows: list) -> list[dict]:
    for n in sizes:
        A, B = unit((n, n), 3), unit((n, n), 4)
        r = rounds if n <= 1024 else max(3, rounds // 4)
        tc, th, ratio = alternate(
            lambda A=A, B=B: gpucoded.coded_matmul(A, B, "chebyshev", m=4, P=8, executor="serial"),
            lambda A=A, B=B: by_hand(code, A, B),
            r,
        )
        rows.append({"n": n, "call_ms": tc, "hand_ms": th, "ratio": ratio, "rounds": r})
    return rows


def matvec(n: int, rounds: int) -> list[dict]:
    """CodedMatrix(M, chebyshev m=4, P=8) @ x against M @ x, with the process's BLAS
    threads and with BLAS on one thread (both sides alike); the default measured check
    (for one column: the exact check, itself a float64 M @ x) and ``check=None``."""
    from contextlib import nullcontext

    M, x = unit((n, n), 5), unit((n,), 6)
    rows = []
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    for blas in ("as is", "1 thread"):
        if blas == "1 thread" and threadpool_limits is None:
            continue
        for ex_name, ex in executors(False):
            ctx = nullcontext() if blas == "as is" else threadpool_limits(1, user_api="blas")
            with ctx:
                cm = gpucoded.CodedMatrix(M, "chebyshev", m=4, P=8, executor=ex)
                for check in ("probes", None):
                    r = alternate_cpu(
                        lambda cm=cm, check=check: cm.matmul(x, check=check), lambda: M @ x,
                        rounds,
                    )  # fmt: skip
                    rows.append({"executor": ex_name, "blas": blas, "n": n, "check": check,
                                 "coded_ms": r["tf"], "plain_ms": r["tg"], "ratio": r["ratio"],
                                 "coded_cpu": r["cf"], "plain_cpu": r["cg"],
                                 "cpu_ratio": r["cpu_ratio"]})  # fmt: skip
        K = cm.code.recovery_threshold
        for label, count in ((f"K={K} GEMVs by hand", K), (f"P={cm.code.P} GEMVs by hand", None)):
            with nullcontext() if blas == "as is" else threadpool_limits(1, user_api="blas"):
                r = alternate_cpu(gemvs_by_hand(cm, x, count), lambda: M @ x, rounds)
            rows.append({"executor": label, "blas": blas, "n": n, "check": "-",
                         "coded_ms": r["tf"], "plain_ms": r["tg"], "ratio": r["ratio"],
                         "coded_cpu": r["cf"], "plain_cpu": r["cg"],
                         "cpu_ratio": r["cpu_ratio"]})  # fmt: skip
    return rows


def gemvs_by_hand(cm: Any, x: np.ndarray, count: int | None = None) -> Callable[[], Any]:
    """The floor of ``cm @ x``: ``count`` (default P) worker GEMVs over M's encoded stack
    (kept by the operator) and x's encoded blocks, one after another, nothing else."""
    from gpucoded.operators import encode_side

    code = cm.code
    dims = code.grid.block_dims(cm.shape[0], cm.shape[1], 1)
    St = np.asarray(cm.encoded("A", cm.dtype, dims))
    Xt = encode_side(code, x[:, None], "B", dims)
    return lambda: [St[w] @ Xt[w] for w in range(code.P if count is None else count)]


def gpusim(reps: int, warm: int) -> list[dict]:
    """A warm call on device operands on the simulated device (table 4)."""
    import pytest

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _harness import cudasim

    rows = []
    with pytest.MonkeyPatch.context() as mp:
        sim = cudasim.install(mp)
        sim.max_delay = 0.0  # no injected straggling: the call's own cost
        try:
            rows = _gpusim_rows(sim, reps, warm)
        finally:
            sim.teardown()
    return rows


def _gpusim_rows(sim: Any, reps: int, warm: int) -> list[dict]:
    import cupy as cp

    A, B = cp.asarray(unit((32, 32), 1)), cp.asarray(unit((32, 32), 2))
    x = cp.asarray(unit((32,), 3))
    cm = gpucoded.CodedMatrix(A, "chebyshev", m=4, P=8)
    calls = [
        ("coded_matmul, default (chebyshev m=2 P=4)", lambda: gpucoded.coded_matmul(A, B)),
        ("coded_matmul, chebyshev m=4 P=8",
         lambda: gpucoded.coded_matmul(A, B, "chebyshev", m=4, P=8)),
        ("CodedMatrix(chebyshev m=4 P=8) @ x", lambda: cm @ x),
    ]  # fmt: skip
    rows = []
    for label, fn in calls:
        for _ in range(warm):
            fn()
        cp.cuda.Device().synchronize()
        before = dict(sim.stats)
        cpu, wall = [], []
        for _ in range(reps):
            t0, w0 = time.thread_time(), time.perf_counter()
            fn()
            cpu.append(time.thread_time() - t0)
            wall.append(time.perf_counter() - w0)
        per = {k: (sim.stats.get(k, 0) - before.get(k, 0)) / reps
               for k in ("host_sync", "pool_grow")}  # fmt: skip
        rows.append({"call": label, "host_ms": statistics.median(cpu) * 1e3,
                     "wall_ms": statistics.median(wall) * 1e3, **per})  # fmt: skip
    return rows


def _us(fn: Callable[[], Any], reps: int) -> float:
    return median_ms(fn, reps, 20)[0] * 1e3


#: (label, name, options) of the tiny-stack table.
TINY_CODES = [
    ("polydot p=2 q=2 P=12", "polydot", {"p": 2, "q": 2, "P": 12}),
    ("chebyshev m=4 P=8", "chebyshev", {"m": 4, "P": 8}),
]


def paths(sizes: Sequence[int], reps: int) -> list[dict]:
    """µs of encode and decode with the NumPy matmuls of tiny stacks and with the loops."""
    from threadpoolctl import threadpool_limits

    from gpucoded.codes import dispatch

    rows = []
    saved = dispatch.HOST_LOOPS_FROM
    try:
        with threadpool_limits(1):
            for n in sizes:
                A, B = unit((n, n), 1), unit((n, n), 2)
                for label, name, kw in TINY_CODES:
                    code = make_code(name, **kw)
                    rb, cb, db = code.grid.block_dims(n, n, n)
                    K = code.recovery_threshold
                    At, Bt = code.encode(A, B)
                    prods = [At[w] @ Bt[w] for w in range(K)]
                    row = {"n": n, "code": label, "entries": code.P * cb * (rb + db)}
                    for path, thr in (("numpy", 1 << 62), ("loops", 0)):
                        dispatch.HOST_LOOPS_FROM = thr
                        row[f"enc_{path}"] = _us(lambda c=code, A=A, B=B: c.encode(A, B), reps)
                        row[f"dec_{path}"] = _us(
                            lambda c=code, p=prods, S=list(range(K)), n=n: c.decode(
                                p, S, shape=(n, n)
                            ),
                            reps,
                        )
                    rows.append(row)
    finally:
        dispatch.HOST_LOOPS_FROM = saved
    return rows


def exact_check(sizes: Sequence[int], reps: int) -> list[dict]:
    """µs of the measured check of a product C ≈ AB, exact and with probes."""
    from threadpoolctl import threadpool_limits

    from gpucoded import probes

    rows = []
    saved = probes.EXACT_BELOW
    try:
        with threadpool_limits(1):
            for dtype in ("float64", "float32"):
                for n in sizes:
                    A, B = unit((n, n), 1).astype(dtype), unit((n, n), 2).astype(dtype)
                    C = A @ B
                    how = "exact" if n**3 <= saved else "probes"
                    row = {"dtype": dtype, "n": n, "default": how}
                    for how, thr in (("exact", 1 << 62), ("probes", 0)):
                        probes.EXACT_BELOW = thr
                        row[how] = _us(lambda C=C, A=A, B=B: probes.measure(C, A, B), reps)
                    rows.append(row)
    finally:
        probes.EXACT_BELOW = saved
    return rows


#: (label, depth, module, attribute) of the steps of table 7; a class attribute is
#: given as "Class.method". Depth 0 steps are disjoint; deeper ones run inside the step
#: above them.
STEPS = [
    ("validation (shapes, dtypes, plan)", 0, "gpucoded.api", "check_inner"),
    ("validation (shapes, dtypes, plan)", 0, "gpucoded.api", "matmul_plan"),
    ("validation (shapes, dtypes, plan)", 0, "gpucoded.api", "check_operands"),
    ("code resolution and call set-up", 0, "gpucoded.api", "set_up"),
    ("operand norms and means", 0, "gpucoded.api", "operand_norms"),
    ("operand norms and means", 0, "gpucoded.api", "operands"),
    ("coded product (run_product)", 0, "gpucoded.api", "run_product"),
    ("encode", 1, "gpucoded.codes.dispatch", "encode"),
    ("start the run", 1, "gpucoded.executors.local", "SerialExecutor.start"),
    ("workers' GEMMs, collection, answer checks", 1, "gpucoded.pipeline", "collect"),
    ("answer checks", 2, "gpucoded.pipeline", "answer_problem"),
    ("decode and guard", 1, "gpucoded.pipeline", "decode"),
    ("combine the answers", 2, "gpucoded.codes.dispatch", "combine"),
    ("decoder's data-aware choice", 2, "gpucoded.codes.decoding", "DecodeWeights.choose"),
    ("bounds and model estimate", 2, "gpucoded.codes.decoding", "DecodeInfo.of"),
    ("measured check", 2, "gpucoded.probes", "measure"),
    ("accuracy guard (the rule, the report)", 2, "gpucoded.pipeline", "apply_guard"),
    ("delivery", 0, "gpucoded.api", "deliver"),
]


def steps(reps: int, warm: int) -> list[dict]:
    """µs medians per call of each step of :data:`STEPS` (serial executor, n = 32)."""
    import importlib

    from gpucoded.executors import SerialExecutor

    spent: dict[str, float] = {}
    saved = []

    def timed(label: str, fn: Callable) -> Callable:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0

        return wrapper

    for label, _, mod, attr in STEPS:
        owner: Any = importlib.import_module(mod)
        name = attr
        if "." in attr:
            cls, name = attr.split(".")
            owner = getattr(owner, cls)
        fn = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        saved.append((owner, name, fn))
        if isinstance(fn, classmethod):
            setattr(owner, name, classmethod(timed(label, fn.__func__)))
        else:
            setattr(owner, name, timed(label, fn))
    A, B = unit((32, 32), 1), unit((32, 32), 2)
    ex = SerialExecutor()
    rows = []
    try:
        for label, code, opts in FAMILIES:
            code_ = make_code("chebyshev", m=4, P=8) if code == "instance" else code
            per: dict[str, list[float]] = {}
            for i in range(warm + reps):
                spent.clear()
                t0 = time.perf_counter()
                gpucoded.coded_matmul(A, B, code_, executor=ex, **opts)
                total = time.perf_counter() - t0
                if i >= warm:
                    per.setdefault("total", []).append(total)
                    for lab, *_ in STEPS:
                        per.setdefault(lab, []).append(spent.get(lab, 0.0))
            rows.append({"code": label, **{k: statistics.median(v) * 1e6 for k, v in per.items()}})
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=200, help="warm calls per fixed-cost cell")
    ap.add_argument("--warm", type=int, default=5, help="calls before timing")
    ap.add_argument("--rounds", type=int, default=20, help="alternating rounds (tables 2, 3)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[256, 768, 2048])
    ap.add_argument("--matvec-n", type=int, default=2000)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--tiny-sizes", type=int, nargs="*", default=[32, 48, 64, 96, 128])
    ap.add_argument("--only", choices=["fixed", "hand", "matvec", "gpusim", "paths", "exact",
                                       "steps"],
                    nargs="*")  # fmt: skip
    args = ap.parse_args(argv)
    only = set(args.only or ["fixed", "hand", "matvec"])
    print(f"gpucoded from {gpucoded.__file__}")
    #: section -> (rows, [(header, key, format)]); formats: "" text, ".3f", ...; rows are
    #: made lazily, printed as they come
    tables: dict[str, tuple[Callable[[], Any], list[tuple[str, str, str]]]] = {
        "fixed": (lambda: fixed_cost(args.reps, args.warm, not args.no_dask),
                  [("executor", "executor", ""), ("code", "code", ""),
                   ("ms per warm call (n=32): median", "ms", ".3f"),
                   ("10th percentile", "p10", ".3f")]),
        "hand": (lambda: end_to_end(args.sizes, args.rounds),  # BLAS 1 thread, serial
                 [("n", "n", "d"), ("coded_matmul ms", "call_ms", ".2f"),
                  ("by hand ms", "hand_ms", ".2f"), ("ratio (median of rounds)", "ratio", ".3f"),
                  ("rounds", "rounds", "d")]),
        "matvec": (lambda: matvec(args.matvec_n, args.rounds * 5),
                   [("executor", "executor", ""), ("BLAS", "blas", ""), ("check", "check", ""),
                    ("n", "n", "d"), ("CodedMatrix @ x ms", "coded_ms", ".3f"),
                    ("M @ x ms", "plain_ms", ".3f"), ("ratio", "ratio", ".2f"),
                    ("CPU ms: coded", "coded_cpu", ".3f"), ("CPU ms: plain", "plain_cpu", ".3f"),
                    ("CPU ratio", "cpu_ratio", ".2f")]),
        "paths": (lambda: paths(args.tiny_sizes, args.reps),
                  [("n", "n", "d"), ("code", "code", ""), ("stack entries", "entries", "d"),
                   ("encode µs: numpy", "enc_numpy", ".1f"),
                   ("encode µs: loops", "enc_loops", ".1f"),
                   ("decode µs: numpy", "dec_numpy", ".1f"),
                   ("decode µs: loops", "dec_loops", ".1f")]),
        "exact": (lambda: exact_check(args.tiny_sizes, args.reps),
                  [("dtype", "dtype", ""), ("n", "n", "d"), ("exact µs", "exact", ".1f"),
                   ("probes µs", "probes", ".1f"), ("default", "default", "")]),
        "gpusim": (lambda: gpusim(args.reps, args.warm),
                   [("call (simulated device, n=32)", "call", ""),
                    ("host CPU ms: median", "host_ms", ".3f"),
                    ("wall ms: median", "wall_ms", ".3f"),
                    ("host syncs per call", "host_sync", ".2f"),
                    ("pool growths per call", "pool_grow", ".2f")]),
    }  # fmt: skip
    for name in ("fixed", "hand", "matvec", "paths", "exact", "steps", "gpusim"):
        if name not in only:
            continue
        if name == "steps":
            print_steps(steps(args.reps, args.warm))
            continue
        make, cols = tables[name]
        print("\n| " + " | ".join(h for h, _, _ in cols) + " |")
        print("|" + "".join("---|" if f == "" else "---:|" for _, _, f in cols))
        for r in make():
            print("| " + " | ".join(format(r[k], f) for _, k, f in cols) + " |", flush=True)


def print_steps(rows: list[dict]) -> None:
    """Table 7: a column per family, a row per step (indented by its depth)."""
    print("\n| step (serial executor, n = 32; µs median per call) | "
          + " | ".join(r["code"] for r in rows) + " |")  # fmt: skip
    print("|---|" + "---:|" * len(rows))
    labels = list(dict.fromkeys(lab for lab, *_ in STEPS))
    depth = {lab: d for lab, d, *_ in STEPS}
    for lab in ["total", *labels]:
        name = "whole call" if lab == "total" else "&nbsp;&nbsp;" * depth[lab] + lab
        print(f"| {name} | " + " | ".join(f"{r[lab]:.1f}" for r in rows) + " |")
    outside = [r["total"] - sum(r[lab] for lab in labels if depth[lab] == 0) for r in rows]
    print("| between the steps (coded_matmul's own lines) | "
          + " | ".join(f"{v:.1f}" for v in outside) + " |")  # fmt: skip

if __name__ == "__main__":
    main()
