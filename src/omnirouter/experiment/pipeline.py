"""`omnirouter experiment`: corpus (and its LM) → tokenizer → train → eval → lm → analysis →
proposals → compare → report.

Every stage first asks whether its work is already done (see `stages` and `training_runs`) and skips it
if so, so a re-run of the same command continues an interrupted experiment and redoes nothing
else. `force_stage` redoes a stage and every stage after it (they depend on it). Each task's
wall time goes to REPORT_DIR/stages.json (see `ledger`).

Training runs in this process, on one device, or with `train_jobs` > 1 in that many worker
processes side by side (see `train_jobs`). For several GPUs, train a run with torchrun
into its directory (`torchrun ... -m omnirouter train <its config.yaml> --exp-dir
EXP_ROOT/<model>/seed<k>`): the experiment then finds it finished and goes on from there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf

from omnirouter.config import config_to_dict, differing_keys
from omnirouter.data.prepare import sets_lacking_features
from omnirouter.devices import choose_device
from omnirouter.evaluate.compare import COMPARE_TABLE_STEM, save_compare_table
from omnirouter.evaluate.model_file import step_checkpoints
from omnirouter.evaluate.suite import default_eval_sets
from omnirouter.experiment.config import ExperimentConfig, PlannedRun, plan_runs
from omnirouter.experiment.gather import gather
from omnirouter.experiment.ledger import STAGES, STAGES_FILE, Ledger
from omnirouter.experiment.lm_stage import (
    build_experiment_lm,
    decode_run_with_lm,
    experiment_lm_dir,
    lm_decoding_pending,
    lm_pending,
    lm_runs,
    lm_table_path,
    write_missing_training_text,
)
from omnirouter.experiment.report_setup import draw_report_figures, report_setup
from omnirouter.experiment.results import compare_seed_means
from omnirouter.experiment.stages import (
    analysed_runs,
    analysis_dir,
    analysis_pending,
    analyze_runs,
    build_experiment_corpus,
    corpus_differs_from_config,
    corpus_pending,
    eval_pending,
    eval_table_path,
    evaluate_run,
    needed_sets,
    proposal_dir,
    proposals_pending,
    store_features,
    stored_feature_config,
    sweep_run_proposals,
    tokenizer_pending,
    tokenizer_runs,
    train_tokenizer,
)
from omnirouter.experiment.train_jobs import train_in_processes
from omnirouter.experiment.training_runs import check_saved_config, remove_run, run_state, train_run
from omnirouter.locks import directory_lock
from omnirouter.report.experiment_page import (
    HTML_FILE,
    README_FILE,
    RESULTS_FILE,
    build_page,
    write_report,
)
from omnirouter.report.tables import write_compare_pages

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"  # the resolved experiment config, in the report directory
# Where an experiment's parts lie, not what they are: changing them alone redoes no stage.
LOCATION_KEYS = frozenset(
    {"exp_root", "report_dir", "corpus.corpus_dir", "corpus.synth_config", "run.data.corpus_dir"}
)


@dataclass(frozen=True)
class ExperimentOutputs:
    report_dir: Path
    readme: Path
    html: Path
    stages: Path


def forced_stages(stage: str | None) -> frozenset[str]:
    """`stage` and every stage after it."""
    if stage is None:
        return frozenset()
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    return frozenset(STAGES[STAGES.index(stage) :])


def run_experiment(
    config: ExperimentConfig, force_stage: str | None = None, command: str = ""
) -> ExperimentOutputs:
    """Every stage of the experiment, holding its root directory's lock (each training run
    also locks its own directory, in whichever process trains it)."""
    forced = forced_stages(force_stage)
    with directory_lock(config.exp_root_dir, f"omnirouter experiment {config.name}"):
        return _run_stages(config, forced, command)


def _run_stages(
    config: ExperimentConfig, forced: frozenset[str], command: str
) -> ExperimentOutputs:
    runs = plan_runs(config)
    report_dir = config.report_path
    ledger = Ledger(report_dir / STAGES_FILE, config.name, command, sorted(forced))
    if "train" not in forced:  # before any work: a run trained otherwise fails at once
        for run in runs:
            if step_checkpoints(run.exp_dir):
                check_saved_config(run)
    threads = torch.get_num_threads()
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    try:
        with ledger.stage("corpus"):
            corpus_stage(config, runs, ledger, "corpus" in forced)
        with ledger.stage("tokenizer"):
            tokenizer_stage(runs, ledger, "tokenizer" in forced)
        with ledger.stage("train"):
            train_stage(runs, ledger, "train" in forced, config.train_jobs, config.cpu_threads)
        with ledger.stage("eval"):
            eval_stage(config, runs, ledger, "eval" in forced)
        with ledger.stage("lm"):
            lm_stage(config, runs, ledger, "lm" in forced)
        with ledger.stage("analysis"):
            analysis_dir = analysis_stage(config, runs, ledger, "analysis" in forced, command)
        with ledger.stage("proposals"):
            proposal_stage(config, runs, ledger, "proposals" in forced)
        with ledger.stage("compare"):
            compare_stage(config, runs, ledger, "compare" in forced)
        with ledger.stage("report"):
            readme, html = report_stage(config, runs, ledger, forced, analysis_dir, command)
    finally:
        torch.set_num_threads(threads)
        ledger.finish()
    return ExperimentOutputs(report_dir, readme, html, ledger.path)


def corpus_stage(
    config: ExperimentConfig, runs: Sequence[PlannedRun], ledger: Ledger, force: bool
) -> None:
    corpus_dir = Path(config.corpus.corpus_dir)
    sets = needed_sets(config, runs)
    reason = "forced" if force else corpus_pending(corpus_dir, sets)
    if reason is None:
        ledger.skip("corpus", "corpus", f"{corpus_dir} has every set")
        if corpus_differs_from_config(config.corpus):
            log.warning(
                "%s was built from another synth config than %s (%s): it is used as it is; "
                "--force-stage corpus brings it up to date and retrains everything",
                corpus_dir,
                config.corpus.synth_config,
                config.corpus.synth_overrides,
            )
    else:
        with ledger.run("corpus", "corpus", reason):
            build_experiment_corpus(config.corpus, sets)
    if config.lm.enabled:
        write_missing_training_text(config)
        lm_reason = "forced" if force else lm_pending(config)
        if lm_reason is None:
            ledger.skip("corpus", "lm", f"{experiment_lm_dir(config)} is up to date")
        else:
            with ledger.run("corpus", "lm", lm_reason):
                log.info("LM: %s", build_experiment_lm(config))
    features = stored_feature_config(runs)
    if features is None:
        return
    pending = sets_lacking_features(corpus_dir, features)
    if not pending:
        ledger.skip("corpus", "features", "every set has its features stored")
        return
    with ledger.run("corpus", "features", f"log-mels of {', '.join(pending)}"):
        store_features(corpus_dir, features, pending, config.corpus.jobs)


def tokenizer_stage(runs: Sequence[PlannedRun], ledger: Ledger, force: bool) -> None:
    for run in tokenizer_runs(runs):
        directory = run.config.data.tokenizer_dir
        reason = "forced" if force else tokenizer_pending(run)
        if reason is None:
            ledger.skip("tokenizer", directory.name, f"{directory} exists")
            continue
        with ledger.run("tokenizer", directory.name, reason):
            train_tokenizer(run)


def train_stage(
    runs: Sequence[PlannedRun],
    ledger: Ledger,
    force: bool,
    jobs: int = 1,
    cpu_threads: int = 0,
) -> None:
    """Train every unfinished run: one after another, or `jobs` at a time in worker processes
    of `cpu_threads` torch threads each."""
    if force:
        for run in runs:
            remove_run(run)
    pending = []
    for run in runs:
        state = run_state(run)
        if state.finished:
            ledger.skip("train", run.label, state.note)
            continue
        note = state.note if state.started else f"{run.config.train.max_steps} steps"
        pending.append((run, state, note))
    jobs = min(jobs, len(pending))
    if jobs > 1:

        def finished(run: PlannedRun, note: str, started: str, seconds: float) -> None:
            ledger.record("train", run.label, started, seconds, note)

        train_in_processes(pending, jobs, cpu_threads, finished)
        return
    for run, state, note in pending:
        with ledger.run("train", run.label, note):
            train_run(run, state)


def evaluation_sets(config: ExperimentConfig, runs: Sequence[PlannedRun]) -> list[str]:
    """The sets every model is evaluated on: the configured ones, else dev and every test set."""
    return list(config.eval_sets) or default_eval_sets(runs[0].config.data)


def eval_stage(
    config: ExperimentConfig, runs: Sequence[PlannedRun], ledger: Ledger, force: bool
) -> None:

    sets = evaluation_sets(config, runs)
    for run in runs:
        reason = "forced" if force else eval_pending(run, sets)
        if reason is None:
            ledger.skip("eval", run.label, f"{eval_table_path(run)} is up to date")
            continue
        with ledger.run("eval", run.label, f"{len(sets)} sets; {reason}"):
            # Chosen only when there is work: a report rebuilt where eval_device is missing works.
            evaluate_run(run, sets, str(choose_device(config.eval_device)))


def lm_stage(
    config: ExperimentConfig, runs: Sequence[PlannedRun], ledger: Ledger, force: bool
) -> None:
    """Beam search with the corpus's LM for the first seed of each model, tuned on dev."""
    if not config.lm.enabled:
        return
    sets = evaluation_sets(config, runs)
    for run in lm_runs(runs):
        reason = "forced" if force else lm_decoding_pending(config, run, sets)
        if reason is None:
            ledger.skip("lm", run.label, f"{lm_table_path(run)} is up to date")
            continue
        with ledger.run("lm", run.label, f"tuned on dev, {len(sets)} sets; {reason}"):
            decode_run_with_lm(config, run, sets, str(choose_device(config.eval_device)))


def analysis_stage(
    config: ExperimentConfig,
    runs: Sequence[PlannedRun],
    ledger: Ledger,
    force: bool,
    command: str,
) -> Path | None:
    analysed = analysed_runs(config, runs) if config.analysis.enabled else []
    if not analysed:
        log.info("analysis: no model to analyse (disabled, or no MoE model)")
        return None
    reason = "forced" if force else analysis_pending(config, analysed)
    if reason is None:
        ledger.skip("analysis", "analysis", f"{analysis_dir(config)} is up to date")
        return analysis_dir(config)
    names = ", ".join(run.label for run in analysed)
    with ledger.run("analysis", "analysis", f"{names} on {config.analysis.set_name}; {reason}"):
        return analyze_runs(config, analysed, command)


def proposal_stage(
    config: ExperimentConfig, runs: Sequence[PlannedRun], ledger: Ledger, force: bool
) -> None:
    """WER against the number of routed proposals, for the first seed of each analysed model."""
    if not config.proposals.enabled:
        return
    for run in analysed_runs(config, runs):
        reason = "forced" if force else proposals_pending(config, run)
        if reason is None:
            ledger.skip("proposals", run.label, f"{proposal_dir(config, run)} is up to date")
            continue
        counts = ",".join(map(str, config.proposals.counts))
        with ledger.run("proposals", run.label, f"K = {counts}; {reason}"):
            sweep_run_proposals(config, run, str(choose_device(config.eval_device)))


def compare_stage(
    config: ExperimentConfig, runs: Sequence[PlannedRun], ledger: Ledger, force: bool
) -> None:

    report_dir = config.report_path
    target = report_dir / f"{COMPARE_TABLE_STEM}.json"
    reason = "forced" if force else _derived_pending(config, ledger, target)
    if reason is None:
        ledger.skip("compare", "compare", f"{target} is up to date")
        return

    with ledger.run("compare", "compare", reason):
        table = compare_seed_means(config, runs)
        write_compare_pages(table, save_compare_table(table, report_dir))


def report_stage(
    config: ExperimentConfig,
    runs: Sequence[PlannedRun],
    ledger: Ledger,
    forced: frozenset[str],
    analysis_dir: Path | None,
    command: str,
) -> tuple[Path, Path]:

    report_dir = config.report_path
    readme, html = report_dir / README_FILE, report_dir / HTML_FILE
    reason = "forced" if "report" in forced else _derived_pending(config, ledger, readme)
    reason = reason or _missing(html, report_dir / RESULTS_FILE)
    if reason is None:
        ledger.skip("report", "report", f"{readme} is up to date")
        return readme, html

    with ledger.run("report", "report", reason):
        results = gather(config, runs, analysis_dir)
        figures = draw_report_figures(config, results, analysis_dir)
        setup = report_setup(config, runs, ledger.current_records(), command)
        page = build_page(results, figures, setup)
        write_report(page, results, report_dir)
        (report_dir / CONFIG_FILE).write_text(_config_text(config))
    log.info("report: %s and %s", readme, html)
    return readme, html


def _derived_pending(config: ExperimentConfig, ledger: Ledger, target: Path) -> str | None:
    """Why a stage derived from the earlier ones must run again, or None."""
    if not target.is_file():
        return f"{target.name} is missing"
    if ledger.ran_any(STAGES[: STAGES.index("compare")]):
        return "earlier stages ran"
    if _config_changed(config.report_path / CONFIG_FILE, config):
        return "the experiment configuration changed"
    return None


def _config_changed(saved: Path, config: ExperimentConfig) -> bool:
    """Whether `config` differs from the one the report was made with in more than where
    things lie (LOCATION_KEYS: a moved or copied experiment has the same results)."""
    if not saved.is_file():
        return True
    try:
        before = OmegaConf.to_container(OmegaConf.load(saved))
    except (OSError, yaml.YAMLError):  # unreadable: make the report again
        return True
    if not isinstance(before, dict):
        return True
    changed = differing_keys(before, config_to_dict(config))
    return any(key not in LOCATION_KEYS for key in changed)


def _missing(*paths: Path) -> str | None:
    absent = [path.name for path in paths if not path.is_file()]
    return f"{', '.join(absent)} missing" if absent else None


def _config_text(config: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
