"""`omnirouter data ...`: build, import and inspect corpora."""

from __future__ import annotations

import argparse
import importlib

# Modules that add `omnirouter data <name>` sub-commands through `register(data_subparsers)`.
DATA_COMMAND_MODULES: tuple[str, ...] = (
    "omnirouter.cli.data_synth",
    "omnirouter.cli.data_prepare",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build, import and inspect corpora")
    data_subparsers = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for module_name in DATA_COMMAND_MODULES:
        importlib.import_module(module_name).register(data_subparsers)
