"""Sets exported to Lhotse's sequential Shar format, for corpora that live beyond one disk.

    SHAR_DIR/
      corpus.json                     the exported sets (`CorpusInfo`) with their shards
      <set>/cuts.000000.jsonl.gz      the manifest of shard 0: ids, durations, transcripts
      <set>/features.000000.tar       the set's stored log-mels, lilcom-compressed, and/or
      <set>/recording.000000.tar      its 16 kHz audio, flac
      ...

Each file is read from start to end, which is what object stores and network filesystems serve
fast; nothing points back at the corpus. `omnirouter data shar` writes an export
(`export_shar`); `data.shar_dir` makes the loaders read their sets from it (`read_shar`).
Training reads the shards in an order drawn from its seed and the epoch; the sampler's buffer
shuffles the utterances within.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.shar import LazySharIterator, SharWriter
from tqdm import tqdm

from omnirouter.data.audio import describe_source
from omnirouter.data.corpus import (
    CORPUS_INFO_FILE,
    CorpusInfo,
    existing_cuts_path,
    read_corpus_info,
    write_corpus_info,
)
from omnirouter.data.errors import (
    DataError,
    DataFileNotFoundError,
    SetExistsError,
    UnknownNameError,
)
from omnirouter.data.features import STORED_FEATURES_EXTRA, stored_feature_records
from omnirouter.data.manifests import read_manifest

SHAR_EXTRA = "shar"  # corpus.json `extra` key: set name -> {"fields": ..., "shards": ...}


class SharFields(str, Enum):
    # The corpus's stored features, lilcom-compressed: each value within 2^-6 of the stored
    # one (Lhotse's tick power -5), about a third of the float32 size.
    features = "features"
    audio = "audio"  # the 16 kHz samples of every cut, flac (16-bit)
    both = "both"


# What Lhotse's SharWriter is asked to write for each choice: field -> format.
_WRITER_FIELDS = {
    SharFields.features: {"features": "lilcom"},
    SharFields.audio: {"recording": "flac"},
    SharFields.both: {"features": "lilcom", "recording": "flac"},
}


def export_shar(
    corpus_dir: str | Path,
    shar_dir: str | Path,
    sets: Sequence[str] = (),
    shard_size: int = 1000,
    fields: SharFields | None = None,
) -> CorpusInfo:
    """Write sets of a prepared corpus (default: all) as Shar shards of `shard_size` cuts
    under shar_dir/<set>/ and list them in shar_dir/corpus.json, beside any sets exported
    there before. fields=None exports a set's stored features if it has them, else its audio.

    A set directory that already exists is an error (remove it to export the set again).
    """
    if shard_size < 1:
        raise DataError(f"shard size {shard_size}: need at least 1 utterance per shard")
    shar_dir = Path(shar_dir)
    info = read_corpus_info(corpus_dir)
    names = list(dict.fromkeys(sets)) or info.set_names()
    chosen = {name: _set_fields(corpus_dir, info, name, fields) for name in names}
    exported = _existing_export(shar_dir, info)  # every problem before a shard is written
    for name in names:
        if (shar_dir / name).exists():
            raise SetExistsError(f"{shar_dir / name} exists: remove it to export {name!r} again")
    for name in names:
        shards = _write_set(
            existing_cuts_path(corpus_dir, name), shar_dir, name, chosen[name], shard_size
        )
        entry = {
            "fields": chosen[name].value,
            "shards": shards,
            "source": str(Path(corpus_dir).resolve()),
        }
        exported = _with_set(exported, info, name, entry)
        write_corpus_info(shar_dir, exported)  # after each set: a failure keeps those done
    return exported


def read_shar_info(shar_dir: str | Path, set_names: Sequence[str] = ()) -> CorpusInfo:
    """corpus.json of a Shar export, checked to list `set_names` (UnknownNameError says what
    to do)."""
    if not (Path(shar_dir) / CORPUS_INFO_FILE).is_file():
        raise DataFileNotFoundError(
            f"{Path(shar_dir) / CORPUS_INFO_FILE} not found: is {shar_dir} a Shar export? "
            f"Write one with `omnirouter data shar CORPUS_DIR --out {shar_dir}`."
        )
    info = read_corpus_info(shar_dir)
    exported = info.extra.get(SHAR_EXTRA, {})
    for name in set_names:
        if name not in exported:
            raise UnknownNameError(
                f"{shar_dir} holds Shar exports of sets {sorted(exported)}, not of {name!r}: "
                f"`omnirouter data shar CORPUS_DIR --out {shar_dir} --sets {name}`"
            )
    return info


def read_shar(
    shar_dir: str | Path,
    set_names: Sequence[str],
    *,
    with_data: bool = True,
    audio_required: bool = False,
    shuffle_seed: int | None = None,
) -> CutSet:
    """The cuts of the sets, read lazily shard by shard: in the exported order, one set after
    another, or with `shuffle_seed` in an order drawn from it and the epoch (`set_shard_epoch`).

    with_data=False reads the manifests only (ids, durations, transcripts), not the tar files.
    audio_required: a set exported without its audio is an error (features are not stored).
    """
    info = read_shar_info(shar_dir, set_names)
    entries = [info.extra[SHAR_EXTRA][name] for name in set_names]
    if audio_required:
        for name, entry in zip(set_names, entries):
            if "recording" not in entry["shards"]:
                raise DataError(
                    f"set {name!r} of {shar_dir} holds stored features only: set "
                    "data.features.use_stored=true, or export its audio too (--fields both)"
                )
    read_fields = ["cuts"]
    if with_data:
        read_fields = sorted(entries[0]["shards"])
        if any(sorted(entry["shards"]) != read_fields for entry in entries):
            kinds = {name: entry["fields"] for name, entry in zip(set_names, entries)}
            raise DataError(f"sets read together must be exported alike; in {shar_dir}: {kinds}")
    shards = {
        field: [str(Path(shar_dir) / path) for entry in entries for path in entry["shards"][field]]
        for field in read_fields
    }
    return CutSet.from_shar(
        fields=shards,
        shuffle_shards=shuffle_seed is not None,
        stateful_shuffle=True,
        seed=shuffle_seed if shuffle_seed is not None else 0,
    )


def set_shard_epoch(cuts: CutSet, epoch: int) -> None:
    """Make the next pass over Shar `cuts` read the shards in the order of `epoch`.

    Lhotse counts completed passes itself; a run resumed mid-epoch must draw the order of the
    epoch it resumes, not of the passes this process happens to have made. Other cuts: no-op.
    """
    if isinstance(cuts.data, LazySharIterator):
        cuts.data.epoch = epoch


def _set_fields(
    corpus_dir: str | Path, info: CorpusInfo, name: str, asked: SharFields | None
) -> SharFields:
    info.set(name)  # UnknownNameError lists the corpus's sets
    has_features = name in stored_feature_records(info.extra) and all(
        cut.has_features for cut in CutSet.from_jsonl_lazy(existing_cuts_path(corpus_dir, name))
    )
    if asked is None:
        return SharFields.features if has_features else SharFields.audio
    if asked is not SharFields.audio and not has_features:
        raise DataError(
            f"set {name!r} of {corpus_dir} has no stored features to export: store them "
            f"first (omnirouter data features {corpus_dir} --sets {name}) or export its "
            "audio (--fields audio)"
        )
    return asked


def _write_set(
    cuts_file: Path, shar_dir: Path, name: str, fields: SharFields, shard_size: int
) -> dict[str, list[str]]:
    """Shards of one set; returns field -> shard paths relative to shar_dir."""
    set_dir = shar_dir / name
    set_dir.mkdir(parents=True)
    cuts = read_manifest(cuts_file)
    with SharWriter(set_dir, fields=_WRITER_FIELDS[fields], shard_size=shard_size) as writer:
        for cut in tqdm(cuts, desc=f"shar {name} ({fields.value})", unit=" utts"):
            try:
                writer.write(_only(cut, fields))
            except Exception as error:  # Lhotse reports unreadable audio in its own types
                raise DataError(f"{cut.id} in {describe_source(cut)}: {error}") from error
    return {
        field: [Path(path).relative_to(shar_dir).as_posix() for path in paths]
        for field, paths in writer.output_paths.items()
    }


def _only(cut: Cut, fields: SharFields) -> Cut:
    """The cut without what is not exported: no paths into the corpus are left behind."""
    if fields is SharFields.features:
        return cut.drop_recording()
    if fields is SharFields.audio and cut.has_features:
        return cut.drop_features()
    return cut


def _existing_export(shar_dir: Path, corpus: CorpusInfo) -> CorpusInfo:
    if not (shar_dir / CORPUS_INFO_FILE).is_file():
        return CorpusInfo(name=corpus.name, sets=(), description=corpus.description)
    existing = read_corpus_info(shar_dir)
    if SHAR_EXTRA not in existing.extra:  # its corpus.json must not be overwritten
        raise DataError(f"{shar_dir} holds a corpus, not a Shar export: choose another --out")
    return existing


def _with_set(
    exported: CorpusInfo,
    corpus: CorpusInfo,
    name: str,
    entry: dict[str, Any],
) -> CorpusInfo:
    """`exported` listing set `name` (replacing an earlier entry), with the settings its
    features were stored with when they are exported (the loaders check them)."""
    stored = stored_feature_records(exported.extra)
    stored.pop(name, None)
    if "features" in entry["shards"]:
        stored[name] = stored_feature_records(corpus.extra)[name]
    extra = {
        SHAR_EXTRA: {**exported.extra.get(SHAR_EXTRA, {}), name: entry},
        STORED_FEATURES_EXTRA: stored,
    }
    sets = (*(info for info in exported.sets if info.name != name), corpus.set(name))
    return replace(exported, sets=sets, extra={**exported.extra, **extra})
