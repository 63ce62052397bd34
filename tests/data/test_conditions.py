"""Multi-condition training and voice styles: seeded draws, and what each condition does to audio."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy import signal

from omnirouter.data.synth.conditions import (
    ConditionSettings,
    apply_condition,
    babble,
    condition_record,
    draw_condition,
    room_impulse_response,
)
from omnirouter.data.synth.config import (
    Codec,
    ConditionKind,
    ConditionsConfig,
    Engine,
    ProsodyConfig,
)
from omnirouter.data.synth.effects import colored_noise_exponent
from omnirouter.data.synth.sox import store_wav
from omnirouter.data.synth.style import VoiceStyle, draw_style
from tests.data.conftest import measured_snr_db

RATE = 16000
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
OTHERS = [f"train-{index:05d}" for index in range(40)]


def _draws(seed: int, count: int = 300) -> list[ConditionSettings | None]:
    rng = np.random.default_rng(seed)
    return [draw_condition(ConditionsConfig(), rng, OTHERS) for _ in range(count)]


def test_condition_draws_are_seeded_and_within_the_ranges() -> None:
    config = ConditionsConfig()
    draws = _draws(5)
    assert draws == _draws(5) and draws != _draws(6)
    conditioned = [draw for draw in draws if draw is not None]
    assert abs(len(conditioned) / len(draws) - config.share) < 0.1
    assert {draw.kind for draw in conditioned} == set(ConditionKind)
    for draw in conditioned:
        if draw.kind in (ConditionKind.babble, ConditionKind.noise):
            assert config.snr_min_db <= draw.snr_db <= config.snr_max_db
        if draw.kind is ConditionKind.babble:
            assert config.babble_talkers_min <= len(draw.babble_ids) <= config.babble_talkers_max
            assert set(draw.babble_ids) <= set(OTHERS)
        if draw.kind is ConditionKind.noise:
            assert config.noise_exponent_min <= draw.noise_exponent <= config.noise_exponent_max
        if draw.kind is ConditionKind.reverb:
            assert config.rt60_min <= draw.rt60 <= config.rt60_max
        if draw.kind is ConditionKind.channel:
            assert config.low_cut_min_hz <= draw.low_cut_hz <= config.low_cut_max_hz
            ceiling = 3800 if draw.codec.narrow_band else config.high_cut_max_hz
            assert config.high_cut_min_hz <= draw.high_cut_hz <= ceiling


def test_no_condition_when_disabled_by_share_and_no_babble_without_talkers() -> None:
    rng = np.random.default_rng(0)
    assert all(draw_condition(ConditionsConfig(share=0.0), rng, OTHERS) is None for _ in range(50))
    only_babble = ConditionsConfig(share=1.0, kinds=[ConditionKind.babble])
    assert draw_condition(only_babble, rng, []) is None
    # Fewer earlier utterances than babble_talkers_min (3): no babble of one or two talkers.
    assert draw_condition(only_babble, rng, OTHERS[:2]) is None
    assert len(draw_condition(only_babble, rng, OTHERS[:3]).babble_ids) == 3


def test_style_draws_are_seeded_and_use_only_the_engines_knobs() -> None:
    config = ProsodyConfig()

    def draws(seed: int, engine: Engine) -> list:
        rng = np.random.default_rng(seed)
        return [draw_style(config, engine, rng) for _ in range(200)]

    espeak = draws(1, Engine.espeak)
    assert espeak == draws(1, Engine.espeak) and espeak != draws(2, Engine.espeak)
    assert all(style.f0_mean is None for style in espeak)
    assert {style.word_gap for style in espeak} == set(range(config.word_gap_max + 1))
    flite = draws(1, Engine.flite)
    assert all(style.pitch_range is None and style.word_gap is None for style in flite)
    assert all(config.flite_f0_min <= style.f0_mean <= config.flite_f0_max for style in flite)
    # The same draws whatever the engine: only the knobs kept differ.
    assert [s.speed_perturbation for s in espeak] == [s.speed_perturbation for s in flite]
    perturbed = [s.speed_perturbation for s in espeak if s.speed_perturbation != 1.0]
    assert abs(len(perturbed) / len(espeak) - config.speed_perturbation_share) < 0.1
    assert all(0.9 <= factor <= 1.1 for factor in perturbed)
    assert draws(1, Engine.festival)[0].describe() in ({}, {"speed_perturbation": perturbed[0]})


@pytest.mark.parametrize(("rt60", "direct_db"), [(0.3, 0.0), (0.8, 6.0)])
def test_room_impulse_response_decays_in_rt60_with_the_direct_ratio(
    rt60: float, direct_db: float
) -> None:
    response = room_impulse_response(rt60, direct_db, RATE, np.random.default_rng(0))
    assert response[0] == 1.0
    tail = response[1:]
    assert 10 * np.log10(1.0 / np.sum(tail**2)) == pytest.approx(direct_db, abs=1e-6)
    # Schroeder's backward integration: the energy decay curve falls 60 dB in rt60 seconds,
    # read from its slope between -5 and -25 dB (the usual T20 estimate).
    decay = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail**2))
    times = np.arange(len(decay)) / RATE
    fit = (decay < -5) & (decay > -25)
    slope = np.polyfit(times[fit], decay[fit], 1)[0]
    assert -60 / slope == pytest.approx(rt60, rel=0.1)


def test_babble_loops_each_talker_at_unit_rms() -> None:
    rng = np.random.default_rng(0)
    short, long = rng.standard_normal(1000) * 5, rng.standard_normal(30000) * 0.1
    mixture = babble([short, long], 20000, np.random.default_rng(1))
    assert len(mixture) == 20000
    # Two independent unit-RMS talkers: the mixture's power is about 2.
    assert np.mean(mixture**2) == pytest.approx(2.0, rel=0.1)


def test_tilted_noise_has_the_drawn_slope() -> None:
    noise = colored_noise_exponent(0.7, 2**16, np.random.default_rng(2))
    frequencies, power = signal.welch(noise, fs=RATE, nperseg=4096)
    band = (frequencies > 50) & (frequencies < 5000)
    assert np.polyfit(np.log10(frequencies[band]), np.log10(power[band]), 1)[0] == pytest.approx(
        -0.7, abs=0.15
    )


def _speech_like(tmp_path: Path, name: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    envelope = np.repeat(rng.uniform(0.05, 0.5, 20), RATE // 10)
    path = tmp_path / name
    soundfile.write(path, envelope * rng.standard_normal(len(envelope)) * 0.5, RATE, "PCM_16")
    return path


@needs_sox
def test_babble_condition_mixes_the_talkers_at_the_drawn_snr(tmp_path: Path) -> None:
    source = _speech_like(tmp_path, "speech.wav", 0)
    talkers = [_speech_like(tmp_path, f"talker{i}.wav", i + 1) for i in range(3)]
    settings = ConditionSettings(ConditionKind.babble, snr_db=6.0, seed=4, babble_ids=("a", "b"))
    apply_condition(settings, source, tmp_path / "out.wav", RATE, talkers)
    clean, _ = soundfile.read(source)
    mixed, rate = soundfile.read(tmp_path / "out.wav")
    assert rate == RATE and mixed.shape == clean.shape
    assert measured_snr_db(mixed, clean) == pytest.approx(6.0, abs=0.5)


@needs_sox
@pytest.mark.parametrize("codec", list(Codec))
def test_channel_condition_keeps_the_band_and_the_length(tmp_path: Path, codec: Codec) -> None:
    source = _speech_like(tmp_path, "speech.wav", 0)
    high = 3400.0 if codec.narrow_band else 5000.0
    settings = ConditionSettings(
        ConditionKind.channel, low_cut_hz=300.0, high_cut_hz=high, codec=codec
    )
    apply_condition(settings, source, tmp_path / "out.wav", RATE)
    coded, rate = soundfile.read(tmp_path / "out.wav")
    clean, _ = soundfile.read(source)
    assert rate == RATE
    assert abs(len(coded) - len(clean)) < 0.05 * RATE  # codecs pad at most a frame or two
    power = np.abs(np.fft.rfft(coded)) ** 2
    frequencies = np.fft.rfftfreq(len(coded), 1 / RATE)
    assert power[frequencies > high + 400].sum() / power.sum() < 0.02
    assert power[frequencies < 150].sum() / power.sum() < 0.02


def test_condition_record_names_signals_rooms_and_codecs() -> None:
    training = [
        ConditionSettings(ConditionKind.noise, snr_db=3.0, seed=7, noise_exponent=0.9).describe(),
        ConditionSettings(ConditionKind.reverb, rt60=0.4, direct_ratio_db=2.0, seed=8).describe(),
        ConditionSettings(
            ConditionKind.channel, low_cut_hz=100.0, high_cut_hz=3000.0, codec=Codec.gsm
        ).describe(),
        ConditionSettings(
            ConditionKind.channel, low_cut_hz=100.0, high_cut_hz=3000.0, codec=Codec.none
        ).describe(),
    ]
    record = condition_record(training)
    assert record == {
        "noise_signals": ["noise f^-0.9, seed 7"],
        "rooms": ["simulated room rt60=0.4 direct=2.0 seed 8"],
        "bands": ["100-3000 Hz"],
        "codecs": ["gsm"],
    }
    telephone = condition_record([{"kind": "telephone"}])
    assert telephone["codecs"] == ["mulaw"] and telephone["bands"] == ["300-3400 Hz"]
    # A test set's noise is written as training's is: the same signal on both sides shows.
    pink = {"kind": "noise", "noise_color": "pink", "snr_db": 9.0, "noise_seed": 7}
    same = ConditionSettings(ConditionKind.noise, snr_db=3.0, seed=7, noise_exponent=1.0)
    assert (
        condition_record([pink])["noise_signals"]
        == condition_record([same.describe()])["noise_signals"]
        == ["noise f^-1, seed 7"]
    )
    band = ConditionSettings(ConditionKind.channel, low_cut_hz=300.0, high_cut_hz=3400.0)
    assert condition_record([band.describe()])["bands"] == telephone["bands"]


def test_timbre_shifts_are_drawn_only_when_configured() -> None:
    def draws(config: ProsodyConfig) -> list:
        rng = np.random.default_rng(4)
        return [draw_style(config, Engine.flite, rng) for _ in range(200)]

    plain, shifted = draws(ProsodyConfig()), draws(ProsodyConfig(timbre_share=0.5))
    assert all(style.timbre_cents == 0 for style in plain)
    cents = [style.timbre_cents for style in shifted if style.timbre_cents]
    assert abs(len(cents) / len(shifted) - 0.5) < 0.1
    assert all(-200 <= value <= 450 for value in cents)


@needs_sox
@pytest.mark.parametrize(
    ("style", "frequency", "duration"),
    [
        (VoiceStyle(timbre_cents=1200), 400.0, 1.0),  # an octave up, the same length
        (VoiceStyle(speed_perturbation=1.25), 250.0, 0.8),  # faster: higher and shorter
    ],
)
def test_style_sox_effects_move_pitch_and_keep_or_scale_time(
    tmp_path: Path, style: VoiceStyle, frequency: float, duration: float
) -> None:
    time = np.arange(RATE) / RATE
    source = tmp_path / "tone.wav"
    soundfile.write(source, 0.5 * np.sin(2 * np.pi * 200 * time), RATE, "PCM_16")
    out = tmp_path / "styled.wav"
    store_wav(source, out, RATE, effects=[*style.sox_effects(), "rate", str(RATE)])
    styled, rate = soundfile.read(out)
    assert rate == RATE and len(styled) / RATE == pytest.approx(duration, abs=0.03)
    spectrum = np.abs(np.fft.rfft(styled * np.hanning(len(styled))))
    peak = np.fft.rfftfreq(len(styled), 1 / RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(frequency, rel=0.03)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rt60_min": 2.0}, "conditions.rt60_min must not exceed conditions.rt60_max"),
        ({"snr_min_db": 30.0}, "conditions.snr_min_db must not exceed conditions.snr_max_db"),
        ({"share": 1.5}, "conditions.share must be in"),
        ({"low_cut_max_hz": 3000.0}, "low_cut_max_hz < high_cut_min_hz"),
    ],
)
def test_bad_condition_ranges_name_their_keys(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ConditionsConfig(**values)
