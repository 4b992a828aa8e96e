"""The executor interface: how worker multiplies are run and their answers collected.

An executor turns the encoded stacks into a stream of :class:`Answer` objects in
completion order. ``coded_matmul`` iterates the stream and stops as soon as the code
can decode; leaving the ``with`` block cancels whatever is still running.

Contract of :meth:`Executor.start` / :class:`Run` (every implementation keeps it):

* worker ``w`` computes ``At[w] @ Bt[w]``; only its own blocks need to reach it;
* ``delays[w]`` seconds are injected before its answer (``math.inf``: never
  answers); the injected wait must be *cooperative*: :meth:`Run.cancel` ends it;
* a worker that raises is delivered as an :class:`Answer` with ``error`` set (an
  erasure), never as an exception of the iterator;
* the iterator ends when every worker that can answer has answered, when
  ``timeout`` seconds have passed since the start, or after :meth:`Run.cancel`;
* :meth:`Run.cancel` returns without waiting for running workers and leaves
  nothing sleeping or queued behind.

Implementations: :mod:`~gpucoded.executors.local` (serial, threads),
:mod:`~gpucoded.executors.cuda` (CUDA streams) and :mod:`~gpucoded.executors.dask`
(Dask distributed).

Other engines fit the same two methods:

* **Ray**: ``start`` puts each worker's blocks with ``ray.put`` (or passes them to
  a per-worker actor), launches one remote task per worker, and the run iterates
  ``ray.wait(refs, num_returns=1, timeout=...)`` to yield answers in completion
  order; ``cancel`` calls ``ray.cancel(ref)`` on the rest and sets a cooperative
  stop flag for injected delays (an actor holding a ``threading.Event``, or a
  named ``ray.util`` signal actor), since a cancelled Ray task that is sleeping is
  only interrupted between Python bytecodes.
* **MPI** (mpi4py): the master is rank 0; ``start`` sends worker w its blocks with
  ``comm.Isend`` (tag w) and posts one ``comm.Irecv`` per worker for the product;
  the run polls ``MPI.Request.Testany`` (or ``Waitany`` with a deadline) to yield
  answers in arrival order; ``cancel`` sends a short "stop" message each rank
  polls while it waits its injected delay, and cancels the outstanding receives
  (``Request.Cancel``). Ranks stay up between calls and serve the next one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..formats import Format, get_format

__all__ = ["Answer", "Executor", "Placed", "Run", "check_delays"]


@dataclass
class Answer:
    """One worker's outcome.

    Attributes
    ----------
    worker : int
    product : array or None
        ``At[worker] @ Bt[worker]``; None when the worker raised.
    error : BaseException or None
    start, end : float
        Seconds since the run started (``end`` includes any injected delay).
    """

    worker: int
    product: Any
    error: BaseException | None
    start: float
    end: float

    @property
    def ok(self) -> bool:
        return self.error is None and self.product is not None


class Run(ABC):
    """A started set of worker multiplies: iterate for answers, cancel the rest."""

    #: Workers compute in the background (threads, a cluster, a device) while the run
    #: is read, so the reader should cancel the run as soon as it has its answers; False
    #: for a run with nothing in flight between reads (its reader computes each worker,
    #: or all were computed at the start). The call pipeline then decodes before it
    #: ends the run, and reads a NaN/Inf answer from the decoded C instead of checking
    #: each answer on arrival (:func:`gpucoded.pipeline.run_product`).
    background: bool = True

    @abstractmethod
    def __iter__(self) -> Iterator[Answer]: ...

    @abstractmethod
    def cancel(self) -> None:
        """Stop waiting; still-running workers are abandoned cooperatively."""

    def limit(self, timeout: float) -> None:
        """Tighten the run's time limit to ``timeout`` seconds from its start.

        Used to wait a bounded time for further answers (``wait_for_accuracy``).
        Implementations read ``self._timeout`` before every wait for an answer.
        """
        old = getattr(self, "_timeout", None)
        self._timeout = timeout if old is None else min(old, timeout)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Placed:
    """One operand side's encoded blocks, kept where the workers that use them run.

    Made by :meth:`Executor.place` for an operator (:class:`gpucoded.CodedMatrix`)
    that encodes a matrix once and multiplies it many times; passed to
    :meth:`Executor.start` in place of the stack. ``X[w]`` is worker w's block (an
    array, or a handle such as a Dask future); ``where[w]`` where it lives (None:
    wherever the stack is).

    Attributes
    ----------
    blocks : dict
        Worker -> block or handle.
    shape : tuple
        Shape of the stack the blocks came from, (P, rows, cols).
    dtype : numpy.dtype
    where : dict
        Worker -> location (e.g. a Dask worker's address).
    """

    def __init__(self, blocks: dict[int, Any], shape: tuple, dtype: Any, where: dict) -> None:
        self.blocks = blocks
        self.shape = tuple(shape)
        self.dtype = dtype
        self.where = where

    def __getitem__(self, w: int) -> Any:
        return self.blocks[w]


class Executor(ABC):
    """Runs the P worker multiplies of one coded product."""

    name: str = "executor"

    def place(self, Xt: Any) -> Any:
        """Keep the encoded stack ``Xt`` (P, rows, cols) where the workers will use it.

        Called once per encoded side by an operator; what it returns is passed to
        :meth:`start` as ``At`` or ``Bt`` on every later call, so that only the other
        operand travels. The default keeps the stack as it is: host memory for
        threads and serial workers, the device for a CuPy stack. A distributed
        executor sends each worker its block once and returns a :class:`Placed`
        (``start`` then runs worker w where ``Placed.where[w]`` is).
        """
        return Xt

    def compute_format(self, dtype: Any) -> Format:
        """The number format the workers compute in for operands of ``dtype``.

        The bounds and the accuracy guard use it; executors whose GEMMs round more
        than the storage dtype (TF32, BF16 tensor cores) override it.
        """
        return get_format(dtype)  # memoised per dtype in formats

    @abstractmethod
    def start(
        self,
        At: Any,
        Bt: Any,
        *,
        workers: Sequence[int],
        delays: Sequence[float] | None = None,
        timeout: float | None = None,
    ) -> Run:
        """Start the multiplies ``At[w] @ Bt[w]`` for ``w in workers``.

        ``delays[w]`` (seconds, ``math.inf`` = never answers) is injected before the
        answer of worker w is delivered. ``timeout`` bounds the wait for answers
        (seconds from the start); workers not done by then are erasures.
        """


def check_delays(delays: Sequence[float] | None, P: int) -> list[float] | None:
    """Validate a per-worker delay sequence (length P, each ≥ 0 or inf)."""
    if delays is None:
        return None
    d = [float(x) for x in delays]
    if len(d) != P:
        raise ValueError(f"delays must have one entry per worker (P={P}); got {len(d)}")
    for w, x in enumerate(d):
        if math.isnan(x) or x < 0:
            raise ValueError(f"delays[{w}] = {x}: delays must be >= 0 seconds (or math.inf)")
    return d
