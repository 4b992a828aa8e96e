r"""Where is encode's floor? Its memory pattern alone, against a copy, in one run.

``python bench/bench_encode_floor.py [--n 2048] [--rounds 40] [--json out.json]``;
``--md out.json`` prints a saved run as the Markdown table of BENCHMARKS.md.

MatDot m=4, P=8 (grids: A 1x4 blocks of n x n/4, B 4x1 blocks of n/4 x n): encode
reads A and B once and writes P planes of each, :math:`(2n^2 + 2Pn^2/4)` elements —
twice as many bytes written as read, where a copy writes as many as it reads. The
candidates, interleaved in every round in a rotating order (other jobs load this
machine: compare ratios measured in the same run, not times across runs), each
kept at its minimum over the rounds:

* ``copy np``: ``np.copyto`` of half the bytes (the yardstick of bench_bandwidth.py);
* ``copy nt``: a compiled copy of the same bytes with non-temporal stores;
* ``pattern nt`` / ``pattern reg``: encode's reads and writes (same tiles, same
  strides, same order) with no arithmetic, non-temporal or ordinary stores;
  ``pattern first``: the non-temporal one with the m source tiles of a tile all
  loaded (into an L1 buffer) before its first store, as encode does;
* ``encode``: :func:`gpucoded.hostops.encode_into`, the library's loop (m a
  template constant for m <= 8);
* ``previous loop``: the loop before that change (runtime m, accumulators in memory);
* ``m=4 tile ...``: the fixed-m loop with 256 B, 512 B (the library's) and 1 KB tiles;
  ``m=4 512B 64B-st``: 512 B tiles with 64-byte (AVX-512) non-temporal stores;
* ``planar``: encode walking one plane at a time over an L2-sized chunk
  (``bench/encode_floor.cpp``), one write stream per thread instead of P.

* ``read only`` / ``write nt``: encode's reads alone (A and B) and its writes alone
  (the 2P planes, non-temporal stores), to split the bandwidth by direction.

Each with 1 and 2 OpenMP threads where it matters. Prints a table of ms, GB/s of
each candidate's own bytes, and *copy np / candidate* (time ratio; for the
candidates that move encode's bytes, the fraction bench_bandwidth.py reports).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gpucoded import hostops

HERE = Path(__file__).resolve().parent
M, P = 4, 8


def build_floor() -> ctypes.CDLL:
    """Compile bench/encode_floor.cpp with the library's flags (into the host cache)."""
    src = HERE / "encode_floor.cpp"
    out = hostops.private_cache_dir() / f"encode-floor-{os.getpid()}.so"
    cxx = os.environ.get("CXX", "g++")
    subprocess.run([cxx, *hostops.CXX_FLAGS, "-o", str(out), str(src)], check=True)
    lib = ctypes.CDLL(str(out))
    out.unlink()
    return lib


def candidates(
    n: int, dtype: str, lib: ctypes.CDLL
) -> tuple[dict[str, Callable], dict[str, int]]:
    """The timed callables for one (n, dtype) and the bytes each reads + writes."""
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    sfx = "f32" if dt == np.float32 else "f64"
    A = rng.standard_normal((n, n)).astype(dt)
    B = rng.standard_normal((n, n)).astype(dt)
    G = rng.standard_normal((P, M)).astype(dt)
    q = n // M
    sides = [(A, (1, M), (n, q)), (B, (M, 1), (q, n))]
    Ys = [hostops.aligned_empty((P, *blk), dt) for _, _, blk in sides]
    Yp = [hostops.aligned_empty((P, *blk), dt) for _, _, blk in sides]
    nbytes = (2 * n * n + 2 * P * n * q) * dt.itemsize
    half = nbytes // 2 // dt.itemsize
    csrc = hostops.aligned_empty((half,), dt)
    csrc[:] = 1
    cdst = hostops.aligned_empty((half,), dt)
    a = hostops._addr
    i64 = ctypes.c_longlong

    def raw(name: str, nt: int, Y: list[np.ndarray], *extra: int) -> Callable:
        fn = getattr(lib, f"fl_{name}_{sfx}")

        def run() -> None:
            for (X, (gr, gc), (rb, cb)), y in zip(sides, Y, strict=True):
                if extra:  # an encode variant: coefficients and a chunk size
                    fn(ctypes.c_void_p(a(X)), i64(n), gr, gc, i64(rb), i64(cb),
                       ctypes.c_void_p(a(G)), P, ctypes.c_void_p(a(y)), nt,
                       i64(extra[0]))  # fmt: skip
                else:
                    fn(ctypes.c_void_p(a(X)), i64(n), gr, gc, i64(rb), i64(cb), P,
                       ctypes.c_void_p(a(y)), nt)  # fmt: skip

        return run

    def encode(nt: int) -> Callable:
        def run() -> None:
            os.environ["GPUCODED_HOST_THREADS"] = str(nt)
            for (X, grid, blk), y in zip(sides, Ys, strict=True):
                assert hostops.encode_into(X, G, grid, blk, y)

        return run

    def direct(nt: int) -> Callable:
        fn = getattr(lib, f"gc_host_encode_{sfx}")  # the library's loop, no Python checks

        def run() -> None:
            for (X, (gr, gc), (rb, cb)), y in zip(sides, Yp, strict=True):
                fn(ctypes.c_void_p(a(X)), i64(n), i64(n), i64(n), gr, gc, i64(rb), i64(cb),
                   ctypes.c_void_p(a(G)), P, ctypes.c_void_p(a(y)), nt)  # fmt: skip

        return run

    def copy_nt(nt: int) -> Callable:
        fn = getattr(lib, f"fl_copy_nt_{sfx}")
        return lambda: fn(ctypes.c_void_p(a(csrc)), ctypes.c_void_p(a(cdst)), i64(half), nt)

    rd = getattr(lib, f"fl_read_{sfx}")
    rd.restype = ctypes.c_ulonglong
    wr = getattr(lib, f"fl_write_nt_{sfx}")
    nwrite = 2 * P * n * q  # encode's elements written
    wbuf = hostops.aligned_empty((nwrite,), dt)
    cands = {
        "copy np": lambda: np.copyto(cdst, csrc),
        "copy nt t2": copy_nt(2),
        "copy nt t1": copy_nt(1),
        "read only t2": lambda: rd(ctypes.c_void_p(a(A)), i64(n * n), 2)
        + rd(ctypes.c_void_p(a(B)), i64(n * n), 2),
        "read only t1": lambda: rd(ctypes.c_void_p(a(A)), i64(n * n), 1)
        + rd(ctypes.c_void_p(a(B)), i64(n * n), 1),
        "write nt t2": lambda: wr(ctypes.c_void_p(a(wbuf)), i64(nwrite), 2),
        "write nt t1": lambda: wr(ctypes.c_void_p(a(wbuf)), i64(nwrite), 1),
        "pattern nt t2": raw("pattern_nt", 2, Yp),
        "pattern nt t1": raw("pattern_nt", 1, Yp),
        "pattern reg t2": raw("pattern_reg", 2, Yp),
        "pattern first t2": raw("pattern_first", 2, Yp),
        "pattern first t1": raw("pattern_first", 1, Yp),
        "encode t2": encode(2),
        "encode t1": encode(1),
        "encode direct t2": direct(2),
        "encode direct t1": direct(1),
        "previous loop t2": raw("generic", 2, Yp, 0),
        "previous loop t1": raw("generic", 1, Yp, 0),
        "planar 256K t2": raw("planar", 2, Yp, 256 << 10),
        "planar 64K t2": raw("planar", 2, Yp, 64 << 10),
        "m=4 tile 256B t2": raw("fixed256", 2, Yp, 0),
        "m=4 tile 512B t2": raw("fixed512", 2, Yp, 0),
        "m=4 tile 512B t1": raw("fixed512", 1, Yp, 0),
        "m=4 tile 1KB t2": raw("fixed1k", 2, Yp, 0),
        "m=4 512B 64B-st t2": raw("fixed512z", 2, Yp, 0),
        "m=4 512B 64B-st t1": raw("fixed512z", 1, Yp, 0),
    }
    # the encode variants must be bit-identical to the library's encode
    encode(2)()
    variants = ("encode direct t2", "previous loop t2", "planar 256K t2", "m=4 tile 256B t2",
                "m=4 tile 512B t2", "m=4 tile 1KB t2", "m=4 512B 64B-st t2")  # fmt: skip
    for name in variants:
        for y in Yp:
            y[...] = np.nan
        cands[name]()
        for y, yp in zip(Ys, Yp, strict=True):
            assert np.array_equal(y, yp), f"{name} differs from hostops.encode_into"
    moved = {k: nbytes for k in cands}
    for k in ("read only t2", "read only t1"):
        moved[k] = 2 * n * n * dt.itemsize
    for k in ("write nt t2", "write nt t1"):
        moved[k] = nwrite * dt.itemsize
    return cands, moved


def measure(cands: dict[str, Callable], rounds: int) -> dict[str, list[float]]:
    """Every candidate once per round, the order rotated each round."""
    names = list(cands)
    times: dict[str, list[float]] = {k: [] for k in names}
    for f in cands.values():
        f()  # warm-up: pages, threads
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            cands[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def markdown(report: dict) -> str:
    """The rows of a --json report as a Markdown table (float64 and float32 side by side)."""
    rows: dict[str, dict[str, dict]] = {}
    for r in report["rows"]:
        rows.setdefault(r["candidate"], {})[r["dtype"]] = r
    out = [
        "| candidate | f64 min ms | f64 GB/s | f64 copy np / it "
        "| f32 min ms | f32 GB/s | f32 copy np / it |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by in rows.items():
        cells = []
        for dt in ("float64", "float32"):
            r = by[dt]
            cells += [f"{r['min_s'] * 1e3:.2f}", f"{r['GBps']:.1f}", f"{r['fraction']:.2f}"]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None, help="print this --json file as Markdown")
    args = ap.parse_args()
    if args.md:
        print(markdown(json.loads(args.md.read_text())))
        return
    if hostops.library() is None:
        hostops.build()
        hostops.library(reload=True)
    lib = build_floor()
    report = {"n": args.n, "rounds": args.rounds, "loadavg": os.getloadavg(), "rows": []}
    for dtype in ("float64", "float32"):
        cands, moved = candidates(args.n, dtype, lib)
        nbytes = moved["encode t1"]
        times = measure(cands, args.rounds)
        base = min(times["copy np"])
        print(f"\nn={args.n} {dtype}: {nbytes / 1e6:.0f} MB read + written per encode")
        print(f"{'candidate':<16} {'min ms':>8} {'median ms':>10} {'GB/s':>6} {'copy np / it':>12}")
        for name, ts in times.items():
            t = min(ts)
            row = {"dtype": dtype, "candidate": name, "min_s": t,
                   "median_s": float(np.median(ts)), "bytes": moved[name],
                   "GBps": moved[name] / t / 1e9,
                   "fraction": base / t}  # fmt: skip
            report["rows"].append(row)
            print(f"{name:<16} {t * 1e3:8.2f} {row['median_s'] * 1e3:10.2f} "
                  f"{row['GBps']:6.1f} {row['fraction']:12.2f}")  # fmt: skip
    report["loadavg_end"] = os.getloadavg()
    print("\nload average start / end:", report["loadavg"], report["loadavg_end"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
