"""SpecAugment (Park et al. 2019) on one utterance's (T, F) features, training only.

Paper §V-C: 2 frequency masks of width up to 30 bins and 10 time masks of width up to 50 frames
and up to 10% of the utterance's frames (a per-mask bound, as in flashlight's SpecAugment), no
time warping unless configured.

Our own small implementation rather than Lhotse's `SpecAugment`: Lhotse draws from Python's and
torch's global RNGs inside the worker processes, so a run resumed mid-epoch would see different
masks. Here every random draw comes from an explicit `torch.Generator` that the dataset seeds from
(seed, epoch, utterance id), so the masks are a pure function of those three.

Shape legend: T frames, F feature bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omnirouter.config import require


@dataclass(frozen=True)
class SpecAugmentConfig:
    enabled: bool = True  # applies to training batches only, never to evaluation
    num_freq_masks: int = 2
    max_freq_width: int = 30  # bins per frequency mask, drawn uniformly from [0, max]
    num_time_masks: int = 10
    max_time_width: int = 50  # frames per time mask, drawn uniformly from [0, bound]
    max_time_ratio: float = 0.1  # ... where bound = min(max_time_width, ratio × T)
    max_time_warp: int = 0  # frames a warp point may move; 0 = no time warping

    def __post_init__(self) -> None:
        key = "data.spec_augment."
        for name in (
            "num_freq_masks",
            "max_freq_width",
            "num_time_masks",
            "max_time_width",
            "max_time_warp",
        ):
            require(getattr(self, name) >= 0, key + name, ">= 0", getattr(self, name))
        ratio = self.max_time_ratio
        require(0.0 <= ratio <= 1.0, key + "max_time_ratio", "in [0, 1]", ratio)


@dataclass(frozen=True)
class Span:
    start: int
    width: int

    @property
    def end(self) -> int:
        return self.start + self.width


@dataclass(frozen=True)
class MaskPlan:
    """The masks drawn for one utterance."""

    time_spans: tuple[Span, ...]
    freq_spans: tuple[Span, ...]


def draw_masks(
    num_frames: int, num_bins: int, config: SpecAugmentConfig, generator: torch.Generator
) -> MaskPlan:
    max_time_width = min(config.max_time_width, int(config.max_time_ratio * num_frames))
    time_spans = tuple(
        _draw_span(num_frames, max_time_width, generator) for _ in range(config.num_time_masks)
    )
    freq_spans = tuple(
        _draw_span(num_bins, min(config.max_freq_width, num_bins), generator)
        for _ in range(config.num_freq_masks)
    )
    return MaskPlan(time_spans=time_spans, freq_spans=freq_spans)


def apply_masks(features_TF: torch.Tensor, plan: MaskPlan) -> torch.Tensor:
    """A copy whose masked regions hold the utterance's mean (0 once normalised per utterance)."""
    masked_TF = features_TF.clone()
    fill = features_TF.mean() if features_TF.numel() else 0.0
    for span in plan.time_spans:
        masked_TF[span.start : span.end, :] = fill
    for span in plan.freq_spans:
        masked_TF[:, span.start : span.end] = fill
    return masked_TF


def spec_augment(
    features_TF: torch.Tensor, config: SpecAugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Time warp (if configured), then frequency and time masks; all draws from `generator`."""
    if not config.enabled:
        return features_TF
    if config.max_time_warp > 0:
        features_TF = time_warp(features_TF, config.max_time_warp, generator)
    plan = draw_masks(features_TF.shape[0], features_TF.shape[1], config, generator)
    return apply_masks(features_TF, plan)


def time_warp(features_TF: torch.Tensor, max_warp: int, generator: torch.Generator) -> torch.Tensor:
    """Move a random frame c by up to ±max_warp frames, stretching the two sides linearly."""
    num_frames = features_TF.shape[0]
    if num_frames <= 2 * max_warp + 1:
        return features_TF
    center = int(torch.randint(max_warp, num_frames - max_warp, (1,), generator=generator))
    shift = int(torch.randint(-max_warp, max_warp + 1, (1,), generator=generator))
    warped = center + shift
    if warped == center:
        return features_TF
    left_1FT = features_TF[:center].T.unsqueeze(0)
    right_1FT = features_TF[center:].T.unsqueeze(0)
    resize = torch.nn.functional.interpolate
    left_1FT = resize(left_1FT, size=warped, mode="linear", align_corners=False)
    right_1FT = resize(right_1FT, size=num_frames - warped, mode="linear", align_corners=False)
    return torch.cat([left_1FT, right_1FT], dim=-1)[0].T.contiguous()


def _draw_span(length: int, max_width: int, generator: torch.Generator) -> Span:
    width = int(torch.randint(0, max_width + 1, (1,), generator=generator)) if max_width > 0 else 0
    start = int(torch.randint(0, length - width + 1, (1,), generator=generator))
    return Span(start=start, width=width)
