"""The data pipeline's configuration: which sets, how they are batched, featurised and augmented."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omnirouter.config import require
from omnirouter.data.augment import SpecAugmentConfig
from omnirouter.data.features import FeatureConfig
from omnirouter.data.filters import SpeechRateFilterConfig, UtteranceLimits
from omnirouter.data.tokenizer import TokenizerConfig


@dataclass(frozen=True)
class DataConfig:
    corpus_dir: str = "data/builtin"  # a prepared corpus (corpus.json + cuts_<set>.jsonl.gz)
    # A Shar export of it (`omnirouter data shar`): training and evaluation read their sets'
    # cuts and data from there, shard by shard, instead of from corpus_dir (which still holds
    # the tokenizer). For object stores and many machines; a shared filesystem needs none.
    shar_dir: str | None = None
    train_sets: list[str] = field(default_factory=lambda: ["train"])  # read one after another
    dev_set: str = "dev"  # monitored during training
    test_sets: list[str] = field(default_factory=list)  # empty = every set whose role is "test"
    # Seconds of audio per batch and device (paper §V-C: 7 h over 16 GPUs, about 1575 s each).
    max_duration: float = 200.0
    num_buckets: int = 30  # duration buckets of the sampler; batches mix similar lengths
    shuffle_buffer: int = 20000  # utterances the bucketing sampler holds (and shuffles within)
    num_cuts_for_bins_estimate: int = 10000  # utterances read to place the bucket boundaries
    quadratic_duration: float | None = None  # seconds; penalise long utterances (attention cost)
    num_workers: int = 2  # DataLoader processes reading audio and computing features
    min_utterance_seconds: float = 0.1  # training utterances outside these bounds are skipped
    max_utterance_seconds: float = 30.0
    speech_rate: SpeechRateFilterConfig = field(default_factory=SpeechRateFilterConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    spec_augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    def __post_init__(self) -> None:
        require(self.max_duration > 0, "data.max_duration", "> 0 seconds", self.max_duration)
        for name in ("num_buckets", "shuffle_buffer", "num_cuts_for_bins_estimate"):
            require(getattr(self, name) >= 1, f"data.{name}", ">= 1", getattr(self, name))
        require(self.num_workers >= 0, "data.num_workers", ">= 0", self.num_workers)
        quadratic = self.quadratic_duration
        require(quadratic is None or quadratic > 0, "data.quadratic_duration", "> 0", quadratic)
        if self.max_utterance_seconds > self.max_duration:
            raise ValueError(
                f"data.max_utterance_seconds={self.max_utterance_seconds} exceeds "
                f"data.max_duration={self.max_duration}: such an utterance fits no batch"
            )
        shortest = self.min_utterance_seconds
        require(shortest >= 0, "data.min_utterance_seconds", ">= 0", shortest)
        require(
            shortest < self.max_utterance_seconds,
            "data.min_utterance_seconds",
            f"< data.max_utterance_seconds={self.max_utterance_seconds}",
            shortest,
        )
        if not self.train_sets:
            raise ValueError("data.train_sets is empty")
        if self.features.device != "cpu" and self.num_workers > 0:
            raise ValueError(
                f"data.features.device={self.features.device!r} computes features in the main "
                "process: set data.num_workers=0"
            )

    @property
    def limits(self) -> UtteranceLimits:
        return UtteranceLimits(
            min_seconds=self.min_utterance_seconds,
            max_seconds=self.max_utterance_seconds,
            speech_rate=self.speech_rate,
        )

    @property
    def tokenizer_dir(self) -> Path:
        return self.tokenizer.directory(self.corpus_dir)
