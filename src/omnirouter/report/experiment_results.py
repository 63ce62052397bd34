"""An experiment's results as the report reads them (`ExperimentResults`, gathered by
`experiment.gather`), and their JSON form, `experiment.json` in the report directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnirouter.analysis.experiment_summary import ModelSummary, RoutingNumbers, SeedValues
from omnirouter.data.corpus import CorpusInfo
from omnirouter.evaluate.compare import CompareTable
from omnirouter.evaluate.tables import EvalTable
from omnirouter.report.findings import Finding


@dataclass(frozen=True)
class LmDecoding:
    """One model's (first seed's) greedy and beam-search-with-LM tables, and its tuning."""

    model: str
    greedy: EvalTable
    beam: EvalTable
    lm_weight: float
    word_score: float
    beam_size: int
    search: str  # "lexicon" or "open"
    tuned_on: str  # the dev set
    real_time_factor: float  # the beam search alone on one core (`omnirouter lm tune`)


@dataclass(frozen=True)
class LmSummary:
    """The corpus's LM (its lm.json) and what each model made of it."""

    order: int
    sentences: int
    words: int
    vocabulary: int
    sources: tuple[str, ...]
    models: tuple[LmDecoding, ...]


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
    lm: LmSummary | None = None  # None when no model was decoded with the LM

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
        "lm_decoding": _lm_dict(results.lm) if results.lm else None,
    }


def _lm_dict(lm: LmSummary) -> dict[str, object]:
    def rates(table: EvalTable) -> dict[str, object]:
        return {
            row.set_name: {"wer_percent": row.wer_percent, "cer_percent": row.cer_percent}
            for row in table.rows
        }

    return {
        "order": lm.order,
        "sentences": lm.sentences,
        "words": lm.words,
        "vocabulary": lm.vocabulary,
        "sources": list(lm.sources),
        "models": [
            {
                "model": decoding.model,
                "lm_weight": decoding.lm_weight,
                "word_score": decoding.word_score,
                "beam_size": decoding.beam_size,
                "search": decoding.search,
                "tuned_on": decoding.tuned_on,
                "real_time_factor": decoding.real_time_factor,
                "greedy": rates(decoding.greedy),
                "lm": rates(decoding.beam),
            }
            for decoding in lm.models
        ],
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
