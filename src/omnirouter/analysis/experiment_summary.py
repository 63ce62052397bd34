"""What an experiment measured of each model, one value per seed: its size, its trained steps,
its WER and CER per set, its training-loss behaviour and, for analysed models, the routing
numbers (Cramér's V, permutation test, structure). `experiment.gather` reads them from the
experiment's files; `report/` presents them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from omnirouter.analysis.training import LossCurve
from omnirouter.model.config import Family

# A logged CTC loss counts as a spike when it exceeds the median of the SPIKE_WINDOW records
# before it by more than SPIKE_FACTOR - 1 times that median AND by more than SPIKE_NOISE_MADS
# median absolute deviations of those records: a jump of half its recent level that the
# batch-to-batch noise does not explain (records of single steps are noisy, averages over
# many steps smooth). Fig. 6 of the paper shows the Switch model's early spike.
SPIKE_WINDOW = 10
SPIKE_FACTOR = 1.5
SPIKE_NOISE_MADS = 5.0
SPIKE_RULE = (
    f"a logged CTC loss more than {SPIKE_FACTOR - 1:.0%} above the median of the "
    f"{SPIKE_WINDOW} logged values before it, and more than {SPIKE_NOISE_MADS:g} median "
    "absolute deviations of them"
)
FINAL_LOSS_FRACTION = 0.1  # the final loss is the mean over the last 10% of the records


@dataclass(frozen=True)
class SeedValues:
    """One number measured once per seed (in the model's seed order)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n − 1); None with a single seed or an unmeasured (NaN)
        value, e.g. a CER missing from an older evaluation table."""
        if len(self.values) < 2 or not all(math.isfinite(value) for value in self.values):
            return None
        return statistics.stdev(self.values)

    @property
    def count(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class LossSummary:
    seed: int
    curve: LossCurve  # the training loss and the validations, as the metrics logged them
    spikes: int  # see SPIKE_FACTOR
    skipped_nonfinite: int  # optimiser steps skipped for a non-finite loss or gradient

    @property
    def final_loss(self) -> float | None:
        ctc_loss = self.curve.ctc_loss
        if not ctc_loss:
            return None
        count = max(1, math.ceil(FINAL_LOSS_FRACTION * len(ctc_loss)))
        return statistics.fmean(ctc_loss[-count:])

    @property
    def final_loss_per_token(self) -> float:
        """As `final_loss`, per target token; NaN when the run did not log it."""
        per_token = self.curve.loss_per_token
        count = max(1, math.ceil(FINAL_LOSS_FRACTION * len(per_token)))
        last = [value for value in per_token[-count:] if math.isfinite(value)]
        return statistics.fmean(last) if last else math.nan


@dataclass(frozen=True)
class RoutingNumbers:
    """One analysed model's routing on the analysis set (its first seed)."""

    layer_pairs: tuple[str, ...]  # "1–2", 1-based block numbers of adjacent MoE layers
    adjacent_cramers_v: tuple[float, ...]
    probabilities: tuple[float, ...]  # of the permutation test
    permuted_wer_percent: tuple[float, ...]
    permuted_change_percent: tuple[float, ...]  # relative to the unpermuted WER
    agreement_raw: float  # mean over adjacent pairs: same expert id
    agreement_mapped: float  # ... after the optimal renaming of each pair
    run_length: float  # mean steps per run of one expert, averaged over layers
    chance_run_length: float  # the same for independent steps with the same loads

    @property
    def mean_cramers_v(self) -> float:
        return float(np.mean(self.adjacent_cramers_v)) if self.adjacent_cramers_v else math.nan

    @property
    def largest_change_percent(self) -> float:
        """Relative WER change at the largest permutation probability."""
        return self.permuted_change_percent[-1] if self.permuted_change_percent else math.nan


@dataclass(frozen=True)
class ModelSummary:
    name: str
    family: Family
    seeds: tuple[int, ...]
    average_wer: SeedValues  # mean of the per-set WERs over the averaged sets, per seed
    set_wer: dict[str, SeedValues | None] = field(default_factory=dict)  # None: not scored
    # The same for the character error rate (NaN / None for tables written without it).
    average_cer: SeedValues = SeedValues((math.nan,))
    set_cer: dict[str, SeedValues | None] = field(default_factory=dict)
    num_experts: int = 0  # 0 for a dense model
    top_k: int = 0
    num_layers: int = 0
    model_dim: int = 0
    ffn_dim: int = 0
    total_parameters: int = 0
    active_parameters: int = 0  # used per frame: the experts a frame does not visit excluded
    max_steps: int = 0
    trained_steps: tuple[int, ...] = ()  # per seed
    losses: tuple[LossSummary, ...] = ()  # per seed
    routing: RoutingNumbers | None = None


def count_spikes(losses: Sequence[float], window: int = SPIKE_WINDOW) -> int:
    """Records far above the `window` records before them (see SPIKE_FACTOR)."""
    spikes = 0
    for index in range(window, len(losses)):
        recent = losses[index - window : index]
        median = statistics.median(recent)
        spread = statistics.median(abs(value - median) for value in recent)
        rise = losses[index] - median
        spikes += rise > (SPIKE_FACTOR - 1) * median and rise > SPIKE_NOISE_MADS * spread
    return spikes
