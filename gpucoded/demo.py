"""``gpucoded demo``: every code on one product, with failed workers, as a table."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import numpy as np

from .api import coded_matmul
from .backend import array_module, gpu_available
from .codes import Code, make_code
from .guard import RTOL_GUARD
from .progress import Progress
from .reference import exact_product

__all__ = ["demo_codes", "run_demo", "straggler_comparison", "straggler_scenario"]


def demo_codes(m: int = 4, dtype: str = "float64") -> list[tuple[Code, list[int]]]:
    """The demo's codes at storage 1/m, each with as many failed workers as it tolerates.

    PolyDot-type codes use the most square split of m (p·q = m).
    """
    out: list[tuple[Code, list[int]]] = []
    specs: list[tuple[str, dict[str, Any]]] = [
        ("uncoded", {}),
        ("replication", {"r": 2}),
        ("matdot", {"P": 2 * m + 1}),
        ("chebyshev", {"P": 2 * m + 1}),
        ("approx_matdot", {"P": 2 * m + 1}),
        ("polydot", {}),
        ("approx_polydot", {}),
        ("polynomial", {}),
    ]
    for name, opts in specs:
        if name.startswith("approx_"):
            opts["dtype"] = dtype  # evaluation points tuned for the workers' arithmetic
        code = make_code(name, m=m, **opts)
        if name in ("polydot", "approx_polydot", "polynomial") and "P" not in opts:
            opts["P"] = code.recovery_threshold + 2
            code = make_code(name, m=m, **opts)
        n_fail = code.P - code.recovery_threshold
        if name == "replication":
            n_fail = code.r - 1  # any r-1 failures are survivable
        # fail the workers with the lowest indices (a fixed, reproducible pattern)
        out.append((code, list(range(n_fail))))
    return out


def run_demo(
    n: int = 1024,
    m: int = 4,
    dtype: str = "float64",
    seed: int = 0,
    device: str = "auto",
    out: TextIO = sys.stdout,
) -> list[dict[str, Any]]:
    """Run every code on unit-Frobenius Gaussian n×n inputs and print a table.

    Returns the rows (dicts) that were printed.
    """
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    B = rng.standard_normal((n, n))
    A = (A / np.linalg.norm(A)).astype(dtype)
    B = (B / np.linalg.norm(B)).astype(dtype)
    use_gpu = device == "gpu" or (device == "auto" and gpu_available())
    if use_gpu:
        import cupy

        A, B = cupy.asarray(A), cupy.asarray(B)
    xp = array_module(A)
    C = A.astype(np.float64) @ B.astype(np.float64)  # errors are measured against this
    _ = A @ B
    t0 = time.perf_counter()
    _ = A @ B
    if use_gpu:
        xp.cuda.Device().synchronize()
    t_plain = time.perf_counter() - t0
    print(
        f"gpucoded demo: C = A @ B, A and B {n}x{n} {dtype}, unit Frobenius norm, "
        f"storage 1/{m} per worker, on {'GPU' if use_gpu else 'CPU'} "
        f"(plain A @ B: {t_plain * 1e3:.1f} ms)",
        file=out,
    )
    head = f"{'code':<16}{'P':>4}{'thr':>5}{'failed':>8}{'used':>6}{'max error':>12}" \
           f"{'bound':>11}{'cond':>10}{'time ms':>9}"
    print(head, file=out)
    print("-" * len(head), file=out)
    rows = []
    codes = demo_codes(m, dtype)
    bar = Progress(len(codes), "demo")
    for code, failed in codes:
        # the guard's verdict is shown in the table ("!") instead of as a warning
        coded_matmul(A, B, code, failed=failed, on_inaccurate="ignore")  # warm-up: weights
        t0 = time.perf_counter()
        Ch, info = coded_matmul(
            A, B, code, failed=failed, return_info=True, on_inaccurate="ignore"
        )
        dt = time.perf_counter() - t0
        err = float(abs(Ch - C).max())
        row = {
            "code": code.name, "P": code.P, "threshold": code.recovery_threshold,
            "failed": len(failed), "used": len(info.used), "max_error": err,
            "bound": info.error_bound, "cond": info.cond, "time_s": dt,
        }
        rows.append(row)
        bar.write(
            f"{code.name:<16}{code.P:>4}{code.recovery_threshold:>5}{len(failed):>8}"
            f"{len(info.used):>6}{err:>12.2e}{info.error_bound:>11.1e}{info.cond:>10.1e}"
            f"{dt * 1e3:>9.1f}" + ("  !" if (info.accuracy or 0) > RTOL_GUARD else ""),
            file=out,
        )
        bar.update(1, code.name)
    bar.close()
    print(
        "\nthr = answers the code needs; failed = workers that never answer (the lowest "
        "indices);\nmax error = max|C_hat - A@B| (float64 reference); bound = a-priori "
        "max-norm bound\n(interpolation + worst-case first-order rounding); cond = condition "
        "number of the decode system;\ntime = one call with cached decode weights; ! = the "
        "accuracy guard flags the result: its measured upper estimate of the error is above "
        "1e-2 max|AB|\n(maybe fewer than two correct digits; the estimate can be up to "
        "2.5*sqrt(columns) high for an error\nspread over a row, so approximate codes "
        "whose max error is near 1e-3 of max|AB| are flagged too).",
        file=out,
    )
    return rows


def straggler_comparison(
    n: int = 600,
    m: int = 3,
    delay: float = 1.0,
    executor: Any = "threads",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time saved by coding when one worker straggles (the ``gpucoded demo`` scenario).

    Worker 0 of every scheme is delayed by ``delay`` seconds; every scheme stores
    1/m of A and B per worker. Uncoded must wait for it; MatDot (P = 2m) and
    ε-MatDot (P = m + 1) decode without it.

    Returns
    -------
    rows : list of dict
        ``code``, ``P``, ``seconds`` (wall clock of the call), ``max_error``
        (against the exact product) and ``used`` workers.
    """
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / n
    B = rng.standard_normal((n, n)) / n
    C = exact_product(A, B)
    rows = []
    for name, P in (("uncoded", m), ("matdot", 2 * m), ("approx_matdot", m + 1)):
        delays = [delay] + [0.0] * (P - 1)
        t0 = time.perf_counter()
        Ch, info = coded_matmul(
            A, B, name, m=m, P=P, delays=delays, executor=executor, return_info=True
        )
        dt = time.perf_counter() - t0
        err = float(np.abs(Ch - C).max())
        rows.append({"code": name, "P": P, "seconds": dt, "max_error": err, "used": info.used})
    return rows


def straggler_scenario(
    n: int = 600,
    m: int = 3,
    delay: float = 1.0,
    executor: Any = "threads",
    out: TextIO = sys.stdout,
) -> list[dict[str, Any]]:
    """One worker ``delay`` s late: Uncoded waits for it, MatDot and ε-MatDot do not.

    Prints the wall-clock time of each call and the time saved against Uncoded
    (rows from :func:`straggler_comparison`); returns the rows.
    """
    rows = straggler_comparison(n=n, m=m, delay=delay, executor=executor)
    base = rows[0]["seconds"]
    print(
        f"straggler scenario: worker 0 answers {delay:g} s late; {n}x{n} inputs, storage "
        f"1/{m} per worker, executor {executor}",
        file=out,
    )
    print(f"{'code':<16}{'P':>4}{'time ms':>10}{'saved ms':>10}{'max error':>12}", file=out)
    for r in rows:
        print(
            f"{r['code']:<16}{r['P']:>4}{r['seconds'] * 1e3:>10.1f}"
            f"{(base - r['seconds']) * 1e3:>10.1f}{r['max_error']:>12.2e}",
            file=out,
        )
    return rows
