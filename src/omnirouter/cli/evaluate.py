"""`omnirouter eval`, `omnirouter compare` and `omnirouter transcribe`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from omnirouter.cli.arguments import add_device_argument, comma_separated, positive_int
from omnirouter.evaluate.normalize import NORMALIZER_NAMES, WHISPER_ENGLISH
from omnirouter.evaluate.proposals import Aggregate, ProposalConfig
from omnirouter.model.routing import ProposalMode

if TYPE_CHECKING:
    from omnirouter.evaluate.beam import BeamRequest
    from omnirouter.evaluate.transcribe import Transcriber


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_eval(subparsers)
    _register_compare(subparsers)
    _register_word_errors(subparsers)
    _register_transcribe(subparsers)


def _add_decoder(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "decoding (greedy by default; beam: CTC beam search over the words of a word n-gram LM)"
    )
    group.add_argument("--decoder", choices=("greedy", "beam"), default="greedy")
    group.add_argument(
        "--lm", help="LM directory or file (`omnirouter lm build`; default: the corpus's lm/)"
    )
    group.add_argument(
        "--beam-size", type=positive_int, help="hypotheses kept (default: tuned, else 64)"
    )
    group.add_argument(
        "--lm-weight", type=float, help="LM weight (default: `omnirouter lm tune`'s, else 0.5)"
    )
    group.add_argument("--word-score", type=float, help="score per word (default: tuned, else 0)")
    group.add_argument(
        "--open-vocabulary",
        action="store_true",
        help="let the beam search spell words outside the LM (pyctcdecode's prefix search) "
        "instead of the LM's words only (flashlight-text's lexicon search)",
    )


def beam_request(args: argparse.Namespace) -> BeamRequest | None:
    """The beam search the options ask for; None for greedy decoding."""
    from omnirouter.evaluate.beam import BeamRequest

    if args.decoder != "beam":
        given = [args.lm, args.beam_size, args.lm_weight, args.word_score]
        if any(value is not None for value in given) or args.open_vocabulary:
            raise ValueError(
                "--lm, --beam-size, --lm-weight, --word-score and --open-vocabulary need "
                "--decoder beam"
            )
        return None
    return BeamRequest(
        args.lm, args.beam_size, args.lm_weight, args.word_score, not args.open_vocabulary
    )


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="WER of a trained model on test sets",
        description="Greedy CTC decoding and WER (Whisper English normaliser) on each set; "
        "writes per-utterance errors per set and one table under EXP/eval/.",
    )
    parser.add_argument(
        "model",
        metavar="EXP_OR_CHECKPOINT",
        help="experiment dir, checkpoint or exported model dir (`omnirouter export`)",
    )
    parser.add_argument(
        "--sets", help="comma-separated set names (default: the dev set and every test set)"
    )
    parser.add_argument("--out", type=Path, help="output directory (default: EXP/eval)")
    parser.add_argument("--corpus", help="corpus directory (default: the experiment's)")
    parser.add_argument("--max-duration", type=float, help="seconds of audio per batch")
    parser.add_argument("--normalizer", choices=NORMALIZER_NAMES, default=WHISPER_ENGLISH)
    add_device_argument(parser)
    _add_decoder(parser)
    proposals = parser.add_argument_group(
        "routed proposals (MoE models; after RoE: several routings per frame, aggregated)"
    )
    proposals.add_argument(
        "--proposals",
        type=_counts,
        metavar="K[,K...]",
        help="K routed proposals per frame, or a list (e.g. 1,2,4,8) for a sweep with its "
        "measured cost; writes EXP/eval/proposals-*/ (default: ordinary decoding)",
    )
    proposals.add_argument(
        "--proposal-temperature",
        type=float,
        default=ProposalConfig.temperature,
        metavar="T",
        help=f"Gumbel noise scale on the router logits (default: {ProposalConfig.temperature:g})",
    )
    proposals.add_argument(
        "--proposal-mode",
        choices=[mode.value for mode in ProposalMode],
        default=ProposalMode.gumbel.value,
        help="gumbel (RoE) or ranked (proposal j takes the (j+1)-th best expert)",
    )
    proposals.add_argument(
        "--proposal-aggregate",
        choices=[aggregate.value for aggregate in Aggregate],
        default=Aggregate.probability.value,
        help="average the posteriors (probability, RoE) or the log-posteriors (log)",
    )
    proposals.add_argument("--proposal-seed", type=int, default=0, help="noise seed")
    parser.set_defaults(run=run_eval)


def _register_compare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="WER of several evaluated models side by side (paper Table I)",
        description="Reads each experiment's eval/wer.json (written by `omnirouter eval`) and "
        "tabulates WER per set per model with relative WER reductions against a baseline.",
    )
    parser.add_argument(
        "experiments", nargs="+", metavar="EXP", help="experiment dirs or eval JSON files"
    )
    parser.add_argument(
        "--baseline", help="the model the others are compared with (default: first)"
    )
    parser.add_argument(
        "--names",
        help="comma-separated display names, one per EXP (default: the shortest endings of "
        "their paths that tell them apart, e.g. dense/seed0)",
    )
    parser.add_argument("--out", type=Path, help="also write compare.{md,csv,json} here")
    parser.set_defaults(run=run_compare)


def _register_word_errors(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "word-errors",
        help="an evaluated model's word errors by how often each word occurs in training",
        description="Reads EXP/eval/recogs-<set>.jsonl (written by `omnirouter eval`) and the "
        "training transcripts of the experiment's corpus, and splits each set's WER by the "
        "reference word's training count (unseen, 1-2, 3-9, 10-99, 100+). Writes "
        "EXP/eval/word-frequency.{md,json}.",
    )
    parser.add_argument("experiment", metavar="EXP", help="an evaluated experiment directory")
    parser.add_argument("--sets", help="comma-separated set names (default: every scored set)")
    parser.add_argument("--corpus", help="corpus directory (default: the experiment's)")
    parser.set_defaults(run=run_word_errors)


def _register_transcribe(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files with a trained model",
        description="Any common audio format and sample rate, any length. A voice-activity "
        "detector (Silero VAD) finds the speech: silence and noise give no text, and long "
        "recordings are cut at their pauses into pieces of at most --chunk-seconds. Files that "
        "cannot be read are reported and the others still transcribed; the exit code is 1 if "
        "any failed.",
    )
    parser.add_argument(
        "model", metavar="MODEL", help="experiment dir, checkpoint or exported model dir"
    )
    parser.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--chunk-seconds", type=float, help="longest piece decoded at once (default: 30)"
    )
    parser.add_argument(
        "--no-vad",
        action="store_true",
        help="decode the whole recording, speech or not, in chunks cut at quiet points",
    )
    add_device_argument(parser)
    _add_decoder(parser)
    parser.set_defaults(run=run_transcribe)


def _split(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def _counts(text: str) -> list[int]:
    counts = comma_separated(text, int, "1,2,4")
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"proposal counts must be at least 1, got {text!r}")
    return list(dict.fromkeys(counts))


def run_eval(args: argparse.Namespace) -> int:
    from omnirouter.devices import choose_device
    from omnirouter.evaluate.proposal_sweep import sweep_checkpoint
    from omnirouter.evaluate.suite import evaluate_checkpoint
    from omnirouter.report.tables import (
        eval_table_markdown,
        write_eval_table_pages,
        write_sweep_page,
    )

    options = {
        "sets": _split(args.sets),
        "out_dir": args.out,
        "corpus_dir": args.corpus,
        "max_duration": args.max_duration,
        "device": str(choose_device(args.device)),
        "normalizer_name": args.normalizer,
        "command": eval_command(args),
    }
    beam = beam_request(args)
    if args.proposals:
        if beam is not None:
            raise ValueError(
                "--proposals decodes greedily: it cannot be combined with --decoder beam"
            )
        config = ProposalConfig(
            temperature=args.proposal_temperature,
            mode=ProposalMode(args.proposal_mode),
            aggregate=Aggregate(args.proposal_aggregate),
            seed=args.proposal_seed,
        )
        sweep, saved = sweep_checkpoint(args.model, args.proposals, config, **options)
        markdown = write_sweep_page(sweep, saved.parent)
        print(markdown.read_text())
        print(f"written: {markdown.parent}")
        return 0
    result = evaluate_checkpoint(args.model, **options, beam=beam)
    write_eval_table_pages(result.table, result.table_files)
    print(eval_table_markdown(result.table))
    print(f"written: {result.table_files.markdown.parent}")
    return 0


def run_word_errors(args: argparse.Namespace) -> int:
    from omnirouter.evaluate.word_errors import word_errors_of_experiment
    from omnirouter.report.tables import write_word_frequency_page

    experiment = Path(args.experiment)
    results, saved = word_errors_of_experiment(experiment, _split(args.sets), args.corpus)
    markdown = write_word_frequency_page(results, str(experiment), saved.parent)
    print(markdown.read_text())
    print(f"written: {markdown.parent}")
    return 0


def eval_command(args: argparse.Namespace) -> str:
    """The `omnirouter eval` command line that repeats this evaluation, from the parsed options
    (so it reads the same however the program was started)."""
    parts = ["omnirouter", "eval", str(args.model)]
    options = {
        "--sets": args.sets,
        "--out": args.out,
        "--corpus": args.corpus,
        "--max-duration": args.max_duration,
        "--normalizer": args.normalizer,
        "--device": args.device,
    }
    if getattr(args, "decoder", "greedy") == "beam":
        options |= {
            "--decoder": "beam",
            "--lm": args.lm,
            "--beam-size": args.beam_size,
            "--lm-weight": args.lm_weight,
            "--word-score": args.word_score,
        }
    if getattr(args, "proposals", None):
        options |= {
            "--proposals": ",".join(str(count) for count in args.proposals),
            "--proposal-temperature": args.proposal_temperature,
            "--proposal-mode": args.proposal_mode,
            "--proposal-aggregate": args.proposal_aggregate,
            "--proposal-seed": args.proposal_seed,
        }
    for option, value in options.items():
        if value is not None:
            parts += [option, str(value)]
    return shlex.join(parts)


def run_compare(args: argparse.Namespace) -> int:
    from omnirouter.evaluate.compare import (
        compare_tables,
        locate_eval_table,
        model_names,
        save_compare_table,
    )
    from omnirouter.evaluate.tables import read_eval_table
    from omnirouter.report.tables import compare_markdown, write_compare_pages

    names = _split(args.names) or model_names(args.experiments)
    if len(names) != len(args.experiments):
        raise ValueError(f"--names gives {len(names)} names for {len(args.experiments)} models")
    baseline = args.baseline
    if baseline is not None and baseline not in names and baseline in args.experiments:
        baseline = names[args.experiments.index(baseline)]  # given as a path
    tables = [read_eval_table(locate_eval_table(path)) for path in args.experiments]
    table = compare_tables(tables, names, baseline)
    print(compare_markdown(table))
    if args.out is not None:
        files = write_compare_pages(table, save_compare_table(table, args.out))
        print(f"written: {files.markdown}, {files.csv}, {files.json}")
    return 0


def run_transcribe(args: argparse.Namespace) -> int:
    from omnirouter.devices import choose_device
    from omnirouter.evaluate.transcribe import DEFAULT_CHUNK_SECONDS, Transcriber
    from omnirouter.evaluate.vad import DEFAULT_VAD

    transcriber = Transcriber.from_pretrained(
        args.model,
        device=str(choose_device(args.device)),
        chunk_seconds=DEFAULT_CHUNK_SECONDS if args.chunk_seconds is None else args.chunk_seconds,
        vad=None if args.no_vad else DEFAULT_VAD,
        beam=beam_request(args),
    )
    return print_transcripts(transcriber, args.audio, args.format)


def print_transcripts(transcriber: Transcriber, paths: list[str], output_format: str) -> int:
    """Transcribe `paths`, print the results to stdout and the failures and warnings to
    stderr; 1 if any failed, else 0."""
    from omnirouter.evaluate.transcribe import transcribe_files

    results = transcribe_files(transcriber, paths)
    for result in results:
        if result.transcript is None:
            print(f"error: {result.error}", file=sys.stderr)
        else:
            for warning in result.transcript.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    if output_format == "json":
        records = [
            result.transcript.to_dict()
            if result.transcript is not None
            else {"source": result.path, "error": result.error}
            for result in results
        ]
        print(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        for result in results:
            if result.transcript is not None:
                prefix = f"{result.path}: " if len(results) > 1 else ""
                print(prefix + result.transcript.text)
    return 1 if any(result.transcript is None for result in results) else 0
