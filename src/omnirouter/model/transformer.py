"""Pre-LayerNorm Transformer encoder blocks whose FFN is either dense or a mixture of experts.

Shape legend: B batch, T frames, D model dim, F FFN dim, H heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omnirouter.model.config import Activation
from omnirouter.model.moe import MoEFeedForward
from omnirouter.model.routing import RoutingInfo, RoutingIntervention


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


class FeedForward(nn.Module):
    """The dense FFN: Linear(D, F) → activation → dropout → Linear(F, D)."""

    def __init__(
        self, model_dim: int, ffn_dim: int, activation: Activation, dropout: float
    ) -> None:
        super().__init__()
        self.up = nn.Linear(model_dim, ffn_dim)
        self.down = nn.Linear(ffn_dim, model_dim)
        self.activation = F.gelu if activation is Activation.gelu else F.relu
        self.dropout = nn.Dropout(dropout)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(self.activation(self.up(x_BTD))))


class Block(nn.Module):
    """x + Attention(LN(x)), then x + FFN(LN(x)); the FFN is dense or MoE."""

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
        return isinstance(self.feed_forward, MoEFeedForward)

    def forward(
        self,
        x_BTD: torch.Tensor,
        valid_BT: torch.Tensor,
        override: RoutingIntervention | None = None,
    ) -> tuple[torch.Tensor, RoutingInfo | None]:
        x_BTD = x_BTD + self.dropout(self.attention(self.attention_norm(x_BTD), valid_BT))
        routing = None
        if isinstance(self.feed_forward, MoEFeedForward):
            ffn_BTD, routing = self.feed_forward(self.ffn_norm(x_BTD), valid_BT, override)
        else:
            ffn_BTD = self.feed_forward(self.ffn_norm(x_BTD))
        return x_BTD + self.dropout(ffn_BTD), routing
