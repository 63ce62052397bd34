"""What a router decided, carried out of the model in `ModelOutput` (never kept in module state).

Shape legend: B batch, T frames (after stacking), N valid frames of the batch, E experts,
K experts per frame (top-k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RoutingInfo:
    """One MoE layer's routing over the valid (non-padded) frames of a batch, in (b, t) order.

    The (N, ·) tensors may be transposed views of expert-major storage (the router computes
    (E, N)): index and reduce them freely, but `.reshape`, not `.view`."""

    layer: int  # 0-based block index
    router_id: int  # which router made the decision; equal ids mean a shared router
    logits_NE: torch.Tensor  # fp32 router logits
    probs_NE: torch.Tensor  # fp32 softmax of the logits
    experts_NK: torch.Tensor  # int64 experts the frames were sent to (after any override)
    gates_NK: torch.Tensor  # weights the expert outputs were scaled by
    valid_BT: torch.Tensor  # bool, True on valid frames; N = valid_BT.sum()
    # The expert the NEXT MoE layer's router picks for the hidden state leaving this layer's
    # block, as an expert prefetcher would compute it; only `analysis.lookahead` fills it.
    lookahead_N: torch.Tensor | None = None

    @property
    def num_experts(self) -> int:
        return self.probs_NE.shape[-1]

    def top1_N(self) -> torch.Tensor:
        """The router's own top-1 choice (paper eq. 3), before any permutation override."""
        # Over the first dim of the transpose: the same choice, and ~5x faster on CPU when
        # probs_NE is a view of the router's expert-major (E, N) output.
        return self.probs_NE.t().argmax(dim=0)

    def experts_BT(self) -> torch.Tensor:
        """First chosen expert of every frame as a (B, T) map, -1 on padding."""
        experts_BT = torch.full(
            self.valid_BT.shape, -1, dtype=torch.long, device=self.experts_NK.device
        )
        experts_BT[self.valid_BT] = self.experts_NK[:, 0]
        return experts_BT


@dataclass(frozen=True)
class RoutingOverride:
    """Paper §VI-B permutation test: with probability p, a valid frame's top-1 expert is
    replaced by one drawn uniformly from all E experts (possibly the same one).

    The gate keeps the router's probability of its own top-1 choice, so only the identity of
    the expert changes, not the scale of the FFN output: the test measures specialisation, not
    a change of magnitude.
    """

    probability: float
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"permutation probability {self.probability} outside [0, 1]")

    def apply(self, experts_NK: torch.Tensor, num_experts: int) -> torch.Tensor:
        if self.probability == 0.0:
            return experts_NK
        num_frames = experts_NK.shape[0]
        # Draw on the CPU with the given generator so results do not depend on the device.
        replace_N = torch.rand(num_frames, generator=self.generator) < self.probability
        random_N = torch.randint(num_experts, (num_frames,), generator=self.generator)
        experts_NK = experts_NK.clone()
        top1_N = experts_NK[:, 0]
        experts_NK[:, 0] = torch.where(
            replace_N.to(top1_N.device), random_N.to(top1_N.device), top1_N
        )
        return experts_NK
