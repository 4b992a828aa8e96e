"""Run the exact CUDA kernel sources on the CPU (emulation shim + g++) vs NumPy.

Inputs live inside larger buffers whose unused parts hold NaN (reads outside
the matrix would poison the result) or a sentinel (writes outside C are
detected). Tolerances are the a-priori dot-product bounds of
``_harness.reference`` (no tuned constants).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from _harness import emu as E
from _harness.reference import decode_bound, decode_ref, encode_bound, encode_ref

from gpucoded import kernels as K

pytestmark = pytest.mark.skipif(E.compiler() is None, reason="no C++ compiler for the harness")

SENTINEL = 12345.0
DTYPES = (np.float32, np.float64)


@pytest.fixture(scope="module")
def emu() -> E.Emu:
    return E.Emu()


def embedded(rng: np.random.Generator, n: int, k: int, ld: int, dtype, offset: int = 0):
    """An n x k matrix viewed inside an (n+1) x ld NaN-filled buffer, at an element offset."""
    buf = np.full((n + 1) * ld + offset, np.nan, dtype=dtype)
    view = buf[offset : offset + n * ld].reshape(n, ld)[:, :k]
    view[...] = rng.standard_normal((n, k))
    return view


# (n, k, l, p, s, t): MatDot (p=t=1), PolyDot (s=q, t=p), Polynomial (s=1), odd, padded,
# empty trailing blocks, and grids beyond one register chunk (m, R > 16).
SHAPES = [
    (8, 8, 8, 1, 2, 1),
    (37, 29, 23, 1, 3, 1),
    (16, 32, 24, 1, 4, 1),
    (33, 41, 19, 2, 2, 2),
    (30, 20, 45, 3, 2, 3),
    (17, 13, 11, 3, 1, 2),
    (5, 7, 9, 4, 3, 4),
    (64, 64, 64, 2, 4, 2),
    (12, 40, 12, 1, 18, 1),
    (9, 6, 10, 1, 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SHAPES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("pad_ld", [0, 3, 4])
def test_encode_matches_numpy(emu, dtype, case, pad_ld):
    n, k, l, p, s, t = case
    rng = np.random.default_rng(hash((case, pad_ld)) % 2**32)
    for X, grid in (
        (embedded(rng, n, k, k + pad_ld, dtype), (p, s)),
        (embedded(rng, k, l, l + pad_ld, dtype), (s, t)),
    ):
        m = grid[0] * grid[1]
        P = max(1, 2 * m - 1) if m < 10 else m + 3
        G = rng.standard_normal((P, m)).astype(dtype)
        for reverse in (False, True):
            Y = emu.encode(X, G, grid, reverse=reverse)
            Xc = np.ascontiguousarray(X)
            ref = encode_ref(Xc, G, grid)
            assert Y.shape == ref.shape
            assert np.all(np.isfinite(Y)), "read outside the matrix"
            err = np.abs(Y.astype(np.float64) - ref)
            assert np.all(err <= encode_bound(Xc, G, grid)), (emu.last_plan, err.max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SHAPES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("pad_ld", [0, 1, 4])
def test_decode_matches_numpy(emu, dtype, case, pad_ld):
    n, k, l, p, s, t = case
    rng = np.random.default_rng(hash((case, pad_ld, "d")) % 2**32)
    rb, db = K.block_dims(n, l, p, t)
    for R in sorted({1, p * t, p * s * t + 1, 2 * p * s * t - 1, 19}):
        Z = rng.standard_normal((R, rb, db)).astype(dtype)
        W = rng.standard_normal((p * t, R)).astype(dtype)
        ldc = l + pad_ld
        buf = np.full((n + 1, ldc), SENTINEL, dtype=dtype)
        C = buf[:n, :l]
        emu.decode(Z, W, (p, t), C)
        ref = decode_ref(Z, W, (p, t), (n, l))
        err = np.abs(C.astype(np.float64) - ref)
        assert np.all(err <= decode_bound(Z, W, (p, t), (n, l))), (emu.last_plan, R, err.max())
        assert np.all(buf[n] == SENTINEL), "wrote past the last row"
        assert np.all(buf[:, l:] == SENTINEL), "wrote into the leading-dimension gap"


def test_vector_and_scalar_paths_agree(emu):
    """The vectorised instantiation is taken when aligned, the scalar one otherwise."""
    rng = np.random.default_rng(7)
    G = rng.standard_normal((5, 4)).astype(np.float32)
    X = embedded(rng, 32, 64, 64, np.float32)
    Yv = emu.encode(X, G, (2, 2)).copy()
    assert emu.last_plan.vec == 4
    Xs = embedded(rng, 32, 64, 64, np.float32, offset=1)
    Xs[...] = X
    Ys = emu.encode(Xs, G, (2, 2))
    assert emu.last_plan.vec == 1
    np.testing.assert_array_equal(Yv, Ys)


def test_each_instantiation_is_exercised(emu):
    """Every (dtype, vec, maxm) instantiation the planner can pick runs in the harness."""
    seen_e, seen_d = set(), set()
    rng = np.random.default_rng(3)
    for dtype in (*DTYPES, np.float16):
        for m in (3, 7, 12, 20):  # one per register chunk, plus the chunked path
            for cb in (8, 5):  # cb % 8 == 0 allows every vector width, 5 forces scalars
                X = rng.standard_normal((6, m * cb)).astype(dtype)
                G = rng.standard_normal((m + 1, m)).astype(dtype)
                Y = emu.encode(X, G, (1, m))
                seen_e.add(emu.last_plan.name)
                assert np.all(np.abs(Y - encode_ref(X, G, (1, m))) <= encode_bound(X, G, (1, m)))
                Z = rng.standard_normal((m, 6, cb)).astype(dtype)
                W = rng.standard_normal((2, m)).astype(dtype)
                C = np.empty((12, cb), dtype=dtype)
                emu.decode(Z, W, (2, 1), C)
                seen_d.add(emu.last_plan.name)
                assert np.all(
                    np.abs(C - decode_ref(Z, W, (2, 1), C.shape))
                    <= decode_bound(Z, W, (2, 1), C.shape)
                )
    assert seen_e == set(K.all_name_expressions("encode"))
    assert seen_d == set(K.all_name_expressions("decode"))


def test_delay_kernel_spins(emu):
    t0 = time.perf_counter()
    emu.delay(0.02)
    assert time.perf_counter() - t0 >= 0.02


def test_delay_kernel_ends_when_flag_set(emu):
    flag = np.ones(1, dtype=np.int32)
    t0 = time.perf_counter()
    emu.delay(5.0, flag)  # flag already set: returns at once
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_code_matches_core_cpu_path(emu, dtype):
    """The kernels equal the core's NumPy encode/decode for every real code."""
    from gpucoded.codes import CODES, make_code

    rng = np.random.default_rng(0)
    n, k, l = 45, 38, 29
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((k, l)).astype(dtype)
    for name in CODES:
        code = make_code(name, m=4) if name == "polynomial" else make_code(name, m=3)
        if code.is_complex:
            continue
        g = code.grid
        At_ref, Bt_ref = code.encode(A, B)
        GA, GB = code.GA.astype(dtype), code.GB.astype(dtype)
        At = emu.encode(A, GA, (g.p, g.s))
        Bt = emu.encode(B, GB, (g.s, g.t))
        assert np.all(np.abs(At - At_ref) <= encode_bound(A, GA, (g.p, g.s))), name
        assert np.all(np.abs(Bt - Bt_ref) <= encode_bound(B, GB, (g.s, g.t))), name
        S = list(range(code.P))[-max(code.recovery_threshold, 1) :]
        prods = np.stack([At_ref[w] @ Bt_ref[w] for w in S])
        C_ref = code.decode(prods, S, shape=(n, l))
        dw = code.decode_weights(S, fmt=dtype)  # the weights C_ref was decoded with
        order = {w: i for i, w in enumerate(dw.workers)}
        W = np.real(dw.W[:, [order[w] for w in S]]).astype(dtype)
        C = np.empty((n, l), dtype=dtype)
        emu.decode(prods, W, (g.p, g.t), C)
        assert np.all(np.abs(C - C_ref) <= decode_bound(prods, W, (g.p, g.t), (n, l))), name


def test_half_to_float_exhaustive(emu):
    h = np.arange(2**16, dtype=np.uint16).view(np.float16)
    got = emu.half_to_float(h)
    want = h.astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_float_to_half_rounds_to_nearest_even(emu):
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**32, size=400_000, dtype=np.uint64).astype(np.uint32)
    f = bits.view(np.float32)
    # dense around the binary16 range, its edges and its subnormals
    near = (rng.standard_normal(200_000) * np.exp2(rng.uniform(-30, 17, 200_000))).astype(
        np.float32
    )
    edges = np.array(
        [
            0.0,
            -0.0,
            65504,
            65519.996,
            65520,
            65536,
            2**-24,
            2**-25,
            3 * 2**-26,
            2**-25 * 1.0000001,
            2**-14,
            2**-14 * (1 - 2**-11),
            np.inf,
            -np.inf,
        ],
        dtype=np.float32,
    )
    halfway = (
        np.arange(2**15, dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
        + np.uint32(1 << 12)
    ).view(np.float32)
    for x in (f, near, edges, halfway, -halfway):
        with np.errstate(over="ignore", invalid="ignore"):
            want = x.astype(np.float16)
        got = emu.float_to_half(x)
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan)
        assert np.array_equal(got[~nan].view(np.uint16), want[~nan].view(np.uint16))


@pytest.mark.parametrize("case", SHAPES, ids=lambda c: "x".join(map(str, c)))
def test_half_encode_decode(emu, case):
    """binary16 data, float32 coefficients and accumulation, one final rounding."""
    n, k, l, p, s, t = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    X = embedded(rng, n, k, k + 8, np.float16)
    m = p * s
    G = rng.standard_normal((m + 2, m)).astype(np.float32)
    Y = emu.encode(X, G, (p, s))
    Xc = np.ascontiguousarray(X)
    assert np.all(np.isfinite(Y)), "read outside the matrix"
    assert np.all(np.abs(Y - encode_ref(Xc, G, (p, s))) <= encode_bound(Xc, G, (p, s)))
    rb, db = K.block_dims(n, l, p, t)
    for R in sorted({p * t, 2 * m * t - 1, 19}):
        Z = rng.standard_normal((R, rb, db)).astype(np.float16)
        W = rng.standard_normal((p * t, R)).astype(np.float32)
        buf = np.full((n + 1, l + 8), SENTINEL, dtype=np.float16)
        C = buf[:n, :l]
        emu.decode(Z, W, (p, t), C)
        err = np.abs(C.astype(np.float64) - decode_ref(Z, W, (p, t), (n, l)))
        assert np.all(err <= decode_bound(Z, W, (p, t), (n, l))), (emu.last_plan, R)
        assert np.all(buf[n] == SENTINEL) and np.all(buf[:, l:] == SENTINEL)
