"""Training losses: CTC (always fp32) and the MoE auxiliary losses read from `ModelOutput.routing`.

Shape legend: B batch, T frames, V vocabulary, U target tokens, N valid frames, E experts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from omnirouter.data.batch import Batch
from omnirouter.model.ctc_model import BLANK_ID, ModelOutput
from omnirouter.model.routing import RoutingInfo
from omnirouter.train.config import BalanceLoss, CtcReduction


def ctc_loss(
    output: ModelOutput,
    targets_BU: torch.Tensor,
    target_lens_B: torch.Tensor,
    reduction: CtcReduction = CtcReduction.utterance_mean,
) -> torch.Tensor:
    """CTC in fp32 whatever autocast is doing. Infeasible alignments give inf, not a silent 0,
    so the training step can count and skip them."""
    return reduce_ctc(utterance_nll(output, targets_BU, target_lens_B), target_lens_B, reduction)


def utterance_nll(
    output: ModelOutput, targets_BU: torch.Tensor, target_lens_B: torch.Tensor
) -> torch.Tensor:
    """(B,) each utterance's CTC negative log-likelihood in fp32; inf where no alignment
    fits its frames."""
    with torch.autocast(device_type=output.log_probs_BTV.device.type, enabled=False):
        return F.ctc_loss(
            output.log_probs_BTV.float().transpose(0, 1),  # (T, B, V)
            targets_BU,
            output.lengths_B,
            target_lens_B,
            blank=BLANK_ID,
            reduction="none",
            zero_infinity=False,
        )


def reduce_ctc(
    nll_B: torch.Tensor, target_lens_B: torch.Tensor, reduction: CtcReduction
) -> torch.Tensor:
    if reduction is CtcReduction.token_mean:
        nll_B = nll_B / target_lens_B.clamp(min=1).float()
    return nll_B.mean()


class DevLoss:
    """A dev set's CTC loss per target token (its utterances' negative log-likelihoods summed,
    over their tokens), as the training records' `ctc_loss_per_token` count it: unlike the mean
    per utterance, it does not follow the utterances' lengths, which differ between the sets
    and the batches. Utterances whose alignment is infeasible are left out and counted."""

    def __init__(self) -> None:
        self.nll_sum = 0.0
        self.tokens = 0
        self.infeasible = 0  # utterances left out

    def add(self, batch: Batch, output: ModelOutput) -> None:
        nll_B = utterance_nll(output, batch.targets_BU, batch.target_lens_B)
        finite_B = torch.isfinite(nll_B)
        self.nll_sum += float(nll_B[finite_B].sum())
        self.tokens += int(batch.target_lens_B[finite_B].sum())
        self.infeasible += int((~finite_B).sum())

    @property
    def per_token(self) -> float | None:
        return self.nll_sum / self.tokens if self.tokens else None


def load_balance_loss(routing: RoutingInfo, form: BalanceLoss = BalanceLoss.paper) -> torch.Tensor:
    """One layer's load-balance loss over its valid frames: N · Σ_j f_j · ρ_j (paper eq. 5).

    f_j (eq. 3): fraction of frames whose top-1 expert is j (no gradient: an argmax).
    ρ_j, form `paper` (eq. 4 as written): router probability of j summed over the frames routed
    to j, divided by the number of frames T. Form `switch` (Fedus et al. 2022): mean router
    probability of j over all frames.
    """
    probs_NE = routing.probs_NE
    num_frames, num_experts = probs_NE.shape
    if num_frames == 0:
        return probs_NE.sum() * 0.0
    top1_N = routing.top1_N()
    fraction_E = torch.bincount(top1_N, minlength=num_experts).to(probs_NE.dtype) / num_frames
    if form is BalanceLoss.paper:
        routed_probs_N = probs_NE.gather(1, top1_N.unsqueeze(1)).squeeze(1)
        probability_E = (
            torch.zeros_like(fraction_E).index_add(0, top1_N, routed_probs_N) / num_frames
        )
    else:
        probability_E = probs_NE.mean(dim=0)
    return num_experts * (fraction_E * probability_E).sum()


def router_z_loss(routing: RoutingInfo) -> torch.Tensor:
    """ST-MoE (Zoph et al. 2022, eq. 5): mean over frames of logsumexp(logits)², keeping logits small."""
    if routing.logits_NE.shape[0] == 0:
        return routing.logits_NE.sum() * 0.0
    return torch.logsumexp(routing.logits_NE, dim=-1).square().mean()


@dataclass(frozen=True)
class LossTerms:
    total: torch.Tensor  # what is back-propagated
    ctc: torch.Tensor
    ctc_sum: torch.Tensor  # Σ over utterances of their CTC NLL: ÷ target tokens = per token
    load_balance: torch.Tensor  # Σ over MoE layers, unweighted (0 for dense)
    z_loss: torch.Tensor  # Σ over MoE layers, unweighted (0 for dense or when disabled)


def total_loss(
    output: ModelOutput,
    targets_BU: torch.Tensor,
    target_lens_B: torch.Tensor,
    *,
    load_balance_weight: float = 10.0,
    balance_form: BalanceLoss = BalanceLoss.paper,
    z_loss_weight: float = 0.0,
    ctc_reduction: CtcReduction = CtcReduction.utterance_mean,
    intermediate_ctc_weight: float = 0.0,
) -> LossTerms:
    """CTC + w_lb · Σ_layers load_balance (+ w_z · Σ_layers z_loss), paper §III-C and §V-C.

    With intermediate predictions (`ModelOutput.intermediate_log_probs_BTV`) the CTC term of
    the total is (1 - w) · final CTC + w · their mean CTC; `LossTerms.ctc` stays the final one."""
    nll_B = utterance_nll(output, targets_BU, target_lens_B)
    ctc = reduce_ctc(nll_B, target_lens_B, ctc_reduction)
    trained_ctc = ctc
    if output.intermediate_log_probs_BTV and intermediate_ctc_weight > 0:
        inner = [
            reduce_ctc(
                utterance_nll(
                    replace(output, log_probs_BTV=log_probs_BTV), targets_BU, target_lens_B
                ),
                target_lens_B,
                ctc_reduction,
            )
            for log_probs_BTV in output.intermediate_log_probs_BTV
        ]
        weight = intermediate_ctc_weight
        trained_ctc = (1 - weight) * ctc + weight * torch.stack(inner).mean()
    balance = _sum_over_layers(output.routing, lambda r: load_balance_loss(r, balance_form), ctc)
    z_loss = (
        _sum_over_layers(output.routing, router_z_loss, ctc)
        if z_loss_weight > 0
        else ctc.new_zeros(())
    )
    total = trained_ctc + load_balance_weight * balance + z_loss_weight * z_loss
    return LossTerms(total=total, ctc=ctc, ctc_sum=nll_B.sum(), load_balance=balance, z_loss=z_loss)


def _sum_over_layers(routing: Sequence[RoutingInfo], term, like: torch.Tensor) -> torch.Tensor:
    total = like.new_zeros(())
    for layer_routing in routing:
        total = total + term(layer_routing)
    return total
