"""Your own data as a set: a TSV or JSONL table of (audio, transcript[, id]), or a Kaldi data dir.

TSV: one utterance per line, `audio<TAB>text[<TAB>id]`, or any column order under a header line
naming the columns `audio`, `text`, `id`, `speaker` (only audio and text are required).
JSONL (optionally .gz): one object per line with the same keys.
Each file is one utterance.

Kaldi data dir: `wav.scp` (`<recording> <path>` or `<recording> <command> |`), `text`
(`<utterance> <transcript>`), and optionally `segments` (`<utterance> <recording> <start> <end>`,
end -1 = to the end) and `utt2spk`. Without segments, utterance ids are recording ids.

Relative audio paths are relative to the table's directory (for Kaldi, the data directory), not
to the working directory; the cuts name them absolutely. A `wav.scp` command runs as written,
in the working directory of whatever reads the audio: give absolute paths in it.

Audio that cannot be used is reported as a `Problem` (file and reason), never silently skipped;
a table that cannot be read is a `DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile
from lhotse import AudioSource, CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

from omnirouter.data.audio import AudioError, AudioProblem, recording_from_file
from omnirouter.data.errors import DataError, DataFileNotFoundError
from omnirouter.data.filters import SkipReason
from omnirouter.data.manifests import PreparedSet, cuts_from_manifests, role_from_name
from omnirouter.data.validate import Problem, audio_problem

TABLE_COLUMNS = ("audio", "text", "id", "speaker")

# What reading a damaged table file raises, beside our own errors: bytes that are not UTF-8,
# a gzip file that is not one or is cut short, an overlong TSV field.
_UNREADABLE = (UnicodeDecodeError, OSError, EOFError, zlib.error, csv.Error)


@dataclass(frozen=True)
class TableRow:
    audio: Path
    text: str
    id: str
    speaker: str | None
    line: int


@dataclass(frozen=True)
class ImportResult:
    prepared: PreparedSet
    problems: tuple[Problem, ...]  # utterances whose audio could not even be opened


def import_source(source: str | Path, set_name: str, role: str | None = None) -> ImportResult:
    """Import a table file or a Kaldi data directory as the set `set_name`."""
    source = Path(source)
    if source.is_dir():
        return import_kaldi_dir(source, set_name, role)
    if not source.is_file():
        raise DataFileNotFoundError(f"{source}: no such table file or Kaldi data directory")
    return import_table(source, set_name, role)


def import_table(path: str | Path, set_name: str, role: str | None = None) -> ImportResult:
    path = Path(path)
    recordings: list[Recording] = []
    supervisions: list[SupervisionSegment] = []
    problems: list[Problem] = []
    for row in read_table(path):
        try:
            recording = recording_from_file(row.audio, recording_id=row.id)
        except AudioError as error:
            problems.append(audio_problem(set_name, f"{row.id} ({path}:{row.line})", error))
            continue
        recordings.append(recording)
        supervisions.append(_supervision(recording, row.id, row.text, row.speaker))
    return _result(set_name, role, recordings, supervisions, problems, f"imported from {path}")


def read_table(path: str | Path) -> list[TableRow]:
    """The rows of a TSV or JSONL table, with absolute audio paths (relative ones are taken from
    the table's directory); a malformed line is a `DataError` naming it."""
    path = Path(path)
    table_dir = path.parent.absolute()
    is_jsonl = ".jsonl" in path.suffixes or path.suffix == ".json"
    records = _jsonl_records(path) if is_jsonl else _tsv_records(path)
    rows: list[TableRow] = []
    seen: dict[str, int] = {}
    for line, record in records:
        audio, text = record.get("audio") or record.get("path"), record.get("text")
        if not isinstance(audio, str) or not audio.strip() or not isinstance(text, str):
            raise DataError(
                f"{path}:{line}: needs an audio path and a text, both strings "
                f"(got {_shortened(record)})"
            )
        audio_path = table_dir / audio  # an absolute `audio` stays as it is
        utterance_id = _optional_string(record, "id", path, line) or _derived_id(
            audio_path, table_dir
        )
        if utterance_id in seen:
            raise DataError(
                f"{path}:{line}: utterance id {utterance_id!r} already used on line "
                f"{seen[utterance_id]}; give each line a distinct id (an id column)"
            )
        seen[utterance_id] = line
        speaker = _optional_string(record, "speaker", path, line)
        rows.append(TableRow(audio_path, text, utterance_id, speaker, line))
    if not rows:
        raise DataError(f"{path}: no utterances")
    return rows


def _optional_string(record: dict[str, Any], key: str, path: Path, line: int) -> str | None:
    """An optional text field (an id or a speaker): a string or a whole number, else an error."""
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise DataError(f"{path}:{line}: {key} must be a string, not {_shortened(value)}")


def _shortened(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _derived_id(audio_path: Path, table_dir: Path) -> str:
    """The audio path relative to the table without its suffix ("spk1/001"), else the stem."""
    try:
        return audio_path.resolve().relative_to(table_dir.resolve()).with_suffix("").as_posix()
    except ValueError:
        return audio_path.stem


def import_kaldi_dir(path: str | Path, set_name: str, role: str | None = None) -> ImportResult:
    path = Path(path)
    data_dir = path.absolute()  # relative paths in wav.scp are taken from here
    wav_scp = _kaldi_mapping(path / "wav.scp", required=True)
    texts = _kaldi_mapping(path / "text", required=True)
    speakers = _kaldi_mapping(path / "utt2spk", required=False)
    segments = _kaldi_segments(path / "segments")
    recordings: dict[str, Recording] = {}
    problems: list[Problem] = []
    for recording_id, location in wav_scp.items():
        try:
            recordings[recording_id] = _kaldi_recording(recording_id, location, data_dir)
        except AudioError as error:
            problems.append(audio_problem(set_name, recording_id, error))
    if segments is None:  # each recording is one utterance
        segments = {utt: (utt, 0.0, -1.0) for utt in wav_scp}
    if not segments:
        raise DataError(f"{path}: no utterances")
    supervisions: list[SupervisionSegment] = []
    for utterance_id, (recording_id, start, end) in segments.items():
        if recording_id not in wav_scp:
            raise DataError(
                f"{path / 'segments'}: {utterance_id} names unknown recording {recording_id}"
            )
        if utterance_id not in texts:
            raise DataError(f"{path / 'text'}: no transcript line for utterance {utterance_id}")
        recording = recordings.get(recording_id)
        if recording is None:
            continue  # its problem is already reported
        end = recording.duration if end < 0 else min(end, recording.duration)
        if end - start < 1e-6:  # nothing of the segment lies within its recording
            detail = f"{start}-{end} s of a {recording.duration} s recording"
            source = f"{path / 'segments'} ({recording_id})"
            problems.append(Problem(set_name, utterance_id, source, SkipReason.empty_audio, detail))
            continue
        supervisions.append(
            _supervision(
                recording, utterance_id, texts[utterance_id], speakers.get(utterance_id), start, end
            )
        )
    description = f"Kaldi data dir {path}"
    return _result(set_name, role, list(recordings.values()), supervisions, problems, description)


def _result(
    set_name: str,
    role: str | None,
    recordings: list[Recording],
    supervisions: list[SupervisionSegment],
    problems: list[Problem],
    description: str,
) -> ImportResult:
    if supervisions:  # each names a recording of `recordings`
        cuts = cuts_from_manifests(
            RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions)
        )
    else:
        cuts = CutSet.from_cuts([])
    prepared = PreparedSet(set_name, role or role_from_name(set_name), cuts, description)
    return ImportResult(prepared=prepared, problems=tuple(problems))


def _supervision(
    recording: Recording,
    utterance_id: str,
    text: str,
    speaker: str | None,
    start: float = 0.0,
    end: float | None = None,
) -> SupervisionSegment:
    # All channels: a stereo file is downmixed when read, not reduced to its left channel.
    channels = recording.channel_ids
    duration = (recording.duration if end is None else end) - start
    return SupervisionSegment(
        id=utterance_id,
        recording_id=recording.id,
        start=start,
        # Lhotse rounds a supervision's end to 8 decimals; rounding the duration down to a
        # microsecond keeps that end inside the recording (else Lhotse trims it, noisily).
        duration=math.floor(duration * 1e6) / 1e6,
        channel=channels if len(channels) > 1 else channels[0],
        text=text,
        speaker=speaker,
    )


def _tsv_records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
            header: list[str] | None = None
            for line, fields in enumerate(reader, start=1):
                if not fields or not any(field.strip() for field in fields):
                    continue
                lowered = [field.strip().lower() for field in fields]
                if header is None and line == 1 and "audio" in lowered and "text" in lowered:
                    header = lowered
                    continue
                names = header or list(TABLE_COLUMNS[: len(fields)])
                if len(fields) != len(names) or (header is None and len(fields) not in (2, 3)):
                    raise DataError(
                        f"{path}:{line}: expected {len(names) if header else '2 or 3'} "
                        f"tab-separated columns (audio, text[, id]), found {len(fields)}"
                    )
                yield line, dict(zip(names, (field.strip() for field in fields)))
    except _UNREADABLE as error:
        raise DataError(f"{path}: cannot be read as a TSV table ({error})") from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as file:
            for line, text in enumerate(file, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:{line}: not valid JSON ({error.msg})") from None
                except (ValueError, RecursionError) as error:  # a huge number, deep nesting
                    raise DataError(f"{path}:{line}: unusable JSON ({error})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{line}: expected a JSON object")
                yield line, record
    except _UNREADABLE as error:
        raise DataError(f"{path}: cannot be read as a JSONL table ({error})") from None


def _kaldi_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The numbered non-blank lines of a Kaldi data file."""
    try:
        text = path.read_text(encoding="utf-8")
    except _UNREADABLE as error:
        raise DataError(f"{path}: cannot be read as a Kaldi file ({error})") from None
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield line_number, line


def _kaldi_mapping(path: Path, required: bool) -> dict[str, str]:
    if not path.is_file():
        if required:
            raise DataFileNotFoundError(f"{path}: a Kaldi data directory needs this file")
        return {}
    mapping: dict[str, str] = {}
    for line_number, line in _kaldi_lines(path):
        key, *rest = line.strip().split(maxsplit=1)
        if key in mapping:
            raise DataError(f"{path}:{line_number}: {key} appears twice")
        mapping[key] = rest[0].strip() if rest else ""
    return mapping


def _kaldi_segments(path: Path) -> dict[str, tuple[str, float, float]] | None:
    if not path.is_file():
        return None
    segments = {}
    for line_number, line in _kaldi_lines(path):
        fields = line.split()
        malformed = f"{path}:{line_number}: expected '<utt> <recording> <start> <end>' (seconds)"
        if len(fields) != 4:
            raise DataError(malformed)
        utterance_id, recording_id = fields[:2]
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            raise DataError(malformed) from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
            raise DataError(f"{path}:{line_number}: times {start}, {end} out of range")
        if 0 <= end <= start:  # a negative end (Kaldi writes -1) means to the recording's end
            raise DataError(f"{path}:{line_number}: ends at {end} s, not after its start {start}")
        if utterance_id in segments:
            raise DataError(f"{path}:{line_number}: {utterance_id} appears twice")
        segments[utterance_id] = (recording_id, start, end)
    return segments


def _kaldi_recording(recording_id: str, location: str, data_dir: Path) -> Recording:
    if not location.endswith("|"):
        return recording_from_file(data_dir / location, recording_id=recording_id)
    command = location[:-1].strip()
    # A pipe has no header to read: run it once to learn the rate, channels and length.
    result = subprocess.run(command, shell=True, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise AudioError(command, AudioProblem.unreadable, detail[0])
    try:
        info = soundfile.info(io.BytesIO(result.stdout))
    except Exception as error:
        raise AudioError(command, AudioProblem.unreadable, str(error)) from None
    if info.frames == 0:
        raise AudioError(command, AudioProblem.empty)
    return Recording(
        id=recording_id,
        sources=[AudioSource(type="command", channels=list(range(info.channels)), source=command)],
        sampling_rate=info.samplerate,
        num_samples=info.frames,
        duration=info.frames / info.samplerate,
    )
