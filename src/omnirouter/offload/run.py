"""`omnirouter offload`: record the routing of trained models on a set, then simulate an
offloaded expert cache over it (`offload.study`) and write the tables, figure and page.

    OUT/results.json, OUT/records/    the routing records (the analysis's format, see
                                      `analysis.results`), reusable with --from-records
    OUT/offload.json                  every simulation's counts and rates
    OUT/offload_hit_rate.png          hit rate against cache size
    OUT/report.md, OUT/report.html    the page
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.results import AnalysisResults, load_results, save_results
from omnirouter.offload.study import (
    OFFLOAD_FIGURE,
    OFFLOAD_FILE,
    OffloadStudy,
    draw_hit_rates,
    from_document,
    offload_section,
    study,
    to_document,
)
from omnirouter.report.page import Page, PageFiles, Paragraph, write_page

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OffloadOutputs:
    directory: Path
    study: OffloadStudy
    document: Path
    figure: Path
    page: PageFiles


def record_routing(
    experiments: Sequence[str | Path], config: AnalysisConfig, command: str = ""
) -> AnalysisResults:
    """One recognition pass per model, keeping its routing records (lookahead included)."""
    import dataclasses

    from omnirouter.analysis.experiments import experiment_subjects
    from omnirouter.analysis.measure import measure

    config = dataclasses.replace(config, permutation_probabilities=[], num_shown_utterances=0)
    return measure(experiment_subjects(experiments, config), config, command)


@dataclass(frozen=True)
class StudyFiles:
    study: OffloadStudy
    document: Path  # offload.json
    figure: Path  # offload_hit_rate.png


def write_study(
    results: AnalysisResults,
    directory: str | Path,
    slots_per_layer: Sequence[int] | None = None,
    simulated: OffloadStudy | None = None,
) -> StudyFiles | None:
    """The study of the results' MoE models (simulated now unless `simulated` is given): JSON
    and figure in `directory`. None when there is no MoE model."""
    records = [model.records for model in results.moe_models if model.records]
    if not records:
        return None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    offload_study = simulated or study(records, slots_per_layer)
    document = directory / OFFLOAD_FILE
    document.write_text(json.dumps(to_document(offload_study), indent=1) + "\n")
    figure = draw_hit_rates(offload_study, directory / OFFLOAD_FIGURE)
    return StudyFiles(offload_study, document, figure)


def load_study(directory: str | Path) -> OffloadStudy | None:
    """The study saved in `directory` by `write_study`, or None if there is none."""
    path = Path(directory) / OFFLOAD_FILE
    return from_document(json.loads(path.read_text())) if path.is_file() else None


def offload(
    experiment: str | Path,
    config: AnalysisConfig,
    compare: Sequence[str | Path] = (),
    out_dir: str | Path | None = None,
    slots_per_layer: Sequence[int] | None = None,
    from_records: bool = False,
    command: str = "",
) -> OffloadOutputs:
    from omnirouter.analysis.run import default_output_dir

    directory = (
        Path(out_dir) if out_dir else default_output_dir(experiment, config.set_name, "offload")
    )
    if from_records:
        results = load_results(directory)
    else:
        results = record_routing([experiment, *compare], config, command)
        save_results(results, directory)
    written = write_study(results, directory, slots_per_layer)
    if written is None:
        raise ValueError("no mixture-of-experts model among the experiments: nothing to offload")
    offload_study = written.study
    intro = [
        Paragraph(
            f"Expert offloading simulated over the routing of {len(offload_study.models)} "
            f"model(s) on `{results.set_name}` "
            f"({_steps(results)} steps of 40 ms, every utterance in order)."
        )
    ]
    if results.command:
        intro.append(Paragraph(f"Command: `{results.command}`"))
    page = Page(
        f"Expert offloading: {results.set_name}",
        (offload_section(offload_study, written.figure),),
        tuple(intro),
    )
    page_files = write_page(page, directory, "report")
    logger.info("offloading page: %s", page_files.html)
    return OffloadOutputs(directory, offload_study, written.document, written.figure, page_files)


def _steps(results: AnalysisResults) -> str:
    steps = {model.records.num_steps for model in results.moe_models if model.records}
    return " / ".join(f"{count:,}" for count in sorted(steps))
