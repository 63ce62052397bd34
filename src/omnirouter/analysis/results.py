"""What an analysis measured with the models, saved so that everything can be redrawn without
them (`omnirouter analyze --from-records`):

    OUT/results.json          set, seed, shown utterances, and per model: family, experiment,
                              baseline WER, permutation-test WERs, training-loss curve,
                              and the path of its routing records
    OUT/records/<model>.json  routing records (see `records`)
    OUT/records/<model>.npz
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnirouter.analysis.permutation import PermutationResult
from omnirouter.analysis.records import RoutingRecords, load_records, save_records
from omnirouter.analysis.training import LossCurve
from omnirouter.jsonio import ResultFileError, number, read_json, write_json
from omnirouter.model.config import Family

RESULTS_FILE = "results.json"
RECORDS_DIR = "records"


@dataclass(frozen=True)
class ModelResult:
    name: str  # unique among the analysed models
    family: Family
    experiment: str  # experiment directory it came from ("" if none)
    baseline_wer: float  # fraction, on the analysed set, no routing override
    records: RoutingRecords | None  # None for a dense model
    permutation: PermutationResult | None  # None for a dense model
    # The training curve (Fig. 6); saved and reloaded as steps and losses only. None when
    # the run left no training metrics.
    loss_curve: LossCurve | None

    @property
    def is_moe(self) -> bool:
        return self.records is not None and self.records.num_layers > 0


@dataclass(frozen=True)
class AnalysisResults:
    set_name: str
    seed: int
    shown_cut_ids: tuple[str, ...]
    models: tuple[ModelResult, ...]
    command: str = ""  # the command line that measured these results

    @property
    def moe_models(self) -> tuple[ModelResult, ...]:
        return tuple(model for model in self.models if model.is_moe)


def save_results(results: AnalysisResults, directory: str | Path) -> Path:
    directory = Path(directory)
    entries = []
    for model in results.models:
        records_path = None
        if model.records is not None:
            saved = save_records(model.records, directory / RECORDS_DIR, model.name)
            records_path = saved.relative_to(directory).as_posix()
        entries.append(
            {
                "name": model.name,
                "family": model.family,
                "experiment": model.experiment,
                "baseline_wer": model.baseline_wer,  # write_json writes NaN as null
                "records": records_path,
                "permutation": _permutation_entry(model.permutation),
                "loss_curve": None
                if model.loss_curve is None
                else {
                    "steps": list(model.loss_curve.steps),
                    "ctc_loss": list(model.loss_curve.ctc_loss),
                },
            }
        )
    document = {
        "set": results.set_name,
        "seed": results.seed,
        "shown_cut_ids": list(results.shown_cut_ids),
        "command": results.command,
        "models": entries,
    }
    return write_json(directory / RESULTS_FILE, document)


def load_results(directory: str | Path) -> AnalysisResults:
    path = Path(directory) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `omnirouter analyze` without --from-records first"
        )
    document = read_json(path, "analysis results file")
    try:
        models = tuple(_model_result(entry, path.parent) for entry in document["models"])
        return AnalysisResults(
            set_name=document["set"],
            seed=int(document["seed"]),
            shown_cut_ids=tuple(document["shown_cut_ids"]),
            models=models,
            command=document.get("command", ""),
        )
    except (KeyError, TypeError) as error:
        raise ResultFileError(f"{path}: not a readable analysis results file ({error!r})") from None


def _model_result(entry: dict[str, Any], directory: Path) -> ModelResult:
    name = entry["name"]
    permutation = entry["permutation"]
    curve = entry["loss_curve"]
    return ModelResult(
        name=name,
        family=Family(entry["family"]),
        experiment=entry["experiment"],
        baseline_wer=number(entry["baseline_wer"]),
        records=load_records(directory / entry["records"]) if entry["records"] else None,
        permutation=None
        if permutation is None
        else PermutationResult(
            name,
            number(entry["baseline_wer"]),
            tuple(permutation["probabilities"]),
            tuple(number(wer) for wer in permutation["wers"]),
        ),
        loss_curve=None
        if curve is None
        else LossCurve(name, tuple(curve["steps"]), tuple(curve["ctc_loss"])),
    )


def _permutation_entry(result: PermutationResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "probabilities": list(result.probabilities),
        "wers": result.wers,
        "relative_change_percent": result.relative_change_percent,
    }
