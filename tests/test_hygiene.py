"""Resource hygiene: no memory growth, bounded caches, no stray worker threads.

Thresholds are derived, not tuned: a leak of one retained Python object per call
costs at least 16 bytes per call (the smallest object header), so N calls that
leak anything grow traced memory by at least 16·N bytes; the tests allow less than
that. Waiting-time limits are a small fraction of the injected straggler delay
(30 s), so "returned promptly" cannot be confused with "waited for the straggler".
"""

from __future__ import annotations

import _weakrefset
import gc
import itertools
import math
import os
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest
from _util import unit_gaussian

import gpucoded
from gpucoded.codes import base as code_base
from gpucoded.executors import SerialExecutor, ThreadExecutor
from gpucoded.executors.local import busy_workers
from gpucoded.stragglers import FaultyExecutor

N_CALLS = 500
MIN_OBJECT_BYTES = 16
STRAGGLER_DELAY = 30.0
#: Frames kept per allocation: enough to reach the library's innermost frame from
#: NumPy's allocation sites (each extra frame slows every traced allocation).
TRACE_DEPTH = 6
#: Allocations made on behalf of the library: a trace with a frame in the package.
#: Other libraries' background threads (an in-process Dask cluster that an earlier
#: test file started keeps its monitors' histories growing) are not the calls' memory.
#: Allocated *inside* the interpreter's thread registry (``threading._dangling``, a
#: WeakSet, and the thread start): hash tables that grow with the number of threads
#: alive at once and never shrink, so a loaded machine (more dead Thread objects not yet
#: collected) showed 12-14 KB "growth" over 500 calls with a new executor per call;
#: bounded, not a per-call leak. An allocation site in the package is still counted.
LIBRARY_TRACES = [
    tracemalloc.Filter(
        True, os.path.join(os.path.dirname(gpucoded.__file__), "*"), all_frames=True
    ),
    tracemalloc.Filter(False, threading.__file__),
    tracemalloc.Filter(False, _weakrefset.__file__),
]


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gpucoded-worker")]


def _wait_no_workers(timeout: float = 5.0) -> int:
    """Worker tasks still running after at most ``timeout`` s (0: all ended). The pools'
    threads stay for the next call; their tasks (delays, GEMMs) must end."""
    end = time.perf_counter() + timeout
    while busy_workers() and time.perf_counter() < end:
        time.sleep(0.01)
    return busy_workers()


def _wait_exited(keep: set[threading.Thread], timeout: float = 30.0) -> None:
    """Wait until the worker threads not in ``keep`` have exited."""
    end = time.perf_counter() + timeout
    while set(_worker_threads()) - keep and time.perf_counter() < end:
        time.sleep(0.01)
    assert not set(_worker_threads()) - keep, "threads of dropped executors did not exit"


def _library_bytes(snapshot: tracemalloc.Snapshot) -> int:
    return sum(s.size for s in snapshot.filter_traces(LIBRARY_TRACES).statistics("filename"))


@pytest.mark.parametrize("executor", ["serial", "threads", "one ThreadExecutor"])
def test_no_host_memory_growth(executor):
    """1,000 calls (failure patterns and verify modes cycling) do not grow host memory.

    After a warm-up that fills the per-code decode-weight cache, the memory allocated
    on behalf of the library (traces with a frame in the package: independent of what
    earlier tests left running) may not grow by 16 bytes per call (one leaked object
    per call would exceed that). ``"serial"``/``"threads"``: a new executor per call
    (what ``executor="threads"`` gives); ``"one ThreadExecutor"``: one executor
    and its pool for every call.
    """
    code = gpucoded.make_code("approx_matdot", m=2, P=4)
    A, B = unit_gaussian((6, 5), 90), unit_gaussian((5, 4), 91)
    cases = list(itertools.product(range(4), (None, "warn")))
    shared = ThreadExecutor()
    make = {
        "serial": SerialExecutor, "threads": ThreadExecutor, "one ThreadExecutor": lambda: shared
    }

    def call(i: int) -> None:
        f, verify = cases[i % len(cases)]
        failed = [] if verify else [f]  # verify needs K+1 = 3 answers
        gpucoded.coded_matmul(A, B, code, failed=failed, executor=make[executor](), verify=verify)

    for i in range(2 * len(cases)):
        call(i)
    assert not _wait_no_workers()
    gc.collect()
    threads = set(_worker_threads())
    tracemalloc.start(TRACE_DEPTH)
    try:
        before = _library_bytes(tracemalloc.take_snapshot())
        for i in range(N_CALLS):
            call(i)
        assert not _wait_no_workers()
        gc.collect()
        _wait_exited(threads)  # the pools of dropped executors: threads still exiting
        growth = _library_bytes(tracemalloc.take_snapshot()) - before
    finally:
        tracemalloc.stop()
    assert growth < MIN_OBJECT_BYTES * N_CALLS, f"grew {growth} B over {N_CALLS} calls"


def test_memory_check_sees_a_per_call_leak(monkeypatch):
    """The growth check above can fail: a pipeline step that keeps one small object per
    call (here the CallInfo) is caught with the same filter and threshold."""
    from gpucoded import pipeline

    kept = []
    real = pipeline.run_product

    def leaky(*a, **k):
        C, info = real(*a, **k)
        kept.append([info.used])  # a list and a tuple per call: > 16 B each
        return C, info

    monkeypatch.setattr(pipeline, "run_product", leaky)
    monkeypatch.setattr(gpucoded.api, "run_product", leaky)
    A, B = unit_gaussian((6, 5), 90), unit_gaussian((5, 4), 91)
    ex = SerialExecutor()
    gpucoded.coded_matmul(A, B, executor=ex)
    tracemalloc.start(TRACE_DEPTH)
    try:
        before = _library_bytes(tracemalloc.take_snapshot())
        for _ in range(N_CALLS):
            gpucoded.coded_matmul(A, B, executor=ex)
        growth = _library_bytes(tracemalloc.take_snapshot()) - before
    finally:
        tracemalloc.stop()
    assert len(kept) == N_CALLS + 1
    assert growth >= MIN_OBJECT_BYTES * N_CALLS


@pytest.mark.gpu
def test_no_device_memory_growth():
    """1,000 device calls: the CuPy pool's used bytes return to their warm level.

    The device keeps one copy of the decode weights per answer set (a bounded cache,
    ``kernels._COEF_CACHE_SIZE`` entries); the warm-up visits every answer set the loop
    uses (failed = 0..3), so any growth afterwards is a leak.
    """
    import cupy

    code = gpucoded.make_code("matdot", m=2, P=4)
    A = cupy.asarray(unit_gaussian((64, 48), 92))
    B = cupy.asarray(unit_gaussian((48, 32), 93))
    pool = cupy.get_default_memory_pool()
    for i in range(8):
        C = gpucoded.coded_matmul(A, B, code, failed=[i % 4])
    del C
    cupy.cuda.Device().synchronize()
    used = pool.used_bytes()
    for i in range(N_CALLS):
        C = gpucoded.coded_matmul(A, B, code, failed=[i % 4])
    del C
    cupy.cuda.Device().synchronize()
    assert pool.used_bytes() <= used


def test_decode_weight_cache_bounded(monkeypatch):
    """The per-code LRU keeps at most WEIGHT_CACHE_SIZE weight sets, most recent first."""
    monkeypatch.setattr(code_base, "WEIGHT_CACHE_SIZE", 4)
    code = gpucoded.make_code("matdot", m=2, P=7)
    subsets = list(itertools.combinations(range(7), 3))
    for S in subsets:
        code.decode_weights(S)
        assert len(code._cache) <= 4
    assert (subsets[-1], False, "float64") in code._cache  # key: set, partial, format
    assert (subsets[0], False, "float64") not in code._cache
    assert code_base.WEIGHT_CACHE_SIZE < len(subsets)


@pytest.mark.parametrize("shared", [True, False], ids=["one executor", "executor per call"])
def test_threads_cleaned_after_stragglers(shared):
    """Calls that abandon a 30 s straggler return at once and leave no work running;
    one executor's pool keeps its threads (at most 3 per worker whatever the number of
    calls: a call may find the previous calls' woken stragglers still ending), and
    executors dropped after their call take theirs with them."""
    code = gpucoded.make_code("matdot", m=2, P=5)
    A, B = unit_gaussian((6, 5), 94), unit_gaussian((5, 4), 95)
    assert not _wait_no_workers()
    before = threading.active_count()
    ex = ThreadExecutor()
    t0 = time.perf_counter()
    for i in range(50):
        delays = [0.0] * code.P
        delays[i % code.P] = STRAGGLER_DELAY
        delays[(i + 1) % code.P] = math.inf
        gpucoded.coded_matmul(
            A, B, code, delays=delays, executor=ex if shared else ThreadExecutor()
        )
    assert time.perf_counter() - t0 < STRAGGLER_DELAY / 3
    assert not _wait_no_workers()
    if shared:
        assert len(ex.threads()) <= 3 * code.P
        assert threading.active_count() <= before + 3 * code.P
    ex.close()  # its threads exit after their current task
    gc.collect()
    end = time.perf_counter() + 5.0
    while threading.active_count() > before and time.perf_counter() < end:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_warm_calls_start_no_threads_and_scan_no_libraries(monkeypatch):
    """A warm call on one executor starts no thread and does not look for the BLAS
    libraries again (threadpoolctl's scan reads /proc/self/maps: ~1 ms)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from gpucoded.executors import local

    code = gpucoded.make_code("chebyshev", m=4, P=8)
    A, B = unit_gaussian((32, 32), 102), unit_gaussian((32, 32), 103)
    for S in itertools.combinations(range(code.P), code.recovery_threshold):
        code.decode_weights(S, fmt="float64")  # whichever 7 answer first: no solve
    ex = ThreadExecutor()
    for _ in range(3):
        gpucoded.coded_matmul(A, B, code, executor=ex)
    assert local.BLAS._libs is not None  # found once
    scans, starts = [], []
    real_init = threadpoolctl.ThreadpoolController.__init__
    monkeypatch.setattr(
        threadpoolctl.ThreadpoolController, "__init__",
        lambda self, *a, **k: scans.append(1) or real_init(self, *a, **k),
    )  # fmt: skip
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda t: starts.append(t) or real_start(t))
    threads = set(ex.threads())
    for _ in range(50):
        assert not _wait_no_workers()  # the last call's workers are back in the pool
        gpucoded.coded_matmul(A, B, code, executor=ex)
    assert not scans
    assert not [t for t in starts if t.name.startswith("gpucoded-worker")]
    assert set(ex.threads()) == threads
    ex.close()


def test_interrupt_in_consumer_loop_cancels_run():
    """KeyboardInterrupt raised while answers are consumed cancels the run."""
    code = gpucoded.make_code("matdot", m=2, P=5)
    A, B = unit_gaussian((6, 5), 96), unit_gaussian((5, 4), 97)
    delays = [0.0, STRAGGLER_DELAY, STRAGGLER_DELAY, STRAGGLER_DELAY, 0.0]
    ex = FaultyExecutor(ThreadExecutor(), interrupt_after=1)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        gpucoded.coded_matmul(A, B, code, delays=delays, executor=ex)
    assert time.perf_counter() - t0 < STRAGGLER_DELAY / 3
    assert not _wait_no_workers()


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_while_waiting_leaves_no_workers():
    """A real SIGINT while coded_matmul waits for stragglers: KeyboardInterrupt, the
    delayed workers are woken and exit, nothing keeps running."""
    code = gpucoded.make_code("polynomial", p=2, q=2, P=6)
    A, B = unit_gaussian((6, 5), 98), unit_gaussian((5, 4), 99)
    delays = [STRAGGLER_DELAY] * code.P
    delays[0] = 0.0
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            gpucoded.coded_matmul(A, B, code, delays=delays, executor=ThreadExecutor())
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < STRAGGLER_DELAY / 3
    assert not _wait_no_workers()


def test_repeated_calls_results_stable():
    """Hygiene does not cost correctness: the 1,000th call equals the first."""
    code = gpucoded.make_code("matdot", m=2, P=4)
    A, B = unit_gaussian((5, 4), 100), unit_gaussian((4, 3), 101)
    first = gpucoded.coded_matmul(A, B, code, failed=[2], executor=SerialExecutor())
    for _ in range(200):
        last = gpucoded.coded_matmul(A, B, code, failed=[2], executor=SerialExecutor())
    np.testing.assert_array_equal(first, last)
