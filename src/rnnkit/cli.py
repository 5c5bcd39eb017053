"""The `rnnkit` command line. It parses arguments and calls library functions, nothing more.

Errors are one line on stderr with exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent networks for PyTorch: layers with explicit, checked BPTT.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    from .bench import add_bench_arguments

    bench = commands.add_parser(
        "bench",
        help="benchmark rnnkit's backends against torch.nn and a naive cell loop",
        description="Time training steps (forward + backward) of rnnkit's backends against "
        "torch.nn's native kernel and a naive nn.*Cell loop, measured in the same run.",
    )
    add_bench_arguments(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            from .bench import run_bench

            return run_bench(args)
        parser.error(f"unknown command {args.command!r}")
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        if args.debug:
            raise
        print(f"rnnkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
