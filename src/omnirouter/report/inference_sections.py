"""The report's sections beyond the paper, on inference with the analysed MoE models: expert
offloading (from the routing analysis's records) and routed proposals (the proposals stage)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnirouter.jsonio import read_json
from omnirouter.offload.simulate import load_study
from omnirouter.offload.study import OFFLOAD_FIGURE
from omnirouter.report.offload_page import offload_section
from omnirouter.report.page import Paragraph, Section, Table

OFFLOAD_TITLE = "Expert offloading: caching and prefetching"
PROPOSALS_TITLE = "Routed proposals per frame (after RoE)"


@dataclass(frozen=True)
class ProposalSweeps:
    """The routed-proposals stage: its setting, and the sweep file of each analysed model."""

    description: str | None  # None: the stage is disabled
    sweep_files: tuple[tuple[str, Path], ...] = ()  # (model, sweep.json)


def offload_report_section(offload_json: Path | None) -> Section:
    """The analysis's offloading study (`offload.json`, its figure beside it)."""
    offload = load_study(offload_json.parent) if offload_json is not None else None
    if offload is None:
        return Section(OFFLOAD_TITLE, (Paragraph("No MoE model was analysed."),))
    figure = offload_json.parent / OFFLOAD_FIGURE
    section = offload_section(offload, figure if figure.is_file() else None)
    return Section(OFFLOAD_TITLE + " (first seed of each model)", section.blocks)


def proposal_report_section(sweeps: ProposalSweeps) -> Section:
    """WER / CER against K for every analysed model whose sweep exists."""
    if sweeps.description is None:
        return Section(PROPOSALS_TITLE, (Paragraph("Not measured (`proposals.enabled: false`)."),))
    rows, sets, commands, diversity = [], [], [], []
    for model, path in sweeps.sweep_files:
        document = read_json(path, "proposal sweep")
        commands.append(document.get("command", ""))
        changed = document.get("changed_fraction")
        if changed is not None:
            diversity.append(f"{model} {100 * changed:.1f}%")
        for point in document["points"]:
            sets = sets or sorted(point["sets"])
            cells = [
                f"{100 * point['sets'][name]['wer']:.2f} / {100 * point['sets'][name]['cer']:.2f}"
                for name in sets
            ]
            rows.append((model, str(point["count"]), *cells, f"{point['relative_cost']:.2f}×"))
    if not rows:
        return Section(PROPOSALS_TITLE, (Paragraph("No MoE model was analysed."),))
    table = Table(
        ("model", "K", *(f"{name} WER / CER %" for name in sets), "cost vs K = 1"),
        tuple(rows),
        "Greedy CTC decoding of the aggregated posteriors; cost: median forward time of one "
        "batch, every K timed interleaved",
    )
    text = (
        "K routed proposals per frame, run as one forward of a K-times batch: "
        f"{sweeps.description} (after Zibakhsh et al. 2025, RoE). "
        "Training is unchanged; only inference routes differently."
    )
    blocks: list = [Paragraph(text), table]
    if diversity:
        blocks.append(
            Paragraph(
                "Routing decisions of proposals 1…K−1 that differ from proposal 0's (largest K): "
                + ", ".join(diversity)
                + "."
            )
        )
    blocks += [Paragraph(f"Command: `{command}`") for command in commands if command]
    return Section(PROPOSALS_TITLE + " (first seed of each model)", tuple(blocks))
