"""The work of each stage and the test of whether it is already done.

    corpus     build the corpus from its synth config when sets are missing (build_corpus),
               then store log-mels of every set when the runs read stored features
    tokenizer  train every tokenizer the runs need and lack
    train      see `training_runs`
    eval       every run on the evaluation sets, unless its table is newer than its checkpoints
    analysis   the routing analysis of the chosen models, unless measured from these checkpoints
               (with the expert-offloading study of their routing records)
    proposals  WER against the number of routed proposals for the analysed MoE models

Each `*_pending` function returns why the work is needed, or None when it is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import torch

from omnirouter.analysis.analyze import STATISTICS_FILE
from omnirouter.analysis.experiments import load_subject
from omnirouter.analysis.measure import measure
from omnirouter.analysis.results import RESULTS_FILE, save_results
from omnirouter.config import config_to_dict, load_config
from omnirouter.data.corpus import CORPUS_INFO_FILE, CorpusInfo, cuts_path, read_corpus_info
from omnirouter.data.features import FeatureConfig, stored_settings
from omnirouter.data.prepare import store_corpus_features, train_corpus_tokenizer
from omnirouter.data.synth.build import build_corpus
from omnirouter.data.synth.config import SynthConfig
from omnirouter.data.tokenizer import MODEL_FILE
from omnirouter.errors import OmnirouterError
from omnirouter.evaluate.proposal_sweep import SWEEP_STEM, sweep_checkpoint
from omnirouter.evaluate.suite import evaluate_checkpoint
from omnirouter.evaluate.tables import EVAL_DIR, EVAL_TABLE_STEM, read_eval_table
from omnirouter.experiment.config import CorpusStageConfig, ExperimentConfig, PlannedRun
from omnirouter.experiment.routing import write_outputs
from omnirouter.experiment.training_runs import newest_checkpoint_time
from omnirouter.model.config import Family
from omnirouter.report.tables import write_eval_table_pages, write_sweep_page

log = logging.getLogger(__name__)

INPUTS_STAMP_FILE = "experiment_inputs.json"  # what a stage's directory was measured from


class CorpusError(OmnirouterError):
    """The corpus lacks sets the experiment needs and cannot be built."""


# ---------------------------------------------------------------- corpus


def needed_sets(config: ExperimentConfig, runs: Sequence[PlannedRun]) -> list[str]:
    """Every set a run trains or validates on, the evaluation sets, and the analysed set."""
    names = [name for run in runs for name in run.config.data.train_sets]
    names += [run.config.data.dev_set for run in runs] + list(config.eval_sets)
    if config.analysis.enabled:
        names.append(config.analysis.set_name)
    return list(dict.fromkeys(names))


def corpus_pending(corpus_dir: Path, sets: Sequence[str]) -> str | None:
    if not (corpus_dir / CORPUS_INFO_FILE).is_file():
        return f"{corpus_dir / CORPUS_INFO_FILE} is missing"
    info = read_corpus_info(corpus_dir)
    missing = [name for name in sets if name not in info.set_names()]
    missing += [name for name in info.set_names() if not cuts_path(corpus_dir, name).is_file()]
    if missing:
        return f"sets {sorted(set(missing))} are missing from {corpus_dir}"
    return None


def build_experiment_corpus(config: CorpusStageConfig, sets: Sequence[str]) -> CorpusInfo:
    """Build (or complete) the corpus from the synth config; fail if sets are still missing."""

    corpus_dir = Path(config.corpus_dir)
    if not config.synth_config:
        raise CorpusError(
            f"{corpus_pending(corpus_dir, sets)}, and corpus.synth_config is empty: prepare "
            "the corpus first (omnirouter data prepare | import) or name a synth config"
        )
    synth = load_config(SynthConfig, [config.synth_config], config.synth_overrides)
    info = build_corpus(synth, corpus_dir, jobs=config.jobs or None)
    still = corpus_pending(corpus_dir, sets)
    if still:
        raise CorpusError(f"after building from {config.synth_config}: {still}")
    return info


def corpus_differs_from_config(config: CorpusStageConfig) -> bool:
    """Whether an existing synthetic corpus was built from another synth config than the
    experiment names (it is then used as it is, with a warning)."""
    if not config.synth_config:
        return False

    built = read_corpus_info(config.corpus_dir).extra.get("config")
    wanted = config_to_dict(load_config(SynthConfig, [config.synth_config], config.synth_overrides))
    return built is not None and built != wanted


def stored_feature_config(runs: Sequence[PlannedRun]) -> FeatureConfig | None:
    """The feature settings of the runs that read stored features (`data.features.use_stored`),
    or None when none does. The stored features serve every such run, so they must agree."""
    configs = [run.config.data.features for run in runs if run.config.data.features.use_stored]
    if not configs:
        return None
    settings = [stored_settings(config) for config in configs]
    if any(other != settings[0] for other in settings):
        raise CorpusError(
            f"the runs read stored features of different settings ({settings[0]} and others "
            "in data.features); one corpus stores one kind"
        )
    return configs[0]


def store_features(
    corpus_dir: Path, config: FeatureConfig, sets: Sequence[str], jobs: int
) -> list[str]:
    """Store the sets' log-mels in this process with `jobs` torch threads (0 = one per CPU):
    Lhotse's worker processes (num_jobs > 1) took 104 s for the 6 h built-in training set on 2
    cores, one process with 2 threads 22 s."""

    threads = torch.get_num_threads()
    torch.set_num_threads(jobs or os.cpu_count() or 1)
    try:
        return store_corpus_features(corpus_dir, config, sets, num_jobs=1)
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- tokenizer


def tokenizer_runs(runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """One run per tokenizer directory the runs use, in run order."""
    chosen: dict[Path, PlannedRun] = {}
    for run in runs:
        chosen.setdefault(run.config.data.tokenizer_dir, run)
    return list(chosen.values())


def tokenizer_pending(run: PlannedRun) -> str | None:
    path = run.config.data.tokenizer_dir / MODEL_FILE
    return None if path.is_file() else f"{path} is missing"


def train_tokenizer(run: PlannedRun) -> Path:

    data = run.config.data
    train_corpus_tokenizer(data.corpus_dir, data.tokenizer, data.train_sets)
    return data.tokenizer_dir


# ---------------------------------------------------------------- evaluation


def eval_table_path(run: PlannedRun) -> Path:
    return run.exp_dir / EVAL_DIR / f"{EVAL_TABLE_STEM}.json"


def eval_pending(run: PlannedRun, sets: Sequence[str]) -> str | None:
    path = eval_table_path(run)
    if not path.is_file():
        return "not evaluated"
    if path.stat().st_mtime < newest_checkpoint_time(run.exp_dir):
        return "its checkpoints are newer than its evaluation"
    try:
        evaluated = {row.set_name for row in read_eval_table(path).rows}
    except ValueError:
        return f"{path} is unreadable"
    if evaluated != set(sets):
        return f"evaluated on {sorted(evaluated)}, not on {sorted(sets)}"
    return None


def evaluate_run(run: PlannedRun, sets: Sequence[str], device: str) -> Path:

    command = shlex.join(
        ["omnirouter", "eval", str(run.exp_dir), "--sets", ",".join(sets), "--device", device]
    )
    result = evaluate_checkpoint(run.exp_dir, sets, device=device, command=command)
    write_eval_table_pages(result.table, result.table_files)
    return result.table_files.json


# ---------------------------------------------------------------- routing analysis


def first_seed_runs(runs: Sequence[PlannedRun]) -> dict[str, PlannedRun]:
    """Each model's first-seed run, by model name, in the models' order."""
    first: dict[str, PlannedRun] = {}
    for run in runs:
        first.setdefault(run.model, run)
    return first


def analysed_runs(config: ExperimentConfig, runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """The first-seed run of each analysed model (default: every MoE model)."""
    first = first_seed_runs(runs)
    names = config.analysis.models or [
        name for name, run in first.items() if run.config.model.family is not Family.dense
    ]
    return [first[name] for name in names]


def analysis_dir(config: ExperimentConfig) -> Path:
    """EXP_ROOT/analysis/<experiment>/<set>: experiments may share their runs' root (the demo,
    the benchmark and the expert sweep all train into exp/demo), not their analyses."""
    return config.exp_root_dir / "analysis" / config.name / config.analysis.set_name


def analysis_pending(config: ExperimentConfig, runs: Sequence[PlannedRun]) -> str | None:

    directory = analysis_dir(config)
    if not (directory / STATISTICS_FILE).is_file():
        return "not analysed"
    return _stamp_pending(
        directory,
        directory / RESULTS_FILE,
        _fingerprint(config_to_dict(config.analysis), runs),
        runs,
    )


def analyze_runs(config: ExperimentConfig, runs: Sequence[PlannedRun], command: str) -> Path:
    """`omnirouter analyze` of the runs, each named after its model rather than its directory
    (every run directory is called seed<k>)."""

    def subjects():
        for run in runs:
            subject = load_subject(run.exp_dir, config.analysis)
            curve = subject.loss_curve
            yield dataclasses.replace(
                subject,
                name=run.model,
                loss_curve=dataclasses.replace(curve, name=run.model) if curve else None,
            )

    directory = analysis_dir(config)
    results = measure(subjects(), config.analysis, command)
    save_results(results, directory)
    write_outputs(results, config.analysis.summary, directory)
    _write_stamp(directory, _fingerprint(config_to_dict(config.analysis), runs), runs)
    return directory


def _fingerprint(settings: dict, runs: Sequence[PlannedRun]) -> str:
    """What a derived directory is measured from: a stage's settings and the runs, named as
    they lie under the experiment's root (model/seed<k>), so that a moved or copied
    experiment finds its stages done."""
    inputs = {"settings": settings, "runs": [[run.model, run.label] for run in runs]}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _write_stamp(directory: Path, fingerprint: str, runs: Sequence[PlannedRun]) -> None:
    stamp = {"fingerprint": fingerprint, "models": [run.label for run in runs]}
    (directory / INPUTS_STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n")


def _stamp_pending(
    directory: Path, output: Path, fingerprint: str, runs: Sequence[PlannedRun]
) -> str | None:
    """Why `output` in `directory` must be measured again, or None: missing, measured from
    other settings or runs (its stamp), or older than a run's checkpoints."""
    stamp = directory / INPUTS_STAMP_FILE
    if not (stamp.is_file() and output.is_file()):
        return f"{output.name} is missing"
    try:
        measured_from = json.loads(stamp.read_text()).get("fingerprint")
    except json.JSONDecodeError:
        measured_from = None
    if measured_from != fingerprint:
        return "the models or the settings changed"
    if any(output.stat().st_mtime < newest_checkpoint_time(run.exp_dir) for run in runs):
        return f"checkpoints are newer than {output.name}"
    return None


# ---------------------------------------------------------------- routed proposals


def proposal_sets(config: ExperimentConfig) -> list[str]:
    return list(config.proposals.sets) or [config.analysis.set_name]


def proposal_dir(config: ExperimentConfig, run: PlannedRun) -> Path:
    """EXP_ROOT/proposals/<experiment>/<model>: apart from what `omnirouter eval --proposals`
    writes by hand into the run's own directory."""
    return config.exp_root_dir / "proposals" / config.name / run.model


def _proposal_fingerprint(config: ExperimentConfig, run: PlannedRun) -> str:
    settings = {
        "proposals": config_to_dict(config.proposals),
        "normalizer": config.analysis.normalizer,
    }
    return _fingerprint(settings, [run])


def proposals_pending(config: ExperimentConfig, run: PlannedRun) -> str | None:

    directory = proposal_dir(config, run)
    sweep = directory / f"{SWEEP_STEM}.json"
    return _stamp_pending(directory, sweep, _proposal_fingerprint(config, run), [run])


def sweep_run_proposals(config: ExperimentConfig, run: PlannedRun, device: str) -> Path:
    """The proposal sweep of one run; returns its sweep.json."""

    settings = config.proposals
    directory = proposal_dir(config, run)
    sets = ",".join(proposal_sets(config))
    counts = ",".join(map(str, settings.counts))
    command = ["omnirouter", "eval", str(run.exp_dir), "--sets", sets, "--proposals", counts]
    command += ["--proposal-temperature", f"{settings.temperature:g}"]
    command += ["--proposal-mode", settings.mode.value]
    command += ["--proposal-aggregate", settings.aggregate.value]
    command += ["--proposal-seed", str(settings.seed), "--out", str(directory)]
    sweep, saved = sweep_checkpoint(
        run.exp_dir,
        settings.counts,
        settings.proposal_config(),
        sets=proposal_sets(config),
        out_dir=directory,
        device=device,
        normalizer_name=config.analysis.normalizer,
        command=shlex.join(command),
    )
    write_sweep_page(sweep, directory)
    _write_stamp(directory, _proposal_fingerprint(config, run), [run])
    return saved
