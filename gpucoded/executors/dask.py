"""Dask distributed executor: every coded worker is one Dask task.

The master encodes once (``coded_matmul`` does), then for each Dask worker
scatters *only* the encoded blocks of the coded workers placed on it
(``client.scatter(..., workers=[address])``, round robin over the cluster's
workers), submits one task per coded worker pinned next to its data, collects the
tasks with :class:`distributed.as_completed` and, once the decoder has enough
answers, cancels the rest.

Dask's ``cancel`` does not stop a task that is already running, so an injected
delay is a wait on a per-run :class:`distributed.Event`: the task secedes from the
worker's thread pool (a straggler never blocks a pool thread; it computes its late
product on its own thread and never rejoins), and cancelling the run sets the
event, so every delayed task returns at once without computing. ``math.inf``
waits for the event only: the task never answers and ends when the run is
cancelled.

Works with any cluster: ``DaskExecutor(client)``, ``DaskExecutor("tcp://host:8786")``
or :func:`local_executor` (an embedded in-process ``LocalCluster``, the default of
``executor="dask"``). With ``dask_cuda.LocalCUDACluster`` each Dask worker owns a GPU:
pass CuPy inputs and the tasks run the CuPy GEMM there (not tested here).
Requires the optional ``distributed`` package (``pip install gpucoded[dask]``).

BLAS threads: workers started by a Nanny (the default, process-based clusters) run
with one BLAS thread (``distributed``'s ``pre-spawn-environ``). In an in-process
cluster (``processes=False``) the tasks share the caller's BLAS setting: set
``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` before NumPy loads, or each concurrent
GEMM oversubscribes the cores (measured: answers 30 ms late instead of 8 ms on 2
cores with P = 9).
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Answer, Executor, Placed, Run

__all__ = ["DaskExecutor", "ScatteredStacks", "local_executor"]


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Dask executor needs the 'distributed' package: pip install 'gpucoded[dask]' "
            "(or pip install distributed)"
        ) from e
    return distributed


def _worker_task(a: Any, b: Any, delay: float, event_name: str | None, t0_wall: float) -> Any:
    """One coded worker on a Dask worker: wait ``delay`` cooperatively, then ``a @ b``.

    The wait is a local timer (precise to the OS's timer, no scheduler hop at the
    deadline) that the run's :class:`distributed.Event` cuts short when it is set
    (the run was cancelled). Returns ``(product, start, end)`` (seconds since the
    run started, wall clock), or None when the run was cancelled during the delay.

    A delayed task secedes and never rejoins the worker's thread pool: it computes
    its late product on its own (seceded) thread, as the separate machine it models
    would. ``rejoin`` would block until one of the pool's threads finishes a task,
    and it starts no thread to watch the event either (the client's event loop
    awaits the scheduler's ``event_wait``): a delayed task's only blocking wait is
    its own bounded timer, so stragglers cannot tie up or starve the pool of a
    saturated in-process cluster.
    """
    start = time.time() - t0_wall
    if delay > 0:
        from distributed import Event, get_client, secede

        client = get_client()
        secede()  # a straggler must not hold one of the worker's threads
        if math.isinf(delay):  # never answers: wait for the cancellation only
            Event(event_name, client=client).wait()
            return None
        if _cancelled_within(client, event_name, max(0.0, delay - (time.time() - t0_wall))):
            return None  # until t0 + delay (the master's clock), not this task's start
    return a @ b, start, time.time() - t0_wall


def _cancelled_within(client: Any, event_name: str | None, seconds: float) -> bool:
    """True when the run's cancel event is set within ``seconds`` (a local timer).

    The scheduler's ``event_wait`` is awaited on the client's event loop, which sets
    a local flag: no thread is started and none is held. The await ends when the run
    is cancelled (``coded_matmul`` always cancels) or the client closes. Without a
    cancel signal (the scheduler unreachable) the task answers at its deadline.
    """
    cancelled = threading.Event()

    async def watch() -> None:
        try:
            if await client.scheduler.event_wait(name=event_name):
                cancelled.set()
        except Exception:  # no cancel signal: the task still answers at its deadline
            pass

    client.loop.add_callback(watch)
    return cancelled.wait(seconds)


@dataclass
class ScatteredStacks:
    """Encoded blocks kept on the Dask workers: scatter once, start many runs.

    Made by :meth:`DaskExecutor.scatter_stacks`; pass it to :meth:`DaskExecutor.start`
    in place of ``At`` (``Bt=None``). Coded worker ``w``'s blocks live on the Dask
    worker ``placement[w]`` only (``a[w]``, ``b[w]`` are their futures) and every run
    pins w's task there, so nothing travels at call time but the answers.
    :meth:`release` drops them from the cluster (also done when this object is
    garbage collected, through the futures).
    """

    placement: dict[int, str]
    a: dict[int, Any]
    b: dict[int, Any]
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype: Any

    @property
    def workers(self) -> list[int]:
        """Coded workers whose blocks are on the cluster."""
        return sorted(self.placement)

    def release(self) -> None:
        """Forget the blocks (the scheduler frees them once no task needs them)."""
        self.a.clear()
        self.b.clear()
        self.placement.clear()


class _DaskRun(Run):
    def __init__(
        self,
        client: Any,
        event_name: str | None,
        waited: dict[Any, int],
        never: list[Any],
        data: list[Any],
        t0: float,
        timeout: float | None,
    ) -> None:
        self._client = client
        self._event_name = event_name
        self._waited = waited  # future -> coded worker, for workers that can answer
        self._never = never
        self._data = data  # blocks scattered for this run only (released with it)
        self._t0 = t0
        self._timeout = timeout
        self._cancelled = False

    def __iter__(self) -> Iterator[Answer]:
        """Answers in completion order until all are in, the time limit, or cancel.

        The limit (``timeout`` of :meth:`DaskExecutor.start`, tightened by
        :meth:`Run.limit` while iterating) is re-read before every wait.
        """
        distributed = _require_distributed()
        if not self._waited:
            return
        # results are fetched by the client's loop as each task ends (with_results),
        # not by one round trip per answer here; the futures' own client loop
        ac = distributed.as_completed(
            list(self._waited), loop=self._client.loop, with_results=True, raise_errors=False
        )
        waited = self._waited
        while not self._cancelled:
            if not self._wait_ready(ac):
                return
            fut, res = next(ac)
            w = waited[fut]
            now = time.perf_counter() - self._t0
            if fut.status != "finished":  # raised, lost worker, cancelled
                err = res[1] if isinstance(res, tuple) and len(res) == 3 else res
                if not isinstance(err, BaseException):
                    err = RuntimeError(f"Dask task of worker {w} ended as {fut.status!r}")
                yield Answer(w, None, err, 0.0, now)
                continue
            if res is None:
                continue
            prod, start, end = res
            yield Answer(w, prod, None, start, end)

    def _wait_ready(self, ac: Any) -> bool:
        """Wait until ``ac`` has a finished task; False when none is left to wait for,
        the run's time limit (``self._timeout``, read at every wake-up) has passed, or
        the run was cancelled.

        Waits on the condition that :class:`distributed.as_completed` notifies on
        every arrival, re-checking under the condition's lock, so no arrival is missed.
        """
        cond = ac.thread_condition
        while True:
            left = 0.1
            if self._timeout is not None:
                left = min(left, self._timeout - (time.perf_counter() - self._t0))
            if self._cancelled or left <= 0:
                return False
            if ac.has_ready():
                return True
            if ac.is_empty():
                return False
            with cond:
                if not ac.has_ready():
                    cond.wait(left)

    def cancel(self) -> None:
        """Release delayed tasks and cancel the rest without waiting (fire and forget).

        The event set and the cancel message are sent by the client's event loop;
        this returns at once. Running GEMMs finish on their workers and their
        results are dropped; queued tasks never start.
        """
        if self._cancelled:
            return
        self._cancelled = True
        client = self._client
        pending = [f for f in [*self._waited, *self._never] if not f.done()]
        try:
            if client.status == "running":
                if self._event_name is not None:
                    client.loop.add_callback(client.scheduler.event_set, name=self._event_name)
                if pending:
                    client.loop.add_callback(lambda: client.cancel(pending, asynchronous=True))
        finally:
            self._waited = {}
            self._never = []
            self._data = []


class DaskExecutor(Executor):
    """Coded workers as Dask tasks on a ``distributed`` cluster.

    Parameters
    ----------
    client : distributed.Client or str
        A connected client, or a scheduler address (a client is created).

    Attributes
    ----------
    client : distributed.Client
    """

    name = "dask"

    def __init__(self, client: Any) -> None:
        distributed = _require_distributed()
        if isinstance(client, str):
            client = _client_for(client)
        if not isinstance(client, distributed.Client):
            raise TypeError(
                f"DaskExecutor needs a distributed.Client or an address, got {client!r}"
            )
        self.client = client
        self._addrs: list[str] = []
        #: bytes of encoded blocks sent to the cluster (scatters), for benchmarks
        self.bytes_sent = 0

    def addresses(self, refresh: bool = False) -> list[str]:
        """The cluster's worker addresses (cached per client, shared by every executor on
        it: one scheduler round trip at first, again only on ``refresh``)."""
        if not refresh and not self._addrs:
            self._addrs = _ADDRESSES.get(self.client) or []
        if refresh or not self._addrs:
            self._addrs = sorted(self.client.scheduler_info()["workers"])
            _ADDRESSES[self.client] = self._addrs
        if not self._addrs:
            raise RuntimeError("the Dask cluster has no workers")
        return self._addrs

    def scatter_stacks(
        self, At: Any, Bt: Any, workers: Sequence[int] | None = None
    ) -> ScatteredStacks:
        """Put each coded worker's own blocks ``At[w]``, ``Bt[w]`` on one Dask worker.

        Coded workers are placed round robin over the cluster's workers; each Dask
        worker receives only the blocks of the coded workers placed on it, in one
        ``client.scatter`` per Dask worker. Keep the result to run many products
        on the same encoded operands (:meth:`start` with ``At=handles, Bt=None``).
        """
        ws = list(range(len(At))) if workers is None else [int(w) for w in workers]
        try:
            return self._scatter(At, Bt, ws, self.addresses())
        except (OSError, KeyError, ValueError):  # a worker left: refresh once
            return self._scatter(At, Bt, ws, self.addresses(refresh=True))

    def _scatter(self, At: Any, Bt: Any, ws: list[int], addrs: list[str]) -> ScatteredStacks:
        place = {w: addrs[i % len(addrs)] for i, w in enumerate(ws)}
        a, b = self._scatter_sides([At, Bt], place)
        return ScatteredStacks(
            place, a, b, tuple(At.shape), tuple(Bt.shape), getattr(At, "dtype", None)
        )

    def _scatter_sides(self, stacks: list[Any], place: dict[int, str]) -> list[dict[int, Any]]:
        """Scatter ``X[w]`` of every stack X to ``place[w]``: one scatter per Dask worker."""
        out: list[dict[int, Any]] = [{} for _ in stacks]
        for addr in sorted(set(place.values())):
            mine = [w for w in place if place[w] == addr]
            blocks = self.client.scatter(
                [X[w] for X in stacks for w in mine], workers=[addr], hash=False
            )
            self.bytes_sent += sum(X[w].nbytes for X in stacks for w in mine)
            for j in range(len(stacks)):
                for i, w in enumerate(mine):
                    out[j][w] = blocks[j * len(mine) + i]
        return out

    def place(self, Xt: Any) -> Placed:
        """Scatter each coded worker's block of ``Xt`` once to the Dask worker that will
        run it (round robin by worker index); :meth:`start` runs it there and ships only
        the other operand."""
        addrs = self.addresses()
        where = {w: addrs[w % len(addrs)] for w in range(Xt.shape[0])}
        (blocks,) = self._scatter_sides([Xt], where)
        return Placed(blocks, Xt.shape, Xt.dtype, where)

    def _handles(self, At: Any, Bt: Any, workers: list[int]) -> tuple[ScatteredStacks, list]:
        """The blocks of one run on the cluster, and those to release with it.

        ``At`` a :class:`ScatteredStacks`: all there. A :class:`Placed` side (an
        operator's resident blocks): its workers run where its blocks are and only the
        other side is scattered. Otherwise both sides are scattered for this run.
        """
        if isinstance(At, ScatteredStacks):
            missing = [w for w in workers if w not in At.placement]
            if missing:
                raise ValueError(
                    f"workers {missing} have no scattered blocks (scattered: "
                    f"{At.workers}); call scatter_stacks with them"
                )
            return At, []
        placed = [X for X in (At, Bt) if isinstance(X, Placed)]
        if not placed:
            h = self.scatter_stacks(At, Bt, workers)
            return h, [*h.a.values(), *h.b.values()]
        missing = [w for w in workers if any(w not in X.where for X in placed)]
        if missing:
            raise ValueError(f"workers {missing} have no placed block; place the stack again")
        place = {w: placed[0].where[w] for w in workers}
        if any(X.where[w] != place[w] for X in placed for w in workers):
            raise ValueError("the two placed sides live on different Dask workers")
        ship = [X for X in (At, Bt) if not isinstance(X, Placed)]
        sent = self._scatter_sides(ship, place)
        data = [f for side in sent for f in side.values()]
        sent_iter = iter(sent)
        a, b = (
            {w: X[w] for w in workers} if isinstance(X, Placed) else next(sent_iter)
            for X in (At, Bt)
        )
        return ScatteredStacks(place, a, b, tuple(At.shape), tuple(Bt.shape), At.dtype), data

    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        """Start one task per coded worker, pinned next to its blocks.

        ``At`` may be a :class:`ScatteredStacks` (then ``Bt`` is ignored): nothing is
        scattered. Either side may be a :class:`~gpucoded.executors.base.Placed` from
        :meth:`place` (an operator's resident blocks): only the other side is
        scattered. Blocks scattered for this run are released with it. A
        :class:`distributed.Event` is made only when some delay is positive (straggler
        injection); an undelayed run costs no event round trips.
        """
        client = self.client
        workers = [int(w) for w in workers]
        t0 = time.perf_counter()
        t0_wall = time.time()
        handles, data = self._handles(At, Bt, workers)
        d = {w: 0.0 if delays is None else float(delays[w]) for w in workers}
        event_name = None
        if any(x > 0 for x in d.values()):
            event_name = f"gpucoded-cancel-{uuid.uuid4().hex[:12]}"
        tag = uuid.uuid4().hex[:12]
        waited: dict[Any, int] = {}
        never: list[Any] = []
        for w in workers:
            fut = client.submit(
                _worker_task,
                handles.a[w],
                handles.b[w],
                d[w],
                event_name,
                t0_wall,
                key=f"gpucoded-{tag}-w{w}",
                workers=[handles.placement[w]],
                allow_other_workers=False,
                pure=False,
            )
            if math.isinf(d[w]):
                never.append(fut)
            else:
                waited[fut] = w
        return _DaskRun(client, event_name, waited, never, data, t0, timeout)


_LOCAL: dict[str, Any] = {}
#: Worker addresses per client (weakly keyed: an entry goes with its client), so an
#: executor made per call on a long-lived client costs no scheduler round trip.
_ADDRESSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _client_for(address: str) -> Any:
    """One client per scheduler address, reused across calls, closed at exit."""
    distributed = _require_distributed()
    with _LOCK:
        client = _CLIENTS.get(address)
        if client is None or client.status != "running":
            client = distributed.Client(address)
            if not _CLIENTS:
                atexit.register(_close_clients)
            _CLIENTS[address] = client
        return client


def _close_clients() -> None:
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        client.close()


def local_executor(n_workers: int = 2, threads_per_worker: int = 2) -> DaskExecutor:
    """The :class:`DaskExecutor` on an embedded in-process ``LocalCluster`` (made once).

    The cluster uses threads (``processes=False``), so it starts in about a second;
    it is closed at interpreter exit. The executor is made once with it and returned
    by every call (its worker addresses are looked up once: no scheduler round trip
    per product).
    """
    distributed = _require_distributed()
    with _LOCK:
        client = _LOCAL.get("client")
        if client is None or client.status != "running":
            cluster = distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=False,
                dashboard_address=":0",
            )
            client = distributed.Client(cluster)
            _LOCAL.update(client=client, cluster=cluster, executor=DaskExecutor(client))
            atexit.register(_close_local)
        return _LOCAL["executor"]


def _close_local() -> None:
    _LOCAL.pop("executor", None)
    client = _LOCAL.pop("client", None)
    cluster = _LOCAL.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
