"""Lifetime of in-flight work on the simulated device: no call returns while memory
that queued work may still touch can be reused (issue 25, defect 1).

The simulator's pool hands a freed block back to its stream's arena at once (as
CuPy's) and reports any later operation of another stream on it as "use after free";
worker 3's stream is slowed so its GEMM is always abandoned, still queued, when the
call returns; the caller then allocates, so freed blocks are reused at once.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

import gpucoded
from gpucoded import gpu
from gpucoded.executors import cuda as cuda_ex
from gpucoded.executors import get_executor
from gpucoded.executors.cuda import CudaStreamExecutor

pytestmark = pytest.mark.gpusim

SLOW = 0.05  # s added before each operation of worker 3's stream


@pytest.fixture
def slow_worker_3(monkeypatch):
    real = CudaStreamExecutor._streams_of

    def slow(self, dev):
        ds = real(self, dev)
        ds.slots[3].extra_delay = SLOW  # P = 4 workers: worker w runs on stream w
        return ds

    monkeypatch.setattr(CudaStreamExecutor, "_streams_of", slow)


def _executor(how):
    if how == "default":
        return None
    if how == "named":
        return "cuda"
    return CudaStreamExecutor(never_cap=5.0)  # "dropped": never closed, garbage after the call


@pytest.mark.parametrize("how", ["default", "named", "dropped"])
@pytest.mark.parametrize("delay", [0.0, math.inf], ids=["abandoned", "cancelled"])
def test_abandoned_work_never_touches_freed_memory(sim, slow_worker_3, how, delay):
    import cupy as cp

    rng = np.random.default_rng(13)
    A, B = rng.standard_normal((16, 12)), rng.standard_normal((12, 8))
    dA, dB = cp.asarray(A), cp.asarray(B)
    for _ in range(3):
        C, info = gpucoded.coded_matmul(dA, dB, "matdot", m=2, P=4, delays=[0, 0, 0, delay],
                                        executor=_executor(how), return_info=True)  # fmt: skip
        assert 3 not in info.used
        np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9, atol=1e-9)
        del C, info
        gc.collect()  # a dropped executor and its run are gone now
        reuse = [cp.ones((16, 8)) for _ in range(8)]  # the pool hands out freed blocks
        del reuse
    sim.synchronize_all()
    assert not sim.faults, sim.faults
    assert cuda_ex.inflight() == 0  # all of it observed done, and released


def test_a_worker_failing_after_its_launch_keeps_its_memory(sim, slow_worker_3, monkeypatch):
    """A device error reported after the GEMM was queued: an erasure, memory still held."""
    import cupy as cp

    real = gpu.gemm
    calls = []

    def flaky(a, b, mode="ieee", out=None, handle=None):
        calls.append(1)
        res = real(a, b, mode, out=out, handle=handle)
        if len(calls) % 4 == 0:  # the last worker of each call (worker 3)
            raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED")
        return res

    monkeypatch.setattr(gpu, "gemm", flaky)
    rng = np.random.default_rng(14)
    A, B = rng.standard_normal((16, 12)), rng.standard_normal((12, 8))
    dA, dB = cp.asarray(A), cp.asarray(B)
    for _ in range(3):
        C, info = gpucoded.coded_matmul(dA, dB, "matdot", m=2, P=4, return_info=True)
        assert 3 in info.erased
        del C, info
        gc.collect()
        reuse = [cp.ones((16, 8)) for _ in range(8)]
        del reuse
    sim.synchronize_all()
    assert not sim.faults, sim.faults


def test_named_executors_are_long_lived(sim):
    import cupy as cp

    x = cp.zeros(3)
    assert get_executor(None, like=x) is get_executor("cuda", like=x)
    assert get_executor("threads") is get_executor(None, like=np.zeros(3))
    assert get_executor("serial") is get_executor("serial")
    with cp.cuda.Device(1):
        y = cp.zeros(3)
    other = get_executor(None, like=y)
    assert other is not get_executor(None, like=x) and other.devices == [1]
