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
from gpucoded.studies.families import FAMILIES, FAMILY_CODES

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


def false_alarms(small: bool = False) -> None:
    rng = np.random.default_rng(1)
    print("| shape | code | cond | estimate/max|C| | measured/scale | error/max|AB| | warned |")
    print("|---|---|---|---|---|---|---|")
    shapes = [(64, 16384, 64), (512, 512, 512), (1500, 1500, 1500)]
    for n, k, l in shapes[:2] if small else shapes:
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
                    f"{info.decode.estimate / s:.2g} | {info.accuracy:.2g} | "
                    f"{np.abs(C - E).max() / np.abs(E).max():.2g}"
                    f" | {len(caught) > 0} |"
                )


def families(shape: tuple[int, int, int], seeds: int) -> None:
    """Per data family and dtype: silent results with error > 1e-2 max|AB| and false
    alarms (exact well-conditioned codes flagged), with check=None (the model rule of
    the base commit) and check="probes" (the measured rule)."""
    n, k, l = shape
    print(f"operands {n}x{k} @ {k}x{l}, seeds 0..{seeds - 1}, failed in ([], [1]), codes:")
    print(", ".join(f"{c} {o}" for c, o, _ in FAMILY_CODES))
    print("| family | dtype | results | silent > 1e-2: model / measured "
          "| false alarms: model / measured | other flags with error <= 1e-2: model / measured "
          "| worst silent error: model / measured |")
    print("|---|---|---|---|---|---|---|")
    for fam, draw in FAMILIES.items():
        for dt in ("float64", "float32"):
            tot = 0
            silent = {None: 0, "probes": 0}
            alarms = {None: 0, "probes": 0}
            worst = {None: 0.0, "probes": 0.0}
            cautious = {None: 0, "probes": 0}
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                A, B = draw(rng, (n, k)).astype(dt), draw(rng, (k, l)).astype(dt)
                E = exact_product(A, B).astype(np.float64)
                sc = float(np.abs(E).max()) or 1.0
                for name, opts, well in FAMILY_CODES:
                    for failed in ([], [1]):
                        tot += 1
                        for check in (None, "probes"):
                            with warnings.catch_warnings(record=True) as caught:
                                warnings.simplefilter("always")
                                try:
                                    C = gpucoded.coded_matmul(
                                        A, B, name, failed=failed, check=check, **opts
                                    )
                                except ValueError:
                                    continue
                            flagged = any(
                                w.category.__name__.startswith("Inaccurate") for w in caught
                            )
                            with np.errstate(all="ignore"):
                                rel = float(np.abs(C - E).max()) / sc
                            if not flagged:
                                worst[check] = max(worst[check], rel)
                                silent[check] += not rel <= 1e-2
                            alarms[check] += flagged and well
                            cautious[check] += flagged and not well and rel <= 1e-2
            print(f"| {fam} | {dt} | {tot} | {silent[None]} / {silent['probes']} | "
                  f"{alarms[None]} / {alarms['probes']} | "
                  f"{cautious[None]} / {cautious['probes']} | "
                  f"{worst[None]:.2g} / {worst['probes']:.2g} |")


def _median_time(f, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def cost(sizes: list[int], reps: int, code: str = "chebyshev", m: int = 2, P: int = 3) -> None:
    """The measured check's cost: coded_matmul (``code``, m, P, threads) with
    check="probes" and check=None, and probes.measure alone on the result, the three
    interleaved in each repetition (a load change hits all three), medians of ``reps``."""
    from gpucoded import probes

    print(f"{code} m={m}, P={P}, uniform [0, 1) operands\n")
    print("| n | dtype | call, check=None | call, check='probes' | measure() alone "
          "| measure / call |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in sizes:
        for dt in ("float64", "float32"):
            A = rng.random((n, n)).astype(dt)
            B = rng.random((n, n)).astype(dt)
            kw = {"m": m, "P": P}
            C = gpucoded.coded_matmul(A, B, code, **kw)  # warm the weights
            probes.measure(C, A, B)
            t_none, t_probe, t_meas = [], [], []
            for _ in range(reps):
                for check, acc in ((None, t_none), ("probes", t_probe)):
                    t0 = time.perf_counter()
                    gpucoded.coded_matmul(A, B, code, check=check, **kw)
                    acc.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                probes.measure(C, A, B)
                t_meas.append(time.perf_counter() - t0)
            tn, tp, tm = (float(np.median(t)) for t in (t_none, t_probe, t_meas))
            print(f"| {n} | {dt} | {tn * 1e3:.1f} ms | {tp * 1e3:.1f} ms | "
                  f"{tm * 1e3:.2f} ms | {tm / tn:.1%} |")


def cost_vs_gemm(sizes: list[int], reps: int) -> None:
    """probes.measure against one plain A @ B (where a full coded call is too slow here)."""
    from gpucoded import probes

    print("| n | dtype | A @ B (one GEMM) | measure() | measure / GEMM |\n|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in sizes:
        for dt in ("float64", "float32"):
            A = rng.random((n, n)).astype(dt)
            B = rng.random((n, n)).astype(dt)
            t0 = time.perf_counter()
            C = A @ B
            tg = time.perf_counter() - t0
            tm = _median_time(lambda C=C, A=A, B=B: probes.measure(C, A, B), reps)
            print(f"| {n} | {dt} | {tg * 1e3:.0f} ms | {tm * 1e3:.1f} ms | {tm / tg:.2%} |")


def detection(n: int, trials: int) -> None:
    """Silent corruption: one answer of matdot m=3, P=8 perturbed (one entry by e, or
    the whole answer scaled by 1+e); detection rate and time of the measured check
    (flagged) against verify="warn" (leave-one-out decodes, CorruptionWarning)."""
    from gpucoded.errors import CorruptionWarning, InaccurateResultWarning
    from gpucoded.executors import SerialExecutor
    from gpucoded.stragglers import FaultyExecutor

    rng = np.random.default_rng(3)
    A, B = rng.random((n, n)), rng.random((n, n))
    E = A @ B
    sc = float(np.abs(E).max())
    print("| fault | size (x max|AB|) | probes: detected | verify: detected "
          "| error > 1e-2 silent: probes / verify | time: probes / verify |")
    print("|---|---|---|---|---|---|")
    for kind in ("perturb", "scale"):
        for e in (1e-4, 1e-2, 1.0):
            det = {"probes": 0, "verify": 0}
            bad = {"probes": 0, "verify": 0}
            tim = {"probes": 0.0, "verify": 0.0}
            for _ in range(trials):
                w = int(rng.integers(4))
                size = e * sc if kind == "perturb" else e
                fault = (kind, size) if kind == "perturb" else (kind, 1.0 + e)
                for mode in ("probes", "verify"):
                    ex = FaultyExecutor(SerialExecutor(), {w: fault})
                    kw = {"verify": "warn", "check": None} if mode == "verify" else {}
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        t0 = time.perf_counter()
                        C = gpucoded.coded_matmul(A, B, "matdot", m=3, P=8, executor=ex, **kw)
                        tim[mode] += time.perf_counter() - t0
                    cat = CorruptionWarning if mode == "verify" else InaccurateResultWarning
                    hit = any(issubclass(x.category, cat) for x in caught)
                    det[mode] += hit
                    bad[mode] += (not hit) and float(np.abs(C - E).max()) > 1e-2 * sc
            print(f"| {kind} | {e:g} | {det['probes']}/{trials} | {det['verify']}/{trials} | "
                  f"{bad['probes']} / {bad['verify']} | "
                  f"{tim['probes'] / trials * 1e3:.1f} / {tim['verify'] / trials * 1e3:.1f} ms |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", action="store_true", help="also matdot m=200, P=400")
    ap.add_argument("--false-alarms", action="store_true", help="the well-conditioned set")
    ap.add_argument("--families", action="store_true", help="issue 20's data families")
    ap.add_argument("--small", action="store_true", help="--false-alarms without 1500^3")
    ap.add_argument("--shape", type=int, nargs=3, default=(500, 784, 200), help="n k l")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--cost", type=int, nargs="*", help="probe cost at these n")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--code", default="chebyshev:2:3", help="code:m:P of --cost")
    ap.add_argument("--vs-gemm", type=int, nargs="*", help="measure() vs one A @ B at these n")
    ap.add_argument("--detection", type=int, default=0, help="n of the corruption table")
    a = ap.parse_args()
    if a.cost:
        name, m, P = a.code.split(":")
        cost(a.cost, a.reps, name, int(m), int(P))
    elif a.vs_gemm:
        cost_vs_gemm(a.vs_gemm, a.reps)
    elif a.detection:
        detection(a.detection, 20)
    elif a.families:
        families(tuple(a.shape), a.seeds)
    elif a.false_alarms:
        false_alarms(a.small)
    else:
        table(CASES + (BIG if a.big else []))


if __name__ == "__main__":
    main()
