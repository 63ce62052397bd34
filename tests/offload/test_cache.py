"""The expert-cache simulator against hit counts worked out by hand on small traces."""

import numpy as np
import pytest

from omnirouter.offload.cache import Eviction, Scope, simulate


def one_layer(*experts: int) -> np.ndarray:
    return np.array([experts])


def test_cyclic_trace_defeats_lru_but_not_belady() -> None:
    # A B C A B C in two slots: LRU always evicts the expert needed next; MIN keeps A, then C.
    trace = one_layer(0, 1, 2, 0, 1, 2)
    lru = simulate(trace, 3, slots=2, eviction=Eviction.lru)
    belady = simulate(trace, 3, slots=2, eviction=Eviction.belady)
    assert (lru.hits, lru.demand_loads) == (0, 6)
    assert (belady.hits, belady.demand_loads) == (2, 4)
    assert belady.hit_rate == pytest.approx(2 / 6)


def test_lfu_keeps_the_frequent_expert_that_lru_evicts() -> None:
    # A A B C A: at C, LRU evicts A (used longest ago), LFU evicts B (used once).
    trace = one_layer(0, 0, 1, 2, 0)
    assert simulate(trace, 3, slots=2, eviction=Eviction.lru).hits == 1
    assert simulate(trace, 3, slots=2, eviction=Eviction.lfu).hits == 2


def test_least_stale_evicts_the_oldest_fetched_stale_expert_of_a_global_cache() -> None:
    # Two layers, two experts, a pooled cache of two. Keys: layer·2 + expert.
    # Steps: (0, 0), (1, 0), (0, 0): layer 1 always uses expert 0 (key 2).
    trace = np.array([[0, 1, 0], [0, 0, 0]])
    lru = simulate(trace, 2, slots=2, scope=Scope.global_, eviction=Eviction.lru)
    stale = simulate(trace, 2, slots=2, scope=Scope.global_, eviction=Eviction.least_stale)
    # LRU: miss 0, miss 2 | miss 1 (evicts 0), hit 2 | miss 0 (evicts 1), hit 2.
    assert lru.hits == 2
    # Least-stale: at step 2 both cached keys are stale and key 2 was fetched first, so it goes,
    # then key 2 misses and evicts key 1 (stale) rather than key 0 (used this step).
    assert stale.hits == 1


def test_per_layer_caches_do_not_share_slots() -> None:
    # Each layer keeps using one expert: one slot per layer suffices, after the cold misses.
    trace = np.array([[1, 1, 1, 1], [3, 3, 3, 3]])
    stats = simulate(trace, 4, slots=1, scope=Scope.per_layer)
    assert (stats.hits, stats.demand_loads, stats.accesses) == (6, 2, 8)
    # One pooled slot for both layers thrashes.
    assert simulate(trace, 4, slots=1, scope=Scope.global_).hits == 0


def test_a_right_prefetch_turns_the_next_layers_miss_into_a_hit() -> None:
    # Every layer picks the same expert at a step; same-expert prediction is always right.
    experts = np.array([[0, 1], [0, 1]])
    predicted = np.array([[-1, -1], [0, 1]])
    stats = simulate(experts, 2, slots=1, predictions_LN=predicted)
    assert stats.prefetch_accuracy == 1.0
    assert (stats.prefetches, stats.prefetch_loads, stats.wasted_loads) == (2, 2, 0)
    assert (stats.hits, stats.demand_loads) == (2, 2)  # layer 1 never waits


def test_a_wrong_prefetch_is_a_wasted_load_and_can_evict_the_needed_expert() -> None:
    experts = np.array([[0, 0], [1, 1]])
    predicted = np.array([[-1, -1], [0, 0]])
    stats = simulate(experts, 2, slots=1, predictions_LN=predicted)
    # Step 0: miss (0,0); prefetch (1,0) wasted; miss (1,1).
    # Step 1: hit (0,0); prefetch (1,0) evicts (1,1), wasted; miss (1,1).
    assert stats.prefetch_accuracy == 0.0
    assert (stats.hits, stats.demand_loads, stats.prefetch_loads, stats.wasted_loads) == (
        1,
        3,
        2,
        2,
    )
    assert stats.loads_per_step == pytest.approx(5 / 2)


def test_without_predictions_prefetching_changes_nothing() -> None:
    rng = np.random.default_rng(0)
    experts = rng.integers(0, 4, size=(3, 50))
    none = np.full(experts.shape, -1)
    assert simulate(experts, 4, 2, predictions_LN=none) == simulate(experts, 4, 2)


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("seed", range(5))
def test_belady_bounds_every_policy_on_random_traces(scope: Scope, seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_layers, num_experts = 3, 4
    experts = rng.integers(0, num_experts, size=(num_layers, 80))
    # Skewed traces too, where recency and frequency matter.
    experts[:, ::3] = rng.integers(0, 2, size=experts[:, ::3].shape)
    slots = 2 if scope is Scope.per_layer else 5
    belady = simulate(experts, num_experts, slots, scope, Eviction.belady)
    for eviction in (Eviction.lru, Eviction.lfu, Eviction.least_stale):
        assert belady.hits >= simulate(experts, num_experts, slots, scope, eviction).hits
    # No policy moves fewer experts than MIN, prefetching ones included (any prefetching
    # schedule can be made lazy without adding fetches).
    for predicted in (rng.integers(0, num_experts, size=experts.shape), np.roll(experts, 1, 0)):
        prefetching = simulate(experts, num_experts, slots, scope, predictions_LN=predicted)
        assert belady.loads <= prefetching.loads


def test_a_cache_of_every_expert_misses_only_once_per_expert() -> None:
    rng = np.random.default_rng(1)
    experts = rng.integers(0, 4, size=(2, 200))
    for eviction in Eviction:
        stats = simulate(experts, 4, slots=4, eviction=eviction)
        distinct = sum(len(set(row.tolist())) for row in experts)
        assert stats.demand_loads == distinct


def test_bad_arguments_are_refused() -> None:
    trace = one_layer(0, 1)
    with pytest.raises(ValueError, match="at least one slot"):
        simulate(trace, 2, slots=0)
    with pytest.raises(ValueError, match="LRU eviction only"):
        simulate(trace, 2, 1, eviction=Eviction.lfu, predictions_LN=trace)
    with pytest.raises(ValueError, match="predictions"):
        simulate(trace, 2, 1, predictions_LN=np.zeros((2, 2), dtype=int))
