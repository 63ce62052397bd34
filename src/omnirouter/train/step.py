"""One optimiser step: micro-batches with gradient accumulation, fp32 CTC, clipping, and a skip
when the loss or the gradient is not finite on any device.

Shape legend: B batch, E experts.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, fields

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from omnirouter.data.batch import Batch
from omnirouter.model.ctc_model import ModelOutput
from omnirouter.train.config import LossConfig
from omnirouter.train.distributed import Runtime, all_ranks_agree, sum_over_ranks
from omnirouter.train.losses import LossTerms, total_loss


@dataclass(frozen=True)
class MicroBatchLosses:
    """One micro-batch's loss terms (`losses.LossTerms`) on the host, read back by name from the
    step's one copy to the host."""

    ctc: float
    load_balance: float
    z_loss: float
    total: float
    ctc_sum: float  # summed over utterances: ÷ target tokens = per token

    @staticmethod
    def row(terms: LossTerms) -> torch.Tensor:
        """(5,) the terms in field order, detached, in fp32, still on the device."""
        return torch.stack([getattr(terms, name) for name in _LOSS_NAMES]).detach().float()

    @classmethod
    def from_row(cls, values: list[float]) -> MicroBatchLosses:
        return cls(**dict(zip(_LOSS_NAMES, values, strict=True)))


_LOSS_NAMES = tuple(member.name for member in fields(MicroBatchLosses))


@dataclass
class StepStats:
    """Sums over the micro-batches of one step (or over several steps, between two logs)."""

    ctc_loss: float = 0.0
    load_balance_loss: float = 0.0
    z_loss: float = 0.0
    total_loss: float = 0.0
    micro_batches: int = 0
    audio_seconds: float = 0.0
    # For the CTC loss per target token, which a dev loss can be compared with whatever the
    # batches' utterance lengths (the mean per utterance follows them).
    ctc_loss_sum: float = 0.0
    target_tokens: int = 0
    expert_counts: list[torch.Tensor] = field(default_factory=list)  # per MoE layer, (E,)

    def add(self, other: StepStats) -> None:
        self.ctc_loss += other.ctc_loss
        self.load_balance_loss += other.load_balance_loss
        self.z_loss += other.z_loss
        self.total_loss += other.total_loss
        self.micro_batches += other.micro_batches
        self.audio_seconds += other.audio_seconds
        self.ctc_loss_sum += other.ctc_loss_sum
        self.target_tokens += other.target_tokens
        if not self.expert_counts:
            self.expert_counts = [counts.clone() for counts in other.expert_counts]
        else:
            for mine, theirs in zip(self.expert_counts, other.expert_counts):
                mine += theirs

    def expert_load(self) -> list[list[float]]:
        return [(counts / counts.sum().clamp(min=1)).tolist() for counts in self.expert_counts]

    def summed_over_ranks(self, runtime: Runtime) -> StepStats:
        """These sums added over every rank: the numbers in one all-reduce (in float64, which
        holds the counts exactly), the expert counts in one per MoE layer."""
        names = [member.name for member in fields(self) if member.name != "expert_counts"]
        values = torch.tensor(
            [getattr(self, name) for name in names], dtype=torch.float64, device=runtime.device
        )
        totals = dict(zip(names, sum_over_ranks(runtime, values).tolist(), strict=True))
        totals["micro_batches"] = round(totals["micro_batches"])
        totals["target_tokens"] = round(totals["target_tokens"])
        return StepStats(
            **totals,
            expert_counts=[
                sum_over_ranks(runtime, counts.to(runtime.device)).cpu()
                for counts in self.expert_counts
            ],
        )


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
    """One optimiser step. Host syncs: two per step whatever the number of micro-batches and
    MoE layers (the loss values and the gradient norm in one copy, the expert counts in
    another), plus one all-reduce of the finiteness flag under DDP."""
    optimizer.zero_grad(set_to_none=True)
    rows: list[torch.Tensor] = []  # per micro-batch: its MicroBatchLosses, on the device
    counts: list[torch.Tensor] = []  # per micro-batch and MoE layer: frames per expert
    audio_seconds, target_tokens = 0.0, 0
    for index, batch in enumerate(micro_batches):
        audio_seconds += batch.num_frames * frame_shift_seconds  # lengths are on the host
        target_tokens += int(batch.target_lens_B.sum())
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
                intermediate_ctc_weight=loss_config.intermediate_ctc_weight,
            )
            # Backward even when not finite: every DDP rank must join the same all-reduce.
            # nan_to_num is the identity on a finite loss, so no host sync is needed to choose.
            loss = torch.nan_to_num(
                terms.total / len(micro_batches), nan=0.0, posinf=0.0, neginf=0.0
            )
            loss.backward()
        rows.append(MicroBatchLosses.row(terms))
        counts += [
            torch.bincount(routing.experts_NK[:, 0], minlength=routing.num_experts).float()
            for routing in output.routing
        ]

    losses, grad_norm_value = _to_host(rows, _clip(model, grad_clip_norm))
    finite = all(math.isfinite(micro.total) for micro in losses)
    finite = all_ranks_agree(runtime, finite and math.isfinite(grad_norm_value))
    if finite:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    stats = StepStats(
        ctc_loss=sum(micro.ctc for micro in losses),
        load_balance_loss=sum(micro.load_balance for micro in losses),
        z_loss=sum(micro.z_loss for micro in losses),
        total_loss=sum(micro.total for micro in losses),
        micro_batches=len(micro_batches),
        audio_seconds=audio_seconds,
        ctc_loss_sum=sum(micro.ctc_sum for micro in losses),
        target_tokens=target_tokens,
        expert_counts=_expert_counts(counts, len(micro_batches)),
    )
    return StepResult(applied=finite, grad_norm=grad_norm_value, stats=stats)


def _to_host(
    rows: list[torch.Tensor], grad_norm: torch.Tensor
) -> tuple[list[MicroBatchLosses], float]:
    """The step's one copy to the host: every micro-batch's losses and the gradient norm."""
    *values, grad_norm_value = torch.cat(
        [torch.stack(rows).flatten(), grad_norm.reshape(1).float()]
    ).tolist()
    width = len(_LOSS_NAMES)
    losses = [
        MicroBatchLosses.from_row(values[start : start + width])
        for start in range(0, len(values), width)
    ]
    return losses, grad_norm_value


def _clip(model: nn.Module, max_norm: float) -> torch.Tensor:
    """The total gradient norm (before clipping), as a tensor on the device."""
    parameters = [p for p in model.parameters() if p.grad is not None]
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    return torch.nn.utils.get_total_norm([p.grad for p in parameters])


def _expert_counts(counts: list[torch.Tensor], micro_batches: int) -> list[torch.Tensor]:
    """Per MoE layer, frames per expert summed over the micro-batches (one copy to the host)."""
    if not counts:
        return []
    per_batch = torch.stack(counts).cpu().view(micro_batches, -1, counts[0].shape[0])
    return list(per_batch.sum(dim=0).unbind(0))
