"""Decoding with several routed proposals per frame (after RoE, see `RoutingProposals`): one
forward of the utterances repeated K times, each copy routed differently, then the K CTC
posteriors aggregated frame by frame before greedy decoding.

Aggregation: `probability` averages the posteriors (RoE's "probability averaging");
`log` averages the log-posteriors (a geometric mean, renormalised), which for greedy decoding
is the same as averaging logits.

Shape legend: K proposals, B batch, T output steps, V vocabulary, F feature bins.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch

from omnirouter.model.ctc_model import CtcModel, ModelOutput
from omnirouter.model.routing import ProposalMode, RoutingProposals


class Aggregate(str, enum.Enum):
    probability = "probability"
    log = "log"


@dataclass(frozen=True)
class ProposalConfig:
    count: int = 1  # K routed proposals per frame; 1 = ordinary decoding
    temperature: float = 0.3  # τ of the Gumbel noise on router logits (RoE searches [0, 0.5])
    mode: ProposalMode = ProposalMode.gumbel
    aggregate: Aggregate = Aggregate.probability
    seed: int = 0  # of the noise: the same seed and batches give the same transcripts

    def routing(self) -> RoutingProposals:
        """A fresh seeded noise source: call once per set, so a set's results are reproducible."""
        generator = torch.Generator().manual_seed(self.seed)
        return RoutingProposals(self.count, self.temperature, self.mode, generator)

    @property
    def description(self) -> str:
        """How the proposals are made and merged, as a clause for tables and reports."""
        if self.mode is ProposalMode.ranked:
            how = "each further proposal sends a frame to its next-ranked expert"
        else:
            how = (
                "proposals 1…K−1 pick experts by Gumbel-top-k of the router logits at "
                f"τ = {self.temperature:g}"
            )
        return (
            f"proposal 0 is the ordinary routing, {how}; the CTC posteriors are averaged "
            f"({self.aggregate.value}) before greedy decoding"
        )

    @property
    def label(self) -> str:
        if self.mode is ProposalMode.ranked:
            return f"K={self.count} ranked, {self.aggregate.value}"
        return f"K={self.count} τ={self.temperature:g}, {self.aggregate.value}"


def forward_with_proposals(
    model: CtcModel,
    features_BTF: torch.Tensor,
    feature_lens_B: torch.Tensor,
    proposals: RoutingProposals,
    aggregate: Aggregate = Aggregate.probability,
) -> ModelOutput:
    """The aggregated output of `proposals.count` routed proposals. Its routing is empty: the
    K copies' routing belongs to no single proposal."""
    count = proposals.count
    if count == 1:  # ordinary decoding, at ordinary cost
        output = model(features_BTF, feature_lens_B)
        return ModelOutput(output.log_probs_BTV, output.lengths_B, ())
    features_KBTF = features_BTF.repeat(count, 1, 1)
    output = model(features_KBTF, feature_lens_B.repeat(count), override=proposals)
    batch = features_BTF.shape[0]
    log_probs_KBTV = output.log_probs_BTV.view(count, batch, *output.log_probs_BTV.shape[1:])
    if aggregate is Aggregate.probability:
        log_probs_BTV = torch.logsumexp(log_probs_KBTV, dim=0) - math.log(count)
    else:
        log_probs_BTV = log_probs_KBTV.mean(dim=0).log_softmax(dim=-1)
    return ModelOutput(log_probs_BTV, output.lengths_B[:batch], ())
