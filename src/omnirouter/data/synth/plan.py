"""The corpus plan: each utterance's sentence, voice, prosody, style, pauses, condition or effect
and audio file, from the seed.

Planning is pure and cheap: it runs before any synthesis, decides everything that makes an
utterance, and gives each audio file a name that hashes those decisions. A file that exists is
therefore the right one, which is what makes the build's cache and its resumption safe.
Every set draws sentences, voices, prosody, styles, pauses, conditions and effects from
generators of their own, seeded by (seed, set name, aspect): resizing a set keeps its first
utterances and leaves other sets alone, so a bigger build reuses a smaller one's audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from omnirouter.data.synth.conditions import ConditionSettings, draw_condition
from omnirouter.data.synth.config import Engine, Role, SetConfig, SynthConfig, parse_voice
from omnirouter.data.synth.effects import EffectSettings, draw_effect
from omnirouter.data.synth.pauses import PauseSettings, draw_pauses
from omnirouter.data.synth.style import VoiceStyle, draw_style
from omnirouter.data.synth.text import sentence_pool

logger = logging.getLogger(__name__)

AUDIO_DIR = "audio"
# Part of every audio file's hash: bump it when the engines' output changes for the same inputs.
AUDIO_VERSION = 1
# Part of every set's fingerprint: bump it when what a manifest holds changes, so that a rebuild
# rewrites the manifests of older builds (2: audio named relative to the corpus).
MANIFEST_VERSION = 2


@dataclass(frozen=True)
class PlannedUtterance:
    id: str  # "<set>-<index>", also the Lhotse cut and recording id
    set_name: str
    text: str
    voice: str  # "engine:voice"
    speed: float  # speaking-rate factor
    pitch: int | None  # espeak-ng base pitch; None for other engines
    text_source: str
    audio_path: Path
    effect: EffectSettings | None = None  # effect sets only
    source_id: str = ""  # effect sets: the synthesised utterance the effect is applied to
    source_path: Path | None = None
    pauses: PauseSettings | None = None  # training sets (role train) when pauses are enabled
    style: VoiceStyle | None = None  # training sets when prosody.vary_training_voices
    # Training utterances with a condition (multi-condition training): the condition, where the
    # clean spoken audio is kept, and the clean audio of the babble talkers.
    condition: ConditionSettings | None = None
    spoken_path: Path | None = None
    babble_paths: tuple[Path, ...] = ()

    @property
    def spoken_audio(self) -> Path:
        """Where the engine's speech (with style and pauses) is stored: the utterance's own
        audio file, unless a condition is applied to it afterwards."""
        return self.spoken_path or self.audio_path

    @property
    def engine(self) -> Engine:
        return parse_voice(self.voice).engine

    @property
    def engine_voice(self) -> str:
        return parse_voice(self.voice).name


@dataclass(frozen=True)
class SetPlan:
    config: SetConfig
    utterances: tuple[PlannedUtterance, ...]
    fingerprint: str  # hash of every planned utterance: equal fingerprints, equal sets


def plan_corpus(config: SynthConfig, corpus_dir: Path) -> tuple[SetPlan, ...]:
    """The plan of every configured set, in configuration order."""
    plans: dict[str, SetPlan] = {}
    for set_config in config.sets:
        if set_config.is_effect_set:
            utterances = _plan_effect_set(
                config, set_config, plans[set_config.source_set], corpus_dir
            )
        else:
            utterances = _plan_synthesised_set(config, set_config, corpus_dir)
        fingerprint = _fingerprint(set_config, utterances)
        plans[set_config.name] = SetPlan(set_config, utterances, fingerprint)
    return tuple(plans.values())


def _plan_synthesised_set(
    config: SynthConfig, set_config: SetConfig, corpus_dir: Path
) -> tuple[PlannedUtterance, ...]:
    pool = sentence_pool(set_config.text_source, set_config.text_split, config.text)
    if not pool:
        raise ValueError(f"set {set_config.name!r}: no sentences in {set_config.text_source.value}")
    target_seconds = set_config.minutes * 60 * config.scale
    sentences = _take_sentences(
        pool, target_seconds, config.words_per_second, _generator(config, set_config, "text")
    )
    voice_pool = config.voice_pools[set_config.voice_pool]
    voices = balanced_voices(voice_pool, len(sentences), _generator(config, set_config, "voices"))
    rng = _generator(config, set_config, "prosody")
    pause_rng = _generator(config, set_config, "pauses")
    style_rng = _generator(config, set_config, "style")
    condition_rng = _generator(config, set_config, "conditions")
    trains = set_config.role is Role.train
    with_pauses = config.pauses.enabled and trains
    with_styles = config.prosody.vary_training_voices and trains
    with_conditions = config.conditions.enabled and trains
    ids = [f"{set_config.name}-{index:05d}" for index in range(len(sentences))]
    prosody = config.prosody
    utterances = []
    for index, (sentence, voice) in enumerate(zip(sentences, voices)):
        engine = parse_voice(voice).engine
        speed = round(float(rng.uniform(prosody.speed_min, prosody.speed_max)), 2)
        pitch = int(rng.integers(prosody.pitch_min, prosody.pitch_max + 1))
        pauses = draw_pauses(config.pauses, pause_rng) if with_pauses else None
        style = draw_style(prosody, engine, style_rng) if with_styles else None
        # Babble talkers come from earlier utterances only, so that a smaller build of the set
        # plans its utterances exactly as a bigger one plans its first ones.
        condition = (
            draw_condition(config.conditions, condition_rng, ids[:index])
            if with_conditions
            else None
        )
        decisions: list = [sentence, voice, speed, pitch, config.sample_rate, AUDIO_VERSION]
        if pauses is not None:  # audio without pauses keeps the name it had before them
            decisions.append(pauses.describe())
        styled = style.describe() if style is not None else {}
        if styled:  # an unchanged voice keeps its audio's name
            decisions.append(styled)
        spoken_path = _audio_path(corpus_dir, set_config.name, ids[index], decisions)
        utterances.append(
            PlannedUtterance(
                id=ids[index],
                set_name=set_config.name,
                text=sentence,
                voice=voice,
                speed=speed,
                pitch=pitch if engine is Engine.espeak else None,
                text_source=set_config.text_source.value,
                audio_path=spoken_path,
                pauses=pauses,
                style=style,
                condition=condition,
            )
        )
    return tuple(_with_condition_files(utterances, corpus_dir, config.sample_rate))


def _with_condition_files(
    utterances: Sequence[PlannedUtterance], corpus_dir: Path, sample_rate: int
) -> Iterator[PlannedUtterance]:
    """Utterances with a condition get their own audio file, named by the condition and the
    clean files it is made from; their clean audio keeps the name it has without one."""
    spoken = {utterance.id: utterance.audio_path for utterance in utterances}
    for utterance in utterances:
        if utterance.condition is None:
            yield utterance
            continue
        babble_paths = tuple(spoken[other] for other in utterance.condition.babble_ids)
        decisions = [
            utterance.audio_path.name,
            utterance.condition.describe(),
            [path.name for path in babble_paths],
            sample_rate,
            AUDIO_VERSION,
        ]
        yield replace(
            utterance,
            audio_path=_audio_path(corpus_dir, utterance.set_name, utterance.id, decisions),
            spoken_path=utterance.audio_path,
            babble_paths=babble_paths,
        )


def _plan_effect_set(
    config: SynthConfig, set_config: SetConfig, source: SetPlan, corpus_dir: Path
) -> tuple[PlannedUtterance, ...]:
    """The source set's first utterances (a random sample: the source is shuffled), with effects."""
    assert set_config.effect is not None  # checked by SynthConfig
    rng = _generator(config, set_config, "effects")
    target_seconds = set_config.minutes * 60 * config.scale
    utterances: list[PlannedUtterance] = []
    seconds = 0.0
    for index, original in enumerate(source.utterances):
        if seconds >= target_seconds:
            break
        seconds += len(original.text.split()) / config.words_per_second
        effect = draw_effect(set_config.effect, config.effects, rng)
        utterance_id = f"{set_config.name}-{index:05d}"
        decisions = [original.audio_path.name, effect.describe(), config.sample_rate, AUDIO_VERSION]
        utterances.append(
            PlannedUtterance(
                id=utterance_id,
                set_name=set_config.name,
                text=original.text,
                voice=original.voice,
                speed=original.speed,
                pitch=original.pitch,
                text_source=original.text_source,
                audio_path=_audio_path(corpus_dir, set_config.name, utterance_id, decisions),
                effect=effect,
                source_id=original.id,
                source_path=original.audio_path,
                pauses=original.pauses,
            )
        )
    return tuple(utterances)


def balanced_voices(voices: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    """`count` voices, spread evenly over the engines of `voices`, then over each engine's voices.

    An engine with one voice gets as many utterances as one with twenty. Each round visits every
    engine (or voice) once, in a shuffled order.
    """
    by_engine: dict[Engine, list[str]] = {}
    for voice in voices:
        by_engine.setdefault(parse_voice(voice).engine, []).append(voice)
    engine_rounds = _shuffled_rounds(sorted(by_engine), rng)
    voice_rounds = {engine: _shuffled_rounds(names, rng) for engine, names in by_engine.items()}
    return [next(voice_rounds[next(engine_rounds)]) for _ in range(count)]


def _shuffled_rounds(items: Sequence, rng: np.random.Generator) -> Iterator:
    while True:
        for position in rng.permutation(len(items)):
            yield items[position]


def _take_sentences(
    pool: Sequence[str],
    target_seconds: float,
    words_per_second: float,
    rng: np.random.Generator,
) -> list[str]:
    """Shuffled sentences of `pool` until their estimated length reaches `target_seconds`."""
    sentences: list[str] = []
    seconds = 0.0
    for sentence in _shuffled_rounds(pool, rng):
        if seconds >= target_seconds:
            break
        if len(sentences) == len(pool):
            logger.warning("only %d sentences for a set: some are used more than once", len(pool))
        sentences.append(sentence)
        seconds += len(sentence.split()) / words_per_second
    return sentences


def _generator(config: SynthConfig, set_config: SetConfig, aspect: str) -> np.random.Generator:
    return np.random.default_rng(
        [config.seed, zlib.crc32(set_config.name.encode()), zlib.crc32(aspect.encode())]
    )


def _audio_path(corpus_dir: Path, set_name: str, utterance_id: str, decisions: list) -> Path:
    digest = hashlib.sha1(json.dumps(decisions, sort_keys=True).encode()).hexdigest()[:12]
    return corpus_dir / AUDIO_DIR / set_name / f"{utterance_id}_{digest}.wav"


def is_planned_audio_name(set_name: str, file_name: str) -> bool:
    """Whether `file_name` has the form of a `set_name` audio file named by `_audio_path` (or of
    its temporary `.partial` twin while it is written)."""
    pattern = rf"{re.escape(set_name)}-\d+_[0-9a-f]+(\.partial)?\.wav"
    return re.fullmatch(pattern, file_name) is not None


def _fingerprint(set_config: SetConfig, utterances: Sequence[PlannedUtterance]) -> str:
    digest = hashlib.sha1(f"{MANIFEST_VERSION}\n{set_config!r}".encode())
    for utterance in utterances:
        digest.update(f"{utterance.id}\t{utterance.audio_path}\n".encode())
    return digest.hexdigest()
