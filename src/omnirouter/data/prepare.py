"""The three prepare-time workflows behind `omnirouter data prepare | import | tokenizer`.

Each gathers sets (a Lhotse recipe, Libriheavy manifests, your own tables), checks them (a
problem is an error unless dropping is asked for, and then it is counted), optionally stores
features, and writes the corpus layout.

A set the corpus already has is replaced only when asked (`replace_sets`, `--replace`): its old
text may be what the corpus's tokenizers were trained on. Replacing it removes those tokenizers,
since their pieces may not cover the new text (every utterance would be skipped as
untokenizable); training trains a missing tokenizer again (or `omnirouter data tokenizer`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from lhotse import CutSet

from omnirouter.data.corpus import (
    CORPUS_INFO_FILE,
    CorpusInfo,
    cuts_path,
    existing_cuts_path,
    read_corpus_info,
    write_corpus_info,
)
from omnirouter.data.errors import DataError, SetExistsError
from omnirouter.data.features import (
    STORED_FEATURES_DIR,
    STORED_FEATURES_EXTRA,
    FeatureConfig,
    store_features,
    stored_feature_records,
    stored_settings,
)
from omnirouter.data.imports import import_source
from omnirouter.data.manifests import (
    PreparedSet,
    cut_text,
    portable_paths,
    read_manifest,
    write_corpus,
)
from omnirouter.data.recipes import libriheavy_sets, recipe_sets
from omnirouter.data.synth.sox import written_atomically
from omnirouter.data.tokenizer import INFO_FILE as TOKENIZER_INFO_FILE
from omnirouter.data.tokenizer import MODEL_FILE as TOKENIZER_MODEL_FILE
from omnirouter.data.tokenizer import Tokenizer, TokenizerConfig
from omnirouter.data.validate import CheckOptions, Problem, check_set

log = logging.getLogger(__name__)

TRAINED_ON = "corpus_sets"  # tokenizer.json: the sets of the corpus it was trained on


@dataclass(frozen=True)
class PrepareOptions:
    check: CheckOptions = field(default_factory=CheckOptions)
    store_features: bool = False  # also compute and store raw log-mel features (default settings)
    num_jobs: int = 1  # parallel jobs for Lhotse recipes and feature storage
    # Replace sets the corpus already has (else that is an error), removing the corpus's
    # tokenizers trained on their old text.
    replace_sets: bool = False


def prepare_corpus(
    recipe: str,
    source_dir: str | Path,
    corpus_dir: str | Path,
    *,
    parts: Sequence[str] = (),
    recipe_options: Mapping[str, str] | None = None,
    prefix: str | None = None,
    audio_root: str | Path | None = None,
    options: PrepareOptions | None = None,
) -> CorpusInfo:
    """A public corpus (see `omnirouter.data.recipes`) into corpus_dir's layout.

    For "libriheavy", source_dir holds the published cut manifests and audio_root the
    directory their relative audio paths start from.
    """
    options = options or PrepareOptions()
    if recipe == "libriheavy":
        if audio_root is None:
            raise DataError("libriheavy needs --audio-root: where download/librilight/... lies")
        sets = libriheavy_sets(source_dir, audio_root, parts)
    else:
        sets = recipe_sets(
            recipe, source_dir, corpus_dir, parts, recipe_options, prefix, options.num_jobs
        )
    extra = {"sources": {recipe: str(Path(source_dir).resolve())}}
    return _finish(corpus_dir, recipe, sets, options, {}, extra)


def import_corpus(
    corpus_dir: str | Path,
    name: str,
    sources: Mapping[str, str | Path],
    roles: Mapping[str, str] | None = None,
    options: PrepareOptions | None = None,
) -> CorpusInfo:
    """Sets from tables or Kaldi dirs: `sources` maps set name -> file or directory."""
    options = options or PrepareOptions()
    roles = roles or {}
    unknown = set(roles) - set(sources)
    if unknown:
        raise DataError(f"roles given for sets that are not imported: {sorted(unknown)}")
    _check_replacing(corpus_dir, list(sources), options.replace_sets)  # before reading audio
    sets, known = [], {}
    for set_name, source in sources.items():
        result = import_source(source, set_name, roles.get(set_name))
        sets.append(result.prepared)
        known[set_name] = result.problems
    extra = {
        "sources": {set_name: str(Path(source).resolve()) for set_name, source in sources.items()}
    }
    return _finish(corpus_dir, name, sets, options, known, extra)


def train_corpus_tokenizer(
    corpus_dir: str | Path, config: TokenizerConfig, sets: Sequence[str] = (), seed: int = 0
) -> Tokenizer:
    """Train the corpus's tokenizer on the transcripts of `sets` (default: every training set)
    and store it at `config.directory(corpus_dir)`. Characters of the other sets that it cannot
    represent are reported (evaluation still works on them; they only count as <unk>)."""
    info = read_corpus_info(corpus_dir)
    names = list(sets) or info.set_names(role="train")
    if not names:
        raise DataError(f"{corpus_dir}: no training sets to train a tokenizer on")
    for set_name in names:
        info.set(set_name)
    paths = [existing_cuts_path(corpus_dir, set_name) for set_name in names]
    texts = (cut_text(cut) for path in paths for cut in CutSet.from_jsonl_lazy(path))
    out_dir = config.directory(corpus_dir)
    tokenizer = Tokenizer.train(
        texts,
        out_dir,
        config.vocab_size,
        config.model_type,
        config.max_sentences,
        seed,
        # Which sets' text it learnt from: replacing one makes it stale (see the module doc).
        details={TRAINED_ON: names},
    )
    log.info("tokenizer with %d pieces written to %s", tokenizer.vocab_size, out_dir)
    for other in info.set_names():
        path = cuts_path(corpus_dir, other)
        if other in names or not path.is_file():
            continue
        missing = set()
        for cut in CutSet.from_jsonl_lazy(path):
            missing.update(tokenizer.unknown_characters(cut_text(cut)))
        if missing:
            log.warning(
                "set %s has characters the tokenizer lacks: %r", other, "".join(sorted(missing))
            )
    return tokenizer


def _finish(
    corpus_dir: str | Path,
    name: str,
    sets: list[PreparedSet],
    options: PrepareOptions,
    known: Mapping[str, Sequence[Problem]],
    extra: dict[str, object],
) -> CorpusInfo:
    replaced = _check_replacing(
        corpus_dir, [prepared.name for prepared in sets], options.replace_sets
    )
    checked = [
        check_set(prepared, options.check, known.get(prepared.name, ())) for prepared in sets
    ]
    if options.store_features:
        config = FeatureConfig()
        checked = [
            _with_stored_features(prepared, corpus_dir, config, options) for prepared in checked
        ]
        settings = stored_settings(config)
        extra = {**extra, STORED_FEATURES_EXTRA: {prepared.name: settings for prepared in checked}}
    stale = _stale_tokenizers(corpus_dir, replaced)  # from the roles the sets had so far
    info = write_corpus(corpus_dir, name, checked, extra=extra)
    for directory, old_sets in stale.items():
        shutil.rmtree(directory)
        log.warning(
            "removed the tokenizer %s: it was trained on the old text of %s. The next training "
            "trains it again, or run `omnirouter data tokenizer %s` (with its --vocab-size, "
            "--model-type and --sets)",
            directory,
            ", ".join(old_sets),
            corpus_dir,
        )
    return info


def _check_replacing(corpus_dir: str | Path, names: Sequence[str], replace_sets: bool) -> list[str]:
    """The sets of `names` that the corpus already has; an error unless replacing is asked."""
    if not (Path(corpus_dir) / CORPUS_INFO_FILE).is_file():
        return []
    info = read_corpus_info(corpus_dir)
    existing = [name for name in names if name in info.set_names()]
    if existing and not replace_sets:
        listed = ", ".join(
            f"{name!r} ({info.set(name).num_utterances} utterances)" for name in existing
        )
        raise SetExistsError(
            f"{corpus_dir} already has the set(s) {listed}: pass --replace to replace them "
            "(the corpus's tokenizers trained on their old text are then removed, and "
            "trained again on the new text by the next training or `omnirouter data "
            "tokenizer`), or choose other set names"
        )
    return existing


def _corpus_tokenizers(corpus_dir: str | Path) -> list[Path]:
    """The tokenizer directories inside a corpus directory (the default place to train them)."""
    return sorted(path.parent for path in Path(corpus_dir).glob(f"*/{TOKENIZER_MODEL_FILE}"))


def _stale_tokenizers(corpus_dir: str | Path, replaced: Sequence[str]) -> dict[Path, list[str]]:
    """The corpus's tokenizers trained on the text of a replaced set, with those sets. One
    trained before tokenizers recorded their sets learnt from the training sets (the default)."""
    if not replaced:
        return {}
    info = read_corpus_info(corpus_dir)
    stale = {}
    for directory in _corpus_tokenizers(corpus_dir):
        trained_on = _trained_on(directory) or info.set_names(role="train")
        if old_sets := sorted(set(trained_on) & set(replaced)):
            stale[directory] = old_sets
    return stale


def _trained_on(tokenizer_dir: Path) -> list[str]:
    try:
        details = json.loads((tokenizer_dir / TOKENIZER_INFO_FILE).read_text())
    except (OSError, ValueError):
        return []
    names = details.get(TRAINED_ON) if isinstance(details, dict) else None
    return [str(name) for name in names] if isinstance(names, list) else []


def _with_stored_features(
    prepared: PreparedSet, corpus_dir: str | Path, config: FeatureConfig, options: PrepareOptions
) -> PreparedSet:
    storage = Path(corpus_dir) / STORED_FEATURES_DIR / prepared.name
    cuts = store_features(prepared.cuts.to_eager(), config, storage, options.num_jobs)
    return replace(prepared, cuts=cuts)


def sets_lacking_features(
    corpus_dir: str | Path, config: FeatureConfig, sets: Sequence[str] = ()
) -> list[str]:
    """The sets (default: all of the corpus's) not every utterance of which has features stored
    with these settings, as corpus.json records them; an unknown set name is an error."""
    info = read_corpus_info(corpus_dir)
    settings = stored_settings(config)
    recorded = stored_feature_records(info.extra)
    lacking = []
    for name in list(sets) or info.set_names():
        info.set(name)
        if recorded.get(name) != settings or not all(
            cut.has_features for cut in CutSet.from_file(cuts_path(corpus_dir, name))
        ):
            lacking.append(name)
    return lacking


def store_corpus_features(
    corpus_dir: str | Path,
    config: FeatureConfig,
    sets: Sequence[str] = (),
    num_jobs: int = 1,
) -> list[str]:
    """Store raw log-mel features for the sets of a prepared corpus (default: all of them) and
    point their manifests at them; returns the sets it stored. Sets whose every utterance
    already has features stored with these settings (as corpus.json records them) are left
    alone, so a second call costs a manifest read; other settings replace them.

    Training then reads features instead of computing them (set `data.features.use_stored`),
    which on a 2-core machine roughly halves the time of a step of a small model.
    """
    info = read_corpus_info(corpus_dir)
    settings = stored_settings(config)
    recorded = stored_feature_records(info.extra)
    stored = []
    for name in sets_lacking_features(corpus_dir, config, sets):
        path = cuts_path(corpus_dir, name)
        cuts = read_manifest(path).to_eager()
        storage = Path(corpus_dir).resolve() / STORED_FEATURES_DIR / name
        with_features = store_features(cuts, config, storage, num_jobs)
        # Features and audio in the corpus named relative to it, as `write_corpus` writes them.
        portable = with_features.map(partial(portable_paths, corpus_dir=corpus_dir))
        with written_atomically(path) as temporary:  # a kill leaves the old manifest or the new
            portable.to_file(temporary)
        stored.append(name)
        log.info("stored features of %s (%d utterances) in %s", name, len(cuts), storage)
    if stored:  # the settings they were made with, set by set, as `data import` records them
        recorded.update({name: settings for name in stored})
        extra = {**info.extra, STORED_FEATURES_EXTRA: recorded}
        write_corpus_info(corpus_dir, replace(info, extra=extra))
    return stored
