"""Losses against hand computations on a fixed routing (paper eqs. 3–5, Switch form, ST-MoE z-loss)."""

import math

import pytest
import torch

from omnirouter.model.ctc_model import ModelOutput
from omnirouter.model.routing import RoutingInfo
from omnirouter.train.config import BalanceLoss, CtcReduction
from omnirouter.train.losses import (
    DevLoss,
    ctc_loss,
    load_balance_loss,
    router_z_loss,
    total_loss,
)

LOGITS = [
    [2.0, 0.0, -1.0],
    [0.5, 1.5, 0.0],
    [0.0, 0.2, 0.1],
    [3.0, -2.0, 0.0],
    [-1.0, -1.0, 2.5],
]


def fixed_routing(logits=LOGITS) -> RoutingInfo:
    logits_NE = torch.tensor(logits)
    probs_NE = logits_NE.softmax(-1)
    gates, experts = probs_NE.topk(1, dim=-1)
    return RoutingInfo(
        0, 0, logits_NE, probs_NE, experts, gates, torch.ones(1, len(logits), dtype=torch.bool)
    )


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(value) for value in row]
    return [value / sum(exps) for value in exps]


def hand_balance(logits, form: str) -> float:
    num_frames, num_experts = len(logits), len(logits[0])
    probs = [softmax(row) for row in logits]
    top1 = [max(range(num_experts), key=lambda j, p=p: p[j]) for p in probs]
    total = 0.0
    for expert in range(num_experts):
        fraction = sum(1 for choice in top1 if choice == expert) / num_frames
        if form == "paper":  # eq. (4) as written
            rho = sum(p[expert] for p, choice in zip(probs, top1) if choice == expert) / num_frames
        else:
            rho = sum(p[expert] for p in probs) / num_frames
        total += fraction * rho
    return num_experts * total


@pytest.mark.parametrize("form", ["paper", "switch"])
def test_load_balance_equals_hand_computation(form: str) -> None:
    value = load_balance_loss(fixed_routing(), BalanceLoss(form))
    assert value.item() == pytest.approx(hand_balance(LOGITS, form), rel=1e-6)


def test_load_balance_of_perfectly_uniform_router_is_known() -> None:
    # Equal logits: argmax picks expert 0 for every frame, f = (1, 0, 0), ρ_paper = (1/3, 0, 0).
    routing = fixed_routing([[0.0, 0.0, 0.0]] * 4)
    assert load_balance_loss(routing, BalanceLoss.paper).item() == pytest.approx(1.0)
    assert load_balance_loss(routing, BalanceLoss.switch).item() == pytest.approx(1.0)


def test_z_loss_equals_hand_computation() -> None:
    expected = sum(math.log(sum(math.exp(v) for v in row)) ** 2 for row in LOGITS) / len(LOGITS)
    assert router_z_loss(fixed_routing()).item() == pytest.approx(expected, rel=1e-6)


def test_balance_loss_gradient_reaches_router_logits() -> None:
    logits_NE = torch.tensor(LOGITS, requires_grad=True)
    probs_NE = logits_NE.softmax(-1)
    gates, experts = probs_NE.topk(1, dim=-1)
    routing = RoutingInfo(
        0, 0, logits_NE, probs_NE, experts, gates, torch.ones(1, 5, dtype=torch.bool)
    )
    load_balance_loss(routing).backward()
    assert logits_NE.grad is not None and logits_NE.grad.abs().sum() > 0


def make_output(log_probs_BTV: torch.Tensor, lengths, routing=()) -> ModelOutput:
    return ModelOutput(log_probs_BTV, torch.tensor(lengths), tuple(routing))


def test_ctc_reductions_against_a_brute_force_sum_over_alignments() -> None:
    # One utterance, T = 3, V = {blank, a}, target "a": paths that collapse to "a" are
    # a--, -a-, --a, aa-, -aa, aaa (and with blanks: a-- etc.). Enumerate all 2^3 paths.
    torch.manual_seed(0)
    log_probs = torch.randn(1, 3, 2).log_softmax(-1)
    probability = 0.0
    for path in range(8):
        symbols = [(path >> t) & 1 for t in range(3)]
        collapsed = [s for i, s in enumerate(symbols) if s != 0 and (i == 0 or symbols[i - 1] != s)]
        if collapsed == [1]:
            probability += math.exp(sum(log_probs[0, t, s].item() for t, s in enumerate(symbols)))
    output = make_output(log_probs, [3])
    targets, target_lens = torch.tensor([[1]]), torch.tensor([1])
    assert ctc_loss(output, targets, target_lens).item() == pytest.approx(
        -math.log(probability), rel=1e-5
    )
    token_mean = ctc_loss(output, targets, target_lens, CtcReduction.token_mean)
    assert token_mean.item() == pytest.approx(-math.log(probability), rel=1e-5)


def test_token_mean_divides_by_target_length() -> None:
    log_probs = torch.randn(2, 10, 5).log_softmax(-1)
    output = make_output(log_probs, [10, 8])
    targets = torch.tensor([[1, 2, 3], [4, 2, 0]])
    lens = torch.tensor([3, 2])
    per_utt = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), targets, torch.tensor([10, 8]), lens, reduction="none"
    )
    assert ctc_loss(output, targets, lens).item() == pytest.approx(per_utt.mean().item(), rel=1e-6)
    expected = (per_utt / lens).mean().item()
    assert ctc_loss(output, targets, lens, CtcReduction.token_mean).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_infeasible_ctc_is_infinite_not_zero() -> None:
    output = make_output(torch.randn(1, 2, 5).log_softmax(-1), [2])
    loss = ctc_loss(output, torch.tensor([[1, 1, 1]]), torch.tensor([3]))
    assert math.isinf(loss.item())


def test_dev_loss_is_per_token_over_the_finite_utterances_of_all_batches() -> None:
    from omnirouter.data.batch import Batch

    torch.manual_seed(1)

    def batch_and_output(targets, target_lens, frames):
        log_probs = torch.randn(len(frames), max(frames), 5).log_softmax(-1)
        batch = Batch(
            torch.zeros(len(frames), max(frames), 3),
            torch.tensor(frames),
            torch.tensor(targets),
            torch.tensor(target_lens),
            tuple(f"u{index}" for index in range(len(frames))),
            ("",) * len(frames),
        )
        return batch, make_output(log_probs, frames)

    first = batch_and_output([[1, 2], [3, 0]], [2, 1], [6, 4])
    # The second utterance of this batch needs 3 frames for "1 1" and has 1: infeasible.
    second = batch_and_output([[2, 4], [1, 1]], [2, 2], [5, 1])
    losses, tokens = [], []
    for batch, output in (first, second):
        per_utterance = torch.nn.functional.ctc_loss(
            output.log_probs_BTV.transpose(0, 1),
            batch.targets_BU,
            output.lengths_B,
            batch.target_lens_B,
            reduction="none",
        )
        for loss, length in zip(per_utterance.tolist(), batch.target_lens_B.tolist()):
            if math.isfinite(loss):
                losses.append(loss)
                tokens.append(length)
    assert tokens == [2, 1, 2]  # the infeasible utterance is left out
    dev_loss = DevLoss()
    assert dev_loss.per_token is None
    for batch, output in (first, second):
        dev_loss.add(batch, output)
    assert dev_loss.per_token == pytest.approx(sum(losses) / sum(tokens), rel=1e-6)
    assert dev_loss.infeasible == 1


def test_total_loss_sums_the_ctc_losses_for_the_per_token_figure() -> None:
    log_probs = torch.randn(2, 10, 5).log_softmax(-1)
    output = make_output(log_probs, [10, 8])
    targets, lens = torch.tensor([[1, 2, 3], [4, 2, 0]]), torch.tensor([3, 2])
    per_utt = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), targets, torch.tensor([10, 8]), lens, reduction="none"
    )
    for reduction in CtcReduction:
        terms = total_loss(output, targets, lens, ctc_reduction=reduction)
        assert terms.ctc_sum.item() == pytest.approx(per_utt.sum().item(), rel=1e-6)
        assert terms.ctc.item() == pytest.approx(
            ctc_loss(output, targets, lens, reduction).item(), rel=1e-6
        )


def test_total_loss_sums_layers_with_weights() -> None:
    log_probs = torch.randn(1, 5, 4).log_softmax(-1)
    routing = [fixed_routing(), fixed_routing(LOGITS[::-1])]
    output = make_output(log_probs, [5], routing)
    targets, lens = torch.tensor([[1, 2]]), torch.tensor([2])
    terms = total_loss(output, targets, lens, load_balance_weight=10.0, z_loss_weight=0.1)
    balance = hand_balance(LOGITS, "paper") + hand_balance(LOGITS[::-1], "paper")
    assert terms.load_balance.item() == pytest.approx(balance, rel=1e-6)
    expected = terms.ctc.item() + 10.0 * balance + 0.1 * terms.z_loss.item()
    assert terms.total.item() == pytest.approx(expected, rel=1e-6)


def test_intermediate_ctc_is_weighted_into_the_total_but_not_the_reported_ctc() -> None:
    torch.manual_seed(3)
    final, inner_a, inner_b = (torch.randn(2, 9, 5).log_softmax(-1) for _ in range(3))
    lengths, targets, target_lens = [9, 7], torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1])
    output = ModelOutput(final, torch.tensor(lengths), (), (inner_a, inner_b))
    terms = total_loss(output, targets, target_lens, intermediate_ctc_weight=0.3)

    def ctc(log_probs):
        return ctc_loss(make_output(log_probs, lengths), targets, target_lens).item()

    expected = 0.7 * ctc(final) + 0.3 * (ctc(inner_a) + ctc(inner_b)) / 2
    assert terms.total.item() == pytest.approx(expected, rel=1e-6)
    assert terms.ctc.item() == pytest.approx(ctc(final), rel=1e-6)
    unweighted = total_loss(output, targets, target_lens, intermediate_ctc_weight=0.0)
    assert unweighted.total.item() == pytest.approx(ctc(final), rel=1e-6)
