"""The offloading study as the user reads it: hit-rate, prefetch and latency tables, the
hit-rate figure and the section shared by the analysis page and the experiment report, all from
a saved `OffloadStudy`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from omnirouter.analysis.results import AnalysisResults
from omnirouter.offload.latency import (
    MEMORY_SYSTEMS,
    MemorySystem,
    paper_sizes,
    resident_latency_ms,
    step_latency_ms,
)
from omnirouter.offload.predict import PREDICTORS
from omnirouter.offload.study import DEMAND_POLICIES, OFFLOAD_FIGURE, POLICIES, OffloadStudy
from omnirouter.report.figures import save_figure
from omnirouter.report.numbers import percent
from omnirouter.report.page import (
    FigureBlock,
    Page,
    PageFiles,
    Paragraph,
    Section,
    Table,
    write_page,
)


def hit_rate_table(offload: OffloadStudy, scope: str) -> Table:
    """Hit rate (%) of every model and policy against the cache size."""
    sizes = sorted({r.slots_per_layer for r in offload.results if r.scope == scope})
    rows = []
    for model in offload.models:
        for policy in POLICIES:
            cells = []
            for slots in sizes:
                try:
                    stats = offload.result(model, scope, slots, policy).stats
                except KeyError:
                    cells.append("–")
                    continue
                cells.append(f"{100 * stats.hit_rate:.1f} ({stats.loads_per_step:.2f})")
            rows.append((model, policy, *cells))
    unit = "per layer" if scope == "per-layer" else "per layer, pooled"
    return Table(
        ("model", "policy", *(f"C = {slots} {unit}" for slots in sizes)),
        tuple(rows),
        f"{scope} cache: hit rate % (expert loads per 40 ms step, prefetches included)",
    )


def prefetch_table(offload: OffloadStudy) -> Table:
    """How often each predictor names the next layer's expert, and what its misses cost."""
    rows = []
    for model in offload.models:
        slots = offload.latency_slots(model)
        for predictor in PREDICTORS:
            stats = offload.result(model, "per-layer", slots, f"prefetch:{predictor}").stats
            rows.append(
                (
                    model,
                    predictor,
                    percent(stats.prefetch_accuracy),
                    f"{stats.wasted_loads / stats.steps:.2f}",
                    f"{100 * stats.hit_rate:.1f}",
                )
            )
    return Table(
        ("model", "predictor", "prefetch accuracy %", "wasted loads per step", "hit rate %"),
        tuple(rows),
        "Prefetching one layer ahead (per-layer cache of the latency table's size). With a "
        "per-layer cache `previous-step` never loads anything: the previous step's expert of "
        "a layer is always that layer's most recent entry, so it is LRU there.",
    )


def latency_table(offload: OffloadStudy, memory: MemorySystem) -> Table:
    """Modelled ms per step at the paper's sizes, for each model's policies."""
    rows = []
    header: tuple[str, ...] = ()
    for model in offload.models:
        family = next(r.family for r in offload.results if r.model == model)
        sizes = paper_sizes(family, offload.num_experts[model])
        header = ("model", "policy", *(size.name for size in sizes))
        slots = offload.latency_slots(model)
        rows.append(
            (
                model,
                "all experts resident",
                *(f"{resident_latency_ms(s, memory):.2f}" for s in sizes),
            )
        )
        for policy in POLICIES:
            stats = offload.result(model, "per-layer", slots, policy).stats
            overlap = "attention" if policy == "prefetch:lookahead" else "layer"
            cells = (f"{step_latency_ms(stats, size, memory, overlap):.2f}" for size in sizes)
            rows.append((model, policy, *cells))
    slots = sorted({offload.latency_slots(model) for model in offload.models})
    return Table(
        header,
        tuple(rows),
        f"Modelled ms per 40 ms step on {memory.name} ({memory.fast_gb_per_s:g} / "
        f"{memory.slow_gb_per_s:g} GB/s), per-layer cache of "
        f"{' / '.join(map(str, slots))} slot(s)",
    )


def draw_hit_rates(offload: OffloadStudy, path: Path) -> Path:
    """Hit rate against cache size: a panel per scope and model, a line per policy."""
    models = offload.models
    figure = Figure(figsize=(4.2 * len(models), 6.4), layout="constrained")
    axes = figure.subplots(2, len(models), squeeze=False, sharey=True)
    for column, model in enumerate(models):
        for row, scope in enumerate(("per-layer", "global")):
            axis = axes[row][column]
            sizes = sorted(
                {r.slots_per_layer for r in offload.results if (r.model, r.scope) == (model, scope)}
            )
            for policy in POLICIES:
                rates = [
                    100 * offload.result(model, scope, c, policy).stats.hit_rate for c in sizes
                ]
                style = "--" if policy in DEMAND_POLICIES else "-"
                axis.plot(sizes, rates, style, marker="o", markersize=3, label=policy)
            axis.set_xticks(sizes)
            axis.set_title(f"{model}: {scope} cache", fontsize=9)
            axis.set_xlabel("cache slots per MoE layer")
            axis.grid(alpha=0.3)
            if column == 0:
                axis.set_ylabel("hit rate (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    return save_figure(figure, path)


def offload_section(offload: OffloadStudy, figure: Path | None) -> Section:
    """The section of the analysis page and of the experiment report."""
    blocks: list[Paragraph | Table | FigureBlock] = [
        Paragraph(
            "Experts offloaded to slow memory, a small cache of them in fast memory: each MoE "
            "layer's expert is looked up step by step in decoding order (`omnirouter offload`). "
            "Demand policies fetch on a miss; `prefetch:*` fetch the predicted expert of the "
            "next layer one layer ahead (LRU eviction). Belady's MIN is the bound on hits of "
            "any demand policy. A shared router should make the next layer's expert "
            "predictable from the current one (`same-expert`); `transition` learns the mapping "
            "on the other half of the utterances, which Switch needs because its expert "
            "numbers mean nothing across layers."
        ),
        hit_rate_table(offload, "per-layer"),
        hit_rate_table(offload, "global"),
        prefetch_table(offload),
    ]
    if figure is not None:
        blocks.append(FigureBlock(figure, "Cache hit rate against cache size, per policy"))
    blocks += [latency_table(offload, memory) for memory in MEMORY_SYSTEMS]
    blocks.append(
        Paragraph(
            "Latency model (`offload.latency`): a layer costs the time to read its active "
            "weights from fast memory (batch-1 decoding is memory-bound), a miss adds the "
            "expert's transfer from slow memory, a prefetch only the part of its transfer "
            "that one layer's compute does not hide. Load rates per layer access come from "
            "this trace and are applied to the paper's trunks with the same number of experts "
            "in every one of their 16 blocks. " + _overlap_reading()
        )
    )
    return Section("Expert offloading: caching and prefetching", tuple(blocks))


def _overlap_reading() -> str:
    """How much of an expert's transfer one layer's compute can hide, at the 84M trunk."""
    size = paper_sizes("omni", 4)[0]
    ratios = []
    for memory in MEMORY_SYSTEMS:
        fetch = size.expert_bytes / memory.slow_gb_per_s
        compute = size.layer_active_bytes / memory.fast_gb_per_s
        ratios.append(f"{fetch / compute:.0f}× on {memory.name}")
    return (
        "At batch 1 an expert of the 84M trunk takes "
        + " and ".join(ratios)
        + " the time of a layer's compute to arrive. A right prefetch one layer ahead therefore "
        "saves at most one layer's compute while a wrong one costs a whole transfer: the "
        "latency follows the number of loads, wasted prefetches included, and hit rates pay "
        "only when they come with fewer loads."
    )


def write_offload_page(
    results: AnalysisResults, offload: OffloadStudy, directory: Path
) -> tuple[Path, PageFiles]:
    """The hit-rate figure and the page of `omnirouter offload`, in `directory`."""
    figure = draw_hit_rates(offload, directory / OFFLOAD_FIGURE)
    steps = {model.records.num_steps for model in results.moe_models if model.records}
    intro = [
        Paragraph(
            f"Expert offloading simulated over the routing of {len(offload.models)} "
            f"model(s) on `{results.set_name}` "
            f"({' / '.join(f'{count:,}' for count in sorted(steps))} steps of 40 ms, "
            "every utterance in order)."
        )
    ]
    if results.command:
        intro.append(Paragraph(f"Command: `{results.command}`"))
    page = Page(
        f"Expert offloading: {results.set_name}",
        (offload_section(offload, figure),),
        tuple(intro),
    )
    return figure, write_page(page, directory, "report")
