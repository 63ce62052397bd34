"""Configuration of a training run: the model, the data and the recipe, one YAML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from omnirouter.config import require
from omnirouter.data.config import DataConfig
from omnirouter.model.config import ModelConfig
from omnirouter.train.schedule import ScheduleConfig


@dataclass(frozen=True)
class OptimizerConfig:
    peak_lr: float = 1e-3  # paper §V-C
    weight_decay: float = 0.01  # AdamW, paper §V-C
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8
    grad_clip_norm: float = 0.1  # paper §V-C; 0 disables clipping

    def __post_init__(self) -> None:
        key = "train.optimizer."
        require(self.peak_lr > 0, key + "peak_lr", "> 0", self.peak_lr)
        require(self.weight_decay >= 0, key + "weight_decay", ">= 0", self.weight_decay)
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            require(0 <= value < 1, key + name, "in [0, 1)", value)
        require(self.eps > 0, key + "eps", "> 0", self.eps)
        require(self.grad_clip_norm >= 0, key + "grad_clip_norm", ">= 0", self.grad_clip_norm)


class BalanceLoss(str, Enum):
    paper = "paper"  # paper eq. (4): ρ_j sums P_ij over the frames routed to j, divided by T
    switch = "switch"  # Fedus et al. 2022: ρ_j is the mean of P_ij over all frames


class CtcReduction(str, Enum):
    # Per-utterance negative log-likelihood (summed over its frames), averaged over the batch.
    # The convention of wav2letter/flashlight, where the paper's authors' earlier work was done;
    # it keeps the CTC term large relative to the load-balance term, which is what a weight of 10
    # "based on its relative scale compared to the CTC loss" (paper §V-C) suggests.
    utterance_mean = "utterance_mean"
    # PyTorch's "mean": each utterance's loss divided by its target length, then averaged.
    token_mean = "token_mean"


@dataclass(frozen=True)
class LossConfig:
    load_balance_weight: float = 10.0  # paper §V-C
    balance_form: BalanceLoss = BalanceLoss.paper  # eq. (4) as written, or the Switch original
    z_loss_weight: float = 0.0  # ST-MoE router z-loss; off in the paper
    ctc_reduction: CtcReduction = CtcReduction.utterance_mean  # see CtcReduction
    # With model.intermediate_ctc_layers: the CTC term is (1 - w) · final CTC + w · the mean of
    # the intermediate CTCs (Lee & Watanabe 2021 use w = 0.3 for one intermediate layer).
    intermediate_ctc_weight: float = 0.3

    def __post_init__(self) -> None:
        for name in ("load_balance_weight", "z_loss_weight"):
            value = getattr(self, name)
            require(value >= 0, f"train.loss.{name}", ">= 0", value)
        weight = self.intermediate_ctc_weight
        require(0 <= weight < 1, "train.loss.intermediate_ctc_weight", "in [0, 1)", weight)


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 1_000_000  # optimiser steps (paper: up to 1M)
    grad_accumulation: int = 1  # micro-batches per optimiser step and device
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1" ...
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", "bf16"
    log_every: int = 50  # steps between metrics records
    valid_every: int = 2000  # steps between dev WER measurements; 0 = never
    valid_max_utterances: int = 0  # dev utterances decoded per validation; 0 = all
    checkpoint_every: int = 2000  # steps between checkpoints (one is also written at the end)
    keep_last: int = 3  # newest step checkpoints kept besides best.pt; 0 = keep them all
    early_stop_patience: int = 0  # validations without a better dev WER before stopping; 0 = off
    early_stop_min_delta: float = 0.0  # WER points an improvement must exceed
    max_consecutive_nonfinite: int = 20  # skipped non-finite steps in a row before giving up
    progress: bool = True  # a progress bar on the console
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "grad_accumulation",
            "log_every",
            "checkpoint_every",
            "max_consecutive_nonfinite",
        ):
            require(getattr(self, name) >= 1, f"train.{name}", ">= 1", getattr(self, name))
        for name in (
            "valid_every",
            "valid_max_utterances",
            "keep_last",
            "early_stop_patience",
            "early_stop_min_delta",
        ):
            require(getattr(self, name) >= 0, f"train.{name}", ">= 0", getattr(self, name))
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"train.precision={self.precision!r}: use auto, fp32 or bf16")


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run depends on; saved as EXP/config.yaml and in every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
