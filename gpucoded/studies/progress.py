"""A dependency-free progress bar on stderr for the long-running studies."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Minimal text progress bar: ``label [#####.....] 12/40 3.1s``.

    Parameters
    ----------
    total : int
        Number of steps.
    label : str
        Shown before the bar.
    enabled : bool
        False makes every method a no-op (tests, library use).
    stream : file, optional
        Default ``sys.stderr``.
    width : int
        Characters of the bar.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        width: int = 30,
    ) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        self.total = total
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.t0 = time.perf_counter()
        self._last = -1.0

    def update(self, n: int = 1, note: str = "") -> None:
        """Advance by ``n`` steps and redraw (at most every 0.1 s, and at the end)."""
        self.done = min(self.total, self.done + n)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        bar = "#" * fill + "." * (self.width - fill)
        msg = f"\r{self.label} [{bar}] {self.done}/{self.total} {now - self.t0:.1f}s {note}"
        self.stream.write(msg[:160].ljust(80))
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled:
            self.done = self.total
            self._last = -1.0
            self.update(0)
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
