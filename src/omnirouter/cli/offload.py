"""`omnirouter offload EXP ...`: expert-offloading simulation over trained models' routing."""

from __future__ import annotations

import argparse

from omnirouter.cli.analyze import add_subject_arguments, subject_config
from omnirouter.cli.arguments import comma_separated, invoked_command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "offload",
        help="simulate an offloaded expert cache (LRU, LFU, Belady, prefetching) over routing",
        description=(
            "Recognise a set with trained MoE models, record which expert every MoE layer uses "
            "at every step, and replay those accesses through a small cache of experts in fast "
            "memory: LRU, LFU, least-stale, Belady's optimum, and prefetching of the next "
            "layer's expert (same expert, the next router's lookahead, the previous step, a "
            "learnt transition). Writes hit rates, loads, prefetch accuracy and a modelled "
            "latency at the paper's sizes. Output: EXP/offload/SET/ unless --out."
        ),
    )
    add_subject_arguments(parser)
    parser.add_argument(
        "--cache-slots",
        type=_slots,
        default=None,
        metavar="C,C,...",
        help="cache sizes in experts per MoE layer (default: 1 to the number of experts)",
    )
    parser.add_argument(
        "--from-records",
        action="store_true",
        help="simulate again over the routing records already in the output directory",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from omnirouter.experiment.routing import offload

    outputs = offload(
        args.experiment,
        subject_config(args),
        args.compare,
        args.out,
        args.cache_slots,
        args.from_records,
        invoked_command(),
    )
    print(f"offloading study written to {outputs.directory}")
    print(f"  page: {outputs.page.html}")
    return 0


def _slots(text: str) -> list[int]:
    values = sorted(set(comma_separated(text, int, "1,2,4")))
    if values[0] < 1:
        raise argparse.ArgumentTypeError(f"cache sizes must be positive integers, got {text!r}")
    return values
