"""Host hot path: compiled CPU loops and the workspace pool (gpucoded.hostops).

Claims checked:

* the compiled encode/decode are within the rounding bound of one sequential sum
  (the term the a-priori bound counts): :math:`|\\hat y-y|\\le\\gamma_m\\sum|g||x|`;
* they are bit-identical to the CUDA kernels of ``kernels/`` run through the CPU
  emulation (same arithmetic, same sum order);
* ``Code.encode``/``Code.decode`` give the same answers with and without the library;
* a pooled stack is never overwritten while anything (the caller, a straggler's
  thread) still holds a view of it;
* shapes that do not fit are refused before any memory is touched.
"""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from gpucoded import coded_matmul, hostops, make_code

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="no C++ compiler"
)


@pytest.fixture(scope="module")
def lib_path(tmp_path_factory):
    return hostops.build(tmp_path_factory.mktemp("host") / hostops.LIB_NAME)


@pytest.fixture
def host(lib_path, monkeypatch):
    """The compiled loops loaded (two threads, so the OpenMP split is exercised), and
    taken whatever the stacks' size (small ones otherwise take NumPy's matmuls)."""
    from gpucoded.codes import dispatch

    monkeypatch.setattr(dispatch, "HOST_LOOPS_FROM", 0)
    monkeypatch.setenv("GPUCODED_HOSTLIB", str(lib_path))
    monkeypatch.setenv("GPUCODED_HOST_THREADS", "2")
    assert hostops.library(reload=True) is not None
    yield hostops
    monkeypatch.undo()
    hostops.library(reload=True)


@pytest.fixture
def numpy_only(monkeypatch):
    monkeypatch.setenv("GPUCODED_HOST", "0")
    assert hostops.library(reload=True) is None
    yield
    monkeypatch.undo()
    hostops.library(reload=True)


def _gamma(k: int, dtype) -> float:
    u = float(np.finfo(dtype).eps) / 2
    return k * u / (1 - k * u)


def _blocks(X, grid, block):
    """Zero-padded block stack (gr*gc, rb, cb) in extended precision."""
    gr, gc = grid
    rb, cb = block
    Xp = np.zeros((gr * rb, gc * cb), dtype=np.longdouble)
    Xp[: X.shape[0], : X.shape[1]] = X
    return Xp.reshape(gr, rb, gc, cb).transpose(0, 2, 1, 3).reshape(gr * gc, rb, cb)


CASES = [  # (nrows, ncols, grid)
    (64, 96, (1, 4)),
    (96, 64, (4, 1)),
    (50, 70, (2, 3)),  # ragged: padding rows and columns
    (33, 17, (3, 2)),
    (40, 40, (1, 1)),
    (20, 600, (1, 2)),  # column tiles of the float32 and float64 loops, plus a tail
    (6, 1100, (1, 4)),  # m=4 fixed-term loop: full tiles (both dtypes) plus a tail
    (1090, 300, (4, 1)),  # fixed-term rows, and a last block row in the padding
    (9, 2400, (3, 3)),  # m=9: beyond the fixed-term loops (generic loop, full tiles)
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nrows,ncols,grid", CASES)
def test_encode_within_rounding_bound(host, rng, dtype, nrows, ncols, grid):
    gr, gc = grid
    rb, cb = -(-nrows // gr), -(-ncols // gc)
    X = rng.standard_normal((nrows, ncols)).astype(dtype)
    G = rng.standard_normal((7, gr * gc)).astype(dtype)
    Y = host.pool().empty((7, rb, cb), dtype)
    Y[...] = np.nan  # every entry, padding included, must be written
    assert host.encode_into(X, G, grid, (rb, cb), Y)
    Xb = _blocks(X, grid, (rb, cb))
    exact = np.einsum("wa,arc->wrc", G.astype(np.longdouble), Xb)
    scale = np.einsum("wa,arc->wrc", np.abs(G).astype(np.longdouble), np.abs(Xb))
    tol = _gamma(gr * gc, dtype) * scale + float(np.finfo(np.longdouble).eps) * scale
    assert np.all(np.abs(Y - exact) <= tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n,l,grid,R", [(64, 96, (1, 1), 7), (50, 70, (2, 3), 9), (31, 45, (3, 2), 4)]
)
def test_decode_within_rounding_bound(host, rng, dtype, n, l, grid, R):
    gp, gt = grid
    rb, db = -(-n // gp), -(-l // gt)
    Z = [rng.standard_normal((rb, db)).astype(dtype) for _ in range(R)]
    W = rng.standard_normal((gp * gt, R)).astype(dtype)
    C = np.full((n, l), np.nan, dtype)
    assert host.combine_into(W, Z, grid, C)
    Zs = np.stack(Z).astype(np.longdouble)
    blocks = np.einsum("ck,krx->crx", W.astype(np.longdouble), Zs)
    scale = np.einsum("ck,krx->crx", np.abs(W).astype(np.longdouble), np.abs(Zs))

    def assemble(B):
        return B.reshape(gp, gt, rb, db).transpose(0, 2, 1, 3).reshape(gp * rb, gt * db)[:n, :l]

    tol = _gamma(R, dtype) * assemble(scale) * (1 + 1e-12)
    assert np.all(np.abs(C - assemble(blocks)) <= tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_to_cuda_kernels(host, rng, dtype):
    """Same arithmetic as kernels/encode.cu and decode.cu (CPU emulation build)."""
    emu_mod = pytest.importorskip("tests._harness.emu")
    try:
        emu = emu_mod.Emu()
    except (OSError, RuntimeError) as e:  # pragma: no cover - no compiler
        pytest.skip(f"emulation harness unavailable: {e}")
    for nrows, ncols, grid in CASES:
        gr, gc = grid
        rb, cb = -(-nrows // gr), -(-ncols // gc)
        X = rng.standard_normal((nrows, ncols)).astype(dtype)
        G = rng.standard_normal((5, gr * gc)).astype(dtype)
        Y = host.pool().empty((5, rb, cb), dtype)
        assert host.encode_into(X, G, grid, (rb, cb), Y)
        np.testing.assert_array_equal(Y, emu.encode(X, G, grid))
        Z = [rng.standard_normal((rb, cb)).astype(dtype) for _ in range(6)]
        W = rng.standard_normal((gr * gc, 6)).astype(dtype)
        C = np.empty((nrows, ncols), dtype)
        assert host.combine_into(W, Z, grid, C)
        ref = emu.decode(np.stack(Z), W, grid, np.empty((nrows, ncols), dtype))
        np.testing.assert_array_equal(C, ref)


CODES = [("matdot", 4, 8), ("approx_matdot", 4, 5), ("chebyshev", 4, 8), ("polydot", 4, 10),
         ("polynomial", 4, 6)]  # fmt: skip


def _encode_decode(code, A, B):
    At, Bt = code.encode(A, B)
    S = list(range(code.recovery_threshold))
    prods = [At[w] @ Bt[w] for w in S]
    return At.copy(), Bt.copy(), code.decode(prods, S, shape=(A.shape[0], B.shape[1]))


@pytest.mark.parametrize("name,m,P", CODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_code_paths_agree(lib_path, monkeypatch, rng, name, m, P, dtype):
    """Code.encode/decode with the compiled loops vs NumPy: within the rounding bound."""
    from gpucoded.codes import dispatch

    code = make_code(name, m=m, P=P)
    A = rng.standard_normal((70, 54)).astype(dtype)
    B = rng.standard_normal((54, 66)).astype(dtype)
    monkeypatch.setattr(dispatch, "HOST_LOOPS_FROM", 0)  # these stacks are small
    monkeypatch.setenv("GPUCODED_HOST", "0")
    hostops.library(reload=True)
    ref = _encode_decode(code, A, B)
    monkeypatch.setenv("GPUCODED_HOST", "1")
    monkeypatch.setenv("GPUCODED_HOSTLIB", str(lib_path))
    assert hostops.library(reload=True) is not None
    got = _encode_decode(code, A, B)
    monkeypatch.undo()
    hostops.library(reload=True)
    u = float(np.finfo(dtype).eps) / 2
    g = code.grid
    for x, y, terms, G in ((got[0], ref[0], g.n_a, code.GA), (got[1], ref[1], g.n_b, code.GB)):
        # two sums of `terms` products each, in different orders: 2 gamma_terms sum|g||x|
        bound = (
            2
            * _gamma(terms, dtype)
            * np.abs(G).sum(axis=1).max()
            * max(np.abs(A).max(), np.abs(B).max())
        )
        assert np.abs(x - y).max() <= bound
    S = list(range(code.recovery_threshold))
    W = np.abs(code.decode_weights(S).W).sum(axis=1).max()
    # decode of (slightly different) products: the products' own difference, propagated
    # by |W|, plus two decode sums; the products differ by the encode difference times
    # the inner dimension's sum of |A~||B~|
    At, Bt = ref[0], ref[1]
    pscale = max(float((np.abs(At[w]) @ np.abs(Bt[w])).max()) for w in S)
    bound = (
        W * (4 * _gamma(g.n_a + g.n_b + A.shape[1], dtype) * pscale)
        + 2 * _gamma(len(S), dtype) * W * pscale
    )
    assert np.abs(got[2] - ref[2]).max() <= bound + 8 * u * np.abs(ref[2]).max()


@pytest.mark.parametrize("name,kw", [("polydot", {"p": 2, "q": 2, "P": 12}),
                                     ("chebyshev", {"m": 4, "P": 8})])  # fmt: skip
def test_tiny_stacks_take_numpy_and_agree_with_the_loops(host, monkeypatch, rng, name, kw):
    """Stacks below HOST_LOOPS_FROM entries (an n = 32 call) encode and decode with
    NumPy's batched matmuls, never calling the loops, and agree with the loops within
    the bound of two sums in different orders: 2γ_T Σ|g||x| (T terms)."""
    from gpucoded.codes import dispatch

    monkeypatch.setattr(dispatch, "HOST_LOOPS_FROM", 1 << 16)  # the default
    code = make_code(name, **kw)
    A, B = rng.standard_normal((32, 30)), rng.standard_normal((30, 33))
    calls = []
    for fn in ("encode_into", "combine_into"):
        real = getattr(hostops, fn)
        monkeypatch.setattr(
            hostops, fn, lambda *a, _r=real, _n=fn, **k: calls.append(_n) or _r(*a, **k)
        )
    S = list(range(code.recovery_threshold))
    At, Bt = code.encode(A, B)
    prods = [At[w] @ Bt[w] for w in S]
    C = code.decode(prods, S, shape=(32, 33))
    assert calls == []
    monkeypatch.setattr(dispatch, "HOST_LOOPS_FROM", 0)
    At2, Bt2 = code.encode(A, B)
    C2 = code.decode(prods, S, shape=(32, 33))
    assert calls.count("encode_into") == 2 and calls.count("combine_into") == 1
    g = code.grid
    for x, y, terms, G, X in ((At, At2, g.n_a, code.GA, A), (Bt, Bt2, g.n_b, code.GB, B)):
        bound = 2 * _gamma(terms, np.float64) * np.abs(G).sum(axis=1).max() * np.abs(X).max()
        assert np.abs(x - y).max() <= bound
    W = np.abs(code.decode_weights(S).W).sum(axis=1).max()
    bound = 2 * _gamma(len(S), np.float64) * W * max(np.abs(p).max() for p in prods)
    assert np.abs(C - C2).max() <= bound


def test_coded_matmul_with_library(host, rng):
    A = rng.standard_normal((256, 200))
    B = rng.standard_normal((200, 300))
    C, info = coded_matmul(
        A, B, make_code("matdot", m=4, P=8), executor="threads", return_info=True
    )
    assert np.abs(C - A @ B).max() <= info.error_bound


def test_pool_never_overwrites_a_held_stack(host, rng):
    code = make_code("matdot", m=4, P=8)
    A, B = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    At1, Bt1 = code.encode(A, B)
    keep = At1.copy(), Bt1.copy()
    At2, Bt2 = code.encode(2 * A, 2 * B)  # caller still holds At1, Bt1
    assert not np.shares_memory(At1, At2) and not np.shares_memory(Bt1, Bt2)
    np.testing.assert_array_equal(At1, keep[0])
    np.testing.assert_array_equal(Bt1, keep[1])


def test_pool_reuses_released_stacks_and_spares_stragglers(host, rng):
    pool = hostops.WorkspacePool()
    a = pool.empty((32, 16), np.float64)
    addr = a.ctypes.data
    del a
    b = pool.empty((32, 16), np.float64)
    assert b.ctypes.data == addr and pool.hits == 1  # released: reused
    row = b[3]  # a straggler's view of worker 3's block
    b[...] = 1.0
    del b
    seen = []
    go, done = threading.Event(), threading.Event()

    def straggler(v):
        go.wait()
        seen.append(float(v.sum()))
        done.set()

    th = threading.Thread(target=straggler, args=(row,))
    th.start()
    del row
    c = pool.empty((32, 16), np.float64)  # the straggler still reads the old buffer
    assert c.ctypes.data != addr
    c[...] = -5.0
    go.set()
    done.wait(5)
    th.join()
    assert seen == [16.0]


def test_pool_keeps_idle_memory_bounded():
    pool = hostops.WorkspacePool(max_bytes=10_000, max_idle=2)
    for k in range(6):
        pool.empty((100 + 50 * k,), np.float64)  # different sizes: no reuse
    assert pool.nbytes <= 10_000 + 3 * hostops.ALIGN


def test_shapes_that_do_not_fit_are_refused(host):
    X = np.zeros((10, 8))
    G = np.zeros((3, 4))
    with pytest.raises(ValueError, match="do not fit"):
        host.encode_into(X, G, (1, 4), (10, 2), np.empty((3, 10, 1)))  # Y too small
    with pytest.raises(ValueError, match="do not fit"):
        host.encode_into(X, G, (1, 4), (5, 2), np.empty((3, 5, 2)))  # X taller than grid
    Z = [np.zeros((4, 4))] * 3
    with pytest.raises(ValueError, match="do not fit"):
        host.combine_into(np.zeros((1, 3)), Z, (1, 1), np.empty((5, 4)))  # C taller
    with pytest.raises(ValueError, match="do not fit"):
        host.combine_into(np.zeros((1, 2)), Z, (1, 1), np.empty((4, 4)))  # W columns


def test_unsupported_inputs_fall_back(host):
    Y = np.empty((2, 4, 4), np.float16)
    assert not host.encode_into(
        np.zeros((4, 4), np.float16), np.zeros((2, 1), np.float16), (1, 1), (4, 4), Y
    )
    X = np.zeros((4, 8))[:, ::2]  # strided columns
    assert not host.encode_into(X, np.zeros((2, 1)), (1, 1), (4, 4), np.empty((2, 4, 4)))
    Z = [np.zeros((4, 4), np.complex128)]
    assert not host.combine_into(
        np.zeros((1, 1), np.complex128), Z, (1, 1), np.empty((4, 4), np.complex128)
    )


def test_numpy_path_without_library(numpy_only, rng):
    code = make_code("polydot", m=4, P=10)
    A, B = rng.standard_normal((40, 30)), rng.standard_normal((30, 50))
    C, info = coded_matmul(A, B, code, return_info=True)
    assert np.abs(C - A @ B).max() <= info.error_bound


def test_pool_never_overwrites_a_held_result(host, rng):
    """Decode results come from the pool: a result the caller holds is never reused."""
    code = make_code("matdot", m=4, P=8)
    S = list(range(code.recovery_threshold))
    Z1 = [rng.standard_normal((16, 24)) for _ in S]
    C1 = code.decode(Z1, S)
    keep = C1.copy()
    C2 = code.decode([2 * z for z in Z1], S)
    assert not np.shares_memory(C1, C2)
    np.testing.assert_array_equal(C1, keep)
    addr = C2.ctypes.data
    del C2
    C3 = code.decode(Z1, S)  # the dropped result's memory is reused
    assert C3.ctypes.data == addr
    np.testing.assert_array_equal(C3, keep)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T", [0, 5, 13, 21])
def test_take_rows_both_layouts(host, rng, dtype, T):
    """take_rows gives X[index] and X[index[:T]].T exactly (data movement only), for
    row counts on and off the 8-row groups, a row-strided X, repeated indices, fresh
    or caller-owned buffers; the NumPy fallback gives the same arrays."""
    base = rng.standard_normal((40, 30)).astype(dtype)
    X = base[:, :23]  # rows of 23 with a row stride of 30
    idx = rng.integers(0, 40, 21)
    idx[3] = idx[11]
    rows, rows_t = host.take_rows(X, idx, T)
    assert np.array_equal(rows, X[idx]) and rows.dtype == dtype
    assert (rows_t is None) == (T == 0)
    if T:
        assert rows_t.shape == (23, T) and np.array_equal(rows_t, X[idx[:T]].T)
        assert rows_t.flags.c_contiguous
    out, out_t = np.full((21, 23), np.nan, dtype), np.full((23, T), np.nan, dtype)
    r2, t2 = host.take_rows(X, idx, T, out=out, out_t=out_t if T else None)
    assert r2 is out and np.array_equal(out, X[idx])
    if T:
        assert t2 is out_t and np.array_equal(out_t, X[idx[:T]].T)


def test_take_rows_numpy_fallback_and_checks(numpy_only, rng):
    X = rng.standard_normal((9, 4))
    rows, rows_t = hostops.take_rows(X, [8, 0, 3], 2)
    assert np.array_equal(rows, X[[8, 0, 3]]) and np.array_equal(rows_t, X[[8, 0]].T)
    out_t = np.empty((4, 2))
    assert hostops.take_rows(X, [8, 0, 3], 2, out_t=out_t)[1] is out_t
    with pytest.raises(IndexError, match=r"0\.\.8"):
        hostops.take_rows(X, [9])


def test_take_rows_refuses_bad_input(host, rng):
    X = rng.standard_normal((9, 4))
    for bad in ([9], [-1], [0, 3, 12]):  # checked in the loop before anything is read
        with pytest.raises(IndexError, match=r"0\.\.8"):
            host.take_rows(X, bad)
    with pytest.raises(ValueError, match="transposed must lie in 0..2"):
        host.take_rows(X, [0, 1], 3)
    with pytest.raises(ValueError, match="out must be a C-contiguous float64 array"):
        host.take_rows(X, [0, 1], out=np.empty((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"out_t must be .* shape \(4, 2\)"):
        host.take_rows(X, [0, 1], 2, out_t=np.empty((2, 4)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rowmul_wide_is_a_float64_product_in_one_pass(dtype):
    """``rowmul_wide``: M @ W summed in float64 for float32 M (no rounding to float32:
    the difference from the float64 product of the widened M is float64 rounding,
    k·2⁻⁵³ relative to |M||W|), on row-strided views, every S ≤ 8, with max|M|."""
    if not hostops.available():
        pytest.skip("compiled CPU loops not built")
    rng = np.random.default_rng(8)
    big = rng.standard_t(2, (203, 611)).astype(dtype)
    M = big[1:200:2, 3:600]  # strided rows, offset columns
    W = rng.standard_normal((M.shape[1], 8))
    for S in range(1, 9):
        out, amax = hostops.rowmul_wide(M, W[:, :S], absmax=True)
        ref = M.astype(np.float64) @ W[:, :S]
        scale = np.abs(M).astype(np.float64) @ np.abs(W[:, :S])
        assert np.all(np.abs(out - ref) <= 2 * M.shape[1] * 2.0**-53 * scale), S
        assert amax == float(np.abs(M).max())
    assert hostops.rowmul_wide(M, W[:, :4])[1] == 0.0  # no max asked
    assert hostops.rowmul_wide(M, np.ones((M.shape[1], 9))) is None  # S > 8: not here
    assert hostops.rowmul_wide(np.asfortranarray(M), W) is None  # columns contiguous
    small = big[:9, :50]  # below SMALL_ROWMUL: NumPy's float64 product, same contract
    assert small.size <= hostops.SMALL_ROWMUL
    out, amax = hostops.rowmul_wide(small, W[:50], absmax=True)
    assert out.dtype == np.float64 and amax == float(np.abs(small).max())
    ref = small.astype(np.float64) @ W[:50]
    assert np.all(np.abs(out - ref) <= 2 * 50 * 2.0**-53 * (np.abs(small) @ np.abs(W[:50])))
