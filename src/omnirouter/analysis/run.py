"""`omnirouter analyze`: measure the routing of trained models, then draw and write it all.

Two stages, so that the second can run alone from saved files (`--from-records`):

1. `measure`: per model, ONE recognition pass over the set captures the routing records and
   the baseline WER; then one pass per permutation probability p > 0 (Fig. 3). Results go to
   `results.json` and `records/` (see `results`).
2. `write_outputs`: statistics (`statistics.json`), figures (PNG) and the page (markdown +
   self-contained HTML), from the saved results alone.

Models are loaded one at a time and dropped before the next, so comparing large models needs
the memory of one.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omnirouter.analysis import figures
from omnirouter.analysis.page import FigureFiles, build_page
from omnirouter.analysis.permutation import (
    DEFAULT_PROBABILITIES,
    OnOutput,
    WerEvaluation,
    permutation_test,
)
from omnirouter.analysis.records import DEFAULT_FRAME_SHIFT_SECONDS, RoutingCollector
from omnirouter.analysis.results import AnalysisResults, ModelResult, load_results, save_results
from omnirouter.analysis.summary import SummaryConfig, summarize, summary_to_dict
from omnirouter.analysis.training import METRICS_FILE, LossCurve, read_loss_curve
from omnirouter.model.routing import RoutingOverride
from omnirouter.report.page import PageFiles, write_page

logger = logging.getLogger(__name__)

STATISTICS_FILE = "statistics.json"


@dataclass(frozen=True)
class AnalysisConfig:
    set_name: str = "dev"  # the evaluation set analysed
    num_shown_utterances: int = 3  # utterances drawn in Fig. 2 (a seeded random choice)
    permutation_probabilities: list[float] = field(
        default_factory=lambda: list(DEFAULT_PROBABILITIES)
    )
    seed: int = 0  # choice of shown utterances and the permutation test's random experts
    max_utterances: int = 0  # analyse only the set's first N utterances; 0 = all
    normalizer: str = "whisper-english"  # text normaliser before WER (see evaluate.normalize)
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
    summary: SummaryConfig = field(default_factory=SummaryConfig)


@dataclass(frozen=True)
class Subject:
    """A model ready to be measured: how to recognise the set with it, and what it is."""

    name: str
    family: str  # "dense" | "switch" | "omni"
    experiment: str  # where it came from, for the page ("" if nowhere)
    stack_frames: int  # feature frames per model step
    cut_ids: tuple[str, ...]  # the set's utterances, to choose the shown ones from
    evaluate: WerEvaluation
    loss_curve: LossCurve | None = None
    frame_shift_seconds: float = DEFAULT_FRAME_SHIFT_SECONDS  # of the feature frames


@dataclass(frozen=True)
class AnalysisOutputs:
    directory: Path
    results: Path
    statistics: Path
    figures: FigureFiles
    page: PageFiles


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
    for subject in subjects:
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


def write_outputs(
    results: AnalysisResults, config: SummaryConfig, directory: str | Path
) -> AnalysisOutputs:
    """Statistics, figures and page from measured (or reloaded) results."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    moe_models = results.moe_models
    summaries = [summarize(model.records, config) for model in moe_models if model.records]
    statistics_path = directory / STATISTICS_FILE
    statistics_path.write_text(
        json.dumps({"models": [summary_to_dict(summary) for summary in summaries]}, indent=1) + "\n"
    )
    figure_files = _draw(results, summaries, directory)
    page = build_page(results, summaries, figure_files, config)
    page_files = write_page(page, directory, "report")
    logger.info("analysis page: %s", page_files.html)
    return AnalysisOutputs(
        directory, directory / "results.json", statistics_path, figure_files, page_files
    )


def _draw(results: AnalysisResults, summaries: list, directory: Path) -> FigureFiles:
    records = [model.records for model in results.moe_models if model.records]
    tested = [model.permutation for model in results.moe_models if model.permutation]
    curves = [
        model.loss_curve for model in results.models if model.loss_curve and model.loss_curve.steps
    ]
    has_pairs = any(summary.contingency is not None for summary in summaries)
    roles = [("silence_share_LE", "silence steps"), ("speech_share_LE", "speech steps")]
    return FigureFiles(
        expert_usage=figures.draw_expert_usage(
            records, summaries, results.shown_cut_ids, directory / "fig2_expert_usage.png"
        )
        if records and results.shown_cut_ids
        else None,
        permutation=figures.draw_permutation(tested, directory / "fig3_permutation.png")
        if tested
        else None,
        contingency=figures.draw_contingency(summaries, directory / "fig4_contingency.png")
        if has_pairs
        else None,
        cramers_v=figures.draw_cramers_v(summaries, directory / "fig5_cramers_v.png")
        if has_pairs
        else None,
        training_loss=figures.draw_training_loss(curves, directory / "fig6_training_loss.png")
        if curves
        else None,
        expert_load=figures.draw_expert_shares(
            summaries, [("load_LE", "load")], directory / "expert_load.png", "Expert load"
        )
        if summaries
        else None,
        expert_roles=figures.draw_expert_shares(
            summaries, roles, directory / "expert_roles.png", "Silence and speech per expert"
        )
        if summaries
        else None,
    )


def default_output_dir(experiment: str | Path, set_name: str) -> Path:
    return Path(experiment) / "analysis" / set_name


def analyze(
    experiment: str | Path,
    config: AnalysisConfig,
    compare: Sequence[str | Path] = (),
    out_dir: str | Path | None = None,
    from_records: bool = False,
    command: str = "",
) -> AnalysisOutputs:
    """Analyse the model of `experiment` (and those of `compare`) on `config.set_name`;
    with `from_records`, redraw everything from a previous run's saved results instead.
    `command` is the command line, kept beside the results."""
    directory = Path(out_dir) if out_dir else default_output_dir(experiment, config.set_name)
    if from_records:
        results = load_results(directory)
    else:
        results = measure(experiment_subjects([experiment, *compare], config), config, command)
        save_results(results, directory)
    return write_outputs(results, config.summary, directory)


def experiment_subjects(
    experiments: Sequence[str | Path], config: AnalysisConfig
) -> Iterator[Subject]:
    """Each experiment's model as a `Subject`, loaded only when the previous one is done."""
    names = unique_names([Path(experiment).resolve().name for experiment in experiments])
    for experiment, name in zip(experiments, names):
        yield load_subject(experiment, name, config)


def unique_names(names: Sequence[str]) -> list[str]:
    """Names made unique by a numeric suffix where they repeat: a, b, a → a, b, a-2."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def load_subject(experiment: str | Path, name: str, config: AnalysisConfig) -> Subject:
    """A trained experiment's model, its `config.set_name` loader and its WER evaluation."""
    import torch

    from omnirouter.data.loader import build_eval_loader, eval_cuts
    from omnirouter.evaluate.normalize import get_normalizer
    from omnirouter.evaluate.run import recognize, score_set
    from omnirouter.train.checkpoint import load_inference_model

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_inference_model(experiment, device=device)
    cuts = eval_cuts(loaded.data_config, config.set_name)
    if config.max_utterances:
        cuts = cuts.subset(first=config.max_utterances)
    loader = build_eval_loader(loaded.data_config, cuts, loaded.tokenizer)
    normalizer = get_normalizer(config.normalizer)

    def evaluate(override: RoutingOverride | None, on_output: OnOutput | None) -> float:
        label = name if override is None else f"{name} p={override.probability:g}"
        recognitions = recognize(
            loaded.model, loader, loaded.tokenizer, device, override, on_output, description=label
        )
        return score_set(config.set_name, recognitions, normalizer).wer

    metrics_path = Path(loaded.experiment_dir) / METRICS_FILE
    return Subject(
        name=name,
        family=loaded.model_config.family.value,
        experiment=str(loaded.experiment_dir),
        stack_frames=loaded.model_config.stack_frames,
        cut_ids=tuple(cut.id for cut in cuts),
        evaluate=evaluate,
        loss_curve=read_loss_curve(name, metrics_path) if metrics_path.is_file() else None,
        frame_shift_seconds=loaded.data_config.features.frame_shift_seconds,
    )
