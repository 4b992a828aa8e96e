"""The ``gpucoded`` command: ``gpucoded demo`` and the study commands.

Each subcommand is registered in :func:`build_parser` and implemented by a function
taking the parsed arguments. ``gpucoded`` alone and ``gpucoded help`` print the help,
``gpucoded help COMMAND`` (or ``gpucoded COMMAND --help``) a command's options;
``-V``/``--version`` the version; ``--quiet`` (before or after the subcommand) turns
the progress bars off (they are off anyway when stderr is not a terminal).

A bad option value (a count below its minimum, a malformed range, an unknown worker
format, options that contradict each other) ends the command before any work with
one line on stderr naming the option and the valid range, exit status 2. A mistake
found later or a missing optional package ends it with one line that says how to fix
it (set ``GPUCODED_TRACEBACK=1`` for the full traceback). Commands that write CSVs and
plots write the CSVs first; without matplotlib they say where the CSVs are and how to
get the plots, and exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .errors import InaccurateResultError, NotEnoughAnswersError
from .studies.cli import count, real, register


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(n=args.n, m=args.m, dtype=args.dtype, seed=args.seed, device=args.device)
    if args.straggler_delay > 0:
        from .demo import straggler_scenario

        print()
        straggler_scenario(n=min(args.n, 600), m=3, delay=args.straggler_delay)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong and where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see: {self.prog} --help)\n")


def _help(args: argparse.Namespace) -> int:
    parser = args.parser
    if args.topic is None:
        parser.print_help()
        return 0
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if args.topic not in sub.choices:
        print(
            f"gpucoded help: unknown command {args.topic!r}; commands: {', '.join(sub.choices)}",
            file=sys.stderr,
        )
        return 2
    sub.choices[args.topic].print_help()
    return 0


def _check_demo(args: argparse.Namespace) -> str | None:
    if args.n < args.m:
        return (
            f"--n must be >= --m (n×n matrices split in m blocks): got --m {args.m}, --n {args.n}"
        )
    return None


def build_parser() -> argparse.ArgumentParser:
    """The ``gpucoded`` parser with every subcommand (see the module docstring)."""
    parser = OneLineParser(
        prog="gpucoded", description="Straggler-tolerant coded matrix multiplication."
    )
    parser.add_argument("-V", "--version", action="version", version=f"gpucoded {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="run every code on one product with failed workers")
    p.add_argument("--n", type=count(1), default=1024, help="matrix size (default 1024)")
    p.add_argument("--m", type=count(1), default=4, help="storage fraction 1/m (default 4)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument(
        "--straggler-delay",
        type=real(0.0, inclusive=True),
        default=1.0,
        help="then one worker answers this many seconds late, on threads (0: skip)",
    )
    p.set_defaults(func=_demo, check=_check_demo)

    register(sub)  # figure1, logreg, advise, beyond, progressive
    p = sub.add_parser("help", help="this help, or a command's: gpucoded help COMMAND")
    p.add_argument("topic", nargs="?", metavar="COMMAND", help="a command")
    p.set_defaults(func=_help, parser=parser)
    for name, sp in sub.choices.items():
        sp.prog = f"gpucoded {name}"
        sp.add_argument(
            "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars"
        )
    return parser


def fix_for(exc: BaseException, args: argparse.Namespace) -> str:
    """One line: what went wrong and how to fix it."""
    missing = getattr(exc, "name", None) or ""
    if isinstance(exc, ImportError) and missing.split(".")[0] == "matplotlib":
        alt = " or run without plots (--no-plots)" if hasattr(args, "no_plots") else ""
        return f"matplotlib is not installed: pip install 'gpucoded[plot]'{alt}"
    if isinstance(exc, ImportError) and missing.split(".")[0] == "cupy":
        return (
            "CuPy is not installed: pip install 'gpucoded[gpu]' (needs an NVIDIA GPU), "
            "or run on the CPU (--device cpu)"
        )
    if isinstance(exc, ImportError) and missing.split(".")[0] in ("distributed", "dask"):
        return "Dask is not installed: pip install 'gpucoded[dask]'"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else exc!r}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gpucoded`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad option (one line, already printed), --help, --version
        return e.code if isinstance(e.code, int) else 1
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    check = getattr(args, "check", None)
    problem = check(args) if check is not None else None
    if problem:
        print(
            f"gpucoded {args.command}: {problem} (see: gpucoded {args.command} --help)",
            file=sys.stderr,
        )
        return 2
    from .progress import set_quiet

    set_quiet(args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"gpucoded {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ImportError, ValueError, OSError, NotEnoughAnswersError, InaccurateResultError) as e:
        if os.environ.get("GPUCODED_TRACEBACK"):
            raise
        print(f"gpucoded {args.command}: {fix_for(e, args)}", file=sys.stderr)
        return 1 if isinstance(e, ImportError | OSError) else 2


if __name__ == "__main__":
    sys.exit(main())
