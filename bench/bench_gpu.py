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
  executor, wall time after a device synchronise, against the sum of the
  worker GEMM times (each worker's GEMM timed alone with events) and against a
  single ``A @ B``. Target: end-to-end <= 1.10 x sum of worker GEMMs at n=8192.

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


def time_events(fn: Any, reps: int = 10, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` on the current stream, by CUDA events."""
    import cupy as cp

    for _ in range(warmup):
        fn()
    s = cp.cuda.get_current_stream()
    out = []
    for _ in range(reps):
        e0, e1 = cp.cuda.Event(), cp.cuda.Event()
        e0.record(s)
        fn()
        e1.record(s)
        e1.synchronize()
        out.append(cp.cuda.get_elapsed_time(e0, e1) / 1e3)
    return statistics.median(out)


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

    t = time_events(run, reps)
    return 2 * nbytes / t


def kernel_source() -> str:
    return "fatbin(nvcc)" if K.use_fatbin() else "nvrtc(-ftz=true)"


def encode_case(n: int, dtype: Any, grid: tuple[int, int], P: int, reps: int = 10) -> dict:
    """Encode bandwidth of an n x n matrix on ``grid`` with P outputs."""
    import cupy as cp

    rng = cp.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float64).astype(dtype)
    G = cp.asarray(np.random.default_rng(1).standard_normal((P, grid[0] * grid[1])), dtype=dtype)
    rb, cb = K.block_dims(n, n, *grid)
    out = cp.empty((P, rb, cb), dtype=dtype)
    t = time_events(lambda: K.encode(A, G, grid, out=out), reps)
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
        "kernel_source": kernel_source(),
    }


def decode_case(n: int, dtype: Any, grid: tuple[int, int], R: int, reps: int = 10) -> dict:
    """Decode bandwidth: R answers of the blocks of an n x n C on ``grid``."""
    import cupy as cp

    rb, db = K.block_dims(n, n, *grid)
    rng = cp.random.default_rng(0)
    Z = rng.standard_normal((R, rb, db), dtype=np.float64).astype(dtype)
    W = cp.asarray(np.random.default_rng(1).standard_normal((grid[0] * grid[1], R)), dtype=dtype)
    C = cp.empty((n, n), dtype=dtype)
    t = time_events(lambda: K.decode(Z, W, grid, (n, n), out=C), reps)
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
        "kernel_source": kernel_source(),
    }


def end_to_end_case(n: int, dtype: Any, m: int, reps: int = 3) -> dict:
    """coded_matmul (MatDot, P = 2m workers) vs sum of worker GEMMs and vs A @ B."""
    import cupy as cp

    from gpucoded import coded_matmul
    from gpucoded.codes import make_code
    from gpucoded.executors.cuda import CudaStreamExecutor

    rng = cp.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float64).astype(dtype)
    B = rng.standard_normal((n, n), dtype=np.float64).astype(dtype)
    ex = CudaStreamExecutor()
    P = 2 * m
    code = make_code("matdot", m=m, P=P)
    for w in range(P):  # every subset the first 2m-1 answers can form: weights cached
        code.decode_weights([x for x in range(P) if x != w])

    def e2e() -> Any:
        return coded_matmul(A, B, code=code, executor=ex, return_info=True)

    C, info = e2e()  # warm-up: compiles the kernels
    cp.cuda.Device().synchronize()
    walls = []
    for _ in range(reps):
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        C, info = e2e()
        cp.cuda.Device().synchronize()
        walls.append(time.perf_counter() - t0)
    wall = statistics.median(walls)
    # each worker's GEMM alone, by events, on the encoded stacks
    At, Bt = code.encode(A, B)
    gemm = [time_events(lambda w=w: At[w] @ Bt[w], reps=3, warmup=1) for w in range(P)]
    K_used = len(info.used)
    plain = time_events(lambda: A @ B, reps=3, warmup=1)
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
        "encode_s": info.encode_time,
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


def summary(quick: bool = False) -> list[dict]:
    """All cases of the device check; each case guarded so one failure keeps the rest."""
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
    args = ap.parse_args(argv)
    reason = _gpu_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    rows = summary(args.quick)
    if args.out:
        write(rows, Path(args.out))
        (Path(args.out) / "summary.md").write_text(table(rows) + "\n")
    bad = [r for r in rows if "error" in r]
    print(f"\n=== summary ({kernel_source()}; {len(rows)} cases, {len(bad)} failed)")
    print(table(rows))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
