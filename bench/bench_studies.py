"""Benchmarks of the precision studies, each against a straightforward implementation.

1. Figure 1(a)+(b) true worst case (all C(P, N_succ) subsets, 201 γ values, float64
   workers, no ε₁/ε₂ split): the batched study (double-double weights for all γ at once,
   one GEMM per code) vs

   * ``naive``: a Python loop decoding each subset separately, weights by
     ``np.linalg.lstsq`` on the float Vandermonde system;
   * ``library loop``: a loop over subsets calling ``code.decode`` (mpmath weights,
     cached per code) -- what one would write with the library and no batching. Timed on
     the first ``--loop-gammas`` γ values and scaled to all of them (per-γ cost is flat).

2. Logistic regression (Tables I-II): iterations/s of the fused training loop
   (:class:`~gpucoded.studies.logreg.CodedSGD`, bit-identical weights) vs a
   straightforward loop calling ``coded_matmul`` twice per iteration; for context the
   :class:`~gpucoded.studies.logreg.CodedProduct` loop and the *uncoded* plain NumPy
   loop (no code at all: a ceiling for any coded loop on the same machine).

3. The study's loops built on the library (``CodedSGD`` holding the data as a
   ``studies.gather.EncodedRows``, with both of ``gather``'s sources; the ``CodedProduct`` loop
   on ``operators.encode_side``) against the same arithmetic written by hand as GEMMs on
   precomputed rows, interleaved rounds (at least 5), with the check that every loop
   gives the CodedProduct loop's W bit for bit.

Run: ``python bench/bench_studies.py [--quick] [--json PATH]``. BLAS is pinned to one
thread (set before NumPy is imported) unless OPENBLAS_NUM_THREADS is set: on a shared
2-core machine multi-threaded BLAS on 100×100 blocks mostly measures contention.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpucoded.codes import ApproxMatDot  # noqa: E402
from gpucoded.reference import exact_product  # noqa: E402
from gpucoded.studies import figure1 as f1  # noqa: E402
from gpucoded.studies import sweep as sw  # noqa: E402


def _best(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls (every call recomputes everything) and a result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_figure1(n_gammas: int, loop_gammas: int, repeat: int = 3) -> dict:
    """Time the three implementations of the Figure 1 sweep; check they agree.

    The batched study and the naive loop are each timed ``repeat`` times, best kept
    (nothing is cached between calls: every call recomputes weights and products)."""
    cfg = f1.Figure1Config(dtypes=("float64",), split=False, gammas=np.logspace(0, 8, n_gammas))
    t_batched, rows = _best(lambda: f1.figure1(cfg), repeat)

    A, B = sw.unit_gaussian_pair(cfg.n, cfg.seed)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    codes = [(lab, g, c) for lab, g, c in f1.panel_a_codes(cfg.m, cfg.P, cfg.approx_gamma)]
    codes += [
        ("approx_matdot", float(g), ApproxMatDot(cfg.m, cfg.P, gamma=float(g))) for g in cfg.gammas
    ]
    t_naive, naive = _best(lambda: [f1.naive_sweep(c, A, B, C) for _, _, c in codes], repeat)

    # library loop on the first loop_gammas codes of panel (b), scaled
    sub = codes[3 : 3 + loop_gammas]
    t0 = time.perf_counter()
    for _, _, code in sub:
        At, Bt = code.encode(A, B)
        prods = At @ Bt
        for S in sw.all_subsets(code):
            Chat = code.decode(prods[list(S)], S, shape=C.shape, partial=True)
            float(np.abs(Chat - C).max())
    t_loop_per_gamma = (time.perf_counter() - t0) / max(1, len(sub))
    t_loop = t_loop_per_gamma * len(codes)

    # agreement: batched (exact weights) vs naive (float lstsq weights), per gamma range
    bmap = {(r["panel"], r["code"], r["gamma"], r["n_succ"]): r["max_err"] for r in rows}
    ratios = {"gamma<=1e2": [], "gamma>1e4": []}
    for (lab, g, _), nv in zip(codes, naive, strict=True):
        panel = (
            "a"
            if lab != "approx_matdot" or g == cfg.approx_gamma and (lab, g) == codes[2][:2]
            else "b"
        )
        for r, e in nv.items():
            b = bmap.get((panel, lab, g, r)) or bmap.get(("b", lab, g, r))
            if b is None:
                continue
            key = "gamma<=1e2" if g <= 1e2 else "gamma>1e4" if g > 1e4 else None
            if key:
                ratios[key].append(e / b)
    n_subsets = sum(len(sw.all_subsets(c)) for _, _, c in codes)
    return {
        "n_gammas": n_gammas,
        "n_decodes": n_subsets,
        "repeat": repeat,
        "batched_s": t_batched,
        "naive_lstsq_s": t_naive,
        "library_loop_s_est": t_loop,
        "library_loop_gammas_timed": len(sub),
        "speedup_vs_naive": t_naive / t_batched,
        "speedup_vs_library_loop": t_loop / t_batched,
        "naive_over_exact_err_gamma_le_1e2": [min(ratios["gamma<=1e2"]), max(ratios["gamma<=1e2"])],
        "naive_over_exact_err_gamma_gt_1e4": [min(ratios["gamma>1e4"]), max(ratios["gamma>1e4"])],
    }


class HandWrittenSGD:
    """Baseline: the training step as plain GEMMs on precomputed rows (no library
    calls), the arithmetic of ``CodedSGD`` before it was built on ``CodedMatrix``:
    gather the padded batch, transpose its first rows, encode with ``GA[S]``,
    ``GB[S]``, the |S| worker GEMMs, decode with ``W_S``."""

    def __init__(self, sgd):  # shares the CodedSGD's weights, rows and padded data
        self.s = sgd

    def __getattr__(self, name):  # shapes and pad_batches, as train_coded asks them
        return getattr(self.s, name)

    def step(self, W, idx, Yb, iz, ig, lr):
        from gpucoded.studies.logreg import _softmax

        s = self.s
        m, J, cz, cg, b, dp, r = s.m, s.J, s.cz, s.cg, s.batch, s.dp, s.r
        xg = s.Xp[idx]
        At = (s.GA[iz] @ W.reshape(J, m, cz).transpose(1, 0, 2).reshape(m, J * cz))
        Bt = s.GB[iz] @ xg[:b].T.reshape(m, cz * b)
        Z = (s.W[iz] @ (At.reshape(r, J, cz) @ Bt.reshape(r, cz, b)).reshape(r, -1))
        s._hp[:, :b] = _softmax(Z.reshape(J, b)) - Yb
        Hb = s._hp.reshape(J, m, cg).transpose(1, 0, 2).reshape(m, J * cg)
        At, Bt = s.GA[ig] @ Hb, s.GB[ig] @ xg.reshape(m, cg * dp)
        G = (s.W[ig] @ (At.reshape(r, J, cg) @ Bt.reshape(r, cg, dp)).reshape(r, -1))
        G *= lr
        W -= G.reshape(J, dp)


def _product_by_hand(prod):
    """Baseline for ``CodedProduct``: its arithmetic as plain GEMMs on precomputed rows."""

    def mul(A, B, i):
        g = prod.code.grid
        (n, k), l = A.shape, B.shape[1]
        rb, cb, db = g.block_dims(n, k, l)
        At = prod.GA[i] @ g.split(A, g.p, g.s, rb, cb).reshape(g.n_a, rb * cb)
        Bt = prod.GB[i] @ g.split(B, g.s, g.t, cb, db).reshape(g.n_b, cb * db)
        prods = (At.reshape(-1, rb, cb) @ Bt.reshape(-1, cb, db)).reshape(len(At), -1)
        return g.assemble((prod.W[i] @ prods).reshape(g.n_c, rb, db), n, l)

    return mul


def bench_coded_sgd(iterations: int, repeat: int = 3) -> dict:
    """The training loops built on the library against the same arithmetic by hand.

    Timed interleaved (order alternating), ``repeat`` rounds: best it/s of each and
    the median (min, max) of the per-round ratios library / hand-written:

    * ``sgd``: ``CodedSGD`` (data held as ``EncodedRows``, Z's B blocks from
      ``gather(source="encode")``) vs :class:`HandWrittenSGD`;
    * ``stored``: ``CodedSGD(source="stored")`` (the encoded copy a deployment holds)
      vs the same hand-written loop;
    * ``product``: the ``train`` loop with ``CodedProduct`` (``encode_side``) vs with
      :func:`_product_by_hand`.

    Every loop's W is compared bit for bit with the CodedProduct loop's. Setup as
    :func:`gpucoded.studies.logreg.benchmark`: ε-MatDot (5, 5, 7), a random answer
    pattern per multiplication, batch 128, the MNIST subset (or its synthetic
    stand-in)."""
    from gpucoded import hostops
    from gpucoded.studies import logreg as lg
    from gpucoded.studies import mnist

    X, y, data = mnist.load_or_synthetic()
    cfg = lg.LogregConfig(iterations=iterations)
    Xr, Y = np.ascontiguousarray(X), np.eye(10)[y]
    batches = np.random.default_rng(0).integers(0, X.shape[0], (iterations, cfg.batch))
    code, answers, P = lg.make_scheme("approx_matdot", 5, 5, 7)
    subs = list(itertools.combinations(range(P), answers))
    rng = np.random.default_rng(1)
    pats = (rng.integers(0, len(subs), iterations), rng.integers(0, len(subs), iterations))
    mz, mg = lg.CodedProduct(code, subs), lg.CodedProduct(code, subs)
    ref = lg.train(Xr, Y, cfg, batches, mz, mg, pats)
    t0 = time.perf_counter()
    sgd = lg.CodedSGD(code, subs, Xr, 10, cfg.batch)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    stored = lg.CodedSGD(code, subs, Xr, 10, cfg.batch, source="stored", padded=sgd.Xp)
    t_setup_stored = time.perf_counter() - t0
    loops = {
        "sgd": lambda: lg.train_coded(Xr, Y, cfg, batches, sgd, pats),
        "stored": lambda: lg.train_coded(Xr, Y, cfg, batches, stored, pats),
        "hand_sgd": lambda: lg.train_coded(Xr, Y, cfg, batches, HandWrittenSGD(sgd), pats),
        "product": lambda: lg.train(Xr, Y, cfg, batches, mz, mg, pats),
        "hand_product": lambda: lg.train(
            Xr, Y, cfg, batches, _product_by_hand(mz), _product_by_hand(mg), pats
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in loops}
    same = {}
    for i in range(max(1, repeat)):
        for name in list(loops) if i % 2 == 0 else list(loops)[::-1]:
            t0 = time.perf_counter()
            W = loops[name]()
            times[name].append(time.perf_counter() - t0)
            same[name] = bool(np.array_equal(W, ref))
    out = {
        "data": data,
        "iterations": iterations,
        "repeat": repeat,
        "compiled_take_rows": hostops.available(),
        "setup_s": t_setup,
        "stored_setup_s": t_setup_stored,
        **{f"{k}_it_s": iterations / min(v) for k, v in times.items()},
        **{f"{k}_identical_to_product_loop": same[k] for k in loops},
    }
    for k, base in (("sgd", "hand_sgd"), ("stored", "hand_sgd"), ("product", "hand_product")):
        ratio = np.array(times[base]) / np.array(times[k])  # > 1: the library loop is faster
        out[f"{k}_ratio"] = [float(np.median(ratio)), float(ratio.min()), float(ratio.max())]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer γ values / iterations")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--loop-gammas", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="timings: best of this many runs")
    args = ap.parse_args(argv)
    out = {}
    n_g = 41 if args.quick else 201
    res = bench_figure1(n_g, 2 if args.quick else args.loop_gammas, args.repeat)
    out["figure1"] = res
    print(
        f"Figure 1 sweep, {res['n_gammas']} γ, {res['n_decodes']} decodes: "
        f"batched {res['batched_s']:.3f} s | naive lstsq loop {res['naive_lstsq_s']:.3f} s "
        f"({res['speedup_vs_naive']:.1f}x) | library decode loop "
        f"≈{res['library_loop_s_est']:.1f} s "
        f"({res['speedup_vs_library_loop']:.0f}x)"
    )
    print(
        "  naive/exact worst-case error ratio: γ≤1e2 "
        f"{res['naive_over_exact_err_gamma_le_1e2']}, "
        f"γ>1e4 {res['naive_over_exact_err_gamma_gt_1e4']}"
    )
    try:
        from gpucoded.studies import logreg
    except ImportError:
        logreg = None
    if logreg is not None and hasattr(logreg, "benchmark"):
        lr = logreg.benchmark(iterations=100 if args.quick else 400)
        out["logreg"] = lr
        print(
            f"Logistic regression ({lr['scheme']}, m={lr['m']}, P={lr['P']}, "
            f"data: {lr['data']}): "
            f"CodedSGD loop {lr['fast_it_s']:.0f} it/s | coded_matmul loop "
            f"{lr['naive_it_s']:.0f} it/s ({lr['speedup']:.1f}x; W max rel. diff "
            f"{lr['max_rel_diff_vs_naive']:.1e}) | CodedProduct loop "
            f"{lr['product_it_s']:.0f} it/s (W bit-identical: "
            f"{lr['identical_to_product_loop']}) | "
            f"uncoded plain NumPy loop {lr['uncoded_it_s']:.0f} it/s "
            f"(= {lr['uncoded_it_s'] / lr['naive_it_s']:.1f}x the coded_matmul loop)"
        )
    if logreg is not None:
        sg = bench_coded_sgd(100 if args.quick else 400, max(args.repeat, 5))
        out["coded_sgd"] = sg

        def ratio(k: str) -> str:
            med, lo, hi = sg[f"{k}_ratio"]
            return f"{med:.2f}x [{lo:.2f}, {hi:.2f}]"

        print(
            f"Training loops on the library vs the same arithmetic by hand ({sg['repeat']} "
            f"interleaved rounds, {sg['iterations']} it; ratio = hand-written time / library "
            f"time, median [min, max]; compiled take_rows: {sg['compiled_take_rows']}):\n"
            f"  CodedSGD (EncodedRows, source='encode') {sg['sgd_it_s']:.0f} it/s vs "
            f"hand-written {sg['hand_sgd_it_s']:.0f} it/s: {ratio('sgd')}\n"
            f"  CodedSGD (EncodedRows, source='stored') {sg['stored_it_s']:.0f} it/s: "
            f"{ratio('stored')} (setup {sg['stored_setup_s']:.2f} s)\n"
            f"  CodedProduct loop {sg['product_it_s']:.0f} it/s vs hand-written "
            f"{sg['hand_product_it_s']:.0f} it/s: {ratio('product')}\n"
            f"  W bit-identical to the CodedProduct loop: "
            + ", ".join(f"{k} {sg[f'{k}_identical_to_product_loop']}" for k in
                        ("sgd", "stored", "hand_sgd", "hand_product"))  # fmt: skip
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
