"""Fault injection for the reliability tests: wrap any executor and tamper with answers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from gpucoded.errors import WorkerError
from gpucoded.executors.base import Answer, Executor, Run

#: Faults that make a worker an erasure (detected on arrival).
ERASURE_FAULTS = ("raise", "shape", "dtype", "nan", "inf", "never")


def tamper(ans: Answer, fault: Any) -> Answer | None:
    """The answer as a faulty worker would deliver it (None: it never arrives).

    ``fault``: one of :data:`ERASURE_FAULTS`, or ``("perturb", e)`` (add e to the
    first entry: a silent corruption), or ``("scale", f)`` (multiply the answer by f).
    """
    if not ans.ok:
        return ans
    P = ans.product
    if fault == "never":
        return None
    if fault == "raise":
        return replace(ans, product=None, error=WorkerError("injected fault"))
    if fault == "shape":
        return replace(ans, product=P[None])
    if fault == "dtype":
        if P.dtype.kind == "c":
            other = np.complex64 if P.dtype != np.complex64 else np.complex128
        else:
            other = np.float32 if P.dtype != np.float32 else np.float64
        return replace(ans, product=P.astype(other))
    if fault in ("nan", "inf"):
        Q = P.copy()
        Q.flat[0] = np.nan if fault == "nan" else np.inf
        return replace(ans, product=Q)
    kind, value = fault
    if kind == "perturb":
        Q = P.copy()
        Q.flat[0] += value
        return replace(ans, product=Q)
    if kind == "scale":
        return replace(ans, product=P * value)
    raise ValueError(f"unknown fault {fault!r}")


class _FaultyRun(Run):
    def __init__(self, run: Run, faults: dict[int, Any], interrupt_after: int | None) -> None:
        self.run = run
        self.faults = faults
        self.interrupt_after = interrupt_after

    def __iter__(self) -> Iterator[Answer]:
        for k, ans in enumerate(self.run):
            if self.interrupt_after is not None and k >= self.interrupt_after:
                raise KeyboardInterrupt  # Ctrl-C while the caller consumes answers
            if ans.worker in self.faults:
                ans = tamper(ans, self.faults[ans.worker])
                if ans is None:
                    continue
            yield ans

    def cancel(self) -> None:
        self.run.cancel()


class FaultyExecutor(Executor):
    """Runs ``inner`` and applies ``faults[worker]`` to that worker's answer.

    ``interrupt_after=k`` raises KeyboardInterrupt in the consumer's loop after k
    answers (what Ctrl-C does while ``coded_matmul`` waits).
    """

    name = "faulty"

    def __init__(
        self, inner: Executor, faults: dict[int, Any] | None = None, interrupt_after=None
    ) -> None:
        self.inner = inner
        self.faults = dict(faults or {})
        self.interrupt_after = interrupt_after
        self.runs: list[Run] = []

    def start(self, At, Bt, **kw) -> Run:
        run = self.inner.start(At, Bt, **kw)
        self.runs.append(run)
        return _FaultyRun(run, self.faults, self.interrupt_after)


def patterns(P: int, max_size: int | None = None) -> Iterator[tuple[int, ...]]:
    """Every failure pattern (set of failed workers) of size <= max_size, smallest first."""
    top = P if max_size is None else max_size
    for f in range(top + 1):
        yield from itertools.combinations(range(P), f)
