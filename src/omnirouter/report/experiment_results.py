"""An experiment's results as the report reads them (`ExperimentResults`, gathered by
`experiment.gather`), and their JSON form, `experiment.json` in the report directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnirouter.analysis.experiment_summary import ModelSummary, RoutingNumbers, SeedValues
from omnirouter.data.corpus import CorpusInfo
from omnirouter.evaluate.compare import CompareTable
from omnirouter.report.findings import Finding


@dataclass(frozen=True)
class ExperimentResults:
    name: str
    description: str
    corpus_dir: Path
    corpus: CorpusInfo
    synthetic_corpus: bool  # built by the synthetic-speech builder
    corpus_config_differs: bool  # built from another synth config than the experiment names
    models: tuple[ModelSummary, ...]
    baseline: str
    compare: CompareTable  # WERs are the means over each model's seeds
    normalizer: str  # name and version of the text normaliser of every eval table
    analysis_set: str | None  # None when no routing analysis ran
    findings: tuple[Finding, ...]
    explanations: tuple[str, ...]  # given when a finding differs from the paper
    versions: dict[str, str]

    @property
    def set_roles(self) -> dict[str, str]:
        return {row.set_name: row.role for row in self.compare.rows}


def results_to_dict(results: ExperimentResults) -> dict[str, object]:
    """The report's numbers for `jsonio.write_json` (means and standard deviations included;
    an undefined number stays NaN here and is written as null)."""
    return {
        "name": results.name,
        "corpus_dir": str(results.corpus_dir),
        "baseline": results.baseline,
        "normalizer": results.normalizer,
        "averaged_sets": list(results.compare.averaged_sets),
        "models": [_model_dict(model) for model in results.models],
        "relative_reduction_percent": {
            "mean_of_per_set_reductions": dict(
                zip(results.compare.models, results.compare.mean_relative_reduction_percent)
            ),
            "reduction_of_mean_wer": dict(
                zip(results.compare.models, results.compare.reduction_of_mean_wer_percent)
            ),
        },
        "analysis_set": results.analysis_set,
        "findings": [vars(finding) for finding in results.findings],
        "explanations": list(results.explanations),
        "versions": results.versions,
    }


def _model_dict(model: ModelSummary) -> dict[str, object]:
    return {
        "name": model.name,
        "family": model.family,
        "seeds": list(model.seeds),
        "num_experts": model.num_experts,
        "top_k": model.top_k,
        "num_layers": model.num_layers,
        "model_dim": model.model_dim,
        "ffn_dim": model.ffn_dim,
        "total_parameters": model.total_parameters,
        "active_parameters": model.active_parameters,
        "max_steps": model.max_steps,
        "trained_steps": list(model.trained_steps),
        "average_wer_percent": _values_dict(model.average_wer),
        "wer_percent": _per_set_dict(model.set_wer),
        "average_cer_percent": _values_dict(model.average_cer),
        "cer_percent": _per_set_dict(model.set_cer),
        "training": [
            {
                "seed": loss.seed,
                "final_ctc_loss": loss.final_loss,
                "spikes": loss.spikes,
                "skipped_nonfinite": loss.skipped_nonfinite,
                "valid_steps": list(loss.curve.valid_steps),
                "dev_wer_percent": list(loss.curve.dev_wer),
                "dev_ctc_loss_per_token": list(loss.curve.dev_loss_per_token),
                "final_ctc_loss_per_token": loss.final_loss_per_token,
            }
            for loss in model.losses
        ],
        "routing": _routing_dict(model.routing) if model.routing else None,
    }


def _per_set_dict(per_set: dict[str, SeedValues | None]) -> dict[str, object]:
    return {name: _values_dict(values) if values else None for name, values in per_set.items()}


def _values_dict(values: SeedValues) -> dict[str, object]:
    return {
        "mean": values.mean,
        "std": values.std,
        "values": list(values.values),
    }


def _routing_dict(routing: RoutingNumbers) -> dict[str, object]:
    return {
        **vars(routing),
        "mean_cramers_v": routing.mean_cramers_v,
    }
