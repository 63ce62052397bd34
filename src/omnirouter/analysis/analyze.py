"""`omnirouter analyze`, its science half: measure the routing of trained models and save it.

1. `measure.measure`: per model, ONE recognition pass over the set captures the routing records
   and the baseline WER; then one pass per permutation probability p > 0 (Fig. 3). Results go
   to `results.json` and `records/` (see `results`).
2. `save_statistics`: every number of the routing summary (`statistics.json`).

Figures and the page are drawn from these saved files by `report.routing_page`, so that they can
be redrawn without the models (`--from-records`). Models are loaded one at a time and dropped
before the next, so comparing large models needs the memory of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.analysis.experiments import experiment_subjects
from omnirouter.analysis.measure import measure
from omnirouter.analysis.results import AnalysisResults, load_results, save_results
from omnirouter.analysis.summary import RoutingSummary, SummaryConfig, summarize, summary_to_dict
from omnirouter.jsonio import write_json

STATISTICS_FILE = "statistics.json"


def default_output_dir(experiment: str | Path, set_name: str, area: str = "analysis") -> Path:
    """EXP/<area>/<set> (area: analysis, offload); a checkpoint file has no experiment
    directory to write into."""
    if not Path(experiment).is_dir():
        raise ValueError(f"{experiment} is not an experiment directory: pass --out DIR")
    return Path(experiment) / area / set_name


def measure_routing(
    experiment: str | Path,
    config: AnalysisConfig,
    compare: Sequence[str | Path] = (),
    out_dir: str | Path | None = None,
    from_records: bool = False,
    command: str = "",
    area: str = "analysis",
) -> tuple[AnalysisResults, Path]:
    """Measure the model of `experiment` (and those of `compare`) on `config.set_name` and save
    the results in `out_dir` (default EXP/<area>/<set>); with `from_records`, read a previous
    run's saved results instead. `command` is the command line, kept beside the results.
    Returns the results and their directory."""
    directory = Path(out_dir) if out_dir else default_output_dir(experiment, config.set_name, area)
    if from_records:
        return load_results(directory), directory
    results = measure(experiment_subjects([experiment, *compare], config), config, command)
    save_results(results, directory)
    return results, directory


def summarize_models(results: AnalysisResults, config: SummaryConfig) -> list[RoutingSummary]:
    """The routing summary of every MoE model with records."""
    return [summarize(model.records, config) for model in results.moe_models if model.records]


def save_statistics(summaries: Sequence[RoutingSummary], directory: str | Path) -> Path:
    """`statistics.json`: every number of the summaries (layers numbered from 1)."""
    document = {"models": [summary_to_dict(summary) for summary in summaries]}
    return write_json(Path(directory) / STATISTICS_FILE, document)
