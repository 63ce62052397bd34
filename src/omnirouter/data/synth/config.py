"""The built-in corpus's configuration: which sets to build, from which voices, texts and effects.

Everything that defines a domain lives here and in `configs/data/*.yaml`, never in code: a set
names a voice pool, a text source and split, an optional acoustic effect and a size in minutes.
Voices are written `engine:voice`, for example `espeak:en-gb-scotland+m3`, `flite:awb`,
`festival:kal_diphone`, `piper:joe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Engine(str, Enum):
    espeak = "espeak"  # Debian espeak-ng: formant synthesis, many accents and voice variants
    flite = "flite"  # Debian flite: diphone (kal16) and clustergen (awb, rms, slt) voices
    festival = "festival"  # Debian festival: diphone (kal, ked) and HTS (cmu_us_slt_arctic_hts)
    piper = "piper"  # PyPI piper-tts: a neural (VITS) voice shipped as a Python package


class TextSource(str, Enum):
    fortunes = "fortunes"  # Debian fortunes: short quotes and jokes, the in-domain text
    bible = "bible"  # Debian bible-kjv: King James English, the text-shift domain
    # Debian dict-devil: Ambrose Bierce's The Devil's Dictionary (1911, public domain), witty
    # definitions in the fortunes' register; more training sentences for large corpora
    devil = "devil"

    @property
    def is_split(self) -> bool:
        """Whether its sentences are split into train / dev / test (sources trained on)."""
        return self is not TextSource.bible


class TextSplit(str, Enum):
    train = "train"  # fortunes sentences for training
    dev = "dev"  # held-out fortunes sentences, disjoint from train and test
    test = "test"  # held-out fortunes sentences, disjoint from train and dev
    all = "all"  # every sentence of the source (for sources never used in training)


class Role(str, Enum):
    train = "train"
    dev = "dev"
    test = "test"


class EffectKind(str, Enum):
    noise = "noise"  # additive white / pink / brown noise at a drawn signal-to-noise ratio
    reverb = "reverb"  # sox `reverb`: a drawn room size and reverberance
    telephone = "telephone"  # 300–3400 Hz band, 8 kHz μ-law, back to the corpus rate


def _require_ordered(section: object, prefix: str, *ranges: tuple[str, str]) -> None:
    """Each (low, high) pair of fields of a config section must satisfy low <= high."""
    for low, high in ranges:
        if getattr(section, low) > getattr(section, high):
            raise ValueError(f"{prefix}.{low} must not exceed {prefix}.{high}")


@dataclass(frozen=True)
class TextConfig:
    fortunes_dir: str = "/usr/share/games/fortunes"  # every fortune file in it is read
    devil_path: str = "/usr/share/dictd/devil.dict.dz"  # the `devil` source (dictd format)
    min_words: int = 5  # shorter sentences are dropped
    max_words: int = 25  # longer sentences are dropped
    dev_fraction: float = 0.05  # share of fortunes sentences held out for dev sets
    test_fraction: float = 0.15  # share of fortunes sentences held out for test sets

    def __post_init__(self) -> None:
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(
                f"text.min_words={self.min_words} and text.max_words={self.max_words} "
                "must satisfy 1 <= min_words <= max_words"
            )
        if self.dev_fraction < 0 or self.test_fraction < 0:
            raise ValueError("text.dev_fraction and text.test_fraction must be >= 0")
        if self.dev_fraction + self.test_fraction >= 1:
            raise ValueError("text.dev_fraction + text.test_fraction must be < 1")


@dataclass(frozen=True)
class ProsodyConfig:
    # A speaking-rate factor is drawn per utterance (1 = the engine's default rate); each engine
    # maps it onto its own knob (espeak words per minute, duration stretch, length scale).
    speed_min: float = 0.85
    speed_max: float = 1.2
    pitch_min: int = (
        30  # espeak-ng base pitch (0–99), drawn per utterance; other engines keep theirs
    )
    pitch_max: int = 70

    # More of a voice drawn per utterance, so that each accent or voice sounds like many
    # speakers. espeak-ng: the pitch range (SSML prosody range, 0 = monotone, 50 = its default,
    # 100 = twice as wide) and the pause between words (units of 10 ms). flite: the mean F0 in
    # Hz (`int_f0_target_mean`). Training sets (role train) only; held-out sets speak with the
    # engines' defaults for these, as before.
    vary_training_voices: bool = True
    pitch_range_min: int = 20
    pitch_range_max: int = 100
    word_gap_max: int = 4
    flite_f0_min: float = 80.0
    flite_f0_max: float = 170.0
    # Signal-level speaker perturbation of training utterances (Kaldi's speed perturbation,
    # sox `speed`): resampling scales pitch, formants (vocal-tract length) and tempo together.
    # A factor is drawn for this share of the training utterances; the rest keep 1.
    speed_perturbation_share: float = 0.67
    speed_perturbation_min: float = 0.9
    speed_perturbation_max: float = 1.1
    # Timbre shift (sox `pitch`: pitch and spectral envelope moved together, duration kept) of
    # this share of the training utterances, by a number of cents drawn from the range. Every
    # flite and festival training voice is male; +300 to +450 cents (x1.2-1.3) moves their
    # formants to where women's are.
    timbre_share: float = 0.0
    timbre_min_cents: int = -200
    timbre_max_cents: int = 450

    def __post_init__(self) -> None:
        if not 0 < self.speed_min <= self.speed_max:
            raise ValueError("prosody: need 0 < speed_min <= speed_max")
        if not 0 <= self.pitch_min <= self.pitch_max <= 99:
            raise ValueError("prosody: need 0 <= pitch_min <= pitch_max <= 99")
        if not 0 <= self.pitch_range_min <= self.pitch_range_max <= 100:
            raise ValueError("prosody: need 0 <= pitch_range_min <= pitch_range_max <= 100")
        if not 0 <= self.word_gap_max <= 50:
            raise ValueError("prosody: need 0 <= word_gap_max <= 50")
        if not 0 < self.flite_f0_min <= self.flite_f0_max:
            raise ValueError("prosody: need 0 < flite_f0_min <= flite_f0_max")
        if not 0 <= self.speed_perturbation_share <= 1:
            raise ValueError("prosody.speed_perturbation_share must be in [0, 1]")
        if not 0 < self.speed_perturbation_min <= self.speed_perturbation_max:
            raise ValueError("prosody: need 0 < speed_perturbation_min <= speed_perturbation_max")
        if not 0 <= self.timbre_share <= 1:
            raise ValueError("prosody.timbre_share must be in [0, 1]")
        if not -1200 <= self.timbre_min_cents <= self.timbre_max_cents <= 1200:
            raise ValueError("prosody: need -1200 <= timbre_min_cents <= timbre_max_cents <= 1200")


@dataclass(frozen=True)
class EffectsConfig:
    # Ranges the per-utterance effect settings are drawn from (uniformly).
    noise_colors: list[str] = field(default_factory=lambda: ["white", "pink", "brown"])
    snr_min_db: float = 5.0
    snr_max_db: float = 20.0
    reverberance_min: float = 40.0  # sox reverb, percent
    reverberance_max: float = 90.0
    room_scale_min: float = 40.0  # sox reverb, percent
    room_scale_max: float = 100.0
    damping_min: float = 20.0  # sox reverb high-frequency damping, percent
    damping_max: float = 80.0
    pre_delay_max_ms: float = 30.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.noise_colors) - {"white", "pink", "brown"})
        if unknown or not self.noise_colors:
            raise ValueError(f"effects.noise_colors: use white, pink and/or brown, not {unknown}")
        _require_ordered(
            self,
            "effects",
            ("snr_min_db", "snr_max_db"),
            ("reverberance_min", "reverberance_max"),
            ("room_scale_min", "room_scale_max"),
            ("damping_min", "damping_max"),
        )


class ConditionKind(str, Enum):
    """Acoustic conditions of multi-condition training, chosen so that the test sets' noise
    signals, rooms and codec do not occur in training: babble and spectrally tilted noise of
    seeds of their own (tests: white, pink, brown noise), rooms simulated as exponentially
    decaying noise (tests: sox's reverberator), and codecs other than μ-law."""

    babble = "babble"  # other training utterances spoken at once under this one
    noise = "noise"  # Gaussian noise with power spectral density ∝ f^-exponent, drawn exponent
    reverb = "reverb"  # a simulated room impulse response of drawn RT60 and direct-path share
    channel = "channel"  # a drawn band limit, then perhaps a codec (GSM, AMR-NB, A-law, Vorbis)


class Codec(str, Enum):
    none = "none"  # the band limit alone, at the corpus rate
    gsm = "gsm"  # GSM 06.10 full rate, 8 kHz
    amr_nb = "amr_nb"  # AMR narrow band, 8 kHz
    alaw = "alaw"  # G.711 A-law, 8 kHz (the telephone test uses μ-law)
    vorbis = "vorbis"  # Ogg Vorbis at its lowest quality, at the corpus rate

    @property
    def narrow_band(self) -> bool:
        return self in (Codec.gsm, Codec.amr_nb, Codec.alaw)


@dataclass(frozen=True)
class ConditionsConfig:
    # Multi-condition training: this share of every training set's utterances (role train) is
    # stored with one acoustic condition, chosen uniformly from `kinds`, with settings drawn per
    # utterance from the ranges below; the rest stay as spoken. The clean audio of a changed
    # utterance is kept beside it (babble is made from it, and a rebuild reuses it).
    enabled: bool = True
    share: float = 0.5
    kinds: list[ConditionKind] = field(default_factory=lambda: list(ConditionKind))
    snr_min_db: float = 0.0  # babble and noise: speech-to-interference power ratio
    snr_max_db: float = 25.0
    babble_talkers_min: int = 3
    babble_talkers_max: int = 7
    noise_exponent_min: float = 0.4  # spectral tilt, between the tests' white (0) and brown (2)
    noise_exponent_max: float = 1.6
    rt60_min: float = 0.15  # reverb: seconds for the reverberant tail to decay by 60 dB
    rt60_max: float = 0.9
    direct_ratio_min_db: float = -3.0  # reverb: direct path over reverberant energy
    direct_ratio_max_db: float = 12.0
    low_cut_min_hz: float = 60.0  # channel: the band limit's edges
    low_cut_max_hz: float = 400.0
    high_cut_min_hz: float = 2800.0
    high_cut_max_hz: float = 7500.0
    codecs: list[Codec] = field(
        default_factory=lambda: [Codec.none, Codec.gsm, Codec.amr_nb, Codec.alaw, Codec.vorbis]
    )

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError("conditions.share must be in [0, 1]")
        if self.enabled and self.share > 0 and not self.kinds:
            raise ValueError("conditions.kinds is empty")
        if self.enabled and ConditionKind.channel in self.kinds and not self.codecs:
            raise ValueError("conditions.codecs is empty")
        _require_ordered(
            self,
            "conditions",
            ("snr_min_db", "snr_max_db"),
            ("babble_talkers_min", "babble_talkers_max"),
            ("noise_exponent_min", "noise_exponent_max"),
            ("rt60_min", "rt60_max"),
            ("direct_ratio_min_db", "direct_ratio_max_db"),
            ("low_cut_min_hz", "low_cut_max_hz"),
            ("high_cut_min_hz", "high_cut_max_hz"),
        )
        if self.babble_talkers_min < 1 or self.rt60_min <= 0:
            raise ValueError("conditions: need babble_talkers_min >= 1 and rt60_min > 0")
        if not 0 < self.low_cut_max_hz < self.high_cut_min_hz:
            raise ValueError("conditions: need 0 < low_cut_max_hz < high_cut_min_hz")


@dataclass(frozen=True)
class PauseConfig:
    # Pauses in the training sets (role train): a model that never hears a pause while training
    # writes words for one. Each utterance gets a leading and a trailing pause, and perhaps one
    # inside, of durations drawn uniformly from these ranges (seconds), seeded by the corpus seed.
    # Longer pauses slowed learning: on the training tests' 2.5-min corpus, 0.1-1 s at both ends
    # left the 800-step model at 83-90% train CER, against 30-46% without pauses and 24-31%
    # with these (seeds 0-2 of the corpus).
    enabled: bool = True  # false: training audio exactly as the engines speak it
    leading_min: float = 0.05
    leading_max: float = 0.3
    trailing_min: float = 0.05
    trailing_max: float = 0.3
    inner_probability: float = 0.2  # share of utterances with a pause inside
    inner_min: float = 0.15  # it goes where the speech is quietest near a drawn point
    inner_max: float = 0.4
    # Gaussian white noise under the whole utterance, so that a pause is a quiet recording
    # rather than digital zero: RMS level in dB re full scale, drawn per utterance.
    noise_floor_min_db: float = -75.0
    noise_floor_max_db: float = -55.0

    def __post_init__(self) -> None:
        for low, high, key in (
            (self.leading_min, self.leading_max, "leading"),
            (self.trailing_min, self.trailing_max, "trailing"),
            (self.inner_min, self.inner_max, "inner"),
        ):
            if not 0 <= low <= high:
                raise ValueError(f"pauses: need 0 <= {key}_min <= {key}_max")
        if not 0 <= self.inner_probability <= 1:
            raise ValueError("pauses.inner_probability must be in [0, 1]")
        if not self.noise_floor_min_db <= self.noise_floor_max_db < 0:
            raise ValueError("pauses: need noise_floor_min_db <= noise_floor_max_db < 0")


@dataclass(frozen=True)
class SetConfig:
    name: str = ""  # manifest name: CORPUS_DIR/cuts_<name>.jsonl.gz
    role: Role = Role.test
    description: str = ""  # what the set tests, shown in reports
    minutes: float = 15.0  # target speech length (pauses not counted), before SynthConfig.scale
    voice_pool: str = ""  # key of SynthConfig.voice_pools (synthesised sets)
    text_source: TextSource = TextSource.fortunes
    text_split: TextSplit = TextSplit.test
    source_set: str = ""  # effect sets: the earlier set whose utterances get the effect
    effect: EffectKind | None = None

    @property
    def is_effect_set(self) -> bool:
        return bool(self.source_set)


@dataclass(frozen=True)
class SynthConfig:
    name: str = "builtin"
    description: str = "Synthetic English speech from offline text-to-speech engines"
    seed: int = 0  # decides sentences, voices, prosody and effect settings of every utterance
    scale: float = 1.0  # multiplies every set's minutes (quick trials, bigger corpora)
    words_per_second: float = 3.05  # average speech rate, turns minutes into sentence counts
    sample_rate: int = 16000  # of every stored recording (mono, 16-bit)
    batch_size: int = 24  # utterances per worker task; festival speaks a batch in one process
    text: TextConfig = field(default_factory=TextConfig)
    prosody: ProsodyConfig = field(default_factory=ProsodyConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)
    pauses: PauseConfig = field(default_factory=PauseConfig)
    conditions: ConditionsConfig = field(default_factory=ConditionsConfig)
    voice_pools: dict[str, list[str]] = field(default_factory=dict)  # name -> ["engine:voice"]
    sets: list[SetConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.seed < 0 or self.scale <= 0 or self.words_per_second <= 0 or self.batch_size < 1:
            raise ValueError(
                "synth config: need seed >= 0, scale > 0, words_per_second > 0, batch_size >= 1"
            )
        if self.conditions.high_cut_max_hz >= self.sample_rate / 2:
            raise ValueError(
                f"conditions.high_cut_max_hz={self.conditions.high_cut_max_hz} must lie below "
                f"half the sample rate ({self.sample_rate / 2:g} Hz)"
            )
        for pool_name, voices in self.voice_pools.items():
            for voice in voices:
                parse_voice(voice, context=f"voice_pools.{pool_name}")
        _check_sets(self)

    def set(self, name: str) -> SetConfig:
        for set_config in self.sets:
            if set_config.name == name:
                return set_config
        raise KeyError(f"no set {name!r} in the synth config")


@dataclass(frozen=True)
class Voice:
    engine: Engine
    name: str  # the engine's own voice name, e.g. "en-gb-scotland+m3", "kal16", "joe"


def parse_voice(voice: str, context: str = "voice") -> Voice:
    """`"espeak:en-us+m3"` -> `Voice(Engine.espeak, "en-us+m3")`; a clear error on anything else."""
    engine_name, separator, name = voice.partition(":")
    engines = ", ".join(engine.value for engine in Engine)
    if not separator or not name or engine_name not in Engine.__members__:
        raise ValueError(
            f"{context}: {voice!r} is not of the form engine:voice (engines: {engines})"
        )
    return Voice(Engine(engine_name), name)


def _check_sets(config: SynthConfig) -> None:
    if not config.sets:
        raise ValueError("the synth config defines no sets")
    seen: set[str] = set()
    for position, set_config in enumerate(config.sets):
        key = f"sets[{position}] ({set_config.name or 'unnamed'})"
        if not set_config.name or not set_config.name.replace("_", "").isalnum():
            raise ValueError(f"{key}: name must be non-empty letters, digits and underscores")
        if set_config.name in seen:
            raise ValueError(f"{key}: set name used twice")
        if set_config.minutes <= 0:
            raise ValueError(f"{key}: minutes must be > 0")
        if set_config.is_effect_set:
            if set_config.effect is None:
                raise ValueError(f"{key}: a set with a source_set needs an effect")
            if set_config.source_set not in seen:
                raise ValueError(
                    f"{key}: source_set {set_config.source_set!r} is not an earlier set"
                )
            if config.set(set_config.source_set).is_effect_set:
                raise ValueError(f"{key}: source_set must be a synthesised set, not an effect set")
        else:
            if set_config.voice_pool not in config.voice_pools:
                pools = sorted(config.voice_pools)
                raise ValueError(f"{key}: voice_pool {set_config.voice_pool!r} not in {pools}")
            if not config.voice_pools[set_config.voice_pool]:
                raise ValueError(f"{key}: voice_pool {set_config.voice_pool!r} is empty")
            if set_config.effect is not None:
                raise ValueError(f"{key}: an effect needs a source_set to apply it to")
            _check_split(set_config, key)
        seen.add(set_config.name)


def _check_split(set_config: SetConfig, key: str) -> None:
    """Sentences of sources trained on are split so that no held-out one is ever trained on."""
    source = set_config.text_source
    if not source.is_split:
        return
    if set_config.text_split is TextSplit.all:
        raise ValueError(f"{key}: {source.value} sets must use a train, dev or test split")
    trains = set_config.role is Role.train
    if trains != (set_config.text_split is TextSplit.train):
        raise ValueError(
            f"{key}: a {set_config.role.value} set cannot use the "
            f"{set_config.text_split.value} split of the {source.value} text"
        )
