"""Reading audio: any common format, resampled to 16 kHz, downmixed to one channel.

One path serves a file on disk (`load_audio`, used to transcribe) and an utterance of a
manifest (`load_cut_audio`, used by the datasets), so both see exactly the same samples:
Lhotse reads the file (libsndfile for wav/flac/ogg/mp3, ffmpeg or audioread for the rest),
resamples with its own resampler (no torchaudio needed) and we average the channels.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from lhotse import Recording
from lhotse.cut import Cut

from omnirouter.data.errors import DataError

SAMPLE_RATE = 16000  # Hz; everything downstream (features, durations) assumes it


class AudioProblem(str, Enum):
    missing = "missing"  # no such file
    directory = "directory"  # a directory where an audio file was expected
    unreadable = "unreadable"  # exists, but no backend could decode it
    empty = "empty"  # decodes to zero samples
    non_finite = "non_finite"  # decodes to samples of which some are NaN or infinite


class AudioError(DataError):
    """Audio that cannot be used; the message names the file (or utterance) and the problem."""

    def __init__(self, source: str, problem: AudioProblem, detail: str = "") -> None:
        self.source = source
        self.problem = problem
        self.detail = detail
        message = {
            AudioProblem.missing: "audio file not found",
            AudioProblem.directory: "is a directory, not an audio file",
            AudioProblem.unreadable: "cannot decode audio",
            AudioProblem.empty: "zero-length audio",
            AudioProblem.non_finite: "audio holds NaN or infinite samples",
        }[problem]
        super().__init__(f"{source}: {message}" + (f" ({detail})" if detail else ""))

    def __reduce__(self) -> tuple[type[AudioError], tuple[str, AudioProblem, str]]:
        # Pickled from DataLoader workers: rebuild from the fields, not from the message.
        return AudioError, (self.source, self.problem, self.detail)


@dataclass(frozen=True)
class AudioSamples:
    samples: np.ndarray  # float32, mono, 1-D, in [-1, 1]
    sample_rate: int  # always SAMPLE_RATE
    path: str  # where the samples came from (a file, or "<cut id> in <file>")

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def recording_from_file(path: str | Path, recording_id: str | None = None) -> Recording:
    """A Lhotse `Recording` of a whole file (header only), or `AudioError` saying what is wrong."""
    path = Path(path)
    try:
        is_file = path.is_file()
    except OSError as error:  # a name too long for the filesystem, say
        raise AudioError(str(path), AudioProblem.missing, error.strerror or str(error)) from None
    if not is_file:
        problem = AudioProblem.directory if path.is_dir() else AudioProblem.missing
        raise AudioError(str(path), problem)
    try:
        recording = Recording.from_file(path, recording_id=recording_id)
    except Exception as error:  # Lhotse wraps each backend's failure in its own exception types
        raise AudioError(str(path), AudioProblem.unreadable, _first_line(error)) from None
    if recording.num_samples == 0:
        raise AudioError(str(path), AudioProblem.empty)
    return recording


def load_audio(path: str | Path) -> AudioSamples:
    """Read a whole audio file as 16 kHz mono float32 samples."""
    recording = recording_from_file(path)
    samples = _decode(lambda: recording.resample(SAMPLE_RATE).load_audio(), str(path))
    return AudioSamples(samples=samples, sample_rate=SAMPLE_RATE, path=str(path))


def load_cut_audio(cut: Cut) -> AudioSamples:
    """The samples of one manifest utterance, 16 kHz mono, whatever its recording's format."""
    source = f"{cut.id} in {describe_source(cut)}"
    resampled = cut if cut.sampling_rate == SAMPLE_RATE else cut.resample(SAMPLE_RATE)
    try:
        samples = _decode(resampled.load_audio, source)
    except AudioError as error:
        # The manifest may be older than the files: say what is wrong with the file now.
        problem = _file_problem(cut)
        raise (problem or error) from None
    return AudioSamples(samples=samples, sample_rate=SAMPLE_RATE, path=source)


def _file_problem(cut: Cut) -> AudioError | None:
    if not cut.has_recording:
        return None
    for audio_source in cut.recording.sources:
        if audio_source.type != "file":
            continue
        try:
            recording_from_file(audio_source.source)
        except AudioError as error:
            return AudioError(f"{cut.id}: {error.source}", error.problem, error.detail)
    return None


def _decode(read: Callable[[], np.ndarray | None], source: str) -> np.ndarray:
    try:
        samples_CS = read()
    except Exception as error:
        raise AudioError(source, AudioProblem.unreadable, _first_line(error)) from None
    if samples_CS is None:
        raise AudioError(source, AudioProblem.unreadable, "the manifest entry has no audio")
    samples_CS = np.atleast_2d(np.asarray(samples_CS, dtype=np.float32))
    if samples_CS.shape[-1] == 0:
        raise AudioError(source, AudioProblem.empty)
    finite_CS = np.isfinite(samples_CS)
    if not finite_CS.all():
        # A float WAV can store NaN; log-mels of it are NaN, and a model fed them says nothing.
        bad = int(finite_CS.size - finite_CS.sum())
        raise AudioError(source, AudioProblem.non_finite, f"{bad} of {finite_CS.size} samples")
    # Several channels (stereo files, binaural headsets) are averaged: the model hears one signal.
    return samples_CS.mean(axis=0) if samples_CS.shape[0] > 1 else samples_CS[0]


def describe_source(cut: Cut) -> str:
    """The file(s) (or command) a cut's audio comes from, for messages."""
    if not cut.has_recording:
        return "<no recording>"
    return ", ".join(str(source.source) for source in cut.recording.sources)


def _first_line(error: Exception) -> str:
    """The useful line of an error: for Lhotse's multi-backend failures, the first backend's."""
    text = str(error).strip() or type(error).__name__
    backend = re.search(r"Exception #0 \([^)]*\): (?:<class '[^']*'>: )?(.*)", text)
    line = backend.group(1).strip() if backend else text.splitlines()[0]
    return line if len(line) <= 200 else line[:197] + "..."
