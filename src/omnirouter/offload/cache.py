"""A trace-driven simulator of an expert cache in front of slow memory (after SpecMD, Hoang et
al. 2026): experts live in slow memory (host RAM behind a GPU, flash behind a phone's DRAM) and
each MoE layer must find its expert in a small fast cache.

The trace is the decoding order of a streaming recogniser: utterance after utterance, step
after step (40 ms), MoE layer after MoE layer, one expert access each (top-1 routing). The
cache persists across utterances, as on a device serving one stream.

Scopes: `per-layer` gives each MoE layer its own `slots` (an expert of layer l can only take a
slot of layer l); `global` is one pool of `slots` shared by all layers' experts.

Policies on a miss (demand fetch):
    lru     evict the least recently used expert
    lfu     evict the least frequently used (accesses since the start; ties: least recent)
    least-stale  SpecMD's eviction, as its authors describe it: experts not used at the
            current step ("stale") go first, oldest fetched first (FIFO), before any expert an
            earlier layer of this step used. With a per-layer cache no other cached expert of
            a layer is used in the same step, so it is FIFO there; it differs in `global`.
    belady  evict the expert whose next use is farthest in the future (Belady 1966, MIN). It
            needs the future, so it is a bound, not a policy: no demand-fetch policy has more
            hits, and no policy at all, prefetching included, moves fewer experts.
Prefetching (`predictions_LN`, LRU eviction): right after the access of layer l at a step, the
predicted expert of layer l+1 at that step is fetched into the cache unless present (it becomes
the most recently used). Predictions come from `offload.predict`.

Shape legend: L MoE layers, N steps of all utterances in decoding order.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np


class Scope(str, enum.Enum):
    per_layer = "per-layer"
    global_ = "global"


class Eviction(str, enum.Enum):
    lru = "lru"
    lfu = "lfu"
    least_stale = "least-stale"
    belady = "belady"


@dataclass(frozen=True)
class CacheStats:
    """What one simulation counted. Loads are expert transfers from slow to fast memory."""

    accesses: int
    hits: int
    demand_loads: int  # misses: the layer waits for its expert
    prefetches: int  # predictions acted on (one per layer access with a prediction)
    correct_prefetches: int  # the predicted expert was the one the next layer then used
    prefetch_loads: int  # prefetches that moved an expert (it was not cached yet)
    wasted_loads: int  # prefetch loads of an expert that the next layer did not use
    steps: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.accesses if self.accesses else float("nan")

    @property
    def loads(self) -> int:
        return self.demand_loads + self.prefetch_loads

    @property
    def loads_per_step(self) -> float:
        return self.loads / self.steps if self.steps else float("nan")

    @property
    def prefetch_accuracy(self) -> float:
        return self.correct_prefetches / self.prefetches if self.prefetches else float("nan")


def simulate(
    experts_LN: np.ndarray,
    num_experts: int,
    slots: int,
    scope: Scope = Scope.per_layer,
    eviction: Eviction = Eviction.lru,
    predictions_LN: np.ndarray | None = None,
) -> CacheStats:
    """Run the trace through the cache; `predictions_LN[l, n]` (or -1) is the prefetch made at
    layer l-1 of step n for layer l (row 0 is never used). Prefetching requires LRU eviction."""
    num_layers, num_steps = experts_LN.shape
    if slots < 1:
        raise ValueError(f"a cache needs at least one slot, got {slots}")
    if predictions_LN is not None:
        if eviction is not Eviction.lru:
            raise ValueError("prefetching is simulated with LRU eviction only")
        if predictions_LN.shape != experts_LN.shape:
            raise ValueError(f"predictions {predictions_LN.shape} ≠ trace {experts_LN.shape}")
    # Keys (layer · E + expert) and predictions, one flat list each in decoding order.
    layer_keys_L1 = np.arange(num_layers)[:, None] * num_experts
    keys = (layer_keys_L1 + experts_LN.astype(np.int64)).T.ravel().tolist()
    predicted = [] if predictions_LN is None else predictions_LN.T.ravel().tolist()
    caches: list[dict[int, float]] = [
        {} for _ in range(num_layers if scope is Scope.per_layer else 1)
    ]
    next_use = _next_uses(keys) if eviction is Eviction.belady else None
    frequency: dict[int, int] = {}
    fetched: dict[int, int] = {}  # when each cached key came in (least-stale's FIFO order)
    counts = dict(hits=0, demand=0, prefetches=0, correct=0, prefetch_loads=0, wasted=0)
    for position, key in enumerate(keys):
        layer = position % num_layers
        cache = caches[layer if scope is Scope.per_layer else 0]
        frequency[key] = frequency.get(key, 0) + 1
        if key in cache:
            counts["hits"] += 1
        else:
            counts["demand"] += 1
            if len(cache) >= slots:
                step_start = position - layer  # the position of this step's first access
                del cache[_victim(cache, eviction, frequency, fetched, step_start)]
            fetched[key] = position
        # Each cached key's priority: the time of its last use (LRU, LFU's tie-break) or,
        # for Belady, the time of its next use.
        cache[key] = next_use[position] if next_use is not None else float(position)
        # The prediction for the next access, the next layer of this step.
        if not predicted or layer + 1 >= num_layers or predicted[position + 1] < 0:
            continue
        counts["prefetches"] += 1
        actual = keys[position + 1]
        target = (layer + 1) * num_experts + predicted[position + 1]
        counts["correct"] += target == actual
        target_cache = caches[layer + 1 if scope is Scope.per_layer else 0]
        if target not in target_cache:
            counts["prefetch_loads"] += 1
            counts["wasted"] += target != actual
            if len(target_cache) >= slots:
                del target_cache[_victim(target_cache, eviction, frequency, fetched, 0)]
            fetched[target] = position
        target_cache[target] = position + 0.5  # used after this access, before the next one
    return CacheStats(
        accesses=len(keys),
        hits=counts["hits"],
        demand_loads=counts["demand"],
        prefetches=counts["prefetches"],
        correct_prefetches=counts["correct"],
        prefetch_loads=counts["prefetch_loads"],
        wasted_loads=counts["wasted"],
        steps=num_steps,
    )


def _victim(
    cache: dict[int, float],
    eviction: Eviction,
    frequency: dict[int, int],
    fetched: dict[int, int],
    step_start: int,
) -> int:
    if eviction is Eviction.belady:
        return max(cache, key=cache.__getitem__)  # farthest next use
    if eviction is Eviction.lfu:
        return min(cache, key=lambda key: (frequency[key], cache[key]))
    if eviction is Eviction.least_stale:
        # cache[key] is the position of its last use: from step_start on, it is current.
        return min(cache, key=lambda key: (cache[key] >= step_start, fetched[key]))
    return min(cache, key=cache.__getitem__)  # least recently used


def _next_uses(keys: list[int]) -> list[float]:
    """For every position, the position of the next access to the same key (∞ if none)."""
    next_use = [math.inf] * len(keys)
    last_seen: dict[int, int] = {}
    for position in range(len(keys) - 1, -1, -1):
        key = keys[position]
        if key in last_seen:
            next_use[position] = last_seen[key]
        last_seen[key] = position
    return next_use
