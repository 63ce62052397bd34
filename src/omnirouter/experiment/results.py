"""The numbers an experiment report quotes, gathered from the files its stages wrote.

Per model: its size (total and active parameters), its trained steps, its WER per set and its
average test WER per seed, its training-loss behaviour per seed, and, for analysed models, the
routing numbers (Cramér's V, permutation test, structure). Everything here is read back from
disk (eval tables, metrics.jsonl, the analysis results), so the report can be rebuilt alone.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omnirouter.analysis.summary import SummaryConfig
from omnirouter.analysis.training import LossCurve, loss_curve_of
from omnirouter.evaluate.compare import CompareTable, compare_tables
from omnirouter.evaluate.tables import EvalRow, EvalTable, read_eval_table
from omnirouter.experiment.config import ExperimentConfig, PlannedRun
from omnirouter.experiment.runs import trained_step
from omnirouter.experiment.stages import eval_table_path
from omnirouter.train.metrics import read_metrics

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
    family: str  # "dense" | "switch" | "omni"
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


def read_losses(run: PlannedRun) -> LossSummary:
    records = read_metrics(run.exp_dir)
    curve = loss_curve_of(run.model, records)
    finite = [loss for loss in curve.ctc_loss if math.isfinite(loss)]
    # A running count: the latest training record holds the run's total.
    skipped = max(
        (
            int(record.get("skipped_nonfinite", 0))
            for record in records
            if record.get("kind") == "train"
        ),
        default=0,
    )
    return LossSummary(run.seed, curve, count_spikes(finite), skipped)


def read_eval_tables(runs: Sequence[PlannedRun]) -> list[EvalTable]:
    return [read_eval_table(eval_table_path(run)) for run in runs]


def runs_of(runs: Sequence[PlannedRun], model: str) -> list[PlannedRun]:
    return [run for run in runs if run.model == model]


def compare_seed_means(config: ExperimentConfig, runs: Sequence[PlannedRun]) -> CompareTable:
    """Every model's WER per set (the means over its seeds) against the baseline."""
    names = [model.name for model in config.models]
    tables = [seed_mean_table(name, read_eval_tables(runs_of(runs, name))) for name in names]
    return compare_tables(tables, names, config.baseline_name)


def seed_mean_table(name: str, tables: Sequence[EvalTable]) -> EvalTable:
    """One table whose WERs are the means over seeds, for `compare_tables`. The counts are
    the first seed's (the sets are the same for every seed); only the WERs are compared."""
    first = tables[0]
    rows = []
    for row in first.rows:
        wers = [_rate(table, row.set_name, "wer") for table in tables]
        mean = None if any(wer is None for wer in wers) else statistics.fmean(wers)  # type: ignore[arg-type]
        rows.append(EvalRow(**{**vars(row), "wer_percent": mean}))
    return EvalTable(name, tuple(rows), first.normalizer, first.normalizer_version)


def set_rates(tables: Sequence[EvalTable], metric: str) -> dict[str, SeedValues | None]:
    """Per set, the seeds' WERs (metric "wer") or CERs ("cer"); None where a seed has none."""
    values_of_set: dict[str, SeedValues | None] = {}
    for row in tables[0].rows:
        values = [_rate(table, row.set_name, metric) for table in tables]
        scored = None if any(value is None for value in values) else tuple(values)
        values_of_set[row.set_name] = SeedValues(scored) if scored else None  # type: ignore[arg-type]
    return values_of_set


def average_rates(tables: Sequence[EvalTable], metric: str) -> SeedValues:
    """Per seed, the mean of the per-set WERs (or CERs) of the averaged sets; NaN if none."""
    values = [getattr(table, f"average_{metric}_percent") for table in tables]
    return SeedValues(tuple(math.nan if value is None else value for value in values))


def _rate(table: EvalTable, set_name: str, metric: str) -> float | None:
    row = table.row(set_name)
    return None if row is None else getattr(row, f"{metric}_percent")


def model_size(run: PlannedRun) -> tuple[int, int]:
    """(total, active) parameters of the run's model, counted on the built model."""
    from omnirouter.data.tokenizer import Tokenizer
    from omnirouter.model import build_model, count_parameters
    from omnirouter.model.moe import Experts
    from omnirouter.train.checkpoint import TOKENIZER_DIR

    vocab_size = Tokenizer.load(run.exp_dir / TOKENIZER_DIR).vocab_size
    model = build_model(run.config.model, vocab_size)
    total = count_parameters(model)
    inactive = 0.0
    for module in model.modules():
        if isinstance(module, Experts):
            # each frame visits top_k of the E experts of a layer
            unused = (module.num_experts - run.config.model.top_k) / module.num_experts
            inactive += unused * sum(parameter.numel() for parameter in module.parameters())
    return total, total - round(inactive)


def summarize_model(
    name: str,
    runs: Sequence[PlannedRun],
    routing: RoutingNumbers | None,
) -> ModelSummary:
    tables = read_eval_tables(runs)
    model = runs[0].config.model
    total, active = model_size(runs[0])
    moe = model.is_moe
    return ModelSummary(
        name=name,
        family=model.family.value,
        seeds=tuple(run.seed for run in runs),
        average_wer=average_rates(tables, "wer"),
        set_wer=set_rates(tables, "wer"),
        average_cer=average_rates(tables, "cer"),
        set_cer=set_rates(tables, "cer"),
        num_experts=model.num_experts if moe else 0,
        top_k=model.top_k if moe else 0,
        num_layers=model.num_layers,
        model_dim=model.model_dim,
        ffn_dim=model.ffn_dim,
        total_parameters=total,
        active_parameters=active,
        max_steps=runs[0].config.train.max_steps,
        trained_steps=tuple(trained_step(run) for run in runs),
        losses=tuple(read_losses(run) for run in runs),
        routing=routing,
    )


def routing_numbers(directory: Path, config: SummaryConfig) -> dict[str, RoutingNumbers]:
    """The routing numbers of every MoE model of an analysis directory, by model name."""
    from omnirouter.analysis.results import load_results
    from omnirouter.analysis.summary import summarize

    numbers = {}
    for model in load_results(directory).moe_models:
        summary = summarize(model.records, config)  # type: ignore[arg-type]
        layers = [layer + 1 for layer in summary.layers]
        permutation = model.permutation
        numbers[model.name] = RoutingNumbers(
            layer_pairs=tuple(f"{first}–{second}" for first, second in itertools.pairwise(layers)),
            adjacent_cramers_v=tuple(float(v) for v in summary.adjacent_cramers_v_P),
            probabilities=permutation.probabilities if permutation else (),
            permuted_wer_percent=tuple(100 * wer for wer in permutation.wers)
            if permutation
            else (),
            permuted_change_percent=permutation.relative_change_percent if permutation else (),
            agreement_raw=_mean_or_nan(summary.agreement_raw_P),
            agreement_mapped=_mean_or_nan(summary.agreement_mapped_P),
            run_length=_mean_or_nan(summary.run_length_L),
            chance_run_length=_mean_or_nan(summary.chance_run_length_L),
        )
    return numbers


def _mean_or_nan(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan
