"""The one batch type that flows from the data loaders into training and evaluation.

Shape legend: B batch, T frames, F feature bins (80 log-mel), U target tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Batch:
    features_BTF: torch.Tensor  # float32 log-mel features, zero-padded after each length
    feature_lens_B: torch.Tensor  # int64 valid frames per utterance
    targets_BU: torch.Tensor  # int64 token ids (never the blank, 0), padded with 0
    target_lens_B: torch.Tensor  # int64 valid tokens per utterance
    cut_ids: tuple[str, ...]  # lhotse cut ids, for per-utterance outputs
    texts: tuple[str, ...]  # reference transcripts as in the manifest

    @property
    def size(self) -> int:
        return self.features_BTF.shape[0]

    @property
    def num_frames(self) -> int:
        return int(self.feature_lens_B.sum())

    def to(self, device: torch.device | str) -> Batch:
        return replace(
            self,
            features_BTF=self.features_BTF.to(device, non_blocking=True),
            feature_lens_B=self.feature_lens_B.to(device, non_blocking=True),
            targets_BU=self.targets_BU.to(device, non_blocking=True),
            target_lens_B=self.target_lens_B.to(device, non_blocking=True),
        )
