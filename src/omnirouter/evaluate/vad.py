"""Where the speech is: voice-activity detection before transcription.

A CTC model run over a pause writes whatever its training data never taught it to leave out
(five seconds of zeros came out as "gogo"), and a fixed cut may fall inside a word. So
`transcribe` decodes only the stretches this module finds, and cuts a recording at its pauses.

The detector is Silero VAD (github.com/snakers4/silero-vad, MIT licence; PyPI `silero-vad`):
a small neural network, shipped inside the wheel, that gives every 32 ms window of 16 kHz audio
a speech probability. We run its ONNX "sequence" model (many windows per call, the same
probabilities as the streaming model) on the CPU with onnxruntime: no download, no GPU.
Its `get_speech_timestamps` turns the probabilities into stretches: speech starts above
`threshold` and ends below `threshold - 0.15` (hysteresis) once that lasts
`min_silence_seconds`; stretches shorter than `min_speech_seconds` are dropped; each is padded
by `padding_seconds`. Unlike a frame-energy detector, it tells steady noise (a hum, a noise
floor) from speech at any level. Its probabilities trail the audio by a few windows, so a
stretch ends up to half a second after the speech does: harmless silence, but too coarse to
place a cut inside continuous speech, which `transcribe.chunk_spans` does by energy instead.

Shape legend: S samples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

VAD_SAMPLE_RATE = 16000  # the rate the detector runs at; `transcribe` resamples to it anyway


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5  # speech probability from which a window is speech (Silero's default)
    min_speech_seconds: float = 0.25  # shorter bursts (clicks, a cough) are dropped
    min_silence_seconds: float = 0.3  # a stretch of speech ends at a pause this long
    padding_seconds: float = 0.2  # kept on each side of a stretch: soft word onsets and tails

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"vad threshold must be in (0, 1), got {self.threshold}")
        if min(self.min_speech_seconds, self.min_silence_seconds, self.padding_seconds) < 0:
            raise ValueError("vad durations must be >= 0")


DEFAULT_VAD = VadConfig()


def speech_spans(samples_S: np.ndarray, config: VadConfig = DEFAULT_VAD) -> list[range]:
    """Sample ranges of the stretches of speech in 16 kHz `samples_S`, in order, disjoint."""
    audio_S = np.ascontiguousarray(samples_S, dtype=np.float32)
    if audio_S.size == 0:
        return []
    model, speech_timestamps = _silero()
    stretches = speech_timestamps(
        audio_S,
        model,
        threshold=config.threshold,
        sampling_rate=VAD_SAMPLE_RATE,
        min_speech_duration_ms=round(1000 * config.min_speech_seconds),
        min_silence_duration_ms=round(1000 * config.min_silence_seconds),
        speech_pad_ms=round(1000 * config.padding_seconds),
    )
    return [range(int(stretch["start"]), int(stretch["end"])) for stretch in stretches]


@functools.cache
def _silero() -> tuple[Any, Callable[..., list[dict[str, int]]]]:
    """Silero's sequence model and its `get_speech_timestamps`, loaded once per process.

    Imported here, not at the top: importing `silero_vad` calls `torch.set_num_threads(1)` (for
    its torch model, which we do not use), so the caller's setting is put back afterwards.
    """
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
        from silero_vad.sequence_vad import get_speech_timestamps_sequence

        return load_silero_vad(sequence=True), get_speech_timestamps_sequence
    finally:
        torch.set_num_threads(threads)
