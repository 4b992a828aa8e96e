"""Exceptions raised by gpucoded (all subclass the builtin a caller would expect)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NotEnoughAnswersError", "WorkerError"]


class NotEnoughAnswersError(ValueError):
    """Fewer usable answers than the code needs.

    Attributes
    ----------
    needed : int
        Answers the code's guarantee needs (its recovery threshold).
    answered : tuple of int
        Workers whose answers arrived and were usable.
    erased : dict
        Worker -> reason, for workers that failed, raised or were rejected.
    """

    def __init__(
        self,
        message: str,
        *,
        needed: int,
        answered: Sequence[int],
        erased: dict[int, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.needed = needed
        self.answered = tuple(answered)
        self.erased = dict(erased or {})


class WorkerError(RuntimeError):
    """A worker's computation raised; the worker is treated as an erasure."""
