"""How a router's probabilities become each frame's experts and gates, and what it decided.

`top_k_routing` is the ordinary choice (paper eq. 3). An intervention replaces it for one
forward: `RoutingOverride` (the permutation test) and `RoutingProposals` (routed proposals)
each answer `choose(logits_EN, probs_EN, valid_BT, top_k)`, so the MoE layer asks whichever it
was given. `RoutingInfo` carries the decision out of the model in `ModelOutput` (it is never
kept in module state).

Shape legend: B batch, T frames (after stacking), N valid frames of the batch, E experts,
K experts per frame (top-k).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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

    def frame_map(self, values_N: torch.Tensor) -> torch.Tensor:
        """Per-valid-frame values (N, ...) as a (B, T, ...) map, -1 on padding."""
        map_BT = values_N.new_full((*self.valid_BT.shape, *values_N.shape[1:]), -1)
        map_BT[self.valid_BT] = values_N
        return map_BT

    def experts_BT(self) -> torch.Tensor:
        """First chosen expert of every frame as a (B, T) map, -1 on padding."""
        return self.frame_map(self.experts_NK[:, 0])


def top_k_routing(probs_EN: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(gates_NK, experts_NK): each frame's k most probable experts, best first, and their
    router probabilities as gates (paper eq. 3; renormalising them is the layer's choice)."""
    if top_k == 1:  # max is the same choice as topk(1), and measured faster on CPU
        gates_KN, experts_KN = probs_EN.max(dim=0, keepdim=True)
    else:
        gates_KN, experts_KN = probs_EN.topk(top_k, dim=0)
    return gates_KN.t(), experts_KN.t()


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

    def choose(
        self,
        logits_EN: torch.Tensor,
        probs_EN: torch.Tensor,
        valid_BT: torch.Tensor,
        top_k: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(gates_NK, experts_NK): the ordinary top-k, then the top-1 experts permuted by
        `apply`; the gates stay the router's. (Logits and frame layout play no part.)"""
        gates_NK, experts_NK = top_k_routing(probs_EN, top_k)
        return gates_NK, self.apply(experts_NK, num_experts=probs_EN.shape[0])

    def apply(self, experts_NK: torch.Tensor, num_experts: int) -> torch.Tensor:
        """experts_NK with each frame's top-1 expert redrawn with probability p."""
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


class ProposalMode(str, Enum):
    gumbel = "gumbel"  # RoE: top-k of the logits plus temperature-scaled Gumbel noise
    ranked = "ranked"  # proposal j sends every frame to its (j+1)-th best expert(s)


@dataclass(frozen=True)
class RoutingProposals:
    """Several routed proposals per frame (hyper-parallel inference, after RoE: Zibakhsh et
    al. 2025, "MoEs Are Stronger than You Think", the Roster of Experts).

    The batch holds `count` copies of the utterances, proposal-major (rows j·B … (j+1)·B − 1
    are proposal j), so that K proposals cost one forward of a K-times batch. Proposal 0 is the
    clean path (temperature 0: the ordinary top-k routing), as RoE's batch index 0.

    `gumbel` (RoE): experts = TopK(logits + τ·G), G i.i.d. Gumbel(0, 1), which samples k
    experts without replacement from softmax(logits / τ); τ → 0 is ordinary routing. One τ for
    every layer, where RoE tunes one per layer.
    `ranked` (our variant): proposal j takes the experts ranked j+1 … j+k (cyclically).
    Gates: RoE does not say how a noisy choice is weighted. Ours are the clean routing's own
    gates (the k largest router probabilities, in order), so the FFN output keeps the scale it
    has in training and only the experts that compute it change, as in the permutation test.
    Noise is drawn on the CPU from `generator` (for the noisy proposals' frames only), so
    results do not depend on the device.
    """

    count: int
    temperature: float = 0.0
    mode: ProposalMode = ProposalMode.gumbel
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"proposals must be at least 1, got {self.count}")
        if self.temperature < 0:
            raise ValueError(f"proposal temperature {self.temperature} is negative")

    def choose(
        self,
        logits_EN: torch.Tensor,
        probs_EN: torch.Tensor,
        valid_BT: torch.Tensor,
        top_k: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(gates_NK, experts_NK) of every valid frame, each by the proposal its batch row is in."""
        proposal_N = self.proposal_of_frames(valid_BT)
        num_experts = logits_EN.shape[0]
        gates_KN, experts_KN = probs_EN.topk(top_k, dim=0)  # the clean routing (proposal 0)
        noisy_N = (proposal_N > 0).nonzero().squeeze(1)
        if self.mode is ProposalMode.ranked:
            order_EN = probs_EN.index_select(1, noisy_N).argsort(dim=0, descending=True)
            offsets_K1 = torch.arange(top_k, device=proposal_N.device)[:, None]
            rank_KN = (proposal_N.index_select(0, noisy_N).unsqueeze(0) + offsets_K1) % num_experts
            experts_KN[:, noisy_N] = order_EN.gather(0, rank_KN)
        elif self.temperature > 0:
            uniform_EN = torch.rand(num_experts, noisy_N.shape[0], generator=self.generator)
            gumbel_EN = -torch.log(-torch.log(uniform_EN.clamp(min=1e-20)))
            noisy_EN = logits_EN.index_select(1, noisy_N) + self.temperature * gumbel_EN.to(
                logits_EN.device, logits_EN.dtype
            )
            experts_KN[:, noisy_N] = noisy_EN.topk(top_k, dim=0).indices
        return gates_KN.t(), experts_KN.t()

    def proposal_of_frames(self, valid_BT: torch.Tensor) -> torch.Tensor:
        """proposal_N: the proposal of every valid frame, in (b, t) order. The batch is `count`
        copies of the utterances, proposal-major, so a frame's flat row tells its proposal."""
        if valid_BT.shape[0] % self.count:
            raise ValueError(
                f"a batch of {valid_BT.shape[0]} is not {self.count} copies of a batch"
            )
        rows_per_proposal = valid_BT.numel() // self.count
        valid_rows_N = valid_BT.reshape(-1).nonzero().squeeze(1)
        return valid_rows_N // rows_per_proposal


# What the MoE layer may be handed for one forward in place of its ordinary top-k choice.
RoutingIntervention = RoutingOverride | RoutingProposals
