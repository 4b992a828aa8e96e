"""Dask distributed executor: every coded worker is one Dask task.

The master encodes once (``coded_matmul`` does), then for each Dask worker
scatters *only* the encoded blocks of the coded workers placed on it
(``client.scatter(..., workers=[address])``, round robin over the cluster's
workers), submits one task per coded worker pinned next to its data, collects the
tasks with :class:`distributed.as_completed` and, once the decoder has enough
answers, cancels the rest.

Dask's ``cancel`` does not stop a task that is already running, so an injected
delay is a wait on a per-run :class:`distributed.Event`: the task secedes from the
worker's thread pool while it waits (a straggler never blocks a thread), and
cancelling the run sets the event, so every delayed task returns at once without
computing. ``math.inf`` waits for the event only: the task never answers and ends
when the run is cancelled.

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
from collections.abc import Iterator, Sequence
from typing import Any

from .base import Answer, Executor, Placed, Run

__all__ = ["DaskExecutor", "local_executor"]


def _require_distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Dask executor needs the 'distributed' package: pip install 'gpucoded[dask]' "
            "(or pip install distributed)"
        ) from e
    return distributed


def _worker_task(a: Any, b: Any, delay: float, event_name: str, t0_wall: float) -> Any:
    """One coded worker on a Dask worker: wait ``delay`` cooperatively, then ``a @ b``.

    Returns ``(product, start, end)`` (seconds since the run started, wall clock), or
    None when the run was cancelled during the delay.
    """
    start = time.time() - t0_wall
    if delay > 0:
        from distributed import Event, rejoin, secede  # noqa: PLC0415

        ev = Event(event_name)
        secede()  # a straggler must not hold one of the worker's threads
        # until t0 + delay (the master's clock), not from this task's own start
        cancelled = ev.wait(None if math.isinf(delay) else max(0.0, delay - start))
        if cancelled or math.isinf(delay):
            return None
        rejoin()
    return a @ b, start, time.time() - t0_wall


class _DaskRun(Run):
    def __init__(
        self,
        client: Any,
        event: Any,
        waited: dict[Any, int],
        never: list[Any],
        data: list[Any],
        t0: float,
        timeout: float | None,
    ) -> None:
        self._client = client
        self._event = event
        self._waited = waited  # future -> coded worker, for workers that can answer
        self._never = never
        self._data = data
        self._t0 = t0
        self._timeout = timeout
        self._cancelled = False

    def __iter__(self) -> Iterator[Answer]:
        distributed = _require_distributed()
        if not self._waited:
            return
        remaining = None
        if self._timeout is not None:
            remaining = self._timeout - (time.perf_counter() - self._t0)
            if remaining <= 0:
                return
        # the futures' own client loop: the default client may be another one
        ac = distributed.as_completed(list(self._waited), loop=self._client.loop, timeout=remaining)
        while not self._cancelled:
            try:
                fut = next(ac)
            except (StopIteration, TimeoutError):
                return
            w = self._waited[fut]
            now = time.perf_counter() - self._t0
            if fut.status == "error":
                yield Answer(w, None, fut.exception(), 0.0, now)
                continue
            try:
                res = fut.result()
            except Exception as e:  # lost worker, cancelled, deserialisation error
                yield Answer(w, None, e, 0.0, now)
                continue
            if res is None:
                continue
            prod, start, end = res
            yield Answer(w, prod, None, start, end)

    def cancel(self) -> None:
        """Release delayed tasks (event), cancel the rest, drop the scattered blocks."""
        if self._cancelled:
            return
        self._cancelled = True
        futs = list(self._waited) + self._never
        try:
            self._event.set()
            pending = [f for f in futs if not f.done()]
            if pending:
                self._client.cancel(pending)
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
        #: bytes of encoded blocks sent to the cluster (scatter), for benchmarks
        self.bytes_sent = 0

    def place(self, Xt: Any) -> Placed:
        """Scatter each coded worker's block of ``Xt`` once to the Dask worker that will
        run it (round robin by worker index); :meth:`start` runs it there."""
        client = self.client
        addrs = sorted(client.scheduler_info()["workers"])
        if not addrs:
            raise RuntimeError("the Dask cluster has no workers")
        where = {w: addrs[w % len(addrs)] for w in range(Xt.shape[0])}
        blocks: dict[int, Any] = {}
        for addr in addrs:
            mine = [w for w in where if where[w] == addr]
            futs = client.scatter([Xt[w] for w in mine], workers=[addr], hash=False)
            blocks.update(zip(mine, futs, strict=True))
            self.bytes_sent += sum(Xt[w].nbytes for w in mine)
        return Placed(blocks, Xt.shape, Xt.dtype, where)

    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        distributed = _require_distributed()
        client = self.client
        workers = list(workers)
        addrs = sorted(client.scheduler_info()["workers"])
        if not addrs:
            raise RuntimeError("the Dask cluster has no workers")
        place = {w: addrs[i % len(addrs)] for i, w in enumerate(workers)}
        pinned = At if isinstance(At, Placed) else Bt if isinstance(Bt, Placed) else None
        if pinned is not None:  # run each worker where its placed block is
            place = {w: pinned.where[w] for w in workers}
        ship = [X for X in (At, Bt) if not isinstance(X, Placed)]
        tag = uuid.uuid4().hex[:12]
        event = distributed.Event(f"gpucoded-cancel-{tag}", client=client)
        t0 = time.perf_counter()
        t0_wall = time.time()
        waited: dict[Any, int] = {}
        never: list[Any] = []
        data: list[Any] = []
        for addr in sorted(set(place.values())):
            mine = [w for w in workers if place[w] == addr]
            if not mine:
                continue
            # only this worker's own encoded blocks travel to it, once
            blocks = client.scatter([X[w] for X in ship for w in mine], workers=[addr], hash=False)
            self.bytes_sent += sum(X[w].nbytes for X in ship for w in mine)
            data.extend(blocks)
            for i, w in enumerate(mine):
                d = 0.0 if delays is None else float(delays[w])
                a = At[w] if isinstance(At, Placed) else blocks[i]
                b = Bt[w] if isinstance(Bt, Placed) else blocks[(len(ship) - 1) * len(mine) + i]
                fut = client.submit(
                    _worker_task,
                    a,
                    b,
                    d,
                    event.name,
                    t0_wall,
                    key=f"gpucoded-{tag}-w{w}",
                    workers=[addr],
                    allow_other_workers=False,
                    pure=False,
                )
                if math.isinf(d):
                    never.append(fut)
                else:
                    waited[fut] = w
        return _DaskRun(client, event, waited, never, data, t0, timeout)


_LOCAL: dict[str, Any] = {}
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
    """A :class:`DaskExecutor` on an embedded in-process ``LocalCluster`` (made once).

    The cluster uses threads (``processes=False``), so it starts in about a second;
    it is closed at interpreter exit.
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
            _LOCAL.update(client=client, cluster=cluster)
            atexit.register(_close_local)
        return DaskExecutor(client)


def _close_local() -> None:
    client = _LOCAL.pop("client", None)
    cluster = _LOCAL.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
