"""Progress bars for the long-running commands, on tqdm.

A bar is shown only on a terminal: it is off when the stream is not a TTY (pipes, CI
logs, tests), when the command runs with ``--quiet`` (:func:`set_quiet`) or when
``enabled=False``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

__all__ = ["Progress", "progress_enabled", "set_quiet", "track"]

_QUIET = [False]


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
    total : int
        Number of steps.
    label : str
        Shown before the bar.
    enabled : bool
        False makes every method a no-op (library use); the bar is also off when the
        stream is not a terminal or after ``set_quiet(True)``.
    stream : file, optional
        Default ``sys.stderr``.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        width: int | None = None,
    ) -> None:
        if total < 0:
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
                dynamic_ncols=width is None,
            )  # fmt: skip

    def update(self, n: int = 1, note: str = "") -> None:
        """Advance by ``n`` steps; ``note`` is shown after the bar."""
        self.done = min(self.total, self.done + n)
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
