"""The CuPy path end to end on the simulated device: codes, dtypes, shapes, views,
the fused kernels with their real argument tuples, kernel loading and caching.

Tolerances: the decode's own a-priori bound (``CallInfo.error_bound``) for
``coded_matmul``; the dot-product bounds of ``_harness.reference`` for the kernels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from _harness.reference import decode_bound, decode_ref, encode_bound, encode_ref

import gpucoded
from gpucoded import gpu
from gpucoded import kernels as K
from gpucoded.codes import CODES, make_code

pytestmark = pytest.mark.gpusim
ROOT = Path(__file__).resolve().parent.parent


def _check_product(C, A, B, info):
    """|C - AB| within the call's own a-priori bound (AB in float64)."""
    import cupy as cp

    assert isinstance(C, cp.ndarray) and C.shape == (A.shape[0], B.shape[1])
    ref = A.astype(np.float64) @ B.astype(np.float64)
    err = np.abs(C.get().astype(np.float64) - ref).max()
    assert np.isfinite(err) and err <= info.error_bound, (err, info.error_bound)


def _code(name):
    return make_code(name, m=4) if name == "polynomial" else make_code(name, m=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CODES)
def test_every_code_on_device(sim, name, dtype):
    import cupy as cp

    rng = np.random.default_rng(abs(hash((name, np.dtype(dtype).str))) % 2**32)
    A = rng.standard_normal((37, 29)).astype(dtype)  # odd: every grid pads
    B = rng.standard_normal((29, 23)).astype(dtype)
    code = _code(name)
    failed = [0] if code.can_decode(range(1, code.P)) else []
    C, info = gpucoded.coded_matmul(
        cp.asarray(A), cp.asarray(B), code, failed=failed, return_info=True
    )
    assert C.dtype == dtype
    _check_product(C, A, B, info)


@pytest.mark.parametrize(
    "code",
    [
        make_code("polydot", p=2, q=2, P=9),
        make_code("polynomial", p=2, q=3, P=7),
        make_code("matdot", m=3, P=6),
        make_code("chebyshev", m=5, P=10),
    ],
    ids=repr,
)
def test_padded_grids_with_ld_and_broadcast_views(sim, code):
    """A read in place from a wider buffer (ld > k), B a broadcast view (row stride 0)."""
    import cupy as cp

    rng = np.random.default_rng(3)
    n, k, l = 41, 22, 17
    A = rng.standard_normal((n, k))
    row = rng.standard_normal(l)
    B = np.broadcast_to(row, (k, l))
    buf = cp.full((n, k + 5), cp.nan)
    buf[:, :k] = cp.asarray(A)
    dB = cp.broadcast_to(cp.asarray(row), (k, l))
    assert dB.strides[0] == 0 and buf[:, :k].strides[0] == (k + 5) * 8
    C, info = gpucoded.coded_matmul(buf[:, :k], dB, code, return_info=True)
    _check_product(C, A, B, info)


def test_encode_reads_broadcast_rows_in_bounds(sim):
    """``np.broadcast_to(x, (1000, 5))``: stride 0 is the true leading dimension."""
    import cupy as cp

    row = np.arange(1.0, 6.0)
    X = cp.broadcast_to(cp.asarray(row), (1000, 5))
    G = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
    Y = K.encode(X, G, (2, 1))
    host = np.broadcast_to(row, (1000, 5))
    np.testing.assert_allclose(Y.get(), encode_ref(np.ascontiguousarray(host), G, (2, 1)))
    with pytest.raises(ValueError, match="overlap"):
        K.decode(cp.zeros((1, 10, 5)), np.ones((1, 1)), (1, 1), (10, 5), out=X[:10])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "case",
    [(37, 29, 23, 1, 3, 1), (33, 41, 19, 2, 2, 2), (12, 40, 12, 1, 18, 1), (5, 7, 9, 4, 3, 4)],
)
def test_kernels_with_their_own_launch_tuples(sim, dtype, case):
    """kernels.encode/decode on device arrays (any ld in and out) vs the NumPy reference."""
    import cupy as cp

    n, k, l, p, s, t = case
    rng = np.random.default_rng(sum(case))
    A = rng.standard_normal((n, k)).astype(dtype)
    G = rng.standard_normal((2 * p * s + 1, p * s)).astype(dtype)
    buf = cp.full((n, k + 3), cp.nan, dtype=dtype)
    buf[:, :k] = cp.asarray(A)
    Y = K.encode(buf[:, :k], G, (p, s))
    got = Y.get().astype(np.float64)
    assert np.all(np.abs(got - encode_ref(A, G, (p, s))) <= encode_bound(A, G, (p, s)))
    rb, db = K.block_dims(n, l, p, t)
    for R in sorted({p * t, 2 * p * s * t - 1, 19}):
        Z = rng.standard_normal((R, rb, db)).astype(dtype)
        W = rng.standard_normal((p * t, R)).astype(dtype)
        out = cp.full((n + 1, l + 4), 7.0, dtype=dtype)
        answers = [cp.asarray(z) for z in Z]  # separate answers: no stack
        C = K.decode(answers, W, (p, t), (n, l), out=out[:n, :l])
        err = np.abs(C.get().astype(np.float64) - decode_ref(Z, W, (p, t), (n, l)))
        assert np.all(err <= decode_bound(Z, W, (p, t), (n, l)))
        o = out.get()
        assert np.all(o[n] == 7.0) and np.all(o[:, l:] == 7.0)


def test_kernel_helpers_validate(sim):
    import cupy as cp

    X = cp.zeros((4, 6))
    with pytest.raises(ValueError, match="2-D"):
        K.encode(cp.zeros(4), np.ones((1, 1)), (1, 1))
    with pytest.raises(ValueError, match="G must be"):
        K.encode(X, np.ones((2, 3)), (1, 2))
    with pytest.raises(ValueError, match="P=3"):
        K.encode(X, np.ones((2, 2)), (1, 2), P=3)
    with pytest.raises(ValueError, match="out must be"):
        K.encode(X, np.ones((2, 2)), (1, 2), out=cp.zeros((2, 4, 4)))
    assert K.encode(X, np.ones((0, 2)), (1, 2)).shape == (0, 4, 3)
    Yt = K.encode(cp.asarray(np.arange(24.0).reshape(6, 4)).T, np.ones((1, 1)), (1, 1))
    np.testing.assert_array_equal(Yt.get()[0], np.arange(24.0).reshape(6, 4).T)
    Z = cp.zeros((2, 4, 3))
    with pytest.raises(ValueError, match="tile"):
        K.decode(Z, np.ones((1, 2)), (1, 1), (5, 3))
    with pytest.raises(ValueError, match="W must be"):
        K.decode(Z, np.ones((1, 3)), (1, 1), (4, 3))
    with pytest.raises(ValueError, match="wrong shape"):
        K.decode(Z, np.ones((1, 2)), (1, 1), (4, 3), out=cp.zeros((4, 4)))
    with pytest.raises(ValueError, match="one shape"):
        K.decode([cp.zeros((4, 3)), cp.zeros((4, 2))], np.ones((1, 2)), (1, 1), (4, 3))
    with pytest.raises(ValueError, match="at least one"):
        K.decode([], np.ones((1, 0)), (1, 1), (4, 3))
    assert K.decode(cp.zeros((1, 0, 3)), np.ones((1, 1)), (1, 1), (0, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="unit column stride"):
        K._ld_of(cp.zeros(3))
    with pytest.raises(TypeError):
        gpu.encode_pair(cp.zeros((2, 2), dtype=cp.int32), cp.zeros((2, 2)), 1, 1, (1, 1, 1))
    with pytest.raises(TypeError):
        gpu.decode_products([cp.zeros((2, 2), dtype=cp.int32)], np.ones((1, 1)), (1, 1), (2, 2))


def test_stream_argument_owns_every_allocation(sim):
    """encode/decode(stream=s): the output lives in s's pool arena and the launch is on s."""
    import cupy as cp

    s = cp.cuda.Stream(non_blocking=True)
    X = cp.asarray(np.arange(12.0).reshape(3, 4))
    cp.cuda.get_current_stream().synchronize()  # the upload, before s reads X
    Y = K.encode(X, np.ones((2, 1)), (1, 1), stream=s)
    assert Y._mem.block.arena == s.ptr
    C = K.decode(Y, np.ones((1, 2)), (1, 1), (3, 4), stream=s)
    assert C._mem.block.arena == s.ptr
    np.testing.assert_array_equal(C.get(stream=s), 2 * np.arange(12.0).reshape(3, 4))


def test_raw_kernels_are_built_once(sim):
    import cupy as cp

    X = cp.asarray(np.ones((8, 8)))
    for _ in range(3):
        K.encode(X, np.ones((2, 2)), (1, 2))
    assert sim.stats["kernel_build"] == 1 and sim.stats["module_build"] == 1


def _installed_tree(tmp: Path) -> Path:
    """The package as a non-editable install lays it out (pyproject's package-data)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = meta["tool"]["setuptools"]["package-data"]["gpucoded"]
    src = tmp / "checkout_kernels"  # kernels/ after `cmake --build build` (POST_BUILD copy)
    shutil.copytree(ROOT / "kernels", src)
    names = {ne: f"_Z_fake_{i}" for i, ne in enumerate(
        e for f in K.FAMILIES for e in K.all_name_expressions(f))}  # fmt: skip
    (src / K.FATBIN_NAME).write_bytes(b"fatbin")
    (src / K.NAMES_NAME).write_text(json.dumps(names))
    site = tmp / "site"
    shutil.copytree(ROOT / "gpucoded", site / "gpucoded", symlinks=True,
                    ignore=shutil.ignore_patterns("_kernels", "__pycache__"))  # fmt: skip
    dest = site / "gpucoded" / "_kernels"
    for g in (g for g in globs if g.startswith("_kernels/")):  # _host/: plain sources
        for f in src.glob(g[len("_kernels/") :]):
            (dest / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest / f.relative_to(src))
    return site


def test_installed_package_loads_the_fatbin(sim, tmp_path, monkeypatch):
    """After a non-editable install the fatbin ships in gpucoded/_kernels and is used."""
    site = _installed_tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("GPUCODED_FATBIN", "GPUCODED_JIT")}
    env["PYTHONPATH"] = str(site)
    code = "import gpucoded.kernels as K; print(K.fatbin_path()); print(K.use_fatbin())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    path, used = out.stdout.split()
    assert path == str(site / "gpucoded" / "_kernels" / K.FATBIN_NAME) and used == "True"
    # the fatbin path through RawModule(path=...) and the name map, on the device
    import cupy as cp

    monkeypatch.setenv("GPUCODED_FATBIN", path)
    monkeypatch.delenv("GPUCODED_JIT", raising=False)
    X = cp.asarray(np.arange(6.0).reshape(2, 3))
    Y = K.encode(X, np.array([[2.0]]), (1, 1))
    np.testing.assert_array_equal(Y.get()[0], 2 * np.arange(6.0).reshape(2, 3))
    assert sim.stats["module_build"] == 1


def test_weights_cached_per_answer_set_not_arrival_order(sim, monkeypatch):
    """Every arrival order of one answer set reuses one device copy of its weights."""
    import cupy as cp

    uploads = []
    real = K._upload
    monkeypatch.setattr(K, "_upload", lambda h: uploads.append(h.shape) or real(h))
    code = make_code("matdot", m=2, P=4)
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((6, 8)), rng.standard_normal((8, 5))
    At, Bt = code.encode(A, B)
    prods = {w: cp.asarray(At[w] @ Bt[w]) for w in range(4)}
    import itertools

    sets = set()
    for S in itertools.combinations(range(4), 3):
        for order in itertools.permutations(S):
            C = code.decode([prods[w] for w in order], list(order), shape=(6, 5))
            np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9, atol=1e-9)
            sets.add(S)
    w_uploads = [s for s in uploads if s == (1, 3)]
    assert len(w_uploads) == len(sets) == 4  # not 24 (one per arrival order)


def test_decode_makes_no_stacked_copy(sim, stack_spy):
    """coded_matmul's decode reads the answers in place: no (R, rb, db) stack."""
    import cupy as cp

    stacked = stack_spy
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((20, 12)), rng.standard_normal((12, 10))
    C, info = gpucoded.coded_matmul(cp.asarray(A), cp.asarray(B), "matdot", m=3, P=5,
                                    return_info=True)  # fmt: skip
    _check_product(C, A, B, info)
    assert all(d == 0 for d in stacked), stacked  # only the per-answer finiteness sums


def test_coefficient_cache_eviction_never_synchronises(sim, monkeypatch):
    import cupy as cp

    monkeypatch.setattr(K, "_COEF_CACHE_SIZE", 4)
    X = cp.asarray(np.ones((4, 4)))
    cp.cuda.get_current_stream().synchronize()  # the upload, before another stream reads X
    n0 = sim.stats["host_sync"]
    for i in range(12):
        K.encode(X, np.full((1, 1), float(i)), (1, 1))
    assert sim.stats["host_sync"] == n0
    assert len(K._COEF_CACHE) == 4
    s = cp.cuda.Stream(non_blocking=True)
    with s:  # a cached copy used from another stream: ordered by an event
        Y = K.encode(X, np.full((1, 1), 11.0), (1, 1))
        np.testing.assert_array_equal(Y.get(stream=s), np.full((1, 4, 4), 11.0))
