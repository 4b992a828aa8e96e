"""The ``gpucoded`` command: ``gpucoded demo`` and the study commands.

Each subcommand is registered in :func:`build_parser` and implemented by a function
taking the parsed arguments. ``gpucoded`` alone prints the help; ``--version`` the
version; ``--quiet`` (before or after the subcommand) turns the progress bars off
(they are off anyway when stderr is not a terminal). A mistake or a missing optional
package ends the command with one line on stderr that says how to fix it (set
``GPUCODED_TRACEBACK=1`` for the full traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import InaccurateResultError, NotEnoughAnswersError


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(n=args.n, m=args.m, dtype=args.dtype, seed=args.seed, device=args.device)
    if args.straggler_delay > 0:
        from .demo import straggler_scenario

        print()
        straggler_scenario(n=min(args.n, 600), m=3, delay=args.straggler_delay)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpucoded", description="Straggler-tolerant coded matrix multiplication."
    )
    parser.add_argument("--version", action="version", version=f"gpucoded {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="run every code on one product with failed workers")
    p.add_argument("--n", type=int, default=1024, help="matrix size (default 1024)")
    p.add_argument("--m", type=int, default=4, help="storage fraction 1/m (default 4)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument(
        "--straggler-delay", type=float, default=1.0,
        help="then one worker answers this many seconds late, on threads (0: skip)",
    )
    p.set_defaults(func=_demo)

    from .studies.cli import register  # figure1, logreg, advise

    register(sub)
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
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
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
