"""The ``gpucoded`` command: ``gpucoded demo`` and the study commands.

Each subcommand is registered in :func:`build_parser` and implemented by a function
taking the parsed arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415

    run_demo(n=args.n, m=args.m, dtype=args.dtype, seed=args.seed, device=args.device)
    if args.straggler_delay > 0:
        from .demo import straggler_scenario  # noqa: PLC0415

        print()
        straggler_scenario(n=min(args.n, 600), m=3, delay=args.straggler_delay)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpucoded", description="Straggler-tolerant coded matrix multiplication."
    )
    sub = parser.add_subparsers(dest="command", required=True)

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

    from .studies.cli import register  # noqa: PLC0415  (figure1, logreg, advise)

    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
