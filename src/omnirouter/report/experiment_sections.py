"""The result sections of the experiment report: WER, CER, relative reductions, training,
routing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from omnirouter.analysis.experiment_summary import SPIKE_RULE, SeedValues
from omnirouter.analysis.training import LossCurve
from omnirouter.evaluate.tables import TEST_ROLE
from omnirouter.report.experiment_results import ExperimentResults
from omnirouter.report.numbers import number, signed_percent
from omnirouter.report.page import FigureBlock, Paragraph, Section, Table
from omnirouter.report.routing_page import FigureFiles


def format_mean(values: SeedValues | None, digits: int = 2) -> str:
    """'12.34' for one seed, '12.34 ± 0.56' (sample standard deviation) for several."""
    if values is None or math.isnan(values.mean):
        return "–"
    std = values.std
    return f"{values.mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _set_label(name: str, role: str) -> str:
    return name if role in (TEST_ROLE, "") else f"{name} ({role}, not averaged)"


def wer_sections(results: ExperimentResults) -> list[Section]:
    return [wer_section(results), cer_section(results), reduction_section(results)]


def _rate_rows(results: ExperimentResults, metric: str) -> list[tuple[str, ...]]:
    """A row per set and the average of the test sets, of the models' WERs or CERs."""
    models = results.models
    rows = [
        (
            _set_label(name, role),
            *(format_mean(getattr(model, f"set_{metric}").get(name)) for model in models),
        )
        for name, role in results.set_roles.items()
    ]
    count = len(results.compare.averaged_sets)
    averages = (format_mean(getattr(model, f"average_{metric}")) for model in models)
    rows.append((f"average of the {count} test sets", *averages))
    return rows


def _seeds_caption(results: ExperimentResults) -> str:
    models = results.models
    seeds = ", ".join(f"{model.name} {len(model.seeds)}" for model in models)
    several = any(len(model.seeds) > 1 for model in models)
    return f"Seeds per model: {seeds}" + (
        "; mean ± sample standard deviation over seeds." if several else "."
    )


def wer_section(results: ExperimentResults) -> Section:
    return _rate_section(
        results,
        "wer",
        "Word error rates",
        "WER (%) per set, greedy CTC decoding, references and hypotheses normalised with "
        f"{results.normalizer}.",
        "The average is the mean of the per-set WERs of the test sets (every set weighs the "
        "same, as in the paper's tables); dev sets are listed but not averaged.",
    )


def cer_section(results: ExperimentResults) -> Section:
    return _rate_section(
        results,
        "cer",
        "Character error rates",
        "CER (%) per set: character errors over reference characters (spaces included) of the "
        "same normalised text.",
        "The paper reports WER only. The CER moves long before the WER while a model still "
        "learns to spell, so it can separate models trained too briefly for their WERs to "
        "differ." + (" " + _NO_CER if _missing_cer(results) else ""),
    )


def _rate_section(
    results: ExperimentResults, metric: str, title: str, caption: str, note: str
) -> Section:
    header = ("set", *(model.name for model in results.models))
    rows = tuple(_rate_rows(results, metric))
    caption = f"{caption} {_seeds_caption(results)}"
    return Section(title, (Table(header, rows, caption), Paragraph(note)))


_NO_CER = (
    "A dash: that model's evaluation tables were written before the CER existed; "
    "`omnirouter experiment CONFIG --force-stage eval` fills it in."
)


def _missing_cer(results: ExperimentResults) -> bool:
    return any(math.isnan(model.average_cer.mean) for model in results.models)


def reduction_section(results: ExperimentResults) -> Section:
    table = results.compare
    others = [index for index, name in enumerate(table.models) if name != table.baseline]
    rows = []
    for row in table.rows:
        rows.append(
            (
                _set_label(row.set_name, row.role),
                *(signed_percent(row.relative_reduction_percent[index]) for index in others),
            )
        )
    rows.append(
        (
            "mean of the per-set relative reductions",
            *(signed_percent(table.mean_relative_reduction_percent[index]) for index in others),
        )
    )
    rows.append(
        (
            "relative reduction of the mean WER",
            *(signed_percent(table.reduction_of_mean_wer_percent[index]) for index in others),
        )
    )
    header = ("set", *(f"{table.models[index]} vs {table.baseline}" for index in others))
    caption = (
        f"Relative WER reduction (%) against {table.baseline}: 100 · (WER_{table.baseline} − "
        f"WER_model) / WER_{table.baseline}, on the seed-mean WERs; positive = fewer errors."
    )
    text = (
        "Two averages, because 'reduces the average WER by x%' can mean either: the mean of "
        "the per-set reductions weighs every set the same (the paper's 11.2% and 8.2% are "
        "this one), the reduction of the mean WER weighs sets with high WER more."
    )
    if not others:
        return Section(
            "Relative WER reduction", (Paragraph("Only one model: nothing to compare."),)
        )
    return Section(
        f"Relative WER reduction against {table.baseline}",
        (Table(header, tuple(rows), caption), Paragraph(text)),
    )


def training_section(
    results: ExperimentResults, figure: Path | None, learning_curve: Path | None = None
) -> Section:
    rows = []
    for model in results.models:
        for loss in model.losses:
            rows.append(
                (
                    model.name,
                    str(loss.seed),
                    str(loss.curve.steps[-1]) if loss.curve.steps else "–",
                    number(loss.final_loss, 3),
                    number(max(loss.curve.ctc_loss), 3) if loss.curve.ctc_loss else "–",
                    number(loss.final_loss_per_token, 3),
                    _last_finite(loss.curve.dev_loss_per_token, 3),
                    _best_dev_wer(loss.curve),
                    _last_finite(loss.curve.dev_wer, 2),
                    str(loss.spikes),
                    str(loss.skipped_nonfinite),
                )
            )
    header = (
        "model",
        "seed",
        "last logged step",
        "final CTC loss",
        "highest CTC loss",
        "final CTC loss per token",
        "last dev CTC loss per token",
        "best dev WER % (step)",
        "last dev WER %",
        "spikes",
        "skipped non-finite steps",
    )
    blocks: list = []
    if figure is not None:
        blocks.append(
            FigureBlock(figure, "Training CTC loss of every run (raw faint, smoothed solid).")
        )
    if learning_curve is not None:
        blocks.append(
            FigureBlock(
                learning_curve,
                "Dev WER of every run at each validation; beside it, where the runs logged "
                "them, the training (solid) and dev (dots) CTC loss per token.",
            )
        )
    blocks += [
        Table(header, tuple(rows)),
        Paragraph(
            "Final CTC loss: the mean of the last 10% of the logged values (as the loss is "
            "reduced in training, and per target token). Dev numbers come from the trainer's "
            "validations (its dev subset, greedy decoding). Per token, the training and dev "
            "losses can be read against each other whatever the utterances' lengths; the "
            "training loss is measured in training mode (with any dropout or SpecAugment the "
            "config has), so only without them does a dev loss that stays level while the "
            f"training loss falls mean that the model memorises its data. A spike is "
            f"{SPIKE_RULE}."
        ),
    ]
    return Section("Training", tuple(blocks))


def _last_finite(values: Sequence[float], digits: int) -> str:
    finite = [value for value in values if math.isfinite(value)]
    return number(finite[-1], digits) if finite else "–"


def _best_dev_wer(curve: LossCurve) -> str:
    if not curve.dev_wer:
        return "–"
    best = min(range(len(curve.dev_wer)), key=curve.dev_wer.__getitem__)
    return f"{number(curve.dev_wer[best], 2)} ({curve.valid_steps[best]})"


def routing_section(
    results: ExperimentResults, figures: FigureFiles | None, page: Path | None, directory: Path
) -> Section:
    routed = [model for model in results.models if model.routing is not None]
    title = "Routing analysis"
    if not routed or figures is None:
        return Section(title, (Paragraph("No MoE model was analysed."),))
    title += f" on {results.analysis_set} (first seed of each model)"
    blocks: list = [_cramers_v_table(results)]
    blocks += _routing_figures(figures, ("cramers_v", "contingency"))
    blocks += [_permutation_table(results), *_routing_figures(figures, ("permutation",))]
    blocks += [_structure_table(results)]
    blocks += _routing_figures(figures, ("expert_usage", "expert_load", "expert_roles"))
    if page is not None:
        relative = page.relative_to(directory).as_posix()
        blocks.append(Paragraph(f"The full routing page, with its definitions: `{relative}`."))
    return Section(title, tuple(blocks))


def _cramers_v_table(results: ExperimentResults) -> Table:
    routed = [model for model in results.models if model.routing is not None]
    longest = max(routed, key=lambda model: len(model.routing.layer_pairs))  # type: ignore[union-attr]
    rows = []
    for index, pair in enumerate(longest.routing.layer_pairs):  # type: ignore[union-attr]
        rows.append(
            (
                pair,
                *(
                    f"{model.routing.adjacent_cramers_v[index]:.3f}"  # type: ignore[union-attr]
                    if index < len(model.routing.adjacent_cramers_v)  # type: ignore[union-attr]
                    else "–"
                    for model in routed
                ),
            )
        )
    rows.append(("mean", *(number(model.routing.mean_cramers_v, 3) for model in routed)))  # type: ignore[union-attr]
    return Table(
        ("layers", *(model.name for model in routed)),
        tuple(rows),
        "Cramér's V of the expert choices of adjacent MoE layers (0: independent, 1: one "
        "determines the other).",
    )


def _permutation_table(results: ExperimentResults) -> Table:
    routed = [model for model in results.models if model.routing and model.routing.probabilities]
    probabilities = routed[0].routing.probabilities if routed else ()  # type: ignore[union-attr]
    rows = tuple(
        (
            model.name,
            *(
                f"{number(wer, 1)} ({signed_percent(change)})"
                for wer, change in zip(
                    model.routing.permuted_wer_percent,  # type: ignore[union-attr]
                    model.routing.permuted_change_percent,  # type: ignore[union-attr]
                )
            ),
        )
        for model in routed
    )
    return Table(
        ("model", *(f"p = {probability:g}" for probability in probabilities)),
        rows,
        "Permutation test: WER % (relative change) when each step's expert is replaced by a "
        "random one with probability p, in every MoE layer.",
    )


def _structure_table(results: ExperimentResults) -> Table:
    rows = tuple(
        (
            model.name,
            number(100 * model.routing.agreement_raw, 1),
            number(100 * model.routing.agreement_mapped, 1),
            number(model.routing.run_length, 2),
            number(model.routing.chance_run_length, 2),
        )
        for model in results.models
        if model.routing is not None
    )
    header = (
        "model",
        "same expert in adjacent layers %",
        "… after optimal renaming %",
        "mean run length (steps)",
        "… if steps were independent",
    )
    return Table(header, rows, "Structure of the routing, averaged over layers and layer pairs.")


_FIGURE_CAPTIONS = {
    "expert_usage": "Fig. 2: spectrogram and the expert chosen per layer (rows) and step.",
    "permutation": "Fig. 3: relative WER change against the permutation probability p.",
    "contingency": "Fig. 4: co-occurrence of the experts of two MoE layers (named on the axes), "
    "the columns reordered by the optimal matching.",
    "cramers_v": "Fig. 5: Cramér's V of adjacent layers and of every pair of layers.",
    "expert_load": "Share of steps each expert receives, per layer.",
    "expert_roles": "Share of silence and of speech steps each expert takes, per layer.",
}


def _routing_figures(figures: FigureFiles, names: tuple[str, ...]) -> list[FigureBlock]:
    return [
        FigureBlock(getattr(figures, name), _FIGURE_CAPTIONS[name])
        for name in names
        if getattr(figures, name) is not None
    ]
