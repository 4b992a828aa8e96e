"""Figure 1 study: batched worst case, fast weights, ε₁/ε₂ split, CLI quick mode."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from gpucoded.codes import ApproxMatDot, ApproxPolyDot, ChebyshevMatDot, MatDot
from gpucoded.formats import round_mantissa, round_operands, unit_roundoff
from gpucoded.reference import error_split, exact_product
from gpucoded.studies import figure1 as f1
from gpucoded.studies import sweep as sw
from gpucoded.studies.fastweights import fast_weights
from gpucoded.studies.precision import worker_matmul

U64 = 2.0**-53


@pytest.mark.parametrize(
    "code",
    [
        MatDot(3, 6, decoder="interpolation"),
        ApproxMatDot(3, 6, gamma=7e4, decoder="interpolation"),
        ApproxMatDot(3, 6, gamma=1e8, decoder="interpolation"),
        ChebyshevMatDot(3, 6, decoder="interpolation"),
        ApproxPolyDot(2, 2, 9, gamma=30.0, decoder="interpolation"),
    ],
    ids=repr,
)
def test_fast_weights_equal_mpmath(code):
    """Double-double weights equal the library's mpmath weights.

    Both are rounded once to float64 (≤ u|w| each) and the double-double value is
    within 2^-60 of the row's largest weight (module docstring: κ(V(c))² 2^-100 with
    κ(V(c)) ≤ 2^20, else the function returns None), so
    |Δw| ≤ 2u|w| + 2^-60 max_row|w|.
    """
    lo = int(code.block_need().max())
    for r in range(lo, code.P + 1):
        S = np.array(list(itertools.combinations(range(code.P), r)))
        W = fast_weights(code, S)
        assert W is not None
        Wm = np.stack([code.decode_weights(tuple(s), partial=True).W for s in S])
        tol = 2 * U64 * np.abs(Wm) + 2.0**-60 * np.abs(Wm).max(axis=2, keepdims=True)
        assert np.all(np.abs(W - Wm) <= tol)


def test_fast_weights_decline_when_not_applicable():
    from gpucoded.codes import Replication

    assert fast_weights(Replication(3, 2), np.array([[0, 1, 2]])) is None
    code = MatDot(3, 6)
    assert fast_weights(code, np.array([[0, 1]])) is None  # below what MatDot needs


def test_batched_sweep_matches_per_subset_decode():
    """One stacked GEMM gives the same errors as ``code.decode`` per subset.

    The two differ only in the summation order of the r-term decode sums, each with
    error ≤ γ_r Σ_k |w_k||C̃_k| (γ_r = r u/(1 − r u)), so the errors differ by at most
    2 γ_r max Σ_k |w_k||C̃_k|.
    """
    A, B = sw.unit_gaussian_pair(40, 3)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    code = ApproxMatDot(3, 6, gamma=1e3)
    res = sw.subset_sweep(code, A, B, C)
    At, Bt = code.encode(A, B)
    prods = At @ Bt
    for S, e in zip(res.subsets, res.errors, strict=True):
        W = code.decode_weights(S, partial=True).W
        Chat = code.decode(prods[list(S)], S, shape=C.shape, partial=True)
        r = len(S)
        g = r * U64 / (1 - r * U64)
        scale = np.einsum("k,kij->ij", np.abs(W[0]), np.abs(prods[list(S)])).max()
        assert abs(e - np.abs(Chat - C).max()) <= 2 * g * scale + 4 * U64 * np.abs(C).max()


def test_split_matches_reference():
    """The study's ε₁/ε₂ (block products cached) equal ``reference.error_split``.

    Both evaluate the same longdouble expressions in a different order: the difference
    is a few longdouble roundings of the terms, ≤ 64 ε_ld max|C| (generous count).
    """
    A, B = sw.unit_gaussian_pair(30, 1)
    C = np.asarray(exact_product(A, B))
    for code in (ApproxMatDot(3, 6, gamma=100.0), ChebyshevMatDot(3, 6)):
        res = sw.subset_sweep(code, A, B, C.astype(np.float64))
        sp = f1._Splitter(code, A, B, C)
        eld = float(np.finfo(np.longdouble).eps)
        for r, (j, Chat) in res.worst.items():
            S = res.subsets[j]
            e1, e2 = sp.split(code, S, Chat)
            Cm = code.grid.assemble(Chat.reshape(code.grid.n_c, 30, 30), 30, 30)
            ref = error_split(code, A, B, S, Cm)
            tol = 64 * eld * float(np.abs(C).max())
            assert abs(e1 - ref.eps1) <= tol and abs(e2 - ref.eps2) <= tol, r


def test_round_mantissa_error():
    """Round to nearest with b mantissa bits: relative error ≤ 2^-(b+1)."""
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    for bits in (7, 10):
        y = round_mantissa(x, bits)
        assert np.all(np.abs(y - x) <= 2.0 ** -(bits + 1) * np.abs(x))
        assert np.all(round_mantissa(y, bits) == y)
    with pytest.raises(TypeError):
        round_mantissa(x.astype(np.float64), 7)
    with pytest.raises(ValueError):
        unit_roundoff("float16")
    # round_operands: a format's GEMM operands (identity unless emulated)
    assert np.array_equal(round_operands(x, "tf32"), round_mantissa(x, 10))
    assert np.array_equal(round_operands(x, "bf16"), round_mantissa(x, 7))
    assert round_operands(x, "float32") is x
    At = np.ones((2, 3, 4), np.float32)
    assert worker_matmul(At, np.ones((2, 4, 5), np.float32), "bf16").shape == (2, 3, 5)


@pytest.fixture(scope="module")
def quick_rows():
    cfg = f1.Figure1Config(gammas=np.logspace(0, 8, 9), dtypes=("float64", "float32"))
    return f1.figure1(cfg)


def test_exact_codes_exact_above_threshold(quick_rows):
    """MatDot/Chebyshev with N_succ ≥ 2m−1: error ≤ the a-priori bound ≤ 1e-12 (float64).

    ``bound`` is the rigorous first-order bound of ``DecodeWeights.bounds`` (unit norms).
    """
    rows = [
        r
        for r in quick_rows
        if r["panel"] == "a" and r["code"] in ("matdot", "chebyshev") and r["n_succ"] >= 5
    ]
    assert rows
    for r in rows:
        assert r["max_err"] <= r["bound"]
        if r["dtype"] == "float64":
            assert r["bound"] <= 1e-12


def test_every_error_within_bound(quick_rows):
    """Measured worst case ≤ the a-priori bound (ε₁ + ε₂ bounds), every float row."""
    for r in quick_rows:
        assert r["max_err"] <= r["bound"], r
        assert r["max_err"] >= r["mean_err"] >= 0 and r["max_err"] >= r["median_err"]


def test_approx_beats_exact_codes_below_threshold(quick_rows):
    """The paper's Fig. 1a claim: for m ≤ N_succ < 2m−1, ε-MatDot λ(70000) has a
    smaller worst-case error than MatDot λ(1) and Chebyshev (float64 workers)."""
    a = {
        (r["code"], r["n_succ"]): r["max_err"]
        for r in quick_rows
        if r["panel"] == "a" and r["dtype"] == "float64"
    }
    for n in (3, 4):
        assert a[("approx_matdot", n)] < a[("matdot", n)]
        assert a[("approx_matdot", n)] < a[("chebyshev", n)]


def test_gamma_curve_non_monotone(quick_rows):
    """Fig. 1b: below 2m−1 answers the error vs γ falls (ε₁ ∝ γ^-1) then rises
    (ε₂ ∝ u γ^{m-1}): an interior grid point is below both ends."""
    for dtype in ("float64", "float32"):
        pts = sorted(
            (r["gamma"], r["max_err"])
            for r in quick_rows
            if r["panel"] == "b" and r["n_succ"] == 3 and r["dtype"] == dtype
        )
        e = np.array([p[1] for p in pts])
        assert e[1:-1].min() < min(e[0], e[-1])


def test_split_adds_up(quick_rows):
    """max|ε₁+ε₂| ≤ max|ε₁| + max|ε₂| and ≥ | max|ε₁| − max|ε₂| | (max norm triangle
    inequality), up to the rounding of C to float64 in max_err (≤ u max|C| ≤ u)."""
    for r in quick_rows:
        tot, e1, e2 = r["max_err"], r["eps1"], r["eps2"]
        assert tot <= (e1 + e2) * (1 + 1e-12) + U64
        assert tot >= abs(e1 - e2) * (1 - 1e-12) - U64


def test_cli_quick(tmp_path):
    """``gpucoded figure1 --quick`` writes the CSV (required columns) and the PNGs."""
    pytest.importorskip("matplotlib")
    from gpucoded.cli import build_parser

    args = build_parser().parse_args(["figure1", "--out", str(tmp_path), "--quick"])
    assert args.func(args) == 0
    with open(tmp_path / "figure1.csv") as f:
        rows = list(csv.DictReader(f))
    need = {"code", "m", "P", "gamma", "n_succ", "max_err", "mean_err", "median_err"}
    assert need | {"eps1", "eps2", "dtype"} <= set(rows[0])
    assert {r["dtype"] for r in rows} == {"float64", "float32"}
    for name in ("fig1a_float64", "fig1b_float64", "fig1c_float32"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert len(f1.read_csv(tmp_path / "figure1.csv")) == len(rows)


def test_bad_inputs():
    with pytest.raises(ValueError, match="worker dtype"):
        f1.figure1(f1.Figure1Config(dtypes=("float16",), gammas=np.array([1.0])))
    with pytest.raises(ValueError, match="device"):
        f1.figure1(f1.Figure1Config(device="tpu", gammas=np.array([1.0])))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float64", "float32", "tf32"])
def test_gpu_sweep_matches_cpu(dtype):
    """The stacked GEMM on the device gives the CPU's errors up to summation order.

    Both sides use the same float weights; encode sums (n_a, n_b terms), worker GEMMs
    (inner length cb) and decode sums (≤ P terms) differ only in order, so first order
    the decoded entries differ by ≤ 2 (n_a + n_b + cb + P) u Σ_k|w_k| max|C̃_k| (u of
    the format); the max errors differ by no more, plus the rounding of C (4 u max|C|).
    For tf32 the CPU emulates the tensor cores' operand rounding; a truncating
    conversion on the device costs at most one more u per operand, inside this bound.
    """
    import cupy as cp

    A, B = sw.unit_gaussian_pair(60, 2)
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    code = ApproxMatDot(3, 6, gamma=300.0)
    cpu = sw.subset_sweep(code, A, B, C, dtype)
    gpu = sw.subset_sweep(code, A, B, C, dtype, xp=cp)
    At, Bt = code.encode(A, B)
    pmax = np.abs(At @ Bt).max()
    W = sw.stacked_weights(code, cpu.subsets)
    wsum = np.abs(W).sum(axis=(1, 2))
    u = unit_roundoff(dtype)
    g = code.grid
    tol = 2 * (g.n_a + g.n_b + At.shape[2] + code.P) * u * wsum * pmax
    assert np.all(np.abs(cpu.errors - gpu.errors) <= tol + 4 * u * np.abs(C).max())


@pytest.mark.parametrize(
    "code", [ApproxMatDot(3, 6, gamma=1e3), ApproxPolyDot(2, 2, 9, gamma=30.0)]
)
def test_chunked_decode_matches_one_gemm(code, monkeypatch):
    """Cache-sized column chunks (a partial last one included) give the errors of one GEMM.

    Chunking only partitions the columns of ``Wd @ prods``; if a BLAS summed a chunk in
    another order, each entry would move by at most γ_r Σ_k |w_k||C̃_k| (γ_r = r u/(1 − r u)),
    so the two maxima differ by at most 2 γ_P max_S Σ_k |w_k||C̃_k| + 4u max|C|. The worst
    subset's decoded blocks (``worst``) reproduce its error within the same bound.
    """
    A, B = sw.unit_gaussian_pair(37, 5)  # 37² and 19² columns: the last chunk is shorter
    C = np.asarray(exact_product(A, B)).astype(np.float64)
    monkeypatch.setattr(sw, "_CHUNK_BYTES", 2**60)
    one = sw.subset_sweep(code, A, B, C)
    monkeypatch.setattr(sw, "_CHUNK_BYTES", 1)  # chunks of ≤ 256 columns (the floor)
    chunked = sw.subset_sweep(code, A, B, C)
    W = sw.stacked_weights(code, one.subsets)
    At, Bt = code.encode(A, B)
    prods = np.abs((At @ Bt).reshape(code.P, -1))
    g = code.P * U64 / (1 - code.P * U64)
    tol = 2 * g * (np.abs(W).reshape(-1, code.P) @ prods).max() + 4 * U64 * np.abs(C).max()
    assert np.all(np.abs(chunked.errors - one.errors) <= tol)
    rb, db = At.shape[1], Bt.shape[2]
    Cb = sw._c_blocks(code, C, rb, db)
    for _, (j, Chat) in chunked.worst.items():
        assert abs(np.abs(Chat - Cb).max() - chunked.errors[j]) <= tol


def test_fast_weights_sizes_equal_per_size_calls():
    """The checks-once variant computes the same weights as one call per size (same ops)."""
    from gpucoded.studies.fastweights import fast_weights_many, fast_weights_sizes

    codes = [ApproxMatDot(3, 6, gamma=g, decoder="interpolation") for g in (1.0, 70.0, 7e4)]
    codes += [MatDot(3, 6, decoder="interpolation")]
    subs = [np.array(list(itertools.combinations(range(6), r))) for r in range(3, 7)]
    for S, W in zip(subs, fast_weights_sizes(codes, subs), strict=True):
        assert np.array_equal(W, fast_weights_many(codes, S))
    assert fast_weights_sizes([ChebyshevMatDot(3, 6), MatDot(3, 6)], subs[:1]) == [None]
