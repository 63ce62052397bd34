"""`omnirouter analyze EXP ...`: routing analysis of paper §VI-B (Figs. 2–6) for trained runs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from omnirouter.analysis.permutation import DEFAULT_PROBABILITIES
from omnirouter.cli.arguments import add_device_argument, comma_separated, invoked_command

if TYPE_CHECKING:
    from omnirouter.analysis.config import AnalysisConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="routing analysis of trained models: figures, numbers and a page",
        description=(
            "Recognise an evaluation set with a trained model (and models to compare), capture "
            "which expert every MoE layer chose for every step (40 ms by default), run the expert "
            "permutation test, and write figures (PNG), their data (JSON/NPZ) and a page "
            "(markdown + self-contained HTML). Output: EXP/analysis/SET/ unless --out."
        ),
    )
    add_subject_arguments(parser)
    parser.add_argument(
        "--utterances", type=int, default=3, help="utterances drawn in Fig. 2 (default: 3)"
    )
    parser.add_argument(
        "--permutation-probabilities",
        type=_probabilities,
        default=list(DEFAULT_PROBABILITIES),
        metavar="P,P,...",
        help="probabilities of a random expert for Fig. 3 (default: 0,0.05,0.1,0.2,0.3,0.5)",
    )
    parser.add_argument(
        "--contingency-layers",
        type=_layer_pair,
        default=None,
        metavar="A,B",
        help="two layer numbers (from 1) for Fig. 4 (default: the last two MoE layers)",
    )
    parser.add_argument(
        "--silence-threshold",
        type=float,
        default=0.3,
        help="silence below low + T·(high − low) of each utterance's energy (default: 0.3)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--normalizer", default="whisper-english", help="text normaliser: whisper-english or none"
    )
    parser.add_argument(
        "--from-records",
        action="store_true",
        help="redraw figures and page from the saved results in the output directory",
    )
    parser.set_defaults(run=run)


def add_subject_arguments(parser: argparse.ArgumentParser) -> None:
    """The models and the set to measure them on: shared by `analyze` and `offload`."""
    parser.add_argument("experiment", help="experiment directory (or a checkpoint file)")
    parser.add_argument(
        "--compare", nargs="+", default=[], metavar="EXP", help="more experiment directories"
    )
    parser.add_argument(
        "--set", dest="set_name", default="dev", help="evaluation set (default: dev)"
    )
    parser.add_argument("--out", default=None, help="output directory")
    parser.add_argument(
        "--corpus", default=None, help="read the set from this corpus instead of the model's own"
    )
    parser.add_argument("--max-utterances", type=int, default=0, help="the first N only")
    add_device_argument(parser)


def subject_config(args: argparse.Namespace, **settings: Any) -> AnalysisConfig:
    """The analysis config of `add_subject_arguments`'s options, with the command's own
    `settings`: shared by `analyze` and `offload`."""
    from omnirouter.analysis.config import AnalysisConfig

    return AnalysisConfig(
        set_name=args.set_name,
        max_utterances=args.max_utterances,
        device=args.device,
        corpus_dir=args.corpus,
        **settings,
    )


def run(args: argparse.Namespace) -> int:
    from omnirouter.analysis.summary import SummaryConfig
    from omnirouter.experiment.routing import analyze

    config = subject_config(
        args,
        num_shown_utterances=args.utterances,
        permutation_probabilities=args.permutation_probabilities,
        seed=args.seed,
        normalizer=args.normalizer,
        summary=SummaryConfig(
            silence_threshold=args.silence_threshold, contingency_layers=args.contingency_layers
        ),
    )
    outputs = analyze(
        args.experiment, config, args.compare, args.out, args.from_records, invoked_command()
    )
    print(f"analysis written to {outputs.directory}")
    print(f"  page: {outputs.page.html}")
    return 0


def _probabilities(text: str) -> list[float]:
    values = comma_separated(text, float, "0,0.1,0.5")
    if any(not 0.0 <= value <= 1.0 for value in values):
        raise argparse.ArgumentTypeError(f"probabilities must lie in [0, 1], got {text!r}")
    return values


def _layer_pair(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not two layer numbers like 14,15") from None
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give two layer numbers from 1, like 14,15")
    return values
