"""Control flow of the CUDA executor on the CPU, with a fake CuPy (no GPU needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _harness import fakecupy

from gpucoded import gpu
from gpucoded import kernels as K
from gpucoded.executors.cuda import CudaStreamExecutor


@pytest.fixture
def fake(monkeypatch):
    return fakecupy.install(monkeypatch, K)


def _stacks(P=4):
    rng = np.random.default_rng(0)
    At = fakecupy._wrap(rng.standard_normal((P, 5, 4)))
    Bt = fakecupy._wrap(rng.standard_normal((P, 4, 3)))
    return At, Bt


def test_answers_in_completion_order_with_gpu_delays(fake):
    At, Bt = _stacks()
    ex = CudaStreamExecutor()
    with ex.start(At, Bt, workers=range(4), delays=[0.06, 0.0, 0.03, math.inf]) as run:
        answers = []
        for a in run:
            answers.append(a)
            if len(answers) == 3:
                break
    assert [a.worker for a in answers] == [1, 2, 0]
    for a in answers:
        np.testing.assert_allclose(a.product, np.asarray(At[a.worker]) @ np.asarray(Bt[a.worker]))
    assert answers[2].end - answers[2].start >= 0.06 - 1e-3
    # the never-completing worker spins up to the cap; every spin watches one flag ...
    assert fake["delay"] == [0.06, 0.03, ex.never_cap]
    assert len({id(f) for f in fake["flags"]}) == 1 and fake["flags"][0] is not None
    assert len(fake["memset"]) == 1  # ... set by the cancel on leaving the block


def test_timeout_stops_waiting(fake):
    At, Bt = _stacks(3)
    ex = CudaStreamExecutor(delay_mode="host")
    with ex.start(At, Bt, workers=[0, 1, 2], delays=[0.0, 5.0, 0.0], timeout=0.1) as run:
        got = sorted(a.worker for a in run)
    assert got == [0, 2]
    assert fake["delay"] == []


def test_never_in_host_mode_launches_nothing(fake):
    At, Bt = _stacks(2)
    ex = CudaStreamExecutor(delay_mode="host")
    with ex.start(At, Bt, workers=[0, 1], delays=[math.inf, 0.0], timeout=0.2) as run:
        got = [a.worker for a in run]
    assert got == [1]
    assert fake["memset"] == []


def test_multi_device_copies_once_and_gathers_home(fake):
    At, Bt = _stacks(5)
    ex = CudaStreamExecutor(devices=[0, 1, 2])
    with ex.start(At, Bt, workers=[0, 1, 3, 4]) as run:
        answers = list(run)
    assert sorted(a.worker for a in answers) == [0, 1, 3, 4]
    for a in answers:
        np.testing.assert_allclose(a.product, np.asarray(At[a.worker]) @ np.asarray(Bt[a.worker]))
    assert gpu.place_workers([0, 1, 3, 4], [0, 1, 2]) == {0: 0, 1: 1, 3: 2, 4: 0}


def test_precision_is_set_and_restored(fake):
    At, Bt = _stacks(1)
    ex = CudaStreamExecutor(precision="tf32")
    seen = []
    orig = fakecupy.np.matmul

    import sys

    cp = sys.modules["cupy"]
    lin = sys.modules["cupy._core._routines_linalg"]

    def spy(a, b):
        seen.append(lin.get_compute_type(np.float32))
        return fakecupy._wrap(orig(a, b))

    cp.matmul = spy
    with ex.start(At, Bt, workers=[0]) as run:
        list(run)
    assert seen == [gpu.PRECISIONS["tf32"]]
    assert lin.get_compute_type(np.float32) == 1  # restored


def test_numpy_inputs_round_trip(fake):
    rng = np.random.default_rng(1)
    At = rng.standard_normal((2, 3, 3))
    Bt = rng.standard_normal((2, 3, 3))
    ex = CudaStreamExecutor()
    with ex.start(At, Bt, workers=[0, 1]) as run:
        for a in run:
            assert type(a.product) is np.ndarray
            np.testing.assert_allclose(a.product, At[a.worker] @ Bt[a.worker])


def test_worker_error_is_an_erasure(fake):
    At, Bt = _stacks(2)
    import sys

    cp = sys.modules["cupy"]

    def boom(a, b):
        raise RuntimeError("cublas failure")

    cp.matmul = boom
    ex = CudaStreamExecutor()
    with ex.start(At, Bt, workers=[0, 1]) as run:
        answers = list(run)
    assert len(answers) == 2 and not any(a.ok for a in answers)
    assert all(isinstance(a.error, RuntimeError) for a in answers)
