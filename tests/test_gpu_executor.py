"""CUDA stream executor on a real GPU: answers, completion order, stragglers, TF32."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from _harness.gpu import requires_gpu

from gpucoded.executors.cuda import CudaStreamExecutor

pytestmark = [pytest.mark.gpu, requires_gpu]


def _stacks(P=6, r=64, c=48, d=40, dtype=np.float64, seed=0):
    import cupy as cp

    rng = np.random.default_rng(seed)
    At = rng.standard_normal((P, r, c)).astype(dtype)
    Bt = rng.standard_normal((P, c, d)).astype(dtype)
    return At, Bt, cp.asarray(At), cp.asarray(Bt)


def test_all_workers_answer_correctly():
    import cupy as cp

    At, Bt, dA, dB = _stacks()
    ex = CudaStreamExecutor()
    with ex.start(dA, dB, workers=range(6)) as run:
        answers = list(run)
    assert sorted(a.worker for a in answers) == list(range(6))
    for a in answers:
        assert a.ok and isinstance(a.product, cp.ndarray)
        np.testing.assert_allclose(a.product.get(), At[a.worker] @ Bt[a.worker], rtol=1e-12)
        assert 0 <= a.start <= a.end
    ex.close()


def test_gpu_delay_orders_answers_and_never_worker():
    At, Bt, dA, dB = _stacks(P=4, r=256, c=256, d=256)
    delays = [0.2, 0.0, math.inf, 0.05]
    ex = CudaStreamExecutor(delay_mode="gpu")
    t0 = time.perf_counter()
    with ex.start(dA, dB, workers=range(4), delays=delays, timeout=5.0) as run:
        order = []
        for a in run:
            order.append(a.worker)
            if len(order) == 3:
                break
    elapsed = time.perf_counter() - t0
    assert order == [1, 3, 0]
    assert elapsed < 4.0  # did not wait for the never-completing worker
    ex.close()  # returns: the cancel released the spinning kernel


def test_host_delay_and_timeout():
    At, Bt, dA, dB = _stacks(P=3)
    ex = CudaStreamExecutor(delay_mode="host")
    with ex.start(dA, dB, workers=[0, 1, 2], delays=[0.0, 0.0, 10.0], timeout=0.3) as run:
        got = [a.worker for a in run]
    assert sorted(got) == [0, 1]


def test_numpy_inputs_give_numpy_answers():
    At, Bt, _, _ = _stacks(P=2)
    ex = CudaStreamExecutor()
    with ex.start(At, Bt, workers=[0, 1]) as run:
        for a in run:
            assert isinstance(a.product, np.ndarray)
            np.testing.assert_allclose(a.product, At[a.worker] @ Bt[a.worker], rtol=1e-12)


def test_float32_workers_do_not_use_tf32():
    """IEEE float32 GEMM error is ~1e-6 relative; TF32 would be ~1e-3."""
    At, Bt, dA, dB = _stacks(P=2, r=512, c=2048, d=512, dtype=np.float32, seed=3)
    ref = At[0].astype(np.float64) @ Bt[0].astype(np.float64)
    for precision, lo, hi in (("ieee", 0, 1e-5), ("tf32", 1e-5, 1.0)):
        ex = CudaStreamExecutor(precision=precision)
        with ex.start(dA, dB, workers=[0]) as run:
            (a,) = list(run)
        rel = np.linalg.norm(a.product.get() - ref) / np.linalg.norm(ref)
        assert lo <= rel < hi, (precision, rel)


def test_multi_gpu_round_robin():
    import cupy as cp

    ndev = cp.cuda.runtime.getDeviceCount()
    if ndev < 2:
        pytest.skip("needs two GPUs")
    At, Bt, dA, dB = _stacks(P=5)
    ex = CudaStreamExecutor(devices=range(ndev))
    with ex.start(dA, dB, workers=range(5)) as run:
        for a in run:
            assert a.product.device.id == dA.device.id
            np.testing.assert_allclose(a.product.get(), At[a.worker] @ Bt[a.worker], rtol=1e-12)


def test_coded_matmul_with_cuda_executor():
    import cupy as cp

    from gpucoded import coded_matmul

    rng = np.random.default_rng(1)
    A = rng.standard_normal((200, 160))
    B = rng.standard_normal((160, 120))
    C, info = coded_matmul(
        cp.asarray(A),
        cp.asarray(B),
        code="matdot",
        m=2,
        P=4,
        executor=CudaStreamExecutor(),
        return_info=True,
    )
    assert isinstance(C, cp.ndarray)
    np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9, atol=1e-9)
