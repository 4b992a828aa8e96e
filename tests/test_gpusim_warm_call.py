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
    (C, _), delta = _warm_delta_of(sim, lambda: _call(dA, dB, code))
    return C, delta


def _warm_delta_of(sim, call):
    """(result of a warm ``call()``, the simulator's counters it changed)."""
    import cupy as cp

    # Warm-up: streams, handles, events, modules, weights, pool blocks. The simulator
    # keeps a queued operation's arrays alive until the operation has run, so how many
    # pool blocks a call holds at once depends on how far the host runs ahead of the
    # device (a call synchronises once, at its end). One warm-up call with a slow
    # current stream runs the host as far ahead as it gets: every block of the call is
    # then in the pool, and no timing of a later call can need one more.
    stream = cp.cuda.get_current_stream()
    stream.extra_delay = 2e-3
    try:
        call()
    finally:
        stream.extra_delay = 0.0
    for _ in range(2):
        out = call()
    del out  # nothing of the warm-up is kept alive while the measured call runs
    cp.cuda.Device().synchronize()
    before = dict(sim.stats)
    out = call()
    after = dict(sim.stats)
    return out, {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


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


@pytest.mark.parametrize("name", ["matdot", "chebyshev"])
def test_warm_call_syncs_the_host_once(sim, name):
    """The operands' norms, the answers' finiteness and the probes come back in one
    transfer at the end (gpucoded.pipeline.decode_on_device)."""
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(33)
    A, B = rng.random((24, 20)), rng.random((20, 16))
    code = gpucoded.make_code(name, m=2, P=4)
    C, delta = _warm_delta(sim, cp.asarray(A), cp.asarray(B), code)
    assert delta.get("host_sync", 0) == 1, {k: v for k, v in delta.items() if "sync" in k}
    np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9)


def _syncs_of_warm_call(sim):
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(34)
    code = gpucoded.make_code("matdot", m=2, P=4)
    _, delta = _warm_delta(
        sim, cp.asarray(rng.random((24, 20))), cp.asarray(rng.random((20, 16))), code
    )
    return delta.get("host_sync", 0)


def test_an_extra_transfer_is_caught(sim, monkeypatch):
    """The counter sees one more ``.get()`` put back in the call path (a host value of
    the result before the probes are queued)."""
    from gpucoded import probes

    real = probes.start

    def start(C, A, B, **kw):
        float(abs(C).max())  # a per-call transfer put back
        return real(C, A, B, **kw)

    monkeypatch.setattr(probes, "start", start)
    assert _syncs_of_warm_call(sim) == 2


def test_host_norms_put_back_are_caught(sim, monkeypatch):
    """Norms brought to the host before the workers start (the former path: a transfer
    each, then the answers' check) show up as extra synchronisations."""
    from gpucoded import pipeline

    real = pipeline.device_norms

    def host_norms(*a, **kw):
        return tuple(float(v) for v in real(*a, **kw))

    monkeypatch.setattr(pipeline, "device_norms", host_norms)
    assert _syncs_of_warm_call(sim) > 1


@pytest.mark.parametrize("bad", ["A", "B"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_device_operand_is_refused(sim, bad, value):
    """NaN/Inf in a device operand are still refused (``nonfinite="raise"``), with the
    error naming the operand; they are found in the norms of the one transfer, so the
    refusal comes after the workers ran (nothing is returned)."""
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(35)
    ops = {"A": rng.random((24, 20)), "B": rng.random((20, 16))}
    ops[bad][3, 5] = value
    with pytest.raises(ValueError, match=f"{bad} contains NaN or Inf"):
        gpucoded.coded_matmul(cp.asarray(ops["A"]), cp.asarray(ops["B"]), "matdot", m=2, P=4)


def test_nonfinite_device_operand_propagates_when_asked(sim):
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(36)
    A, B = rng.random((24, 20)), rng.random((20, 16))
    A[0, 0] = np.nan
    C, info = gpucoded.coded_matmul(
        cp.asarray(A), cp.asarray(B), "matdot", m=2, P=4, nonfinite="propagate",
        return_info=True,
    )  # fmt: skip
    assert info.nonfinite_input and np.isnan(C.get()[0]).all()
    np.testing.assert_allclose(C.get()[1:], (A @ B)[1:], rtol=1e-9)


def test_overflowing_norms_of_finite_device_operands_are_not_refused(sim):
    """A sum of squares that overflows (entries near 1e200) makes a norm inf with finite
    data: the entrywise look confirms them finite, and the call goes on as on the host."""
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(37)
    A, B = 1e200 * rng.random((24, 20)), 1e-200 * rng.random((20, 16))
    on_host = gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, on_inaccurate="ignore")
    C = gpucoded.coded_matmul(
        cp.asarray(A), cp.asarray(B), "matdot", m=2, P=4, on_inaccurate="ignore"
    )
    np.testing.assert_allclose(C.get(), on_host, rtol=1e-9)
    np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9)


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


@pytest.mark.parametrize("side", ["A", "B"])
def test_coded_matrix_warm_call_creates_nothing_and_syncs_once(sim, side):
    """``cm.matmul(x)`` and ``cm.rmatmul(x)`` on the device create nothing once warm and
    synchronise once: M's norms and means are kept on the host from the first call,
    x's come back with the answers' check and the probes in the call's one transfer,
    and x's encoding rows stay on the device (no upload for them)."""
    import cupy as cp

    sim.max_delay = 0.0
    rng = np.random.default_rng(38)
    M = rng.random((24, 20)) + 1.0  # non-negative, non-centred
    cm = gpucoded.CodedMatrix(cp.asarray(M), "chebyshev", m=2, P=4)
    x = rng.random(20 if side == "A" else 24)
    dx = cp.asarray(x)

    def call():
        # one answer set on every call (as in _call): its decode weights are on the device
        return cm.matmul(dx, failed=[3]) if side == "A" else cm.rmatmul(dx, failed=[3])

    y, delta = _warm_delta_of(sim, call)
    assert {k: delta.get(k, 0) for k in CREATIONS} == dict.fromkeys(CREATIONS, 0), delta
    assert delta.get("host_sync", 0) == 1, delta
    assert delta.get("h2d", 0) <= 1, delta  # the decode's answer-pointer array, nothing else
    np.testing.assert_allclose(y.get(), M @ x if side == "A" else x @ M, rtol=1e-12)


def test_complex_operands_and_an_answer_with_nan_in_its_imaginary_part(sim):
    """The deferred answer check sees a NaN in the imaginary part alone (|sum|, not its
    real part): that worker is erased and the call decodes from the others."""
    import cupy as cp

    from gpucoded.executors.base import Answer, Executor, Run
    from gpucoded.executors.cuda import CudaStreamExecutor

    class NanImag(Executor):  # worker 0's answer gets a NaN in one imaginary part
        def __init__(self):
            self.inner = CudaStreamExecutor()

        def compute_format(self, dtype):
            return self.inner.compute_format(dtype)

        def start(self, At, Bt, **kw):
            run = self.inner.start(At, Bt, **kw)

            class R(Run):
                def __iter__(self):
                    for a in run:
                        if a.worker == 0 and a.ok:
                            p = a.product.copy()
                            p[0, 0] = complex(p[0, 0].get().real, np.nan)
                            a = Answer(a.worker, p, None, a.start, a.end)
                        yield a

                def cancel(self):
                    run.cancel()

            return R()

    sim.max_delay = 0.0
    rng = np.random.default_rng(39)
    A = rng.random((12, 10)) + 1j * rng.standard_normal((12, 10))
    B = rng.random((10, 8)) - 2j * rng.random((10, 8))
    C, info = gpucoded.coded_matmul(
        cp.asarray(A), cp.asarray(B), "matdot", m=2, P=5, delays=[0, 0.2, 0.2, 0.2, 0.2],
        executor=NanImag(), return_info=True,
    )  # fmt: skip
    assert "non-finite" in info.erased.get(0, ""), info.erased
    assert 0 not in info.used
    np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9, atol=1e-12)
