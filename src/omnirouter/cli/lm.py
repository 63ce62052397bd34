"""`omnirouter lm build` and `omnirouter lm tune`: word n-gram LMs for beam-search decoding."""

from __future__ import annotations

import argparse
from pathlib import Path

from omnirouter.cli.arguments import add_device_argument, comma_separated, positive_int


def _floats(text: str) -> tuple[float, ...]:
    return tuple(comma_separated(text, float, "0,0.5,1"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lm", help="word n-gram language models for beam-search decoding"
    )
    actions = parser.add_subparsers(dest="lm_command", required=True, metavar="ACTION")
    _register_build(actions)
    _register_tune(actions)


def _register_build(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "build",
        help="estimate a word n-gram (modified Kneser-Ney, KenLM) from a corpus's text",
        description="Reads a synthetic corpus's training text (else its training "
        "transcripts), normalises it as the tokenizer does, estimates an N-gram "
        "with modified Kneser-Ney smoothing (KenLM lmplz) and writes lm.arpa, lm.bin "
        "(KenLM binary), unigrams.txt and lm.json into CORPUS_DIR/lm unless --out.",
    )
    parser.add_argument("corpus", metavar="CORPUS_DIR")
    parser.add_argument("--order", type=positive_int, default=3, help="n-gram order (default 3)")
    parser.add_argument(
        "--sets",
        help="comma-separated sets whose transcripts to use (default: train, when the corpus "
        "has no training text)",
    )
    parser.add_argument(
        "--no-corpus-text",
        action="store_true",
        help="leave out a synthetic corpus's training text (training_text.txt: every "
        "sentence its training sets could have read, no dev or test sentence)",
    )
    parser.add_argument(
        "--text", nargs="+", default=[], metavar="FILE", help="more text, one sentence a line"
    )
    parser.add_argument("--out", type=Path, help="output directory (default: CORPUS_DIR/lm)")
    parser.set_defaults(run=run_build)


def _register_tune(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "tune",
        help="tune the LM weight and word score of the beam search on a dev set",
        description="Runs the model over the set once (log-probabilities cached in "
        "EXP/eval-lm/), beam-searches a grid of LM weights and word scores, and stores the "
        "best beside the LM (tuning.json), where `omnirouter eval --decoder beam` finds it. "
        "Prints the grid, greedy WER beside it, and the beam search's real-time factor on "
        "one core.",
    )
    parser.add_argument("experiment", metavar="EXP")
    parser.add_argument("--set", default="dev", help="the set to tune on (default: dev)")
    parser.add_argument("--lm", help="LM directory or file (default: the corpus's lm/)")
    parser.add_argument("--beam-size", type=positive_int, default=64)
    parser.add_argument(
        "--open-vocabulary",
        action="store_true",
        help="tune the open-vocabulary search (`eval --decoder beam --open-vocabulary`)",
    )
    parser.add_argument(
        "--lm-weights",
        type=_floats,
        metavar="A,A,...",
        help="LM weights tried (default: evaluate/lm_tune.py's LM_WEIGHTS, 0.25 to 1.5)",
    )
    parser.add_argument(
        "--word-scores",
        type=_floats,
        metavar="W,W,...",
        help="word scores tried (default: evaluate/lm_tune.py's WORD_SCORES, 0 to 4)",
    )
    add_device_argument(parser)
    parser.set_defaults(run=run_tune)


def run_build(args: argparse.Namespace) -> int:
    from omnirouter.evaluate.lm import build_corpus_lm

    sets = None
    if args.sets is not None:
        sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    info, files = build_corpus_lm(
        args.corpus, args.out, args.order, sets, args.text, corpus_text=not args.no_corpus_text
    )
    counts = ", ".join(f"{count} {n + 1}-grams" for n, count in enumerate(info.ngram_counts))
    print(
        f"{info.order}-gram, {info.smoothing}: {info.sentences} sentences, {info.words} words, "
        f"vocabulary {info.vocabulary}; {counts}"
    )
    print(f"written: {files.directory}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from omnirouter.devices import choose_device
    from omnirouter.evaluate.lm_tune import LM_WEIGHTS, WORD_SCORES, tune_lm

    result = tune_lm(
        args.experiment,
        args.lm,
        args.set,
        str(choose_device(args.device)),
        beam_size=args.beam_size,
        lm_weights=args.lm_weights or LM_WEIGHTS,
        word_scores=args.word_scores or WORD_SCORES,
        lexicon=not args.open_vocabulary,
    )
    print(f"{result.search} search, beam {result.beam_size}")
    print(f"| lm_weight | word_score | WER {result.set_name} % |")
    print("|---:|---:|---:|")
    for point in result.grid:
        print(f"| {point.lm_weight:g} | {point.word_score:g} | {100 * point.wer:.2f} |")
    print(
        f"tuned: lm_weight {result.lm_weight:g}, word_score {result.word_score:g}: "
        f"WER {100 * result.wer:.2f}% (greedy {100 * result.greedy_wer:.2f}%)"
    )
    print(
        f"beam search on one core: {result.one_core_seconds:.1f} s for "
        f"{result.audio_seconds:.1f} s of audio, real-time factor {result.real_time_factor:.4f}"
    )
    return 0
