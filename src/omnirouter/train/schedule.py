"""The paper's learning-rate schedule (§V-C): linear warm-up, cosine decay, then step decay.

1. steps [0, warmup):                 peak · (step + 1) / warmup
2. steps [warmup, warmup + cosine):   cosine from peak down to peak · cosine_final_ratio
3. afterwards:                        peak · cosine_final_ratio · factor^k once k blocks of
                                      `step_decay_every` steps have passed (paper: factor 0.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omnirouter.config import require


@dataclass(frozen=True)
class ScheduleConfig:
    warmup_steps: int = 64_000  # paper: 64k
    cosine_steps: int = 60_000  # paper: 60k
    # The paper does not say where the cosine ends; decaying to 0 would leave nothing to step-decay.
    cosine_final_ratio: float = 0.1
    step_decay_every: int = 50_000  # K: the paper does not give it
    step_decay_factor: float = 0.5  # paper: 0.5

    def __post_init__(self) -> None:
        key = "train.schedule."
        require(self.warmup_steps >= 0, key + "warmup_steps", ">= 0", self.warmup_steps)
        require(self.cosine_steps >= 0, key + "cosine_steps", ">= 0", self.cosine_steps)
        final = self.cosine_final_ratio
        require(0 <= final <= 1, key + "cosine_final_ratio", "in [0, 1]", final)
        require(self.step_decay_every >= 1, key + "step_decay_every", ">= 1", self.step_decay_every)
        factor = self.step_decay_factor
        require(0 < factor <= 1, key + "step_decay_factor", "in (0, 1]", factor)


def lr_multiplier(step: int, config: ScheduleConfig) -> float:
    """Learning rate at optimiser step `step` (0-based) as a fraction of the peak LR."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    into_cosine = step - config.warmup_steps
    final = config.cosine_final_ratio
    if into_cosine < config.cosine_steps:
        progress = into_cosine / config.cosine_steps
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    completed_blocks = (into_cosine - config.cosine_steps) // config.step_decay_every
    return final * config.step_decay_factor**completed_blocks


def scaled(config: ScheduleConfig, factor: float) -> ScheduleConfig:
    """The same shape over `factor` times as many steps (small runs scale the paper's counts)."""
    return ScheduleConfig(
        warmup_steps=max(1, round(config.warmup_steps * factor)),
        cosine_steps=max(1, round(config.cosine_steps * factor)),
        cosine_final_ratio=config.cosine_final_ratio,
        step_decay_every=max(1, round(config.step_decay_every * factor)),
        step_decay_factor=config.step_decay_factor,
    )
