"""A warm CUDA-path call creates nothing and synchronises the host once (issue 21, item 4).

After one warm-up call with the same shapes, a ``coded_matmul`` on device inputs with the
default executor may create no stream, event, cuBLAS handle, module or kernel, may only
reuse pool blocks (no new device allocation), launches a fixed number of kernels (two
encodes, one decode) and GEMMs (one per worker), and synchronises the host once (the
answers' batched check). The simulator counts all of these (``Sim.stats``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import gpucoded

pytestmark = pytest.mark.gpusim

CREATIONS = ("stream_create", "event_create", "cublas_create", "module_build", "kernel_build",
             "pool_grow")  # fmt: skip


def _call(dA, dB, code):
    # one answer set on every call (P - 1 = threshold answers): its decode weights are
    # cached on the device after the warm-up, as a steady workload's are
    return gpucoded.coded_matmul(dA, dB, code, failed=[code.P - 1], return_info=True)


def _warm_delta(sim, dA, dB, code):
    import cupy as cp

    for _ in range(3):  # warm-up: streams, handles, events, modules, weights, pool blocks
        C, info = _call(dA, dB, code)
    del C, info  # nothing of the warm-up is kept alive while the measured call runs
    cp.cuda.Device().synchronize()
    before = dict(sim.stats)
    C, info = _call(dA, dB, code)
    after = dict(sim.stats)
    return C, {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


@pytest.mark.parametrize("name", ["matdot", "chebyshev"])
def test_warm_call_creates_nothing(sim, name):
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(30)
    A, B = rng.random((24, 20)), rng.random((20, 16))  # non-negative, non-centred
    code = gpucoded.make_code(name, m=2, P=4)
    C, delta = _warm_delta(sim, cp.asarray(A), cp.asarray(B), code)
    assert {k: delta.get(k, 0) for k in CREATIONS} == dict.fromkeys(CREATIONS, 0), delta
    assert delta.get("launch:encode", 0) == 2 and delta.get("launch:decode", 0) == 1, delta
    assert delta.get("launch", 0) == 3 and delta.get("gemm", 0) == code.P - 1
    assert delta.get("h2d", 0) <= 1  # the decode's answer-pointer array, nothing else
    np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9)


@pytest.mark.xfail(
    strict=True,
    reason="issue 21 item 4 target not met by the pipeline: 6 host synchronisations per "
    "warm call (validate.check_operands, pipeline.operand_norms, integrity.drop_nonfinite, "
    "the measured check's one transfer); strict: passes -> fails",
)
def test_warm_call_syncs_the_host_once(sim):
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(33)
    code = gpucoded.make_code("matdot", m=2, P=4)
    _, delta = _warm_delta(
        sim, cp.asarray(rng.random((24, 20))), cp.asarray(rng.random((20, 16))), code
    )
    assert delta.get("host_sync", 0) == 1, {k: v for k, v in delta.items() if "sync" in k}


def test_a_per_call_creation_is_caught(sim, monkeypatch):
    """The counters see a creation put back in the call path (a new stream per call)."""
    import cupy as cp

    from gpucoded.executors.cuda import CudaStreamExecutor

    real = CudaStreamExecutor._streams_of
    def streams_of(self, dev):
        cp.cuda.Stream(non_blocking=True)  # a per-call creation put back
        return real(self, dev)

    monkeypatch.setattr(CudaStreamExecutor, "_streams_of", streams_of)
    rng = np.random.default_rng(31)
    dA, dB = cp.asarray(rng.random((8, 6))), cp.asarray(rng.random((6, 4)))
    code = gpucoded.make_code("matdot", m=2, P=4)
    _call(dA, dB, code)
    n = sim.stats["stream_create"]
    _call(dA, dB, code)
    assert sim.stats["stream_create"] > n


def test_warm_call_host_time(sim, record_property):
    """The host-side time of a warm call (its Python work; the simulated device runs
    on other threads and its modelled time is not counted). Reported, not asserted."""
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(32)
    dA, dB = cp.asarray(rng.random((32, 32))), cp.asarray(rng.random((32, 32)))
    code = gpucoded.make_code("chebyshev", m=2, P=4)
    for _ in range(3):
        _call(dA, dB, code)
    times = []
    for _ in range(20):
        t0 = time.thread_time()  # CPU time of this (the host) thread only
        _call(dA, dB, code)
        times.append(time.thread_time() - t0)
    record_property("warm_call_host_cpu_ms", 1e3 * float(np.median(times)))
