"""CudaStreamExecutor on the simulated device: completion order, stragglers, deadline,
progressive decoding, verify, two devices, precision formats, memory and syncs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpucoded
from gpucoded import gpu
from gpucoded import kernels as K
from gpucoded.executors.base import Answer, Executor, Run
from gpucoded.executors.cuda import CudaStreamExecutor
from gpucoded.formats import FORMATS

pytestmark = pytest.mark.gpusim


def _stacks(P=4, r=5, c=4, d=3, seed=0):
    import cupy as cp

    rng = np.random.default_rng(seed)
    At, Bt = rng.standard_normal((P, r, c)), rng.standard_normal((P, c, d))
    return At, Bt, cp.asarray(At), cp.asarray(Bt)


def _bound_ok(C, A, B, info):
    ref = A.astype(np.float64) @ B.astype(np.float64)
    err = np.abs(C.get().astype(np.float64) - ref).max()
    assert np.isfinite(err) and err <= info.error_bound, (err, info.error_bound)


def test_answers_in_completion_order_with_gpu_delays(sim):
    At, Bt, dA, dB = _stacks()
    ex = CudaStreamExecutor(never_cap=20.0)
    with ex.start(dA, dB, workers=range(4), delays=[0.3, 0.0, 0.15, math.inf]) as run:
        answers = []
        for a in run:
            answers.append(a)
            if len(answers) == 3:
                break
    assert [a.worker for a in answers] == [1, 2, 0]
    for a in answers:
        np.testing.assert_allclose(a.product.get(), At[a.worker] @ Bt[a.worker], rtol=1e-12)
        assert 0 <= a.start <= a.end
    assert answers[2].end - answers[2].start >= 0.3 * 0.99  # the delay kernel's spin
    assert set(run.gemm_times) == {0, 1, 2}
    ex.close()  # returns: the cancel released the never-answering worker's spin


def test_host_delay_timeout_and_never(sim):
    At, Bt, dA, dB = _stacks(3)
    ex = CudaStreamExecutor(delay_mode="host")
    # timeout 1 s: room for worker 0 on a loaded machine, far below worker 1's 5 s
    with ex.start(dA, dB, workers=[0, 1, 2], delays=[0.0, 5.0, math.inf], timeout=1.0) as run:
        got = sorted(a.worker for a in run)
    assert got == [0]
    assert sim.stats["launch:delay"] == 0  # host mode launches no spin kernel


def test_numpy_inputs_round_trip(sim):
    At, Bt, _, _ = _stacks(2)
    ex = CudaStreamExecutor()
    with ex.start(At, Bt, workers=[0, 1]) as run:
        for a in run:
            assert type(a.product) is np.ndarray
            np.testing.assert_allclose(a.product, At[a.worker] @ Bt[a.worker], rtol=1e-12)


def test_worker_error_is_an_erasure(sim, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("cublas failure")

    monkeypatch.setattr(gpu, "gemm", boom)
    _, _, dA, dB = _stacks(2)
    with CudaStreamExecutor().start(dA, dB, workers=[0, 1]) as run:
        answers = list(run)
    assert len(answers) == 2 and not any(a.ok for a in answers)
    assert all(isinstance(a.error, RuntimeError) for a in answers)


def test_coded_matmul_with_stragglers_and_deadline(sim):
    import cupy as cp

    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((30, 24)), rng.standard_normal((24, 18))
    delays = [0.0, math.inf, 0.0, 0.3, 0.0]
    ex = CudaStreamExecutor(never_cap=20.0)
    C, info = gpucoded.coded_matmul(cp.asarray(A), cp.asarray(B), "matdot", m=2, P=5,
                                    delays=delays, executor=ex, return_info=True)  # fmt: skip
    _bound_ok(C, A, B, info)
    assert set(info.used) == {0, 2, 4} and 1 in info.abandoned
    with pytest.raises(gpucoded.NotEnoughAnswersError):
        gpucoded.coded_matmul(cp.asarray(A), cp.asarray(B), "matdot", m=2, P=5,
                              delays=[0, math.inf, math.inf, 5.0, 0], deadline=0.2,
                              executor=ex)  # fmt: skip
    ex.close()


def test_progressive_decoding_on_device(sim):
    import cupy as cp

    from gpucoded.progressive import progressive_matmul

    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((16, 12)), rng.standard_normal((12, 10))
    ex = CudaStreamExecutor()
    steps = list(progressive_matmul(cp.asarray(A), cp.asarray(B), "approx_matdot", m=2, P=4,
                                    delays=[0.0, 0.02, 0.04, 0.06], executor=ex))  # fmt: skip
    assert len(steps) >= 2
    C, info = steps[-1]
    err = np.abs(C.get() - A @ B).max()
    assert err <= info.error_bound
    ex.close()


class _Corrupting(Executor):
    """Adds ``delta`` (or NaN) to one worker's answer on the device."""

    def __init__(self, inner, worker, delta):
        self.inner, self.worker, self.delta = inner, worker, delta

    def start(self, At, Bt, **kw):
        run = self.inner.start(At, Bt, **kw)
        outer = self

        class R(Run):
            def __iter__(self):
                for a in run:
                    if a.worker == outer.worker and a.ok:
                        a = Answer(a.worker, a.product + outer.delta, None, a.start, a.end)
                    yield a

            def cancel(self):
                run.cancel()

        return R()


def test_verify_locates_a_corrupt_device_answer(sim):
    import cupy as cp

    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((20, 16)), rng.standard_normal((16, 12))
    ex = _Corrupting(CudaStreamExecutor(), worker=1, delta=1e3)
    # worker 5 answers last: the corrupt worker 1 is among the 5 answers "correct" uses
    C, info = gpucoded.coded_matmul(cp.asarray(A), cp.asarray(B), "matdot", m=2, P=6,
                                    delays=[0, 0, 0, 0, 0, 0.2], verify="correct",
                                    executor=ex, return_info=True)  # fmt: skip
    assert 1 in info.answered[:5] and info.integrity.excluded == (1,)
    _bound_ok(C, A, B, info)


def test_nonfinite_device_answer_is_an_erasure(sim):
    import cupy as cp

    rng = np.random.default_rng(6)
    A, B = rng.standard_normal((20, 16)), rng.standard_normal((16, 12))
    ex = _Corrupting(CudaStreamExecutor(), worker=0, delta=np.nan)
    C, info = gpucoded.coded_matmul(cp.asarray(A), cp.asarray(B), "matdot", m=2, P=5,
                                    delays=[0, 0.2, 0.2, 0.2, 0.2], executor=ex,
                                    return_info=True)  # fmt: skip
    assert "non-finite" in info.erased[0] and 0 not in info.used
    _bound_ok(C, A, B, info)


def test_host_syncs_do_not_grow_with_the_answers(sim):
    """The collection loop never synchronises per answer (one batched check)."""
    import cupy as cp

    rng = np.random.default_rng(7)
    A, B = rng.standard_normal((24, 24)), rng.standard_normal((24, 24))
    dA, dB = cp.asarray(A), cp.asarray(B)
    counts = []
    for m in (2, 4):
        n0 = sim.stats["host_sync"]
        C = gpucoded.coded_matmul(dA, dB, "matdot", m=m, P=2 * m)
        counts.append(sim.stats["host_sync"] - n0)
        np.testing.assert_allclose(C.get(), A @ B, rtol=1e-9, atol=1e-9)
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize("placement", ["round_robin", "block"])
def test_two_devices_copies_ordered(sim, placement):
    """Workers on two devices; inputs and answers cross devices only in stream order."""
    import cupy as cp

    rng = np.random.default_rng(8)
    ex = CudaStreamExecutor(devices=[0, 1], placement=placement)
    for _ in range(6):
        A, B = rng.standard_normal((33, 20)), rng.standard_normal((20, 15))
        C, info = gpucoded.coded_matmul(cp.asarray(A), cp.asarray(B), "polydot", p=2, q=2,
                                        P=9, executor=ex, return_info=True)  # fmt: skip
        assert C.device.id == 0
        _bound_ok(C, A, B, info)
    assert sim.stats["peer_copy"] > 0
    ex.close()


def test_answers_come_home_from_device_one(sim):
    import cupy as cp

    with cp.cuda.Device(1):
        At, Bt, dA, dB = _stacks(4)
    ex = CudaStreamExecutor(devices=[1, 0])
    with ex.start(dA, dB, workers=range(4)) as run:
        for a in run:
            assert a.product.device.id == 1
            with cp.cuda.Device(1):
                np.testing.assert_allclose(a.product.get(), At[a.worker] @ Bt[a.worker])


@pytest.mark.parametrize("mode", ["ieee", "pedantic", "tf32", "bf16"])
def test_precision_modes_really_run_and_are_reported(sim, mode):
    """Each worker GEMM is within its format's bound, and (tf32, bf16) above float32's."""
    import cupy as cp
    from cupy._core import _routines_linalg as rl

    rng = np.random.default_rng(9)
    k = 256
    At = rng.standard_normal((2, 16, k)).astype(np.float32)
    Bt = rng.standard_normal((2, k, 16)).astype(np.float32)
    ex = CudaStreamExecutor(precision=mode)
    fmt = ex.compute_format(np.float32)
    assert fmt is FORMATS[gpu.PRECISION_MODES[mode]]
    assert ex.compute_format(np.float64) is FORMATS["float64"]
    with ex.start(cp.asarray(At), cp.asarray(Bt), workers=[0, 1]) as run:
        answers = list(run)
    assert rl.get_compute_type(np.float32) == 1  # the caller's setting is restored
    f32 = FORMATS["float32"]
    for a in answers:
        A64, B64 = At[a.worker].astype(np.float64), Bt[a.worker].astype(np.float64)
        scale = np.abs(A64) @ np.abs(B64)
        err = np.abs(a.product.get() - A64 @ B64)
        # operands rounded to u each (2u + u^2), then a k-term float32 sum (gamma_k)
        bound = (2 * fmt.u + fmt.u**2 + 1.01 * k * f32.u) * scale
        assert np.all(err <= bound)
        if fmt.emulated:  # the reduced precision really was used
            assert np.any(err > 1.01 * k * f32.u * scale)
    assert sim.gemm_modes[-2:] == [{"float32": "ieee32"}.get(fmt.name, fmt.name)] * 2


def test_complex64_bf16_reports_float32(sim):
    assert CudaStreamExecutor(precision="bf16").compute_format(np.complex64).name == "float32"
    assert CudaStreamExecutor(precision="tf32").compute_format(np.complex64).name == "tf32"


def test_device_pool_flat_over_1000_calls(sim):
    """1,000 calls: the pool's used bytes return to their warm level (no growth)."""
    import cupy as cp

    sim.max_delay = 0.0
    code = gpucoded.make_code("matdot", m=2, P=4)
    rng = np.random.default_rng(10)
    A, B = cp.asarray(rng.standard_normal((8, 6))), cp.asarray(rng.standard_normal((6, 4)))
    pool = cp.get_default_memory_pool()
    ex = CudaStreamExecutor()
    for i in range(20):
        C = gpucoded.coded_matmul(A, B, code, failed=[i % 4], executor=ex)
    del C
    warm = pool.used_bytes()
    for i in range(1000):
        C = gpucoded.coded_matmul(A, B, code, failed=[i % 4], executor=ex)
    del C
    assert pool.used_bytes() == warm
    ex.close()


def test_weight_uploads_bounded_by_answer_sets(sim, monkeypatch):
    """Random arrival orders: one upload of decode weights per distinct answer set."""
    import cupy as cp

    uploads = []
    real = K._upload
    monkeypatch.setattr(K, "_upload", lambda h: uploads.append(h.shape) or real(h))
    code = gpucoded.make_code("matdot", m=2, P=4)
    rng = np.random.default_rng(11)
    A, B = cp.asarray(rng.standard_normal((8, 6))), cp.asarray(rng.standard_normal((6, 4)))
    ex = CudaStreamExecutor()
    sets, orders = set(), set()
    for _ in range(40):
        delays = list(rng.permutation([0.0, 0.002, 0.004, 0.006]))
        _, info = gpucoded.coded_matmul(A, B, code, delays=delays, executor=ex,
                                        return_info=True)  # fmt: skip
        sets.add(frozenset(info.used))
        orders.add(info.used)
    assert len(orders) > len(sets)  # arrival orders did vary
    assert len([s for s in uploads if s == (1, 3)]) <= len(sets)
    ex.close()


def test_cuda_executor_without_a_device_is_a_clear_error():
    """Real CuPy imports without a GPU; executor='cuda' then names the fix."""
    from gpucoded import backend

    backend.cupy_or_none.cache_clear()
    if backend.gpu_available():
        pytest.skip("a CUDA device is present")
    A = np.ones((4, 4))
    with pytest.raises(RuntimeError, match="needs CuPy and a CUDA device"):
        gpucoded.coded_matmul(A, A, "matdot", m=2, P=4, executor="cuda")


def test_executor_options_validated():
    with pytest.raises(ValueError, match="precision"):
        CudaStreamExecutor(precision="fp8")
    with pytest.raises(ValueError, match="delay_mode"):
        CudaStreamExecutor(delay_mode="sometimes")


@pytest.mark.parametrize("name", ["tf32", "bf16"])
def test_precision_study_worker_matmul_uses_the_format(sim, name):
    """studies.precision.worker_matmul on a device: 2-D GEMMs in the named format."""
    import cupy as cp

    from gpucoded.studies.precision import worker_matmul

    rng = np.random.default_rng(12)
    At = rng.standard_normal((3, 8, 128)).astype(np.float32)
    Bt = rng.standard_normal((3, 128, 8)).astype(np.float32)
    C = worker_matmul(cp.asarray(At), cp.asarray(Bt), name).get()
    assert sim.gemm_modes[-3:] == [name] * 3  # not the batched IEEE FP32 GEMM
    ref = At.astype(np.float64) @ Bt.astype(np.float64)
    scale = np.abs(At.astype(np.float64)) @ np.abs(Bt.astype(np.float64))
    u, u32 = FORMATS[name].u, FORMATS["float32"].u
    err = np.abs(C - ref)
    assert np.all(err <= (2 * u + u * u + 1.01 * 128 * u32) * scale)
    assert np.any(err > 1.01 * 128 * u32 * scale)


def test_gemm_edge_cases_and_explicit_placement(sim, monkeypatch):
    import cupy as cp

    f32 = np.float32
    z = gpu.gemm(cp.zeros((2, 0), dtype=f32), cp.zeros((0, 3), dtype=f32), "bf16")
    np.testing.assert_array_equal(z.get(), np.zeros((2, 3)))
    assert gpu.gemm(cp.zeros((0, 2), dtype=f32), cp.zeros((2, 3), dtype=f32), "bf16").shape == (
        0,
        3,
    )
    with pytest.raises(ValueError, match="2-D"):
        gpu.gemm(cp.zeros((2, 2), dtype=f32), cp.zeros((3, 2), dtype=f32), "bf16")
    with pytest.raises(ValueError, match="out must be"):
        gpu.gemm(cp.zeros((2, 2), dtype=f32), cp.zeros((2, 2), dtype=f32), "bf16",
                 out=cp.zeros((2, 2)))  # fmt: skip
    with pytest.raises(ValueError, match="precision"):
        gpu.precision_format("fp8", np.float32)
    monkeypatch.setenv("CUPY_TF32", "1")
    At, Bt, dA, dB = _stacks(3)
    ex = CudaStreamExecutor(devices=[0, 1], placement={0: 1, 1: 0, 2: 1})
    with pytest.warns(UserWarning, match="CUPY_TF32"):
        run = ex.start(dA, dB, workers=[0, 1, 2])
    with run:
        got = {a.worker: a.product.get() for a in run}
    for w, p in got.items():
        np.testing.assert_allclose(p, At[w] @ Bt[w], rtol=1e-12)
    ex.close()


def test_abandoned_straggler_keeps_its_memory(sim):
    """A GEMM still queued when the call returns must not touch freed (reused) memory."""
    import cupy as cp

    rng = np.random.default_rng(13)
    A, B = rng.standard_normal((16, 12)), rng.standard_normal((12, 8))
    dA, dB = cp.asarray(A), cp.asarray(B)
    ex = CudaStreamExecutor()
    ex._streams_of(0).slots[3].extra_delay = 0.05  # worker 3's stream is slow: always abandoned
    for _ in range(3):
        C, info = gpucoded.coded_matmul(dA, dB, "matdot", m=2, P=4, executor=ex,
                                        return_info=True)  # fmt: skip
        assert 3 not in info.used
        _bound_ok(C, A, B, info)
    ex.close()  # waits for the straggler; its memory is released only then
