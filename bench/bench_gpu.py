"""GPU benchmarks: fused encode/decode bandwidth and end-to-end coded_matmul.

Two entry points:

* ``pytest bench/bench_gpu.py`` (pytest-benchmark; tests marked ``gpu``, skipped
  without CuPy or a device);
* ``python bench/bench_gpu.py [--out DIR] [--quick]``: the summary used by
  ``bench/device_check.sh``, timed with CUDA events, written as JSON and CSV.

Metrics
-------
* Bandwidth: bytes moved / time, counting every byte read and written once
  (encode reads ``n*k`` elements and writes ``P*rb*cb``; decode reads
  ``R*rb*db`` and writes ``n*l``). The reference is a device-to-device copy
  (``cudaMemcpyAsync``) of the encode's input bytes measured in the same run,
  counted the same way (read + write). Target: ratio >= 0.80 for n >= 4096.
* End-to-end: ``coded_matmul(A, B, code="matdot", m=m)`` with the CUDA stream
  executor, wall time from the call to its result being ready (the caller's stream
  synchronised, not the device: abandoned workers still running on their own streams
  are not waited for), against the sum of the worker GEMM times (each worker's GEMM
  timed alone with events) and against a single ``A @ B``. The host time until the
  call returns and the host time of the encode launches are reported separately.
  Target: end-to-end <= 1.10 x sum of worker GEMMs at n=8192.

Timing rules: every case first runs for about a second (:data:`WARMUP_S`; clocks ramp
up from idle, kernels compile, every decode weight set of the run's number format is
solved), so no compilation or multiprecision solve lands inside a timed repetition.
Kernel times come from events recorded right around the launches: a short spin kernel
queued first keeps the stream busy while the host prepares the launch, so the start
event is stamped when the device reaches it, not when the host recorded it
(:func:`time_events`; ``host_launch_s`` is the host's time to issue the launches, and
``spin_covered`` says whether the spin outlasted it).

CuPy compiles NVRTC kernels with ``-ftz=true``; the fatbin (nvcc) does not
flush denormals. Which one ran is recorded as ``kernel_source``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

try:  # runnable as a script from the repository root
    import gpucoded  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpucoded import kernels as K  # noqa: E402


def _gpu_reason() -> str | None:
    try:
        import cupy as cp

        if not cp.cuda.is_available():
            return "no CUDA device"
    except Exception as e:
        return f"cupy not importable: {e}"
    return None


#: seconds of warm-up per case (clocks ramp up from idle; compilation, weight solves)
WARMUP_S = 1.0
#: shortest spin queued ahead of a timed launch (s)
MIN_SPIN_S = 100e-6


def warm_up(fn: Any, seconds: float | None = None, min_calls: int = 2) -> list[float]:
    """Call ``fn`` (synchronising the current stream) for about ``seconds`` (default
    :data:`WARMUP_S`); the host time of each call."""
    import cupy as cp

    seconds = WARMUP_S if seconds is None else seconds
    s = cp.cuda.get_current_stream()
    host, t_end, n = [], time.perf_counter() + seconds, 0
    while n < min_calls or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        host.append(time.perf_counter() - t0)
        s.synchronize()
        n += 1
    return host


def timed_launch(
    fn: Any, reps: int = 10, warmup_s: float | None = None
) -> tuple[float, float, bool]:
    """(median device seconds, median host launch seconds, spin covered the launch).

    Each repetition queues a spin kernel (twice the warm-up's median host launch time,
    at least :data:`MIN_SPIN_S`) and the start event behind it, then ``fn()``'s
    launches, then the end event: the window holds the device work of ``fn`` alone,
    not the host's time to issue it, whenever the spin outlasts the host's launch.
    """
    import cupy as cp

    host = warm_up(fn, warmup_s)
    spin = max(MIN_SPIN_S, 2 * statistics.median(host))
    s = cp.cuda.get_current_stream()
    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
    dev, launch = [], []
    for _ in range(reps):
        K.delay(spin, stream=s)  # the stream is busy while the host issues fn's launches
        e0.record(s)
        t0 = time.perf_counter()
        fn()
        launch.append(time.perf_counter() - t0)
        e1.record(s)
        e1.synchronize()
        dev.append(cp.cuda.get_elapsed_time(e0, e1) / 1e3)
    lm = statistics.median(launch)
    return statistics.median(dev), lm, lm < spin


def time_events(fn: Any, reps: int = 10, warmup_s: float | None = None) -> float:
    """Median device seconds of ``fn()``'s launches on the current stream (:func:`timed_launch`)."""
    return timed_launch(fn, reps, warmup_s)[0]


def randn(shape: tuple, dtype: Any, seed: int = 0) -> Any:
    """Standard normal device array (CuPy's generator; host-generated where it has none)."""
    import cupy as cp

    x = cp.random.default_rng(seed).standard_normal(shape, dtype=np.float64)
    if not isinstance(x, cp.ndarray):  # a device without CuPy's random module
        x = cp.asarray(x)
    return x.astype(dtype)


def copy_bandwidth(nbytes: int, reps: int = 10) -> float:
    """Device-to-device copy bandwidth (B/s, read + write counted)."""
    import cupy as cp

    src = cp.empty(nbytes, dtype=cp.uint8)
    dst = cp.empty_like(src)
    src.fill(1)
    s = cp.cuda.get_current_stream()

    def run() -> None:
        cp.cuda.runtime.memcpyAsync(
            dst.data.ptr, src.data.ptr, nbytes, cp.cuda.runtime.memcpyDeviceToDevice, s.ptr
        )

    t = time_events(run, reps, warmup_s=WARMUP_S / 10)  # runs after its case's warm-up
    return 2 * nbytes / t


def kernel_source() -> str:
    return "fatbin(nvcc)" if K.use_fatbin() else "nvrtc(-ftz=true)"


def encode_case(n: int, dtype: Any, grid: tuple[int, int], P: int, reps: int = 10) -> dict:
    """Encode bandwidth of an n x n matrix on ``grid`` with P outputs."""
    import cupy as cp

    A = randn((n, n), dtype)
    G = cp.asarray(np.random.default_rng(1).standard_normal((P, grid[0] * grid[1])), dtype=dtype)
    rb, cb = K.block_dims(n, n, *grid)
    out = cp.empty((P, rb, cb), dtype=dtype)
    t, host, covered = timed_launch(lambda: K.encode(A, G, grid, out=out), reps)
    item = np.dtype(dtype).itemsize
    nbytes = (n * n + P * rb * cb) * item
    bw_copy = copy_bandwidth(n * n * item, reps)
    return {
        "op": "encode",
        "n": n,
        "dtype": np.dtype(dtype).name,
        "grid": list(grid),
        "P": P,
        "seconds": t,
        "GBps": nbytes / t / 1e9,
        "copy_GBps": bw_copy / 1e9,
        "ratio_to_copy": nbytes / t / bw_copy,
        "host_launch_s": host,
        "spin_covered": covered,
        "kernel_source": kernel_source(),
    }


def decode_case(n: int, dtype: Any, grid: tuple[int, int], R: int, reps: int = 10) -> dict:
    """Decode bandwidth: R answers of the blocks of an n x n C on ``grid``."""
    import cupy as cp

    rb, db = K.block_dims(n, n, *grid)
    Z = randn((R, rb, db), dtype)
    W = cp.asarray(np.random.default_rng(1).standard_normal((grid[0] * grid[1], R)), dtype=dtype)
    C = cp.empty((n, n), dtype=dtype)
    t, host, covered = timed_launch(lambda: K.decode(Z, W, grid, (n, n), out=C), reps)
    item = np.dtype(dtype).itemsize
    nbytes = (R * rb * db + n * n) * item
    bw_copy = copy_bandwidth(R * rb * db * item, reps)
    return {
        "op": "decode",
        "n": n,
        "dtype": np.dtype(dtype).name,
        "grid": list(grid),
        "R": R,
        "seconds": t,
        "GBps": nbytes / t / 1e9,
        "copy_GBps": bw_copy / 1e9,
        "ratio_to_copy": nbytes / t / bw_copy,
        "host_launch_s": host,
        "spin_covered": covered,
        "kernel_source": kernel_source(),
    }


def end_to_end_case(n: int, dtype: Any, m: int, reps: int = 3) -> dict:
    """coded_matmul (MatDot, P = 2m workers) vs sum of worker GEMMs and vs A @ B."""
    import cupy as cp

    from gpucoded import coded_matmul
    from gpucoded.codes import make_code
    from gpucoded.executors.cuda import CudaStreamExecutor

    A = randn((n, n), dtype, 0)
    B = randn((n, n), dtype, 1)
    ex = CudaStreamExecutor()
    P = 2 * m
    code = make_code("matdot", m=m, P=P)
    fmt = ex.compute_format(A.dtype)  # the run's format: part of the weight cache key
    for w in range(P):  # every subset the first 2m-1 answers can form: weights cached
        code.decode_weights([x for x in range(P) if x != w], fmt=fmt)

    def e2e() -> Any:
        return coded_matmul(A, B, code=code, executor=ex, return_info=True)

    warm_up(e2e)  # about a second: clocks, kernels, streams, handles, pool blocks
    caller = cp.cuda.get_current_stream()
    walls, hosts, launches = [], [], []
    for _ in range(reps):
        cp.cuda.Device().synchronize()  # the previous repetition's stragglers: not timed
        t0 = time.perf_counter()
        C, info = e2e()
        hosts.append(time.perf_counter() - t0)
        caller.synchronize()  # C is ready; abandoned workers run on on their own streams
        walls.append(time.perf_counter() - t0)
        launches.append(info.encode_time)
    wall = statistics.median(walls)
    # each worker's GEMM alone, by events, on the encoded stacks
    At, Bt = code.encode(A, B)
    short = WARMUP_S / 10  # the device is warm by now
    gemm = [time_events(lambda w=w: At[w] @ Bt[w], reps=3, warmup_s=short) for w in range(P)]
    K_used = len(info.used)
    plain = time_events(lambda: A @ B, reps=3, warmup_s=short)
    err = float(cp.linalg.norm(C - A @ B) / cp.linalg.norm(A @ B))
    ex.close()
    sum_all = float(sum(gemm))
    sum_used = float(sum(gemm[w] for w in info.used))
    return {
        "op": "coded_matmul",
        "code": "matdot",
        "n": n,
        "dtype": np.dtype(dtype).name,
        "m": m,
        "P": P,
        "answers_used": K_used,
        "seconds": wall,
        "host_call_s": statistics.median(hosts),
        "encode_launch_host_s": statistics.median(launches),
        "decode_s": info.decode_time,
        "sum_worker_gemm_s": sum_all,
        "sum_used_gemm_s": sum_used,
        "plain_matmul_s": plain,
        "ratio_to_sum_gemm": wall / sum_all,
        "ratio_to_used_gemm": wall / sum_used,
        "ratio_to_plain": wall / plain,
        "rel_error": err,
    }


# ------------------------------------------------------------------ pytest-benchmark

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:
    _REASON = _gpu_reason()
    pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

    def _sync_call(fn: Any) -> Any:
        import cupy as cp

        def run() -> None:
            fn()
            cp.cuda.get_current_stream().synchronize()

        return run

    @pytest.mark.parametrize("dtype", ["float32", "float64"])
    @pytest.mark.parametrize("m", [2, 4, 8])
    def test_bench_encode(benchmark, dtype, m):
        import cupy as cp

        n = 4096
        A = cp.ones((n, n), dtype=dtype)
        G = cp.ones((2 * m - 1, m), dtype=dtype)
        out = cp.empty((2 * m - 1, n, n // m), dtype=dtype)
        run = _sync_call(lambda: K.encode(A, G, (1, m), out=out))
        benchmark.pedantic(run, rounds=10, warmup_rounds=2)
        nbytes = (n * n + out.size) * A.itemsize
        benchmark.extra_info["GBps"] = nbytes / benchmark.stats.stats.median / 1e9

    @pytest.mark.parametrize("dtype", ["float32", "float64"])
    @pytest.mark.parametrize("m", [2, 4, 8])
    def test_bench_decode(benchmark, dtype, m):
        import cupy as cp

        n = 4096
        Z = cp.ones((2 * m - 1, n, n), dtype=dtype)
        W = cp.ones((1, 2 * m - 1), dtype=dtype)
        C = cp.empty((n, n), dtype=dtype)
        run = _sync_call(lambda: K.decode(Z, W, (1, 1), (n, n), out=C))
        benchmark.pedantic(run, rounds=10, warmup_rounds=2)
        nbytes = (Z.size + C.size) * C.itemsize
        benchmark.extra_info["GBps"] = nbytes / benchmark.stats.stats.median / 1e9

    def test_bench_copy(benchmark):
        import cupy as cp

        src = cp.ones(4096 * 4096, dtype=cp.float64)
        dst = cp.empty_like(src)
        benchmark.pedantic(
            _sync_call(lambda: dst.__setitem__(Ellipsis, src)), rounds=10, warmup_rounds=2
        )
        benchmark.extra_info["GBps"] = 2 * src.nbytes / benchmark.stats.stats.median / 1e9

    @pytest.mark.parametrize("dtype", ["float32", "float64"])
    def test_bench_coded_matmul(benchmark, dtype):
        import cupy as cp

        from gpucoded import coded_matmul
        from gpucoded.codes import make_code
        from gpucoded.executors.cuda import CudaStreamExecutor

        n = 4096
        A = cp.ones((n, n), dtype=dtype)
        B = cp.ones((n, n), dtype=dtype)
        ex = CudaStreamExecutor()
        code = make_code("matdot", m=4, P=8)
        run = _sync_call(lambda: coded_matmul(A, B, code=code, executor=ex))
        benchmark.pedantic(run, rounds=5, warmup_rounds=1)


# ------------------------------------------------------------------ summary script


def summary(quick: bool = False, sizes: tuple[int, ...] | None = None) -> list[dict]:
    """All cases of the device check; each case guarded so one failure keeps the rest.

    ``sizes``: matrix orders (default 4096 and 8192; 4096 only with ``quick``), e.g.
    small ones for the dry run on the simulated device.
    """
    if sizes is None:
        sizes = (4096,) if quick else (4096, 8192)
    ms = (2, 4) if quick else (2, 4, 8)
    rows: list[dict] = []

    def guard(fn: Any, *args: Any) -> None:
        t0 = time.perf_counter()
        try:
            row = fn(*args)
        except Exception as e:  # keep going; record the failure
            row = {"op": fn.__name__, "args": repr(args), "error": f"{type(e).__name__}: {e}"}
        row["bench_wall_s"] = round(time.perf_counter() - t0, 3)
        print(json.dumps(row), flush=True)
        rows.append(row)

    for n in sizes:
        for dt in (np.float32, np.float64):
            for m in ms:
                guard(encode_case, n, dt, (1, m), 2 * m - 1)  # MatDot A side
                guard(decode_case, n, dt, (1, 1), 2 * m - 1)  # MatDot decode
            guard(encode_case, n, dt, (2, 2), 8)  # PolyDot-like grid
            guard(decode_case, n, dt, (2, 2), 8)
    for n in sizes:
        for dt in (np.float32, np.float64):
            for m in ms:
                guard(end_to_end_case, n, dt, m)
    return rows


def table(rows: list[dict]) -> str:
    """The one summary table of the device check (markdown): bandwidth, then end to end."""
    lines = [
        "| op | n | dtype | grid / m | GB/s | copy GB/s | vs copy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("op") in ("encode", "decode") and "error" not in r:
            shape = f"{tuple(r['grid'])} P/R={r.get('P', r.get('R'))}"
            lines.append(
                f"| {r['op']} | {r['n']} | {r['dtype']} | {shape} | {r['GBps']:.0f} | "
                f"{r['copy_GBps']:.0f} | {r['ratio_to_copy']:.2f} |"
            )
    lines += [
        "",
        "| coded_matmul (MatDot) | n | dtype | m | P | wall s | sum worker GEMMs s | "
        "vs sum | one A@B s | vs A@B | rel. error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("op") == "coded_matmul" and "error" not in r:
            lines.append(
                f"| | {r['n']} | {r['dtype']} | {r['m']} | {r['P']} | {r['seconds']:.4f} | "
                f"{r['sum_worker_gemm_s']:.4f} | {r['ratio_to_sum_gemm']:.2f} | "
                f"{r['plain_matmul_s']:.4f} | {r['ratio_to_plain']:.2f} | {r['rel_error']:.1e} |"
            )
    bad = [r for r in rows if "error" in r]
    if bad:
        lines += ["", f"{len(bad)} failed case(s):"] + [f"- {r['op']} {r['args']}: {r['error']}"
                                                       for r in bad]  # fmt: skip
    return "\n".join(lines)


def write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    meta = {
        "device": props["name"].decode()
        if isinstance(props["name"], bytes)
        else str(props["name"]),
        "cupy": cp.__version__,
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "numpy": np.__version__,
        "kernel_source": kernel_source(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "bench_gpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(out / "bench_gpu.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT"), help="directory for JSON/CSV")
    ap.add_argument("--quick", action="store_true", help="n=4096, m in {2,4} only")
    ap.add_argument("--sizes", type=int, nargs="+", help="matrix orders (default 4096 8192)")
    args = ap.parse_args(argv)
    reason = _gpu_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    rows = summary(args.quick, tuple(args.sizes) if args.sizes else None)
    if args.out:
        write(rows, Path(args.out))
        (Path(args.out) / "summary.md").write_text(table(rows) + "\n")
    bad = [r for r in rows if "error" in r]
    print(f"\n=== summary ({kernel_source()}; {len(rows)} cases, {len(bad)} failed)")
    print(table(rows))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
