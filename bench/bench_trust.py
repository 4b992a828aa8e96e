r"""Issue 13's table, class by class, through ``coded_matmul``: silent, warned or refused.

Each class of calls that returned a wrong product silently on the base commit is run
once on 64×64 Gaussian inputs (seed 0); printed per class: how the call ended
(``silent``, ``warned`` with :class:`~gpucoded.errors.InaccurateResultWarning`,
``refused`` with a ``ValueError`` before any worker ran), the relative error
:math:`\max|\hat C-AB|/\max|AB|` of a returned product, the wall time and the start of
the message. ``--false-alarms`` runs the well-conditioned set instead (exact codes
with cond ≤ 1e6 and ε-MatDot m ≤ 3 at the automatic γ, float64, up to k = 16384)
and prints the guard's estimate and the measured error relative to the result.

The library under test is the one on ``PYTHONPATH``; the "before" column of
docs/RESULTS.md ran this file against the base commit::

    git archive a3e59cd | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base python bench/bench_trust.py          # before
    PYTHONPATH=. python bench/bench_trust.py --big            # after (+ matdot m=200)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import gpucoded
from gpucoded.codes import ApproxMatDot, ApproxPolyDot
from gpucoded.reference import exact_product

CASES = [
    ("approx_matdot m=12, P=14, float64", lambda: "approx_matdot", {"m": 12, "P": 14}, "f8"),
    ("approx_matdot m=8, P=10, float32", lambda: "approx_matdot", {"m": 8, "P": 10}, "f4"),
    ("approx_matdot m=5, P=7, float32", lambda: "approx_matdot", {"m": 5, "P": 7}, "f4"),
    ("ApproxPolyDot(3, 3, P=29), float64", lambda: ApproxPolyDot(3, 3, 29), {}, "f8"),
    ("matdot m=40, P=80, float64", lambda: "matdot", {"m": 40, "P": 80}, "f8"),
    ("ApproxMatDot(3, 5) instance, float32", lambda: ApproxMatDot(3, 5), {}, "f4"),
    (
        "ApproxMatDot(6, 8, eps=1e-3, norm_bound=1), float64",
        lambda: ApproxMatDot(6, 8, eps=1e-3, norm_bound=1),
        {},
        "f8",
    ),
    ("ApproxMatDot(8, 10, gamma=1e6), float32", lambda: ApproxMatDot(8, 10, gamma=1e6), {}, "f4"),
    (
        "chebyshev m=32, P=70, 4 failures, float32, serial",
        lambda: "chebyshev",
        {"m": 32, "P": 70, "failed": [0, 1, 2, 3], "executor": "serial"},
        "f4",
    ),
]
BIG = [("matdot m=200, P=400, float64", lambda: "matdot", {"m": 200, "P": 400}, "f8")]
WELL = [
    ("approx_matdot", {"m": 2}),
    ("approx_matdot", {"m": 3}),
    ("approx_matdot", {"m": 3, "P": 7}),
    ("matdot", {"m": 4}),
    ("chebyshev", {"m": 10}),
    ("polydot", {"p": 2, "q": 2}),
    ("polynomial", {"p": 2, "q": 3}),
]


def run_case(code, kw, A, B):
    """(outcome, relative error, message) of one call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            C = gpucoded.coded_matmul(A, B, code, **kw)
        except ValueError as exc:
            return "refused", float("nan"), str(exc)
    E = exact_product(A, B).astype(np.float64)
    with np.errstate(all="ignore"):
        rel = float(np.max(np.abs(C - E)) / np.max(np.abs(E)))
    flagged = [w for w in caught if w.category.__name__.startswith("Inaccurate")]
    return ("warned" if flagged else "silent"), rel, str(flagged[0].message) if flagged else ""


def table(cases) -> None:
    rng = np.random.default_rng(0)
    print("| class | outcome | rel. error | time | message |\n|---|---|---|---|---|")
    for name, make, kw, dt in cases:
        A = rng.standard_normal((64, 64)).astype(dt)
        B = rng.standard_normal((64, 64)).astype(dt)
        t = time.perf_counter()
        try:
            code = make()
        except ValueError as exc:
            out = ("refused (constructor)", float("nan"), str(exc))
        else:
            out = run_case(code, kw, A, B)
        dt_s = time.perf_counter() - t
        print(f"| {name} | {out[0]} | {out[1]:.3g} | {dt_s:.2f} s | {out[2][:70]}… |")


def false_alarms() -> None:
    rng = np.random.default_rng(1)
    print("| shape | code | cond | estimate/max|C| | error/max|AB| | warned |")
    print("|---|---|---|---|---|---|")
    for n, k, l in [(64, 16384, 64), (512, 512, 512), (1500, 1500, 1500)]:
        A, B = rng.standard_normal((n, k)), rng.standard_normal((k, l))
        E = A @ B
        for name, kw in WELL:
            for failed in ([], [0]):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    C, info = gpucoded.coded_matmul(
                        A, B, name, failed=failed, return_info=True, **kw
                    )
                s = np.abs(C).max()
                print(
                    f"| {n}×{k}×{l} | {name} {kw} failed={failed} | {info.cond:.2g} | "
                    f"{info.decode.estimate / s:.2g} | {np.abs(C - E).max() / np.abs(E).max():.2g}"
                    f" | {len(caught) > 0} |"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", action="store_true", help="also matdot m=200, P=400")
    ap.add_argument("--false-alarms", action="store_true", help="the well-conditioned set")
    a = ap.parse_args()
    if a.false_alarms:
        false_alarms()
    else:
        table(CASES + (BIG if a.big else []))


if __name__ == "__main__":
    main()
