"""The study subcommands of ``gpucoded``: figure1, logreg, advise, beyond, progressive.

Every option that takes a number or a list is checked by argparse (``type=`` validators
below), so a bad value ends the command with one line that names the option and the
valid range, before any work starts. Checks that relate two options (``--P`` at least
``--m``, ...) run right after parsing (:data:`CHECKS`).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

from ..formats import FORMATS

__all__ = [
    "CHECKS",
    "count",
    "dtype_list",
    "int_range",
    "real",
    "register",
    "single_thread_blas",
]


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Pin BLAS to one thread if ``threadpoolctl`` is installed (else do nothing).

    The studies multiply many small blocks; on shared machines multi-threaded BLAS on
    100×100 blocks mostly spins (measured 5× slower on 2 busy cores).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


# ------------------------------------------------------------------- validators
def count(lo: int = 0) -> Callable[[str], int]:
    """An argparse ``type=``: an integer ``>= lo``.

    Examples
    --------
    >>> count(1)("3")
    3
    """

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {text!r}")
        return v

    parse.__name__ = f"integer >= {lo}"
    return parse


def real(lo: float = 0.0, *, inclusive: bool = False) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number ``> lo`` (``>= lo`` if ``inclusive``)."""
    op = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        ok = v == v and v not in (float("inf"), float("-inf"))
        if not ok or v < lo or (v == lo and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {op} {lo:g}, got {text!r}")
        return v

    parse.__name__ = f"number {op} {lo:g}"
    return parse


def int_range(lo: int, *, lists: bool = True) -> Callable[[str], str]:
    """An argparse ``type=``: a range ``a-b`` (``a <= b``) or, if ``lists``, a comma list
    of integers, every value ``>= lo``. Returns the text unchanged (the study parses it)."""
    form = "a range a-b or a comma list of integers" if lists else "a range a-b"

    def parse(text: str) -> str:
        try:
            if "-" in text:
                a, b = (int(x) for x in text.split("-"))
                vals = list(range(a, b + 1))
            elif lists:
                vals = [int(x) for x in text.split(",")]
            else:
                vals = []
        except ValueError:
            vals = []
        if not vals or min(vals) < lo:
            raise argparse.ArgumentTypeError(
                f"must be {form} with values >= {lo}"
                + (" and a <= b" if "-" in text else "")
                + f", got {text!r}"
            )
        return text

    parse.__name__ = form
    return parse


def dtype_list(text: str) -> str:
    """An argparse ``type=``: a comma list of worker formats (:data:`gpucoded.formats.FORMATS`)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in FORMATS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"must be a comma list of {', '.join(FORMATS)}, got {text!r}"
        )
    return ",".join(names)


def _choice_list(valid: Callable[[], tuple[str, ...]]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        names = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in names if s not in valid()]
        if not names or bad:
            raise argparse.ArgumentTypeError(
                f"must be a comma list of {', '.join(valid())}, got {text!r}"
            )
        return ",".join(names)

    parse.__name__ = "comma list"
    return parse


def _beyond_schemes() -> tuple[str, ...]:
    from .beyond import SCHEMES

    return tuple(SCHEMES)


def _logreg(name: str) -> Callable[[], tuple[str, ...]]:
    def valid() -> tuple[str, ...]:
        from . import logreg

        return tuple(getattr(logreg, name))

    return valid


#: per command, the ``type=`` of each option (set on the options the study declares)
TYPES: dict[str, dict[str, Callable[[str], object]]] = {
    "figure1": {
        "--m": count(1), "--P": count(1), "--n": count(1), "--seed": count(0),
        "--gammas": count(1), "--approx-gamma": real(0.0), "--dtypes": dtype_list,
    },
    "logreg": {
        "--iterations": count(1), "--folds-run": count(1), "--seed": count(0),
        "--schemes": _choice_list(_logreg("SCHEMES")), "--modes": _choice_list(_logreg("MODES")),
    },
    "advise": {
        "--m": count(1), "--P": count(1), "--stragglers": count(0), "--n": count(1),
        "--tol": real(0.0), "--rtol": real(0.0), "--usual-stragglers": count(0),
    },
    "beyond": {
        "--m": int_range(2), "--dtypes": dtype_list, "--schemes": _choice_list(_beyond_schemes),
        "--max-subsets": count(1), "--heavy-subsets": count(0),
    },
    "progressive": {
        "--m": int_range(2, lists=False), "--dtypes": dtype_list, "--max-subsets": count(1),
    },
}  # fmt: skip


def _check_figure1(a: argparse.Namespace) -> str | None:
    if a.P < a.m:
        return f"--P must be >= --m (P workers each hold 1/m): got --m {a.m}, --P {a.P}"
    if a.n < a.m:
        return f"--n must be >= --m (n×n matrices split in m blocks): got --m {a.m}, --n {a.n}"
    return None


def _check_advise(a: argparse.Namespace) -> str | None:
    if a.P < a.m:
        return f"--P must be >= --m (P workers each hold 1/m): got --m {a.m}, --P {a.P}"
    if a.stragglers is not None and a.stragglers > a.P - a.m:
        return (
            f"--stragglers must be in [0, P-m] = [0, {a.P - a.m}] (every code needs at least "
            f"m={a.m} answers), got {a.stragglers}"
        )
    S = a.P - a.m if a.stragglers is None else a.stragglers
    if a.usual_stragglers is not None and a.usual_stragglers > S:
        return f"--usual-stragglers must be in [0, stragglers={S}], got {a.usual_stragglers}"
    if a.n < a.m:
        return f"--n must be >= --m (n×n matrices split in m blocks): got --m {a.m}, --n {a.n}"
    return None


#: per command, a check of options that depend on each other: a message, or None if fine
CHECKS: dict[str, Callable[[argparse.Namespace], str | None]] = {
    "figure1": _check_figure1,
    "advise": _check_advise,
}


def tighten(parser: argparse.ArgumentParser, command: str) -> None:
    """Give the options of ``command`` declared by its study the validators of :data:`TYPES`."""
    types = TYPES.get(command, {})
    for action in parser._actions:
        for opt in action.option_strings:
            if opt in types:
                action.type = types[opt]
    if command in CHECKS:
        parser.set_defaults(check=CHECKS[command])


def _wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with single_thread_blas():
            return fn(args)

    return run


def register(sub: argparse._SubParsersAction) -> None:
    """Add the study subcommands to the ``gpucoded`` parser's subparsers."""
    from . import advise, beyond, figure1, logreg, progressive_gain

    p = sub.add_parser(
        "figure1", help="paper Fig. 1: true worst-case error over all failure patterns"
    )
    figure1.add_arguments(p)
    p.set_defaults(func=_wrap(figure1.main))
    p = sub.add_parser("logreg", help="paper Tables I-II: softmax regression on MNIST, coded")
    logreg.add_arguments(p)
    p.set_defaults(func=_wrap(logreg.main))
    p = sub.add_parser("advise", help="achievable error of each code; when to use which")
    advise.add_arguments(p)
    p.set_defaults(func=_wrap(advise.main))
    p = sub.add_parser(
        "beyond", help="beyond the paper: error at threshold m of every scheme (CSV, PNG)"
    )
    beyond.add_arguments(p)
    p.set_defaults(func=_wrap(beyond.run))
    p = sub.add_parser("progressive", help="what each answer beyond m buys (ε-MatDot, γ choice)")
    progressive_gain.add_arguments(p)
    p.set_defaults(func=_wrap(progressive_gain.run))
    for name in TYPES:
        tighten(sub.choices[name], name)
