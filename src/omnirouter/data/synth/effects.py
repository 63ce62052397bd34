"""Acoustic shift: additive noise, reverberation and a telephone channel, applied to stored audio.

Settings are drawn per utterance from `EffectsConfig` ranges with the build's seeded generator,
so a rebuild applies the same effect with the same settings to the same utterance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from omnirouter.data.synth.config import EffectKind, EffectsConfig
from omnirouter.data.synth.sox import PEAK_DB, read_stored, run_sox, store_wav, write_stored

TELEPHONE_BAND_HZ = (300, 3400)  # the classic narrow-band telephone channel (ITU-T G.712)
TELEPHONE_RATE = 8000
REVERB_TAIL_SECONDS = 0.5  # silence appended so the reverberation tail is not cut off
# Power spectral density ∝ f^-exponent: white 0, pink 1, brown 2.
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


@dataclass(frozen=True)
class EffectSettings:
    kind: EffectKind
    noise_color: str = ""  # noise: white | pink | brown
    snr_db: float = 0.0  # noise: speech-to-noise power ratio over the whole utterance
    noise_seed: int = 0  # noise: seed of the noise samples
    reverberance: float = 0.0  # reverb, percent
    damping: float = 0.0  # reverb high-frequency damping, percent
    room_scale: float = 0.0  # reverb, percent
    pre_delay_ms: float = 0.0  # reverb

    def describe(self) -> dict[str, object]:
        """The settings that matter for this kind, for manifests and reports."""
        fields = {
            EffectKind.noise: ("noise_color", "snr_db", "noise_seed"),
            EffectKind.reverb: ("reverberance", "damping", "room_scale", "pre_delay_ms"),
            EffectKind.telephone: (),
        }[self.kind]
        values = asdict(self)
        return {"kind": self.kind.value, **{name: values[name] for name in fields}}


def draw_effect(
    kind: EffectKind, config: EffectsConfig, rng: np.random.Generator
) -> EffectSettings:
    """Settings for one utterance, drawn uniformly from the configured ranges (rounded)."""
    if kind is EffectKind.noise:
        return EffectSettings(
            kind,
            noise_color=str(rng.choice(config.noise_colors)),
            snr_db=round(float(rng.uniform(config.snr_min_db, config.snr_max_db)), 1),
            noise_seed=int(rng.integers(2**31)),
        )
    if kind is EffectKind.reverb:
        return EffectSettings(
            kind,
            reverberance=round(
                float(rng.uniform(config.reverberance_min, config.reverberance_max))
            ),
            damping=round(float(rng.uniform(config.damping_min, config.damping_max))),
            room_scale=round(float(rng.uniform(config.room_scale_min, config.room_scale_max))),
            pre_delay_ms=round(float(rng.uniform(0.0, config.pre_delay_max_ms))),
        )
    return EffectSettings(kind)


def apply_effect(settings: EffectSettings, source: Path, path: Path, sample_rate: int) -> None:
    """Write `source` with the effect applied to `path` (mono, 16-bit, `sample_rate`)."""
    if settings.kind is EffectKind.noise:
        _add_noise(settings, source, path, sample_rate)
    elif settings.kind is EffectKind.reverb:
        reverb = [
            settings.reverberance,
            settings.damping,
            settings.room_scale,
            100,
            settings.pre_delay_ms,
        ]
        effects = ["pad", "0", str(REVERB_TAIL_SECONDS), "reverb", *map(str, reverb)]
        store_wav(source, path, sample_rate, effects=effects, context=f"reverb on {source}")
    else:
        low, high = TELEPHONE_BAND_HZ
        narrow_band_output = ["-t", "wav", "-e", "u-law", "-c", "1", "-r", str(TELEPHONE_RATE), "-"]
        effects = ["sinc", f"{low}-{high}", "norm", str(PEAK_DB)]
        narrow_band = run_sox(
            [str(source), *narrow_band_output, *effects], context=f"telephone on {source}"
        )
        store_wav(narrow_band, path, sample_rate, context=f"telephone on {source}")


def colored_noise(color: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown Gaussian noise (`NOISE_EXPONENTS`), scaled to unit RMS."""
    return colored_noise_exponent(NOISE_EXPONENTS[color], num_samples, rng)


def colored_noise_exponent(
    exponent: float, num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Gaussian noise with power spectral density ∝ f^-exponent, scaled to unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.fft.rfftfreq(num_samples)
    frequencies[0] = frequencies[1] if num_samples > 1 else 1.0  # no infinite gain at DC
    spectrum *= frequencies ** (-exponent / 2)
    noise = np.fft.irfft(spectrum, n=num_samples)
    noise -= noise.mean()
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + g · noise with 10·log10(P_speech / P_{g·noise}) = snr_db (P: mean power)."""
    speech_power = float(np.mean(speech**2))
    noise_power = max(float(np.mean(noise**2)), 1e-20)
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return speech + gain * noise


def _add_noise(settings: EffectSettings, source: Path, path: Path, sample_rate: int) -> None:
    speech = read_stored(source, sample_rate)
    rng = np.random.default_rng(settings.noise_seed)
    noisy = mix_at_snr(
        speech, colored_noise(settings.noise_color, len(speech), rng), settings.snr_db
    )
    noisy *= 10 ** (PEAK_DB / 20) / max(float(np.abs(noisy).max()), 1e-12)
    write_stored(path, noisy, sample_rate)
