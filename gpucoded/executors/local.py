"""Local executors on the host (and on whatever array namespace the stacks live in).

:class:`ThreadExecutor` (the default) runs every worker on its own thread of a
:class:`WorkerPool` that the executor keeps for its lifetime (NumPy's BLAS releases
the GIL, so the GEMMs really overlap). Answers are delivered in completion order
through a queue; an injected delay is a real wait on a :class:`threading.Event`, so
cancelling the run wakes every delayed worker at once and it returns its thread to
the pool without computing. When ``coded_matmul`` returns, no worker sleeps on and
no task is queued; a GEMM already in flight (it cannot be interrupted) finishes and
its thread goes back to the pool. BLAS thread limits (:class:`BlasLimit`) are set up
once per process and applied per run by direct calls into the BLAS library.

:class:`SerialExecutor` computes the workers one after another in the caller's thread
and *simulates* the completion order with a virtual clock (nothing sleeps): worker w
starts when the workers before it in ``workers`` have finished computing, and answers
at that start plus its measured compute time plus ``delays[w]``. With delays, every
worker is computed when the run starts (the order needs every time); workers with an
infinite delay are not computed; answers later than ``timeout`` (virtual seconds) are
dropped; cancelling stops the delivery, not the computation (it is done). Without
delays the order is that of ``workers`` and each worker is computed when the run is
read up to it (:class:`LazyRun`): the workers after the decode rule is met are never
computed, as a pool abandons its stragglers. Delays farther apart than the compute
times fix the order too, which is what tests and precision studies want.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .base import Answer, Executor, Run

__all__ = ["BLAS", "BlasLimit", "LazyRun", "SerialExecutor", "ThreadExecutor", "busy_workers"]


class BlasLimit:
    """BLAS thread limits for the runs in flight: libraries found once, refcounted.

    The BLAS libraries of the process are found once (``threadpoolctl``'s scan of
    the loaded libraries reads ``/proc/self/maps``: about 1 ms, too much per call);
    a run then sets and restores their thread counts with one C call each. BLAS
    libraries have one process-wide setting, so concurrent runs share it: the first
    run in flight saves the counts and lowers them, later runs may lower them further,
    and the last run to end restores the saved counts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._libs: list[Any] | None = None
        self._saved: list[tuple[Callable[[int], Any], int | None]] = []
        self._limit: int | None = None
        self._active = 0

    def libraries(self) -> list[tuple[Callable[[], int | None], Callable[[int], Any]]]:
        """(get, set) thread-count functions of the BLAS libraries (found once; [] without
        threadpoolctl)."""
        if self._libs is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                self._libs = []
            else:
                ctl = ThreadpoolController().select(user_api="blas")
                self._libs = [_bind(c) for c in ctl.lib_controllers]
        return self._libs

    def acquire(self, threads: int) -> bool:
        """Limit BLAS to ``threads`` while this run lasts; True if :meth:`release` is owed."""
        with self._lock:
            libs = self.libraries()
            if not libs:
                return False
            if self._active == 0:
                self._saved = [(setter, getter()) for getter, setter in libs]
                self._limit = None
            if self._limit is None or threads < self._limit:
                for setter, n in self._saved:
                    if n is not None and n > threads:
                        setter(threads)
                self._limit = threads
            self._active += 1
            return True

    def release(self) -> None:
        """End one run's limit; the last run in flight restores the saved counts."""
        with self._lock:
            self._active -= 1
            if self._active == 0:
                if self._limit is not None:
                    for setter, n in self._saved:
                        if n is not None and n > self._limit:
                            setter(n)
                self._saved = []


#: Thread-count entry points per threadpoolctl ``internal_api``, the ones threadpoolctl
#: calls (looked up once here and called directly: threadpoolctl looks each symbol up
#: again on every call).
_SYMBOLS = {
    "openblas": ("openblas_get_num_threads", "openblas_set_num_threads"),
    "mkl": ("MKL_Get_Max_Threads", "MKL_Set_Num_Threads_Local"),
    "blis": ("bli_thread_get_num_threads", "bli_thread_set_num_threads"),
    "flexiblas": ("flexiblas_get_num_threads", "flexiblas_set_num_threads"),
}


def _bind(c: Any) -> tuple[Callable[[], int | None], Callable[[int], Any]]:
    """The (get, set) thread-count functions of one threadpoolctl library controller:
    its C entry points when found (OpenBLAS symbols may carry a ``scipy_`` prefix and a
    ``64_`` suffix), else the controller's own methods."""
    names = _SYMBOLS.get(getattr(c, "internal_api", ""))
    if getattr(c, "threading_layer", None) == "openmp" and c.internal_api == "openblas":
        names = ("omp_get_max_threads", "omp_set_num_threads")  # as threadpoolctl does
    lib = getattr(c, "dynlib", None)
    if names is not None and lib is not None:
        for pre, suf in (("", ""), ("scipy_", "64_"), ("", "64_"), ("scipy_", "")):
            get = getattr(lib, f"{pre}{names[0]}{suf}", None)
            put = getattr(lib, f"{pre}{names[1]}{suf}", None)
            if get is not None and put is not None:
                return get, put
    return c.get_num_threads, c.set_num_threads


#: The process's BLAS limit (one setting per process, shared by every thread executor).
BLAS = BlasLimit()

_BUSY_LOCK = threading.Lock()
_BUSY = [0]


#: Cores of the machine (read once: ``os.cpu_count`` costs a system call).
_CPUS = os.cpu_count() or 1


def busy_workers() -> int:
    """Worker tasks of thread executors running now (waiting a delay or computing).

    The pools' threads outlive the runs; what must not outlive a run is work: after
    a call returns and its abandoned GEMMs end, this is 0.
    """
    return _BUSY[0]


def multiply(At: Any, Bt: Any, w: int) -> Any:
    """Worker w's task: its encoded A times its encoded B."""
    return At[w] @ Bt[w]


class _SerialRun(Run):
    background = False  # every worker was computed at the start

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


class LazyRun(Run):
    """Workers computed in ``workers`` order, on the reading thread, as the run is read.

    The run of an executor without injected delays on the calling thread (the serial
    executor, the thread executor's tiny runs): a worker is computed when the reader
    asks for its answer, so the ones after the reader stops (the decode rule met, the
    run cancelled) are never computed, as a pool abandons its stragglers. Times are
    seconds since the run's start: ``virtual``, the summed compute times alone (the
    serial executor's clock); else the wall clock. An answer later than the time limit
    ends the run (later workers only answer later).
    """

    background = False

    def __init__(
        self, At: Any, Bt: Any, workers: Sequence[int], timeout: float | None, virtual: bool
    ) -> None:
        self._stacks: tuple[Any, Any] | None = (At, Bt)
        self._workers = list(workers)
        self._timeout = timeout
        self._virtual = virtual
        self._t0 = time.perf_counter()

    def __iter__(self) -> Iterator[Answer]:
        clock = 0.0
        for w in self._workers:
            stacks = self._stacks
            if stacks is None:  # cancelled
                return
            t0 = time.perf_counter()
            try:
                prod, err = multiply(stacks[0], stacks[1], w), None
            except Exception as e:  # a worker that raises is an erasure
                prod, err = None, e
            t1 = time.perf_counter()
            if self._virtual:
                start, clock = clock, clock + (t1 - t0)
                end = clock
            else:
                start, end = t0 - self._t0, t1 - self._t0
            if self._timeout is not None and end > self._timeout:
                return
            yield Answer(w, prod, err, start, end)

    def cancel(self) -> None:
        self._stacks = None  # and the encoded stacks go back to their pool now


class SerialExecutor(Executor):
    """The workers in the caller's thread; answers ordered by a virtual clock.

    Worker w's answer has ``start`` = the summed compute time of the workers before it
    and ``end`` = ``start`` + its compute time + ``delays[w]`` (see the module notes).
    With ``delays`` every worker is computed at ``start``; without, each when the run is
    read up to it (:class:`LazyRun`).
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
        if delays is None:
            return LazyRun(At, Bt, workers, timeout, virtual=True)
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


#: Multiply-adds per worker below which a thread executor's run without injected
#: delays runs its workers on the calling thread: handing a task to a pool thread and
#: its answer back (two queue operations and a thread wake-up, tens of microseconds
#: each) costs more than such a GEMM (32³ = 32,768 multiply-adds take about 10 µs).
INLINE_BELOW = 1 << 15


def _tiny(At: Any, Bt: Any, workers: Sequence[int]) -> bool:
    """Whether every worker's GEMM is below :data:`INLINE_BELOW` multiply-adds."""
    if not workers:
        return False
    try:
        a, b = At[workers[0]], Bt[workers[0]]
        n, k = a.shape[-2:]
        return n * k * b.shape[-1] < INLINE_BELOW
    except (AttributeError, TypeError, ValueError, IndexError):
        return False


def _inline(At: Any, Bt: Any, workers: Sequence[int], timeout: float | None) -> Run:
    """The run of tiny workers on the calling thread, in order, as it is read, with their
    real times (seconds since the start; an answer later than ``timeout`` ends it)."""
    return LazyRun(At, Bt, workers, timeout, virtual=False)


class WorkerPool:
    """Threads that serve one executor's runs for the executor's lifetime.

    :meth:`submit` first makes sure that every task it queues finds a free thread
    (threads still busy with an earlier run's task, e.g. an abandoned GEMM, do not
    count), starting only the missing ones and at most ``cap`` in all; so once warm,
    a run of P workers starts no thread. The threads hold the pool, not the executor:
    when the executor is dropped (or :meth:`close` is called) each thread receives a
    stop marker and exits after its current task.
    """

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pending = 0  # tasks queued or running

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def submit(self, tasks: list[tuple[Callable[..., None], tuple]]) -> None:
        """Queue ``fn(*args)`` for each ``(fn, args)``, with enough threads to run them."""
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            need = self._pending + len(tasks)
            if self.cap is not None:
                need = min(need, self.cap)
            for _ in range(need - len(self._threads)):
                t = threading.Thread(
                    target=_serve, args=(self,), daemon=True,
                    name=f"gpucoded-worker_{len(self._threads)}",
                )  # fmt: skip
                t.start()
                self._threads.append(t)
            self._pending += len(tasks)
        for task in tasks:
            self._tasks.put(task)

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    def close(self, wait: bool = False) -> None:
        """Let every thread exit after its current task (``wait``: until they have)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._tasks.put(None)
        if wait:
            for t in threads:
                t.join()


def _serve(pool: WorkerPool) -> None:
    """A pool thread: run queued tasks until a stop marker arrives."""
    while True:
        item = pool._tasks.get()
        if item is None:
            return
        fn, args = item
        try:
            fn(*args)
        finally:
            pool._done()
            del item, fn, args  # no reference to the run's data while idle


class _ThreadRun(Run):
    """Answers of one run on a persistent pool, in completion order, via a queue."""

    def __init__(
        self,
        stop: threading.Event,
        answers: queue.SimpleQueue,
        n: int,
        t0: float,
        timeout: float | None,
    ) -> None:
        self._stop = stop
        self._answers = answers
        self._n = n
        self._t0 = t0
        self._timeout = timeout
        self._cancelled = False
        self._blas = False  # a BLAS limit is held (released when the run ends)
        self._left = 0  # tasks of this run not yet ended
        self._ended = threading.Condition()

    def task_ended(self) -> None:
        with self._ended:
            self._left -= 1
            if self._left <= 0:
                self._ended.notify_all()

    def _end_blas(self) -> None:
        if self._blas:
            self._blas = False
            BLAS.release()

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
            self._end_blas()  # every worker is done

    def cancel(self) -> None:
        """Wake every delayed worker, drop queued ones, return without blocking."""
        if self._cancelled:
            return
        self._cancelled = True
        self._stop.set()  # tasks not yet started return at once when they do
        self._answers.put(None)  # ends an iteration blocked in another thread
        self._end_blas()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every task of this run has ended (run, cancelled or woken and
        returned); True if they all did. The pool's threads stay for the next run."""
        with self._ended:
            return self._ended.wait_for(lambda: self._left <= 0, timeout)


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
    The executor keeps one :class:`WorkerPool` for its lifetime (made at the first
    run, reused by every later one: once warm, a call starts no thread);
    :meth:`close` ends it, and so does dropping the executor. Without
    ``max_workers`` a run finds a free thread for every worker (a GEMM abandoned by
    an earlier run and still running does not delay this run's workers); with
    ``max_workers`` the pool has at most that many threads.
    Worker w waits on the run's stop event until ``delays[w]`` seconds after the
    start of the run (``math.inf``: until the run is cancelled, then it never
    answers), then computes ``At[w] @ Bt[w]``; an exception is delivered as an
    erasure (``Answer.error``). The ``Answer`` times are seconds since the run
    started. :meth:`Run.cancel` (leaving the ``with`` block) sets the run's stop
    event and cancels its tasks not yet started, so the caller returns at once and
    the delayed workers return their threads to the pool immediately.

    A run without injected delays whose workers' GEMMs each take fewer than
    :data:`INLINE_BELOW` multiply-adds runs them on the calling thread, one after
    another (their answers in that order, with real times): the hand-off to a pool
    thread and back costs more than such a GEMM.
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
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()

    def pool(self) -> WorkerPool:
        """The executor's pool (made at the first run; dropped with the executor)."""
        with self._lock:
            if self._pool is None:
                self._pool = WorkerPool(self.max_workers)
                weakref.finalize(self, self._pool.close)
            return self._pool

    def threads(self) -> list[threading.Thread]:
        """The pool's threads."""
        return [] if self._pool is None else self._pool.threads

    def close(self, wait: bool = False) -> None:
        """End the pool's threads after their current tasks (a later run makes a new
        pool); ``wait``: until they have exited."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(wait)

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
        if (delays is None or not any(delays[w] for w in workers)) and _tiny(At, Bt, workers):
            return _inline(At, Bt, workers, timeout)
        pool = self.pool()
        stop = threading.Event()
        out: queue.SimpleQueue = queue.SimpleQueue()
        t0 = time.perf_counter()

        def task(w: int, delay: float) -> None:
            try:
                if stop.is_set():
                    return  # the run ended before this worker started
                with _BUSY_LOCK:
                    _BUSY[0] += 1
                try:
                    work(w, delay)
                finally:
                    with _BUSY_LOCK:
                        _BUSY[0] -= 1
            finally:
                run.task_ended()

        def work(w: int, delay: float) -> None:
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

        d = [0.0 if delays is None else float(delays[w]) for w in workers]
        finite = sum(not math.isinf(x) for x in d)  # answers that can arrive
        run = _ThreadRun(stop, out, finite, t0, timeout)
        if self.blas_threads is not None:
            k = self.blas_threads
            if k == "auto":
                k = max(1, _CPUS // max(1, self.max_workers or len(workers)))
            run._blas = BLAS.acquire(k)
        run._left = len(workers)
        pool.submit([(task, (w, x)) for w, x in zip(workers, d, strict=True)])
        return run
