"""Everything the report needs, read from the experiment's files into one `ExperimentResults`,
and its JSON form (`experiment.json` in the report directory)."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omnirouter.data.corpus import CorpusInfo, read_corpus_info
from omnirouter.evaluate.compare import CompareTable
from omnirouter.experiment.config import ExperimentConfig, PlannedRun
from omnirouter.experiment.findings import Circumstances, Finding, find, possible_explanations
from omnirouter.experiment.results import (
    ModelSummary,
    RoutingNumbers,
    SeedValues,
    compare_seed_means,
    routing_numbers,
    runs_of,
    summarize_model,
)
from omnirouter.experiment.stages import corpus_differs_from_config

SYNTH_BUILDER = "omnirouter data synth"  # corpus.json's extra["builder"] of a synthetic corpus
# Distributions whose versions a result depends on; openai-whisper holds the WER normaliser.
VERSIONED_PACKAGES = (
    "omnirouter",
    "torch",
    "lhotse",
    "sentencepiece",
    "jiwer",
    "openai-whisper",
    "numpy",
    "scipy",
    "matplotlib",
)


@dataclass(frozen=True)
class ExperimentResults:
    name: str
    description: str
    corpus_dir: Path
    corpus: CorpusInfo
    synthetic_corpus: bool  # built by the synthetic-speech builder
    corpus_config_differs: bool  # built from another synth config than the experiment names
    models: tuple[ModelSummary, ...]
    baseline: str
    compare: CompareTable  # WERs are the means over each model's seeds
    normalizer: str  # name and version of the text normaliser of every eval table
    analysis_set: str | None  # None when no routing analysis ran
    findings: tuple[Finding, ...]
    explanations: tuple[str, ...]  # given when a finding differs from the paper
    versions: dict[str, str]

    @property
    def set_roles(self) -> dict[str, str]:
        return {row.set_name: row.role for row in self.compare.rows}


def gather(
    config: ExperimentConfig, runs: Sequence[PlannedRun], analysis_dir: Path | None
) -> ExperimentResults:
    routing = (
        routing_numbers(analysis_dir, config.analysis.summary) if analysis_dir is not None else {}
    )
    models = tuple(
        summarize_model(entry.name, runs_of(runs, entry.name), routing.get(entry.name))
        for entry in config.models
    )
    compare = compare_seed_means(config, runs)
    corpus = read_corpus_info(config.corpus.corpus_dir)
    synthetic = corpus.extra.get("builder") == SYNTH_BUILDER
    circumstances = Circumstances(
        largest_parameters=max(model.total_parameters for model in models),
        max_steps=max(model.max_steps for model in models),
        best_average_wer=min(model.average_wer.mean for model in models),
        fewest_seeds=min(len(model.seeds) for model in models),
        synthetic_corpus=synthetic,
        train_hours=sum(corpus.set(name).hours for name in runs[0].config.data.train_sets),
        test_hours=sum(corpus.set(name).hours for name in compare.averaged_sets),
    )
    findings = find(models, compare.averaged_sets)
    differs = any(finding.agrees is False for finding in findings)
    return ExperimentResults(
        name=config.name,
        description=config.description,
        corpus_dir=Path(config.corpus.corpus_dir),
        corpus=corpus,
        synthetic_corpus=synthetic,
        corpus_config_differs=corpus_differs_from_config(config.corpus),
        models=models,
        baseline=config.baseline_name,
        compare=compare,
        normalizer="; ".join(sorted(set(compare.normalizers))),
        analysis_set=config.analysis.set_name if analysis_dir is not None else None,
        findings=tuple(findings),
        explanations=tuple(possible_explanations(circumstances)) if differs else (),
        versions=package_versions(),
    )


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def results_to_dict(results: ExperimentResults) -> dict[str, object]:
    """The report's numbers as plain JSON (means and standard deviations included)."""
    return {
        "name": results.name,
        "corpus_dir": str(results.corpus_dir),
        "baseline": results.baseline,
        "normalizer": results.normalizer,
        "averaged_sets": list(results.compare.averaged_sets),
        "models": [_model_dict(model) for model in results.models],
        "relative_reduction_percent": {
            "mean_of_per_set_reductions": dict(
                zip(results.compare.models, results.compare.mean_relative_reduction_percent)
            ),
            "reduction_of_mean_wer": dict(
                zip(results.compare.models, results.compare.reduction_of_mean_wer_percent)
            ),
        },
        "analysis_set": results.analysis_set,
        "findings": [vars(finding) for finding in results.findings],
        "explanations": list(results.explanations),
        "versions": results.versions,
    }


def _model_dict(model: ModelSummary) -> dict[str, object]:
    return {
        "name": model.name,
        "family": model.family,
        "seeds": list(model.seeds),
        "num_experts": model.num_experts,
        "top_k": model.top_k,
        "num_layers": model.num_layers,
        "model_dim": model.model_dim,
        "ffn_dim": model.ffn_dim,
        "total_parameters": model.total_parameters,
        "active_parameters": model.active_parameters,
        "max_steps": model.max_steps,
        "trained_steps": list(model.trained_steps),
        "average_wer_percent": _values_dict(model.average_wer),
        "wer_percent": _per_set_dict(model.set_wer),
        "average_cer_percent": _values_dict(model.average_cer),
        "cer_percent": _per_set_dict(model.set_cer),
        "training": [
            {
                "seed": loss.seed,
                "final_ctc_loss": loss.final_loss,
                "spikes": loss.spikes,
                "skipped_nonfinite": loss.skipped_nonfinite,
                "valid_steps": list(loss.curve.valid_steps),
                "dev_wer_percent": list(loss.curve.dev_wer),
                "dev_ctc_loss_per_token": [
                    _finite(value) for value in loss.curve.dev_loss_per_token
                ],
                "final_ctc_loss_per_token": _finite(loss.final_loss_per_token),
            }
            for loss in model.losses
        ],
        "routing": _routing_dict(model.routing) if model.routing else None,
    }


def _per_set_dict(per_set: dict[str, SeedValues | None]) -> dict[str, object]:
    return {name: _values_dict(values) if values else None for name, values in per_set.items()}


def _values_dict(values: SeedValues) -> dict[str, object]:
    return {
        "mean": _finite(values.mean),
        "std": values.std,
        "values": [_finite(value) for value in values.values],
    }


def _routing_dict(routing: RoutingNumbers) -> dict[str, object]:
    return {
        **{key: _plain(value) for key, value in vars(routing).items()},
        "mean_cramers_v": _finite(routing.mean_cramers_v),
    }


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        return _finite(value)
    return value


def _finite(value: float) -> float | None:
    """JSON has no NaN: an undefined number is written as null."""
    return None if math.isnan(value) else value
