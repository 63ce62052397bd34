"""Multi-condition training: babble, tilted noise, simulated rooms and codecs on training audio.

Kaldi, icefall and ESPnet train on copies of their speech with noise, reverberation and channel
effects added. Here a share of every training set's utterances is stored with one such
condition, drawn when the corpus is planned (so it follows from the seed) and applied once the
clean audio of every training utterance exists (babble is made from other training
utterances). The test sets must measure generalisation: their noise signals, SNR draws, rooms
and telephone codec occur nowhere in training (`effects.py`), though some kinds are near:

| test set       | its condition                      | training's nearest condition              |
|----------------|------------------------------------|-------------------------------------------|
| test_noise     | white, pink or brown noise         | babble; noise of tilt 0.4–1.6 (pink is 1) |
| test_reverb    | sox's reverberator (freeverb)      | rooms simulated as decaying noise          |
| test_telephone | 300–3400 Hz, 8 kHz μ-law           | band limits; GSM, AMR-NB, A-law, Vorbis    |

`condition_record` lists the noise signals, rooms, band limits and codecs a set holds, written
alike for both sides, so that a test (and the report) can show which of them are shared.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from omnirouter.data.synth.config import Codec, ConditionKind, ConditionsConfig
from omnirouter.data.synth.effects import (
    NOISE_EXPONENTS,
    TELEPHONE_BAND_HZ,
    colored_noise_exponent,
    mix_at_snr,
)
from omnirouter.data.synth.sox import PEAK_DB, read_stored, run_sox, write_stored

NARROW_BAND_RATE = 8000
NARROW_BAND_HIGH_CUT_HZ = 3800.0  # below the 4 kHz Nyquist limit of the 8 kHz codecs
RIR_ONSET_SECONDS = 0.002  # the reverberant tail starts just after the direct path
# sox output options per codec (at 8 kHz for the narrow-band ones).
_CODEC_OUTPUT = {
    Codec.gsm: ["-t", "gsm"],
    Codec.amr_nb: ["-t", "amr-nb"],
    Codec.alaw: ["-t", "wav", "-e", "a-law"],
    Codec.vorbis: ["-t", "ogg", "-C", "-1"],
}


@dataclass(frozen=True)
class ConditionSettings:
    kind: ConditionKind
    snr_db: float = 0.0  # babble, noise
    seed: int = 0  # noise samples, babble offsets, the room's reverberant tail
    noise_exponent: float = 0.0  # noise: power spectral density ∝ f^-exponent
    babble_ids: tuple[str, ...] = ()  # babble: the training utterances spoken underneath
    rt60: float = 0.0  # reverb, seconds
    direct_ratio_db: float = 0.0  # reverb: direct-path energy over reverberant energy
    low_cut_hz: float = 0.0  # channel
    high_cut_hz: float = 0.0  # channel
    codec: Codec = Codec.none  # channel

    def describe(self) -> dict[str, object]:
        """The settings that matter for this kind, for manifests and the audio file's hash."""
        fields = {
            ConditionKind.babble: {
                "snr_db": self.snr_db,
                "seed": self.seed,
                "babble_ids": list(self.babble_ids),
            },
            ConditionKind.noise: {
                "snr_db": self.snr_db,
                "seed": self.seed,
                "noise_exponent": self.noise_exponent,
            },
            ConditionKind.reverb: {
                "rt60": self.rt60,
                "direct_ratio_db": self.direct_ratio_db,
                "seed": self.seed,
            },
            ConditionKind.channel: {
                "low_cut_hz": self.low_cut_hz,
                "high_cut_hz": self.high_cut_hz,
                "codec": self.codec.value,
            },
        }[self.kind]
        return {"kind": self.kind.value, **fields}


def draw_condition(
    config: ConditionsConfig, rng: np.random.Generator, others: Sequence[str]
) -> ConditionSettings | None:
    """One training utterance's condition (None: it stays clean), drawn uniformly from the
    configured ranges; babble talkers are drawn from `others` (the set's earlier utterances).
    Every value is drawn whatever the outcome, so one utterance's draws never shift another's."""
    conditioned = rng.random() < config.share
    kind = config.kinds[int(rng.integers(len(config.kinds)))] if config.kinds else None
    snr_db = round(float(rng.uniform(config.snr_min_db, config.snr_max_db)), 1)
    seed = int(rng.integers(2**31))
    exponent = round(float(rng.uniform(config.noise_exponent_min, config.noise_exponent_max)), 2)
    talkers = int(rng.integers(config.babble_talkers_min, config.babble_talkers_max + 1))
    picks = rng.choice(len(others), size=min(talkers, len(others)), replace=False)
    rt60 = round(float(rng.uniform(config.rt60_min, config.rt60_max)), 2)
    direct = round(float(rng.uniform(config.direct_ratio_min_db, config.direct_ratio_max_db)), 1)
    low = round(float(rng.uniform(config.low_cut_min_hz, config.low_cut_max_hz)))
    high = round(float(rng.uniform(config.high_cut_min_hz, config.high_cut_max_hz)))
    codec = config.codecs[int(rng.integers(len(config.codecs)))] if config.codecs else Codec.none
    too_few_talkers = len(others) < config.babble_talkers_min
    if not conditioned or kind is None or (kind is ConditionKind.babble and too_few_talkers):
        return None
    if codec.narrow_band:
        high = min(high, round(NARROW_BAND_HIGH_CUT_HZ))
    return ConditionSettings(
        kind,
        snr_db=snr_db if kind in (ConditionKind.babble, ConditionKind.noise) else 0.0,
        seed=seed if kind is not ConditionKind.channel else 0,
        noise_exponent=exponent if kind is ConditionKind.noise else 0.0,
        babble_ids=tuple(others[i] for i in sorted(picks)) if kind is ConditionKind.babble else (),
        rt60=rt60 if kind is ConditionKind.reverb else 0.0,
        direct_ratio_db=direct if kind is ConditionKind.reverb else 0.0,
        low_cut_hz=float(low) if kind is ConditionKind.channel else 0.0,
        high_cut_hz=float(high) if kind is ConditionKind.channel else 0.0,
        codec=codec if kind is ConditionKind.channel else Codec.none,
    )


def apply_condition(
    settings: ConditionSettings,
    source: Path,
    path: Path,
    sample_rate: int,
    babble_sources: Sequence[Path] = (),
) -> None:
    """Write the stored recording `source` under `settings` to `path` (peak-normalised)."""
    if settings.kind is ConditionKind.channel:
        _store_channel(settings, source, path, sample_rate)
        return
    speech = read_stored(source, sample_rate)
    rng = np.random.default_rng(settings.seed)
    if settings.kind is ConditionKind.noise:
        noise = colored_noise_exponent(settings.noise_exponent, len(speech), rng)
        changed = mix_at_snr(speech, noise, settings.snr_db)
    elif settings.kind is ConditionKind.babble:
        talkers = [read_stored(other, sample_rate) for other in babble_sources]
        changed = mix_at_snr(speech, babble(talkers, len(speech), rng), settings.snr_db)
    else:
        rir = room_impulse_response(settings.rt60, settings.direct_ratio_db, sample_rate, rng)
        changed = scipy.signal.fftconvolve(speech, rir)[: len(speech)]
    changed *= 10 ** (PEAK_DB / 20) / max(float(np.abs(changed).max()), 1e-12)
    write_stored(path, changed, sample_rate)


def babble(talkers: Sequence[np.ndarray], num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Several talkers at once, each at unit RMS, looped from a random start to `num_samples`."""
    mixture = np.zeros(num_samples)
    for talker in talkers:
        if len(talker) == 0:
            continue
        start = int(rng.integers(len(talker)))
        looped = np.resize(np.roll(talker, -start), num_samples)
        mixture += looped / max(float(np.sqrt(np.mean(looped**2))), 1e-12)
    return mixture


def room_impulse_response(
    rt60: float, direct_ratio_db: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A room as a unit direct path followed by Gaussian noise decaying by 60 dB in `rt60`
    seconds (the statistical model of late reverberation), scaled so that the direct path's
    energy over the tail's is `direct_ratio_db`."""
    length = round(rt60 * sample_rate)
    onset = round(RIR_ONSET_SECONDS * sample_rate)
    time_s = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-3 * np.log(10) * time_s / rt60)
    tail *= np.sqrt(10 ** (-direct_ratio_db / 10) / max(float(np.sum(tail**2)), 1e-20))
    response = np.zeros(onset + length)
    response[0] = 1.0
    response[onset:] += tail
    return response


def _store_channel(settings: ConditionSettings, source: Path, path: Path, sample_rate: int) -> None:
    band = ["sinc", f"{settings.low_cut_hz:g}-{settings.high_cut_hz:g}"]
    context = f"{settings.codec.value} channel on {source}"
    if settings.codec is Codec.none:
        audio = run_sox([str(source), "-t", "wav", "-b", "16", "-", *band], context=context)
    else:
        rate = NARROW_BAND_RATE if settings.codec.narrow_band else sample_rate
        coded = run_sox(
            [str(source), *_CODEC_OUTPUT[settings.codec], "-c", "1", "-r", str(rate), "-", *band],
            context=context,
        )
        audio = run_sox(
            ["-t", _CODEC_OUTPUT[settings.codec][1], "-", "-t", "wav", "-b", "16", "-"],
            input_bytes=coded,
            context=context,
        )
    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float64")
    if rate != sample_rate:
        samples = scipy.signal.resample_poly(samples, sample_rate, rate)
    samples *= 10 ** (PEAK_DB / 20) / max(float(np.abs(samples).max()), 1e-12)
    write_stored(path, samples, sample_rate)


def condition_record(kind_and_settings: Sequence[dict[str, object]]) -> dict[str, list[str]]:
    """The noise signals, rooms, band limits and codecs of a set's utterances, each as one
    string, from the `describe()` of their conditions (training) or effects (test sets). A noise
    signal is written alike for both (its spectral exponent and seed), and so is a band limit,
    so that the same signal or band on both sides shows up in the intersection that a test and
    the report take; the rooms of the two reverberators are of different kinds by construction,
    and a codec is named by its format."""
    noise, rooms, bands, codecs = set(), set(), set(), set()
    for described in kind_and_settings:
        kind = described["kind"]
        if kind == "noise":
            exponent = described.get("noise_exponent")
            if exponent is None:  # a test set's effect: white, pink or brown
                exponent = NOISE_EXPONENTS[str(described["noise_color"])]
            seed = described.get("seed", described.get("noise_seed"))
            noise.add(f"noise f^-{float(exponent):g}, seed {seed}")  # type: ignore[arg-type]
        elif kind == "babble":
            noise.add(f"babble of {len(described['babble_ids'])} talkers, seed {described['seed']}")
        elif kind == "reverb" and "reverberance" in described:
            settings = ("reverberance", "damping", "room_scale", "pre_delay_ms")
            rooms.add("sox reverb " + " ".join(f"{name}={described[name]}" for name in settings))
        elif kind == "reverb":
            rooms.add(
                f"simulated room rt60={described['rt60']} "
                f"direct={described['direct_ratio_db']} seed {described['seed']}"
            )
        elif kind == "telephone":
            low, high = TELEPHONE_BAND_HZ
            bands.add(f"{low:g}-{high:g} Hz")
            codecs.add("mulaw")
        elif kind == "channel":
            bands.add(f"{described['low_cut_hz']:g}-{described['high_cut_hz']:g} Hz")
            if described["codec"] != Codec.none.value:
                codecs.add(str(described["codec"]))
    return {
        "noise_signals": sorted(noise),
        "rooms": sorted(rooms),
        "bands": sorted(bands),
        "codecs": sorted(codecs),
    }
