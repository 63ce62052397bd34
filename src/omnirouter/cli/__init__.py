"""Command line: `omnirouter COMMAND ...`.

The sub-commands of each area live in a module of this package, which defines
`register(subparsers)`: it adds its parsers, each with `set_defaults(run=...)`, where `run`
parses nothing more, builds a config and calls one library function. The library is imported inside `run`, so that `omnirouter --help` stays fast (torch
and matplotlib take seconds to import). This package sits on top of the import graph: it may
import every other package, and none imports it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from omnirouter.errors import OmnirouterError

# Errors that describe bad input (a missing file, a wrong key, a damaged checkpoint): the CLI
# prints their message alone; `-v` shows the traceback too.
USER_ERRORS: tuple[type[BaseException], ...] = (OmnirouterError, OSError, ValueError, LookupError)

# The areas whose sub-commands the CLI offers, in the order `--help` lists them.
AREA_MODULES: tuple[str, ...] = (
    "omnirouter.cli.data",
    "omnirouter.cli.train",
    "omnirouter.cli.evaluate",
    "omnirouter.cli.analyze",
    "omnirouter.cli.offload",
    "omnirouter.cli.experiment",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnirouter",
        description="Dense, Switch and Omni-router CTC Transformers for speech recognition.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in AREA_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as error:
        if args.verbose:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"omnirouter {args.command}: error: {message}", file=sys.stderr)
        print("(run with -v for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
