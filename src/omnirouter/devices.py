"""Choosing the device a command runs on: one rule for training, evaluation and analysis."""

from __future__ import annotations

import torch


def choose_device(name: str) -> torch.device:
    """'auto' is CUDA when there is one, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return device
