r"""Hedged (speculative) execution: m exact tasks, a late task re-issued to an idle spare.

This is what users do without a code (Spark's ``spark.speculation``, MapReduce backup
tasks, hedged requests): :math:`C=\sum_{j<m}A_jB_j` is split into m uncoded tasks
(A in m column blocks, B in m row blocks, the split of
:class:`~gpucoded.codes.Uncoded`); task j starts on worker j and the other
:math:`P-m` workers are *spares* that hold nothing until a task is re-issued to them.

The policy (:func:`run_tasks`), on any executor:

* at time 0 task j runs on worker j (a worker in ``failed`` is skipped: its task goes
  to the first idle spare at once);
* a task whose newest copy has been running for ``hedge_after`` seconds (:math:`H`)
  is re-issued to an idle spare; the spare receives that task's two blocks
  :math:`A_j, B_j` only then (on Dask they are scattered to it: the bytes are in
  :attr:`HedgeReport.bytes_to_spares`);
* the first copy of a task to answer wins; the task's other copies are cancelled,
  and a spare whose copy won or was cancelled is idle again; a copy that raises or
  gives an unusable answer (wrong shape, NaN from finite inputs) is an erasure and
  its task is re-issued at once;
* the product is complete when every task has a winner: :math:`C=\sum_j A_jB_j`,
  exact (no decode weights, no conditioning: the rounding of one GEMM and an m-term
  sum).

:math:`H` is a number of seconds, or (default) the rule of
:class:`HedgePolicy`: :math:`H=\max(H_{\min},\ k\cdot\mathrm{median}(d))` over the
durations :math:`d` (issue to answer) of the copies answered so far in this call,
with :math:`k=2`, :math:`H_{\min}=20` ms; no task is re-issued before the first
answer (there is nothing to compare with), so with the rule a call whose tasks are
all late waits for them like the uncoded baseline (give ``hedge_after=`` seconds).

What cancel can and cannot stop (as for the codes): a cancelled copy's injected delay
ends at once and a copy not yet started is dropped (threads, Dask); a GEMM already
running (a thread's or a Dask task's) finishes and its answer is discarded; a GEMM
queued on a CUDA stream still runs. Re-issued copies run in runs of their own and are
cancelled as soon as their task is won; the m first copies share one run (one thread
pool, one BLAS setting) and a losing first copy is cancelled when the call returns.

**Clock.** On the serial executor (virtual clock) nothing waits: every copy is
computed when it is issued and its answer carries the virtual time issue + compute
+ injected delay, so the policy runs on virtual time and its decisions and the time to
result are exactly those of :func:`gpucoded.stragglers.hedged_time` given the same
per-copy latencies. On threads, CUDA streams and Dask the policy runs on the wall
clock: one thread per run forwards its answers to the loop, which waits for the next
answer or the next re-issue time, whichever comes first.
"""

from __future__ import annotations

import heapq
import itertools
import math
import queue
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .executors.base import Answer, Executor, Run
from .executors.local import SerialExecutor

__all__ = [
    "HEDGE_FACTOR",
    "HEDGE_FLOOR",
    "HedgePolicy",
    "HedgeReport",
    "Reissue",
    "run_tasks",
    "task_stacks",
]

#: Default rule: re-issue after ``HEDGE_FACTOR`` × the median duration of the copies
#: answered so far ...
HEDGE_FACTOR = 2.0
#: ... but never sooner than this many seconds after the copy was issued.
HEDGE_FLOOR = 0.02


@dataclass(frozen=True)
class HedgePolicy:
    r"""When a running copy counts as late: :math:`H` seconds after it was issued.

    ``after`` (seconds) fixes :math:`H`; None (default) derives it from the call:
    :math:`H=\max(\text{floor},\ \text{factor}\cdot\mathrm{median}(d))` over the
    durations :math:`d` of the copies answered so far (undefined, so no re-issue,
    until the first answer).
    """

    after: float | None = None
    factor: float = HEDGE_FACTOR
    floor: float = HEDGE_FLOOR

    def threshold(self, durations: Sequence[float]) -> float | None:
        """:math:`H` given the durations seen so far (None: not yet defined)."""
        if self.after is not None:
            return self.after
        if not durations:
            return None
        return max(self.floor, self.factor * statistics.median(durations))


@dataclass(frozen=True)
class Reissue:
    """One task re-issued to a spare.

    Attributes
    ----------
    task : int
    worker : int
        The spare that received it.
    at : float
        Seconds since the start of the run (virtual seconds on the serial executor).
    after : float or None
        :math:`H` in force (None: issued at once because no copy of the task could
        still answer: its worker failed or its answer was an erasure).
    backs_up : int or None
        The worker whose copy was late (None when it had none left).
    """

    task: int
    worker: int
    at: float
    after: float | None
    backs_up: int | None


@dataclass
class HedgeReport:
    """What the hedged run did (``CallInfo.hedge``).

    Attributes
    ----------
    reissued : list of Reissue
        Every re-issue, in order.
    winners : dict
        Task -> the worker whose copy was used.
    cancelled : list of int
        Workers whose copy lost and was cancelled when its task was won (re-issued
        copies), or left to the end of the call (first copies share one run).
    hedge_after : float or None
        The last :math:`H` computed (None: never defined).
    bytes_to_spares : int
        Bytes of operand blocks handed to spares: measured by the executor where it
        counts what it sends (Dask: ``DaskExecutor.bytes_sent``), else the bytes of
        the blocks :math:`A_j, B_j` given to each spare.
    task_time : float
        Seconds from the start until the last task was won.
    """

    reissued: list[Reissue] = field(default_factory=list)
    winners: dict[int, int] = field(default_factory=dict)
    cancelled: list[int] = field(default_factory=list)
    hedge_after: float | None = None
    bytes_to_spares: int = 0
    task_time: float = math.inf


@dataclass
class TaskOutcome:
    """Everything :func:`run_tasks` learned; ``products[j]`` is None for a task not won."""

    products: list[Any]
    answered: list[int] = field(default_factory=list)
    worker_times: dict[int, tuple[float, float]] = field(default_factory=dict)
    erased: dict[int, str] = field(default_factory=dict)
    report: HedgeReport = field(default_factory=HedgeReport)

    @property
    def complete(self) -> bool:
        return all(p is not None for p in self.products)


# ------------------------------------------------------------------ feeds
@dataclass
class _Copy:
    task: int
    worker: int
    at: float
    run_id: int
    live: bool = True  # may still answer


_END = object()


class _RealFeed:
    """Answers of several runs on the wall clock: one forwarding thread per run."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._open = 0  # forwarding threads that have not ended
        self.runs: dict[int, Run] = {}

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def add(self, run_id: int, run: Run, at: float) -> None:
        self.runs[run_id] = run
        self._open += 1

        def forward() -> None:
            try:
                for ans in run:
                    self._q.put((run_id, ans))
            except Exception as e:  # pragma: no cover - an executor bug; end the run
                self._q.put((run_id, e))
            finally:
                self._q.put((run_id, _END))

        threading.Thread(target=forward, name=f"gpucoded-hedge-run{run_id}", daemon=True).start()

    def cancel(self, run_id: int) -> None:
        self.runs[run_id].cancel()

    def next(self, until: float | None) -> tuple[int, Any] | None:
        """The next (run_id, Answer | _END), or None when ``until`` (seconds) came first."""
        while True:
            wait = None if until is None else until - self.now()
            if wait is not None and wait <= 0:
                return None
            try:
                item = self._q.get(timeout=wait)
            except queue.Empty:
                return None
            if item[1] is _END:
                self._open -= 1
            return item

    @property
    def idle(self) -> bool:
        """No run can deliver anything more."""
        return self._open == 0 and self._q.empty()


class _VirtualFeed:
    """Answers of serial runs on the virtual clock (issue time + the answer's own time)."""

    def __init__(self) -> None:
        self.clock = 0.0
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self.runs: dict[int, Run] = {}
        self._cancelled: set[int] = set()

    def now(self) -> float:
        return self.clock

    def add(self, run_id: int, run: Run, at: float) -> None:
        self.runs[run_id] = run
        answers = list(run)  # computed at start; times relative to the run's start
        for ans in answers:
            heapq.heappush(self._heap, (at + ans.end, next(self._seq), run_id, ans))
        heapq.heappush(self._heap, (math.inf, next(self._seq), run_id, _END))

    def cancel(self, run_id: int) -> None:
        self._cancelled.add(run_id)
        self.runs[run_id].cancel()

    def next(self, until: float | None) -> tuple[int, Any] | None:
        while self._heap:
            t, _, run_id, ans = self._heap[0]
            if ans is not _END and run_id in self._cancelled:
                heapq.heappop(self._heap)
                continue
            if until is not None and t > until:
                self.clock = max(self.clock, until)
                return None
            heapq.heappop(self._heap)
            if ans is not _END:
                self.clock = max(self.clock, t)
            return run_id, ans
        if until is not None:
            self.clock = max(self.clock, until)
        return None

    @property
    def idle(self) -> bool:
        return not self._heap


# ------------------------------------------------------------------ the policy
def task_stacks(At: Any, Bt: Any, m: int) -> tuple[Any, Any]:
    """Rows 0..m-1 of the encoded stacks: the task blocks ``(A_j, B_j)``.

    Raises ``TypeError`` for blocks already placed on workers (an operator's
    resident side on Dask): a spare could not be handed a task's blocks.
    """
    if not all(hasattr(X, "ndim") and X.ndim == 3 for X in (At, Bt)):
        raise TypeError(
            "code='hedged' needs the task blocks as arrays; blocks already placed on "
            "workers (an operator's resident side) cannot be handed to a spare: use "
            "coded_matmul, or a code, with this executor"
        )
    return At[:m], Bt[:m]


def run_tasks(
    executor: Executor,
    At: Any,
    Bt: Any,
    P: int,
    *,
    policy: HedgePolicy,
    delays: Sequence[float] | None = None,
    failed: frozenset[int] = frozenset(),
    deadline: float | None = None,
    check: Callable[[Any], str | None] = lambda product: None,
) -> TaskOutcome:
    r"""Run the m tasks ``At[j] @ Bt[j]`` on workers 0..m-1 with P − m spares, hedged.

    Parameters
    ----------
    executor : Executor
        Any executor; copies are started with :meth:`Executor.start` (the first m in
        one run, each re-issued copy in a run of its own with the task's blocks
        ``At[j:j+1]``, ``Bt[j:j+1]``).
    At, Bt : arrays (m, rb, cb), (m, cb, db)
        The task blocks (:meth:`gpucoded.codes.Hedged.encode`).
    P : int
        Workers; workers m..P-1 are the spares.
    policy : HedgePolicy
    delays : sequence of P floats, optional
        Injected latency of each worker (seconds, ``math.inf``: never answers): a
        copy issued to worker w at time t answers at t + compute + ``delays[w]``.
    failed : set of int
        Workers that are down: never given a task.
    deadline : float, optional
        Seconds from the start; tasks not won by then are missing in the outcome.
    check : callable
        ``check(product)`` -> why an answer is unusable, or None (the pipeline's
        answer checks); an unusable answer is an erasure and its task is re-issued.

    Returns
    -------
    TaskOutcome
    """
    At, Bt = task_stacks(At, Bt, int(At.shape[0]))
    m = int(At.shape[0])
    if not 1 <= m <= P:
        raise ValueError(f"hedged: m={m} tasks need 1 <= m <= P={P}")
    virtual = isinstance(executor, SerialExecutor)
    feed: _RealFeed | _VirtualFeed = _VirtualFeed() if virtual else _RealFeed()
    out = TaskOutcome(products=[None] * m)
    rep = out.report
    spares = [w for w in range(m, P) if w not in failed]  # idle spares, in order
    copies: dict[int, list[_Copy]] = {j: [] for j in range(m)}
    run_copies: dict[int, list[_Copy]] = {}
    durations: list[float] = []
    sent0 = getattr(executor, "bytes_sent", None)
    counts_bytes = isinstance(sent0, int)
    run_ids = itertools.count()

    def lim(at: float) -> float | None:
        return None if deadline is None else max(0.0, deadline - at)

    def issue(j: int, w: int, after: float | None) -> None:
        at = feed.now()
        live = [c for c in copies[j] if c.live]
        rep.reissued.append(Reissue(j, w, at, after, live[-1].worker if live else None))
        rid = next(run_ids)
        c = _Copy(j, w, at, rid)
        copies[j].append(c)
        run_copies[rid] = [c]
        before = getattr(executor, "bytes_sent", 0)
        d = None if delays is None else [delays[w]]
        run = executor.start(At[j : j + 1], Bt[j : j + 1], workers=[0], delays=d, timeout=lim(at))
        if counts_bytes:
            rep.bytes_to_spares += executor.bytes_sent - before
        else:
            rep.bytes_to_spares += int(At[j].nbytes + Bt[j].nbytes)
        feed.add(rid, run, at)

    def pending() -> list[int]:
        return [
            j for j in range(m) if out.products[j] is None and not any(c.live for c in copies[j])
        ]

    # the first copies: task j on worker j, one run
    first = [j for j in range(m) if j not in failed]
    rid0 = next(run_ids)
    run_copies[rid0] = [_Copy(j, j, 0.0, rid0) for j in first]
    for c in run_copies[rid0]:
        copies[c.task].append(c)
    if first:
        run0 = executor.start(At, Bt, workers=first, delays=delays, timeout=deadline)
        feed.add(rid0, run0, 0.0)
    try:
        while any(p is None for p in out.products):
            for j in pending():  # no copy can answer: re-issue now, if a spare is idle
                if not spares:
                    break
                issue(j, spares.pop(0), None)
            H = policy.threshold(durations)
            rep.hedge_after = H if H is not None else rep.hedge_after
            hedge_at = None
            if H is not None and spares:
                late = [
                    max(c.at for c in copies[j] if c.live) + H
                    for j in range(m)
                    if out.products[j] is None and any(c.live for c in copies[j])
                ]
                hedge_at = min(late, default=None)
            until = hedge_at
            if deadline is not None:
                until = deadline if until is None else min(until, deadline)
            if until is None and feed.idle:
                break  # nothing can arrive and nothing will be re-issued
            item = feed.next(until)
            if item is None:
                now = feed.now()
                if deadline is not None and now >= deadline:
                    break
                if until is None and feed.idle:
                    break
                for j in range(m):  # every late task, in task order, while spares last
                    live = [c for c in copies[j] if c.live]
                    if out.products[j] is None and live and spares and H is not None:
                        if now >= max(c.at for c in live) + H:
                            issue(j, spares.pop(0), H)
                continue
            rid, ans = item
            if ans is _END:
                continue  # copies of this run that never answered stay "running"
            if isinstance(ans, BaseException):  # pragma: no cover - forwarded executor bug
                raise ans
            _arrival(ans, rid, run_copies, copies, out, durations, spares, feed, check, m)
    finally:
        for run in feed.runs.values():  # losers, stragglers, copies after a deadline
            run.cancel()
    rep.task_time = feed.now() if out.complete else math.inf
    if out.complete and virtual:
        rep.task_time = max(out.worker_times[w][1] for w in rep.winners.values())
    return out


def _arrival(
    ans: Answer,
    rid: int,
    run_copies: dict[int, list[_Copy]],
    copies: dict[int, list[_Copy]],
    out: TaskOutcome,
    durations: list[float],
    spares: list[int],
    feed: _RealFeed | _VirtualFeed,
    check: Callable[[Any], str | None],
    m: int,
) -> None:
    """Book one answer: an erasure, the winner of its task, or a late duplicate."""
    rep = out.report
    group = run_copies[rid]
    c = group[0] if len(group) == 1 else next(x for x in group if x.worker == ans.worker)
    w, j = c.worker, c.task
    if not c.live:
        return  # a cancelled copy that answered before its cancel took effect: unused
    c.live = False
    start, end = c.at + ans.start, c.at + ans.end
    out.answered.append(w)
    out.worker_times[w] = (start, end)
    reason = None if ans.ok else f"raised {ans.error!r}"
    if reason is None:
        reason = check(ans.product)
    if w >= m and w not in spares:
        spares.append(w)  # the spare is free again
        spares.sort()
    if reason is not None:
        out.erased[w] = reason
        return
    durations.append(ans.end)  # issue to answer (the run started at the issue)
    out.products[j] = ans.product
    rep.winners[j] = w
    for other in copies[j]:
        if other.live and other is not c:
            other.live = False
            rep.cancelled.append(other.worker)
            if len(run_copies[other.run_id]) == 1:
                feed.cancel(other.run_id)
            if other.worker >= m and other.worker not in spares:
                spares.append(other.worker)
                spares.sort()
