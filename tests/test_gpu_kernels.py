"""Fused kernels on a real GPU vs the NumPy reference and the core's CPU path."""

from __future__ import annotations

import time

import numpy as np
import pytest
from _harness.gpu import requires_gpu
from _harness.reference import decode_bound, decode_ref, encode_bound, encode_ref

from gpucoded import kernels as K

pytestmark = [pytest.mark.gpu, requires_gpu]

SHAPES = [
    (37, 29, 23, 1, 3, 1),
    (33, 41, 19, 2, 2, 2),
    (30, 20, 45, 3, 2, 3),
    (17, 13, 11, 3, 1, 2),
    (5, 7, 9, 4, 3, 4),
    (256, 512, 384, 2, 4, 2),
    (12, 40, 12, 1, 18, 1),
    (1000, 1001, 999, 2, 3, 2),
]


@pytest.fixture(params=["jit", "fatbin"])
def mode(request, monkeypatch):
    if request.param == "fatbin":
        if K.fatbin_path() is None:
            pytest.skip("no CMake-built fatbin")
        monkeypatch.setenv("GPUCODED_JIT", "0")
    else:
        monkeypatch.setenv("GPUCODED_JIT", "1")
    return request.param


def _check(got, ref, bound):
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape
    # FMA contraction and -ftz only tighten/loosen at the denormal level: bound + tiny
    tiny = np.finfo(np.float32).tiny
    assert np.all(np.abs(got - ref) <= bound + tiny)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("case", SHAPES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("pad_ld", [0, 3])
def test_encode_decode_gpu(mode, dtype, case, pad_ld):
    import cupy as cp

    n, k, l, p, s, t = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    A = rng.standard_normal((n, k)).astype(dtype)
    G = rng.standard_normal((2 * p * s + 1, p * s)).astype(dtype)
    buf = cp.full((n, k + pad_ld), cp.nan, dtype=dtype)
    buf[:, :k] = cp.asarray(A)
    Y = K.encode(buf[:, :k], cp.asarray(G), (p, s))
    _check(Y.get(), encode_ref(A, G, (p, s)), encode_bound(A, G, (p, s)))

    rb, db = K.block_dims(n, l, p, t)
    for R in sorted({p * t, 2 * p * s * t - 1, 20}):
        Z = rng.standard_normal((R, rb, db)).astype(dtype)
        W = rng.standard_normal((p * t, R)).astype(dtype)
        out = cp.full((n + 1, l + pad_ld), 7.0, dtype=dtype)
        C = K.decode(cp.asarray(Z), cp.asarray(W), (p, t), (n, l), out=out[:n, :l])
        _check(C.get(), decode_ref(Z, W, (p, t), (n, l)), decode_bound(Z, W, (p, t), (n, l)))
        o = out.get()
        assert np.all(o[n] == 7.0) and np.all(o[:, l:] == 7.0)


def test_encode_transposed_view(mode):
    import cupy as cp

    rng = np.random.default_rng(5)
    A = rng.standard_normal((50, 70))
    G = rng.standard_normal((5, 4))
    Y = K.encode(cp.asarray(A).T, cp.asarray(G), (2, 2))  # F-ordered view: copied first
    ref = encode_ref(np.ascontiguousarray(A.T), G, (2, 2))
    _check(Y.get(), ref, encode_bound(np.ascontiguousarray(A.T), G, (2, 2)))


def test_every_code_encode_matches_cpu_path():
    """For every real code, the fused kernels equal the core's encode/decode on GPU."""
    import cupy as cp

    from gpucoded import gpu
    from gpucoded.codes import CODES, make_code

    rng = np.random.default_rng(0)
    n, k, l = 96, 80, 72
    A = rng.standard_normal((n, k))
    B = rng.standard_normal((k, l))
    for name in CODES:
        code = make_code(name, m=2) if name != "polynomial" else make_code(name, m=4)
        if code.is_complex:
            continue
        g = code.grid
        At_ref, Bt_ref = code.encode(A, B)
        At, Bt = gpu.encode_pair(cp.asarray(A), cp.asarray(B), code.GA, code.GB, (g.p, g.s, g.t))
        _check(At.get(), At_ref, encode_bound(A, code.GA, (g.p, g.s)))
        _check(Bt.get(), Bt_ref, encode_bound(B, code.GB, (g.s, g.t)))
        S = list(range(code.P))[: max(code.recovery_threshold, 1)]
        prods = np.stack([At_ref[w] @ Bt_ref[w] for w in S])
        C_ref = code.decode(prods, S, shape=(n, l))
        dw = code.decode_weights(S)
        order = {w: i for i, w in enumerate(dw.workers)}
        W = np.real(dw.W[:, [order[w] for w in S]]).astype(np.float64)
        C = gpu.decode_products(cp.asarray(prods), W, (g.p, g.t), (n, l))
        _check(C.get(), np.real(C_ref), decode_bound(prods, W, (g.p, g.t), (n, l)))


def test_delay_kernel_takes_time():
    import cupy as cp

    s = cp.cuda.Stream(non_blocking=True)
    e0, e1 = cp.cuda.Event(), cp.cuda.Event()
    e0.record(s)
    K.delay(0.05, stream=s)
    e1.record(s)
    e1.synchronize()
    assert cp.cuda.get_elapsed_time(e0, e1) >= 45.0  # ms; globaltimer granularity ~1 us


def test_delay_released_by_flag():
    """The spin ends when another stream sets its flag. The flag is zeroed on the spin's
    own stream and the release waits for the zeroing: zeroed on the legacy stream,
    nothing would order the zeroing before the spin on a non-blocking stream (the spin
    could read the pool's old bytes and end at once, or the zeroing could land after
    the release)."""
    import cupy as cp

    s = cp.cuda.Stream(non_blocking=True)
    ctl = cp.cuda.Stream(non_blocking=True)
    with s:
        flag = cp.zeros(1, dtype=cp.int32)
    zeroed = s.record()
    K.delay(30.0, flag=flag, stream=s)
    e = cp.cuda.Event()
    e.record(s)
    assert not e.done
    ctl.wait_event(zeroed)  # the release must not overtake the zeroing
    cp.cuda.runtime.memsetAsync(flag.data.ptr, 1, 4, ctl.ptr)
    t0 = time.perf_counter()
    e.synchronize()
    assert time.perf_counter() - t0 < 5.0
    ctl.synchronize()  # the flag is freed on return: the release has run
