"""The offloading study of one or more models' routing records: every policy at every cache
size, and its JSON form (`report.offload_page` presents it).

Cache sizes are given per layer (1..E slots); the global cache of the same total holds
slots · L experts of any layers.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omnirouter.analysis.records import RoutingRecords
from omnirouter.model.config import Family
from omnirouter.offload.cache import CacheStats, Eviction, Scope, simulate
from omnirouter.offload.predict import PREDICTORS, predictions

DEMAND_POLICIES = ("lru", "lfu", "least-stale", "belady")
POLICIES = DEMAND_POLICIES + tuple(f"prefetch:{name}" for name in PREDICTORS)
OFFLOAD_FILE = "offload.json"
OFFLOAD_FIGURE = "offload_hit_rate.png"


@dataclass(frozen=True)
class PolicyResult:
    model: str
    family: Family
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
    """The study for `jsonio.write_json`: every simulation's counts and rates."""
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
                "hit_rate": result.stats.hit_rate,
                "loads_per_step": result.stats.loads_per_step,
                "prefetch_accuracy": result.stats.prefetch_accuracy,
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
                Family(entry["family"]),
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
