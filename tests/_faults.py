"""Failure patterns for the reliability tests (the fault injector itself is the library's
:class:`gpucoded.stragglers.FaultyExecutor`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

__all__ = ["patterns"]


def patterns(P: int, max_size: int | None = None) -> Iterator[tuple[int, ...]]:
    """Every failure pattern (set of failed workers) of size <= max_size, smallest first."""
    top = P if max_size is None else max_size
    for f in range(top + 1):
        yield from itertools.combinations(range(P), f)
