"""The offloading study of one or more models' routing records: every policy at every cache
size, the modelled latency at the paper's sizes, and their tables, figure and JSON.

Cache sizes are given per layer (1..E slots); the global cache of the same total holds
slots · L experts of any layers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from omnirouter.analysis.figures import save_figure
from omnirouter.analysis.records import RoutingRecords
from omnirouter.offload.cache import CacheStats, Eviction, Scope, simulate
from omnirouter.offload.latency import (
    MEMORY_SYSTEMS,
    MemorySystem,
    paper_sizes,
    resident_latency_ms,
    step_latency_ms,
)
from omnirouter.offload.predict import PREDICTORS, predictions
from omnirouter.report.page import FigureBlock, Paragraph, Section, Table

DEMAND_POLICIES = ("lru", "lfu", "least-stale", "belady")
POLICIES = DEMAND_POLICIES + tuple(f"prefetch:{name}" for name in PREDICTORS)
OFFLOAD_FILE = "offload.json"
OFFLOAD_FIGURE = "offload_hit_rate.png"


@dataclass(frozen=True)
class PolicyResult:
    model: str
    family: str
    scope: str  # "per-layer" | "global"
    slots_per_layer: int  # the global cache holds slots_per_layer · L experts in all
    policy: str  # one of POLICIES
    stats: CacheStats


@dataclass(frozen=True)
class OffloadStudy:
    results: tuple[PolicyResult, ...]
    num_experts: dict[str, int]  # per model
    num_layers: dict[str, int]  # per model (MoE layers)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(result.model for result in self.results))

    @functools.cached_property
    def _by_key(self) -> dict[tuple[str, str, int, str], PolicyResult]:
        return {(r.model, r.scope, r.slots_per_layer, r.policy): r for r in self.results}

    def result(self, model: str, scope: str, slots: int, policy: str) -> PolicyResult:
        return self._by_key[(model, scope, slots, policy)]

    def latency_slots(self, model: str) -> int:
        """The per-layer cache size of the latency table: half the experts (at least one), or
        the nearest size simulated."""
        wanted = max(1, self.num_experts[model] // 2)
        sizes = {r.slots_per_layer for r in self.results if r.model == model}
        return min(sizes, key=lambda slots: (abs(slots - wanted), slots))


def study(
    records: Sequence[RoutingRecords], slots_per_layer: Sequence[int] | None = None
) -> OffloadStudy:
    """Every policy, scope and cache size for every MoE model's records: the demand policies,
    and `prefetch:<predictor>` with LRU eviction."""
    results = []
    for model in records:
        predicted = {f"prefetch:{name}": predictions(model, name) for name in PREDICTORS}
        for scope in Scope:
            for slots in slots_per_layer or range(1, model.num_experts + 1):
                total = slots if scope is Scope.per_layer else slots * model.num_layers
                for policy in POLICIES:
                    eviction = Eviction.lru if policy in predicted else Eviction(policy)
                    stats = simulate(
                        model.experts_LN,
                        model.num_experts,
                        total,
                        scope,
                        eviction,
                        predicted.get(policy),
                    )
                    results.append(
                        PolicyResult(model.name, model.family, scope.value, slots, policy, stats)
                    )
    return OffloadStudy(
        tuple(results),
        num_experts={model.name: model.num_experts for model in records},
        num_layers={model.name: model.num_layers for model in records},
    )


def to_document(offload: OffloadStudy) -> dict[str, Any]:
    """The study as JSON: every simulation's counts and rates."""
    return {
        "num_experts": offload.num_experts,
        "num_layers": offload.num_layers,
        "results": [
            {
                "model": result.model,
                "family": result.family,
                "scope": result.scope,
                "slots_per_layer": result.slots_per_layer,
                "policy": result.policy,
                **dataclasses.asdict(result.stats),
                "hit_rate": _number(result.stats.hit_rate),
                "loads_per_step": _number(result.stats.loads_per_step),
                "prefetch_accuracy": _number(result.stats.prefetch_accuracy),
            }
            for result in offload.results
        ],
    }


def from_document(document: dict[str, Any]) -> OffloadStudy:
    fields = [field.name for field in dataclasses.fields(CacheStats)]
    return OffloadStudy(
        tuple(
            PolicyResult(
                entry["model"],
                entry["family"],
                entry["scope"],
                int(entry["slots_per_layer"]),
                entry["policy"],
                CacheStats(**{name: int(entry[name]) for name in fields}),
            )
            for entry in document["results"]
        ),
        num_experts={key: int(value) for key, value in document["num_experts"].items()},
        num_layers={key: int(value) for key, value in document["num_layers"].items()},
    )


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


# ---------------------------------------------------------------- tables and figure


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
            accuracy = stats.prefetch_accuracy
            rows.append(
                (
                    model,
                    predictor,
                    "–" if math.isnan(accuracy) else f"{100 * accuracy:.1f}",
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
