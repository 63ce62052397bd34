"""Per-utterance voice style of training utterances: one engine voice, many speakers.

An accent or voice of an engine speaks every utterance with the same timbre and melody; a model
trained on a few dozen of them learns those voices rather than speech. For training sets the
plan therefore draws, per utterance, what the engines let us vary besides rate and base pitch
(espeak-ng's pitch range and word gap, flite's mean F0), a speed-perturbation factor that sox
applies to the spoken audio (resampling: pitch, formants and tempo scale together, which is how
Kaldi perturbs speakers), and a timbre shift (sox `pitch`: pitch and formants move, the duration
stays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnirouter.data.synth.config import Engine, ProsodyConfig


@dataclass(frozen=True)
class VoiceStyle:
    pitch_range: int | None = None  # espeak-ng: SSML prosody range (50 = its default)
    word_gap: int | None = None  # espeak-ng: pause between words, units of 10 ms
    f0_mean: float | None = None  # flite: int_f0_target_mean, Hz
    speed_perturbation: float = 1.0  # sox `speed` factor on the spoken audio (1: none)
    timbre_cents: int = 0  # sox `pitch` shift of the spoken audio, cents (0: none)

    @property
    def changes_audio(self) -> bool:
        """Whether sox changes the engine's audio (speed perturbation or timbre shift)."""
        return self.speed_perturbation != 1.0 or self.timbre_cents != 0

    def sox_effects(self) -> list[str]:
        effects = ["speed", f"{self.speed_perturbation:g}"] if self.speed_perturbation != 1 else []
        return effects + (["pitch", str(self.timbre_cents)] if self.timbre_cents else [])

    def describe(self) -> dict[str, object]:
        """The settings in use, for manifests and the audio file's hash."""
        described: dict[str, object] = {
            name: value
            for name, value in (
                ("pitch_range", self.pitch_range),
                ("word_gap", self.word_gap),
                ("f0_mean", self.f0_mean),
            )
            if value is not None
        }
        if self.speed_perturbation != 1.0:
            described["speed_perturbation"] = self.speed_perturbation
        if self.timbre_cents:
            described["timbre_cents"] = self.timbre_cents
        return described


def draw_style(config: ProsodyConfig, engine: Engine, rng: np.random.Generator) -> VoiceStyle:
    """One training utterance's style. Every value is drawn whatever the engine, so that one
    utterance's draws never shift another's; those the engine has no knob for are dropped."""
    pitch_range = int(rng.integers(config.pitch_range_min, config.pitch_range_max + 1))
    word_gap = int(rng.integers(0, config.word_gap_max + 1))
    f0_mean = round(float(rng.uniform(config.flite_f0_min, config.flite_f0_max)))
    perturbed = rng.random() < config.speed_perturbation_share
    factor = rng.uniform(config.speed_perturbation_min, config.speed_perturbation_max)
    # Drawn last, and only when configured, so that a config without timbre shifts draws as
    # it did before they existed (and reuses the audio built then).
    shifted, cents = False, 0
    if config.timbre_share > 0:
        shifted = rng.random() < config.timbre_share
        cents = int(rng.integers(config.timbre_min_cents, config.timbre_max_cents + 1))
    return VoiceStyle(
        pitch_range=pitch_range if engine is Engine.espeak else None,
        word_gap=word_gap if engine is Engine.espeak else None,
        f0_mean=float(f0_mean) if engine is Engine.flite else None,
        speed_perturbation=round(float(factor), 3) if perturbed else 1.0,
        timbre_cents=cents if shifted else 0,
    )
