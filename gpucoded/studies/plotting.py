r"""What the studies' plots share: axis wording a reader understands without the paper,
the operands' scale, and what a command does when matplotlib is missing.

Every study measures the error of a decoded product on Gaussian operands scaled to
unit Frobenius norm, :math:`\|A\|_F=\|B\|_F=1` (so :math:`\|AB\|_F\le 1`;
the largest entries of :math:`AB` are about 0.004 to 0.025 at the studies' sizes),
and the y-axes say so (:func:`error_label`). The x-axes count *answers received* (the paper's
:math:`N_{\mathrm{succ}}`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

__all__ = ["ANSWERS", "SCALE_NOTE", "error_label", "plots_or_note"]

#: x-axis wording for the number of workers whose answers the decode used
ANSWERS = "answers received"
#: the operands every study uses, as a y-axis note
SCALE_NOTE = "Gaussian A, B of unit Frobenius norm"


def error_label(statistic: str = "worst-case") -> str:
    """Y-axis label: ``statistic`` max-norm error and the operands' scale (two lines).

    Examples
    --------
    >>> print(error_label("worst-case"))
    worst-case error max|Ĉ − AB|
    (Gaussian A, B of unit Frobenius norm)
    """
    return f"{statistic} error max|Ĉ − AB|\n({SCALE_NOTE})".lstrip()


def plots_or_note(
    make: Callable[[], Sequence[Path]],
    command: str,
    data: Sequence[Path],
    out: TextIO | None = None,
) -> list[Path]:
    """Draw the plots with ``make()``; without matplotlib, say where the data are.

    The command has already written its data files ``data``; when matplotlib is not
    installed this prints one line naming them and how to get the plots, and returns
    no paths (the command then ends normally, exit status 0). Any other error of
    ``make`` propagates.

    Parameters
    ----------
    make : callable
        Draws and saves the plots, returns their paths (imports matplotlib itself).
    command : str
        The ``gpucoded`` subcommand, for the message.
    data : sequence of Path
        The files the command wrote before plotting.
    out : file, optional
        Where the line goes (default ``sys.stdout``).
    """
    try:
        return list(make())
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "matplotlib":
            raise
    print(
        f"gpucoded {command}: data written to {', '.join(str(p) for p in data)}; no plots "
        "because matplotlib is not installed (pip install matplotlib, or "
        "pip install 'gpucoded[plot]', then run the command again)",
        file=out or sys.stdout,
    )
    return []
