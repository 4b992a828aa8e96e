"""Progress bars for long work, on tqdm: the long-running commands and long solves.

A bar is shown only on a terminal: it is off when the stream is not a TTY (pipes, CI
logs, tests), when the command runs with ``--quiet`` (:func:`set_quiet`) or when
``enabled=False``. A long computation inside a library call (a decode-weight solve in
multiprecision) reports its stages through :func:`solve_progress` and :func:`step`:
its bar appears only once the computation has run :data:`SOLVE_DELAY` seconds, so
the usual sub-second solve prints nothing.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = [
    "SOLVE_DELAY",
    "Progress",
    "progress_enabled",
    "set_quiet",
    "solve_progress",
    "step",
    "track",
]

_QUIET = [False]
#: Seconds a solve runs before its bar is drawn.
SOLVE_DELAY = 1.0
_SOLVE = threading.local()  # the bar of the solve running in this thread


def set_quiet(quiet: bool) -> None:
    """Silence (True) or allow (False) every progress bar of this process."""
    _QUIET[0] = bool(quiet)


def progress_enabled(stream: TextIO | None = None) -> bool:
    """Whether a bar would be drawn on ``stream`` (default stderr): a TTY, not quiet."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not _QUIET[0] and bool(isatty and isatty())


class Progress:
    """A tqdm bar: ``label  40%|████      | 12/30 [00:03<00:04]``.

    Parameters
    ----------
    total : int or None
        Number of steps (None: unknown, the bar counts steps and time).
    label : str
        Shown before the bar.
    enabled : bool
        False makes every method a no-op (library use); the bar is also off when the
        stream is not a terminal or after ``set_quiet(True)``.
    stream : file, optional
        Default ``sys.stderr``.
    delay : float
        Seconds before the bar is first drawn (tqdm's ``delay``): nothing is printed
        for work that ends sooner.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        width: int | None = None,
        delay: float = 0.0,
    ) -> None:
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        self.total = total
        self.done = 0
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and progress_enabled(self.stream)
        self._bar: Any = None
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=label, file=self.stream, ncols=width, leave=True,
                dynamic_ncols=width is None, delay=delay,
            )  # fmt: skip

    def update(self, n: int = 1, note: str = "") -> None:
        """Advance by ``n`` steps; ``note`` is shown after the bar."""
        self.done = self.done + n if self.total is None else min(self.total, self.done + n)
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)

    def write(self, text: str, file: TextIO | None = None) -> None:
        """Print a line to ``file`` (stdout) without breaking the bar."""
        file = sys.stdout if file is None else file
        if self._bar is not None:
            self._bar.write(text, file=file)
        else:
            print(text, file=file)

    def close(self) -> None:
        """Finish the bar's line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[Any], label: str, total: int | None = None) -> Iterator[Any]:
    """Iterate ``items`` with a bar (when enabled)."""
    items = list(items) if total is None else items
    n = len(items) if total is None else total
    with Progress(n, label) as bar:
        for x in items:
            yield x
            bar.update(1)


@contextmanager
def solve_progress(label: str) -> Iterator[None]:
    """A bar for one long computation in this thread, its stages reported by :func:`step`.

    Drawn only after :data:`SOLVE_DELAY` seconds (and, like every bar, only on a
    terminal and not quiet). Nested: the outermost solve's bar reports the stages."""
    if getattr(_SOLVE, "bar", None) is not None:
        yield
        return
    bar = Progress(None, label, delay=SOLVE_DELAY)
    _SOLVE.bar = bar
    try:
        yield
    finally:
        _SOLVE.bar = None
        bar.close()


def step(note: str) -> None:
    """One stage of the running :func:`solve_progress` (e.g. a precision level); a
    no-op outside one."""
    bar = getattr(_SOLVE, "bar", None)
    if bar is not None:
        bar.update(1, note)
