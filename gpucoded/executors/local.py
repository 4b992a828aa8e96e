"""Local executors on the host (and on whatever array namespace the stacks live in).

:class:`SerialExecutor` computes the workers one after another in the caller's
thread and *simulates* their completion order from the injected delays (a virtual
clock: worker w finishes at its compute time plus ``delays[w]``); nothing sleeps.
It is deterministic, which is what tests and precision studies want.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .base import Answer, Executor, Run

__all__ = ["SerialExecutor"]


def multiply(At: Any, Bt: Any, w: int) -> Any:
    """Worker w's task: its encoded A times its encoded B."""
    return At[w] @ Bt[w]


class _SerialRun(Run):
    def __init__(self, answers: list[Answer]) -> None:
        self._answers = answers
        self._cancelled = False

    def __iter__(self) -> Iterator[Answer]:
        for a in self._answers:
            if self._cancelled:
                return
            yield a

    def cancel(self) -> None:
        self._cancelled = True


class SerialExecutor(Executor):
    """All workers in the caller's thread; completion order from a virtual clock."""

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
