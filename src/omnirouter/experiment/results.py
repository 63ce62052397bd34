"""The numbers an experiment report quotes (`analysis.experiment_summary`), read from the files
its stages wrote: eval tables, metrics.jsonl, the analysis results, so that the report can be
rebuilt alone.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from omnirouter.analysis.experiment_summary import (
    LossSummary,
    ModelSummary,
    RoutingNumbers,
    SeedValues,
    count_spikes,
)
from omnirouter.analysis.results import load_results
from omnirouter.analysis.summary import SummaryConfig, summarize
from omnirouter.analysis.training import loss_curve_of
from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate.compare import CompareTable, compare_tables
from omnirouter.evaluate.model_file import TOKENIZER_DIR
from omnirouter.evaluate.tables import EvalRow, EvalTable, read_eval_table
from omnirouter.experiment.config import ExperimentConfig, PlannedRun
from omnirouter.experiment.stages import eval_table_path
from omnirouter.experiment.training_runs import trained_step
from omnirouter.model import build_model, count_parameters
from omnirouter.model.moe import Experts
from omnirouter.train.metrics import read_metrics


def read_losses(run: PlannedRun) -> LossSummary:
    metrics = read_metrics(run.exp_dir)
    curve = loss_curve_of(run.model, metrics)
    finite = [loss for loss in curve.ctc_loss if math.isfinite(loss)]
    # A running count: the latest training record holds the run's total.
    skipped = max((record.skipped_nonfinite for record in metrics.train), default=0)
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
        family=model.family,
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
