"""The report stage's inputs besides the gathered results: its figures (the routing analysis
redrawn inside the report directory) and what the report says of how the experiment was run
(`ReportSetup`), in plain values taken from its configuration, its runs and its ledger."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from omnirouter.analysis.results import load_results
from omnirouter.evaluate.proposal_sweep import SWEEP_STEM
from omnirouter.experiment.config import ExperimentConfig, PlannedRun
from omnirouter.experiment.ledger import RAN, STAGES, TaskRecord
from omnirouter.experiment.routing import write_outputs
from omnirouter.experiment.stages import analysed_runs, proposal_dir
from omnirouter.offload.simulate import load_study
from omnirouter.report.experiment_page import (
    ROUTING_DIR,
    Recipe,
    ReportFigures,
    ReportSetup,
    StageTime,
    draw_training_figures,
)
from omnirouter.report.experiment_results import ExperimentResults
from omnirouter.report.inference_sections import ProposalSweeps


def draw_report_figures(
    config: ExperimentConfig, results: ExperimentResults, analysis_dir: Path | None
) -> ReportFigures:
    """The training figures, and the routing analysis redrawn from its saved results."""
    report_dir = config.report_path
    training_loss, learning_curve = draw_training_figures(results, report_dir)
    if analysis_dir is None:
        return ReportFigures(training_loss, None, None, learning_curve=learning_curve)
    outputs = write_outputs(
        load_results(analysis_dir),
        config.analysis.summary,
        report_dir / ROUTING_DIR,
        load_study(analysis_dir),  # the analysis simulated it: no second simulation
    )
    return ReportFigures(
        training_loss, outputs.figures, outputs.page.html, outputs.offload, learning_curve
    )


def report_setup(
    config: ExperimentConfig,
    runs: Sequence[PlannedRun],
    records: Sequence[TaskRecord],
    command: str,
) -> ReportSetup:
    train = config.run.train
    return ReportSetup(
        command=command,
        report_dir=config.report_path,
        exp_root=config.exp_root_dir,
        run_dirs=tuple(run.exp_dir for run in runs),
        model_changes=tuple((*entry.files, *entry.overrides) for entry in config.models),
        recipe=Recipe(
            max_duration=config.run.data.max_duration,
            grad_accumulation=train.grad_accumulation,
            peak_lr=train.optimizer.peak_lr,
            warmup_steps=train.schedule.warmup_steps,
            cosine_steps=train.schedule.cosine_steps,
            load_balance_weight=train.loss.load_balance_weight,
            vocab_size=config.run.data.tokenizer.vocab_size,
        ),
        stage_times=stage_times(records),
        proposals=proposal_sweeps(config, runs),
    )


def proposal_sweeps(config: ExperimentConfig, runs: Sequence[PlannedRun]) -> ProposalSweeps:
    """The proposals stage's setting and the sweep file of every analysed model that has one."""
    if not config.proposals.enabled:
        return ProposalSweeps(None)
    files = (
        (run.model, proposal_dir(config, run) / f"{SWEEP_STEM}.json")
        for run in analysed_runs(config, runs)
    )
    return ProposalSweeps(
        config.proposals.proposal_config().description,
        tuple((model, path) for model, path in files if path.is_file()),
    )


def stage_times(records: Sequence[TaskRecord]) -> tuple[StageTime, ...]:
    """The report's wall-time rows: every stage with tasks, the report itself excepted (it
    cannot time itself)."""
    times = []
    for stage in STAGES[:-1]:
        stage_records = [record for record in records if record.stage == stage]
        if not stage_records:
            continue
        timed = [record for record in stage_records if record.started]
        times.append(
            StageTime(
                stage=stage,
                tasks=len(stage_records),
                seconds=wall_seconds(stage_records),
                first_started=min((record.started for record in timed), default=""),
                last_ended=max((record.ended for record in timed), default=""),
                ran=sum(record.last_status == RAN for record in stage_records),
            )
        )
    return tuple(times)


def wall_seconds(records: Sequence[TaskRecord]) -> float:
    """Wall time of a stage's tasks: tasks that overlapped in time (trained side by side)
    count as the span from the first start to the last end of the overlapping group."""
    total = sum(record.seconds for record in records if not record.started)
    group: list[TaskRecord] = []
    group_end = ""
    for record in sorted((r for r in records if r.started), key=lambda r: r.started):
        if group and record.started >= group_end:
            total += _group_seconds(group, group_end)
            group = []
        group.append(record)
        group_end = max(group_end, record.ended) if len(group) > 1 else record.ended
    return total + (_group_seconds(group, group_end) if group else 0.0)


def _group_seconds(group: list[TaskRecord], group_end: str) -> float:
    if len(group) == 1:  # its own, more precise than the ISO times' seconds
        return group[0].seconds
    span = (_parse(group_end) - _parse(group[0].started)).total_seconds()
    return max(span, max(record.seconds for record in group))


def _parse(iso_time: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(iso_time)
