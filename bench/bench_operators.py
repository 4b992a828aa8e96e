r"""CodedMatrix against repeated coded_matmul: encode once, multiply many.

A fixed matrix M (n×n, float64, unit-norm Gaussian) is multiplied by ``reps`` fresh
right-hand sides X (n×b) — the operator workload (power iteration, inference, a
gradient step on fixed data). Timed per call (median over ``reps`` calls after one
warm-up call that also fills the decode-weight cache):

* ``coded_matmul(M, X, code, executor=ex)`` — encodes M and X and ships both each call;
* ``cm.matmul(X)`` for ``cm = CodedMatrix(M, code, executor=ex)`` — M's side was encoded
  (and, on Dask, scattered to the workers) once; a call encodes and ships X only.

For Dask the bytes scattered to the cluster per call (``DaskExecutor.bytes_sent``) are
counted too. Then the stack question of ``np.matmul`` semantics: a stack
``(s, n, k) @ (k, l)`` as one folded coded product against ``s`` coded products.

Usage::

    python -m bench.bench_operators                     # threads and Dask, markdown
    python -m bench.bench_operators --n 1000 --reps 10 --no-dask
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

import gpucoded
from gpucoded.pipeline import check_call, fit_code, operands, resolve_code, run_product


def _median_time(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up (weights cached, threads and clusters up)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def operator_vs_calls(n: int, b: int, reps: int, code: str, m: int, P: int, ex) -> dict:
    """Median seconds per call of coded_matmul and CodedMatrix.matmul on ``ex``."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((n, n))
    M /= np.linalg.norm(M)
    Xs = [rng.standard_normal((n, b)) for _ in range(reps + 1)]
    it = iter(range(10**9))
    cm = gpucoded.CodedMatrix(M, code, m=m, P=P, executor=ex)
    t_call = _median_time(lambda: gpucoded.coded_matmul(
        M, Xs[next(it) % len(Xs)], code, m=m, P=P, executor=ex), reps)  # fmt: skip
    t_op = _median_time(lambda: cm.matmul(Xs[next(it) % len(Xs)]), reps)
    row = {"n": n, "b": b, "code": f"{code} m={m} P={P}", "call_ms": t_call * 1e3,
           "op_ms": t_op * 1e3, "ratio": t_call / t_op}  # fmt: skip
    if hasattr(ex, "bytes_sent"):
        b0 = ex.bytes_sent
        gpucoded.coded_matmul(M, Xs[0], code, m=m, P=P, executor=ex)
        row["call_bytes"] = ex.bytes_sent - b0
        b0 = ex.bytes_sent
        cm.matmul(Xs[0])
        row["op_bytes"] = ex.bytes_sent - b0
    return row


def stack_fold_vs_loop(s: int, n: int, reps: int) -> dict:
    """``(s, n, n) @ (n, n)``: one folded coded product vs s coded products (threads)."""
    rng = np.random.default_rng(1)
    S, B = rng.standard_normal((s, n, n)), rng.standard_normal((n, n))
    ex = gpucoded.executors.get_executor("threads")
    code = resolve_code(None, None, None, {}, B.dtype)
    call = check_call(code)
    code, fmt = fit_code(code, ex, B.dtype, call)

    def loop() -> None:
        for A in S:
            ops = operands(code, A, B, True)
            run_product(code, lambda A=A: code.encode(A, B), ops, ex, call, fmt)

    t_fold = _median_time(lambda: gpucoded.coded_matmul(S, B, executor=ex), reps)
    t_loop = _median_time(loop, reps)
    return {"stack": f"({s},{n},{n}) @ ({n},{n})", "fold_ms": t_fold * 1e3,
            "loop_ms": t_loop * 1e3, "loop/fold": t_loop / t_fold}  # fmt: skip


def markdown(rows: list[tuple[str, dict]], stacks: list[dict]) -> str:
    lines = [
        "| executor | M | X | code | coded_matmul ms/call | CodedMatrix ms/call | ratio "
        "| bytes sent/call (coded_matmul → CodedMatrix) |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    for ex, r in rows:
        sent = (
            f"{r['call_bytes'] / 1e6:.2f} MB → {r['op_bytes'] / 1e6:.3f} MB"
            if "call_bytes" in r
            else "– (shared memory)"
        )
        lines.append(
            f"| {ex} | {r['n']}×{r['n']} | {r['n']}×{r['b']} | {r['code']} | "
            f"{r['call_ms']:.1f} | {r['op_ms']:.1f} | {r['ratio']:.1f}× | {sent} |"
        )
    lines += ["", "| stack | one folded product ms | one product per matrix ms | loop/fold |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for r in stacks:
        lines.append(
            f"| {r['stack']} | {r['fold_ms']:.1f} | {r['loop_ms']:.1f} | {r['loop/fold']:.1f}× |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--b", type=int, default=8, help="columns of each right-hand side")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--no-dask", action="store_true")
    a = p.parse_args(argv)
    rows = []
    cases = [("chebyshev", 2, 4), ("chebyshev", 4, 8)]
    threads = gpucoded.executors.get_executor("threads")
    for code, m, P in cases:
        rows.append(("threads", operator_vs_calls(a.n, a.b, a.reps, code, m, P, threads)))
    if not a.no_dask:
        from gpucoded.executors.dask import local_executor

        dask = local_executor()
        for code, m, P in cases:
            row = operator_vs_calls(a.n, a.b, a.reps, code, m, P, dask)
            rows.append(("dask (in-process)", row))
    stacks = [stack_fold_vs_loop(8, max(64, a.n // 8), a.reps)]
    print(f"machine: {os.cpu_count()} cores; n={a.n}, b={a.b}, median of {a.reps} calls")
    print(markdown(rows, stacks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
