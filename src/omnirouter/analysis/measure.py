"""Measuring models: one recognition pass per model captures its routing records and baseline
WER, then one pass per permutation probability p > 0 runs the permutation test (Fig. 3).

A model comes as a `Subject`: what it is, and how to recognise the set with it. Subjects are
consumed one at a time, so a caller that loads them lazily holds one model in memory at once.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.permutation import WerEvaluation, permutation_test
from omnirouter.analysis.records import DEFAULT_FRAME_SHIFT_SECONDS, RoutingCollector
from omnirouter.analysis.results import AnalysisResults, ModelResult
from omnirouter.analysis.training import LossCurve
from omnirouter.model.config import Family

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    """A model ready to be measured: how to recognise the set with it, and what it is."""

    name: str
    family: Family
    experiment: str  # where it came from, for the page ("" if nowhere)
    stack_frames: int  # feature frames per model step
    cut_ids: tuple[str, ...]  # the set's utterances, to choose the shown ones from
    evaluate: WerEvaluation
    loss_curve: LossCurve | None = None
    frame_shift_seconds: float = DEFAULT_FRAME_SHIFT_SECONDS  # of the feature frames


def choose_shown(cut_ids: Sequence[str], count: int, seed: int) -> tuple[str, ...]:
    """A seeded random choice of utterances to draw (the paper shows random ones)."""
    ordered = sorted(cut_ids)
    return tuple(sorted(random.Random(seed).sample(ordered, min(count, len(ordered)))))


def measure(
    subjects: Iterable[Subject], config: AnalysisConfig, command: str = ""
) -> AnalysisResults:
    """Capture routing, baseline WER and the permutation test of every subject, in order.
    The utterances to show are chosen from the first subject's set."""
    models: list[ModelResult] = []
    shown: tuple[str, ...] = ()
    seen: dict[str, int] = {}
    for subject in subjects:
        # Names key the saved records: a repeated name gets a suffix (a, b, a → a, b, a-2).
        seen[subject.name] = seen.get(subject.name, 0) + 1
        if seen[subject.name] > 1:
            subject = dataclasses.replace(subject, name=f"{subject.name}-{seen[subject.name]}")
        if not models:
            shown = choose_shown(subject.cut_ids, config.num_shown_utterances, config.seed)
        logger.info("analysing %s (%s) on %s", subject.name, subject.family, config.set_name)
        collector = RoutingCollector(subject.stack_frames, shown, subject.frame_shift_seconds)
        baseline_wer = subject.evaluate(None, collector)
        records = collector.records(subject.name, subject.family)
        permutation = None
        if records.num_layers:
            permutation = permutation_test(
                subject.name,
                subject.evaluate,
                baseline_wer,
                config.permutation_probabilities,
                config.seed,
            )
        models.append(
            ModelResult(
                name=subject.name,
                family=subject.family,
                experiment=subject.experiment,
                baseline_wer=baseline_wer,
                records=records if records.num_layers else None,
                permutation=permutation,
                loss_curve=subject.loss_curve,
            )
        )
    return AnalysisResults(config.set_name, config.seed, shown, tuple(models), command)
