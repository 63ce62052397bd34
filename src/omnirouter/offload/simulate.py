"""`omnirouter offload`, its science half: record the routing of trained models on a set
(`analysis.analyze.measure_routing` with `records_only`), then simulate an offloaded expert
cache over it (`offload.study`) and save the study.

    OUT/results.json, OUT/records/    the routing records (the analysis's format, see
                                      `analysis.results`), reusable with --from-records
    OUT/offload.json                  every simulation's counts and rates

`report.offload_page` draws the hit-rate figure and writes the page from these files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.results import AnalysisResults
from omnirouter.jsonio import read_json, write_json
from omnirouter.offload.study import OFFLOAD_FILE, OffloadStudy, from_document, study, to_document


def records_only(config: AnalysisConfig) -> AnalysisConfig:
    """`config` for recording the routing alone: one recognition pass per model, no
    permutation test, no figure utterances."""
    return dataclasses.replace(config, permutation_probabilities=[], num_shown_utterances=0)


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
