"""How a sampled group of utterances becomes a `Batch`: audio -> features -> (SpecAugment) -> pad.

The sampler decides *which* utterances form a batch; this dataset decides *how* they become
tensors (the Lhotse split). It runs inside DataLoader worker processes, so it keeps no state and
draws no global randomness: a training utterance's dither and masks come from a generator seeded
by (seed, epoch, utterance id), which makes every batch reproducible after a resume.

Shape legend: B batch, T frames, F feature bins, U target tokens.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from torch.nn.utils.rnn import pad_sequence

from omnirouter.data.audio import AudioError
from omnirouter.data.augment import SpecAugmentConfig, spec_augment
from omnirouter.data.batch import Batch
from omnirouter.data.features import FeatureConfig, cut_features
from omnirouter.data.filters import AUDIO_SKIP_REASONS, SkipReason
from omnirouter.data.manifests import cut_text
from omnirouter.data.tokenizer import Tokenizer


@dataclass(frozen=True)
class BatchRequest:
    """What the loader hands the dataset: the sampled cuts and where they sit in the run."""

    cuts: CutSet
    epoch: int
    index: int  # position of this batch in the epoch's sampler output


@dataclass(frozen=True)
class SkippedUtterance:
    cut_id: str
    error: AudioError  # names the file and the problem

    @property
    def reason(self) -> SkipReason:
        return AUDIO_SKIP_REASONS[self.error.problem]


@dataclass(frozen=True)
class LoadedBatch:
    index: int
    batch: Batch | None  # None when every utterance of the request was skipped
    skipped: tuple[SkippedUtterance, ...]


@dataclass(frozen=True)
class Utterance:
    cut_id: str
    text: str
    features_TF: torch.Tensor
    targets_U: list[int]


def utterance_generator(seed: int, epoch: int, cut_id: str) -> torch.Generator:
    """A generator that depends only on (seed, epoch, utterance id), never on process or order."""
    digest = hashlib.blake2b(f"{seed}\x00{epoch}\x00{cut_id}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def collate(utterances: list[Utterance]) -> Batch:
    """Zero-pad features and targets to the longest utterance of the batch."""
    if not utterances:
        raise ValueError("cannot make a batch of zero utterances")
    features_BTF = pad_sequence([u.features_TF for u in utterances], batch_first=True)
    targets_BU = pad_sequence(
        [torch.tensor(u.targets_U, dtype=torch.int64) for u in utterances], batch_first=True
    )
    return Batch(
        features_BTF=features_BTF,
        feature_lens_B=torch.tensor(
            [u.features_TF.shape[0] for u in utterances], dtype=torch.int64
        ),
        targets_BU=targets_BU,
        target_lens_B=torch.tensor([len(u.targets_U) for u in utterances], dtype=torch.int64),
        cut_ids=tuple(u.cut_id for u in utterances),
        texts=tuple(u.text for u in utterances),
    )


class AsrDataset(torch.utils.data.Dataset):
    """Map-style dataset indexed by `BatchRequest`.

    training=True: seeded dither and SpecAugment; training=False: no randomness at all.
    Utterances whose audio is missing, unreadable or empty are left out of the batch and
    reported in `LoadedBatch.skipped`; the loader decides whether that is an error. (Raising
    here would reach the caller as a RuntimeError when the dataset runs in a worker process.)
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        features: FeatureConfig,
        spec_augment: SpecAugmentConfig,
        seed: int,
        training: bool,
    ) -> None:
        self.tokenizer = tokenizer
        self.features = features
        self.spec_augment = spec_augment
        self.seed = seed
        self.training = training

    def __getitem__(self, request: BatchRequest) -> LoadedBatch:  # type: ignore[override]
        utterances: list[Utterance] = []
        skipped: list[SkippedUtterance] = []
        for cut in request.cuts:
            try:
                utterances.append(self._utterance(cut, request.epoch))
            except AudioError as error:
                skipped.append(SkippedUtterance(cut.id, error))
        batch = collate(utterances) if utterances else None
        return LoadedBatch(index=request.index, batch=batch, skipped=tuple(skipped))

    def _utterance(self, cut: Cut, epoch: int) -> Utterance:
        generator = utterance_generator(self.seed, epoch, cut.id) if self.training else None
        features_TF = cut_features(cut, self.features, dither_generator=generator)
        if generator is not None:
            features_TF = spec_augment(features_TF, self.spec_augment, generator)
        text = cut_text(cut)
        return Utterance(
            cut_id=cut.id, text=text, features_TF=features_TF, targets_U=self.tokenizer.encode(text)
        )
