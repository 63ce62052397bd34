"""The expert permutation test (paper §VI-B, Fig. 3; introduced by DeepSeekMoE, Dai et al. 2024).

With probability p, each valid step's top-1 expert in every MoE layer is replaced by one drawn
uniformly from all E experts; the WER change relative to the unpermuted model measures how much
the model relies on its experts being the ones the router chose: the more specialised the
experts, the larger the damage.

The recognition itself is passed in as a `WerEvaluation`, so this module does not depend on
how a set is loaded, decoded or scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from omnirouter.data.batch import Batch
from omnirouter.model.ctc_model import ModelOutput
from omnirouter.model.routing import RoutingOverride

OnOutput = Callable[[Batch, ModelOutput], None]
# Recognise the whole set (with an optional routing override and per-batch hook); return its WER.
WerEvaluation = Callable[[RoutingOverride | None, OnOutput | None], float]

DEFAULT_PROBABILITIES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class PermutationResult:
    name: str  # model name
    baseline_wer: float  # without any override
    probabilities: tuple[float, ...]
    wers: tuple[float, ...]  # one per probability

    @property
    def relative_change_percent(self) -> tuple[float, ...]:
        """100 · (WER_p − WER_0) / WER_0; NaN when the baseline WER is 0."""
        if self.baseline_wer == 0:
            return tuple(math.nan for _ in self.wers)
        return tuple(100.0 * (wer - self.baseline_wer) / self.baseline_wer for wer in self.wers)


def probability_seed(seed: int, probability: float) -> int:
    """A generator seed for one probability, independent of which other probabilities run."""
    return seed * 1_000_003 + round(probability * 1_000_000)


def permuted_wer(
    evaluate: WerEvaluation, probability: float, seed: int, on_output: OnOutput | None = None
) -> float:
    """WER with every step's expert replaced by a uniformly random one with this probability."""
    generator = torch.Generator().manual_seed(probability_seed(seed, probability))
    return evaluate(RoutingOverride(probability, generator), on_output)


def permutation_test(
    name: str,
    evaluate: WerEvaluation,
    baseline_wer: float,
    probabilities: Sequence[float] = DEFAULT_PROBABILITIES,
    seed: int = 0,
) -> PermutationResult:
    """WER at every probability. p = 0 reuses `baseline_wer` (the unpermuted pass) instead of
    recognising the set again: an override of probability 0 changes no expert, so the WER is
    exactly the same (a property the tests check)."""
    wers = [
        baseline_wer if probability == 0 else permuted_wer(evaluate, probability, seed)
        for probability in probabilities
    ]
    return PermutationResult(name, baseline_wer, tuple(probabilities), tuple(wers))
