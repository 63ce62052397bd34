"""Log-mel filterbank features: 80 bins, 25 ms windows every 10 ms (paper §V-C).

`compute_features` is the one definition of the model's input: the training and evaluation
datasets call it on every utterance (on the fly, Lhotse's `Fbank`, CPU or GPU), and so does
anything that transcribes a file. Features stored ahead of time (`store_features`) are the same
`Fbank` output, loaded instead of recomputed, then normalised the same way.

Shape legend: T frames, F mel bins.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lhotse import CutSet, Fbank, FbankConfig
from lhotse.augmentation.torchaudio import Resample
from lhotse.cut import Cut

from omnirouter.config import require
from omnirouter.data.audio import SAMPLE_RATE, AudioError, AudioProblem, load_cut_audio

STORED_FEATURES_DIR = "features"  # under the corpus directory, written by `store_features`
STORED_FEATURES_EXTRA = "stored_features"  # corpus.json `extra` key: set -> stored settings

# The settings stored features depend on. Dither, normalisation and device do not: features are
# stored undithered and raw, and normalised when read.
STORED_SETTINGS = ("num_mel_bins", "frame_length_ms", "frame_shift_ms", "low_freq", "high_freq")


class FeatureNormalization(str, Enum):
    none = "none"  # raw log-mel energies
    # Per utterance and per bin: subtract the mean, divide by the standard deviation. Makes the
    # input independent of recording gain, which differs a lot across the out-of-domain test sets.
    utterance = "utterance"


@dataclass(frozen=True)
class FeatureConfig:
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0  # analysis window
    frame_shift_ms: float = 10.0  # hop between frames
    low_freq: float = 20.0  # Hz, lowest mel filter edge (Kaldi default)
    high_freq: float = -400.0  # Hz; negative = that far below Nyquist (Kaldi convention)
    # Training only: standard deviation of Gaussian noise added to the waveform (samples in
    # [-1, 1]) before analysis, drawn from the utterance's seeded generator. Never at evaluation.
    dither: float = 0.0
    normalization: FeatureNormalization = FeatureNormalization.utterance
    device: str = "cpu"  # where Fbank runs; "cuda" needs DataConfig.num_workers = 0
    use_stored: bool = False  # read features stored by `store_features` when a cut has them

    def __post_init__(self) -> None:
        key = "data.features."
        require(self.num_mel_bins >= 1, key + "num_mel_bins", ">= 1", self.num_mel_bins)
        for name in ("frame_length_ms", "frame_shift_ms"):
            require(getattr(self, name) > 0, key + name, "> 0", getattr(self, name))
        require(self.low_freq >= 0, key + "low_freq", ">= 0 Hz", self.low_freq)
        require(self.dither >= 0, key + "dither", ">= 0", self.dither)

    @property
    def frame_shift_seconds(self) -> float:
        return self.frame_shift_ms / 1000.0

    def num_frames(self, num_samples: int) -> int:
        """Frames Fbank gives for `num_samples` at 16 kHz (no edge snipping: round(N / shift))."""
        shift = round(self.frame_shift_seconds * SAMPLE_RATE)
        return int((num_samples + shift // 2) // shift)


def log_mel(
    samples: np.ndarray | torch.Tensor,
    sample_rate: int,
    config: FeatureConfig,
    dither_generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Raw log-mel energies (T, F) float32 of mono samples, resampled to 16 kHz if needed.

    Dither is added only when a generator is given (training), never from the global RNG.
    """
    samples_S = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
    if sample_rate != SAMPLE_RATE:
        resample = Resample(source_sampling_rate=sample_rate, target_sampling_rate=SAMPLE_RATE)
        samples_S = torch.as_tensor(resample(samples_S.numpy()[None])[0], dtype=torch.float32)
    if dither_generator is not None and config.dither > 0:
        noise_S = torch.randn(samples_S.shape, generator=dither_generator)
        samples_S = samples_S + config.dither * noise_S
    with torch.no_grad():
        features_TF = _fbank(config).extract(samples_S.to(config.device), SAMPLE_RATE)
    return features_TF.float()


def normalize_features(features_TF: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    if config.normalization is FeatureNormalization.none or features_TF.shape[0] == 0:
        return features_TF
    mean_F = features_TF.mean(dim=0, keepdim=True)
    std_F = features_TF.std(dim=0, keepdim=True, unbiased=False).clamp_min(1e-5)
    return (features_TF - mean_F) / std_F


def compute_features(
    samples: np.ndarray | torch.Tensor,
    sample_rate: int,
    config: FeatureConfig,
    dither_generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The model's input features (T, F) float32 for mono audio samples, as training sees them."""
    return normalize_features(log_mel(samples, sample_rate, config, dither_generator), config)


def cut_features(
    cut: Cut, config: FeatureConfig, dither_generator: torch.Generator | None = None
) -> torch.Tensor:
    """Features of one manifest utterance: stored ones if configured and present, else computed.

    Raises `AudioError` when the audio is missing, unreadable, empty or not finite.
    """
    if config.use_stored and cut.has_features:
        _check_stored(cut, config)
        stored_TF = torch.from_numpy(np.asarray(cut.load_features(), dtype=np.float32))
        if not torch.isfinite(stored_TF).all():  # stored from audio that held NaN samples
            raise AudioError(f"{cut.id} (stored features)", AudioProblem.non_finite)
        return normalize_features(stored_TF.to(config.device), config)
    audio = load_cut_audio(cut)
    return compute_features(audio.samples, audio.sample_rate, config, dither_generator)


def stored_feature_records(corpus_extra: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings each set's features were stored with, from corpus.json's `extra` (a
    corpus written by an older version kept one flat record for all sets: it is ignored)."""
    records = corpus_extra.get(STORED_FEATURES_EXTRA, {})
    return {name: record for name, record in records.items() if isinstance(record, dict)}


def stored_settings(config: FeatureConfig) -> dict[str, float]:
    """The settings to record beside stored features (see `check_stored_settings`)."""
    return {name: getattr(config, name) for name in STORED_SETTINGS}


def check_stored_settings(recorded: Mapping[str, Any], config: FeatureConfig, where: str) -> None:
    """Raise ValueError when features stored with the `recorded` settings are not what `config`
    asks for (a setting missing from the record is not compared)."""
    differences = [
        f"{name} = {recorded[name]} (asked for: {getattr(config, name)})"
        for name in STORED_SETTINGS
        if name in recorded and recorded[name] != getattr(config, name)
    ]
    if differences:
        raise ValueError(
            f"{where}: its features were stored with {', '.join(differences)}; store them "
            "again with these settings (omnirouter data features CORPUS_DIR key=value ...) or "
            "set data.features.use_stored=false"
        )


def _check_stored(cut: Cut, config: FeatureConfig) -> None:
    """Stored features made with other settings would be read without complaint: compare the
    extractor and settings every Lhotse manifest records (mel bins, frame shift) with the
    asked-for ones. The loaders also compare the corpus's record of all settings, set by set."""
    features = cut.features
    if features.type != Fbank.name:  # e.g. kaldifeat or torchaudio features of an icefall recipe
        raise ValueError(
            f"cut {cut.id}: its stored features are {features.type!r}, not the {Fbank.name!r} "
            "features this toolkit computes; store them again (omnirouter data features "
            "CORPUS_DIR) or set data.features.use_stored=false"
        )
    stored = (features.num_features, round(features.frame_shift * 1000.0, 6))
    if stored != (config.num_mel_bins, round(config.frame_shift_ms, 6)):
        raise ValueError(
            f"cut {cut.id}: its stored features have {stored[0]} mel bins every {stored[1]} ms, "
            f"data.features asks for {config.num_mel_bins} every {config.frame_shift_ms} ms; "
            "store them again with these settings (omnirouter data features CORPUS_DIR "
            "key=value ...) or set data.features.use_stored=false"
        )


def store_features(
    cuts: CutSet, config: FeatureConfig, storage_dir: str | Path, num_jobs: int = 1
) -> CutSet:
    """Compute raw log-mel features once, store them losslessly (one .npy per utterance) and
    return the cuts pointing at them. Normalisation still happens when they are read."""
    from lhotse.features.io import NumpyFilesWriter

    return cuts.compute_and_store_features(
        extractor=Fbank(_fbank_config(config)),
        storage_path=Path(storage_dir),
        num_jobs=num_jobs,
        storage_type=NumpyFilesWriter,
    )


def _fbank_config(config: FeatureConfig) -> FbankConfig:
    # Lhotse's Fbank draws dither from the global RNG, which would break exact resumption, so it
    # always runs with dither 0 and `log_mel` adds seeded dither itself.
    return FbankConfig(
        sampling_rate=SAMPLE_RATE,
        frame_length=config.frame_length_ms / 1000.0,
        frame_shift=config.frame_shift_seconds,
        low_freq=config.low_freq,
        high_freq=config.high_freq,
        num_filters=config.num_mel_bins,
        dither=0.0,
        snip_edges=False,
        device=config.device,
    )


@functools.lru_cache(maxsize=8)
def _fbank(config: FeatureConfig) -> Fbank:
    # One extractor per process and setting: building it computes the mel filters and windows.
    return Fbank(_fbank_config(config))
