"""`omnirouter data synth`: build the built-in synthetic corpus."""

from __future__ import annotations

import argparse
import os


def register(data_subparsers: argparse._SubParsersAction) -> None:
    parser = data_subparsers.add_parser(
        "synth",
        help="build the built-in speech corpus with offline text-to-speech",
        description="Build (or bring up to date) the built-in corpus: train/dev/test sets and "
        "out-of-domain test sets spoken by espeak-ng, flite, festival and piper. A re-run "
        "reuses every finished utterance.",
    )
    parser.add_argument("--config", default="configs/data/builtin.yaml", help="synth config YAML")
    parser.add_argument("--out", default="data/builtin", help="corpus directory")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"worker processes (default: CPU count, {os.cpu_count()})",
    )
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument("overrides", nargs="*", help="config overrides: key.sub=value")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from omnirouter.config import load_config
    from omnirouter.data.synth.build import build_corpus
    from omnirouter.data.synth.config import SynthConfig

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = load_config(SynthConfig, [args.config], overrides)
    info = build_corpus(config, args.out, jobs=args.jobs)
    print(f"{'set':<24} {'role':<6} {'utterances':>10} {'hours':>7}  description")
    for set_info in info.sets:
        print(
            f"{set_info.name:<24} {set_info.role:<6} {set_info.num_utterances:>10} "
            f"{set_info.hours:>7.3f}  {set_info.description}"
        )
    build = info.extra["build"]
    print(
        f"corpus {args.out}: built in {build['seconds']} s with {build['jobs']} processes "  # type: ignore[index]
        f"({build['synthesised']} utterances synthesised, {build['effects_applied']} effects)"
    )  # type: ignore[index]
    return 0
