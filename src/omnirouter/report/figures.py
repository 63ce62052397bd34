"""The paper's routing figures (§VI-B, Figs. 2–6) drawn with matplotlib, from saved data only.

Layers are numbered from 1 (the first Transformer block) in every figure; experts from 1.
Each function draws one figure into one PNG file and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from omnirouter.analysis.permutation import PermutationResult
from omnirouter.analysis.records import RoutingRecords
from omnirouter.analysis.statistics import relabel
from omnirouter.analysis.summary import RoutingSummary
from omnirouter.analysis.training import LossCurve, smooth

DPI = 120


def model_colour(index: int) -> tuple[float, float, float, float]:
    """The colour of the index-th compared model, the same in every figure."""
    return mpl.colormaps["Dark2"](index % 8)


def expert_colours(num_experts: int) -> ListedColormap:
    """Distinct colours, one per expert (the paper's blue, orange, green, pink for E = 4)."""
    if num_experts <= 4:
        colours = [mpl.colormaps["tab10"](index) for index in (0, 1, 2, 6)][:num_experts]
    elif num_experts <= 10:
        colours = [mpl.colormaps["tab10"](index) for index in range(num_experts)]
    elif num_experts <= 20:
        colours = [mpl.colormaps["tab20"](index) for index in range(num_experts)]
    else:
        colours = list(mpl.colormaps["turbo"](np.linspace(0, 1, num_experts)))
    return ListedColormap(colours, name=f"experts{num_experts}")


def _layer_ticks(layers: Sequence[int], max_ticks: int = 8) -> tuple[list[int], list[str]]:
    """Positions (1..L, one per MoE layer) and labels (1-based block numbers), thinned."""
    every = max(1, int(np.ceil(len(layers) / max_ticks)))
    positions = list(range(1, len(layers) + 1))[::every]
    return positions, [str(layers[position - 1] + 1) for position in positions]


def draw_expert_usage(
    records: Sequence[RoutingRecords],
    summaries: Sequence[RoutingSummary],
    shown_cut_ids: Sequence[str],
    path: Path,
) -> Path:
    """Fig. 2: per shown utterance (columns) the log-mel spectrogram on top and, below it for
    every model, the expert chosen per layer (rows of each image) and step (time)."""
    num_rows = 1 + len(records)
    heights = [1.2] + [max(1.0, 0.12 * model.num_layers) for model in records]
    figure = Figure(
        figsize=(4.2 * len(shown_cut_ids) + 1.2, 1.0 + 1.5 * sum(heights)), layout="constrained"
    )
    grid = figure.add_gridspec(num_rows, len(shown_cut_ids), height_ratios=heights)
    for column, cut_id in enumerate(shown_cut_ids):
        mel_axes = figure.add_subplot(grid[0, column])
        _draw_spectrogram(mel_axes, records, cut_id)
        mel_axes.set_title(_shorten(cut_id), fontsize=9)
        for row, (model, summary) in enumerate(zip(records, summaries), start=1):
            axes = figure.add_subplot(grid[row, column], sharex=mel_axes)
            _draw_routing_image(axes, model, summary, cut_id)
            if column == 0:
                note = "" if summary.shared_router else "\n(colours mapped)"
                axes.set_ylabel(f"{model.name}{note}\nlayer", fontsize=9)
            if row == num_rows - 1:
                axes.set_xlabel("time (s)")
            else:
                axes.tick_params(labelbottom=False)
        mel_axes.tick_params(labelbottom=False)
        if column == 0:
            mel_axes.set_ylabel("log-mel\nbin", fontsize=9)
    num_experts = max(model.num_experts for model in records)
    colours = expert_colours(num_experts)
    handles = [
        Patch(color=colours(index), label=f"expert {index + 1}") for index in range(num_experts)
    ]
    figure.legend(
        handles=handles, loc="outside lower center", ncol=min(num_experts, 8), frameon=False
    )
    step_ms = 1000 * records[0].step_seconds
    figure.suptitle(f"Expert chosen per layer (rows of each image) and {step_ms:.0f} ms step")
    return save_figure(figure, path)


def _draw_spectrogram(axes, records: Sequence[RoutingRecords], cut_id: str) -> None:
    holder = next((model for model in records if cut_id in model.spectrograms), None)
    if holder is None:
        axes.text(0.5, 0.5, "spectrogram not recorded", ha="center", va="center")
        return
    spectrogram_TF = holder.spectrograms[cut_id]
    frames, bins = spectrogram_TF.shape
    axes.imshow(
        spectrogram_TF.T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, frames * holder.frame_shift_seconds, 0, bins),
        interpolation="nearest",
    )


def _draw_routing_image(axes, model: RoutingRecords, summary: RoutingSummary, cut_id: str) -> None:
    if cut_id not in model.cut_ids:
        axes.text(0.5, 0.5, "utterance not in records", ha="center", va="center")
        return
    experts_LS = model.utterance_experts(model.utterance_index(cut_id)).astype(np.int64)
    named_LS = relabel(experts_LS, summary.labels_LE)
    colours = expert_colours(model.num_experts)
    axes.imshow(
        named_LS,
        origin="lower",
        aspect="auto",
        cmap=colours,
        norm=BoundaryNorm(np.arange(model.num_experts + 1) - 0.5, model.num_experts),
        extent=(0, named_LS.shape[1] * model.step_seconds, 0.5, model.num_layers + 0.5),
        interpolation="nearest",
    )
    positions, labels = _layer_ticks(model.layers)
    axes.set_yticks(positions, labels, fontsize=8)


def draw_permutation(results: Sequence[PermutationResult], path: Path) -> Path:
    """Fig. 3: relative WER change against the probability p of a random expert, per model."""
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    for index, result in enumerate(results):
        axes.plot(
            result.probabilities,
            result.relative_change_percent,
            marker="o",
            color=model_colour(index),
            label=f"{result.name} (WER {100 * result.baseline_wer:.1f}% at p = 0)",
        )
    axes.axhline(0.0, color="0.6", linewidth=0.8)
    axes.set_xlabel("probability p that a step's expert is replaced by a random one")
    axes.set_ylabel("relative WER change (%)")
    axes.set_title("Permutation test")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=9)
    return save_figure(figure, path)


def draw_contingency(summaries: Sequence[RoutingSummary], path: Path) -> Path:
    """Fig. 4: expert co-occurrence counts of two layers, one panel per model; the second
    layer's experts are reordered so the optimal matching lies on the diagonal."""
    panels = [summary for summary in summaries if summary.contingency is not None]
    size = max(3.2, 0.55 * max(summary.num_experts for summary in panels) + 1.6)
    figure = Figure(figsize=(size * len(panels), size + 0.4), layout="constrained")
    for index, summary in enumerate(panels):
        panel = summary.contingency
        assert panel is not None
        axes = figure.add_subplot(1, len(panels), index + 1)
        table_EE = panel.table_EE
        axes.imshow(table_EE, cmap="Blues", vmin=0)
        num_experts = table_EE.shape[0]
        if num_experts <= 16:
            threshold = 0.6 * table_EE.max() if table_EE.max() else 1
            for row in range(num_experts):
                for column in range(num_experts):
                    count = int(table_EE[row, column])
                    axes.text(
                        column,
                        row,
                        str(count),
                        ha="center",
                        va="center",
                        fontsize=8 if num_experts <= 8 else 6,
                        color="white" if count > threshold else "black",
                    )
        ticks = list(range(num_experts))
        axes.set_yticks(ticks, [f"e{expert + 1}" for expert in ticks])
        axes.set_xticks(ticks, [f"e{expert + 1}" for expert in panel.column_order_E])
        axes.set_ylabel(f"layer {panel.first_layer + 1} expert")
        axes.set_xlabel(f"layer {panel.second_layer + 1} expert (matched order)")
        axes.set_title(f"{summary.name}\nCramér's V = {panel.cramers_v:.2f}", fontsize=10)
    return save_figure(figure, path)


def draw_cramers_v(summaries: Sequence[RoutingSummary], path: Path) -> Path:
    """Fig. 5: Cramér's V of every adjacent pair of layers (curves), and of every pair (maps)."""
    figure = Figure(figsize=(5.5 + 3.6 * len(summaries), 4.0), layout="constrained")
    grid = figure.add_gridspec(1, 1 + len(summaries), width_ratios=[1.6] + [1.0] * len(summaries))
    axes = figure.add_subplot(grid[0, 0])
    for index, summary in enumerate(summaries):
        axes.plot(
            range(1, len(summary.adjacent_cramers_v_P) + 1),
            summary.adjacent_cramers_v_P,
            marker="o",
            color=model_colour(index),
            label=summary.name,
        )
    longest = max(summaries, key=lambda summary: len(summary.layers))
    pair_labels = [
        f"{first + 1}–{second + 1}" for first, second in zip(longest.layers, longest.layers[1:])
    ]
    every = max(1, int(np.ceil(len(pair_labels) / 10)))
    axes.set_xticks(range(1, len(pair_labels) + 1)[::every], pair_labels[::every])
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("adjacent layers")
    axes.set_ylabel("Cramér's V")
    axes.set_title("Adjacent layers")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=9)
    image = None
    for index, summary in enumerate(summaries):
        matrix_axes = figure.add_subplot(grid[0, index + 1])
        count = len(summary.layers)
        image = matrix_axes.imshow(
            summary.cramers_v_LL,
            vmin=0,
            vmax=1,
            cmap="viridis",
            origin="lower",
            extent=(0.5, count + 0.5, 0.5, count + 0.5),
        )
        positions, labels = _layer_ticks(summary.layers)
        matrix_axes.set_xticks(positions, labels)
        matrix_axes.set_yticks(positions, labels)
        matrix_axes.set_xlabel("layer")
        matrix_axes.set_title(f"{summary.name}: all pairs", fontsize=10)
    if image is not None:
        figure.colorbar(image, ax=figure.axes[1:], shrink=0.85, label="Cramér's V")
    return save_figure(figure, path)


def draw_training_loss(curves: Sequence[LossCurve], path: Path) -> Path:
    """Fig. 6: training CTC loss per run: raw values faint, their moving average on top."""
    figure = Figure(figsize=(6.5, 4.0), layout="constrained")
    axes = figure.add_subplot()
    positive = []
    for index, curve in enumerate(curves):
        if not curve.steps:
            continue
        losses = np.asarray(curve.ctc_loss)
        colour = model_colour(index)
        axes.plot(curve.steps, losses, color=colour, alpha=0.25, linewidth=0.8)
        axes.plot(curve.steps, _smoothed(losses), color=colour, label=curve.name)
        positive.append(losses[losses > 0])
    values = np.concatenate(positive) if positive else np.zeros(0)
    # Loss curves span orders of magnitude early in training; a log axis keeps the end visible.
    if values.size and values.max() / values.min() > 20:
        axes.set_yscale("log")
    _label_step_axes(axes, "training CTC loss", "Training loss (raw faint, smoothed solid)", 9)
    return save_figure(figure, path)


def draw_learning_curves(curves: Sequence[LossCurve], path: Path) -> Path:
    """Each run's dev WER at its validations; beside it, where the runs logged them, the CTC
    loss per target token of training (smoothed) and of the dev set (dots) on one scale. The
    training loss is measured in training mode (with the config's dropout and SpecAugment,
    if any), the dev loss without: only without both does their gap measure memorising."""
    with_loss = [curve for curve in curves if np.isfinite(curve.dev_loss_per_token).any()]
    figure = Figure(figsize=(11.0 if with_loss else 6.5, 4.0), layout="constrained")
    wer_axes = figure.add_subplot(1, 2 if with_loss else 1, 1)
    for index, curve in enumerate(curves):
        if curve.valid_steps:
            wer_axes.plot(
                curve.valid_steps,
                curve.dev_wer,
                "o-",
                color=model_colour(index),
                markersize=3.5,
                label=curve.name,
            )
    _label_step_axes(wer_axes, "dev WER (%)", "Dev WER at each validation", 8)
    if with_loss:
        loss_axes = figure.add_subplot(1, 2, 2)
        for index, curve in enumerate(curves):
            colour = model_colour(index)
            train = np.asarray(curve.loss_per_token, dtype=float)
            logged = np.isfinite(train)
            if logged.any():
                steps = np.asarray(curve.steps)[logged]
                loss_axes.plot(steps, _smoothed(train[logged]), color=colour)
            dev = np.asarray(curve.dev_loss_per_token, dtype=float)
            valid = np.isfinite(dev)
            if not valid.any():
                continue
            loss_axes.plot(
                np.asarray(curve.valid_steps)[valid],
                dev[valid],
                "o--",
                color=colour,
                markersize=3.5,
                linewidth=0.8,
                label=curve.name,
            )
        loss_axes.set_yscale("log")
        title = "CTC loss per token\ntraining (solid, smoothed), dev (dots)"
        _label_step_axes(loss_axes, "CTC loss per token", title, 8)
    return save_figure(figure, path)


def _smoothed(values: np.ndarray) -> np.ndarray:
    """A logged curve's moving average, over about a fiftieth of its points."""
    window = max(1, len(values) // 50)
    return smooth(values, 1 - 1 / window)


def _label_step_axes(axes, ylabel: str, title: str, legend_size: int) -> None:
    axes.set_xlabel("training step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=legend_size)


def draw_expert_shares(
    summaries: Sequence[RoutingSummary], panels: Sequence[tuple[str, str]], path: Path, title: str
) -> Path:
    """Per model (rows) and per summary field in `panels` (columns, (field, heading) pairs),
    a layer × expert map of fractions, with the percentage in every cell when it fits."""
    num_experts = max(summary.num_experts for summary in summaries)
    num_layers = max(len(summary.layers) for summary in summaries)
    width = max(3.0, 0.5 * num_experts + 1.5)
    height = max(2.2, 0.28 * num_layers + 1.2)
    # One field: the models side by side; several: a row per model, a column per field.
    rows, columns = (1, len(summaries)) if len(panels) == 1 else (len(summaries), len(panels))
    figure = Figure(figsize=(width * columns + 1.0, height * rows + 0.6), layout="constrained")
    image = None
    for row, summary in enumerate(summaries):
        for column, (field, heading) in enumerate(panels):
            axes = figure.add_subplot(rows, columns, row * len(panels) + column + 1)
            shares_LE = getattr(summary, field)
            image = axes.imshow(
                shares_LE, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto"
            )
            if shares_LE.size <= 160:
                for (layer, expert), share in np.ndenumerate(shares_LE):
                    axes.text(
                        expert,
                        layer,
                        f"{100 * share:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if share > 0.5 else "white",
                    )
            axes.set_xticks(
                range(summary.num_experts), [str(e + 1) for e in range(summary.num_experts)]
            )
            positions, labels = _layer_ticks(summary.layers)
            axes.set_yticks([position - 1 for position in positions], labels)
            axes.set_title(f"{summary.name}: {heading}", fontsize=10)
            axes.set_xlabel("expert")
            if axes.get_subplotspec().is_first_col():
                axes.set_ylabel("layer")
    if image is not None:
        figure.colorbar(image, ax=figure.axes, shrink=0.8, label="fraction (cells in %)")
    figure.suptitle(title, fontsize=11)
    return save_figure(figure, path)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def save_figure(figure: Figure, path: Path) -> Path:
    """Write the figure as a PNG (its folder made if missing); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path
