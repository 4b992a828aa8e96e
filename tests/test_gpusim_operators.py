"""Coded operators and progressive decoding on the simulated device (``gpusim``).

* :class:`gpucoded.CodedMatrix` on CuPy arrays keeps each worker's encoded blocks of M
  on that worker's device (:meth:`CudaStreamExecutor.place`): results equal M·X (X·M)
  within the call's own a-priori bound (``CallInfo.error_bound``), and the copies of
  M's blocks (host-to-device and device-to-device, counted by the simulator in bytes)
  happen once, whatever the number of calls.
* The placed copies are ordered by events only: a run started at once after placing,
  with the copies still queued behind a slow stream, reads them after they land.
* :func:`gpucoded.progressive.progressive_matmul` decodes device answers in place:
  no ``(R, rb, db)`` stack of the answers before any of its decodes.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpucoded
from gpucoded.executors.cuda import CudaStreamExecutor, DevicePlaced

pytestmark = pytest.mark.gpusim


def _within_bound(C, ref, info):
    """max|C - ref| <= the call's a-priori bound (ref in float64)."""
    err = np.abs(C.get().astype(np.float64) - ref).max()
    assert np.isfinite(err) and err <= info.error_bound, (err, info.error_bound)


def _m_copies(sim, sizes):
    """Copies (host-to-device, peer, local) of a byte size in ``sizes`` so far."""
    return sum(1 for n in sim.uploads if n in sizes) + sum(
        1 for _, n in sim.copies if n in sizes
    )


@pytest.mark.parametrize("side", ["A", "B"])
@pytest.mark.parametrize("devices", [[0], [0, 1]])
def test_coded_matrix_blocks_stay_on_their_devices(sim, devices, side):
    """M's blocks are copied once (at the first call), results within the bound."""
    import cupy as cp

    rng = np.random.default_rng(21)
    M = rng.standard_normal((48, 36))
    ex = CudaStreamExecutor(devices=devices)
    cm = gpucoded.CodedMatrix(cp.asarray(M), executor=ex)
    n, k = M.shape
    l = 5  # the streamed operand: 5 columns (M·X) or 5 rows (X·M)
    rb, cb, db = cm.code.grid.block_dims(n, k, l) if side == "A" else (
        cm.code.grid.block_dims(l, n, k)
    )
    isz, P = M.itemsize, cm.code.P
    m_block = rb * cb if side == "A" else cb * db  # M's encoded block, elements
    x_block = cb * db if side == "A" else rb * cb
    m_sizes = {j * m_block * isz for j in range(1, P + 1)}  # any per-device stack of M
    other = {j * x_block * isz for j in range(1, P + 1)} | {rb * db * isz, n * l * isz}
    assert not m_sizes & other  # the byte counts tell M's copies from the rest
    counts, syncs0 = [], sim.stats["host_sync:device"]
    base = _m_copies(sim, m_sizes)  # M's own upload (48x36 = 2 blocks of 48x18)
    for _ in range(4):
        if side == "A":
            X = rng.standard_normal((k, l))
            C, info = cm.matmul(cp.asarray(X), failed=[P - 1], return_info=True)
            ref = M @ X
        else:
            X = rng.standard_normal((l, n))
            C, info = cm.rmatmul(cp.asarray(X), failed=[0], return_info=True)
            ref = X @ M
        assert C.device.id == 0 and C.shape == ref.shape
        _within_bound(C, ref, info)
        counts.append(_m_copies(sim, m_sizes) - base)
    placed = next(iter(cm._encoded.values()))
    if len(devices) == 1:
        assert counts == [0] * 4  # the stack stays where it was encoded
    else:
        assert counts == [1] * 4, counts  # one copy to device 1, at the first call
        assert isinstance(placed, DevicePlaced)
        assert set(placed.where.values()) == {0, 1}
        for w, blk in placed.blocks.items():
            assert blk.device.id == placed.where[w]
    assert sim.stats["host_sync:device"] == syncs0  # no device-wide synchronisation
    ex.close()


def test_coded_matrix_with_stragglers_on_two_devices(sim):
    """Delayed and never-answering workers with placed blocks: bound met, streams drain."""
    import math

    import cupy as cp

    rng = np.random.default_rng(25)
    M = rng.standard_normal((40, 32))
    ex = CudaStreamExecutor(devices=[0, 1], never_cap=20.0)
    cm = gpucoded.CodedMatrix(cp.asarray(M), "matdot", m=2, P=5, executor=ex)
    for delays in ([0, 0, 0.03, 0, math.inf], [math.inf, 0.02, 0, 0, 0]):
        X = rng.standard_normal((32, 3))
        C, info = cm.matmul(cp.asarray(X), delays=delays, return_info=True)
        _within_bound(C, M @ X, info)
        assert delays.index(math.inf) not in info.used
    ex.close()  # returns: every spin was released by the run's cancel


def test_start_waits_for_the_placed_copies(sim):
    """A run started right after ``place`` reads the placed blocks only once they landed.

    The copies are queued on side streams, the copying one slowed down by 50 ms; the
    run's worker streams are ordered after them by the placement's events alone.
    """
    import cupy as cp

    rng = np.random.default_rng(22)
    At, Bt = rng.standard_normal((4, 6, 5)), rng.standard_normal((4, 5, 3))
    dA, dB = cp.asarray(At), cp.asarray(Bt)
    cp.cuda.Device(0).synchronize()  # the uploads, before side streams read them
    ex = CudaStreamExecutor(devices=[0, 1])
    with cp.cuda.Device(1):
        s1 = cp.cuda.Stream(non_blocking=True)
    s0 = cp.cuda.Stream(non_blocking=True)
    s0.extra_delay = 0.05  # gathers and peer copies run late
    with cp.cuda.Device(1), s1, cp.cuda.Device(0), s0:
        placed = ex.place(dA)
    assert isinstance(placed, DevicePlaced)
    with ex.start(placed, dB, workers=range(4)) as run:
        got = {a.worker: a.product.get() for a in run}
    assert sorted(got) == [0, 1, 2, 3]
    for w, p in got.items():
        np.testing.assert_allclose(p, At[w] @ Bt[w], rtol=1e-12)
    ex.close()


def test_placed_blocks_of_another_executor_are_refused(sim):
    import cupy as cp

    from gpucoded.executors.base import Placed

    ex = CudaStreamExecutor(devices=[0, 1])
    Bt = cp.asarray(np.ones((2, 3, 4)))
    foreign = Placed({0: None, 1: None}, (2, 5, 3), np.float64, {0: "tcp://x", 1: "tcp://y"})
    with pytest.raises(TypeError, match="place them with this CudaStreamExecutor"):
        ex.start(foreign, Bt, workers=[0, 1])
    placed = ex.place(cp.asarray(np.ones((2, 5, 3))))
    with pytest.raises(ValueError, match=r"workers \[2\] have no placed block"):
        ex.start(placed, Bt, workers=[0, 2])
    other = CudaStreamExecutor(devices=[0, 1], placement=[1, 0]).place(Bt)
    with pytest.raises(ValueError, match="placed on different devices"):
        ex.start(placed, other, workers=[0, 1])


def test_both_sides_placed(sim):
    """Both operands resident: each worker multiplies its two resident blocks."""
    import cupy as cp

    rng = np.random.default_rng(26)
    At, Bt = rng.standard_normal((4, 6, 5)), rng.standard_normal((4, 5, 3))
    ex = CudaStreamExecutor(devices=[0, 1])
    pa, pb = ex.place(cp.asarray(At)), ex.place(cp.asarray(Bt))
    n0 = len(sim.copies)
    with ex.start(pa, pb, workers=[0, 1, 3]) as run:
        got = {a.worker: a.product for a in run}
    assert sorted(got) == [0, 1, 3]
    for w, p in got.items():
        assert p.device.id == 0  # the answers come to the stacks' home device
        np.testing.assert_allclose(p.get(), At[w] @ Bt[w], rtol=1e-12)
    assert all(n == 6 * 3 * 8 for _, n in sim.copies[n0:])  # only answers moved
    ex.close()


def test_numpy_matrix_uploaded_once(sim):
    """A NumPy M on the CUDA executor: its blocks go up once, answers come back as NumPy."""
    rng = np.random.default_rng(23)
    M = rng.standard_normal((30, 24))
    ex = CudaStreamExecutor(devices=[0, 1])
    cm = gpucoded.CodedMatrix(M, executor=ex)
    rb, cb, db = cm.code.grid.block_dims(30, 24, 1)
    assert rb * cb > cm.code.P * cb * db  # an upload of M's blocks outweighs all of x's
    for _ in range(3):
        x = rng.standard_normal(24)
        y, info = cm.matmul(x, return_info=True)
        assert type(y) is np.ndarray
        err = np.abs(y - M @ x).max()
        assert err <= info.error_bound, (err, info.error_bound)
        m_uploads = sum(1 for n in sim.uploads if n >= rb * cb * M.itemsize)
        assert m_uploads == 2  # one stack per device, at the first call only
    ex.close()


def test_progressive_decodes_device_answers_without_stacking(sim, stack_spy):
    """Every progressive decode on the device reads the answers in place (no stack)."""
    import cupy as cp

    from gpucoded.progressive import progressive_matmul

    stacked = stack_spy
    rng = np.random.default_rng(24)
    A, B = rng.standard_normal((16, 12)), rng.standard_normal((12, 10))
    ex = CudaStreamExecutor()
    steps = list(progressive_matmul(cp.asarray(A), cp.asarray(B), "approx_matdot", m=2, P=4,
                                    delays=[0.0, 0.02, 0.04, 0.06], executor=ex))  # fmt: skip
    assert len(steps) >= 2  # several decodes, each checked
    for C, info in steps:
        _within_bound(C, A @ B, info)
    assert all(d == 0 for d in stacked), stacked  # at most scalar sums, never answers
    ex.close()
