"""Resource hygiene: no memory growth, bounded caches, no stray worker threads.

Thresholds are derived, not tuned: a leak of one retained Python object per call
costs at least 16 bytes per call (the smallest object header), so N calls that
leak anything grow traced memory by at least 16·N bytes; the tests allow less than
that. Waiting-time limits are a small fraction of the injected straggler delay
(30 s), so "returned promptly" cannot be confused with "waited for the straggler".
"""

from __future__ import annotations

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
from gpucoded.stragglers import FaultyExecutor

N_CALLS = 1000
MIN_OBJECT_BYTES = 16
STRAGGLER_DELAY = 30.0


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gpucoded-worker")]


def _wait_no_workers(timeout: float = 5.0) -> list[threading.Thread]:
    end = time.perf_counter() + timeout
    while _worker_threads() and time.perf_counter() < end:
        time.sleep(0.01)
    return _worker_threads()


@pytest.mark.parametrize("executor", [SerialExecutor, ThreadExecutor])
def test_no_host_memory_growth(executor):
    """1,000 calls (failure patterns and verify modes cycling) do not grow host memory.

    After a warm-up that fills the per-code decode-weight cache, traced memory may not
    grow by 16 bytes per call (one leaked object per call would exceed that).
    """
    code = gpucoded.make_code("approx_matdot", m=2, P=4)
    A, B = unit_gaussian((6, 5), 90), unit_gaussian((5, 4), 91)
    cases = list(itertools.product(range(4), (None, "warn")))

    def call(i: int) -> None:
        f, verify = cases[i % len(cases)]
        failed = [] if verify else [f]  # verify needs K+1 = 3 answers
        gpucoded.coded_matmul(A, B, code, failed=failed, executor=executor(), verify=verify)

    for i in range(2 * len(cases)):
        call(i)
    assert not _wait_no_workers()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(N_CALLS):
            call(i)
        assert not _wait_no_workers()
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth < MIN_OBJECT_BYTES * N_CALLS, f"grew {growth} B over {N_CALLS} calls"


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


def test_threads_cleaned_after_stragglers():
    """Calls that abandon a 30 s straggler return at once and leave no worker threads."""
    code = gpucoded.make_code("matdot", m=2, P=5)
    A, B = unit_gaussian((6, 5), 94), unit_gaussian((5, 4), 95)
    before = threading.active_count()
    t0 = time.perf_counter()
    for i in range(50):
        delays = [0.0] * code.P
        delays[i % code.P] = STRAGGLER_DELAY
        delays[(i + 1) % code.P] = math.inf
        gpucoded.coded_matmul(A, B, code, delays=delays, executor=ThreadExecutor())
    assert time.perf_counter() - t0 < STRAGGLER_DELAY / 3
    assert not _wait_no_workers()
    assert threading.active_count() <= before


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
