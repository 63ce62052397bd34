"""A stated latency model for offloaded experts, with the parameter sizes of our presets.

Streaming decoding at batch 1 is memory-bound: computing a layer costs the time to read its
active weights (attention and one expert, bf16) from fast memory. An expert that is not cached
must first come from slow memory:

    compute per layer  = (attention + one expert) bytes / fast bandwidth
    fetch per expert   = expert bytes / slow bandwidth
    step latency       = L · compute
                         + demand loads per step · fetch              (the layer waits)
                         + prefetch loads per step · max(0, fetch − overlap)

A prefetch is issued one layer ahead, so its transfer overlaps the compute between the
prediction and the use and only the excess stalls: a whole layer (`overlap="layer"`) for a
prediction known when the current layer routes, only the next block's attention
(`overlap="attention"`) for the lookahead, known once the current block is done. A wasted
prefetch still occupies the link. Loads per step are measured on a
trace and, for a preset of another depth, scaled per layer access (rates per access × L). The
model ignores attention over past steps, the CTC head and the link's latency: it compares
policies, it does not predict a device.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch

from omnirouter.model.config import ModelConfig
from omnirouter.model.ctc_model import build_model, count_parameters
from omnirouter.model.moe import MoEFeedForward
from omnirouter.model.presets import PAPER_VOCAB_SIZE, preset
from omnirouter.offload.cache import CacheStats

BYTES_PER_PARAMETER = 2  # bf16


@dataclass(frozen=True)
class MemorySystem:
    name: str
    fast_gb_per_s: float  # where the cached experts and the rest of the model are read from
    slow_gb_per_s: float  # where the offloaded experts live


MEMORY_SYSTEMS = (
    MemorySystem("GPU HBM + host RAM over PCIe 4.0 x16", fast_gb_per_s=2000.0, slow_gb_per_s=25.0),
    MemorySystem("phone LPDDR5 + UFS 4.0 flash", fast_gb_per_s=60.0, slow_gb_per_s=4.0),
)


@dataclass(frozen=True)
class ModelSize:
    name: str
    parameters: int  # all of them, every expert included (a shared router counted once)
    num_layers: int  # MoE layers
    num_experts: int
    expert_bytes: int
    layer_active_bytes: int  # attention + norms + one expert
    attention_bytes: int

    @classmethod
    def of(cls, name: str, config: ModelConfig, vocab_size: int) -> ModelSize:
        """Sizes read off the model itself, built on the meta device (no memory, no time)."""
        with torch.device("meta"):
            model = build_model(config, vocab_size)
        block = next(block for block in model.blocks if block.is_moe)
        assert isinstance(block.feed_forward, MoEFeedForward)
        expert = count_parameters(block.feed_forward.experts) // config.num_experts
        attention = count_parameters(block.attention)
        norms = count_parameters(block.attention_norm) + count_parameters(block.ffn_norm)
        return cls(
            name=name,
            parameters=count_parameters(model),
            num_layers=len(config.moe_layer_indices()),
            num_experts=config.num_experts,
            expert_bytes=expert * BYTES_PER_PARAMETER,
            layer_active_bytes=(attention + norms + expert) * BYTES_PER_PARAMETER,
            attention_bytes=attention * BYTES_PER_PARAMETER,
        )


@functools.cache
def paper_sizes(family: str, num_experts: int) -> tuple[ModelSize, ...]:
    """The paper's trunks (84M, 140M, 200M dense) as MoE models of `num_experts` experts."""
    sizes = []
    for trunk in ("paper-84m", "paper-140m", "paper-200m"):
        size = ModelSize.of(trunk, preset(trunk, family, num_experts), PAPER_VOCAB_SIZE)
        name = f"{trunk} ×{num_experts} ({size.parameters / 1e6:.0f}M)"
        sizes.append(dataclasses.replace(size, name=name))
    return tuple(sizes)


def step_latency_ms(
    stats: CacheStats, size: ModelSize, memory: MemorySystem, overlap: str = "layer"
) -> float:
    """Modelled milliseconds per step of `size` on `memory`, with the trace's load rates per
    layer access (so the trace's own depth drops out)."""
    if overlap not in ("layer", "attention"):
        raise ValueError(f"overlap is 'layer' or 'attention', not {overlap!r}")
    compute = size.layer_active_bytes / (memory.fast_gb_per_s * 1e9)
    hidden_bytes = size.layer_active_bytes if overlap == "layer" else size.attention_bytes
    hidden = hidden_bytes / (memory.fast_gb_per_s * 1e9)
    fetch = size.expert_bytes / (memory.slow_gb_per_s * 1e9)
    demand_rate = stats.demand_loads / stats.accesses
    prefetch_rate = stats.prefetch_loads / stats.accesses
    seconds = size.num_layers * (
        compute + demand_rate * fetch + prefetch_rate * max(0.0, fetch - hidden)
    )
    return 1e3 * seconds


def resident_latency_ms(size: ModelSize, memory: MemorySystem) -> float:
    """Every expert in fast memory: the bound no cache can beat."""
    return 1e3 * size.num_layers * size.layer_active_bytes / (memory.fast_gb_per_s * 1e9)
