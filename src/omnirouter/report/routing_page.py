"""The routing-analysis page: the numbers as tables, a short plain reading of each, the figures
(drawn by `draw_routing_figures` from the saved results and summaries).

Layers and experts are numbered from 1 on the page, as in the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnirouter.analysis.results import AnalysisResults
from omnirouter.analysis.summary import ENERGY_PERCENTILES, RoutingSummary, SummaryConfig
from omnirouter.report import figures
from omnirouter.report.numbers import percent, signed_percent
from omnirouter.report.page import FigureBlock, Page, Paragraph, Section, Table


@dataclass(frozen=True)
class FigureFiles:
    expert_usage: Path | None = None  # Fig. 2
    permutation: Path | None = None  # Fig. 3
    contingency: Path | None = None  # Fig. 4
    cramers_v: Path | None = None  # Fig. 5
    training_loss: Path | None = None  # Fig. 6
    expert_load: Path | None = None
    expert_roles: Path | None = None

    def all(self) -> list[Path]:
        return [path for path in vars(self).values() if path is not None]


def draw_routing_figures(
    results: AnalysisResults, summaries: Sequence[RoutingSummary], directory: Path
) -> FigureFiles:
    """Every figure of the page that the results allow, as PNG files in `directory`."""
    records = [model.records for model in results.moe_models if model.records]
    tested = [model.permutation for model in results.moe_models if model.permutation]
    curves = [
        model.loss_curve for model in results.models if model.loss_curve and model.loss_curve.steps
    ]
    has_pairs = any(summary.contingency is not None for summary in summaries)
    roles = [("silence_share_LE", "silence steps"), ("speech_share_LE", "speech steps")]
    return FigureFiles(
        expert_usage=figures.draw_expert_usage(
            records, summaries, results.shown_cut_ids, directory / "fig2_expert_usage.png"
        )
        if records and results.shown_cut_ids
        else None,
        permutation=figures.draw_permutation(tested, directory / "fig3_permutation.png")
        if tested
        else None,
        contingency=figures.draw_contingency(summaries, directory / "fig4_contingency.png")
        if has_pairs
        else None,
        cramers_v=figures.draw_cramers_v(summaries, directory / "fig5_cramers_v.png")
        if has_pairs
        else None,
        training_loss=figures.draw_training_loss(curves, directory / "fig6_training_loss.png")
        if curves
        else None,
        expert_load=figures.draw_expert_shares(
            summaries, [("load_LE", "load")], directory / "expert_load.png", "Expert load"
        )
        if summaries
        else None,
        expert_roles=figures.draw_expert_shares(
            summaries, roles, directory / "expert_roles.png", "Silence and speech per expert"
        )
        if summaries
        else None,
    )


def build_page(
    results: AnalysisResults,
    summaries: Sequence[RoutingSummary],
    figures: FigureFiles,
    config: SummaryConfig,
    extra_sections: Sequence[Section] = (),
) -> Page:
    """The page; `extra_sections` (beyond the paper: expert offloading) follow the paper's."""
    sections = [_models_section(results, summaries)]
    if summaries:
        sections += [
            _usage_section(summaries, figures),
            _permutation_section(results, figures),
            _cramers_v_section(summaries, figures),
            _experts_section(summaries, figures),
            *extra_sections,
        ]
    sections.append(_training_section(results, figures))
    sections.append(_definitions_section(config, summaries))
    intro = [
        Paragraph(
            f"Routing of {len(results.models)} model(s) on the `{results.set_name}` set "
            f"(seed {results.seed}), after §VI-B of Gu, Likhomanenko and Jaitly (2025), "
            "“Omni-Router”. Layers and experts are numbered from 1."
        )
    ]
    if results.command:
        intro.append(Paragraph(f"Command: `{results.command}`"))
    return Page(f"Routing analysis: {results.set_name}", tuple(sections), tuple(intro))


def _models_section(results: AnalysisResults, summaries: Sequence[RoutingSummary]) -> Section:
    by_name = {summary.name: summary for summary in summaries}
    rows = []
    for model in results.models:
        summary = by_name.get(model.name)
        rows.append(
            (
                model.name,
                model.family,
                str(summary.num_experts) if summary else "–",
                str(len(summary.layers)) if summary else "0",
                _router_text(summary),
                str(summary.num_utterances) if summary else "–",
                str(summary.num_steps) if summary else "–",
                percent(model.baseline_wer),
            )
        )
    header = ("model", "family", "experts", "MoE layers", "routers", "utterances", "steps", "WER %")
    blocks: list = [Table(header, tuple(rows), "Analysed models; WER without any routing change.")]
    if not summaries:
        blocks.append(Paragraph("No model has MoE layers: there is no routing to analyse."))
    return Section("Models", tuple(blocks))


def _router_text(summary: RoutingSummary | None) -> str:
    if summary is None:
        return "–"
    return "one shared" if summary.shared_router else "one per layer"


def _usage_section(summaries: Sequence[RoutingSummary], figures: FigureFiles) -> Section:
    rows = tuple(
        (
            summary.name,
            percent(float(np.mean(summary.agreement_raw_P)))
            if len(summary.agreement_raw_P)
            else "–",
            percent(float(np.mean(summary.agreement_mapped_P)))
            if len(summary.agreement_mapped_P)
            else "–",
            f"{np.mean(summary.run_length_L):.2f}",
            f"{1000 * summary.step_seconds * np.mean(summary.run_length_L):.0f}",
            f"{np.mean(summary.chance_run_length_L):.2f}",
        )
        for summary in summaries
    )
    header = (
        "model",
        "same expert in adjacent layers, raw %",
        "… after optimal renaming %",
        "mean run length, steps",
        "… in ms",
        "… if steps were independent, steps",
    )
    blocks: list = []
    if figures.expert_usage:
        blocks.append(
            FigureBlock(
                figures.expert_usage,
                "Fig. 2: log-mel spectrogram (top) and the expert chosen per layer (rows) and "
                "step (columns) for each model. For models with one router per layer the "
                "colours are renamed by the chained optimal mapping (see Definitions).",
            )
        )
    blocks += [
        Table(
            header,
            rows,
            "Structure of the routing: averages over adjacent layer pairs and over layers.",
        ),
        Paragraph(_usage_reading(summaries)),
    ]
    return Section("Expert use over time and depth (Fig. 2)", tuple(blocks))


def _usage_reading(summaries: Sequence[RoutingSummary]) -> str:
    sentences = []
    for summary in summaries:
        run = float(np.mean(summary.run_length_L))
        chance = float(np.mean(summary.chance_run_length_L))
        mapped = (
            float(np.mean(summary.agreement_mapped_P)) if len(summary.agreement_mapped_P) else 0
        )
        sentences.append(
            f"In {summary.name}, a layer keeps the same expert for {run:.1f} consecutive steps on "
            f"average, {run / chance:.1f}× what independent choices with the same loads give, and "
            f"{100 * mapped:.0f}% of steps keep their (renamed) expert from one layer to the next."
        )
    sentences.append(
        "Longer runs mean the routing follows stretches of the signal rather than single "
        "frames; higher adjacent-layer agreement means layers take coordinated decisions."
    )
    return " ".join(sentences)


def _permutation_section(results: AnalysisResults, figures: FigureFiles) -> Section:
    tested = [model.permutation for model in results.moe_models if model.permutation is not None]
    blocks: list = []
    if figures.permutation:
        blocks.append(
            FigureBlock(
                figures.permutation,
                "Fig. 3: relative WER change when each step's expert, in every MoE layer, is "
                "replaced with probability p by one drawn uniformly at random.",
            )
        )
    if tested:
        probabilities = tested[0].probabilities
        header = ("model", *(f"p = {probability:g}" for probability in probabilities))
        rows = tuple(
            (
                result.name,
                *(
                    f"{percent(wer)} ({signed_percent(change)})"
                    for wer, change in zip(result.wers, result.relative_change_percent)
                ),
            )
            for result in tested
        )
        blocks.append(Table(header, rows, "WER % (relative change %) at each probability."))
        changes = ", ".join(
            f"{signed_percent(result.relative_change_percent[-1])} for {result.name}"
            for result in tested
        )
        blocks.append(
            Paragraph(
                f"At p = {probabilities[-1]:g} the relative WER change is {changes}. A model whose "
                "experts are specialised suffers more when frames reach the wrong expert; a "
                "model whose experts are interchangeable hardly notices."
            )
        )
    return Section("Permutation test (Fig. 3)", tuple(blocks))


def _cramers_v_section(summaries: Sequence[RoutingSummary], figures: FigureFiles) -> Section:
    blocks: list = []
    if figures.contingency:
        blocks.append(
            FigureBlock(
                figures.contingency,
                "Fig. 4: how often expert i of one layer (rows) meets expert j of the next "
                "(columns); the columns are reordered so the best one-to-one matching lies on "
                "the diagonal.",
            )
        )
    if figures.cramers_v:
        blocks.append(
            FigureBlock(
                figures.cramers_v,
                "Fig. 5: Cramér's V of the expert choices of adjacent layers (left) and of every "
                "pair of layers (maps). 0: independent choices; 1: one layer's expert "
                "determines the other's.",
            )
        )
    longest = max(summaries, key=lambda summary: len(summary.layers))
    rows = []
    for pair in range(len(longest.layers) - 1):
        first, second = longest.layers[pair] + 1, longest.layers[pair + 1] + 1
        cells = [
            f"{summary.adjacent_cramers_v_P[pair]:.3f}"
            if pair < len(summary.adjacent_cramers_v_P)
            else "–"
            for summary in summaries
        ]
        rows.append((f"{first}–{second}", *cells))
    rows.append(
        ("mean", *(f"{np.mean(summary.adjacent_cramers_v_P):.3f}" for summary in summaries))
    )
    blocks.append(
        Table(
            ("layers", *(summary.name for summary in summaries)),
            tuple(rows),
            "Cramér's V of adjacent layers.",
        )
    )
    blocks.append(Paragraph(_cramers_v_reading(summaries)))
    return Section("How layers' choices relate (Figs. 4 and 5)", tuple(blocks))


def _cramers_v_reading(summaries: Sequence[RoutingSummary]) -> str:
    sentences = []
    for summary in summaries:
        values = summary.adjacent_cramers_v_P
        if not len(values):
            continue
        half = len(values) // 2
        shallow = float(np.mean(values[:half])) if half else float(values[0])
        deep = float(np.mean(values[half:]))
        sentences.append(
            f"{summary.name}: mean V {np.mean(values):.2f} "
            f"(first half of the network {shallow:.2f}, second half {deep:.2f})."
        )
    sentences.append(
        "The paper reports much higher V for a shared router than for one router per layer, "
        "strongest in the deeper layers."
    )
    return " ".join(sentences)


def _experts_section(summaries: Sequence[RoutingSummary], figures: FigureFiles) -> Section:
    blocks: list = []
    if figures.expert_load:
        blocks.append(
            FigureBlock(figures.expert_load, "Share of steps each expert receives, per layer.")
        )
    if figures.expert_roles:
        blocks.append(
            FigureBlock(
                figures.expert_roles,
                "Of all silence steps (left) and all speech steps (right) of a layer, the share "
                "each expert takes.",
            )
        )
    rows = []
    for summary in summaries:
        load_LE = summary.load_LE
        silence_expert_L = summary.silence_share_LE.argmax(axis=1)
        layers = np.arange(len(summary.layers))
        rows.append(
            (
                summary.name,
                f"{100 * summary.silence_fraction:.0f}",
                f"{100 * load_LE.min():.1f}–{100 * load_LE.max():.1f}",
                f"{100 / summary.num_experts:.1f}",
                f"{100 * np.mean(summary.silence_share_LE[layers, silence_expert_L]):.0f}",
                f"{100 * np.mean(summary.speech_share_LE[layers, silence_expert_L]):.0f}",
            )
        )
    header = (
        "model",
        "silence steps %",
        "expert load range %",
        "balanced load %",
        "silence taken by each layer's top silence expert %",
        "… speech it takes %",
    )
    blocks.append(
        Table(header, tuple(rows), "Load and the silence/speech split (averaged over layers).")
    )
    blocks.append(
        Paragraph(
            "An expert that takes most silence steps but few speech steps specialises in "
            "silence (the paper's green expert); equal shares mean no silence/speech role."
        )
    )
    return Section("What the experts do", tuple(blocks))


def _training_section(results: AnalysisResults, figures: FigureFiles) -> Section:
    if figures.training_loss is None:
        return Section(
            "Training loss (Fig. 6)",
            (Paragraph("No compared run left training metrics (`metrics.jsonl`)."),),
        )
    rows = tuple(
        (
            model.name,
            str(model.loss_curve.steps[-1]),
            f"{model.loss_curve.ctc_loss[-1]:.3f}",
            f"{max(model.loss_curve.ctc_loss):.3f}",
        )
        for model in results.models
        if model.loss_curve is not None and model.loss_curve.steps
    )
    return Section(
        "Training loss (Fig. 6)",
        (
            FigureBlock(figures.training_loss, "Fig. 6: training CTC loss of the compared runs."),
            Table(("model", "last step", "last CTC loss", "highest CTC loss"), rows),
            Paragraph(
                "Spikes above a run's trend, or above another family's curve, show "
                "training instability (the paper's Switch runs on conversational data)."
            ),
        ),
    )


def _definitions_section(config: SummaryConfig, summaries: Sequence[RoutingSummary]) -> Section:
    low, high = ENERGY_PERCENTILES
    durations = sorted({f"{1000 * summary.step_seconds:.0f} ms" for summary in summaries})
    texts = (
        f"Step: one model input step ({', '.join(durations) or '40 ms'}: stacked log-mel "
        "frames); only valid (non-padded) steps count. The expert of a step is its first "
        "(top-1) chosen expert.",
        f"Silence: a step whose energy (mean log-mel level over its frames) is below "
        f"low + {config.silence_threshold:g} · (high − low), where low and high are the "
        f"utterance's {low:g}th and {high:g}th energy percentiles; speech otherwise.",
        "Renaming for one-router-per-layer models: expert ids of different routers are "
        "unrelated, so each layer's experts are renamed after the next layer's by the "
        "optimal one-to-one matching (Hungarian), chained down from the last layer. Layers "
        "sharing a router keep its ids. The raw agreement uses the ids as the model emits them.",
        "Cramér's V: sqrt(χ² / (n · (min(r, c) − 1))) without continuity correction, over the "
        "experts each layer actually uses; 0 when a layer uses a single expert.",
        "Run length: consecutive steps of one utterance with the same expert; the "
        "independent baseline draws every step's expert from the layer's load.",
        "Files: `results.json` (WERs, permutation test, loss curves), `statistics.json` "
        "(every number on this page), `records/` (routing per utterance, redrawable with "
        "`omnirouter analyze ... --from-records`).",
    )
    return Section("Definitions and files", tuple(Paragraph(text) for text in texts))
