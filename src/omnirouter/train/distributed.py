"""torchrun: one process per device (chosen by `omnirouter.devices`), DistributedDataParallel,
gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from omnirouter.devices import choose_device


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int  # global rank, 0 when not distributed
    world_size: int
    autocast_dtype: torch.dtype | None  # bf16 under autocast, or None for full fp32

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start_runtime(device_name: str, precision: str) -> Runtime:
    """Join the torchrun group when launched by torchrun (WORLD_SIZE > 1), else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = choose_device(device_name)
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return Runtime(device, rank, world_size, torch.bfloat16 if use_bf16 else None)


def stop_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_ranks_agree(runtime: Runtime, flag: bool) -> bool:
    """True when `flag` is true on every rank (e.g. "this step's loss is finite")."""
    if not runtime.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=runtime.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)


def any_rank(runtime: Runtime, flag: bool) -> bool:
    """True when `flag` is true on at least one rank (e.g. "a stop was asked for here")."""
    return not all_ranks_agree(runtime, not flag)


def sum_over_ranks(runtime: Runtime, values: torch.Tensor) -> torch.Tensor:
    if runtime.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def broadcast_flag(runtime: Runtime, flag: bool) -> bool:
    """Rank 0's decision (e.g. early stop) made known to every rank."""
    if not runtime.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=runtime.device)
    dist.broadcast(value, src=0)
    return bool(value.item() > 0.5)
