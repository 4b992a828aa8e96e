"""Exceptions and warnings raised by gpucoded.

Every exception subclasses the builtin a caller would expect (``ValueError`` for
answers that do not suffice, ``RuntimeError`` for corrupted computations), so that
generic handlers keep working.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CorruptAnswerError",
    "CorruptionWarning",
    "InaccurateResultError",
    "InaccurateResultWarning",
    "NotEnoughAnswersError",
    "WorkerError",
    "user_stacklevel",
    "warn_user",
]

#: Directory of the package: frames of files under it are the library's own.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that attributes a warning to the first frame outside gpucoded.

    For the function that calls this one and then :func:`warnings.warn`. Walking out
    of the package, rather than counting frames by hand, keeps the attribution right
    whichever entry point (``coded_matmul``, an operator, a progressive generator)
    and however many internal calls lie between the user's line and the warning. A
    call made entirely inside the package (a study) points at its outermost frame's
    caller.
    """
    frame = sys._getframe(1)  # the function that calls warnings.warn: stacklevel 1
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message: str, category: type[Warning]) -> None:
    """:func:`warnings.warn` attributed to the user's line (:func:`user_stacklevel`).

    The one mechanism every warning of the library uses.
    """
    warnings.warn(message, category, stacklevel=user_stacklevel())


class NotEnoughAnswersError(ValueError):
    """Fewer usable answers than the code needs.

    Attributes
    ----------
    needed : int
        Answers the code's guarantee needs (its recovery threshold, or more when a
        verification was requested).
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


class CorruptAnswerError(RuntimeError):
    """The answers are mutually inconsistent and the corrupt one cannot be excluded.

    Raised by ``coded_matmul(..., verify="raise")`` on any inconsistency, and by
    ``verify="correct"`` when too few answers remain to locate the corrupt worker
    (an exact code needs its recovery threshold + 2 answers to locate one).

    Attributes
    ----------
    suspects : tuple of int
        Workers whose answers took part in the inconsistent comparisons.
    report : IntegrityReport
        The full check (see :mod:`gpucoded.integrity`).
    """

    def __init__(self, message: str, *, suspects: Sequence[int], report: Any = None) -> None:
        super().__init__(message)
        self.suspects = tuple(suspects)
        self.report = report


class CorruptionWarning(RuntimeWarning):
    """``verify="warn"``: the answers are inconsistent, or could not be checked."""


class InaccurateResultWarning(RuntimeWarning):
    """A decoded product may carry fewer than about two correct digits.

    Emitted by the accuracy guard of every decode (``on_inaccurate="warn"``, the
    default); the message names the code, m, the answers used, the condition number,
    the error estimate and a concrete fix.
    """


class InaccurateResultError(ArithmeticError):
    """``on_inaccurate="raise"``: the decoded product may be wrong (see the warning).

    Attributes
    ----------
    estimate : float
        The error estimate relative to the result's scale.
    info : object
        The call's diagnostics (``CallInfo``) when available.
    """

    def __init__(self, message: str, *, estimate: float = float("nan"), info: Any = None) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.info = info
