"""The CTC Transformer encoder shared by the dense, Switch and Omni-router families.

features → stack 4 frames → Linear → positions → N pre-LN blocks (attention, FFN | MoE)
→ LayerNorm → Linear to the vocabulary (index 0 is the CTC blank) → log-softmax.
Optionally (`ModelConfig.intermediate_ctc_layers`) the same LayerNorm and head also predict after
some blocks, for intermediate CTC losses, and with self-conditioning that prediction is fed back.

Shape legend: B batch, T frames, F feature bins, D model dim, V vocabulary (blank included).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from omnirouter.model.config import Family, ModelConfig, PositionEncoding
from omnirouter.model.frontend import (
    CapePositions,
    ConvolutionalPositions,
    FrameStacker,
    SinusoidalPositions,
    valid_mask,
)
from omnirouter.model.moe import Experts, MoEFeedForward, Router
from omnirouter.model.routing import RoutingInfo, RoutingIntervention
from omnirouter.model.transformer import Block, FeedForward

BLANK_ID = 0


@dataclass(frozen=True)
class ModelOutput:
    log_probs_BTV: torch.Tensor  # fp32 log-softmax over the vocabulary
    lengths_B: torch.Tensor  # valid output steps per utterance
    routing: tuple[RoutingInfo, ...]  # one per MoE layer, in depth order; empty for dense
    # Intermediate CTC: fp32 log-probs after each `intermediate_ctc_layers` block, in depth
    # order, while training or self-conditioning (empty otherwise).
    intermediate_log_probs_BTV: tuple[torch.Tensor, ...] = ()

    @property
    def valid_BT(self) -> torch.Tensor:
        return valid_mask(self.lengths_B, self.log_probs_BTV.shape[1])


class CtcModel(nn.Module):
    def __init__(
        self,
        frontend: FrameStacker,
        positions: nn.Module,
        blocks: list[Block],
        routers: list[Router],
        model_dim: int,
        vocab_size: int,
        dropout: float,
        intermediate_ctc_layers: Sequence[int] = (),
        self_conditioning: bool = False,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.positions = positions
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(blocks)
        # The model owns its routers (one for omni, one per MoE layer for switch); the MoE
        # layers hold references, so each router weight appears once in the state dict.
        self.routers = nn.ModuleList(routers)
        self.final_norm = nn.LayerNorm(model_dim)
        self.head = nn.Linear(model_dim, vocab_size)
        self.intermediate_ctc_layers = frozenset(intermediate_ctc_layers)
        # One projection for every conditioned block, as in Nozaki & Komatsu's recipe.
        self.conditioning = nn.Linear(vocab_size, model_dim) if self_conditioning else None

    def forward(
        self,
        features_BTF: torch.Tensor,
        feature_lens_B: torch.Tensor,
        override: RoutingIntervention | None = None,
    ) -> ModelOutput:
        x_BTD, lengths_B = self.frontend(features_BTF, feature_lens_B)
        x_BTD = self.input_dropout(self.positions(x_BTD, lengths_B))
        valid_BT = valid_mask(lengths_B, x_BTD.shape[1])
        routing: list[RoutingInfo] = []
        intermediate: list[torch.Tensor] = []
        predicts_inside = self.training or self.conditioning is not None
        for layer, block in enumerate(self.blocks):
            x_BTD, layer_routing = block(x_BTD, valid_BT, override)
            if layer_routing is not None:
                routing.append(layer_routing)
            if predicts_inside and layer in self.intermediate_ctc_layers:
                logits_BTV = self.head(self.final_norm(x_BTD))
                intermediate.append(logits_BTV.float().log_softmax(dim=-1))
                if self.conditioning is not None:
                    x_BTD = x_BTD + self.conditioning(logits_BTV.softmax(dim=-1))
        logits_BTV = self.head(self.final_norm(x_BTD))
        # CTC wants fp32 log-probs even when the body ran in bf16.
        log_probs_BTV = logits_BTV.float().log_softmax(dim=-1)
        return ModelOutput(log_probs_BTV, lengths_B, tuple(routing), tuple(intermediate))


def build_model(config: ModelConfig, vocab_size: int) -> CtcModel:
    """Build the whole structure in one place; routers are created here and injected."""
    moe_layers = set(config.moe_layer_indices())
    routers: list[Router] = []
    router_of_layer: dict[int, Router] = {}
    for router_id, group in enumerate(config.router_groups()):
        # One Router object per group: for omni, the SAME module goes to every MoE layer.
        shared = Router(config.model_dim, config.num_experts, router_id=router_id)
        routers.append(shared)
        router_of_layer.update({layer: shared for layer in group})

    blocks = []
    for layer in range(config.num_layers):
        feed_forward: FeedForward | MoEFeedForward
        if layer in moe_layers:
            experts = Experts(
                config.num_experts,
                config.model_dim,
                config.ffn_dim,
                config.activation,
                config.dropout,
            )
            feed_forward = MoEFeedForward(
                router=router_of_layer[layer],
                experts=experts,
                layer=layer,
                top_k=config.top_k,
                renormalize_top_k=config.renormalize_top_k,
                router_jitter=config.router_jitter,
                dispatch=config.dispatch,
                register_router=False,
            )
        else:
            feed_forward = FeedForward(
                config.model_dim, config.ffn_dim, config.activation, config.dropout
            )
        blocks.append(
            Block(
                config.model_dim,
                config.num_heads,
                feed_forward,
                config.dropout,
                config.attention_dropout,
            )
        )

    positions: nn.Module
    if config.position is PositionEncoding.cape:
        positions = CapePositions(
            config.model_dim,
            config.cape_max_global_shift,
            config.cape_max_local_shift,
            config.cape_max_global_scale,
        )
    elif config.position is PositionEncoding.convolution:
        groups = math.gcd(config.model_dim, config.conv_position_groups)
        positions = ConvolutionalPositions(config.model_dim, config.conv_position_kernel, groups)
    else:
        positions = SinusoidalPositions(config.model_dim)
    frontend = FrameStacker(config.input_dim, config.stack_frames, config.model_dim)
    return CtcModel(
        frontend,
        positions,
        blocks,
        routers,
        config.model_dim,
        vocab_size,
        config.dropout,
        config.intermediate_ctc_layers,
        config.self_conditioning,
    )


def count_parameters(model: nn.Module) -> int:
    """Parameters counted once each (a shared router is one tensor however often it is used)."""
    return sum(parameter.numel() for parameter in model.parameters())


__all__ = ["BLANK_ID", "CtcModel", "Family", "ModelOutput", "build_model", "count_parameters"]
