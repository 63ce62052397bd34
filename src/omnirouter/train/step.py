"""One optimiser step: micro-batches with gradient accumulation, fp32 CTC, clipping, and a skip
when the loss or the gradient is not finite on any device.

Shape legend: B batch, E experts.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from omnirouter.data.batch import Batch
from omnirouter.model.ctc_model import ModelOutput
from omnirouter.train.config import LossConfig
from omnirouter.train.distributed import Runtime, all_ranks_agree
from omnirouter.train.losses import LossTerms, total_loss


@dataclass
class StepStats:
    """Sums over the micro-batches of one step (or over several steps, between two logs)."""

    ctc_loss: float = 0.0
    load_balance_loss: float = 0.0
    z_loss: float = 0.0
    total_loss: float = 0.0
    micro_batches: int = 0
    audio_seconds: float = 0.0
    expert_counts: list[torch.Tensor] = field(default_factory=list)  # per MoE layer, (E,)

    def add(self, other: StepStats) -> None:
        self.ctc_loss += other.ctc_loss
        self.load_balance_loss += other.load_balance_loss
        self.z_loss += other.z_loss
        self.total_loss += other.total_loss
        self.micro_batches += other.micro_batches
        self.audio_seconds += other.audio_seconds
        if not self.expert_counts:
            self.expert_counts = [counts.clone() for counts in other.expert_counts]
        else:
            for mine, theirs in zip(self.expert_counts, other.expert_counts):
                mine += theirs

    def expert_load(self) -> list[list[float]]:
        return [(counts / counts.sum().clamp(min=1)).tolist() for counts in self.expert_counts]


@dataclass(frozen=True)
class StepResult:
    applied: bool  # False when the step was skipped for a non-finite loss or gradient
    grad_norm: float
    stats: StepStats


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: list[Batch],
    runtime: Runtime,
    loss_config: LossConfig,
    grad_clip_norm: float,
    frame_shift_seconds: float,
) -> StepResult:
    stats = StepStats()
    finite = True
    optimizer.zero_grad(set_to_none=True)
    for index, batch in enumerate(micro_batches):
        batch = batch.to(runtime.device)
        is_last = index == len(micro_batches) - 1
        # DDP: all-reduce gradients once, on the last micro-batch.
        sync = (
            model.no_sync()
            if isinstance(model, DistributedDataParallel) and not is_last
            else contextlib.nullcontext()
        )
        with sync:
            with torch.autocast(
                runtime.device.type,
                dtype=runtime.autocast_dtype or torch.bfloat16,
                enabled=runtime.autocast_dtype is not None,
            ):
                output: ModelOutput = model(batch.features_BTF, batch.feature_lens_B)
            terms = total_loss(
                output,
                batch.targets_BU,
                batch.target_lens_B,
                load_balance_weight=loss_config.load_balance_weight,
                balance_form=loss_config.balance_form,
                z_loss_weight=loss_config.z_loss_weight,
                ctc_reduction=loss_config.ctc_reduction,
            )
            finite = finite and bool(torch.isfinite(terms.total))
            # Backward even when not finite: every DDP rank must join the same all-reduce.
            loss = terms.total / len(micro_batches)
            loss = torch.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0) if not finite else loss
            loss.backward()
        _accumulate(stats, terms, output, batch, frame_shift_seconds)

    grad_norm = _clip(model, grad_clip_norm)
    finite = all_ranks_agree(runtime, finite and math.isfinite(grad_norm))
    if finite:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    return StepResult(applied=finite, grad_norm=grad_norm, stats=stats)


def _clip(model: nn.Module, max_norm: float) -> float:
    parameters = [p for p in model.parameters() if p.grad is not None]
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
    return float(torch.nn.utils.get_total_norm([p.grad for p in parameters]))


def _accumulate(
    stats: StepStats,
    terms: LossTerms,
    output: ModelOutput,
    batch: Batch,
    frame_shift_seconds: float,
) -> None:
    stats.ctc_loss += float(terms.ctc.detach())
    stats.load_balance_loss += float(terms.load_balance.detach())
    stats.z_loss += float(terms.z_loss.detach())
    stats.total_loss += float(terms.total.detach())
    stats.micro_batches += 1
    stats.audio_seconds += batch.num_frames * frame_shift_seconds
    counts = [
        torch.bincount(routing.experts_NK[:, 0].cpu(), minlength=routing.num_experts).float()
        for routing in output.routing
    ]
    stats.add(StepStats(expert_counts=counts))
