"""Command line: `omnirouter COMMAND ...`.

The sub-commands of each area live in a module of this package, which defines
`register(subparsers)`: it adds its parsers, each with `set_defaults(run=...)`, where `run`
parses nothing more, builds a config and calls one library function. The library is imported
inside `run`, so that `omnirouter --help` stays fast (torch and matplotlib take seconds to
import). This package sits on top of the import graph: it may
import every other package, and none imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from omnirouter.errors import (
    EXIT_USAGE,
    InterruptedRunError,
    OmnirouterError,
    Terminated,
    exit_code_of_signal,
)

# Errors that describe bad input (a missing file, a wrong key, a damaged checkpoint) or a
# failure that is not a bug (a busy directory, a diverged run): the CLI prints their message
# alone, and exits with the error's `exit_code` (2, bad input, for the others); `-v` shows the
# traceback too. Exit codes: see `omnirouter.errors` and the README.
USER_ERRORS: tuple[type[BaseException], ...] = (OmnirouterError, OSError, ValueError, LookupError)

# The areas whose sub-commands the CLI offers, in the order `--help` lists them.
AREA_MODULES: tuple[str, ...] = (
    "omnirouter.cli.data",
    "omnirouter.cli.train",
    "omnirouter.cli.evaluate",
    "omnirouter.cli.lm",
    "omnirouter.cli.export",
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
    """Run one command; returns its exit status (0 success, 1 failure, 2 bad usage or input,
    130 after SIGINT, 143 after SIGTERM)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    name = f"omnirouter {args.command}"
    previous = _raise_on_sigterm()
    try:
        return int(args.run(args) or 0)
    except InterruptedRunError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return error.exit_code
    except (KeyboardInterrupt, Terminated) as error:
        number = signal.SIGINT if isinstance(error, KeyboardInterrupt) else signal.SIGTERM
        print(f"{name}: stopped by {signal.Signals(number).name}", file=sys.stderr)
        return exit_code_of_signal(number)
    except USER_ERRORS as error:
        if args.verbose:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{name}: error: {message}", file=sys.stderr)
        # The flag belongs to omnirouter itself, before the command's name.
        print(f"(run omnirouter -v {args.command} ... for the traceback)", file=sys.stderr)
        return getattr(error, "exit_code", EXIT_USAGE)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_on_sigterm() -> Any:
    """SIGTERM raises `Terminated` where it arrives, as Ctrl-C raises KeyboardInterrupt, so
    that every command exits 143 after cleaning up (training installs its own handler, which
    saves a checkpoint first). Returns the handler to restore; None off the main thread."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        return signal.signal(signal.SIGTERM, handler)
    return None


if __name__ == "__main__":
    sys.exit(main())
