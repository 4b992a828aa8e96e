"""The simulated CUDA device keeps CUDA's and CuPy 14.2's semantics (what the other
``gpusim`` tests rely on to catch ordering, aliasing and precision bugs)."""

from __future__ import annotations

import numpy as np
import pytest
from _harness import cudasim

pytestmark = pytest.mark.gpusim


def test_streams_run_concurrently_and_in_order(sim):
    """One FIFO per stream: a stream waits for its own work only, in queue order."""
    import cupy as cp

    flag = cp.zeros(1, dtype=cp.int32)
    # the zeroing ran on the null stream, which non-blocking streams do not wait for
    cp.cuda.get_current_stream().synchronize()
    slow, fast = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    from gpucoded import kernels as K

    K.delay(30.0, flag=flag, stream=slow)  # spins until the flag is set
    e_slow = slow.record()
    e_fast = fast.record()
    e_fast.synchronize()  # the other stream is still spinning
    assert not e_slow.done and not slow.done
    cp.cuda.runtime.memsetAsync(flag.data.ptr, 1, 4, fast.ptr)
    slow.synchronize()
    assert e_slow.done
    fast.synchronize()  # the memset may still be in flight: flag is freed on return


def test_event_semantics_follow_cupy(sim):
    import cupy as cp

    e = cp.cuda.Event()
    assert e.done  # never recorded: cudaEventQuery succeeds
    with pytest.raises(cudasim.CUDARuntimeError):
        cp.cuda.get_elapsed_time(e, e)  # never recorded
    flag = cp.zeros(1, dtype=cp.int32)
    cp.cuda.get_current_stream().synchronize()  # zeroed before non-blocking streams read it
    s = cp.cuda.Stream(non_blocking=True)
    a = s.record()
    from gpucoded import kernels as K

    K.delay(30.0, flag=flag, stream=s)
    b = s.record()
    assert not b.done
    with pytest.raises(cudasim.CUDARuntimeError, match="NotReady"):
        cp.cuda.get_elapsed_time(a, b)  # CuPy raises on unfinished events
    ctl = cp.cuda.Stream(non_blocking=True)
    cp.cuda.runtime.memsetAsync(flag.data.ptr, 1, 4, ctl.ptr)
    b.synchronize()
    ctl.synchronize()  # the memset may still be in flight: flag is freed on return
    assert cp.cuda.get_elapsed_time(a, b) >= 0
    assert s.device_id == 0 and not hasattr(s, "device")  # CuPy's stream: .device_id


def test_wait_event_orders_streams(sim):
    """Without wait_event another stream may read stale data; with it, never."""
    import cupy as cp

    s1, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    with s1:
        # uploaded on s1 itself: a pageable upload on the null stream is not ordered
        # before work on a non-blocking stream (CUDA semantics; the simulator races it)
        src = cp.asarray(np.arange(1000.0))
        y = src * 2.0
        ready = s1.record()
    s2.wait_event(ready)
    with s2:
        z = y + 1.0
    with s2:
        np.testing.assert_array_equal(z.get(stream=s2), np.arange(1000.0) * 2 + 1)


def test_pool_reuses_and_poisons_freed_blocks(sim):
    import cupy as cp

    pool = cp.get_default_memory_pool()
    base = pool.used_bytes()
    a = cp.asarray(np.ones(100))
    ptr = a.data.ptr
    assert pool.used_bytes() > base
    del a
    assert pool.used_bytes() == base
    b = cp.empty(100)  # same stream, same size: the freed block, NaN-poisoned
    assert b.data.ptr == ptr
    assert np.isnan(b.get()).all()


def test_devices_and_peer_copies(sim):
    import cupy as cp

    assert cp.cuda.runtime.getDeviceCount() == 2
    with cp.cuda.Device(1):
        x = cp.asarray(np.arange(6.0))
        assert x.device.id == 1
        s = cp.cuda.Stream()
        written = cp.cuda.get_current_stream().record()
    with pytest.raises(RuntimeError, match="device"):
        with s:  # a stream of device 1 while device 0 is current
            pass
    with pytest.raises(ValueError, match="device"):
        cp.matmul(x.reshape(2, 3), x.reshape(3, 2))  # operands on another device
    # a peer copy on device 0's current stream, ordered after device 1's upload only
    # by the event (without it the copy may read the buffer before it is written)
    cp.cuda.get_current_stream().wait_event(written)
    y = cp.array(x)
    assert y.device.id == 0
    np.testing.assert_array_equal(y.get(), np.arange(6.0))
    with pytest.raises(cudasim.CUDARuntimeError):
        cp.cuda.Device(2)


def test_implicit_host_conversion_refused(sim):
    import cupy as cp

    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(cp.zeros(3))


def _tf32(x):
    return cudasim.round_mantissa(x, 10)


@pytest.mark.parametrize(
    ("code", "mode"), [(1, "ieee32"), (2, "ieee32"), (6, "ieee32"), (7, "tf32")]
)
def test_matmul_compute_types_as_cupy_14_2(sim, code, mode):
    """2-D float32 GEMMs: only PEDANTIC and TF32 are mapped; BF16 (6) runs IEEE FP32."""
    import cupy as cp
    from cupy._core import _routines_linalg as rl

    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 64)).astype(np.float32)
    b = rng.standard_normal((64, 8)).astype(np.float32)
    rl.set_compute_type(np.float32, code)
    got = cp.matmul(cp.asarray(a), cp.asarray(b)).get()
    assert sim.gemm_modes[-1] == mode
    want = _tf32(a) @ _tf32(b) if mode == "tf32" else a @ b
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # batched (3-D) GEMMs never read the compute type
    cp.matmul(cp.asarray(a[None]), cp.asarray(b[None]))
    assert sim.gemm_modes[-1] == "ieee32"


def test_compute_type_starts_tbd_like_cupy(sim, monkeypatch):
    from cupy._core import _routines_linalg as rl

    monkeypatch.setenv("CUPY_TF32", "1")
    assert rl.get_compute_type(np.float32) == 7  # CUPY_TF32 applies on first use
    assert rl.get_compute_type(np.float64) == 1
    with pytest.raises(ValueError):
        rl.set_compute_type(np.float32, 42)


def test_round_mantissa_is_round_to_nearest_even():
    x = np.array([1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-12, -1.5, np.inf], np.float32)
    got = cudasim.round_mantissa(x, 10)
    assert list(got) == [1.0, 1 + 4 * 2.0**-11, 1.0, -1.5, np.inf]


def test_kernel_launch_checks_argument_widths_and_bounds(sim):
    """A Python int or a wrong-width scalar, or an access past the buffer, is refused."""
    import cupy as cp

    from gpucoded import kernels as K

    k = K.get_kernel("delay", "gc_delay")
    flag = cp.ones(1, dtype=cp.int32)
    with pytest.raises(TypeError, match="int64"):
        k((1,), (1,), (flag, 5))
    enc = K.get_kernel("encode", "gc_encode<double, 1, 4>")
    X = cp.zeros((4, 4))
    G = cp.zeros((2, 1))
    Y = cp.zeros((2, 4, 4))
    i32, i64 = np.int32, np.int64
    args = (X, i64(40), i64(4), i64(4), i32(1), i32(1), i64(4), i64(4), G, i32(2), Y)
    enc((1,), (256,), args)  # ld 40 reads far past X's 4 x 4 elements
    with pytest.raises(cudasim.CUDARuntimeError, match="IllegalAddress"):
        cp.cuda.get_current_stream().synchronize()
    sim.faults.clear()


def test_host_syncs_are_counted(sim):
    import cupy as cp

    x = cp.zeros(4)
    n = sim.stats["host_sync"]
    float(x.sum())
    bool(cp.isfinite(x).all())
    cp.cuda.Device().synchronize()
    assert sim.stats["host_sync"] == n + 3


@pytest.mark.parametrize("blocking", [False, True])
def test_legacy_stream_orders_blocking_streams_only(sim, blocking):
    """A write on the legacy (null) stream is seen by a later operation of a blocking
    stream, and by nothing else on a non-blocking one (CUDA's legacy semantics)."""
    import cupy as cp

    sim.null[0].extra_delay = 0.05  # the legacy stream runs late
    x = cp.empty(4, dtype=cp.float64)  # NaN (pool poison) until the fill runs
    x.fill(1.0)  # queued on the legacy stream
    s = cp.cuda.Stream(non_blocking=not blocking)
    with s:
        y = x.copy()
    got = y.get(stream=s)
    if blocking:
        np.testing.assert_array_equal(got, 1.0)
    else:
        assert np.isnan(got).all()  # read before the write: only events order these
    sim.synchronize_all()


@pytest.mark.parametrize("zero_on", ["legacy", "spin_stream"])
def test_delay_flag_zeroed_in_order(sim, zero_on):
    """test_gpu_kernels::test_delay_released_by_flag's pattern: a flag zeroed on the
    legacy stream is not ordered before a spin on a non-blocking stream (the spin reads
    the pool's bytes and ends at once); zeroed on the spin's stream, it is."""
    import time

    import cupy as cp

    from gpucoded import kernels as K

    sim.null[0].extra_delay = 0.05
    s = cp.cuda.Stream(non_blocking=True)
    ctl = cp.cuda.Stream(non_blocking=True)
    if zero_on == "legacy":
        flag = cp.zeros(1, dtype=cp.int32)
        zeroed = sim.null[0].record()
    else:
        with s:
            flag = cp.zeros(1, dtype=cp.int32)
        zeroed = s.record()
    K.delay(30.0, flag=flag, stream=s)
    e = s.record()
    sim.null[0].wait_idle()  # the zeroing has run, wherever it was queued
    spinning = not e.done
    ctl.wait_event(zeroed)  # the release is ordered after the zeroing
    cp.cuda.runtime.memsetAsync(flag.data.ptr, 1, 4, ctl.ptr)
    t0 = time.perf_counter()
    e.synchronize()
    assert time.perf_counter() - t0 < 5.0  # released by the flag, not the 30 s cap
    assert spinning is (zero_on == "spin_stream")
    ctl.synchronize()  # the flag is freed below: the release must have run


def test_device_time_model_shows_in_event_deltas(sim):
    """A launch takes bytes / bandwidth of device time, a GEMM 2mnk / peak, and a host
    gap between two launches shows in the events around them."""
    import time

    import cupy as cp
    from _harness.cudasim import PEAK_FLOPS

    from gpucoded import kernels as K

    sim.max_delay = 0.0
    sim.bandwidth = 2e6  # B/s: a slow device, so modelled times dwarf the host's jitter
    X, G = cp.zeros((64, 64)), cp.ones((3, 2))
    out = cp.empty((3, 64, 32))
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        K.encode(X, G, (1, 2), out=out)  # modules built, coefficients cached
    s.synchronize()
    nbytes = X.nbytes + out.nbytes
    e0, e1, e2 = cp.cuda.Event(), cp.cuda.Event(), cp.cuda.Event()
    with s:
        e0.record(s)
        K.encode(X, G, (1, 2), out=out)
        e1.record(s)
    s.synchronize()
    assert cp.cuda.get_elapsed_time(e0, e1) / 1e3 >= nbytes / sim.bandwidth
    a = cp.zeros((64, 64))
    sim.bandwidth = 3e12
    PEAK = PEAK_FLOPS["fp64"]
    with s:
        e0.record(s)
        cp.matmul(a, a)
        e1.record(s)
        time.sleep(0.05)  # the host is late with the next launch
        cp.matmul(a, a)
        e2.record(s)
    s.synchronize()
    gemm = 2 * 64**3 / PEAK
    assert cp.cuda.get_elapsed_time(e0, e1) / 1e3 >= gemm
    assert cp.cuda.get_elapsed_time(e1, e2) / 1e3 >= 0.05  # the gap is in the window
