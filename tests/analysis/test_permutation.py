"""The permutation test on a real tiny model through the real recognition loop."""

import math

import numpy as np
import pytest
from scipy.stats import chisquare

from omnirouter.analysis.permutation import (
    PermutationResult,
    WerEvaluation,
    permutation_test,
    permuted_wer,
)
from omnirouter.analysis.records import RoutingCollector
from omnirouter.data.tokenizer import Tokenizer

from .standins import evaluation, make_batches, tiny_model


@pytest.fixture(scope="module")
def switch_evaluation(tokenizer: Tokenizer) -> WerEvaluation:
    model = tiny_model("switch", vocab_size=tokenizer.vocab_size, seed=3)
    return evaluation(model, make_batches(num_utterances=6, seed=1), tokenizer)


def test_probability_zero_gives_exactly_the_baseline_wer(switch_evaluation: WerEvaluation) -> None:
    baseline = switch_evaluation(None, None)
    # A real pass with an override of probability 0, not the reused baseline.
    assert permuted_wer(switch_evaluation, 0.0, seed=7) == baseline


def test_probability_one_uses_experts_uniformly(switch_evaluation: WerEvaluation) -> None:
    collector = RoutingCollector(stack_frames=4)
    permuted_wer(switch_evaluation, 1.0, seed=0, on_output=collector)
    records = collector.records("switch", "switch")
    for layer in range(records.num_layers):
        counts = np.bincount(records.experts_LN[layer], minlength=records.num_experts)
        assert chisquare(counts).pvalue > 0.001, counts
    # The unpermuted routing of the same model is far from uniform, so the test has power.
    baseline = RoutingCollector(stack_frames=4)
    switch_evaluation(None, baseline)
    unpermuted = baseline.records("switch", "switch").experts_LN
    assert any(chisquare(np.bincount(row, minlength=4)).pvalue < 1e-6 for row in unpermuted)


def test_permutation_test_is_seeded_and_reuses_the_baseline(
    switch_evaluation: WerEvaluation,
) -> None:
    baseline = switch_evaluation(None, None)
    first = permutation_test("switch", switch_evaluation, baseline, (0.0, 0.5), seed=1)
    again = permutation_test("switch", switch_evaluation, baseline, (0.5,), seed=1)
    assert first.wers[0] == baseline
    assert first.wers[1] == again.wers[0]  # a probability's draw does not depend on the others


def test_relative_change_by_hand() -> None:
    result = PermutationResult("m", 0.2, (0.0, 0.1, 0.5), (0.2, 0.25, 0.1))
    assert result.relative_change_percent == pytest.approx((0.0, 25.0, -50.0))
    undefined = PermutationResult("m", 0.0, (0.0, 0.1), (0.0, 0.1))
    assert all(math.isnan(change) for change in undefined.relative_change_percent)
