"""The logistic-regression study's two training loops on whatever ``gpucoded`` is imported.

Prints iterations/s (best of ``--repeat``) of the ``CodedSGD`` loop (``train_coded``)
and of the ``CodedProduct`` loop (``train``), and a hash of each trained W, for
ε-MatDot (5, 5, 7), a random answer pattern per product, batch 128, the MNIST subset
(or its synthetic stand-in). Run it against two checkouts, alternating, to compare
commits on the same machine state (same hashes = the same W bit for bit)::

    git worktree add /tmp/before <commit>
    for i in 1 2 3 4 5 6; do
        PYTHONPATH=/tmp/before python bench/study_loops.py --label before --loops CodedSGD
        PYTHONPATH=. python bench/study_loops.py --label after --loops CodedSGD
    done

(one loop per process: a loop timed after another in the same process inherits its
heap and cache state, which moved the ratio by a few per cent here).

BLAS is pinned to one thread (set before NumPy is imported).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from gpucoded.studies import logreg as lg  # noqa: E402
from gpucoded.studies import mnist  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--loops", default="CodedSGD,CodedProduct", help="which loops, comma-separated"
    )
    args = ap.parse_args(argv)
    X, y, data = mnist.load_or_synthetic()
    Xr, Y = np.ascontiguousarray(X), np.eye(10)[y]
    its = args.iterations
    cfg = lg.LogregConfig(iterations=its)
    batches = np.random.default_rng(0).integers(0, X.shape[0], (its, cfg.batch))
    code, answers, P = lg.make_scheme("approx_matdot", 5, 5, 7)
    subs = list(itertools.combinations(range(P), answers))
    rng = np.random.default_rng(1)
    pats = (rng.integers(0, len(subs), its), rng.integers(0, len(subs), its))
    chosen = args.loops.split(",")
    loops = {}
    if "CodedSGD" in chosen:
        sgd = lg.CodedSGD(code, subs, Xr, 10, cfg.batch)
        loops["CodedSGD"] = lambda: lg.train_coded(Xr, Y, cfg, batches, sgd, pats)
    if "CodedProduct" in chosen:
        mz, mg = lg.CodedProduct(code, subs), lg.CodedProduct(code, subs)
        loops["CodedProduct"] = lambda: lg.train(Xr, Y, cfg, batches, mz, mg, pats)
    if not loops:
        ap.error("--loops: name CodedSGD and/or CodedProduct")
    parts = []
    for name, fn in loops.items():
        best, W = float("inf"), None
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            W = fn()
            best = min(best, time.perf_counter() - t0)
        parts.append(f"{name} {its / best:.0f} it/s W {hashlib.sha1(W.tobytes()).hexdigest()[:12]}")
    print(f"{args.label} ({data}): " + " | ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
