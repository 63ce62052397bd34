"""Pre-LayerNorm Transformer encoder blocks whose FFN is either dense or a mixture of experts.

Both FFNs answer the same call, `ffn(x_BTD, valid_BT, intervention)` → `FeedForwardOutput`, so a
block runs either without asking which it has.

Shape legend: B batch, T frames, D model dim, F FFN dim, H heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from omnirouter.model.config import Activation
from omnirouter.model.routing import RoutingInfo, RoutingIntervention

if TYPE_CHECKING:  # moe.py imports FeedForwardOutput from here
    from omnirouter.model.moe import MoEFeedForward


class SelfAttention(nn.Module):
    """Multi-head self-attention; padded keys are masked out."""

    def __init__(self, model_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(model_dim, 3 * model_dim)
        self.out = nn.Linear(model_dim, model_dim)
        self.dropout = dropout

    def forward(self, x_BTD: torch.Tensor, valid_BT: torch.Tensor) -> torch.Tensor:
        batch, steps, model_dim = x_BTD.shape
        head_dim = model_dim // self.num_heads
        qkv = self.qkv(x_BTD).view(batch, steps, 3, self.num_heads, head_dim)
        query_BHTd, key_BHTd, value_BHTd = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        key_mask_B11T = valid_BT[:, None, None, :]
        attended_BHTd = F.scaled_dot_product_attention(
            query_BHTd,
            key_BHTd,
            value_BHTd,
            attn_mask=key_mask_B11T,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(attended_BHTd.transpose(1, 2).reshape(batch, steps, model_dim))


@dataclass(frozen=True)
class FeedForwardOutput:
    """What a block's FFN returns, dense or MoE."""

    out_BTD: torch.Tensor  # the FFN's output, before the residual's dropout
    routing: RoutingInfo | None  # the MoE layer's routing; None for a dense FFN


class FeedForward(nn.Module):
    """The dense FFN: Linear(D, F) → activation → dropout → Linear(F, D)."""

    is_moe = False

    def __init__(
        self, model_dim: int, ffn_dim: int, activation: Activation, dropout: float
    ) -> None:
        super().__init__()
        self.up = nn.Linear(model_dim, ffn_dim)
        self.down = nn.Linear(ffn_dim, model_dim)
        self.activation = F.gelu if activation is Activation.gelu else F.relu
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x_BTD: torch.Tensor,
        valid_BT: torch.Tensor,
        intervention: RoutingIntervention | None = None,
    ) -> FeedForwardOutput:
        """The MoE layer's call. Every frame, padding included, goes through the one FFN, so
        the mask is not needed; nor is an intervention, with no routing to change."""
        out_BTD = self.down(self.dropout(self.activation(self.up(x_BTD))))
        return FeedForwardOutput(out_BTD, routing=None)


class Block(nn.Module):
    """x + Attention(LN(x)), then x + FFN(LN(x)); the FFN is dense or MoE, called alike."""

    def __init__(
        self,
        model_dim: int,
        num_heads: int,
        feed_forward: FeedForward | MoEFeedForward,
        dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(model_dim)
        self.attention = SelfAttention(model_dim, num_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(model_dim)
        self.feed_forward = feed_forward
        self.dropout = nn.Dropout(dropout)

    @property
    def is_moe(self) -> bool:
        return self.feed_forward.is_moe

    def forward(
        self,
        x_BTD: torch.Tensor,
        valid_BT: torch.Tensor,
        intervention: RoutingIntervention | None = None,
    ) -> tuple[torch.Tensor, RoutingInfo | None]:
        x_BTD = x_BTD + self.dropout(self.attention(self.attention_norm(x_BTD), valid_BT))
        ffn = self.feed_forward(self.ffn_norm(x_BTD), valid_BT, intervention)
        return x_BTD + self.dropout(ffn.out_BTD), ffn.routing
