"""Pauses in training utterances: leading, trailing and inner silence over a low noise floor.

Engines speak a sentence with little or no silence around it, and a model that never hears a
pause while training transcribes one as words ("gogo" for five seconds of zeros). The settings
are drawn per utterance when the corpus is planned, from a generator of the set's own (so they
follow from the corpus seed), and applied to the engine's audio before it is stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from omnirouter.data.quiet import quietest_point
from omnirouter.data.synth.config import PauseConfig
from omnirouter.data.synth.sox import read_stored, write_stored

# An inner pause is drawn at a point in the middle half of the speech, then moved to the
# quietest 20 ms within half a second of it (most often a gap between words).
INNER_RANGE = (0.25, 0.75)
INNER_SEARCH_SECONDS = 0.5
QUIET_FRAME_SECONDS = 0.02


@dataclass(frozen=True)
class PauseSettings:
    leading_seconds: float
    trailing_seconds: float
    inner_seconds: float  # 0: no pause inside
    inner_position: float  # where the inner pause is sought, as a share of the speech's length
    noise_floor_db: float  # RMS of the white noise under the whole utterance, dB re full scale
    noise_seed: int

    def describe(self) -> dict[str, object]:
        """The settings, for manifests and the audio file's hash."""
        return asdict(self)


def draw_pauses(config: PauseConfig, rng: np.random.Generator) -> PauseSettings:
    """One utterance's pauses, drawn uniformly from the configured ranges (rounded to 10 ms).

    Every value is drawn whether it is used or not, so one utterance's draws never shift
    another's."""
    leading = rng.uniform(config.leading_min, config.leading_max)
    trailing = rng.uniform(config.trailing_min, config.trailing_max)
    has_inner = rng.random() < config.inner_probability
    inner = rng.uniform(config.inner_min, config.inner_max)
    position = rng.uniform(*INNER_RANGE)
    floor_db = rng.uniform(config.noise_floor_min_db, config.noise_floor_max_db)
    return PauseSettings(
        leading_seconds=round(float(leading), 2),
        trailing_seconds=round(float(trailing), 2),
        inner_seconds=round(float(inner), 2) if has_inner else 0.0,
        inner_position=round(float(position), 3),
        noise_floor_db=round(float(floor_db), 1),
        noise_seed=int(rng.integers(2**31)),
    )


def add_pauses(speech_S: np.ndarray, sample_rate: int, settings: PauseSettings) -> np.ndarray:
    """`speech_S` with the pauses inserted and the noise floor added (float64).

    The output starts with `leading_seconds` and ends with `trailing_seconds` of noise floor
    alone, on top of whatever silence the engine left at the edges."""

    def silence(seconds: float) -> np.ndarray:
        return np.zeros(round(seconds * sample_rate))

    speech_S = np.asarray(speech_S, dtype=np.float64)
    if settings.inner_seconds > 0:
        search = round(INNER_SEARCH_SECONDS * sample_rate)
        centre = round(settings.inner_position * len(speech_S))
        frame = round(QUIET_FRAME_SECONDS * sample_rate)
        cut = quietest_point(speech_S, centre - search, centre + search, frame)
        speech_S = np.concatenate([speech_S[:cut], silence(settings.inner_seconds), speech_S[cut:]])
    audio_S = np.concatenate(
        [silence(settings.leading_seconds), speech_S, silence(settings.trailing_seconds)]
    )
    noise_S = np.random.default_rng(settings.noise_seed).standard_normal(len(audio_S))
    return audio_S + 10 ** (settings.noise_floor_db / 20) * noise_S


def store_with_pauses(source: Path, path: Path, settings: PauseSettings, sample_rate: int) -> None:
    """Write the stored recording `source` with its pauses to `path` (mono, 16-bit)."""
    speech_S = read_stored(source, sample_rate)
    write_stored(path, np.clip(add_pauses(speech_S, sample_rate, settings), -1.0, 1.0), sample_rate)
