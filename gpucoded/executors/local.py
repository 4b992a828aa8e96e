"""Local executors on the host (and on whatever array namespace the stacks live in).

:class:`ThreadExecutor` (the default) runs every worker on its own thread of a
:class:`concurrent.futures.ThreadPoolExecutor` (NumPy's BLAS releases the GIL, so
the GEMMs really overlap). Answers are delivered in completion order through a
queue; an injected delay is a real wait on a :class:`threading.Event`, so cancelling
the run wakes every delayed worker at once and it exits without computing. When
``coded_matmul`` returns, no worker sleeps on and no task is queued; a GEMM already
in flight (it cannot be interrupted) finishes and its thread exits.

:class:`SerialExecutor` computes every worker, one after another in the caller's
thread, when the run starts, and *simulates* the completion order with a virtual clock
(nothing sleeps): worker w starts when the workers before it in ``workers`` have
finished computing, and answers at that start plus its measured compute time plus
``delays[w]``. Workers with an infinite delay are not computed; answers later than
``timeout`` (virtual seconds) are dropped; cancelling stops the delivery, not the
computation (it is done). With no delays the order is that of ``workers``; delays
farther apart than the compute times fix the order too, which is what tests and
precision studies want.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import Answer, Executor, Run

__all__ = ["SerialExecutor", "ThreadExecutor"]

_CONTROLLER: list[Any] = []


def _limit_blas(threads: int) -> Any:
    """Limit BLAS to ``threads`` threads (process-wide) via threadpoolctl, if installed.

    Returns an object with ``restore_original_limits()``, or None when nothing was
    changed (no threadpoolctl, or BLAS already uses at most ``threads``).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    ctl = _CONTROLLER[0].select(user_api="blas")
    if not ctl.lib_controllers or all(c.num_threads <= threads for c in ctl.lib_controllers):
        return None
    return ctl.limit(limits=threads)


def multiply(At: Any, Bt: Any, w: int) -> Any:
    """Worker w's task: its encoded A times its encoded B."""
    return At[w] @ Bt[w]


class _SerialRun(Run):
    def __init__(self, answers: list[Answer]) -> None:
        self._answers = answers
        self._cancelled = False
        self._timeout: float | None = None  # virtual clock (Run.limit)

    def __iter__(self) -> Iterator[Answer]:
        for a in self._answers:
            if self._cancelled or (self._timeout is not None and a.end > self._timeout):
                return
            yield a

    def cancel(self) -> None:
        self._cancelled = True


class SerialExecutor(Executor):
    """All workers in the caller's thread at ``start``; answers ordered by a virtual clock.

    Worker w's answer has ``start`` = the summed compute time of the workers before it
    and ``end`` = ``start`` + its compute time + ``delays[w]`` (see the module notes).
    """

    name = "serial"

    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        answers = []
        clock = 0.0
        for w in workers:
            delay = 0.0 if delays is None else delays[w]
            if math.isinf(delay):
                continue
            t0 = time.perf_counter()
            try:
                prod, err = multiply(At, Bt, w), None
            except Exception as e:  # a worker that raises is an erasure
                prod, err = None, e
            dt = time.perf_counter() - t0
            start = clock
            clock += dt
            end = clock + delay
            if timeout is not None and end > timeout:
                continue
            answers.append(Answer(w, prod, err, start, end))
        answers.sort(key=lambda a: a.end)
        return _SerialRun(answers)


class _ThreadRun(Run):
    """Answers of a thread pool, in completion order, via a queue."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        stop: threading.Event,
        answers: queue.SimpleQueue,
        n: int,
        t0: float,
        timeout: float | None,
    ) -> None:
        self._pool = pool
        self._stop = stop
        self._answers = answers
        self._n = n
        self._t0 = t0
        self._timeout = timeout
        self._cancelled = False
        self.threads: list[threading.Thread] = []
        self.blas_limit: Any = None  # restored when the run ends

    def _restore_blas(self) -> None:
        if self.blas_limit is not None:
            self.blas_limit.restore_original_limits()
            self.blas_limit = None

    def __iter__(self) -> Iterator[Answer]:
        got = 0
        while got < self._n and not self._cancelled:
            wait = None
            if self._timeout is not None:
                wait = self._timeout - (time.perf_counter() - self._t0)
                if wait <= 0:
                    return
            try:
                ans = self._answers.get(timeout=wait)
            except queue.Empty:
                return
            if ans is None:  # cancel() woke an iterator waiting in another thread
                return
            got += 1
            yield ans
        if got == self._n:
            self._restore_blas()  # every worker is done

    def cancel(self) -> None:
        """Wake every delayed worker, drop queued ones, return without blocking."""
        if self._cancelled:
            return
        self._cancelled = True
        self._stop.set()
        self._answers.put(None)  # ends an iteration blocked in another thread
        self.threads = list(getattr(self._pool, "_threads", ()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._restore_blas()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every worker thread of this run has exited; True if they all did."""
        end = None if timeout is None else time.perf_counter() + timeout
        threads = self.threads or list(getattr(self._pool, "_threads", ()))
        for t in threads:
            t.join(None if end is None else max(0.0, end - time.perf_counter()))
        return not any(t.is_alive() for t in threads)


class ThreadExecutor(Executor):
    """Every worker on its own thread; answers in real completion order.

    Parameters
    ----------
    max_workers : int, optional
        Threads of the pool (default: one per worker, so that every worker runs
        concurrently as a separate machine would).
    blas_threads : int, "auto" or None
        BLAS threads of each worker's GEMM while the run lasts. P concurrent GEMMs
        that each start as many BLAS threads as there are cores oversubscribe the
        CPU (OpenBLAS threads spin): on 2 cores with P = 9 answers arrived a median
        20–40 ms late instead of about 1 ms. ``"auto"`` (default):
        ``max(1, cpu_count // threads)``; an int: that many; None: leave BLAS alone.
        Applied with ``threadpoolctl`` when it is installed (otherwise ignored); BLAS
        libraries have one process-wide setting, restored when the run ends or is
        cancelled.

    Notes
    -----
    Worker w waits on the run's stop event until ``delays[w]`` seconds after the
    start of the run (``math.inf``: until the run is cancelled, then it never
    answers), then computes
    ``At[w] @ Bt[w]``; an exception is delivered as an erasure (``Answer.error``).
    The ``Answer`` times are seconds since the run started. Each run owns its pool;
    :meth:`Run.cancel` (leaving the ``with`` block) sets the stop event, cancels
    queued tasks and shuts the pool down without waiting, so the caller returns at
    once and the delayed threads exit immediately.
    """

    name = "threads"

    def __init__(
        self, max_workers: int | None = None, blas_threads: int | str | None = "auto"
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        if not (blas_threads is None or blas_threads == "auto") and (
            not isinstance(blas_threads, int) or blas_threads < 1
        ):
            raise ValueError(
                f"blas_threads must be 'auto', None or an int >= 1, got {blas_threads!r}"
            )
        self.max_workers = max_workers
        self.blas_threads = blas_threads

    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        workers = list(workers)
        n = max(1, self.max_workers or len(workers))
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="gpucoded-worker")
        stop = threading.Event()
        out: queue.SimpleQueue = queue.SimpleQueue()
        t0 = time.perf_counter()

        def task(w: int, delay: float) -> None:
            start = time.perf_counter() - t0
            if delay > 0:
                # cooperative straggling until t0 + delay (not from this thread's own
                # start, which may lag): cancel wakes us and we leave without work
                wait = None if math.isinf(delay) else max(0.0, t0 + delay - time.perf_counter())
                if stop.wait(wait) or math.isinf(delay):
                    return
            try:
                prod, err = multiply(At, Bt, w), None
            except Exception as e:  # a worker that raises is an erasure
                prod, err = None, e
            if not stop.is_set():
                out.put(Answer(w, prod, err, start, time.perf_counter() - t0))

        d = {w: 0.0 if delays is None else float(delays[w]) for w in workers}
        limit = None
        if self.blas_threads is not None:
            k = self.blas_threads
            if k == "auto":
                k = max(1, (os.cpu_count() or 1) // n)
            limit = _limit_blas(k)
        finite = sum(not math.isinf(x) for x in d.values())  # answers that can arrive
        run = _ThreadRun(pool, stop, out, finite, t0, timeout)
        run.blas_limit = limit
        for w in workers:
            pool.submit(task, w, d[w])
        return run
