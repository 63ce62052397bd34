"""The routing analysis and the offloading study as one piece of work each: measure (analysis/,
offload/), save, then draw and write the pages from what was saved (report/). Used by
`omnirouter analyze`, `omnirouter offload` and the experiment's analysis and report stages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omnirouter.analysis.analyze import (
    STATISTICS_FILE,
    measure_routing,
    save_statistics,
    summarize_models,
)
from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.results import RESULTS_FILE, AnalysisResults
from omnirouter.analysis.summary import SummaryConfig
from omnirouter.config import load_config_section
from omnirouter.evaluate import model_file
from omnirouter.model.config import ModelConfig
from omnirouter.offload.simulate import records_only, save_study, simulate_study
from omnirouter.offload.study import OFFLOAD_FIGURE, OffloadStudy
from omnirouter.report.offload_page import draw_hit_rates, offload_section, write_offload_page
from omnirouter.report.page import PageFiles, write_page
from omnirouter.report.routing_page import FigureFiles, build_page, draw_routing_figures

logger = logging.getLogger(__name__)

NO_MOE_MODEL = "no mixture-of-experts model among the experiments: nothing to offload"


@dataclass(frozen=True)
class AnalysisOutputs:
    directory: Path
    results: Path
    statistics: Path
    figures: FigureFiles
    page: PageFiles
    offload: Path | None = None  # offload.json (offload_hit_rate.png beside it); None: no MoE


def analyze(
    experiment: str | Path,
    config: AnalysisConfig,
    compare: Sequence[str | Path] = (),
    out_dir: str | Path | None = None,
    from_records: bool = False,
    command: str = "",
) -> AnalysisOutputs:
    """Analyse the model of `experiment` (and those of `compare`) on `config.set_name`;
    with `from_records`, redraw everything from a previous run's saved results instead."""
    results, directory = measure_routing(
        experiment, config, compare, out_dir, from_records, command
    )
    return write_outputs(results, config.summary, directory)


def write_outputs(
    results: AnalysisResults,
    config: SummaryConfig,
    directory: str | Path,
    offload: OffloadStudy | None = None,
) -> AnalysisOutputs:
    """Statistics, the offloading study, figures and page from measured (or reloaded) results;
    the study is simulated from their records unless an earlier one is given."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    summaries = summarize_models(results, config)
    statistics_path = save_statistics(summaries, directory)
    figure_files = draw_routing_figures(results, summaries, directory)
    offload_study = offload or simulate_study(results)
    extra, study_path = [], None
    if offload_study is not None:
        study_path = save_study(offload_study, directory)
        figure = draw_hit_rates(offload_study, directory / OFFLOAD_FIGURE)
        extra = [offload_section(offload_study, figure)]
    page = build_page(results, summaries, figure_files, config, extra)
    page_files = write_page(page, directory, "report")
    logger.info("analysis page: %s", page_files.html)
    return AnalysisOutputs(
        directory, directory / RESULTS_FILE, statistics_path, figure_files, page_files, study_path
    )


@dataclass(frozen=True)
class OffloadOutputs:
    directory: Path
    study: OffloadStudy
    document: Path
    figure: Path
    page: PageFiles


def offload(
    experiment: str | Path,
    config: AnalysisConfig,
    compare: Sequence[str | Path] = (),
    out_dir: str | Path | None = None,
    slots_per_layer: Sequence[int] | None = None,
    from_records: bool = False,
    command: str = "",
) -> OffloadOutputs:
    """Record (or reload) the routing of the experiments, simulate the cache, write the page.
    Refused before any decoding when no model is a mixture of experts."""
    if not from_records and not any(is_moe(path) for path in [experiment, *compare]):
        raise ValueError(f"{NO_MOE_MODEL} (a dense model has no experts)")
    results, directory = measure_routing(
        experiment, records_only(config), compare, out_dir, from_records, command, "offload"
    )
    offload_study = simulate_study(results, slots_per_layer)
    if offload_study is None:
        raise ValueError(NO_MOE_MODEL)
    document = save_study(offload_study, directory)
    figure, page_files = write_offload_page(results, offload_study, directory)
    logger.info("offloading page: %s", page_files.html)
    return OffloadOutputs(directory, offload_study, document, figure, page_files)


def is_moe(experiment: str | Path) -> bool:
    """Whether the model of an experiment directory (or checkpoint file) has experts, read
    from its config.yaml, or from the checkpoint when there is none; nothing is decoded."""
    checkpoint, exp_dir = model_file.resolve_checkpoint(experiment)
    if exp_dir is not None and (exp_dir / model_file.RUN_CONFIG_FILE).is_file():
        config_path = exp_dir / model_file.RUN_CONFIG_FILE
        return load_config_section(ModelConfig, config_path, "model").is_moe
    return model_file.stored_configs(model_file.load_checkpoint(checkpoint))[0].is_moe


__all__ = ["STATISTICS_FILE", "AnalysisOutputs", "OffloadOutputs", "analyze", "offload"]
