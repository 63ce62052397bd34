"""`omnirouter analyze`: measure the routing of trained models, then draw and write it all.

Two stages, so that the second can run alone from saved files (`--from-records`):

1. `measure.measure`: per model, ONE recognition pass over the set captures the routing records
   and the baseline WER; then one pass per permutation probability p > 0 (Fig. 3). Results go
   to `results.json` and `records/` (see `results`).
2. `write_outputs`: statistics (`statistics.json`), figures (PNG) and the page (markdown +
   self-contained HTML), from the saved results alone.

Models are loaded one at a time and dropped before the next, so comparing large models needs
the memory of one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omnirouter.analysis import figures
from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.measure import measure
from omnirouter.analysis.page import FigureFiles, build_page
from omnirouter.analysis.results import (
    RESULTS_FILE,
    AnalysisResults,
    load_results,
    save_results,
)
from omnirouter.analysis.summary import RoutingSummary, SummaryConfig, summarize, summary_to_dict
from omnirouter.offload.run import write_study
from omnirouter.offload.study import OffloadStudy, offload_section
from omnirouter.report.page import PageFiles, write_page

logger = logging.getLogger(__name__)

STATISTICS_FILE = "statistics.json"


@dataclass(frozen=True)
class AnalysisOutputs:
    directory: Path
    results: Path
    statistics: Path
    figures: FigureFiles
    page: PageFiles
    offload: Path | None = None  # offload.json (offload_hit_rate.png beside it); None: no MoE


def write_outputs(
    results: AnalysisResults,
    config: SummaryConfig,
    directory: str | Path,
    offload: OffloadStudy | None = None,
) -> AnalysisOutputs:
    """Statistics, figures and page from measured (or reloaded) results; the offloading study
    is simulated from their records unless an earlier one is given."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    moe_models = results.moe_models
    summaries = [summarize(model.records, config) for model in moe_models if model.records]
    statistics_path = directory / STATISTICS_FILE
    statistics_path.write_text(
        json.dumps({"models": [summary_to_dict(summary) for summary in summaries]}, indent=1) + "\n"
    )
    figure_files = _draw(results, summaries, directory)
    study_files = write_study(results, directory, simulated=offload)
    extra = [offload_section(study_files.study, study_files.figure)] if study_files else []
    page = build_page(results, summaries, figure_files, config, extra)
    page_files = write_page(page, directory, "report")
    logger.info("analysis page: %s", page_files.html)
    return AnalysisOutputs(
        directory,
        directory / RESULTS_FILE,
        statistics_path,
        figure_files,
        page_files,
        study_files.document if study_files else None,
    )


def _draw(
    results: AnalysisResults, summaries: list[RoutingSummary], directory: Path
) -> FigureFiles:
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


def default_output_dir(experiment: str | Path, set_name: str, area: str = "analysis") -> Path:
    """EXP/<area>/<set> (area: analysis, offload); a checkpoint file has no experiment
    directory to write into."""
    if not Path(experiment).is_dir():
        raise ValueError(f"{experiment} is not an experiment directory: pass --out DIR")
    return Path(experiment) / area / set_name


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
        from omnirouter.analysis.experiments import experiment_subjects

        results = measure(experiment_subjects([experiment, *compare], config), config, command)
        save_results(results, directory)
    return write_outputs(results, config.summary, directory)
