"""`omnirouter offload EXP ...`: expert-offloading simulation over trained models' routing."""

from __future__ import annotations

import argparse

from omnirouter.cli.analyze import add_subject_arguments


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
    import shlex
    import sys

    from omnirouter.analysis.config import AnalysisConfig
    from omnirouter.experiment.routing import offload

    config = AnalysisConfig(
        set_name=args.set_name,
        max_utterances=args.max_utterances,
        device=args.device,
        corpus_dir=args.corpus,
    )
    command = shlex.join(["omnirouter", *sys.argv[1:]])
    outputs = offload(
        args.experiment,
        config,
        args.compare,
        args.out,
        args.cache_slots,
        args.from_records,
        command,
    )
    print(f"offloading study written to {outputs.directory}")
    print(f"  page: {outputs.page.html}")
    return 0


def _slots(text: str) -> list[int]:
    try:
        values = sorted({int(item) for item in text.split(",") if item.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"cache sizes must be positive integers, got {text!r}")
    return values
