"""Which utterances are usable, and why not: one verdict shared by prepare time and training.

At prepare time a problem is an error (or, when asked, a counted drop); while training the
same verdict skips the utterance and counts it under its `SkipReason`. Nothing is dropped
without being counted.

The speech-rate filter is the paper's pseudo-label check (§V-A, after slimIPL): a
sequence-to-sequence labeller that loops emits far more words than the audio can hold, one that
hallucinates on silence far fewer; both show as an implausible number of words per second
(about 3 is expected).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from lhotse.cut import Cut

from omnirouter.data.audio import AudioProblem
from omnirouter.data.manifests import cut_text
from omnirouter.data.tokenizer import Tokenizer, normalize_transcript


class SkipReason(str, Enum):
    too_short = "too_short"  # shorter than the configured minimum duration
    too_long = "too_long"  # longer than the configured maximum duration
    empty_transcript = "empty_transcript"  # nothing left after normalisation
    too_fast = "too_fast"  # more words per second than plausible (a looping pseudo-label)
    too_slow = "too_slow"  # fewer words per second than plausible (words missing)
    untokenizable = "untokenizable"  # characters the tokenizer has no piece for
    missing_audio = "missing_audio"
    unreadable_audio = "unreadable_audio"
    empty_audio = "empty_audio"
    non_finite_audio = "non_finite_audio"  # NaN or infinite samples (or stored features)


AUDIO_SKIP_REASONS: dict[AudioProblem, SkipReason] = {
    AudioProblem.missing: SkipReason.missing_audio,
    AudioProblem.directory: SkipReason.missing_audio,
    AudioProblem.unreadable: SkipReason.unreadable_audio,
    AudioProblem.empty: SkipReason.empty_audio,
    AudioProblem.non_finite: SkipReason.non_finite_audio,
}


@dataclass(frozen=True)
class SpeechRateFilterConfig:
    enabled: bool = False  # on for pseudo-labelled training data; never applied to test sets
    min_words_per_second: float = 0.5  # below: words are missing (or the audio is mostly silence)
    max_words_per_second: float = 6.0  # above: the label loops; twice the expected ~3 words/s

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_words_per_second < self.max_words_per_second:
            raise ValueError(
                "data.speech_rate: need 0 <= min_words_per_second < max_words_per_second, got "
                f"{self.min_words_per_second} and {self.max_words_per_second}"
            )


@dataclass(frozen=True)
class UtteranceLimits:
    """What a training utterance must satisfy before its audio is read."""

    min_seconds: float = 0.0
    max_seconds: float = float("inf")
    speech_rate: SpeechRateFilterConfig = SpeechRateFilterConfig()


def words_per_second(text: str, duration: float) -> float:
    words = len(normalize_transcript(text).split())
    return words / duration if duration > 0 else float("inf")


def speech_rate_problem(
    text: str, duration: float, config: SpeechRateFilterConfig
) -> SkipReason | None:
    if not config.enabled:
        return None
    rate = words_per_second(text, duration)
    if rate > config.max_words_per_second:
        return SkipReason.too_fast
    if rate < config.min_words_per_second:
        return SkipReason.too_slow
    return None


def utterance_problem(
    cut: Cut, limits: UtteranceLimits, tokenizer: Tokenizer | None = None
) -> SkipReason | None:
    """Why this utterance cannot be used for training, judged from its manifest entry alone."""
    if cut.duration < limits.min_seconds:
        return SkipReason.too_short
    if cut.duration > limits.max_seconds:
        return SkipReason.too_long
    text = cut_text(cut)
    if not normalize_transcript(text):
        return SkipReason.empty_transcript
    if tokenizer is not None and tokenizer.unknown_characters(text):
        return SkipReason.untokenizable
    return speech_rate_problem(text, cut.duration, limits.speech_rate)
