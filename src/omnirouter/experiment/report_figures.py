"""The report's figures, drawn into the report directory: every run's training loss, and the
routing analysis (figures, page and statistics) redrawn from its saved results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omnirouter.analysis.training import LossCurve
from omnirouter.experiment.config import ExperimentConfig, PlannedRun
from omnirouter.experiment.report import ReportFigures
from omnirouter.experiment.results import read_losses

FIGURES_DIR = "figures"
ROUTING_DIR = "routing"


def draw_report_figures(
    config: ExperimentConfig, runs: Sequence[PlannedRun], analysis_dir: Path | None
) -> ReportFigures:
    from omnirouter.analysis.figures import draw_training_loss

    report_dir = config.report_path
    several = {run.model for run in runs if sum(other.model == run.model for other in runs) > 1}
    curves = []
    for run in runs:
        loss = read_losses(run)
        if loss.steps:
            label = f"{run.model} seed {run.seed}" if run.model in several else run.model
            curves.append(LossCurve(label, loss.steps, loss.ctc_loss))
    training_loss = (
        draw_training_loss(curves, report_dir / FIGURES_DIR / "training_loss.png")
        if curves
        else None
    )
    if analysis_dir is None:
        return ReportFigures(training_loss, None, None)
    from omnirouter.analysis.results import load_results
    from omnirouter.analysis.run import write_outputs

    outputs = write_outputs(
        load_results(analysis_dir), config.analysis.summary, report_dir / ROUTING_DIR
    )
    return ReportFigures(training_loss, outputs.figures, outputs.page.html)
