"""Local executors: thread pool semantics, wall clock, cancellation, deadline, erasures."""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded.executors import SerialExecutor, ThreadExecutor, get_executor
from gpucoded.executors import local as local_mod
from gpucoded.reference import exact_product

U = np.finfo(np.float64).eps / 2


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gpucoded-worker")]


def _wait_no_worker_threads(limit: float) -> float:
    """Seconds until no worker task runs (fails after ``limit``); the pools' threads
    stay for the next run, their work must not."""
    t0 = time.perf_counter()
    while local_mod.busy_workers():
        if time.perf_counter() - t0 > limit:
            pytest.fail(f"{local_mod.busy_workers()} worker tasks still running after {limit} s")
        time.sleep(0.005)
    return time.perf_counter() - t0


def _stacks(P=4, r=40, c=30, d=30, seed=0):
    """Worker stacks whose GEMMs (r·c·d multiply-adds) are above the thread executor's
    inline threshold, so that its runs go through the pool."""
    assert r * c * d >= local_mod.INLINE_BELOW
    rng = np.random.default_rng(seed)
    return rng.standard_normal((P, r, c)), rng.standard_normal((P, c, d))


def test_get_executor_resolution():
    assert isinstance(get_executor(None), ThreadExecutor)
    assert isinstance(get_executor(None, like=np.ones(2)), ThreadExecutor)
    assert isinstance(get_executor("threads"), ThreadExecutor)
    assert isinstance(get_executor("serial"), SerialExecutor)
    ex = SerialExecutor()
    assert get_executor(ex) is ex
    with pytest.raises(ValueError, match="unknown executor"):
        get_executor("warp-drive")
    with pytest.raises(ValueError, match="max_workers"):
        ThreadExecutor(max_workers=0)


def test_thread_answers_are_the_worker_products():
    """Each answer is At[w] @ Bt[w]; two evaluations of the same length-c dot products
    differ by at most 2·γ_c·|A||B| entrywise (Higham, γ_c ≈ c·u), the tolerance used."""
    At, Bt = _stacks()
    with ThreadExecutor().start(At, Bt, workers=range(4)) as run:
        answers = {a.worker: a for a in run}
    assert sorted(answers) == [0, 1, 2, 3]
    for w, a in answers.items():
        assert a.ok and a.end >= a.start >= 0
        tol = 2 * At.shape[2] * U * (np.abs(At[w]) @ np.abs(Bt[w]))
        assert np.all(np.abs(a.product - At[w] @ Bt[w]) <= tol)


def test_thread_answers_arrive_in_delay_order():
    At, Bt = _stacks()
    delays = [0.3, 0.0, 0.1, 0.2]
    with ThreadExecutor().start(At, Bt, workers=range(4), delays=delays) as run:
        order = [a.worker for a in run]
    assert order == [1, 2, 3, 0]
    with ThreadExecutor().start(At, Bt, workers=range(4), delays=delays) as run:
        ends = {a.worker: a.end for a in run}
    for w in range(4):
        assert ends[w] >= delays[w]


def test_straggler_does_not_delay_the_call_and_nothing_lingers():
    """One worker 5 s late: the call returns in a small fraction of that and, right
    after, no worker thread is left (the delayed one was woken by the cancel)."""
    A, B = unit_gaussian((60, 60), 1), unit_gaussian((60, 60), 2)
    delay = 5.0
    t0 = time.perf_counter()
    C, info = gpucoded.coded_matmul(
        A, B, "matdot", m=2, P=4, delays=[delay, 0, 0, 0], return_info=True
    )
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.1 * delay
    assert 0 not in info.used and info.abandoned == [0]
    assert _wait_no_worker_threads(0.5 * delay) < 0.1 * delay
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_never_answering_worker_is_released_by_cancel():
    At, Bt = _stacks()
    run = ThreadExecutor().start(At, Bt, workers=range(4), delays=[math.inf, 0, 0, 0])
    with run:
        got = [a.worker for a in run]
    assert sorted(got) == [1, 2, 3]  # the iterator ends without waiting for worker 0
    assert run.join(1.0)


def test_deadline_decodes_with_what_arrived():
    """answers=3 is asked for but only 2 (the ε-MatDot threshold) arrive in time."""
    A, B = unit_gaussian((30, 30), 3), unit_gaussian((30, 30), 4)
    t0 = time.perf_counter()
    C, info = gpucoded.coded_matmul(
        A,
        B,
        "approx_matdot",
        m=2,
        P=4,
        answers=3,
        delays=[0, 0, 5.0, math.inf],
        deadline=0.3,
        return_info=True,
    )
    assert time.perf_counter() - t0 < 2.0
    assert sorted(info.used) == [0, 1]
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound
    _wait_no_worker_threads(2.0)


def test_deadline_too_short_raises_with_the_count():
    A, B = unit_gaussian((20, 20), 5), unit_gaussian((20, 20), 6)
    t0 = time.perf_counter()
    with pytest.raises(gpucoded.NotEnoughAnswersError, match="only 1 usable arrived by the dead"):
        gpucoded.coded_matmul(
            A, B, "matdot", m=2, P=4, delays=[0, 5.0, 5.0, math.inf], deadline=0.2
        )
    assert time.perf_counter() - t0 < 2.0
    _wait_no_worker_threads(2.0)


def test_worker_that_raises_is_an_erasure(monkeypatch):
    real = local_mod.multiply

    def broken(At, Bt, w):
        if w == 1:
            raise MemoryError("worker 1 ran out of memory")
        return real(At, Bt, w)

    monkeypatch.setattr(local_mod, "multiply", broken)
    A, B = unit_gaussian((30, 30), 7), unit_gaussian((30, 30), 8)
    for ex in ("threads", "serial"):
        C, info = gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, executor=ex, return_info=True)
        assert "MemoryError" in info.erased[1] and 1 not in info.used
        assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_max_workers_queue_is_dropped_on_cancel():
    """With one thread, queued workers never start once the decoder has enough."""
    At, Bt = _stacks(P=6)
    run = ThreadExecutor(max_workers=1).start(At, Bt, workers=range(6), delays=[0.05] * 6)
    with run:
        first = next(iter(run))
    assert first.worker == 0
    assert run.join(1.0)


def test_diagnostics_times_follow_the_injected_delays():
    """time_to_decode is at least the K-th smallest delay (the answers it waited for)."""
    A, B = unit_gaussian((20, 20), 9), unit_gaussian((20, 20), 10)
    delays = [0.0, 0.05, 0.15, 3.0]
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=2, P=4, delays=delays, return_info=True)
    assert info.answered == [0, 1, 2] and info.used == (0, 1, 2)
    assert info.time_to_decode >= sorted(delays)[2]
    for w in info.used:
        assert info.worker_times[w][1] >= delays[w]


def test_replication_decodes_once_every_block_is_covered():
    """Replication m=2, r=2 (threshold 3 in the worst case): workers 0 and 1 hold the
    two blocks, so the call returns after them, not after a third answer 5 s later."""
    A, B = unit_gaussian((20, 20), 11), unit_gaussian((20, 20), 12)
    t0 = time.perf_counter()
    C, info = gpucoded.coded_matmul(
        A, B, "replication", m=2, P=4, delays=[0, 0.05, 5.0, 5.0], return_info=True
    )
    assert time.perf_counter() - t0 < 2.0 and info.used == (0, 1)
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound


def test_blas_threads_limited_during_the_run_and_restored(monkeypatch):
    """With P concurrent workers each GEMM gets at most max(1, cpu_count // P) BLAS
    threads while the run lasts; the process-wide setting is restored afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]

    before = blas_threads()
    seen = []
    real = local_mod.multiply

    def spy(At, Bt, w):
        seen.extend(blas_threads())
        return real(At, Bt, w)

    monkeypatch.setattr(local_mod, "multiply", spy)
    At, Bt = _stacks(P=4)
    with ThreadExecutor().start(At, Bt, workers=range(4)) as run:
        assert len(list(run)) == 4
    cap = max(1, (os.cpu_count() or 1) // 4)
    assert seen
    if max(before, default=0) > cap:
        assert max(seen) <= cap
    else:  # already small enough: left alone
        assert set(seen) <= set(before)
    assert blas_threads() == before
    with pytest.raises(ValueError, match="blas_threads"):
        ThreadExecutor(blas_threads=0)


def test_dask_executor_set_up_once():
    """The embedded cluster's executor is made once; an executor made per call on the
    same client finds the worker addresses without asking the scheduler."""
    pytest.importorskip("distributed")
    from gpucoded.executors import dask as dask_mod

    ex = dask_mod.local_executor()
    assert dask_mod.local_executor() is ex
    addrs = ex.addresses()
    asked = []
    other = dask_mod.DaskExecutor(ex.client)
    real = ex.client.scheduler_info
    ex.client.scheduler_info = lambda *a, **k: asked.append(1) or real(*a, **k)
    try:
        assert other.addresses() == addrs and not asked
        assert other.addresses(refresh=True) == addrs and asked
    finally:
        del ex.client.scheduler_info


def test_tiny_runs_without_delays_run_on_the_calling_thread(monkeypatch):
    """Below ``INLINE_BELOW`` multiply-adds per worker and without injected delays, the
    thread executor runs the workers on the caller's thread, in order (a hand-off costs
    more than the GEMM); with a delay, or above the threshold, they go to the pool."""
    seen = []
    real = local_mod.multiply

    def spy(At, Bt, w):
        seen.append(threading.get_ident())
        return real(At, Bt, w)

    monkeypatch.setattr(local_mod, "multiply", spy)
    ex = ThreadExecutor()
    rng = np.random.default_rng(3)
    At, Bt = rng.standard_normal((4, 8, 8)), rng.standard_normal((4, 8, 8))
    with ex.start(At, Bt, workers=range(4)) as run:
        got = list(run)
    assert [a.worker for a in got] == [0, 1, 2, 3] and set(seen) == {threading.get_ident()}
    for a in got:
        np.testing.assert_array_equal(a.product, At[a.worker] @ Bt[a.worker])
        assert 0 <= a.start <= a.end
    seen.clear()
    with ex.start(At, Bt, workers=range(4), delays=[0, 0, 0.01, 0]) as run:
        assert len(list(run)) == 4
    assert threading.get_ident() not in seen
    seen.clear()
    At, Bt = _stacks(P=4)
    with ex.start(At, Bt, workers=range(4)) as run:
        assert len(list(run)) == 4
    assert threading.get_ident() not in seen


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_runs_without_delays_compute_only_what_is_read(monkeypatch, executor):
    """A run without injected delays on the calling thread (serial; threads' tiny runs)
    computes a worker when its answer is read: a call computes the K workers it decodes
    and abandons the rest uncomputed; with delays every worker is computed (the virtual
    clock needs each time), and cancelling a run drops its stacks."""
    computed = []
    real = local_mod.multiply
    monkeypatch.setattr(
        local_mod, "multiply", lambda At, Bt, w: computed.append(w) or real(At, Bt, w)
    )
    ex = SerialExecutor() if executor == "serial" else ThreadExecutor()
    rng = np.random.default_rng(8)
    A, B = rng.random((24, 16)), rng.random((16, 20))
    C, info = gpucoded.coded_matmul(A, B, "matdot", m=4, P=8, executor=ex, return_info=True)
    assert computed == list(range(7)) and info.abandoned == [7]
    assert np.abs(C - exact_product(A, B)).max() <= info.error_bound
    if executor == "serial":
        computed.clear()
        gpucoded.coded_matmul(A, B, "matdot", m=4, P=8, executor=ex, delays=[0.0] * 8)
        assert sorted(computed) == list(range(8))
    At, Bt = rng.random((3, 4, 4)), rng.random((3, 4, 4))
    run = ex.start(At, Bt, workers=range(3))
    it = iter(run)
    next(it)
    run.cancel()
    assert list(it) == [] and computed[-1] == 0


def test_runs_say_whether_workers_compute_in_the_background():
    """Run.background: False where nothing is in flight between reads (the serial
    executor, with or without delays; the thread executor's inline run of tiny workers),
    True for a pool run; a FaultyExecutor's run says what its inner run says."""
    from gpucoded.stragglers import FaultyExecutor

    rng = np.random.default_rng(9)
    tiny = rng.random((3, 4, 4)), rng.random((3, 4, 4))
    big = _stacks(P=3)
    cases = [
        (SerialExecutor(), tiny, None, False),
        (SerialExecutor(), tiny, [0.0, 0.1, 0.0], False),
        (ThreadExecutor(), tiny, None, False),
        (ThreadExecutor(), big, None, True),
        (ThreadExecutor(), tiny, [0.0, 0.01, 0.0], True),
        (FaultyExecutor(SerialExecutor(), {1: "nan"}), tiny, None, False),
        (FaultyExecutor(ThreadExecutor(), {1: "nan"}), big, None, True),
    ]
    for ex, (At, Bt), delays, background in cases:
        with ex.start(At, Bt, workers=range(3), delays=delays) as run:
            assert run.background is background, (ex, delays)
            assert len(list(run)) == 3
