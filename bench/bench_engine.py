r"""Engine benchmark: time-to-result of every scheme under simulated stragglers.

For each latency model (shifted exponential, Pareto, bimodal) and each (m, P), every
repetition draws P finish times :math:`T_1..T_P` (seeded) and runs
``coded_matmul`` with ``delays=T`` on a real executor (threads by default, or an
in-process Dask ``LocalCluster``). All schemes store 1/m of A and of B per worker
and see the same draws (a scheme with P' < P workers uses :math:`T_1..T_{P'}`):

* Uncoded (P' = m), Replication (r = P/m), MatDot, ε-MatDot, PolyDot, ε-PolyDot.

Reported per scheme (medians over repetitions, robust to a busy machine):

* ``T_(K)``: when the scheme could decode given the injected times
  (:func:`gpucoded.stragglers.decodable_time`: the K-th order statistic for
  threshold codes, first full coverage for replication);
* ``wait``: measured ``CallInfo.time_to_decode`` (run start → enough answers);
* ``floor``: the same draw through a bare thread-and-queue scheme (plain NumPy
  threads doing the same GEMMs, no library): the machine's own latency under its
  current load;
* ``overhead``: ``wait / T_(K) − 1``, what the machine and the engine (thread
  wake-ups, the GEMMs themselves, queueing) add; the target is below 5 %;
* ``engine``: ``(wait − floor) / T_(K)``, the part the library adds over the bare
  scheme;
* ``enc+dec``: the rest of the call: encode, decode weights (an mpmath solve the
  first time a set of answering workers is seen, cached after; shown as
  ``(weights)``) and the decode GEMM;
* ``total``: wall clock of the whole call (encode + wait + decode);
* ``error``: :math:`\|\hat C-C\|_{\max}` against the extended-precision product, for
  unit-Frobenius-norm Gaussian inputs, and the a-priori ``bound``.

Then the speed-up of ε-MatDot over MatDot (ratio of median totals) and the error it
costs. Usage::

    python bench/bench_engine.py                 # threads, prints a markdown table
    python bench/bench_engine.py --executor dask --reps 3
    python bench/bench_engine.py --wait 0.1      # latency cost of wait_for_accuracy
    python bench/bench_engine.py --policies --configs 4,8 --plot bench/img/x.png

``--wait TAU`` (:func:`wait_bench`): for codes whose first K arrivals are often
predicted inaccurate (:func:`gpucoded.guard.accurate_enough`) and for
well-conditioned ones, each draw of a shifted-exponential latency model runs
``coded_matmul`` without and with ``wait_for_accuracy=TAU``; the table gives the
time-to-result, the relative error :math:`\max|\hat C-AB|/\max|AB|` against the
extended-precision product, and the warnings, over all draws and over the draws
whose first K are flagged.
"""

from __future__ import annotations

import argparse
import math
import os
import queue
import statistics
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# one BLAS thread per simulated worker (a worker is one core), also for the bare
# floor; must be set before NumPy loads (the thread executor limits BLAS itself)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpucoded import InaccurateResultWarning, coded_matmul, guard, make_code  # noqa: E402
from gpucoded.autocode import choose_code  # noqa: E402
from gpucoded.codes import Code  # noqa: E402
from gpucoded.executors import Executor, get_executor  # noqa: E402
from gpucoded.formats import get_format  # noqa: E402
from gpucoded.reference import exact_product  # noqa: E402
from gpucoded.stragglers import (  # noqa: E402
    Bimodal,
    LatencyModel,
    OneSlowDevice,
    Pareto,
    ShiftedExponential,
    decodable_time,
    hedged_time,
)

SCHEMES = ["uncoded", "replication", "matdot", "approx_matdot", "polydot", "approx_polydot"]


def models(scale: float = 1.0) -> dict[str, LatencyModel]:
    """The latency models, times multiplied by ``scale`` (base 0.1 s)."""
    b = 0.1 * scale
    return {
        f"shifted-exp({b:g}, {b / 2:g})": ShiftedExponential(shift=b, scale=b / 2),
        f"pareto({b:g}, 2.5)": Pareto(scale=b, alpha=2.5),
        f"bimodal({b:g}, 25% x5)": Bimodal(base=b, fraction=0.25, slowdown=5.0, jitter=0.2),
    }


@dataclass
class Stats:
    tk: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    err: list[float] = field(default_factory=list)
    bound: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)


def bare_floor(finish: list[float], k: int, At: np.ndarray, Bt: np.ndarray) -> float:
    """Seconds until a bare thread-and-queue scheme (plain NumPy, no library) receives
    its k-th product when worker w starts its GEMM ``At[w] @ Bt[w]`` at ``finish[w]``:
    the machine's own latency under its current load, the floor any thread-based
    engine doing the same work sits on."""
    stop = threading.Event()
    q: queue.SimpleQueue = queue.SimpleQueue()
    t0 = time.perf_counter()

    def worker(w: int, t: float) -> None:
        if not stop.wait(max(0.0, t0 + t - time.perf_counter())):
            q.put(At[w] @ Bt[w])

    threads = [threading.Thread(target=worker, args=(w, t)) for w, t in enumerate(finish)]
    for th in threads:
        th.start()
    for _ in range(k):
        q.get()
    dt = time.perf_counter() - t0
    stop.set()
    for th in threads:
        th.join()
    return dt


def make_scheme(name: str, m: int, P: int) -> Code | None:
    """The scheme at storage 1/m with (up to) P workers, or None if P is too small."""
    try:
        if name == "uncoded":
            return make_code(name, m=m)
        if name == "replication":
            return make_code(name, m=m, P=P) if P % m == 0 else None
        return make_code(name, m=m, P=P)
    except ValueError:
        return None


def run(args: argparse.Namespace) -> str:
    ex = make_executor(args.executor)
    n = args.n
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n))
    B = rng.standard_normal((n, n))
    A /= np.linalg.norm(A)
    B /= np.linalg.norm(B)
    Cx = exact_product(A, B)
    lines = [
        f"Executor: {ex.name}; n = {n}; {args.reps} repetitions per cell; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; "
        "times in ms (medians); error = max-abs error, unit-norm inputs.",
        "",
        "| model | m | P | scheme | P' | K | T_(K) | floor | wait | overhead | engine "
        "| enc+dec | (weights) | total | error | bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for mname, model in models(args.scale).items():
        for m, P in args.configs:
            codes = {s: make_scheme(s, m, P) for s in SCHEMES}
            stacks = {}
            for s, c in codes.items():  # warm the decode-weight caches and the pool
                if c is not None:
                    coded_matmul(A, B, c, executor=ex)
                    stacks[s] = c.encode(A, B)
            stats = {s: Stats() for s in SCHEMES}
            for rep in range(args.reps):
                T = model.sample(P, seed=1000 * rep + 17)
                for s, c in codes.items():
                    if c is None:
                        continue
                    d = [float(x) for x in T[: c.P]]
                    tk, used = decodable_time(c, d)
                    stats[s].floor.append(bare_floor(d, len(used), *stacks[s]))
                    t0 = time.perf_counter()
                    C, info = coded_matmul(A, B, c, delays=d, executor=ex, return_info=True)
                    st = stats[s]
                    st.total.append(time.perf_counter() - t0)
                    st.tk.append(tk)
                    st.wait.append(info.time_to_decode)
                    st.err.append(float(np.abs(C - Cx).max()))
                    st.bound.append(info.error_bound)
                    st.weights.append(info.decode.weights_time)
            for s, c in codes.items():
                if c is None:
                    lines.append(f"| {mname} | {m} | {P} | {s} |" + " – |" * 12)
                    continue
                st = stats[s]
                med = statistics.median
                tk, wait, tot = med(st.tk), med(st.wait), med(st.total)
                over = med(w / t - 1 for w, t in zip(st.wait, st.tk, strict=True))
                eng = med((w - f) / t for w, f, t in zip(st.wait, st.floor, st.tk, strict=True))
                rest = med(t - w for t, w in zip(st.total, st.wait, strict=True))
                lines.append(
                    f"| {mname} | {m} | {P} | {s} | {c.P} | {c.recovery_threshold} | "
                    f"{1e3 * tk:.1f} | {1e3 * med(st.floor):.1f} | {1e3 * wait:.1f} | "
                    f"{100 * over:+.1f}% | {100 * eng:+.1f}% | "
                    f"{1e3 * rest:.1f} | {1e3 * med(st.weights):.1f} | "
                    f"{1e3 * tot:.1f} | {max(st.err):.1e} | "
                    f"{max(st.bound):.1e} |"
                )
            md, amd = stats["matdot"], stats["approx_matdot"]
            if md.total and amd.total:
                med = statistics.median
                summary.append(
                    f"| {mname} | {m} | {P} | {med(md.tk) / med(amd.tk):.2f}x | "
                    f"{med(md.total) / med(amd.total):.2f}x | "
                    f"{max(md.err):.1e} | {max(amd.err):.1e} |"
                )
    lines += [
        "",
        "ε-MatDot vs MatDot (same m, P): speed-up of the median time-to-result, and errors.",
        "",
        "| model | m | P | ideal (T_(K) ratio) | measured | MatDot error | ε-MatDot error |",
        "|---|---|---|---|---|---|---|",
        *summary,
    ]
    return "\n".join(lines)


def latency(args: argparse.Namespace, P: int = 9, reps: int = 20) -> str:
    """Per-answer latency of the executor alone: worker w is due at 100 + 10·w ms; the
    lateness of each answer's arrival at the caller (median, 90th percentile)."""
    ex = make_executor(args.executor)
    rng = np.random.default_rng(1)
    c = args.n // 3
    At, Bt = rng.standard_normal((P, args.n, c)), rng.standard_normal((P, c, args.n))
    late = []
    for _ in range(reps):
        d = [0.1 + 0.01 * w for w in range(P)]
        t0 = time.perf_counter()
        with ex.start(At, Bt, workers=range(P), delays=d) as r:
            for a in r:
                late.append(time.perf_counter() - t0 - d[a.worker])
    q = np.percentile(np.array(late) * 1e3, [50, 90])
    return (
        f"Executor {ex.name}: answer lateness over {len(late)} answers (P = {P}, "
        f"GEMM {args.n}x{c}x{args.n}): median {q[0]:.2f} ms, 90th percentile {q[1]:.2f} ms "
        f"(load average {os.getloadavg()[0]:.1f})"
    )


def make_executor(name: str) -> Executor:
    """``threads``, ``serial``, ``dask`` (in-process LocalCluster), or ``dask-processes``:
    a LocalCluster of separate worker processes (2 workers x 1 thread, one BLAS thread
    each), made once."""
    if name != "dask-processes":
        return get_executor(name)
    if "procs" not in _CLUSTERS:
        import distributed

        from gpucoded.executors.dask import DaskExecutor

        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        _CLUSTERS["procs"] = (cluster, DaskExecutor(distributed.Client(cluster)))
    return _CLUSTERS["procs"][1]


_CLUSTERS: dict[str, tuple] = {}


def breakdown(args: argparse.Namespace, P: int = 9, m: int = 3) -> str:
    """Where the time of one call goes, per phase (medians over calls, ms).

    MatDot (m, P) at n, worker w due at ``T_w`` (shifted exponential, scale ``--scale``):
    ``start`` (scatter + submit, the executor's ``start()``), ``sched`` (task start on
    its worker after the run started), ``late`` (K-th answer's arrival at the caller
    minus T_(K) minus its GEMM time: wake-up + notification + result transfer),
    ``fetch`` (arrival − the worker's end time, both on the run's clock), ``cancel``
    (the caller's cost of ``Run.cancel``), ``wait`` vs ``T_(K)`` and the bare floor.
    """
    ex = make_executor(args.executor)
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((args.n, args.n)), rng.standard_normal((args.n, args.n))
    code = make_code("matdot", m=m, P=P)
    At, Bt = code.encode(A, B)
    K = code.recovery_threshold
    gemm = min(timed(lambda: At[0] @ Bt[0]) for _ in range(5))
    model = models(args.scale)[next(iter(models(args.scale)))]
    rows: dict[str, list[float]] = {k: [] for k in ("start", "sched", "late", "fetch",
                                                      "cancel", "wait", "tk", "floor")}  # fmt: skip
    pre = getattr(ex, "scatter_stacks", None) if args.prescatter else None
    handles = pre(At, Bt) if pre is not None else None
    for rep in range(args.reps + 1):
        d = [float(x) for x in model.sample(P, seed=500 + rep)]
        floor = bare_floor(d, K, At, Bt)
        t0 = time.perf_counter()
        if handles is not None:  # blocks kept on the workers (CodedMatrix-like reuse)
            run = ex.start(handles, None, workers=range(P), delays=d)
        else:
            run = ex.start(At, Bt, workers=range(P), delays=d)
        t_start = time.perf_counter() - t0
        got = []
        for a in run:
            got.append((time.perf_counter() - t0, a))
            if len(got) == K:
                break
        wait = time.perf_counter() - t0
        t1 = time.perf_counter()
        run.cancel()
        t_cancel = time.perf_counter() - t1
        if rep == 0:
            continue  # warm-up
        tk = sorted(d)[K - 1]
        rows["start"].append(t_start)
        rows["sched"].append(statistics.median(a.start for _, a in got))
        rows["late"].append(wait - tk - gemm)
        rows["fetch"].append(statistics.median(t - a.end for t, a in got))
        rows["cancel"].append(t_cancel)
        rows["wait"].append(wait)
        rows["tk"].append(tk)
        rows["floor"].append(floor)
    med = {k: 1e3 * statistics.median(v) for k, v in rows.items()}
    over = statistics.median(w / f - 1 for w, f in zip(rows["wait"], rows["floor"], strict=True))
    rt = dask_round_trips(ex, (At.shape[1], Bt.shape[2]))
    name = "dask (processes)" if args.executor == "dask-processes" else ex.name
    name += ", pre-scattered" if handles is not None else ""
    return (
        f"| {name} | "
        f"{args.scale * 0.1:g} | {med['start']:.2f} | {med['sched']:.2f} | "
        f"{1e3 * gemm:.2f} | {med['fetch']:.2f} | {med['late']:.2f} | {med['cancel']:.2f} | "
        f"{med['tk']:.1f} | {med['floor']:.1f} | {med['wait']:.1f} | {100 * over:+.1f}% | "
        f"{rt} |"
    )


def dask_round_trips(ex: Executor, shape: tuple[int, int], reps: int = 15) -> str:
    """Dask's own per-answer floor: median ms of a no-op task's submit → result, and
    of a task returning one answer-sized array (the transfer included)."""
    client = getattr(ex, "client", None)
    if client is None:
        return "–"
    out = []
    for fn, arg in ((int, 0), (np.ones, shape)):
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            client.submit(fn, arg, pure=False).result()
            ts.append(time.perf_counter() - t0)
        out.append(1e3 * statistics.median(ts))
    return f"{out[0]:.2f} / {out[1]:.2f}"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


#: (label, code name, m, P, dtype, down) of the wait_for_accuracy benchmark; the
#: last ``down`` workers never answer (for Chebyshev: the nodes nearest −1)
WAIT_CASES = [
    ("ε-MatDot", "approx_matdot", 3, 9, "float32", 0),
    ("Chebyshev", "chebyshev", 8, 24, "float32", 4),
    ("MatDot", "matdot", 6, 30, "float32", 0),
    ("Chebyshev", "chebyshev", 8, 24, "float32", 0),
    ("MatDot", "matdot", 3, 9, "float64", 0),
]


def ideal_accurate_time(code: Code, d: list[float], fmt: object) -> tuple[bool, float]:
    """Offline, from the injected times ``d``: whether the first K arrivals are
    predicted inaccurate, and the earliest arrival time at which the answers in hand
    hold a set :func:`gpucoded.guard.accurate_enough` accepts (what an ideal
    ``wait_for_accuracy`` waits for; inf if none)."""
    order = sorted(range(len(d)), key=lambda w: d[w])
    K = code.recovery_threshold
    flagged = not guard.accurate_enough(code, order[:K], fmt)
    for j in range(K, len(order) + 1):
        S = guard.choose_answers(code, order[:j], fmt, needed=K)
        if guard.accurate_enough(code, S, fmt):
            return flagged, d[order[j - 1]]
    return flagged, math.inf


def timed_call(A, B, code: Code, d, ex, tau, cold: bool) -> dict:
    """One ``coded_matmul`` (weights cache cleared first if ``cold``): time, answers,
    whether it warned, how the set was chosen."""
    if cold:
        code._cache.clear()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always", InaccurateResultWarning)
        t0 = time.perf_counter()
        C, info = coded_matmul(
            A, B, code, delays=d, executor=ex, wait_for_accuracy=tau, return_info=True
        )
        total = time.perf_counter() - t0
    warned = any(issubclass(w.category, InaccurateResultWarning) for w in rec)
    return dict(C=C, total=total, wait=info.time_to_decode, used=len(info.used),
                warned=warned, waited="waited" in info.selection)  # fmt: skip


def wait_case(args, ex, label, name, m, P, dtype, down) -> list[str]:
    """Two table rows (without / with ``wait_for_accuracy=args.wait``) for one code."""
    kw = {"dtype": dtype} if name.startswith("approx") else {}
    code = make_code(name, m=m, P=P, **kw)
    fmt = get_format(dtype)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((args.n, args.n)).astype(dtype)
    B = rng.standard_normal((args.n, args.n)).astype(dtype)
    E = exact_product(A, B).astype(np.float64)
    scale = float(np.abs(E).max())
    model = ShiftedExponential(shift=0.1 * args.scale, scale=0.05 * args.scale)
    draws = [[float(x) for x in model.sample(P, seed=7000 + r)] for r in range(args.reps)]
    for d in draws:
        d[P - down :] = [math.inf] * down
    ideal = [ideal_accurate_time(code, d, fmt) for d in draws]
    flagged = [i for i, (f, _) in enumerate(ideal) if f]
    coded_matmul(A, B, code, executor=ex, allow_inaccurate=True)  # warm the pool
    rows, base = [], None
    for tau in (None, args.wait):
        res = []
        for d in draws:
            r = timed_call(A, B, code, d, ex, tau, cold=not args.warm)
            r["err"] = float(np.abs(r.pop("C") - E).max()) / scale
            res.append(r)
        base = base or res
        label_ = f"{label} m={m} P={P} {dtype}" + (
            f", workers {P - down}–{P - 1} down" if down else ""
        )
        rows.append(wait_row(label_, code, tau, res, base, draws, ideal, flagged))
    return rows


def wait_row(label, code, tau, res, base, draws, ideal, flagged) -> str:
    """One markdown row: medians over all draws and over the flagged ones (ms)."""
    med = statistics.median
    K = code.recovery_threshold
    tk = med(sorted(d)[K - 1] for d in draws)

    def over(ix, key, f=med):
        return f(res[i][key] for i in ix) if ix else math.nan

    allx = range(len(res))

    def extra(ix):  # median over the draws ix of (this mode − no wait), paired per draw
        return med(res[i]["total"] - base[i]["total"] for i in ix) if ix else math.nan

    t_acc = med(ideal[i][1] - sorted(draws[i])[K - 1] for i in flagged) if flagged else math.nan
    mode = "–" if tau is None else f"{tau:g} s"
    return (
        f"| {label} | {K} | {len(flagged)}/{len(res)} | {mode} | "
        f"{1e3 * tk:.0f} | {1e3 * over(allx, 'total'):.0f} | {1e3 * extra(allx):+.0f} | "
        f"{1e3 * over(flagged, 'total'):.0f} | {1e3 * extra(flagged):+.0f} | "
        f"{1e3 * t_acc:.0f} | "
        f"{over(allx, 'err'):.1e} | {over(allx, 'err', max):.1e} | "
        f"{over(flagged, 'err', max):.1e} | {sum(r['warned'] for r in res)} | "
        f"{sum(r['err'] > 1e-2 and not r['warned'] for r in res)} | "
        f"{sum(r['waited'] for r in res)} | {over(allx, 'used', max)} |"
    )


WAIT_HEAD = (
    "| code | K | flagged | wait_for_accuracy | T_(K) | total (all) | extra (all) "
    "| total (flagged) | extra (flagged) | ideal extra | rel. err median | max "
    "| max (flagged) | warned | silent > 1e-2 | waited | max used |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def wait_bench(args: argparse.Namespace) -> str:
    """The wait_for_accuracy table for :data:`WAIT_CASES` (see the module docstring)."""
    ex = make_executor(args.executor)
    lines = [
        f"Executor: {ex.name}; n = {args.n}; {args.reps} draws of shifted-exp"
        f"({0.1 * args.scale:g}, {0.05 * args.scale:g}) per case; weights "
        f"{'cached' if args.warm else 'solved on every call (cache cleared)'}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; "
        "times in ms (medians).",
        "",
        WAIT_HEAD,
    ]
    for case in WAIT_CASES:
        lines += wait_case(args, ex, *case)
    return "\n".join(lines)


# ------------------------------------------------- policies side by side (issue 24)
#: what a user would do anyway (wait for all, hedge, replicate) and the codes, at one P
POLICIES = ["uncoded", "hedged", "replication", "matdot", "chebyshev", "approx_matdot"]


def policy_models(scale: float = 1.0) -> dict[str, LatencyModel]:
    """The three latency models of :func:`models` and "one slow device": worker 0 (a
    first-copy worker of every scheme) 5x slower, the others base with 10 % jitter."""
    b = 0.1 * scale
    return {
        **models(scale),
        f"one-slow-device({b:g}, x5)": OneSlowDevice(base=b, slowdown=5.0, worker=0, jitter=0.1),
    }


def make_policy(name: str, m: int, P: int) -> Code:
    """The policy at storage 1/m with P workers (uncoded: its m; replication: r = P/m)."""
    if name == "uncoded":
        return make_code(name, m=m)
    if name == "replication":
        if P % m:
            raise ValueError(f"replication needs P a multiple of m; got m={m}, P={P}")
        return make_code(name, m=m, P=P)
    return make_code(name, m=m, P=P)


def ideal_time(code: Code, T: list[float]) -> float:
    """Time to result from the injected latencies alone (no GEMM, no engine):
    :func:`~gpucoded.stragglers.hedged_time` for hedged (the default rule),
    :func:`~gpucoded.stragglers.decodable_time` for the others."""
    if getattr(code, "hedged", False):
        return hedged_time(T, code.m, code.hedge_after)[0]
    return decodable_time(code, T)[0]


@dataclass
class PolicyStats:
    ideal: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    err: list[float] = field(default_factory=list)
    holders: list[int] = field(default_factory=list)  # workers given blocks
    sent: list[int] = field(default_factory=list)  # bytes the executor scattered


def policies_bench(args: argparse.Namespace) -> tuple[str, dict]:
    """Time-to-result and error of :data:`POLICIES` at one (m, P), per latency model.

    Every repetition draws P latencies T (seeded, the same for every policy); each
    policy runs ``coded_matmul(A, B, policy, delays=T)`` (uncoded: its m workers use
    T[:m]; hedged: a copy issued to worker w at t answers at t + GEMM + T[w]).
    Returns the markdown and the medians for the plot.
    """
    ex = make_executor(args.executor)
    m, P = args.configs[0]
    n = args.n
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    Cx = exact_product(A, B)
    An, Bn = rng.uniform(0.0, 1.0, (n, n)), rng.uniform(0.0, 1.0, (n, n))  # non-negative
    Cn = exact_product(An, Bn)
    codes = {s: make_policy(s, m, P) for s in POLICIES}
    err_nonneg = {}
    for s, c in codes.items():  # warm the weight caches and pools; error on non-negative data
        coded_matmul(A, B, c, executor=ex)
        C = coded_matmul(An, Bn, c, executor=ex)
        err_nonneg[s] = float(np.abs(C - Cn).max() / np.abs(Cn).max())
    flops = 2 * n * n * n / m
    store = 8 * 2 * n * n / m
    lines = [
        f"Executor: {ex.name}; m = {m}, P = {P}; n = {n} (float64; work per worker "
        f"{flops / 1e6:.0f} MFLOP, storage per worker holding blocks {store / 1e6:.2f} MB, "
        f"the same for every policy: all split A, B in m blocks); {args.reps} draws per "
        f"model; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; "
        "times in ms (medians over the draws); rel. error = max|Ĉ−AB|/max|AB| (max over "
        "the draws) for Gaussian A, B and once for uniform [0, 1) A, B (non-negative).",
        "",
        "| model | policy | P' | K | workers given blocks | MB sent | ideal | wait | total "
        "| vs hedged | rel. error (Gaussian) | rel. error (non-neg.) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    medians: dict[str, dict[str, float]] = {}
    winners = []
    autos = []
    s_auto = max(1, P // m - 1)  # the stragglers replication with P/m copies survives
    for mname, model in policy_models(args.scale).items():
        stats = {s: PolicyStats() for s in POLICIES}
        for rep in range(args.reps):
            T = [float(x) for x in model.sample(P, seed=1000 * rep + 17)]
            for s, c in codes.items():
                st = stats[s]
                d = T[: c.P]
                st.ideal.append(ideal_time(c, d))
                sent0 = getattr(ex, "bytes_sent", 0)
                t0 = time.perf_counter()
                C, info = coded_matmul(A, B, c, delays=d, executor=ex, return_info=True)
                st.total.append(time.perf_counter() - t0)
                st.sent.append(getattr(ex, "bytes_sent", 0) - sent0)
                st.wait.append(info.time_to_decode)
                st.err.append(float(np.abs(C - Cx).max() / np.abs(Cx).max()))
                hedge = info.hedge
                st.holders.append(c.m + len(hedge.reissued) if hedge is not None else c.P)
        med = statistics.median
        medians[mname] = {s: med(stats[s].total) for s in POLICIES}
        h = medians[mname]["hedged"]
        for s, c in codes.items():
            st = stats[s]
            mb = f"{med(st.sent) / 1e6:.2f}" if getattr(ex, "bytes_sent", None) is not None else "–"
            lines.append(
                f"| {mname} | {s} | {c.P} | {c.recovery_threshold} | {med(st.holders):g} | "
                f"{mb} | {1e3 * med(st.ideal):.0f} | {1e3 * med(st.wait):.0f} | "
                f"{1e3 * med(st.total):.0f} | {med(st.total) / h:.2f}x | "
                f"{max(st.err):.1e} | {err_nonneg[s]:.1e} |"
            )
        exact = [s for s in POLICIES if not codes[s].approximate]
        order = sorted(POLICIES, key=lambda s: medians[mname][s])
        best_exact = min(exact, key=lambda s: medians[mname][s])
        code_best = min(("matdot", "chebyshev", "approx_matdot"), key=lambda s: medians[mname][s])
        base_best = min(("uncoded", "hedged", "replication"), key=lambda s: medians[mname][s])
        t = medians[mname]
        winners.append(
            f"| {mname} | {order[0]} | {order[1]} ({t[order[1]] / t[order[0]]:.2f}x) | "
            f"{best_exact} | {code_best} vs {base_best}: "
            f"{t[code_best] / t[base_best]:.2f}x |"
        )
        autos.append(auto_row(mname, model, P, m, s_auto, n, t))
    lines += [
        "",
        "Per model: the fastest policy (median total), the runner-up and its ratio, the "
        "fastest exact one, and the best code against the best of what users do anyway "
        "(< 1: coding wins).",
        "",
        "| model | fastest | runner-up | fastest exact | best code vs best baseline |",
        "|---|---|---|---|---|",
        *winners,
        "",
        f'What `code="auto"` picks with `P={P}, stragglers={s_auto}` (rtol: working '
        f"precision; shape {n}³) and `latency=` the model "
        "(`gpucoded.autocode.choose_code`): its candidates at the chosen m, their expected "
        "time under the model (seeded draws; a draw is each worker's whole time for its "
        "piece) and their measured median total above (same policy at the same m).",
        "",
        "| model | auto picks | expected time per candidate (ms) | measured total (ms) "
        "| pick = measured fastest of its candidates? |",
        "|---|---|---|---|---|",
        *autos,
    ]
    return "\n".join(lines), medians


def auto_row(
    mname: str, model: LatencyModel, P: int, m: int, s: int, n: int, measured: dict[str, float]
) -> str:
    """One row: ``choose_code(P, s, "float64", latency=model)`` against the measurement."""
    choice = choose_code(P, s, "float64", shape=(n, n, n), latency=model)
    pick = f"{choice.code.name} m={choice.code.m}"
    exp = ", ".join(
        f"{k[0]} {1e3 * v:.0f}" for k, v in sorted(choice.expected_time.items(), key=lambda x: x[1])
    )
    names = [k[0] for k in choice.expected_time if k[1] == m and k[0] in measured]
    if choice.code.m != m or not names:
        return f"| {mname} | {pick} | {exp} | – | not at the benchmark's m = {m} |"
    meas = ", ".join(f"{k} {1e3 * measured[k]:.0f}" for k in sorted(names, key=measured.get))
    best = min(names, key=measured.get)
    agree = "yes" if best == choice.code.name else (
        f"no: {best} ({measured[choice.code.name] / measured[best]:.2f}x faster measured)"
    )  # fmt: skip
    return f"| {mname} | {pick} | {exp} | {meas} | {agree} |"


def hedge_demo(args: argparse.Namespace, late: float = 3.0) -> str:
    """Issue 24's check: one, then two, of the first m = 4 workers ``late`` s late;
    ``coded_matmul(A, B, "hedged", m=4, P=8, delays=...)`` on threads and on the
    in-process Dask cluster: wall time of the call, re-issues, bytes to spares, error."""
    rng = np.random.default_rng(5)
    A, B = rng.uniform(0, 1, (args.n, args.n)), rng.standard_normal((args.n, args.n))
    Cx = exact_product(A, B)
    rows = [
        f"n = {args.n} (A uniform [0, 1), B Gaussian), m = 4, P = 8, default hedge_after "
        f"rule; load average {os.getloadavg()[0]:.1f}.",
        "",
        "| executor | late workers | call (ms) | re-issued (task→spare @ ms) | MB to spares "
        "| rel. error |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("threads", "dask"):
        ex = make_executor(name)
        coded_matmul(A, B, "hedged", m=4, P=8, executor=ex)  # warm up
        for slow in ([1], [1, 2]):
            d = [late if w in slow else 0.0 for w in range(8)]
            t0 = time.perf_counter()
            C, info = coded_matmul(A, B, "hedged", m=4, P=8, delays=d, executor=ex,
                                   return_info=True)  # fmt: skip
            dt = time.perf_counter() - t0
            re = ", ".join(f"{r.task}→{r.worker} @ {1e3 * r.at:.0f}" for r in info.hedge.reissued)
            err = float(np.abs(C - Cx).max() / np.abs(Cx).max())
            rows.append(
                f"| {name} | {slow} ({late:g} s) | {1e3 * dt:.0f} | {re} | "
                f"{info.hedge.bytes_to_spares / 1e6:.2f} | {err:.1e} |"
            )
    return "\n".join(rows)


def plot_policies(medians: dict, path: Path, title: str) -> None:
    """Grouped bars: median time-to-result per policy, one group per latency model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(POLICIES)
    for i, s in enumerate(POLICIES):
        xs = [j + i * width for j in range(len(medians))]
        ax.bar(xs, [1e3 * medians[mn][s] for mn in medians], width, label=s)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(medians))])
    ax.set_xticklabels(list(medians), fontsize=8)
    ax.set_ylabel("median time to result (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


BREAKDOWN_HEAD = (
    "| executor | scale (s) | start | sched | GEMM | fetch | late | cancel | T_(K) | floor "
    "| wait | wait / floor − 1 | Dask round trip: no-op / answer |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--executor", default="threads", help="threads | dask | dask-processes | serial")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--scale", type=float, default=1.0, help="time scale of the latency models")
    p.add_argument(
        "--configs",
        type=lambda s: [tuple(int(x) for x in c.split(",")) for c in s.split(";")],
        default=[(3, 9), (4, 12)],
        help="'m,P;m,P' (default '3,9;4,12')",
    )
    p.add_argument("--out", type=Path, help="also write the table to this file")
    p.add_argument("--latency", action="store_true", help="only the per-answer latency")
    p.add_argument("--breakdown", action="store_true", help="only the per-phase times of one call")
    p.add_argument(
        "--prescatter",
        action="store_true",
        help="breakdown with the blocks scattered once (DaskExecutor.scatter_stacks)",
    )
    p.add_argument(
        "--wait", type=float, metavar="TAU",
        help="only the wait_for_accuracy benchmark, with a budget of TAU seconds",
    )  # fmt: skip
    p.add_argument("--warm", action="store_true", help="--wait with the weights cached")
    p.add_argument(
        "--policies", action="store_true",
        help="uncoded, hedged, replication and the codes side by side at the first m,P of "
        "--configs, with the one-slow-device model; --plot writes the bar chart",
    )  # fmt: skip
    p.add_argument("--plot", type=Path, help="--policies: PNG of the time per policy")
    p.add_argument(
        "--hedge-demo", action="store_true",
        help="code='hedged' with one and two of the first m workers 3 s late (threads, Dask)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.hedge_demo:
        print(hedge_demo(args))
        return
    if args.policies:
        table, medians = policies_bench(args)
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
        if args.plot:
            m, P = args.configs[0]
            plot_policies(medians, args.plot, f"{args.executor}, m={m}, P={P}, n={args.n}")
        return
    if args.wait is not None:
        table = wait_bench(args)
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
        return
    if args.latency:
        print(latency(args))
        return
    if args.breakdown:
        print(BREAKDOWN_HEAD)
        print(breakdown(args))
        return
    table = run(args)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
