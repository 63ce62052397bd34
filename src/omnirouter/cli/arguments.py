"""Arguments shared by the sub-commands: a value out of range is a usage error (exit 2) that
argparse reports with the command's usage, before anything is loaded."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import TypeVar

Value = TypeVar("Value")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def comma_separated(text: str, convert: Callable[[str], Value], example: str) -> list[Value]:
    """The non-empty items of "a,b,c", each converted; a usage error when one does not convert
    or there is none (`example` shows a valid value in the message)."""
    try:
        values = [convert(item) for item in text.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list like {example}")
    return values


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when available)"
    )


def invoked_command() -> str:
    """This process's command line, as results record it beside what it produced."""
    return shlex.join(["omnirouter", *sys.argv[1:]])
