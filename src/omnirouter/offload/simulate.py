"""`omnirouter offload`, its science half: record the routing of trained models on a set, then
simulate an offloaded expert cache over it (`offload.study`) and save the study.

    OUT/results.json, OUT/records/    the routing records (the analysis's format, see
                                      `analysis.results`), reusable with --from-records
    OUT/offload.json                  every simulation's counts and rates

`report.offload_page` draws the hit-rate figure and writes the page from these files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from omnirouter.analysis.analyze import default_output_dir
from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.experiments import experiment_subjects
from omnirouter.analysis.measure import measure
from omnirouter.analysis.results import AnalysisResults, load_results, save_results
from omnirouter.jsonio import read_json, write_json
from omnirouter.offload.study import OFFLOAD_FILE, OffloadStudy, from_document, study, to_document


def record_routing(
    experiments: Sequence[str | Path], config: AnalysisConfig, command: str = ""
) -> AnalysisResults:
    """One recognition pass per model, keeping its routing records (lookahead included)."""
    config = dataclasses.replace(config, permutation_probabilities=[], num_shown_utterances=0)
    return measure(experiment_subjects(experiments, config), config, command)


def recorded_routing(
    experiment: str | Path,
    config: AnalysisConfig,
    compare: Sequence[str | Path] = (),
    out_dir: str | Path | None = None,
    from_records: bool = False,
    command: str = "",
) -> tuple[AnalysisResults, Path]:
    """The routing records of `experiment` (and `compare`), recorded now and saved, or read
    back with `from_records`; and the directory they are in."""
    directory = (
        Path(out_dir) if out_dir else default_output_dir(experiment, config.set_name, "offload")
    )
    if from_records:
        return load_results(directory), directory
    results = record_routing([experiment, *compare], config, command)
    save_results(results, directory)
    return results, directory


def simulate_study(
    results: AnalysisResults, slots_per_layer: Sequence[int] | None = None
) -> OffloadStudy | None:
    """Every policy at every cache size over the results' MoE models; None without one."""
    records = [model.records for model in results.moe_models if model.records]
    return study(records, slots_per_layer) if records else None


def save_study(offload_study: OffloadStudy, directory: str | Path) -> Path:
    """`offload.json` in `directory`."""
    return write_json(Path(directory) / OFFLOAD_FILE, to_document(offload_study))


def load_study(directory: str | Path) -> OffloadStudy | None:
    """The study saved in `directory` by `save_study`, or None if there is none."""
    path = Path(directory) / OFFLOAD_FILE
    return from_document(read_json(path, "offloading study")) if path.is_file() else None
