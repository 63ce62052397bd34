"""`omnirouter data prepare | import | tokenizer | features | shar`: real corpora and your own
data, our layout, and its Shar export.

Bad input (a missing file, a malformed table, an unknown set) raises an error of
`omnirouter.data.errors`; the command line prints its message and exits 2 (see `omnirouter.cli`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from omnirouter.data.errors import DataError

if TYPE_CHECKING:
    from omnirouter.data.corpus import CorpusInfo
    from omnirouter.data.prepare import PrepareOptions

CORPUS_HELP = (
    "a Lhotse recipe (librispeech, ami, chime6, commonvoice, fleurs, tedlium, voxpopuli, "
    "eval2000) or libriheavy (its published cut manifests)"
)


def register(data_subparsers: argparse._SubParsersAction) -> None:
    _add_prepare(data_subparsers)
    _add_import(data_subparsers)
    _add_tokenizer(data_subparsers)
    _add_features(data_subparsers)
    _add_shar(data_subparsers)


def _add_prepare(data_subparsers: argparse._SubParsersAction) -> None:
    prepare = data_subparsers.add_parser(
        "prepare",
        help="a public corpus from a local copy (never downloads)",
        description="Run a Lhotse recipe on a local corpus copy and write our corpus layout.",
    )
    prepare.add_argument("corpus", metavar="CORPUS", help=CORPUS_HELP)
    prepare.add_argument(
        "source_dir", help="the corpus as distributed (for libriheavy: its manifests)"
    )
    prepare.add_argument("corpus_dir", help="where to write (sets are added to an existing corpus)")
    prepare.add_argument("--parts", nargs="+", default=[], help="only these splits, e.g. dev-clean")
    prepare.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra argument of the Lhotse recipe function (value in YAML), e.g. mic=sdm",
    )
    prepare.add_argument("--prefix", help="set name prefix (default: the corpus name)")
    prepare.add_argument(
        "--audio-root", help="libriheavy: the directory holding download/librilight"
    )
    _add_replace_option(prepare)
    _add_check_options(prepare)
    prepare.set_defaults(run=_run_prepare)


def _add_import(data_subparsers: argparse._SubParsersAction) -> None:
    importer = data_subparsers.add_parser(
        "import",
        help="your own data: TSV/JSONL tables or Kaldi data directories",
        description="Import sets from TSV (audio<TAB>text[<TAB>id]) or JSONL tables, or "
        "Kaldi data directories (wav.scp, text, optional segments and utt2spk).",
    )
    importer.add_argument(
        "corpus_dir", help="where to write (sets are added to an existing corpus)"
    )
    importer.add_argument(
        "--set",
        dest="sets",
        action="append",
        required=True,
        metavar="NAME=SOURCE",
        help="a set and its table or Kaldi dir; repeat per set (train*, dev*, else test role)",
    )
    importer.add_argument("--role", action="append", default=[], metavar="NAME=ROLE")
    importer.add_argument("--name", default="imported", help="corpus name in corpus.json")
    _add_replace_option(importer)
    _add_check_options(importer)
    importer.set_defaults(run=_run_import)


def _add_tokenizer(data_subparsers: argparse._SubParsersAction) -> None:
    tokenizer = data_subparsers.add_parser(
        "tokenizer", help="train the word-piece tokenizer of a corpus on its training transcripts"
    )
    tokenizer.add_argument("corpus_dir")
    tokenizer.add_argument("--vocab-size", type=int, default=8000)
    tokenizer.add_argument("--model-type", choices=("unigram", "bpe"), default="unigram")
    tokenizer.add_argument("--sets", nargs="+", default=[], help="default: every training set")
    tokenizer.add_argument("--out", help="directory (default: CORPUS_DIR/tokenizer_<type>_<size>)")
    tokenizer.add_argument("--seed", type=int, default=0, help="seeds the transcript sampling")
    tokenizer.set_defaults(run=_run_tokenizer)


def _add_features(data_subparsers: argparse._SubParsersAction) -> None:
    features = data_subparsers.add_parser(
        "features",
        help="store log-mel features of a prepared corpus, read by data.features.use_stored",
        description="Compute raw log-mel features once per utterance and point the manifests at "
        "them (CORPUS_DIR/features/<set>). Sets already stored with the same settings are left "
        "alone; other settings replace them. Training reads them with "
        "data.features.use_stored=true and the same feature settings.",
    )
    features.add_argument("corpus_dir")
    features.add_argument(
        "settings",
        nargs="*",
        metavar="KEY=VALUE",
        help="feature settings (data.features without the prefix), e.g. frame_length_ms=32",
    )
    features.add_argument("--sets", nargs="+", default=[], help="default: every set")
    features.add_argument("--num-jobs", type=int, default=1)
    features.set_defaults(run=_run_features)


def _run_features(args: argparse.Namespace) -> int:
    from omnirouter.config import load_config
    from omnirouter.data.features import FeatureConfig
    from omnirouter.data.prepare import store_corpus_features

    config = load_config(FeatureConfig, overrides=args.settings)  # ConfigError names the key
    stored = store_corpus_features(args.corpus_dir, config, args.sets, args.num_jobs)
    print(f"stored: {', '.join(stored)}" if stored else "every set was already stored")
    return 0


def _add_shar(data_subparsers: argparse._SubParsersAction) -> None:
    from omnirouter.data.shar import SharFields

    shar = data_subparsers.add_parser(
        "shar",
        help="export sets to Lhotse Shar shards, read with data.shar_dir (object stores)",
        description="Write sets of a prepared corpus as Lhotse Shar shards (OUT/<set>/: cut "
        "manifests and tar files read from start to end) listed in OUT/corpus.json. Training "
        "and evaluation read them with data.shar_dir=OUT.",
    )
    shar.add_argument("corpus_dir")
    shar.add_argument("--out", required=True, help="the export directory")
    shar.add_argument(
        "--sets", nargs="+", default=[], help="e.g. train dev or train,dev (default: every set)"
    )
    shar.add_argument("--shard-size", type=int, default=1000, help="utterances per shard")
    shar.add_argument(
        "--fields",
        choices=[fields.value for fields in SharFields],
        help="stored features (lilcom), audio (flac) or both (default: a set's stored "
        "features if it has them, else its audio)",
    )
    shar.set_defaults(run=_run_shar)


def _run_shar(args: argparse.Namespace) -> int:
    from omnirouter.data.shar import SHAR_EXTRA, SharFields, export_shar

    sets = [name for value in args.sets for name in value.split(",") if name]
    fields = SharFields(args.fields) if args.fields else None
    info = export_shar(args.corpus_dir, args.out, sets, args.shard_size, fields)
    exported = info.extra[SHAR_EXTRA]
    print(f"{args.out}: Shar export of corpus {info.name!r}")
    for set_info in info.sets:
        entry = exported[set_info.name]
        shards = len(entry["shards"]["cuts"])
        print(f"  {set_info.name:<32} {set_info.role:<5} {entry['fields']:<8} {shards:>6} shards")
    return 0


def _add_replace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace sets the corpus already has (else that is an error); the corpus's "
        "tokenizers trained on their old text are removed, and trained again when next needed",
    )


def _add_check_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("checks and filters")
    group.add_argument(
        "--drop-bad",
        action="store_true",
        help="drop (and count) unusable utterances instead of failing",
    )
    group.add_argument("--check-audio", action="store_true", help="decode every utterance's audio")
    group.add_argument("--tokenizer", help="a tokenizer that must cover every transcript")
    group.add_argument(
        "--speech-rate-filter",
        action="store_true",
        help="drop training utterances with implausible words per second (pseudo-labels)",
    )
    group.add_argument("--min-words-per-second", type=float, default=0.5)
    group.add_argument("--max-words-per-second", type=float, default=6.0)
    group.add_argument("--store-features", action="store_true", help="also store log-mel features")
    group.add_argument("--num-jobs", type=int, default=1)


def _prepare_options(args: argparse.Namespace) -> PrepareOptions:
    from omnirouter.data.filters import SpeechRateFilterConfig
    from omnirouter.data.prepare import PrepareOptions
    from omnirouter.data.validate import CheckOptions

    speech_rate = SpeechRateFilterConfig(
        enabled=args.speech_rate_filter,
        min_words_per_second=args.min_words_per_second,
        max_words_per_second=args.max_words_per_second,
    )
    check = CheckOptions(
        drop_bad=args.drop_bad,
        decode_audio=args.check_audio,
        tokenizer=args.tokenizer,
        speech_rate=speech_rate,
    )
    return PrepareOptions(
        check=check,
        store_features=args.store_features,
        num_jobs=args.num_jobs,
        replace_sets=args.replace,
    )


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals or not key or not rest:
            raise DataError(f"{flag} {value!r}: expected KEY=VALUE")
        if key in pairs:
            raise DataError(f"{flag} {key!r} given twice")
        pairs[key] = rest
    return pairs


def _run_prepare(args: argparse.Namespace) -> int:
    from omnirouter.data.prepare import prepare_corpus

    info = prepare_corpus(
        args.corpus,
        args.source_dir,
        args.corpus_dir,
        parts=args.parts,
        recipe_options=_pairs(args.option, "--option"),
        prefix=args.prefix,
        audio_root=args.audio_root,
        options=_prepare_options(args),
    )
    _summarise(info, args.corpus_dir)
    return 0


def _run_import(args: argparse.Namespace) -> int:
    from omnirouter.data.prepare import import_corpus

    info = import_corpus(
        args.corpus_dir,
        args.name,
        _pairs(args.sets, "--set"),
        roles=_pairs(args.role, "--role"),
        options=_prepare_options(args),
    )
    _summarise(info, args.corpus_dir)
    return 0


def _run_tokenizer(args: argparse.Namespace) -> int:
    from omnirouter.data.prepare import train_corpus_tokenizer
    from omnirouter.data.tokenizer import TokenizerConfig

    config = TokenizerConfig(args.vocab_size, args.model_type, path=args.out)
    tokenizer = train_corpus_tokenizer(args.corpus_dir, config, args.sets, seed=args.seed)
    print(f"{tokenizer.model_path} ({tokenizer.vocab_size} pieces, blank = 0)")
    return 0


def _summarise(info: CorpusInfo, corpus_dir: str) -> None:
    print(f"{corpus_dir}: corpus {info.name!r}")
    for set_info in info.sets:
        print(
            f"  {set_info.name:<32} {set_info.role:<5} {set_info.num_utterances:>9} utts "
            f"{set_info.hours:>10.3f} h"
        )
