"""Transcribing audio files or arrays of any length with a trained model.

A voice-activity detector (`vad.py`) finds the stretches of speech; only those are decoded, so
silence and steady noise give no text, and a long recording is cut at its pauses. A stretch
longer than `chunk_seconds` is cut further into chunks, each cut placed at the quietest 20 ms
within the last `boundary_search_seconds` of its window so that it rarely falls inside a word
(`chunk_spans`). Pieces are decoded one at a time and their texts joined with spaces, so
features, activations and attention (quadratic in length) are bounded by one chunk whatever the
length of the recording. The decoded samples themselves are held whole (float32, about 230 MB
per hour of 16 kHz audio). Without the detector (`vad=None`, `transcribe --no-vad`) the whole
recording is decoded in such chunks, speech or not.

    transcriber = Transcriber.from_pretrained("exp/omni", device="cpu")
    print(transcriber.transcribe("talk.mp3").text)

Shape legend: T frames, F feature bins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from omnirouter.data.audio import SAMPLE_RATE, AudioError, load_audio
from omnirouter.data.quiet import quietest_point
from omnirouter.evaluate.model_file import load_inference_model
from omnirouter.evaluate.recognize import (
    decode_features,
    inference_context,
    utterance_log_probs,
)
from omnirouter.evaluate.vad import DEFAULT_VAD, VAD_SAMPLE_RATE, VadConfig, speech_spans
from omnirouter.model.ctc_model import CtcModel

if TYPE_CHECKING:
    from omnirouter.data.features import FeatureConfig
    from omnirouter.data.tokenizer import Tokenizer
    from omnirouter.evaluate.beam import BeamDecoder, BeamRequest

DEFAULT_CHUNK_SECONDS = 30.0
_QUIET_FRAME_SECONDS = 0.02  # granularity of the search for a quiet cut
# Shorter audio is not transcribed, with a warning: a short word lasts about a quarter second
# (and the detector drops shorter bursts).
MIN_AUDIO_SECONDS = 0.25


class TranscriptionError(ValueError):
    """Input that cannot be transcribed; the message names the source and the problem."""


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the audio
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str  # the segments' texts joined with spaces
    # One per stretch of speech decoded, in order (with `vad=None`: chunks covering the audio).
    segments: tuple[Segment, ...]
    duration: float  # seconds
    source: str  # the file, or "<array>"
    warnings: tuple[str, ...] = ()  # about input that was read but could not be transcribed

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "text": self.text,
            "duration": self.duration,
            "segments": [vars(segment) for segment in self.segments],
            "warnings": list(self.warnings),
        }


def chunk_spans(
    samples: np.ndarray,
    sample_rate: int,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    boundary_search_seconds: float = 2.0,
) -> Iterator[range]:
    """Consecutive sample ranges of at most `chunk_seconds` that together cover `samples`.

    A cut goes at the centre of the lowest-energy 20 ms frame within the last
    `boundary_search_seconds` (at most a quarter of a chunk) of each full window.
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    chunk = max(1, round(chunk_seconds * sample_rate))
    frame = max(1, round(_QUIET_FRAME_SECONDS * sample_rate))
    search = min(round(boundary_search_seconds * sample_rate), chunk // 4) // frame * frame
    start = 0
    while len(samples) - start > chunk:
        end = start + chunk
        if search >= frame:
            end = quietest_point(samples, end - search, end, frame)
        yield range(start, end)
        start = end
    if start < len(samples):
        yield range(start, len(samples))


class Transcriber:
    """A model, its tokenizer and feature settings, ready to turn audio into text."""

    def __init__(
        self,
        model: CtcModel,
        tokenizer: Tokenizer,
        feature_config: FeatureConfig,
        device: torch.device | str = "cpu",
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        vad: VadConfig | None = DEFAULT_VAD,
        beam: BeamDecoder | None = None,
    ) -> None:
        if chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.feature_config = feature_config
        self.chunk_seconds = chunk_seconds
        self.vad = vad  # None: decode the whole recording, speech or not
        self.beam = beam  # None: greedy decoding; else beam search with an LM (`beam.py`)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: torch.device | str = "cpu",
        chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
        vad: VadConfig | None = DEFAULT_VAD,
        beam: BeamRequest | None = None,
    ) -> Transcriber:
        """From an experiment directory (its best checkpoint, else its last), a checkpoint, or
        a directory written by `omnirouter export`."""
        loaded = load_inference_model(path, device=str(device))
        decoder = None
        if beam is not None:
            from omnirouter.evaluate.beam import request_decoder

            decoder = request_decoder(
                beam, loaded.tokenizer, loaded.data_config.corpus_dir, loaded.experiment_dir
            )
        return cls(
            loaded.model,
            loaded.tokenizer,
            loaded.data_config.features,
            device,
            chunk_seconds,
            vad,
            decoder,
        )

    def transcribe(
        self, audio: str | Path | np.ndarray, sample_rate: int = SAMPLE_RATE
    ) -> Transcript:
        """Text of an audio file (any format and rate) or of an array of samples.

        An array is 1-D, or (channels, samples) whose channels are averaged; `sample_rate`
        applies to arrays only. Raises `AudioError` (files) or `TranscriptionError` (arrays)
        naming the source when there is nothing to transcribe.
        """
        if isinstance(audio, (str, Path)):
            source = str(audio)
            samples = load_audio(audio).samples
        else:
            source = "<array>"
            samples = _prepare_array(audio, sample_rate)
        duration = len(samples) / SAMPLE_RATE
        if duration < MIN_AUDIO_SECONDS:
            warning = (
                f"{source}: {duration:.3g} s of audio is too short to transcribe "
                f"(less than {MIN_AUDIO_SECONDS} s, shorter than a word)"
            )
            return Transcript("", (), duration, source, (warning,))
        segments = tuple(self._transcribe_span(samples, span) for span in self.spans(samples))
        text = " ".join(segment.text for segment in segments if segment.text)
        return Transcript(text, segments, duration, source)

    def spans(self, samples: np.ndarray) -> list[range]:
        """The sample ranges of 16 kHz `samples` that are decoded, each at most a chunk long:
        the stretches of speech, or with `vad=None` chunks covering everything."""
        if self.vad is None:
            return list(chunk_spans(samples, SAMPLE_RATE, self.chunk_seconds))
        assert SAMPLE_RATE == VAD_SAMPLE_RATE
        return [
            range(speech.start + piece.start, speech.start + piece.stop)
            for speech in speech_spans(samples, self.vad)
            for piece in chunk_spans(
                samples[speech.start : speech.stop], SAMPLE_RATE, self.chunk_seconds
            )
        ]

    def _transcribe_span(self, samples: np.ndarray, span: range) -> Segment:
        from omnirouter.data.features import compute_features

        features_TF = compute_features(
            samples[span.start : span.stop], SAMPLE_RATE, self.feature_config
        )
        text = ""
        if features_TF.shape[0] > 0:  # a sliver shorter than one analysis window has no frames
            features_BTF = features_TF.unsqueeze(0).to(self.device)
            feature_lens_B = torch.tensor([features_TF.shape[0]], device=self.device)
            with inference_context(self.model, self.device):
                decoded = decode_features(self.model, features_BTF, feature_lens_B)
            if self.beam is None:
                text = self.tokenizer.decode(decoded.token_ids[0])
            else:
                text = self.beam.decode(utterance_log_probs(decoded.output), processes=1)[0]
        return Segment(span.start / SAMPLE_RATE, span.stop / SAMPLE_RATE, text)


def _prepare_array(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at SAMPLE_RATE, resampled by the same resampler as audio files."""
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.ndim != 1:
        raise TranscriptionError(
            f"<array>: expected samples of shape (samples,) or (channels, samples), "
            f"got {audio.shape}"
        )
    if samples.size == 0:
        raise TranscriptionError("<array>: zero-length audio")
    if sample_rate <= 0:
        raise TranscriptionError(f"<array>: sample rate must be positive, got {sample_rate}")
    if sample_rate != SAMPLE_RATE:
        from lhotse.augmentation import Resample

        samples = Resample(sample_rate, SAMPLE_RATE)(samples[np.newaxis], sample_rate)[0]
    return samples


@dataclass(frozen=True)
class FileResult:
    path: str
    transcript: Transcript | None  # None when the file could not be transcribed
    error: str = ""  # what went wrong, naming the file


def transcribe_files(transcriber: Transcriber, paths: Iterable[str | Path]) -> list[FileResult]:
    """Every file in turn; a file that cannot be read is reported and the others still run."""
    results = []
    for path in paths:
        try:
            results.append(FileResult(str(path), transcriber.transcribe(Path(path))))
        except (AudioError, TranscriptionError) as error:
            results.append(FileResult(str(path), None, str(error)))
    return results
