"""The study subcommands of ``gpucoded``: figure1, logreg, advise, beyond, progressive."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

__all__ = ["register", "single_thread_blas"]


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
