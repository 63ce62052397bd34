"""The report's figures, drawn into the report directory: every run's training loss, and the
routing analysis (figures, page, statistics and the offloading study) redrawn from its saved
results."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omnirouter.experiment.config import ExperimentConfig
from omnirouter.experiment.report import ReportFigures
from omnirouter.report.experiment_results import ExperimentResults

FIGURES_DIR = "figures"
ROUTING_DIR = "routing"


def draw_report_figures(
    config: ExperimentConfig, results: ExperimentResults, analysis_dir: Path | None
) -> ReportFigures:
    from omnirouter.report.figures import draw_learning_curves, draw_training_loss

    report_dir = config.report_path
    curves = [
        dataclasses.replace(
            loss.curve,
            name=f"{model.name} seed {loss.seed}" if len(model.losses) > 1 else model.name,
        )
        for model in results.models
        for loss in model.losses
        if loss.curve.steps
    ]
    training_loss = (
        draw_training_loss(curves, report_dir / FIGURES_DIR / "training_loss.png")
        if curves
        else None
    )
    # Every curve, validated or not, so that a run has one colour in both figures.
    learning_curve = (
        draw_learning_curves(curves, report_dir / FIGURES_DIR / "learning_curves.png")
        if any(curve.valid_steps for curve in curves)
        else None
    )
    if analysis_dir is None:
        return ReportFigures(training_loss, None, None, learning_curve=learning_curve)
    from omnirouter.analysis.results import load_results
    from omnirouter.experiment.routing import write_outputs
    from omnirouter.offload.simulate import load_study

    outputs = write_outputs(
        load_results(analysis_dir),
        config.analysis.summary,
        report_dir / ROUTING_DIR,
        load_study(analysis_dir),  # the analysis simulated it: no second simulation
    )
    return ReportFigures(
        training_loss, outputs.figures, outputs.page.html, outputs.offload, learning_curve
    )
