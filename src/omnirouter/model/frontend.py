"""From log-mel frames to the Transformer's input: frame stacking and positional information.

Shape legend: B batch, T frames, F feature bins, D model dim.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def stacked_lengths(feature_lens_B: torch.Tensor, stack_frames: int) -> torch.Tensor:
    """Steps after stacking: a partial last group of frames still makes a step (zero-padded)."""
    return torch.div(feature_lens_B + stack_frames - 1, stack_frames, rounding_mode="floor")


def valid_mask(lengths_B: torch.Tensor, max_length: int) -> torch.Tensor:
    """Bool (B, T), True where t < length."""
    steps_T = torch.arange(max_length, device=lengths_B.device)
    return steps_T.unsqueeze(0) < lengths_B.unsqueeze(1)


class FrameStacker(nn.Module):
    """Stack `stack_frames` consecutive frames (paper §V-C: 4 × 10 ms = 40 ms) and project to D."""

    def __init__(self, input_dim: int, stack_frames: int, model_dim: int) -> None:
        super().__init__()
        self.stack_frames = stack_frames
        self.proj = nn.Linear(input_dim * stack_frames, model_dim)

    def forward(
        self, features_BTF: torch.Tensor, feature_lens_B: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, bins = features_BTF.shape
        # Zero the padding first: a step that straddles the end of an utterance must not see
        # whatever the batch was padded with, or its output would depend on its batch-mates.
        features_BTF = features_BTF * valid_mask(feature_lens_B, frames).unsqueeze(-1)
        steps = math.ceil(frames / self.stack_frames)
        pad = steps * self.stack_frames - frames
        if pad:
            features_BTF = nn.functional.pad(features_BTF, (0, 0, 0, pad))
        stacked_BTF = features_BTF.reshape(batch, steps, self.stack_frames * bins)
        return self.proj(stacked_BTF), stacked_lengths(feature_lens_B, self.stack_frames)


def sinusoid_table(positions_BT: torch.Tensor, model_dim: int) -> torch.Tensor:
    """sin/cos embedding of (possibly fractional) positions (Vaswani et al. 2017, §3.5)."""
    half = model_dim // 2
    inv_freq_H = torch.exp(
        -math.log(10000.0)
        * torch.arange(half, device=positions_BT.device, dtype=torch.float32)
        / half
    )
    angles_BTH = positions_BT.float().unsqueeze(-1) * inv_freq_H
    table_BTD = torch.cat([angles_BTH.sin(), angles_BTH.cos()], dim=-1)
    if model_dim % 2:
        table_BTD = nn.functional.pad(table_BTD, (0, 1))
    return table_BTD


class SinusoidalPositions(nn.Module):
    """Adds absolute sinusoidal positions to x (no parameters)."""

    def __init__(self, model_dim: int) -> None:
        super().__init__()
        self.model_dim = model_dim

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor) -> torch.Tensor:
        positions_BT = torch.arange(x_BTD.shape[1], device=x_BTD.device).expand(x_BTD.shape[:2])
        return x_BTD + sinusoid_table(positions_BT, self.model_dim).to(x_BTD.dtype)


class CapePositions(nn.Module):
    """CAPE (Likhomanenko et al. 2021): sinusoidal embeddings of continuous positions that are
    centred per utterance and, while training, randomly shifted (globally and locally) and
    scaled, so the model cannot rely on absolute positions."""

    def __init__(
        self,
        model_dim: int,
        max_global_shift: float,
        max_local_shift: float,
        max_global_scale: float,
    ) -> None:
        super().__init__()
        self.model_dim = model_dim
        self.max_global_shift = max_global_shift
        self.max_local_shift = max_local_shift
        self.max_global_scale = max_global_scale

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x_BTD.shape
        positions_BT = torch.arange(steps, device=x_BTD.device, dtype=torch.float32).expand(
            batch, steps
        )
        # Centre on each utterance's own valid span, so padding does not move its positions.
        positions_BT = positions_BT - (lengths_B.float().unsqueeze(1) - 1) / 2
        if self.training:
            shift_B1 = torch.empty(batch, 1, device=x_BTD.device).uniform_(
                -self.max_global_shift, self.max_global_shift
            )
            local_BT = torch.empty(batch, steps, device=x_BTD.device).uniform_(
                -self.max_local_shift, self.max_local_shift
            )
            log_scale = math.log(self.max_global_scale)
            scale_B1 = (
                torch.empty(batch, 1, device=x_BTD.device).uniform_(-log_scale, log_scale).exp()
            )
            positions_BT = (positions_BT + shift_B1 + local_BT) * scale_B1
        return x_BTD + sinusoid_table(positions_BT, self.model_dim).to(x_BTD.dtype)


class ConvolutionalPositions(nn.Module):
    """Relative positional information from a grouped 1-D convolution over time, added to the
    input (wav2vec 2.0, Baevski et al. 2020, §2): x + GELU(Conv(x)). Padding steps are zeroed
    before the convolution, so an utterance's output does not depend on its batch-mates."""

    def __init__(self, model_dim: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            model_dim, model_dim, kernel_size, padding=kernel_size // 2, groups=groups
        )

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor) -> torch.Tensor:
        valid_BT1 = valid_mask(lengths_B, x_BTD.shape[1]).unsqueeze(-1)
        x_BDT = (x_BTD * valid_BT1).transpose(1, 2)
        return x_BTD + nn.functional.gelu(self.conv(x_BDT)).transpose(1, 2)
