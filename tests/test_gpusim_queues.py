"""Hardware queues and cuBLAS handles on the simulated device (issue 25, defects 3-4).

CUDA gives a context ``CUDA_DEVICE_MAX_CONNECTIONS`` hardware queues (default 8);
streams beyond that share them round robin, and a waiting operation (a straggler's
spin) blocks every later operation of every stream on its queue. The simulator models
this (``tests/_harness/cudasim.py``); these tests show the blocking with one stream per
worker (the executor before the fix) and its absence with the executor's planned
worker streams, and that concurrent worker GEMMs never share a cuBLAS handle.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpucoded import gpu
from gpucoded.executors.cuda import CudaStreamExecutor

pytestmark = pytest.mark.gpusim

DELAY = 0.3  # s: the straggler's spin


@pytest.fixture
def sim8(monkeypatch):
    """The simulated device with CUDA's default 8 hardware queues per device."""
    from _harness import cudasim

    monkeypatch.setenv("CUDA_DEVICE_MAX_CONNECTIONS", "8")
    s = cudasim.install(monkeypatch)
    yield s
    s.teardown()


def test_streams_sharing_a_queue_block_each_other(sim8):
    """The model: stream 9 shares stream 1's queue and waits behind its spin; stream 2
    (a queue of its own) does not."""
    import cupy as cp

    from gpucoded import kernels as K

    assert sim8.connections == 8
    streams = [cp.cuda.Stream(non_blocking=True) for _ in range(9)]  # null stream: queue 0
    assert streams[8]._hw is streams[0]._hw and streams[1]._hw is not streams[0]._hw
    K.delay(DELAY, stream=streams[0])
    spun = streams[0].record()
    alone, behind = streams[1].record(), streams[8].record()
    behind.synchronize()
    alone.synchronize()
    assert cp.cuda.get_elapsed_time(spun, behind) >= 0  # finished after the spin
    assert cp.cuda.get_elapsed_time(alone, spun) > 0  # finished before the spin ended


def _all_answers(ex, P, delayed):
    import cupy as cp

    rng = np.random.default_rng(20)
    At, Bt = rng.standard_normal((P, 8, 6)), rng.standard_normal((P, 6, 4))
    delays = [0.0] * P
    delays[delayed] = DELAY
    with ex.start(cp.asarray(At), cp.asarray(Bt), workers=range(P), delays=delays) as run:
        answers = list(run)
    return [a.worker for a in answers], max(a.end for a in answers if a.worker != delayed)


@pytest.mark.parametrize("planned", [False, True], ids=["stream_per_worker", "planned"])
def test_a_delayed_worker_blocks_no_other_worker(sim8, monkeypatch, planned, record_property):
    """P = 16 workers on 8 queues, worker 3 delayed: it must answer last.

    One stream per worker (``planned=False``, the executor before the fix) puts worker
    3 and a later worker on one queue, which then answers after the delay; the
    planned streams (6 here: 8 queues less the legacy and control streams) give the
    delayed worker a stream and queue of its own.
    """
    P = 16
    if not planned:
        monkeypatch.setattr(gpu, "worker_stream_slots", lambda: P)
    ex = CudaStreamExecutor()
    order, last = _all_answers(ex, P, delayed=3)
    record_property("last_undelayed_answer_s", last)  # the effect, in device time
    ds = ex._streams_of(0)
    assert len(ds.slots) == (P if not planned else 8 - 2)
    if planned:
        assert order[-1] == 3, order
    else:
        assert order[-1] != 3, order  # a worker sharing its queue came after it
    ex.close()


def test_too_many_delayed_workers_is_said(sim8):
    ex = CudaStreamExecutor()
    with pytest.warns(UserWarning, match="delayed workers share streams"):
        import cupy as cp

        At = cp.asarray(np.ones((10, 2, 2)))
        with ex.start(At, At, workers=range(10), delays=[0.01] * 10) as run:
            assert sorted(a.worker for a in run) == list(range(10))
    ex.close()


def test_connections_requested_before_any_context(monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_MAX_CONNECTIONS", raising=False)
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)  # as if imported
    assert gpu.request_connections() is False  # a context may exist: left alone
    monkeypatch.delitem(__import__("sys").modules, "cupy")
    assert gpu.request_connections() is True
    assert gpu.hardware_queues() == 32 and gpu.worker_stream_slots() == 30
    monkeypatch.setenv("CUDA_DEVICE_MAX_CONNECTIONS", "4")
    assert gpu.request_connections() is False and gpu.worker_stream_slots() == 2


@pytest.mark.parametrize("own_handles", [False, True])
def test_concurrent_worker_gemms_never_share_a_handle(sim, monkeypatch, own_handles):
    """Each worker stream has its own cuBLAS handle, created once; without them
    (CuPy's per-thread handle) concurrent GEMMs share one handle and its workspace."""
    import cupy as cp

    import gpucoded

    if not own_handles:
        real = gpu.gemm
        monkeypatch.setattr(gpu, "gemm", lambda a, b, mode="ieee", out=None, handle=None:
                            real(a, b, mode, out=out))  # fmt: skip
    ex = CudaStreamExecutor()
    rng = np.random.default_rng(21)
    A, B = rng.standard_normal((32, 24)), rng.standard_normal((24, 16))
    for s in ex._streams_of(0).slots:
        s.extra_delay = 0.002  # GEMMs of several streams are queued at once
    for precision in ("ieee", "pedantic"):
        ex.precision = precision
        for _ in range(3):
            C = gpucoded.coded_matmul(cp.asarray(A), cp.asarray(B), "matdot", m=2, P=6,
                                      executor=ex)  # fmt: skip
            np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9, atol=1e-9)
    if own_handles:
        assert sim.stats["gemm_shared_handle"] == 0
        assert sim.stats["cublas_create"] == len(ex._streams_of(0).slots)  # once
    else:
        assert sim.stats["gemm_shared_handle"] > 0
    ex.close()
