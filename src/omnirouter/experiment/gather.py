"""Everything the report needs, read from the experiment's files into one `ExperimentResults`."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Sequence
from pathlib import Path

from omnirouter.data.corpus import read_corpus_info
from omnirouter.experiment.config import ExperimentConfig, PlannedRun
from omnirouter.experiment.lm_stage import lm_summary
from omnirouter.experiment.results import (
    compare_seed_means,
    routing_numbers,
    runs_of,
    summarize_model,
)
from omnirouter.experiment.stages import corpus_differs_from_config
from omnirouter.report.experiment_results import ExperimentResults
from omnirouter.report.findings import Circumstances, find, possible_explanations

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
        lm=lm_summary(config, runs),
    )


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
