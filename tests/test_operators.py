"""CodedMatrix: encode once, multiply many; np.matmul semantics; the call options."""

from __future__ import annotations

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded import operators
from gpucoded.errors import InaccurateResultWarning
from gpucoded.executors.local import SerialExecutor
from gpucoded.reference import exact_product


def _err_ok(C, E, info):
    return np.abs(C - E).max() <= info.error_bound


@pytest.mark.parametrize("name,opts", [("chebyshev", {"m": 3}), ("polydot", {"p": 2, "q": 2})])
def test_both_sides_match_the_exact_product_within_the_bound(name, opts):
    M = unit_gaussian((37, 29), 1)
    cm = gpucoded.CodedMatrix(M, name, **opts)
    A, X = unit_gaussian((11, 37), 2), unit_gaussian((29, 13), 3)
    C, info = cm.rmatmul(A, failed=[0], return_info=True)
    assert C.shape == (11, 29) and _err_ok(C, exact_product(A, M), info)
    assert 0 not in info.used
    C, info = cm.matmul(X, failed=[1], return_info=True)
    assert C.shape == (37, 13) and _err_ok(C, exact_product(M, X), info)


def test_operators_and_numpy_arrays():
    M = unit_gaussian((20, 15), 4)
    cm = gpucoded.CodedMatrix(M)
    x, y = unit_gaussian((15,), 5), unit_gaussian((20,), 6)
    np.testing.assert_allclose(cm @ x, M @ x, rtol=0, atol=1e-14)
    np.testing.assert_allclose(y @ cm, y @ M, rtol=0, atol=1e-14)  # ndarray defers to cm
    S = unit_gaussian((3, 2, 20), 7)
    np.testing.assert_allclose(S @ cm, S @ M, rtol=0, atol=1e-14)
    T = unit_gaussian((4, 15, 3), 8)
    np.testing.assert_allclose(cm @ T, M @ T, rtol=0, atol=1e-14)


def test_each_side_is_encoded_once(monkeypatch):
    """M is encoded once per side (and dtype); each call encodes only the other operand."""
    sides = []
    real = operators.encode_side
    monkeypatch.setattr(
        operators,
        "encode_side",
        lambda code, X, side, dims, **kw: sides.append(X.shape) or real(code, X, side, dims, **kw),
    )
    M = unit_gaussian((24, 16), 9)
    cm = gpucoded.CodedMatrix(M, "chebyshev", m=2)
    for seed in range(3):
        cm @ unit_gaussian((16,), seed)
        unit_gaussian((5, 24), seed) @ cm
    assert sides.count((24, 16)) == 2  # M: once as A, once as B
    assert len(sides) == 2 + 6


def test_call_options_and_front_door():
    M = unit_gaussian((12, 10), 10)
    cm = gpucoded.CodedMatrix(M, "matdot", m=2, P=4, executor="serial")
    x = unit_gaussian((10,), 11)
    out = np.empty(12)
    r = cm.matmul(x, out=out, failed=3, delays=[0, 0.1, 0, 0])
    assert r is out and np.abs(out - M @ x).max() < 1e-13
    with pytest.raises(ValueError, match="out has shape"):
        cm.matmul(x, out=np.empty(11))
    with pytest.raises(ValueError, match="dtype"):
        cm.matmul(x, out=np.empty(12, np.float32))
    with pytest.raises(TypeError, match=r"unknown option.*\['gamma'\]"):
        cm.matmul(x, gamma=3.0)
    with pytest.raises(TypeError, match="fixed at construction"):
        cm.matmul(x, executor="threads")
    with pytest.raises(ValueError, match="inner dimensions"):
        cm @ np.ones(11)
    with pytest.raises(ValueError, match="2-D"):
        gpucoded.CodedMatrix(np.ones(3))


def test_guard_on_operator_points_at_the_caller():
    M = unit_gaussian((40, 40), 12)
    cm = gpucoded.CodedMatrix(M, "approx_matdot", m=3, P=5, gamma=20.0, executor="serial")
    with pytest.warns(InaccurateResultWarning) as rec:
        cm.matmul(unit_gaussian((40, 40), 13))
    assert rec[0].filename == __file__


def test_float32_operator_stays_float32():
    M = unit_gaussian((30, 20), 14, np.float32)
    cm = gpucoded.CodedMatrix(M)
    x = unit_gaussian((20,), 15, np.float32)
    y = cm @ x
    E = exact_product(M, x[:, None])[:, 0]
    assert y.dtype == np.float32
    assert np.abs(y - E).max() <= 8 * np.finfo(np.float32).eps * np.abs(E).max()


def test_placed_blocks_go_to_start(monkeypatch):
    """Executor.place is called once per side; its handle is what start receives."""
    placed, started = [], []

    class Spy(SerialExecutor):
        def place(self, Xt):
            placed.append(Xt.shape)
            return Xt

        def start(self, At, Bt, **kw):
            started.append((id(At), id(Bt)))
            return super().start(At, Bt, **kw)

    cm = gpucoded.CodedMatrix(unit_gaussian((8, 6), 16), executor=Spy())
    for _ in range(3):
        cm @ np.ones(6)
    assert len(placed) == 1 and len({a for a, _ in started}) == 1


def test_dask_ships_only_the_other_operand():
    pytest.importorskip("distributed")
    from gpucoded.executors.dask import local_executor

    ex = local_executor()
    M = unit_gaussian((200, 100), 17)
    cm = gpucoded.CodedMatrix(M, "chebyshev", m=2, executor=ex)
    x = unit_gaussian((100,), 18)
    b0 = ex.bytes_sent
    y = cm @ x
    first = ex.bytes_sent - b0
    b1 = ex.bytes_sent
    y2, info = cm.matmul(x, return_info=True)
    per_call = ex.bytes_sent - b1
    assert max(np.abs(y - M @ x).max(), np.abs(y2 - M @ x).max()) < 1e-12
    # a later call ships each running worker's block of x only: P blocks of 50 floats
    assert per_call == cm.code.P * 50 * 8
    assert first == per_call + cm.code.P * 200 * 50 * 8


def test_dask_runs_each_worker_where_its_block_was_placed(monkeypatch):
    """With a failed worker the round-robin over running workers shifts; the tasks must
    still go to the Dask worker that holds their placed block."""
    pytest.importorskip("distributed")
    from gpucoded.executors.base import Placed
    from gpucoded.executors.dask import local_executor

    ex = local_executor()
    cm = gpucoded.CodedMatrix(unit_gaussian((40, 30), 19), "chebyshev", m=2, executor=ex)
    x = unit_gaussian((30,), 20)
    cm @ x  # places M's blocks
    (placed,) = cm._encoded.values()
    assert isinstance(placed, Placed) and len(set(placed.where.values())) > 1
    sent = []
    real = ex.client.submit
    monkeypatch.setattr(
        ex.client, "submit", lambda *a, **k: sent.append((k["key"], k["workers"])) or real(*a, **k)
    )
    y = cm.matmul(x, failed=[0])
    assert np.abs(y - cm.M @ x).max() < 1e-12
    for key, workers in sent:
        w = int(key.rsplit("-w", 1)[1])
        assert workers == [placed.where[w]], (w, workers)


@pytest.mark.parametrize("side", ["A", "B"])
def test_encode_side_for_some_workers_is_those_rows_of_the_full_stack(side):
    """encode_side(..., workers) and (..., G=rows) give exactly the full stack's slabs
    of those workers (the same length-n_a/n_b sums; ragged shapes pad every block)."""
    code = gpucoded.make_code("polydot", p=2, q=2, P=12)
    A, B = unit_gaussian((9, 7), 12), unit_gaussian((7, 11), 13)
    X = A if side == "A" else B
    dims = code.grid.block_dims(9, 7, 11)
    full = operators.encode_side(code, X, side, dims)
    workers = [7, 2, 11]
    G = (code.GA if side == "A" else code.GB)[workers]
    assert np.array_equal(operators.encode_side(code, X, side, dims, workers), full[workers])
    assert np.array_equal(operators.encode_side(code, X, side, dims, G=G), full[workers])
    X32 = X.astype(np.float32)  # the work dtype follows X, G is cast to it
    assert operators.encode_side(code, X32, side, dims, workers).dtype == np.float32


class _CountingMean(np.ndarray):
    """An ndarray that counts the ``mean`` reductions taken of it (and of its views)."""

    means = 0

    def mean(self, *a, **k):
        _CountingMean.means += 1
        return np.asarray(self).mean(*a, **k)


def test_no_pass_over_M_per_call_for_its_means():
    """M's row and column means (the estimate's μ_M) are taken once, not per call: for
    a matrix–vector product a pass over M costs as much as the GEMVs' share of it."""
    M = (np.random.default_rng(21).random((40, 30)) + 3.0).view(_CountingMean)
    cm = gpucoded.CodedMatrix(M, "chebyshev", m=2, P=4, executor=SerialExecutor())
    cm @ np.ones(30), np.ones(40) @ cm  # first calls: μ_M of each side
    _CountingMean.means = 0
    for seed in range(3):
        cm @ unit_gaussian((30,), seed)
        unit_gaussian((40,), seed) @ cm
    assert _CountingMean.means == 0


@pytest.mark.parametrize("data", ["non-centred", "sparse", "heavy-tailed"])
def test_operator_bounds_and_estimate_are_those_of_coded_matmul(data):
    """The operator's kept ρ_M and μ_M give the same a-priori bound and model estimate
    as coded_matmul on the same operands (both sides; the means matter for
    non-centred data, where the estimate's mean part dominates)."""
    rng = np.random.default_rng(22)
    M = {
        "non-centred": rng.random((36, 28)) + 5.0,
        "sparse": rng.random((36, 28)) * (rng.random((36, 28)) < 0.1),
        "heavy-tailed": rng.standard_cauchy((36, 28)),
    }[data]
    cm = gpucoded.CodedMatrix(M, "chebyshev", m=2, P=4, executor=SerialExecutor())
    X, A = rng.random((28, 3)) + 1.0, rng.random((5, 36)) + 1.0
    for (C, info), (C2, info2) in (
        (cm.matmul(X, return_info=True),
         gpucoded.coded_matmul(M, X, "chebyshev", m=2, P=4, executor="serial",
                               return_info=True)),
        (cm.rmatmul(A, return_info=True),
         gpucoded.coded_matmul(A, M, "chebyshev", m=2, P=4, executor="serial",
                               return_info=True)),
    ):  # fmt: skip
        assert info.used == info2.used
        np.testing.assert_allclose(info.decode.estimate, info2.decode.estimate, rtol=1e-12)
        np.testing.assert_allclose(info.error_bound, info2.error_bound, rtol=1e-12)
        np.testing.assert_allclose(C, C2, rtol=1e-12, atol=0)
