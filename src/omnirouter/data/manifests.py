"""From Lhotse recordings and supervisions to our corpus layout (see `omnirouter.data.corpus`).

Every builder of real data (the Lhotse recipes, the TSV/JSONL/Kaldi imports) ends here: one
utterance per cut, audio referenced where it lies (never copied), resampled lazily to 16 kHz,
written as `cuts_<set>.jsonl.gz` with the sets listed in `corpus.json`.

Paths in the manifests: audio files and stored features inside the corpus directory are written
relative to it, all others absolute (`portable_paths`), so the directory can be moved or copied
whole; whatever reads a set's cuts to use their data reads them through `read_set_cuts` or
`read_manifest`, which take relative paths from the manifest's directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.cut import Cut, MixedCut
from lhotse.cut.data import DataCut
from lhotse.qa import fix_manifests
from lhotse.utils import fastcopy
from tqdm import tqdm

from omnirouter.data.audio import SAMPLE_RATE
from omnirouter.data.corpus import (
    CORPUS_INFO_FILE,
    CorpusInfo,
    SetInfo,
    cuts_path,
    existing_cuts_path,
    read_corpus_info,
    write_corpus_info,
)
from omnirouter.data.errors import DataError
from omnirouter.data.features import STORED_FEATURES_EXTRA

log = logging.getLogger(__name__)

ROLES = ("train", "dev", "test")


@dataclass(frozen=True)
class PreparedSet:
    """One set about to be written: its cuts, its role and a line on what it tests."""

    name: str
    role: str
    cuts: CutSet
    description: str = ""
    report: dict[str, object] = field(default_factory=dict)  # counts of what was dropped, and why


def cut_text(cut: Cut) -> str:
    """The transcript of a cut: its supervisions' texts in time order, joined by spaces."""
    supervisions = sorted(cut.supervisions, key=lambda supervision: supervision.start)
    return " ".join(supervision.text.strip() for supervision in supervisions if supervision.text)


def role_from_name(set_name: str) -> str:
    """train* -> train; dev*, valid* -> dev; anything else is evaluated, so test."""
    lowered = set_name.lower()
    if lowered.startswith("train"):
        return "train"
    if lowered.startswith(("dev", "valid")):
        return "dev"
    return "test"


def set_name(*parts: str) -> str:
    """A set name usable in a file name: "LibriSpeech", "dev-clean" -> "librispeech_dev_clean"."""
    joined = "_".join(part for part in parts if part)
    return "".join(char if char.isalnum() else "_" for char in joined.lower()).strip("_")


def cuts_from_manifests(recordings: RecordingSet, supervisions: SupervisionSet) -> CutSet:
    """One cut per supervision, at 16 kHz (resampled lazily when read).

    Supervisions without a recording (Lhotse recipes skip missing audio files with a warning)
    are dropped by Lhotse's `fix_manifests`; we say how many.
    """
    num_supervisions = len(supervisions)
    recordings, supervisions = fix_manifests(recordings, supervisions)
    if len(supervisions) != num_supervisions:
        log.warning(
            "%d of %d transcripts have no usable recording and were dropped",
            num_supervisions - len(supervisions),
            num_supervisions,
        )
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cuts = cuts.trim_to_supervisions(keep_overlapping=False, keep_all_channels=False)
    return cuts.resample(SAMPLE_RATE).to_eager()


# corpus.json `extra` entries that hold one record per set name: "sets" (what the checks
# found) and the settings features were stored with (see prepare.py).
PER_SET_EXTRA = ("sets", STORED_FEATURES_EXTRA)


def write_corpus(
    corpus_dir: str | Path,
    name: str,
    sets: Sequence[PreparedSet],
    description: str = "",
    extra: dict[str, object] | None = None,
) -> CorpusInfo:
    """Write each set's cuts and (re)write corpus.json.

    A corpus directory may gather several sources (say, the test sets of five corpora): sets
    already listed there under other names are kept, sets of the same name are replaced.
    """
    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    existing = _existing_info(corpus_dir)
    set_infos = {info.name: info for info in existing.sets} if existing else {}
    merged_extra: dict[str, object] = dict(existing.extra) if existing else {}
    rewritten = {prepared.name for prepared in sets}
    for key in PER_SET_EXTRA:  # a rewritten set's old records describe data that is gone
        records = merged_extra.get(key)
        if isinstance(records, dict):
            merged_extra[key] = {
                set_name: record
                for set_name, record in records.items()
                if set_name not in rewritten
            }
    for prepared in sets:
        if prepared.role not in ROLES:
            raise DataError(f"set {prepared.name!r}: role {prepared.role!r} is not one of {ROLES}")
        set_infos[prepared.name] = _write_set(corpus_dir, prepared)
        if prepared.report:
            reports = dict(merged_extra.get("sets", {}))  # type: ignore[arg-type]
            reports[prepared.name] = prepared.report
            merged_extra["sets"] = reports
    for key, value in (extra or {}).items():
        records = merged_extra.get(key)
        if key in PER_SET_EXTRA and isinstance(value, dict) and isinstance(records, dict):
            merged_extra[key] = {**records, **value}  # the other sets' records stay
        else:
            merged_extra[key] = value
    info = CorpusInfo(
        name=existing.name if existing else name,
        sets=tuple(set_infos.values()),
        description=description or (existing.description if existing else ""),
        extra=merged_extra,
    )
    write_corpus_info(corpus_dir, info)
    return info


def _write_set(corpus_dir: Path, prepared: PreparedSet) -> SetInfo:
    path = cuts_path(corpus_dir, prepared.name)
    num_utterances = 0
    seconds = 0.0
    with CutSet.open_writer(path) as writer:
        for cut in tqdm(prepared.cuts, desc=f"writing {prepared.name}", leave=False):
            writer.write(portable_paths(cut, corpus_dir))
            num_utterances += 1
            seconds += cut.duration
    if num_utterances == 0:
        raise DataError(f"set {prepared.name!r} has no utterances left to write to {path}")
    log.info("%s: %d utterances, %.2f h -> %s", prepared.name, num_utterances, seconds / 3600, path)
    return SetInfo(
        name=prepared.name,
        role=prepared.role,
        description=prepared.description,
        num_utterances=num_utterances,
        hours=round(seconds / 3600, 4),
    )


def _existing_info(corpus_dir: Path) -> CorpusInfo | None:
    if not (corpus_dir / CORPUS_INFO_FILE).is_file():
        return None
    return read_corpus_info(corpus_dir)


def read_set_cuts(corpus_dir: str | Path, set_names: Sequence[str]) -> CutSet:
    """The cuts of sets of a corpus, read lazily one set after another in the given order, with
    the relative paths of their audio and features taken from the corpus directory."""
    paths = [existing_cuts_path(corpus_dir, name) for name in set_names]
    cuts = CutSet.from_files(paths, shuffle_iters=False)
    return cuts.map(partial(resolved_paths, corpus_dir=Path(os.path.abspath(corpus_dir))))


def read_manifest(path: str | Path) -> CutSet:
    """The cuts of one manifest file, read lazily, with relative paths of their audio and
    features taken from the file's directory (for `cuts_<set>.jsonl.gz`: the corpus's)."""
    directory = Path(os.path.abspath(path)).parent
    return CutSet.from_jsonl_lazy(path).map(partial(resolved_paths, corpus_dir=directory))


def portable_paths(cut: Cut, corpus_dir: str | Path) -> Cut:
    """The cut with each audio file and feature store inside `corpus_dir` named relative to it
    and every other one absolute (a relative path is taken from the working directory)."""
    return _renamed(cut, partial(_portable_path, corpus_dir=Path(os.path.abspath(corpus_dir))))


def resolved_paths(cut: Cut, corpus_dir: str | Path) -> Cut:
    """The cut with its relative audio and feature paths taken from `corpus_dir`, where
    `portable_paths` wrote them relative to; absolute paths stay as they are."""
    return _renamed(cut, partial(_path_in, corpus_dir=Path(os.path.abspath(corpus_dir))))


def _renamed(cut: Cut, rename: Callable[[str], str]) -> Cut:
    """The cut with `rename` applied to its audio file paths and its feature storage path."""
    if isinstance(cut, MixedCut):
        tracks = [fastcopy(track, cut=_renamed(track.cut, rename)) for track in cut.tracks]
        return fastcopy(cut, tracks=tracks)
    if not isinstance(cut, DataCut):  # a padding cut names no file
        return cut
    if cut.has_recording:
        sources = [
            fastcopy(source, source=rename(source.source)) if source.type == "file" else source
            for source in cut.recording.sources
        ]
        cut = fastcopy(cut, recording=fastcopy(cut.recording, sources=sources))
    storage = cut.features.storage_path if cut.has_features else ""
    if storage and "://" not in storage:  # a local directory or file, not a URL
        cut = fastcopy(cut, features=fastcopy(cut.features, storage_path=rename(storage)))
    return cut


def _portable_path(path: str, corpus_dir: Path) -> str:
    absolute = Path(os.path.abspath(path))
    # As written first; then with links resolved, for a corpus reached through a symlink.
    for inner, outer in ((absolute, corpus_dir), (absolute.resolve(), corpus_dir.resolve())):
        if inner.is_relative_to(outer):
            return inner.relative_to(outer).as_posix()
    return str(absolute)


def _path_in(path: str, corpus_dir: Path) -> str:
    return path if os.path.isabs(path) else str(corpus_dir / path)
